"""The measuring side of the benchmarks, run in a fresh subprocess per client (see ``common.run_driver``).

It imports only the standard library at module level; the client under test (``irouter`` -- whichever version
this interpreter has -- or the ``openai`` SDK) is imported inside the measurement. It works unchanged under the
irouter 0.3.1 venv, whose ``Chat``/``Call`` take the same ``base_url=``/``api_key=`` keywords.

    python bench/driver.py fanout   --client irouter --sizes 1,4,16 --base-url URL --api-key KEY
    python bench/driver.py overhead --client openai  --sizes 10,240 --base-url URL --api-key KEY
    python bench/driver.py coldstart --client irouter --base-url URL --api-key KEY
    python bench/driver.py ttft      --client irouter-chat --reps 200 --base-url URL --api-key KEY
    python bench/driver.py batch     --client irouter-batch --n 1000 --concurrency 64 --server-pid PID ...
    python bench/driver.py streamfan --client irouter-chat --models 16 --base-url URL --api-key KEY

The streaming/async benchmarks (``ttft``, ``batch``, ``streamfan``) run only under this repository's venv:
irouter 0.3.1 has no streaming or async API.

The last stdout line is ``BENCH_RESULT {json}``; anything else printed (0.3.1's progress bars) is ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

RESULT_MARK = "BENCH_RESULT "
MODEL = "openai/gpt-4o-mini"
SYSTEM = "You are a helpful assistant."
"""irouter's default system prompt; the openai and httpx2 clients send it too, so every body is the same."""
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


def stream_prompt(words: int) -> str:
    """A message of ``words`` plain words: the double echoes it back as ``You said: ...``, one piece per word."""
    rng = random.Random(words)
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def batch_prompts(n: int) -> list[str]:
    """``n`` distinct short prompts (each answer names its prompt, so the order of results can be checked)."""
    return [f"Request {i} of the batch: answer briefly." for i in range(n)]


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


# ------------------------------------------------------------------------------------------------ streaming clients
# A streamed request below returns (seconds to the first non-empty text, seconds to the end, the whole text).

Streamed = tuple[float, float, str]


def _piece_of(chunk: Any) -> str | None:
    """The text of an openai SDK ``ChatCompletionChunk`` (``None`` for role, usage and finish chunks)."""
    return chunk.choices[0].delta.content if chunk.choices else None


def ttft_sync(client: str, prompt: str, base_url: str, api_key: str) -> Callable[[], Streamed]:
    """One streamed request through ``client`` (a thread-based or blocking client)."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    if client == "irouter-chat":
        from irouter import Chat

        chat = Chat(MODEL, base_url=base_url, api_key=api_key)

        def irouter_chat() -> Streamed:
            chat.reset_history()  # before the clock starts: every request is the same two messages
            t0 = time.perf_counter()
            first, parts = 0.0, []
            for piece in chat(prompt, stream=True):
                if not parts:
                    first = time.perf_counter()
                parts.append(piece)
            return first - t0, time.perf_counter() - t0, "".join(parts)

        return irouter_chat
    if client == "openai":
        oai = openai_client(base_url, api_key)

        def openai_stream() -> Streamed:
            t0 = time.perf_counter()
            first, parts = 0.0, []
            for chunk in oai.chat.completions.create(model=MODEL, messages=messages, stream=True):
                piece = _piece_of(chunk)
                if piece:
                    if not parts:
                        first = time.perf_counter()
                    parts.append(piece)
            return first - t0, time.perf_counter() - t0, "".join(parts)

        return openai_stream
    if client == "httpx":
        import httpx2

        http = httpx2.Client()
        url = f"{base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

        def httpx_stream() -> Streamed:
            t0 = time.perf_counter()
            first, parts = 0.0, []
            body = json.dumps({"model": MODEL, "messages": messages, "stream": True}).encode()
            with http.stream("POST", url, content=body, headers=headers) as response:
                for line in response.iter_lines():
                    if not line.startswith("data: {"):
                        continue  # blank lines, ": OPENROUTER PROCESSING" comments, [DONE]
                    choices = json.loads(line[6:]).get("choices")
                    piece = choices[0]["delta"].get("content") if choices else None
                    if piece:
                        if not parts:
                            first = time.perf_counter()
                        parts.append(piece)
            return first - t0, time.perf_counter() - t0, "".join(parts)

        return httpx_stream
    raise ValueError(f"unknown streaming client {client!r}")


def ttft_async(client: str, prompt: str, base_url: str, api_key: str) -> Callable[[], Awaitable[Streamed]]:
    """`ttft_sync` for the asyncio clients (called inside the running event loop)."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    if client == "irouter-async-chat":
        from irouter import AsyncChat

        chat = AsyncChat(MODEL, base_url=base_url, api_key=api_key)

        async def irouter_async() -> Streamed:
            chat.reset_history()
            t0 = time.perf_counter()
            first, parts = 0.0, []
            async for piece in chat(prompt, stream=True):
                if not parts:
                    first = time.perf_counter()
                parts.append(piece)
            return first - t0, time.perf_counter() - t0, "".join(parts)

        return irouter_async
    if client == "openai-async":
        from openai import AsyncOpenAI

        oai = AsyncOpenAI(base_url=base_url, api_key=api_key)

        async def openai_async() -> Streamed:
            t0 = time.perf_counter()
            first, parts = 0.0, []
            async for chunk in await oai.chat.completions.create(model=MODEL, messages=messages, stream=True):
                piece = _piece_of(chunk)
                if piece:
                    if not parts:
                        first = time.perf_counter()
                    parts.append(piece)
            return first - t0, time.perf_counter() - t0, "".join(parts)

        return openai_async
    raise ValueError(f"unknown async streaming client {client!r}")


