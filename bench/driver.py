"""The measuring side of the benchmarks, run in a fresh subprocess per client (see ``common.run_driver``).

It imports only the standard library at module level; the client under test (``irouter`` -- whichever version
this interpreter has -- or the ``openai`` SDK) is imported inside the measurement. It works unchanged under the
irouter 0.3.1 venv, whose ``Chat``/``Call`` take the same ``base_url=``/``api_key=`` keywords.

    python bench/driver.py fanout   --client irouter --sizes 1,4,16 --base-url URL --api-key KEY
    python bench/driver.py overhead --client openai  --sizes 10,240 --base-url URL --api-key KEY
    python bench/driver.py coldstart --client irouter --base-url URL --api-key KEY

The last stdout line is ``BENCH_RESULT {json}``; anything else printed (0.3.1's progress bars) is ignored.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

RESULT_MARK = "BENCH_RESULT "
MODEL = "openai/gpt-4o-mini"
EXPECTED_PREFIX = "You said:"
"""The double echoes the last user text as ``You said: ...``; every client's first answer is checked for it."""

Fn = Callable[[], Any]

# ------------------------------------------------------------------------------------------------ workload

_VOCABULARY = (
    "the model answer context token request history router latency provider message system user assistant "
    "python library client server prompt reply stream thread budget cost usage price cache tool call json "
    "field value error retry timeout connection pool header body chat complete reason choice content role"
)
_WORDS = tuple(_VOCABULARY.split())


def conversation(n: int, seed: int = 240) -> list[dict[str, str]]:
    """``n`` realistic messages: a system prompt, then user/assistant turns ending with a user message.

    Each text is 200-400 characters of plain words; the same ``seed`` gives the same conversation everywhere.
    """
    rng = random.Random(seed)

    def text() -> str:
        target = rng.randint(200, 400)
        words: list[str] = []
        size = 0
        while size < target:
            word = rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        return " ".join(words).capitalize()[:target].rstrip() + "."

    messages = [{"role": "system", "content": text()}]
    for i in range(1, n):
        messages.append({"role": "user" if i % 2 else "assistant", "content": text()})
    if messages[-1]["role"] != "user":
        messages[-1]["role"] = "user"
    return messages


def models(n: int) -> list[str]:
    """``n`` distinct model slugs (the double answers any slug)."""
    return [MODEL] if n == 1 else [f"bench/model-{i:02d}" for i in range(n)]


def check(answer: Any, what: str) -> None:
    """Fail loudly when a client did not really get the double's answer."""
    values = list(answer.values()) if isinstance(answer, dict) else [answer]
    for value in values:
        if not (isinstance(value, str) and value.startswith(EXPECTED_PREFIX)):
            raise RuntimeError(f"{what}: unexpected answer {value!r:.200}")


def version(dist: str) -> str | None:
    """The installed version of ``dist``, or ``None``."""
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------ clients


def openai_client(base_url: str, api_key: str) -> Any:
    """One ``OpenAI`` client for the whole process (it is thread-safe and pools connections), SDK defaults."""
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key)


def openai_httpx_response() -> type:
    """The ``Response`` class of the httpx flavour the installed SDK is built on (``httpx`` or ``httpx2``)."""
    import openai._base_client as base

    module = vars(base).get("httpx2") or vars(base)["httpx"]
    return module.Response  # type: ignore[no-any-return]


def fanout_call(client: str, names: list[str], base_url: str, api_key: str) -> tuple[Fn, Fn]:
    """(one fan-out turn, reset between turns) for ``client`` asking all of ``names`` "hi"."""
    if client == "irouter":
        from irouter import Chat

        chat = Chat(names if len(names) > 1 else names[0], base_url=base_url, api_key=api_key)
        return (lambda: chat("hi")), chat.reset_history
    oai = openai_client(base_url, api_key)

    def one(model: str) -> str:
        messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "hi"}]
        completion = oai.chat.completions.create(model=model, messages=messages)
        return completion.choices[0].message.content  # type: ignore[no-any-return]

    if client == "openai-threads":

        def threads() -> dict[str, str]:
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                return dict(zip(names, pool.map(one, names), strict=True))

        return threads, lambda: None
    if client == "openai-seq":
        return (lambda: {m: one(m) for m in names}), lambda: None
    raise ValueError(f"unknown fan-out client {client!r}")


