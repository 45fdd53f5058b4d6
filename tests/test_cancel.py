"""Ctrl-C and cancellation: one cancel signal per call stops every model's work, an interrupted turn is kept for
no model (money spent is still counted), and misuse that used to hang (a tool calling its own chat, an async
stream made outside an event loop, async hooks in a sync chat) is refused with a clear error."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import irouter
from irouter import AsyncCall, AsyncChat, Call, Chat
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall

PRIOR = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "before"}]


def settle(before: set[int], timeout: float = 10.0) -> None:
    """Wait until every irouter worker thread started since ``before`` has ended (abandoned requests included)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [t for t in threading.enumerate() if t.name.startswith("irouter") and t.ident not in before]
        if not alive:
            return
        assert time.monotonic() < deadline, f"workers still running: {[t.name for t in alive]}"
        time.sleep(0.02)


def irouter_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("irouter") and t.ident is not None}


# --------------------------------------------------------------------------------------------- the property


@dataclass
class Scenario:
    """Several models in tool loops (``steps[i]`` tool steps, then an answer). Model ``victim`` is interrupted in
    its ``at``-th tool while every other model ``j`` is held at ``holds[j]``: inside its r-th request (the double
    keeps it waiting), inside its t-th tool, or already finished."""

    steps: list[int]
    victim: int
    at: int
    holds: dict[int, tuple[str, int]]

    models: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.models = [f"m{i}/x" for i in range(len(self.steps))]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(2, 3))
    steps = [draw(st.integers(0, 2)) for _ in range(n)]
    victim = draw(st.integers(0, n - 1))
    steps[victim] = max(steps[victim], 1)
    at = draw(st.integers(1, steps[victim]))
    holds = {}
    for j in range(n):
        if j != victim:
            points = [("request", r) for r in range(1, steps[j] + 2)] + [("tool", t) for t in range(1, steps[j] + 1)]
            holds[j] = draw(st.sampled_from([*points, ("done", 0)]))
    return Scenario(steps, victim, at, holds)


class Run:
    """One scenario against a double: the responder, the tools, and what was seen when the interrupt came."""

    def __init__(self, router: OpenRouterDouble, sc: Scenario, asynchronous: bool) -> None:
        self.router, self.sc, self.asynchronous = router, sc, asynchronous
        self.gate = threading.Event()  # releases every held request and tool
        self.ready = threading.Semaphore(0)  # one release per model that reached its hold
        self.interrupted = threading.Event()
        self.lock = threading.Lock()
        self.requests: dict[int, int] = {}
        self.tool_calls: dict[int, int] = {}
        self.tool_starts = 0
        self.snapshot: dict[str, int] = {}
        self.inject: Callable[[], Any] = lambda: None
        self.chat: Any = None
        router.default = self.respond

    def respond(self, body: dict[str, Any]) -> Text:
        i = self.sc.models.index(body["model"])
        with self.lock:
            k = self.requests[i] = self.requests.get(i, 0) + 1
        if self.sc.holds.get(i) == ("request", k):
            self.ready.release()
            self.gate.wait(20)
        if k <= self.sc.steps[i]:
            return Text(tool_calls=[ToolCall(f"t{i}", {})])
        return Text(f"answer {i}")

    def _count(self, i: int) -> int:
        with self.lock:
            c = self.tool_calls[i] = self.tool_calls.get(i, 0) + 1
            self.tool_starts += 1
        return c

    def _take_snapshot(self) -> None:
        self.snapshot = {"requests": len(self.router.requests), "tools": self.tool_starts}
        self.interrupted.set()

    def _others_done(self) -> bool:
        """Every model meant to be finished has its last request in the ledger."""
        done = [j for j, hold in self.sc.holds.items() if hold[0] == "done"]
        entries = [e.model for e in self.chat.ledger]
        return all(entries.count(self.sc.models[j]) == self.sc.steps[j] + 1 for j in done)

    def _others_held(self) -> int:
        return sum(1 for hold in self.sc.holds.values() if hold[0] != "done")

    def tools(self) -> list[Callable[..., Any]]:
        return [self._sync_tool(i) if not self.asynchronous else self._async_tool(i) for i in range(len(self.steps))]

    @property
    def steps(self) -> list[int]:
        return self.sc.steps

    def _sync_tool(self, i: int) -> Callable[[], str]:
        def tool() -> str:
            c = self._count(i)
            if i == self.sc.victim and c == self.sc.at:
                for _ in range(self._others_held()):
                    assert self.ready.acquire(timeout=20)
                wait_for(self._others_done)
                self._take_snapshot()
                self.inject()
            if self.sc.holds.get(i) == ("tool", c):
                self.ready.release()
                self.gate.wait(20)
            return "ok"

        tool.__name__, tool.__doc__ = f"t{i}", "One step."
        return tool

    def _async_tool(self, i: int) -> Callable[[], Any]:
        async def tool() -> str:
            c = self._count(i)
            if i == self.sc.victim and c == self.sc.at:
                for _ in range(self._others_held()):
                    while not self.ready.acquire(blocking=False):
                        await asyncio.sleep(0.005)
                while not self._others_done():
                    await asyncio.sleep(0.005)
                self._take_snapshot()
                await self.inject()
            if self.sc.holds.get(i) == ("tool", c):
                self.ready.release()
                while not self.gate.is_set():
                    await asyncio.sleep(0.005)
            return "ok"

        tool.__name__, tool.__doc__ = f"t{i}", "One step."
        return tool

    def held_in_requests(self) -> int:
        return sum(1 for hold in self.sc.holds.values() if hold[0] == "request")


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.05)  # a finished model's turn reaches the caller right after its last request is recorded