ASYNC_CLIENTS = ("irouter-async-chat", "openai-async")

Batch = Callable[[list[str]], Awaitable[list[Any]]]


def batch_runner(client: str, concurrency: int, base_url: str, api_key: str) -> Batch:
    """An async function sending every prompt (``[{"role": "user", ...}]``), at most ``concurrency`` at a time,
    and returning the answers in input order."""
    if client.endswith("-1pool"):
        # irouter's pools are made on first use with POOL_SHARDS clients each: one pool instead of the default 8
        import irouter._transport

        irouter._transport.POOL_SHARDS = 1
        client = client.removesuffix("-1pool")
    if client == "irouter-batch":
        from irouter import AsyncCall

        ask = AsyncCall(MODEL, base_url=base_url, api_key=api_key)

        async def irouter_batch(prompts: list[str]) -> list[Any]:
            return await ask.batch(prompts, concurrency=concurrency)

        return irouter_batch
    if client == "irouter-call-batch":
        from irouter import Call

        call = Call(MODEL, base_url=base_url, api_key=api_key)

        async def irouter_call_batch(prompts: list[str]) -> list[Any]:
            # the sync Call.batch (a thread per request in flight), from a worker thread of this event loop
            return await asyncio.to_thread(call.batch, prompts, concurrency)

        return irouter_call_batch
    if client == "openai-gather":
        from openai import AsyncOpenAI

        oai = AsyncOpenAI(base_url=base_url, api_key=api_key)

        async def openai_gather(prompts: list[str]) -> list[Any]:
            gate = asyncio.Semaphore(concurrency)

            async def one(prompt: str) -> Any:
                async with gate:
                    completion = await oai.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": prompt}]
                    )
                    return completion.choices[0].message.content

            return await asyncio.gather(*(one(p) for p in prompts))

        return openai_gather
    raise ValueError(f"unknown batch client {client!r}")


Turn = tuple[float, dict[str, str]]
"""(seconds to the first text of any model, {model: whole text})."""


def streamfan_sync(client: str, names: list[str], prompt: str, base_url: str, api_key: str) -> Callable[[], Turn]:
    """One streamed turn to every model of ``names``, consumed to the end."""
    if client == "irouter-chat":
        from irouter import Chat

        chat = Chat(names, base_url=base_url, api_key=api_key)

        def irouter_chat() -> Turn:
            chat.reset_history()
            t0 = time.perf_counter()
            first, parts = 0.0, {m: [] for m in names}
            for model, piece in chat(prompt, stream=True):
                if not first:
                    first = time.perf_counter()
                parts[model].append(piece)
            return first - t0, {m: "".join(p) for m, p in parts.items()}

        return irouter_chat
    if client == "openai-threads":
        oai = openai_client(base_url, api_key)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]

        def one(model: str, firsts: list[float]) -> str:
            parts = []
            for chunk in oai.chat.completions.create(model=model, messages=messages, stream=True):
                piece = _piece_of(chunk)
                if piece:
                    if not parts:
                        firsts.append(time.perf_counter())
                    parts.append(piece)
            return "".join(parts)

        def threads() -> Turn:
            t0 = time.perf_counter()
            firsts: list[float] = []
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                texts = dict(zip(names, pool.map(lambda m: one(m, firsts), names), strict=True))
            return min(firsts) - t0, texts

        return threads
    raise ValueError(f"unknown streaming fan-out client {client!r}")


