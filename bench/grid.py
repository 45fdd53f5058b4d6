"""(5) Grid: many prompts x many models against the double at 50 ms, irouter's grid beside hand-written loops.

    python bench/grid.py                  # 100,000 cells: 10,000 prompts x 10 models (several minutes per client)
    python bench/grid.py --quick          # 2,000 cells: 200 prompts x 10 models
    python bench/grid.py --prompts 1000 --models 10 --clients irouter-grid,openai-gather

Clients, each in its own process (this file run with ``--driver CLIENT``) against its own double (a separate
process, ``python -m irouter.testing --latency 0.05``), all with at most ``--concurrency`` (64) requests in flight:

* ``irouter-grid``: ``Call(models).grid(prompts, store=FILE, concurrency=64, progress=False).run()``, every cell
  read as it finishes; the store is a fresh SQLite file.
* ``irouter-batch``: ``await AsyncCall(models).batch(prompts, concurrency=64)``: the same engine without a store,
  so the difference to ``irouter-grid`` is what the store costs.
* ``openai-gather``: the hand-written loop: one ``AsyncOpenAI`` client, ``asyncio.gather`` over every cell, each
  call inside ``async with asyncio.Semaphore(64)``.
* ``litellm-gather``: the same loop with ``litellm.acompletion`` (``openai/<slug>`` with ``api_base=``), run by
  the interpreter ``--litellm-python`` (default ``/tmp/benchvenv/bin/python``) because litellm is not one of
  irouter's dependencies. Without it the column reads n/a and a note says why.

Figures: cells per second (wall), client CPU per cell (user + system of the client process, all threads), peak
memory (the client process's ``ru_maxrss``), and the double's own CPU over the run. Every answer is checked
against its prompt (the double echoes ``"You said: <prompt>"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from driver import process_cpu  # the one reader of another process's CPU time

LATENCY = 0.05
CONCURRENCY = 64
CLIENTS = ("irouter-grid", "irouter-batch", "openai-gather", "litellm-gather")
LABELS = {
    "irouter-grid": "irouter Call.grid (SQLite store)",
    "irouter-batch": "irouter AsyncCall.batch (no store)",
    "openai-gather": "AsyncOpenAI + gather + Semaphore",
    "litellm-gather": "litellm.acompletion + gather + Semaphore",
}
LITELLM_PYTHON = os.environ.get("BENCH_LITELLM_PYTHON", "/tmp/benchvenv/bin/python")


def prompts(n: int) -> list[str]:
    return [f"Request {i} of the grid: answer briefly." for i in range(n)]


def models(n: int) -> list[str]:
    return [f"bench/model-{j}" for j in range(n)]


# ------------------------------------------------------------------------------------------------ the driver


def drive(client: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run every cell through ``client``; the figures of this process."""
    texts, slugs = prompts(args.prompts), models(args.models)
    run = RUNNERS[client]
    run(texts[:1], slugs[:1], args, warm=True)  # imports and the first connection, outside the clock
    cpu0, wall0 = time.process_time(), time.perf_counter()
    server0 = process_cpu(args.server_pid)
    answers = run(texts, slugs, args, warm=False)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    server1 = process_cpu(args.server_pid)
    cells = len(texts) * len(slugs)
    wrong = [a for a in answers if not (isinstance(a, str) and a.startswith("You said: Request "))]
    if len(answers) != cells or wrong:
        raise RuntimeError(f"{client}: {len(answers)} answers for {cells} cells, {len(wrong)} wrong: {wrong[:3]}")
    return {
        "client": client,
        "cells": cells,
        "wall_s": wall,
        "cpu_s": cpu,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "server_cpu_s": None if server0 is None or server1 is None else server1 - server0,
        "python": sys.executable,
        "versions": versions(),
    }


def versions() -> dict[str, str | None]:
    """The versions of the packages compared, as this interpreter has them."""
    import importlib.metadata

    found: dict[str, str | None] = {}
    for dist in ("irouter", "openai", "litellm"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found


def irouter_grid(texts: list[str], slugs: list[str], args: argparse.Namespace, warm: bool) -> list[Any]:
    from irouter import Call

    store = Path(args.tmp) / ("warm.sqlite" if warm else "grid.sqlite")
    call: Any = Call(slugs, base_url=args.base_url, api_key=args.api_key)
    grid = call.grid(texts, store=str(store), concurrency=args.concurrency, progress=False)
    answers = []
    for cell in grid.run():
        answers.append(cell.text if cell.ok else repr(cell.error))
    return answers


def irouter_batch(texts: list[str], slugs: list[str], args: argparse.Namespace, warm: bool) -> list[Any]:
    from irouter import AsyncCall

    call: Any = AsyncCall(slugs, base_url=args.base_url, api_key=args.api_key)
    results = asyncio.run(call.batch(texts, concurrency=args.concurrency))
    return [a for r in results for a in (r.values() if isinstance(r, dict) else [r])]  # {slug: text} per prompt


def openai_gather(texts: list[str], slugs: list[str], args: argparse.Namespace, warm: bool) -> list[Any]:
    from openai import AsyncOpenAI

    async def main() -> list[Any]:
        client = AsyncOpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=2)
        limit = asyncio.Semaphore(args.concurrency)

        async def one(model: str, text: str) -> Any:
            async with limit:
                reply = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
                return reply.choices[0].message.content

        try:
            return await asyncio.gather(*(one(m, t) for t in texts for m in slugs), return_exceptions=True)
        finally:
            await client.close()

    return asyncio.run(main())