def interrupt() -> None:
    raise KeyboardInterrupt


def drive(run: Run, flavour: str, how: str) -> str:
    """Run the scenario's call in the given flavour; return how it ended."""
    chat = run.chat
    tools = run.tools()
    if flavour == "plain":
        run.inject = interrupt
        try:
            chat("go", tools=tools)
        except KeyboardInterrupt:
            return "KeyboardInterrupt"
        return "returned"
    if flavour == "stream":
        stream = chat("go", tools=tools, stream=True)
        run.inject = interrupt if how == "interrupt" else stream.close
        try:
            for _ in stream:
                pass
        except KeyboardInterrupt:
            return "KeyboardInterrupt"
        return "ended"

    async def main() -> str:
        outer = asyncio.current_task()
        assert outer is not None

        async def inject() -> None:
            if how == "interrupt":
                raise KeyboardInterrupt
            outer.cancel()
            await asyncio.sleep(5)

        run.inject = inject
        try:
            if flavour == "async":
                await chat("go", tools=tools)
            else:
                async for _ in chat("go", tools=tools, stream=True):
                    pass
        except asyncio.CancelledError:
            return "CancelledError"
        return "returned"

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return "KeyboardInterrupt"


VARIANTS = [
    ("plain", "interrupt", "KeyboardInterrupt"),
    ("stream", "interrupt", "KeyboardInterrupt"),
    ("stream", "close", "ended"),
    ("async", "interrupt", "KeyboardInterrupt"),
    ("async", "cancel", "CancelledError"),
    ("async-stream", "interrupt", "KeyboardInterrupt"),
    ("async-stream", "cancel", "CancelledError"),
]


