"""(4) Streaming and async: time to first text, async batch throughput, streamed fan-out.

Clients, each in its own process against its own OpenRouter double (a separate process):

(4a) Time to first text of one streamed request (double latency 0, a 40-word message echoed back as 42 pieces),
     median over many requests after a warm-up, in several rounds (a fresh process each) taken in turn:

* irouter Chat: ``Chat(model)(msg, stream=True)``, iterated to the end (the first piece is timed);
* openai SDK: ``client.chat.completions.create(..., stream=True)``, time to the first chunk with a non-empty
  ``delta.content``;
* bare httpx2 (floor): ``httpx2.Client().stream(...)``, ``iter_lines()`` and ``json.loads`` of each ``data:`` line;
* irouter AsyncChat / AsyncOpenAI: the same through the asyncio clients.

  It is measured twice: with the chunks written back to back (the double's default), and with 1 ms between
  chunks, as from a model that is still generating.

(4b) 1,000 prompts through ``AsyncCall(model).batch(prompts, concurrency=64)`` vs ``AsyncOpenAI`` with
     ``asyncio.gather`` over the same prompts behind an ``asyncio.Semaphore(64)``: requests per second, client CPU,
     and the double's CPU (read from ``/proc``), at 20 ms server latency and at 0. irouter runs twice, with its
     default 8 connection pools and with one (``POOL_SHARDS = 1``), and so does the sync ``Call.batch`` (threads):
     does httpx2's pool still need requests spread over several?

(4c) A streamed turn to 16 models at 300 ms server latency, consumed to the end: ``Chat([16 models])(msg,
     stream=True)`` vs the openai SDK streaming with a thread per model (and both asyncio flavours).

irouter 0.3.1 has no streaming or async API, so it has no column here. Run alone: ``python bench/streaming.py
[--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import common

WORDS = 40
TTFT_LATENCY = 0.0
PACED_DELAY = 0.001
BATCH_LATENCIES = (0.02, 0.0)
BATCH_N = 1000
CONCURRENCY = 64
FAN_LATENCY = 0.3
FAN_MODELS = 16

TTFT_CLIENTS = (
    ("irouter_chat", "irouter Chat stream", "irouter-chat"),
    ("openai", "openai SDK stream", "openai"),
    ("httpx", "bare httpx2 stream (floor)", "httpx"),
    ("irouter_async", "irouter AsyncChat stream", "irouter-async-chat"),
    ("openai_async", "AsyncOpenAI stream", "openai-async"),
)
BATCH_CLIENTS = (
    ("irouter", "irouter AsyncCall.batch", "irouter-batch"),
    ("openai", "AsyncOpenAI + gather + Semaphore", "openai-gather"),
    ("irouter_1pool", "irouter AsyncCall.batch, one pool", "irouter-batch-1pool"),
    ("irouter_call", "irouter Call.batch (threads)", "irouter-call-batch"),
    ("irouter_call_1pool", "irouter Call.batch (threads), one pool", "irouter-call-batch-1pool"),
)
FAN_CLIENTS = (
    ("irouter_chat", "irouter Chat stream", "irouter-chat"),
    ("openai_threads", "openai SDK stream, thread/model", "openai-threads"),
    ("irouter_async", "irouter AsyncChat stream", "irouter-async-chat"),
    ("openai_async", "AsyncOpenAI stream + gather", "openai-async"),
)


def _drive(what: str, latency: float, args: list[str], chunk_delay: float = 0.0) -> Any:
    python = common.current().python
    return common.try_driver(what, common.drive_against_server, python, latency, args, chunk_delay)


def run_ttft(quick: bool) -> dict[str, Any]:
    """(4a): ``rounds`` fresh processes per client, taken in turn (so that drift on the VM hits every client
    alike), then one paced round."""
    rounds, reps, warmup = (1, 100, 20) if quick else (5, 150, 30)
    paced_reps = 30 if quick else 100
    common.log(f"(4a) time to first text, latency {TTFT_LATENCY:g}, {rounds} round(s) x {reps} requests")
    results: dict[str, list[Any]] = {key: [] for key, _, _ in TTFT_CLIENTS}
    for r in range(rounds):
        for key, label, client in TTFT_CLIENTS:
            args = ["ttft", "--client", client, "--words", str(WORDS), "--reps", str(reps), "--warmup", str(warmup)]
            results[key].append(_drive(f"ttft {label} (round {r + 1})", TTFT_LATENCY, args))
    common.log(f"(4a) the same, {PACED_DELAY * 1e3:g} ms between chunks, {paced_reps} requests")
    paced: dict[str, Any] = {}
    for key, label, client in TTFT_CLIENTS:
        args = ["ttft", "--client", client, "--words", str(WORDS), "--reps", str(paced_reps), "--warmup", "10"]
        paced[key] = _drive(f"ttft paced {label}", TTFT_LATENCY, args, PACED_DELAY)
    return {
        "latency": TTFT_LATENCY,
        "words": WORDS,
        "paced_delay": PACED_DELAY,
        "rounds": rounds,
        "reps": reps,
        "columns": [[key, label] for key, label, _ in TTFT_CLIENTS],
        "results": results,
        "paced": paced,
    }


def run_batch(quick: bool) -> dict[str, Any]:
    """(4b): one process per client and latency, ``reps`` timed batches after a warm-up batch of 64."""
    reps = 1 if quick else 3
    common.log(f"(4b) async batch, {BATCH_N} prompts, concurrency {CONCURRENCY}, latencies {BATCH_LATENCIES}")
    results: dict[str, dict[str, Any]] = {}
    for latency in BATCH_LATENCIES:
        results[str(latency)] = {}
        for key, label, client in BATCH_CLIENTS:
            args = ["batch", "--client", client, "--n", str(BATCH_N), "--concurrency", str(CONCURRENCY)]
            args += ["--reps", str(reps)]
            results[str(latency)][key] = _drive(f"batch {label} @ {latency * 1e3:g} ms", latency, args)
    return {
        "latencies": list(BATCH_LATENCIES),
        "n": BATCH_N,
        "concurrency": CONCURRENCY,
        "reps": reps,
        "columns": [[key, label] for key, label, _ in BATCH_CLIENTS],
        "results": results,
    }


def run_fanout(quick: bool) -> dict[str, Any]:
    """(4c): one process per client, ``reps`` timed turns after one warm-up turn to all the models."""
    reps = 2 if quick else 5
    common.log(f"(4c) streamed fan-out to {FAN_MODELS} models, latency {FAN_LATENCY * 1e3:.0f} ms")
    results = {}
    for key, label, client in FAN_CLIENTS:
        args = ["streamfan", "--client", client, "--models", str(FAN_MODELS), "--words", str(WORDS)]
        results[key] = _drive(f"streamfan {label}", FAN_LATENCY, [*args, "--reps", str(reps)])
    return {
        "latency": FAN_LATENCY,
        "models": FAN_MODELS,
        "reps": reps,
        "columns": [[key, label] for key, label, _ in FAN_CLIENTS],
        "results": results,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """All three parts; returns ``{"ttft", "batch", "fanout"}`` with every driver's JSON inside."""
    return {"ttft": run_ttft(quick), "batch": run_batch(quick), "fanout": run_fanout(quick)}