def litellm_gather(texts: list[str], slugs: list[str], args: argparse.Namespace, warm: bool) -> list[Any]:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True

    async def main() -> list[Any]:
        limit = asyncio.Semaphore(args.concurrency)

        async def one(model: str, text: str) -> Any:
            async with limit:
                reply = await litellm.acompletion(
                    model=f"openai/{model}",
                    api_base=args.base_url,
                    api_key=args.api_key,
                    messages=[{"role": "user", "content": text}],
                    num_retries=2,
                )
                return reply.choices[0].message.content

        return await asyncio.gather(*(one(m, t) for t in texts for m in slugs), return_exceptions=True)

    return asyncio.run(main())


RUNNERS = {
    "irouter-grid": irouter_grid,
    "irouter-batch": irouter_batch,
    "openai-gather": openai_gather,
    "litellm-gather": litellm_gather,
}


# ------------------------------------------------------------------------------------------------ the runner


def env_for(python: str) -> dict[str, str]:
    """The driver's environment: irouter from this repository's ``src/`` whatever the interpreter, litellm kept
    offline (its price map from the package, not the internet)."""
    env = common.clean_env()
    env["PYTHONPATH"] = str(common.REPO / "src")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


def usable(python: str, module: str) -> str | None:
    """``None`` when ``python`` imports ``module``, else why not."""
    if not Path(python).exists():
        return f"{python} does not exist"
    proc = subprocess.run(
        [python, "-c", f"import {module}"], capture_output=True, text=True, env=env_for(python), check=False
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def measure(client: str, python: str, args: argparse.Namespace) -> dict[str, Any]:
    """One client in its own process against its own double."""
    with common.double_server(LATENCY) as server, tempfile.TemporaryDirectory() as tmp:
        cmd = [python, str(Path(__file__).resolve()), "--driver", client, "--prompts", str(args.prompts)]
        cmd += ["--models", str(args.models), "--concurrency", str(args.concurrency), "--tmp", tmp]
        cmd += ["--base-url", server.base_url, "--api-key", server.api_key, "--server-pid", str(server.pid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env_for(python), timeout=3600, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(common.RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(common.RESULT_MARK) :])
            return result
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    raise RuntimeError(f"{client} failed ({proc.returncode}):\n{tail}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every client asked for; ``{"results": {client: figures or None}, "notes": [...]}``."""
    data: dict[str, Any] = {
        "latency": LATENCY,
        "prompts": args.prompts,
        "models": args.models,
        "concurrency": args.concurrency,
        "results": {},
        "notes": [],
    }
    cells = args.prompts * args.models
    common.log(f"(5) grid: {args.prompts} prompts x {args.models} models = {cells:,} cells, latency 50 ms")
    for client in args.clients:
        python = args.litellm_python if client == "litellm-gather" else sys.executable
        module = {"litellm-gather": "litellm", "openai-gather": "openai"}.get(client, "irouter")
        why = usable(python, module)
        if why is not None:
            note = f"{LABELS[client]}: not run ({why})"
            common.log(f"  {note}")
            data["notes"].append(note)
            data["results"][client] = None
            continue
        data["results"][client] = common.try_driver(LABELS[client], measure, client, python, args)
    return data


def run_all(quick: bool) -> dict[str, Any]:
    """Every client at the default size (or ``--quick``'s), as ``bench/run.py --only grid`` runs it."""
    args = argparse.Namespace(
        prompts=200 if quick else 10_000,
        models=10,
        concurrency=CONCURRENCY,
        clients=list(CLIENTS),
        litellm_python=LITELLM_PYTHON,
    )
    return run(args)


def render(data: dict[str, Any]) -> str:
    """One Markdown table: a row per client."""
    rows = []
    for client, result in data["results"].items():
        if result is None:
            rows.append([LABELS[client], "n/a", "n/a", "n/a", "n/a", "n/a"])
            continue
        rate = result["cells"] / result["wall_s"]
        server = result["server_cpu_s"]
        rows.append(
            [
                LABELS[client],
                f"{rate:,.0f}",
                f"{result['wall_s']:.1f}",
                f"{result['cpu_s'] / result['cells'] * 1e3:.2f}",
                f"{result['maxrss_mb']:.0f}",
                "n/a" if server is None else f"{server / result['wall_s'] * 100:.0f} %",
            ]
        )
    cells = data["prompts"] * data["models"]
    title = (
        f"(5) Grid: {cells:,} cells ({data['prompts']:,} prompts x {data['models']} models), server latency "
        f"{data['latency'] * 1e3:.0f} ms, {data['concurrency']} in flight"
    )
    headers = ["client", "cells/s", "wall s", "client CPU ms/cell", "peak RSS MB", "double CPU"]
    notes = "".join(f"\n\n{note}" for note in data["notes"])
    used = {k: v for r in data["results"].values() if r for k, v in r["versions"].items() if v}
    notes += "\n\nVersions: " + ", ".join(f"{k} {v}" for k, v in sorted(used.items()))
    return f"{title}\n\n{common.table(headers, rows)}{notes}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 cells (200 prompts x 10 models)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts (default 10,000; 200 with --quick)")
    parser.add_argument("--models", type=int, default=10, help="models (default 10)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--clients", default=",".join(CLIENTS), help=f"comma-separated subset of {CLIENTS}")
    parser.add_argument("--litellm-python", default=LITELLM_PYTHON, help="an interpreter with litellm installed")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    parser.add_argument("--driver", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prompts is None:
        args.prompts = 200 if args.quick else 10_000
    if args.driver:
        print(common.RESULT_MARK + json.dumps(drive(args.driver, args)), flush=True)
        return 0
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(args.clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown client(s): {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    data = run(args)
    data["machine"] = common.machine()
    data["seconds"] = time.perf_counter() - started
    return common.emit(render(data), data, args.json)


if __name__ == "__main__":
    sys.exit(main())