def overhead_call(client: str, messages: list[dict[str, str]], base_url: str, api_key: str) -> Fn:
    """One request carrying ``messages`` through ``client``, returning the answer text."""
    if client == "irouter-call":
        from irouter import Call

        call = Call(MODEL, base_url=base_url, api_key=api_key)
        return lambda: call(messages)
    if client == "irouter-chat":
        from irouter import Chat

        chat = Chat(MODEL, base_url=base_url, api_key=api_key)
        history, last = messages[:-1], messages[-1]["content"]

        def turn() -> Any:
            chat._history[MODEL] = list(history)  # private in both versions: neither has a public setter that works
            return chat(last)

        return turn
    oai = openai_client(base_url, api_key)
    if client == "openai":
        return lambda: oai.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
    if client == "openai-raw":
        response_cls = openai_httpx_response()

        def raw() -> Any:
            response = oai.post("/chat/completions", body={"model": MODEL, "messages": messages}, cast_to=response_cls)
            return response.json()["choices"][0]["message"]["content"]

        return raw
    raise ValueError(f"unknown overhead client {client!r}")


# ------------------------------------------------------------------------------------------------ measuring


def timed(fn: Fn) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this whole process -- every thread, result) of one ``fn()``."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0, result


def fanout(args: argparse.Namespace) -> dict[str, Any]:
    """Median wall time of a turn to n models at once, for every n in ``--sizes``."""
    # Warm up once per process (imports, lazy clients, the first connection) with a single-model turn.
    warm, _ = fanout_call(args.client, models(1), args.base_url, args.api_key)
    check(warm(), args.client)
    out: dict[str, Any] = {}
    for n in args.sizes:
        turn, reset = fanout_call(args.client, models(n), args.base_url, args.api_key)
        walls: list[float] = []
        cpus: list[float] = []
        deadline = time.perf_counter() + args.budget
        while len(walls) < args.reps and (not walls or time.perf_counter() < deadline):
            reset()
            wall, cpu, answer = timed(turn)
            check(answer, f"{args.client} x{n}")
            walls.append(wall)
            cpus.append(cpu)
        out[str(n)] = {
            "wall_s": statistics.median(walls),
            "cpu_s": statistics.median(cpus),
            "reps": len(walls),
            "walls": walls,
        }
    return out


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Client CPU time per request (median over many), for conversations of every size in ``--sizes``."""
    out: dict[str, Any] = {}
    for n in args.sizes:
        fn = overhead_call(args.client, conversation(n), args.base_url, args.api_key)
        for _ in range(args.warmup):
            check(fn(), f"{args.client} n={n}")
        gc.collect()
        walls: list[float] = []
        cpus: list[float] = []
        deadline = time.perf_counter() + args.budget
        while len(cpus) < args.min_calls or (len(cpus) < args.max_calls and time.perf_counter() < deadline):
            wall, cpu, _ = timed(fn)
            walls.append(wall)
            cpus.append(cpu)
        out[str(n)] = {
            "cpu_ms": statistics.median(cpus) * 1e3,
            "cpu_mean_ms": statistics.fmean(cpus) * 1e3,
            "wall_ms": statistics.median(walls) * 1e3,
            "calls": len(cpus),
        }
    return out


def coldstart(args: argparse.Namespace) -> dict[str, Any]:
    """Import + construct + first answer in this fresh process (irouter defers ``import httpx`` to here)."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.client == "irouter":
        from irouter import Call

        answer = Call(MODEL, base_url=args.base_url, api_key=args.api_key)("hi")
    elif args.client == "openai":
        from openai import OpenAI

        oai = OpenAI(base_url=args.base_url, api_key=args.api_key)
        answer = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        answer = answer.choices[0].message.content
    else:
        raise ValueError(f"unknown cold-start client {args.client!r}")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    check(answer, args.client)
    return {"wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=("fanout", "overhead", "coldstart"))
    parser.add_argument("--client", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1])
    parser.add_argument("--reps", type=int, default=3, help="fanout: timed turns per size (at most)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per size before stopping early")
    parser.add_argument("--warmup", type=int, default=3, help="overhead: untimed calls per size")
    parser.add_argument("--min-calls", type=int, default=10, help="overhead: timed calls per size, at least")
    parser.add_argument("--max-calls", type=int, default=400, help="overhead: timed calls per size, at most")
    args = parser.parse_args(argv)
    result = {"fanout": fanout, "overhead": overhead, "coldstart": coldstart}[args.bench](args)
    payload = {
        "bench": args.bench,
        "client": args.client,
        "irouter": version("irouter"),
        "openai": version("openai"),
        "result": result,
    }
    sys.stdout.write(RESULT_MARK + json.dumps(payload) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
