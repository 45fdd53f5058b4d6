"""(6) Grids on Ray Data: cells per second with 1 and 2 Ray workers beside the single-process grid, and the double's
own ceiling, so the overhead Ray adds is visible.

    python bench/ray_grid.py             # 20,000 cells: 10,000 prompts x 2 models (a few minutes)
    python bench/ray_grid.py --quick     # 2,000 cells: 1,000 prompts x 2 models (about a minute and a half)

Everything runs on this machine against one double in its own process (``python -m irouter.testing --latency
0.05``), 64 requests in flight per client (per worker for Ray):

* ``Call.grid``: the single-process grid (`irouter.grid`) in this process, a temporary SQLite store.
* ``irouter.ray.grid, N workers``: a local Ray cluster (``ray.init(num_cpus=2)``, started once, outside the clock)
  and ``irouter.ray.grid(dataset, models, concurrency_per_worker=64, workers=N, batch_size=250)``; ``take_all()``.
  Two figures: the wall time of the whole job (Ray starts the worker processes inside it: a few seconds of fixed
  cost per job), and the steady rate between the first and the last cell the job's actor recorded.
* the double's ceiling: ``in-flight / latency`` (what 64 requests in flight at 50 ms allow) and what the double's
  CPU allows (one core divided by its CPU seconds per request, measured over the single-process run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import common
from driver import process_cpu

LATENCY = 0.05
CONCURRENCY = 64
MODELS = ["bench/model-0", "bench/model-1"]


def single(texts: list[str], server: common.Server) -> dict[str, Any]:
    from irouter import Call

    call: Any = Call(MODELS, base_url=server.base_url, api_key=server.api_key)
    list(call.grid(texts[:2], concurrency=CONCURRENCY, progress=False).run())  # warm: imports, catalog, connection
    cpu0 = process_cpu(server.pid)
    start = time.perf_counter()
    cells = list(call.grid(texts, concurrency=CONCURRENCY, progress=False).run())
    wall = time.perf_counter() - start
    cpu1 = process_cpu(server.pid)
    if len(cells) != len(texts) * len(MODELS) or not all(c.ok for c in cells):
        raise RuntimeError(f"Call.grid: {len(cells)} cells, {sum(not c.ok for c in cells)} failed")
    per_request = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / len(cells)
    return {"cells": len(cells), "wall_s": wall, "double_cpu_per_request_s": per_request}


def on_ray(texts: list[str], workers: int) -> dict[str, Any]:
    import ray

    import irouter.ray

    rows = ray.data.from_items([{"id": i, "prompt": t} for i, t in enumerate(texts)])
    job = irouter.ray.Job()
    answers = irouter.ray.grid(
        rows, MODELS, job=job, concurrency_per_worker=CONCURRENCY, workers=workers, batch_size=250
    )
    start = time.perf_counter()
    out = answers.take_all()
    wall = time.perf_counter() - start
    if len(out) != len(texts) * len(MODELS) or any(r["error"] for r in out):
        raise RuntimeError(f"irouter.ray.grid: {len(out)} cells, {sum(bool(r['error']) for r in out)} failed")
    times = sorted(job.finished().values())
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    return {"cells": len(out), "wall_s": wall, "steady_cells_per_s": steady}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 prompts instead of 10,000")
    parser.add_argument("--prompts", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.prompts or (1000 if args.quick else 10_000)
    texts = [f"Request {i} of the grid: answer briefly." for i in range(n)]
    results: dict[str, Any] = {}
    with common.double_server(LATENCY) as server:
        os.environ["OPENROUTER_BASE_URL"] = server.base_url  # the workers get both through runtime_env
        os.environ["OPENROUTER_API_KEY"] = server.api_key
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        common.log(f"single-process grid, {n * len(MODELS):,} cells")
        results["single"] = single(texts, server)
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for workers in (1, 2):
                common.log(f"irouter.ray.grid with {workers} worker(s)")
                results[f"ray{workers}"] = on_ray(texts, workers)
        finally:
            ray.shutdown()
    per_request = results["single"]["double_cpu_per_request_s"]
    rows = [
        ["Call.grid (one process)", common.fmt(results["single"]["cells"] / results["single"]["wall_s"], 0), "-"],
        *[
            [
                f"irouter.ray.grid, {w} worker{'s' if w > 1 else ''}",
                common.fmt(results[f"ray{w}"]["cells"] / results[f"ray{w}"]["wall_s"], 0),
                common.fmt(results[f"ray{w}"]["steady_cells_per_s"], 0),
            ]
            for w in (1, 2)
        ],
        ["double ceiling: 64 in flight / 50 ms", f"{CONCURRENCY / LATENCY:.0f}", "-"],
        ["double ceiling: its CPU (one core)", common.fmt(1 / per_request if per_request else None, 0), "-"],
    ]
    print(f"{n * len(MODELS):,} cells ({n:,} prompts x {len(MODELS)} models), latency {LATENCY * 1000:.0f} ms\n")
    print(common.table(["client", "cells/s (job wall)", "cells/s (steady)"], rows))
    print(f"\nwall seconds: { {k: round(v['wall_s'], 1) for k, v in results.items()} }", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
