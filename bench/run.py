"""All benchmarks in one run: irouter (this repo) vs the bare ``openai`` SDK vs irouter 0.3.1, side by side.

    python bench/run.py            # full run (about 2 minutes)
    python bench/run.py --quick    # fewer repetitions (about 1 minute)
    python bench/run.py --only fanout,import --no-031 --json results.json
    python bench/run.py --only streaming    # streaming and async (irouter 0.3.1 has neither)
    python bench/run.py --only grid         # prompts x models at 50 ms (not in the default run: minutes per client)

irouter 0.3.1 runs from its own virtualenv (``.bench-venv-031`` beside ``bench/``, override with
``BENCH_031_VENV``), created and filled from PyPI on first use. Progress goes to stderr, the tables to stdout.
See ``bench/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import common
import fanout
import grid
import import_time
import overhead
import streaming

BENCHES = ("fanout", "overhead", "import", "streaming", "grid")
DEFAULT = ("fanout", "overhead", "import", "streaming")
"""What runs without ``--only``: the grid takes minutes per client at full size, so it is asked for by name."""


def header(info: dict[str, Any], versions: dict[str, str | None], quick: bool, seconds: float) -> str:
    """Where and what was measured."""
    vers = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    return (
        f"Machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']} ({info['platform']})\n"
        f"Versions: {vers}; mode: {'quick' if quick else 'full'}; took {seconds:.0f} s"
    )


def versions(*datasets: dict[str, Any] | None) -> dict[str, str | None]:
    """The irouter/openai versions the drivers reported."""
    found: dict[str, str | None] = {"irouter (this repo)": None, "irouter (old)": None, "openai": None}
    for data in datasets:
        for key, result in ((data or {}).get("results") or {}).items():
            if not result:
                continue
            found["irouter (old)" if key.startswith("old") else "irouter (this repo)"] = result["irouter"]
            if not key.startswith("old"):
                found["openai"] = result["openai"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions everywhere")
    parser.add_argument("--only", default=",".join(DEFAULT), help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--no-031", action="store_true", help=f"skip irouter {common.OLD_VERSION} (no venv needed)")
    parser.add_argument(
        "--seq-max",
        type=int,
        default=None,
        help="fan-out: largest size for the sequential openai column (default 16, quick 4)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every raw result here")
    args = parser.parse_args(argv)
    only = {b.strip() for b in args.only.split(",") if b.strip()}
    unknown = only - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    old = common.old_or_none(not args.no_031 and bool(only & {"fanout", "overhead", "import"}))
    data: dict[str, Any] = {"machine": common.machine(), "quick": args.quick}
    if "fanout" in only:
        data["fanout"] = fanout.run(args.quick, old, args.seq_max)
    if "overhead" in only:
        data["overhead"] = overhead.run(args.quick, old)
    if "import" in only:
        data["import"] = import_time.run(args.quick, old)
    if "streaming" in only:
        data["streaming"] = streaming.run(args.quick)
    if "grid" in only:
        data["grid"] = grid.run_all(args.quick)
    seconds = time.perf_counter() - started

    streamed = {"results": streaming.driver_results(data["streaming"])} if "streaming" in data else None
    found = versions(data.get("fanout"), data.get("overhead"), streamed)
    sections = [header(data["machine"], found, args.quick, seconds)]
    if "fanout" in data:
        sections.append(fanout.render(data["fanout"]))
    if "overhead" in data:
        sections.append(overhead.render(data["overhead"]))
    if "import" in data:
        sections.append(import_time.render(data["import"]))
    if "streaming" in data:
        sections.append(streaming.render(data["streaming"]))
    if "grid" in data:
        sections.append(grid.render(data["grid"]))
    return common.emit("\n\n".join(sections), data, args.json)


if __name__ == "__main__":
    sys.exit(main())