def streamfan_async(
    client: str, names: list[str], prompt: str, base_url: str, api_key: str
) -> Callable[[], Awaitable[Turn]]:
    """`streamfan_sync` for the asyncio clients."""
    if client == "irouter-async-chat":
        from irouter import AsyncChat

        chat = AsyncChat(names, base_url=base_url, api_key=api_key)

        async def irouter_async() -> Turn:
            chat.reset_history()
            t0 = time.perf_counter()
            first, parts = 0.0, {m: [] for m in names}
            async for model, piece in chat(prompt, stream=True):
                if not first:
                    first = time.perf_counter()
                parts[model].append(piece)
            return first - t0, {m: "".join(p) for m, p in parts.items()}

        return irouter_async
    if client == "openai-async":
        from openai import AsyncOpenAI

        oai = AsyncOpenAI(base_url=base_url, api_key=api_key)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]

        async def one(model: str, firsts: list[float]) -> str:
            parts = []
            async for chunk in await oai.chat.completions.create(model=model, messages=messages, stream=True):
                piece = _piece_of(chunk)
                if piece:
                    if not parts:
                        firsts.append(time.perf_counter())
                    parts.append(piece)
            return "".join(parts)

        async def gathered() -> Turn:
            t0 = time.perf_counter()
            firsts: list[float] = []
            texts = await asyncio.gather(*(one(m, firsts) for m in names))
            return min(firsts) - t0, dict(zip(names, texts, strict=True))

        return gathered
    raise ValueError(f"unknown async streaming fan-out client {client!r}")


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
    """Import + construct + first answer in this fresh process (irouter defers ``import httpx2`` to here)."""
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


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) another process has used so far; ``None`` off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _spread(samples: list[float]) -> dict[str, float]:
    """Median, 10th and 90th percentile, in milliseconds."""
    deciles = statistics.quantiles(samples, n=10) if len(samples) > 1 else [samples[0]] * 9
    return {"median": statistics.median(samples) * 1e3, "p10": deciles[0] * 1e3, "p90": deciles[-1] * 1e3}


def ttft(args: argparse.Namespace) -> dict[str, Any]:
    """Time to the first text of a streamed request (and to its end), many requests after a warm-up."""
    prompt = stream_prompt(args.words)
    expected = f"{EXPECTED_PREFIX} {prompt}"
    samples: list[tuple[float, float, float]] = []

    def keep(cpu: float, got: Streamed) -> None:
        first, total, text = got
        if text != expected:
            raise RuntimeError(f"{args.client}: unexpected answer {text!r:.200}")
        samples.append((first, total, cpu))

    if args.client in ASYNC_CLIENTS:

        async def loop() -> None:
            one = ttft_async(args.client, prompt, args.base_url, args.api_key)
            for i in range(args.warmup + args.reps):
                if i == args.warmup:
                    gc.collect()
                cpu0 = time.process_time()
                got = await one()
                keep(time.process_time() - cpu0, got)

        asyncio.run(loop())
    else:
        one = ttft_sync(args.client, prompt, args.base_url, args.api_key)
        for i in range(args.warmup + args.reps):
            if i == args.warmup:
                gc.collect()
            cpu0 = time.process_time()
            got = one()
            keep(time.process_time() - cpu0, got)
    timed = samples[args.warmup :]  # every request was checked, warm-up ones included
    firsts, totals, cpus = (list(column) for column in zip(*timed, strict=True))
    return {
        "words": args.words,
        "pieces": args.words + 2,  # "You", " said:", then one piece per word
        "reps": len(timed),
        "ttft": _spread(firsts),
        "total": _spread(totals),
        "cpu_ms": statistics.median(cpus) * 1e3,
        "ttft_ms": [x * 1e3 for x in firsts],
        "total_ms": [x * 1e3 for x in totals],
        "cpu_ms_all": [x * 1e3 for x in cpus],
    }