def driver_results(data: dict[str, Any]) -> dict[str, Any]:
    """Every driver result, flat (for the versions line of ``run.py``)."""
    flat: dict[str, Any] = {}
    for key, rounds in data["ttft"]["results"].items():
        flat.update({f"ttft {key} {i}": r for i, r in enumerate(rounds)})
    for latency, results in data["batch"]["results"].items():
        flat.update({f"batch {key} {latency}": r for key, r in results.items()})
    flat.update({f"fanout {key}": r for key, r in data["fanout"]["results"].items()})
    return flat


# ------------------------------------------------------------------------------------------------ tables


def _pooled(rounds: list[Any], field: str) -> list[float]:
    return [x for r in rounds if r for x in r["result"][field]]


def _median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def _decile(samples: list[float], which: int) -> float | None:
    if len(samples) < 2:
        return None
    return statistics.quantiles(samples, n=10)[which]


def _process_medians(rounds: list[Any], field: str) -> list[float]:
    return [r["result"][field]["median"] for r in rounds if r]


def render_ttft(data: dict[str, Any]) -> str:
    rows = []
    medians: dict[str, float | None] = {}
    paced: dict[str, float | None] = {}
    for key, label in data["columns"]:
        rounds = data["results"][key]
        ttft, cpu = _pooled(rounds, "ttft_ms"), _pooled(rounds, "cpu_ms_all")
        # The median of the per-process medians: one process disturbed by other work on the VM moves it less
        # than it moves a median of every sample pooled.
        medians[key] = _median(_process_medians(rounds, "ttft"))
        paced_result = data["paced"].get(key)
        paced[key] = paced_result["result"]["ttft"]["median"] if paced_result else None
        rows.append(
            [
                label,
                common.fmt(medians[key], 2),
                common.fmt(_decile(ttft, 0), 2),
                common.fmt(_decile(ttft, -1), 2),
                common.fmt(_median(_process_medians(rounds, "total")), 2),
                common.fmt(_median(cpu), 2),
                common.fmt(paced[key], 2),
            ]
        )
    title = (
        f"(4a) Time to first text, ms (median over {data['rounds']} process(es) per client of the median of "
        f"{data['reps']} streamed requests each; double latency {data['latency'] * 1e3:g}, reply of "
        f"{data['words'] + 2} pieces; p10/p90 over all requests)"
    )
    headers = [
        "client",
        "first text ms",
        "p10",
        "p90",
        "whole stream ms",
        "client CPU ms/request",
        f"first text ms, {data['paced_delay'] * 1e3:g} ms between chunks",
    ]
    out = [f"{title}\n\n{common.table(headers, rows)}"]

    def diff(values: dict[str, float | None]) -> str:
        a, b = values.get("irouter_chat"), values.get("openai")
        return "n/a" if a is None or b is None else f"{a - b:+.2f} ms"

    per_round = {
        label: [common.fmt(r["result"]["ttft"]["median"], 2) if r else "n/a" for r in data["results"][key]]
        for key, label in data["columns"][:2]
    }
    out.append(
        f"irouter Chat minus openai SDK, median time to first text: {diff(medians)} with the chunks back to back, "
        f"{diff(paced)} with {data['paced_delay'] * 1e3:g} ms between chunks (target: under +1 ms). Per-process "
        "medians: " + "; ".join(f"{label} {', '.join(v)}" for label, v in per_round.items())
    )
    return "\n\n".join(out)


