"""(3) Import time, in fresh interpreters: ``import irouter`` (this repo and 0.3.1) vs ``import openai``.

Two measures, each the median of ``--runs`` fresh processes (after one untimed run that warms the OS file
cache and writes ``.pyc`` files):

* wall: ``python -c "import X"`` minus ``python -c "pass"`` under the same interpreter (what a user waits for);
* ``-X importtime``: the cumulative microseconds CPython reports for the top-level package.

irouter (this repo) imports ``httpx`` only when it sends its first request, so a light import partly moves
cost to the first call. The cold-start figure makes that visible: the client process's CPU time for import +
constructing the client + the first answer from a latency-0 double (CPU, because the wall time of that first
request also holds the double's own delays). Run alone: ``python bench/import_time.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

import common


def targets(old: common.Interpreter | None) -> list[tuple[str, str, str]]:
    """(label, python, module) for each import measured; httpx2 is there because irouter imports it lazily."""
    here = common.current().python
    rows = [("irouter (this repo)", here, "irouter")]
    if old is not None:
        rows.append((f"irouter {common.OLD_VERSION}", old.python, "irouter"))
    rows += [("openai", here, "openai"), ("httpx2 (irouter's first call)", here, "httpx2")]
    return rows


def _wall(python: str, code: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [python, "-c", code],
        check=True,
        cwd=common.BENCH_DIR,
        env=common.clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def _importtime_us(python: str, module: str) -> int:
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=common.BENCH_DIR,
        env=common.clean_env(),
    )
    for line in reversed(proc.stderr.splitlines()):
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no -X importtime line for {module}")


def import_figures(python: str, module: str, runs: int) -> dict[str, float]:
    """Median wall (minus a bare interpreter) and ``-X importtime`` figures, in ms."""
    _wall(python, f"import {module}")  # warm the file cache and the .pyc files
    bare: list[float] = []
    full: list[float] = []
    for _ in range(runs):  # interleaved, so drift hits both alike
        bare.append(_wall(python, "pass"))
        full.append(_wall(python, f"import {module}"))
    cumulative = [_importtime_us(python, module) for _ in range(runs)]
    return {
        "wall_ms": (statistics.median(full) - statistics.median(bare)) * 1e3,
        "bare_python_ms": statistics.median(bare) * 1e3,
        "importtime_ms": statistics.median(cumulative) / 1e3,
    }


def cold_start(python: str, client: str, server: common.Server, runs: int) -> dict[str, float]:
    """Median CPU (and wall) ms of import + client + first answer, each in a fresh driver process."""
    cpu: list[float] = []
    wall: list[float] = []
    common.run_driver(
        python, ["coldstart", "--client", client, "--base-url", server.base_url, "--api-key", server.api_key]
    )  # untimed: compiles and caches the bytecode
    for _ in range(runs):
        out = common.run_driver(
            python, ["coldstart", "--client", client, "--base-url", server.base_url, "--api-key", server.api_key]
        )
        cpu.append(out["result"]["cpu_ms"])
        wall.append(out["result"]["wall_ms"])
    return {"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall)}


def run(quick: bool = False, old: common.Interpreter | None = None, runs: int | None = None) -> dict[str, Any]:
    """Measure every target; returns ``{"runs", "rows": [{label, module, import..., cold...}]}``."""
    runs = runs or (5 if quick else 9)
    common.log(f"(3) import time, median of {runs} fresh processes")
    rows: list[dict[str, Any]] = []
    for label, python, module in targets(old):
        row: dict[str, Any] = {"label": label, "module": module}
        row["import"] = common.try_driver(f"import {label}", import_figures, python, module, runs)
        rows.append(row)
    cold_clients = {
        "irouter (this repo)": (common.current().python, "irouter"),
        "openai": (common.current().python, "openai"),
    }
    if old is not None:
        cold_clients[f"irouter {common.OLD_VERSION}"] = (old.python, "irouter")
    with common.double_server(0.0) as server:
        for row in rows:
            if row["label"] in cold_clients:
                python, client = cold_clients[row["label"]]
                row["cold"] = common.try_driver(f"cold start {row['label']}", cold_start, python, client, server, runs)
    return {"runs": runs, "rows": rows}


def render(data: dict[str, Any]) -> str:
    """One Markdown table, a row per import."""
    rows = []
    for row in data["rows"]:
        imp, cold = row.get("import"), row.get("cold")
        rows.append(
            [
                row["label"],
                common.fmt(imp and imp["wall_ms"], 1),
                common.fmt(imp and imp["importtime_ms"], 1),
                common.fmt(cold and cold["cpu_ms"], 1) if "cold" in row else "-",
            ]
        )
    headers = ["import", "wall ms (minus bare python)", "-X importtime ms", "cold start: import+first call, CPU ms"]
    bare = next((r["import"]["bare_python_ms"] for r in data["rows"] if r.get("import")), None)
    return (
        f"(3) Import time, median of {data['runs']} fresh processes (bare `python -c pass`: "
        f"{common.fmt(bare, 1)} ms)\n\n{common.table(headers, rows)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 processes per figure instead of 9")
    parser.add_argument("--runs", type=int, default=None, help="processes per figure")
    parser.add_argument("--no-031", action="store_true", help=f"skip irouter {common.OLD_VERSION}")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    args = parser.parse_args(argv)
    data = run(args.quick, common.old_or_none(not args.no_031), args.runs)
    return common.emit(render(data), data, args.json)


if __name__ == "__main__":
    sys.exit(main())