def batch(args: argparse.Namespace) -> dict[str, Any]:
    """Requests per second for ``--n`` prompts sent through an async client, ``--concurrency`` at a time."""
    prompts = batch_prompts(args.n)

    def verify(answers: list[Any], sent: list[str]) -> None:
        for i, (answer, prompt) in enumerate(zip(answers, sent, strict=True)):
            if answer != f"{EXPECTED_PREFIX} {prompt}":
                raise RuntimeError(f"{args.client}: answer {i} is {answer!r:.200}")

    async def loop() -> list[dict[str, Any]]:
        run = batch_runner(args.client, args.concurrency, args.base_url, args.api_key)
        warm = prompts[: args.concurrency]  # opens the connections a batch of this width uses
        verify(await run(warm), warm)
        gc.collect()
        reps = []
        for _ in range(args.reps):
            server0 = process_cpu(args.server_pid) if args.server_pid else None
            wall0, cpu0 = time.perf_counter(), time.process_time()
            answers = await run(prompts)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            server1 = process_cpu(args.server_pid) if server0 is not None else None
            verify(answers, prompts)
            reps.append(
                {
                    "wall_s": wall,
                    "rps": len(prompts) / wall,
                    "cpu_s": cpu,
                    "server_cpu_s": None if server1 is None or server0 is None else server1 - server0,
                }
            )
        return reps

    reps = asyncio.run(loop())
    best = sorted(reps, key=lambda r: r["rps"])[len(reps) // 2]  # the median rep (upper median when even)
    return {"n": args.n, "concurrency": args.concurrency, "median": best, "reps": reps}


def streamfan(args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of one streamed turn to ``--models`` models at once, consumed to the end."""
    names = models(args.models)
    prompt = stream_prompt(args.words)
    expected = f"{EXPECTED_PREFIX} {prompt}"
    turns: list[tuple[float, float, float]] = []

    def keep(wall: float, cpu: float, got: Turn) -> None:
        first, texts = got
        bad = {m: t for m, t in texts.items() if t != expected}
        if bad or len(texts) != len(names):
            raise RuntimeError(f"{args.client}: unexpected answers {bad!r:.200}")
        turns.append((wall, cpu, first))

    if args.client in ASYNC_CLIENTS:

        async def loop() -> None:
            turn = streamfan_async(args.client, names, prompt, args.base_url, args.api_key)
            for i in range(1 + args.reps):  # the first turn warms up: imports, one connection per model
                if i == 1:
                    gc.collect()
                wall0, cpu0 = time.perf_counter(), time.process_time()
                got = await turn()
                keep(time.perf_counter() - wall0, time.process_time() - cpu0, got)

        asyncio.run(loop())
    else:
        turn = streamfan_sync(args.client, names, prompt, args.base_url, args.api_key)
        for i in range(1 + args.reps):
            if i == 1:
                gc.collect()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            got = turn()
            keep(time.perf_counter() - wall0, time.process_time() - cpu0, got)
    walls, cpus, firsts = (list(column) for column in zip(*turns[1:], strict=True))
    return {
        "models": args.models,
        "reps": len(walls),
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "first_s": statistics.median(firsts),
        "walls": walls,
        "pieces": args.models * (args.words + 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=("fanout", "overhead", "coldstart", "ttft", "batch", "streamfan"))
    parser.add_argument("--client", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1])
    parser.add_argument("--reps", type=int, default=3, help="fanout: timed turns per size (at most)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per size before stopping early")
    parser.add_argument("--warmup", type=int, default=3, help="overhead: untimed calls per size")
    parser.add_argument("--min-calls", type=int, default=10, help="overhead: timed calls per size, at least")
    parser.add_argument("--max-calls", type=int, default=400, help="overhead: timed calls per size, at most")
    parser.add_argument("--server-pid", type=int, default=0, help="the double's process id (to read its CPU)")
    parser.add_argument("--words", type=int, default=40, help="ttft/streamfan: words in the echoed message")
    parser.add_argument("--n", type=int, default=1000, help="batch: prompts per timed batch")
    parser.add_argument("--concurrency", type=int, default=64, help="batch: requests in flight at most")
    parser.add_argument("--models", type=int, default=16, help="streamfan: models per turn")
    args = parser.parse_args(argv)
    benches = {"fanout": fanout, "overhead": overhead, "coldstart": coldstart}
    benches.update({"ttft": ttft, "batch": batch, "streamfan": streamfan})
    result = benches[args.bench](args)
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
