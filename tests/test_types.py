"""Type checkers catch mistakes with irouter's public surface: a forgotten ``await``, a one-model answer used as
several models' dict, a stream used as text. Runs mypy (``--strict``) on small snippets and checks that exactly the
lines marked ``# E: <code>`` are flagged. The positive side is pinned by ``tests/typing/check_public_types.py``,
which ``.ci/run`` checks with ``mypy --strict``; the last test here checks it too, so pytest alone covers both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]

SNIPPETS = {
    "forgotten_await": """
from irouter import AsyncCall, AsyncChat

async def main() -> str:
    chat = AsyncChat("a/a")
    chat("hi")  # E: unused-coroutine
    text: str = chat("hi")  # E: assignment
    ask = AsyncCall("a/a")
    ask("hi")  # E: unused-coroutine
    return text + await chat("again") + await ask("again")
""",
    "wrong_shapes": """
from dataclasses import dataclass
from irouter import Call, Chat, Response

@dataclass
class City:
    name: str

one = Chat("a/a")
several = Chat(["a/a", "b/b"])
n: int = one("hi")  # E: assignment
d: dict[str, str] = one("hi")  # E: assignment
s: str = several("hi")  # E: assignment
c: City = several("hi", response_format=City)  # E: assignment
one("hi", stream=True).upper()  # E: attr-defined
r: Response = Call("a/a")("hi")  # E: assignment
t: str = Call("a/a")("hi", raw=True)  # E: assignment
ok: str = one("hi") + several("hi")["a/a"] + one("hi", response_format=City).name
""",
}
"""Each snippet's marked lines must be flagged with that error code, and no other line at all."""

ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One mypy run over every snippet (it is slow to start): its report and the snippets' folder."""
    folder = tmp_path_factory.mktemp("snippets")
    for name, code in SNIPPETS.items():
        (folder / f"{name}.py").write_text(code.lstrip("\n"))
    config = folder / "mypy.ini"
    config.write_text("[mypy]\n")
    out, err, _ = api.run(
        [
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(folder / ".cache"),
            "--show-error-codes",
            "--no-error-summary",
            "--no-pretty",
            *(str(folder / f"{name}.py") for name in SNIPPETS),
        ]
    )
    assert not err, err
    return out, folder


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_mistakes_are_flagged(mypy_report: tuple[str, Path], name: str) -> None:
    out = mypy_report[0]
    expected = {
        (number, marker.group(1))
        for number, line in enumerate(SNIPPETS[name].lstrip("\n").splitlines(), 1)
        if (marker := re.search(r"# E: ([a-z-]+)", line))
    }
    found = set()
    for line in out.splitlines():
        match = ERROR.match(line)
        if match and Path(match["file"]).name == f"{name}.py":
            found.add((int(match["line"]), match["code"]))
    assert found == expected, out


def test_the_public_types_file_checks_clean(mypy_report: tuple[str, Path]) -> None:
    """``tests/typing/check_public_types.py`` passes ``mypy --strict`` (``.ci/run`` checks it too)."""
    folder = mypy_report[1]  # its cache already holds irouter's analysis
    target = ROOT / "tests" / "typing" / "check_public_types.py"
    out, err, status = api.run(
        ["--strict", "--config-file", str(folder / "mypy.ini"), "--cache-dir", str(folder / ".cache"), str(target)]
    )
    assert status == 0, out + err