@pytest.mark.parametrize(("flavour", "how", "expected"), VARIANTS, ids=[f"{f}-{h}" for f, h, _ in VARIANTS])
@settings(max_examples=6, deadline=None)
@given(sc=scenarios())
def test_an_interrupted_multi_model_tool_loop_stops_everything_and_keeps_nothing(
    flavour: str, how: str, expected: str, sc: Scenario
) -> None:
    asynchronous = flavour.startswith("async")
    with OpenRouterDouble() as router:
        run = Run(router, sc, asynchronous)
        cls = AsyncChat if asynchronous else Chat
        run.chat = chat = cls(sc.models, base_url=router.base_url, api_key=router.api_key, max_retries=0)
        chat.set_history(dict.fromkeys(sc.models, PRIOR))
        before = json.dumps(chat.history)
        threads = irouter_threads()
        ended: list[str] = []
        caller = threading.Thread(target=lambda: ended.append(drive(run, flavour, how)))
        caller.start()
        assert run.interrupted.wait(30), "the scenario never reached its interrupt"
        caller.join(30)
        assert ended == [expected]  # Ctrl-C stays KeyboardInterrupt: never a MultiModelError
        run.gate.set()  # the requests and tools held at the interrupt may finish now...
        settle(threads)
        assert len(router.requests) == run.snapshot["requests"]  # ...but nothing new starts, for any model
        assert run.tool_starts == run.snapshot["tools"]
        assert json.dumps(chat.history) == before  # kept for no model, whoever had finished
        completed = run.snapshot["requests"] - run.held_in_requests()
        assert completed <= len(chat.ledger) <= len(router.requests)  # money spent is still counted
        assert sum(e.total_tokens for e in chat.ledger) == sum(u["total_tokens"] for u in chat.usage.values())


# --------------------------------------------------------------------------------------------- Ctrl-C for real


