"""(1) Fan-out: wall time of one turn sent to 1, 4, 16, 64 models at once, the server taking 300 ms per answer.

Clients, each in its own process against its own OpenRouter double (a separate process):

* irouter (this repo): ``Chat([...models])("hi")`` -- one thread per model.
* openai SDK, thread/model: one ``OpenAI`` client, a ``ThreadPoolExecutor(max_workers=n)`` mapping
  ``client.chat.completions.create`` over the models -- what you would write by hand.
* openai SDK, sequential: the same calls one after another (reference; only up to ``--seq-max`` models).
* irouter 0.3.1: ``Chat([...models])("hi")`` from its own venv (fastcore ``parallel``, ``n_workers`` = CPU count).

The figure is the median wall time of up to ``reps`` turns (fewer when a size would blow its time budget);
ideal is the server latency, whatever the number of models. Run alone: ``python bench/fanout.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import common

LATENCY = 0.3
SIZES = (1, 4, 16, 64)


def columns(old: common.Interpreter | None, seq_max: int) -> list[common.Column]:
    """The clients compared; sequential only up to ``seq_max`` models (it takes n x latency per turn)."""
    here = common.current().python
    cols = [
        common.Column("irouter", "irouter (this repo) Chat", here, "irouter", SIZES),
        common.Column("openai_threads", "openai SDK, thread/model", here, "openai-threads", SIZES),
        common.Column(
            "openai_seq", "openai SDK, sequential", here, "openai-seq", tuple(n for n in SIZES if n <= seq_max)
        ),
    ]
    if old is not None:
        cols.append(common.Column("old", f"irouter {common.OLD_VERSION} Chat", old.python, "irouter", SIZES))
    return cols


def run(quick: bool = False, old: common.Interpreter | None = None, seq_max: int | None = None) -> dict[str, Any]:
    """Measure every column; returns ``{"latency", "sizes", "columns": [...], "results": {key: driver JSON}}``."""
    seq_max = seq_max if seq_max is not None else (4 if quick else 16)
    cols = columns(old, seq_max)
    extra = ["--reps", "1" if quick else "3", "--budget", "1.5" if quick else "4"]
    common.log(f"(1) fan-out, server latency {LATENCY * 1e3:.0f} ms, sizes {SIZES}")
    results = common.measure("fanout", cols, LATENCY, extra)
    return {
        "latency": LATENCY,
        "sizes": list(SIZES),
        "seq_max": seq_max,
        "columns": [[c.key, c.label] for c in cols],
        "results": results,
    }


def _cell(result: Any, size: int, field: str, scale: float, digits: int) -> str:
    if result is None:
        return "n/a"
    item = result["result"].get(str(size))
    if item is None:
        return "(skipped)"
    return common.fmt(item[field], digits, scale)


def render(data: dict[str, Any]) -> str:
    """Two Markdown tables: wall seconds per turn, and the client process's CPU milliseconds per turn."""
    labels = [label for _, label in data["columns"]]
    out = []
    for title, field, scale, digits in (
        (
            f"(1) Fan-out: wall time per turn, seconds (server latency {data['latency'] * 1e3:.0f} ms; ideal = "
            "the latency)",
            "wall_s",
            1.0,
            2,
        ),
        ("(1b) Fan-out: client CPU per turn, ms (all threads of the client process)", "cpu_s", 1e3, 1),
    ):
        rows = [
            [str(n), *(_cell(data["results"][key], n, field, scale, digits) for key, _ in data["columns"])]
            for n in data["sizes"]
        ]
        out.append(f"{title}\n\n{common.table(['models', *labels], rows)}")
    reps = {
        label: [
            data["results"][key]["result"][str(n)]["reps"]
            if data["results"][key] and str(n) in data["results"][key]["result"]
            else 0
            for n in data["sizes"]
        ]
        for key, label in data["columns"]
    }
    out.append("timed turns per size: " + "; ".join(f"{k} {v}" for k, v in reps.items()))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one timed turn per size, sequential up to 4")
    parser.add_argument("--no-031", action="store_true", help=f"skip irouter {common.OLD_VERSION}")
    parser.add_argument("--seq-max", type=int, default=None, help="largest size run sequentially (default 16)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    args = parser.parse_args(argv)
    data = run(args.quick, common.old_or_none(not args.no_031), args.seq_max)
    return common.emit(render(data), data, args.json)


if __name__ == "__main__":
    sys.exit(main())