def render_batch(data: dict[str, Any]) -> str:
    rows = []
    for latency in data["latencies"]:
        results = data["results"][str(latency)]
        base = results.get("openai")
        base_rps = base["result"]["median"]["rps"] if base else None
        for key, label in data["columns"]:
            result = results.get(key)
            if result is None:
                rows.append([label, f"{latency * 1e3:g}", *["n/a"] * 5])
                continue
            med = result["result"]["median"]
            n = result["result"]["n"]
            server = med["server_cpu_s"]
            rows.append(
                [
                    label,
                    f"{latency * 1e3:g}",
                    f"{med['rps']:.0f}",
                    ", ".join(f"{r['rps']:.0f}" for r in result["result"]["reps"]),
                    "-" if key == "openai" or base_rps is None else f"{(med['rps'] / base_rps - 1) * 100:+.0f} %",
                    common.fmt(med["cpu_s"] / n, 2, 1e3),
                    "n/a" if server is None else f"{server / med['wall_s'] * 100:.0f} %",
                ]
            )
    title = (
        f"(4b) Async batch: {data['n']} prompts, concurrency {data['concurrency']}, requests/s (median of "
        f"{data['reps']} timed batch(es) after a warm-up batch of {data['concurrency']})"
    )
    headers = [
        "client",
        "server latency ms",
        "requests/s",
        "each batch",
        "vs AsyncOpenAI",
        "client CPU ms/request",
        "double CPU, % of one core",
    ]
    return f"{title}\n\n{common.table(headers, rows)}"


def render_fanout(data: dict[str, Any]) -> str:
    rows = []
    for key, label in data["columns"]:
        result = data["results"].get(key)
        if result is None:
            rows.append([label, *["n/a"] * 4])
            continue
        r = result["result"]
        rows.append(
            [
                label,
                common.fmt(r["wall_s"], 3),
                ", ".join(f"{w:.3f}" for w in r["walls"]),
                common.fmt(r["first_s"], 0, 1e3),
                common.fmt(r["cpu_s"], 1, 1e3),
            ]
        )
    title = (
        f"(4c) Streamed fan-out: {data['models']} models, server latency {data['latency'] * 1e3:.0f} ms, consumed "
        f"to the end (median of {data['reps']} turns; ideal = the latency)"
    )
    headers = ["client", "wall s", "each turn", "first text ms", "client CPU ms/turn"]
    return f"{title}\n\n{common.table(headers, rows)}"


def render(data: dict[str, Any]) -> str:
    """Three Markdown tables and the notes that go with them."""
    return "\n\n".join(
        [
            render_ttft(data["ttft"]),
            render_batch(data["batch"]),
            render_fanout(data["fanout"]),
            f"irouter {common.OLD_VERSION} has no streaming or async API: it has no column in (4a)-(4c).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of 100 requests, one batch, two turns")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    args = parser.parse_args(argv)
    data = run(args.quick)
    return common.emit(render(data), data, args.json)


if __name__ == "__main__":
    sys.exit(main())