def test_ctrl_c_during_a_fan_out_stops_the_other_models_tool_loops(router: OpenRouterDouble, connect: dict) -> None:
    """The review's case: one model in a fast tool loop, one slow; a real SIGINT; afterwards no request and no
    tool starts, histories are as before, and the next turn goes through."""
    started: list[float] = []

    def step() -> str:
        """One step."""
        started.append(time.time())
        return "ok"

    for _ in range(40):
        router.queue(Text(tool_calls=[ToolCall("step", {})], delay=0.05), model="a/a")
    router.queue(Text("slow", delay=3), model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    threads = irouter_threads()
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        chat("go", tools=[step])
    stopped = time.time()
    timer.join()
    assert started  # the loop was under way
    settle(threads)
    # A request sent just before Ctrl-C may reach the double just after; nothing may follow it (the loop had
    # 35 more steps to go). The exact statement is the property test above, where the timing is controlled.
    assert len([r for r in router.requests if r.time > stopped]) <= 1
    assert len([t for t in started if t > stopped]) <= 1
    assert len(router.requests) < 10
    assert chat.history == {"a/a": chat.history["a/a"][:1], "b/b": chat.history["b/b"][:1]}
    assert len(chat.ledger) >= len(router.requests) - 2  # at most the two requests in flight went unrecorded
    router.reset()
    assert chat("again") == {"a/a": "You said: again", "b/b": "You said: again"}


def test_ctrl_c_during_a_batch_stops_its_tool_loops(router: OpenRouterDouble, connect: dict) -> None:
    """Every prompt runs a tool loop of four requests; after Ctrl-C neither the prompts in flight go on with their
    loops nor do the prompts waiting for a slot start."""

    def respond(body: dict[str, Any]) -> Text:
        if sum(m["role"] == "tool" for m in body["messages"]) < 3:
            return Text(tool_calls=[ToolCall("step", {})], delay=0.15)
        return Text("done")

    def step() -> str:
        """One step."""
        return "ok"

    router.default = respond
    threads = irouter_threads()
    timer = threading.Timer(0.25, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        Call("m/m", tools=[step], **connect).batch([f"prompt {n}" for n in range(8)], concurrency=2)
    timer.join()
    settle(threads)
    assert len(router.chat_requests) <= 4  # two prompts in flight, at most two requests each by then (of 32)


def test_ctrl_c_in_a_tool_of_a_batch_stops_the_batch_at_once(router: OpenRouterDouble, connect: dict) -> None:
    """A tool of the second prompt raises KeyboardInterrupt while the first prompt's answer is still coming: the
    batch raises it then (not once the first prompt is done), and no prompt waiting for a slot is sent."""

    def stop() -> str:
        """Stop."""
        raise KeyboardInterrupt

    def respond(body: dict[str, Any]) -> Text:
        if body["messages"][-1]["content"] == "prompt 0":
            return Text("slow", delay=5)
        return Text(tool_calls=[ToolCall("stop", {})], delay=0.2)

    router.default = respond
    threads = irouter_threads()
    with pytest.raises(KeyboardInterrupt):
        Call("m/m", tools=[stop], **connect).batch([f"prompt {n}" for n in range(20)], concurrency=2)
    returned = time.time()  # the double's clock
    assert sorted(body["messages"][-1]["content"] for body in router.chat_requests) == ["prompt 0", "prompt 1"]
    assert (
        returned < min(r.time for r in router.requests) + 4
    )  # it did not wait for the slow first prompt's answer (5 s)
    settle(threads)
    assert len(router.chat_requests) == 2


@pytest.mark.parametrize("stream", [False, True])
def test_ctrl_c_in_one_tool_of_a_step_does_not_wait_for_the_others(
    router: OpenRouterDouble, connect: dict, stream: bool
) -> None:
    """Two calls in one step run at once; one raises KeyboardInterrupt while the other still works (a tool cannot
    be stopped from outside): the call raises at once and sends nothing more, the slow tool finishes unseen."""
    release, ended = threading.Event(), threading.Event()

    def slow() -> str:
        """Slow."""
        release.wait(10)
        ended.set()
        return "done"

    def stop() -> str:
        """Stop."""
        raise KeyboardInterrupt

    router.queue(Text(tool_calls=[ToolCall("slow", {}), ToolCall("stop", {})]), "never")
    chat = Chat("m/m", **connect)

    def ask() -> None:
        reply = chat("go", tools=[slow, stop], stream=stream)
        if stream:
            list(reply)

    with pytest.raises(KeyboardInterrupt):
        ask()
    assert not ended.is_set()  # raised while the slow tool was still running
    release.set()
    assert len(router.chat_requests) == 1
    assert [m["role"] for m in chat.history] == ["system"]  # the turn was kept nowhere
    assert chat.history == chat.history[:1]


def test_ctrl_c_in_a_tool_of_a_multi_model_stream_is_keyboard_interrupt(
    router: OpenRouterDouble, connect: dict
) -> None:
    def stop() -> str:
        """Stop."""
        raise KeyboardInterrupt

    router.queue(Text(tool_calls=[ToolCall("stop", {})]), model="a/a")
    router.queue("b answers", model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    with pytest.raises(KeyboardInterrupt):
        for _ in chat("go", tools=[stop], stream=True):
            pass
    assert chat.history == {"a/a": chat.history["a/a"][:1], "b/b": chat.history["b/b"][:1]}

    async def main() -> None:
        achat = AsyncChat(["a/a", "b/b"], **connect)
        router.queue(Text(tool_calls=[ToolCall("stop", {})]), model="a/a")
        async for _ in achat("go", tools=[stop], stream=True):
            pass

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())


def test_a_finished_model_is_not_kept_when_the_call_is_interrupted(router: OpenRouterDouble, connect: dict) -> None:
    """The fast model's turn ended before Ctrl-C (or the stream was closed); the turn is aborted as a whole, so
    it is not kept either, and its cost is still counted."""
    router.queue("fast", model="a/a")
    router.queue(Text("slow", delay=3), model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    timer = threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        chat("go")
    timer.join()
    assert chat.history == {"a/a": chat.history["a/a"][:1], "b/b": chat.history["b/b"][:1]}
    assert [e.model for e in chat.ledger] == ["a/a"]

    router.reset()
    router.queue("fast", model="a/a")
    router.queue(Text("b1 b2 b3 b4 b5 b6", chunk_delay=0.2), model="b/b")
    threads = irouter_threads()
    with chat("go", stream=True) as stream:
        for _ in stream:
            if "a/a" in stream.finished:
                break
    assert stream.finished == ["a/a"]
    settle(threads)
    assert chat.history == {"a/a": chat.history["a/a"][:1], "b/b": chat.history["b/b"][:1]}
    assert [e.model for e in chat.ledger] == ["a/a", "a/a"]


# --------------------------------------------------------------------------------------------- re-entrancy


@pytest.mark.timeout(20)
def test_a_tool_calling_its_own_chat_is_refused(router: OpenRouterDouble, connect: dict) -> None:
    chat = Chat("m/m", **connect)
    asked: list[str] = []

    def lookup(term: str) -> str:
        """Look a term up."""
        asked.append(chat(f"define {term}"))
        return "ok"

    calls = [ToolCall("lookup", {"term": "a"}), ToolCall("lookup", {"term": "b"})]  # two calls in one step
    router.queue(Text(tool_calls=calls))
    with pytest.raises(RuntimeError, match=r"chat\.fork\(\)"):
        chat("go", tools=[lookup])
    assert asked == []
    assert len(router.chat_requests) == 1
    assert len(chat.history) == 1

    def side(term: str) -> str:
        """Ask on the side."""
        return str(chat.fork()(f"define {term}"))

    router.queue(Text(tool_calls=[ToolCall("side", {"term": "a"}), ToolCall("side", {"term": "b"})]), "x", "x", "done")
    assert chat("go", tools=[side]) == "done"
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "tool", "tool", "assistant"]


@pytest.mark.timeout(20)
def test_an_async_tool_calling_its_own_chat_is_refused(router: OpenRouterDouble, connect: dict) -> None:
    async def main() -> None:
        chat = AsyncChat(["a/a", "b/b"], **connect)

        async def lookup(term: str) -> str:
            """Look a term up."""
            return str(await chat(f"define {term}"))

        calls = [ToolCall("lookup", {"term": "a"}), ToolCall("lookup", {"term": "b"})]
        router.queue(Text(tool_calls=calls), model="a/a")
        router.queue("b answers", model="b/b")
        with pytest.raises(irouter.MultiModelError) as info:
            await chat("go", tools=[lookup])
        assert "chat.fork()" in str(info.value.errors["a/a"])
        assert isinstance(info.value.errors["a/a"], RuntimeError)
        assert len(chat.history["a/a"]) == 1
        assert len(chat.history["b/b"]) == 3  # the other model's answer is kept, as for any model error

        async def side(term: str) -> str:
            """Ask on the side."""
            return str(await chat.fork()(f"define {term}"))

        router.queue(Text(tool_calls=[ToolCall("side", {"term": "a"})]), "x", "done", model="a/a")
        router.queue("b again", model="b/b")
        assert (await chat("go", tools=[side]))["a/a"] == "done"

    asyncio.run(main())


# --------------------------------------------------------------------------------------------- async misuse


def test_an_async_stream_made_outside_an_event_loop_is_refused(router: OpenRouterDouble, connect: dict) -> None:
    for client in (AsyncChat("m/m", **connect), AsyncCall(["a/a", "b/b"], **connect)):
        with pytest.raises(RuntimeError, match="inside a running event loop"):
            client("hi", stream=True)
    assert router.requests == []


def test_async_hooks_are_awaited_in_async_chats(router: OpenRouterDouble, connect: dict) -> None:
    ran: list[str] = []
    seen: list[str] = []

    def delete_everything() -> str:
        """Delete everything."""
        ran.append("deleted")
        return "deleted"

    async def refuse(call: irouter.ToolCall) -> bool:
        await asyncio.sleep(0)
        return call.name != "delete_everything"

    async def after(result: irouter.ToolResult) -> None:
        await asyncio.sleep(0)
        seen.append(result.content)

    delete = Text(tool_calls=[ToolCall("delete_everything", {})])
    router.queue(delete, "fine", delete, "ok")

    async def main() -> None:
        chat = AsyncChat("m/m", **connect)
        assert await chat("go", tools=[delete_everything], before_tool=refuse, after_tool=after) == "fine"
        assert await AsyncCall("m/m", **connect)("go", tools=[delete_everything], before_tool=refuse) == "ok"

    asyncio.run(main())
    assert ran == []
    assert seen == ["Error: the user refused to run delete_everything."]
    assert router.chat_requests[1]["messages"][-1]["content"] == seen[0]


def test_async_hooks_are_refused_by_sync_chats(router: OpenRouterDouble, connect: dict) -> None:
    async def hook(call: Any) -> bool:
        return False

    def get_time() -> str:
        """The time."""
        return "noon"

    for cls in (Chat, Call):
        with pytest.raises(TypeError, match="before_tool is an async function"):
            cls("m/m", before_tool=hook, **connect)
        with pytest.raises(TypeError, match="after_tool is an async function"):
            cls("m/m", **connect)("hi", tools=[get_time], after_tool=hook)
    assert router.requests == []

    # a plain function that hands back an awaitable is refused when it does, before the tool runs
    router.queue(Text(tool_calls=[ToolCall("get_time", {})]))
    chat = Chat("m/m", **connect)
    with pytest.raises(TypeError, match="before_tool returned an awaitable"):
        chat("hi", tools=[get_time], before_tool=lambda call: hook(call))
    assert len(chat.history) == 1


# --------------------------------------------------------------------------------------------- async: money in flight


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["cancel", "interrupt"])
def test_an_async_request_in_flight_at_a_cancel_is_counted_when_it_ends(
    router: OpenRouterDouble, connect: dict, how: str
) -> None:
    """As in a sync chat, a request in flight when the task is cancelled (or a tool of another model raises
    ``KeyboardInterrupt``) is abandoned, not cancelled: control comes back at once, and when the request ends on
    the still running event loop its usage and cost are recorded; nothing else is sent and no history changes."""
    held, gate = threading.Event(), threading.Event()

    def respond(body: dict[str, Any]) -> Text:
        if body["model"] == "b/b":
            held.set()
            gate.wait(20)
            return Text("slow")
        return Text(tool_calls=[ToolCall("stop", {})])

    async def stop() -> str:
        """Stop."""
        while not held.is_set():
            await asyncio.sleep(0.005)
        if how == "interrupt":
            raise KeyboardInterrupt
        await asyncio.sleep(20)  # the task is cancelled from outside meanwhile
        return "ok"

    router.default = respond
    chat = AsyncChat(["a/a", "b/b"], **connect)
    chat.set_history({"a/a": PRIOR, "b/b": PRIOR})
    before = json.dumps(chat.history)
    loop = asyncio.new_event_loop()
    try:
        call = loop.create_task(chat("go", tools=[stop]))

        async def cancel_when_held() -> None:
            while not held.is_set():
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # a/a is inside its tool
            call.cancel()

        canceller = loop.create_task(cancel_when_held()) if how == "cancel" else None
        # KeyboardInterrupt leaves the loop from the task that raised it (asyncio re-raises it), then from the
        # call's task; the loop itself goes on, as in a notebook after Ctrl-C.
        ended = []
        for _ in range(3):
            try:
                loop.run_until_complete(call)
            except (KeyboardInterrupt, asyncio.CancelledError) as exc:
                ended.append(type(exc).__name__)
            if call.done():
                break
        assert ended[-1] == ("KeyboardInterrupt" if how == "interrupt" else "CancelledError")
        assert canceller is None or canceller.done()
        assert [e.model for e in chat.ledger] == ["a/a"]  # b/b is still in flight
        sent = len(router.requests)
        assert sent == 2

        async def after() -> None:
            gate.set()  # the held request ends now, on the loop that goes on
            deadline = time.monotonic() + 10
            while len(chat.ledger) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

        loop.run_until_complete(after())
    finally:
        gate.set()
        loop.run_until_complete(chat.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert [e.model for e in chat.ledger] == ["a/a", "b/b"]  # the abandoned request's money is counted
    assert chat.usage["b/b"]["total_tokens"] == chat.ledger[1].total_tokens > 0
    assert chat.cost["b/b"] == chat.ledger[1].cost is not None
    assert json.dumps(chat.history) == before  # kept for no model
    assert len(router.requests) == sent  # nothing new was sent


@pytest.mark.timeout(60)
def test_an_abandoned_async_request_that_fails_is_not_retried(
    router: OpenRouterDouble, connect: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """The request left in flight by a cancel fails with a retryable error: no retry goes out (the call was
    cancelled), nothing is recorded, and its reservation is released."""
    held, gate = threading.Event(), threading.Event()

    def respond(body: dict[str, Any]) -> Error | Text:
        if len(router.requests) > 1:
            return Text("a second request")
        held.set()
        gate.wait(20)
        return Error(503)

    router.default = respond
    chat = AsyncChat("b/b", max_retries=2, max_tokens=1000, max_total_tokens=1500, **connect)

    async def main() -> None:
        call = asyncio.ensure_future(chat("go"))
        while not held.is_set():
            await asyncio.sleep(0.005)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        gate.set()
        while len(asyncio.all_tasks()) > 1:  # the abandoned request ends in the background
            await asyncio.sleep(0.01)
        assert len(router.requests) == 1
        assert chat.ledger == []
        router.default = lambda body: Text("next")
        assert await chat("again") == "next"  # its reservation (1000 of 1500 tokens) was released
        await chat.aclose()

    try:
        asyncio.run(main())
    finally:
        gate.set()
    assert [r.json["messages"][-1]["content"] for r in router.requests] == ["go", "again"]
    assert [r.message for r in caplog.records if r.name == "asyncio"] == []  # its error is nobody's business


@pytest.mark.timeout(60)
def test_an_abandoned_async_request_is_dropped_quietly_when_the_loop_closes(
    router: OpenRouterDouble, connect: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """``asyncio.run`` ends while the abandoned request is still in flight: the request is cancelled with the
    loop, nothing is recorded, its reservation is released, and nothing is logged or warned."""
    held, gate = threading.Event(), threading.Event()

    def respond(body: dict[str, Any]) -> Text:
        if body["messages"][-1]["content"] == "go":
            held.set()
            gate.wait(20)
        return Text("answer")

    router.default = respond
    chat = AsyncChat("b/b", max_tokens=1000, max_total_tokens=1500, **connect)
    before = json.dumps(chat.history)

    async def main() -> None:
        call = asyncio.ensure_future(chat("go"))
        while not held.is_set():
            await asyncio.sleep(0.005)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    try:
        asyncio.run(main())  # returns at once: the loop's shutdown cancels the request left in flight
    finally:
        gate.set()
    assert chat.ledger == []
    assert json.dumps(chat.history) == before

    async def again() -> str:
        try:
            answer: str = await chat("again")  # the reservation of the dropped request was released
        finally:
            await chat.aclose()
        return answer

    assert asyncio.run(again()) == "answer"
    assert [r.message for r in caplog.records if r.name == "asyncio"] == []


@pytest.mark.timeout(60)
def test_a_cancelled_async_batch_tries_no_abandoned_request_again(
    router: OpenRouterDouble, connect: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch task cancelled while its requests are in flight: they end in the background, and one that fails
    with a retryable error is not tried again."""
    held, gate = threading.Event(), threading.Event()

    def respond(body: dict[str, Any]) -> Error:
        held.set()
        gate.wait(20)
        return Error(503, retry_after=0.01)

    router.default = respond
    call = AsyncCall("b/b", max_retries=2, **connect)

    async def main() -> None:
        batch = asyncio.ensure_future(call.batch(["one"]))
        while not held.is_set():
            await asyncio.sleep(0.005)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        gate.set()
        while len(asyncio.all_tasks()) > 1:  # the abandoned request ends in the background
            await asyncio.sleep(0.01)
        await call.aclose()

    try:
        asyncio.run(main())
    finally:
        gate.set()
    assert len(router.requests) == 1
    assert [r.message for r in caplog.records if r.name == "asyncio"] == []
