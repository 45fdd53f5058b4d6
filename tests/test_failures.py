"""Failures without damage: retries, atomic turns, threads, saved chats, checked input, key hygiene."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irouter
from irouter import Call, Chat, history_to_markdown
from irouter.testing import DEFAULT_KEY, Error, OpenRouterDouble, Text, ToolCall

M = "openai/gpt-4o-mini"


# --------------------------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "failure",
    [
        Error(429, "Rate limit exceeded", retry_after=0.05),
        Error(429, "Rate limit exceeded"),  # no Retry-After: exponential backoff with jitter
        Error(500, "Internal"),
        Error(502, "Provider returned error"),
        Error(503, "Service temporarily unavailable", retry_after=0),
        Error(504, "Gateway timeout", retry_after=0),
        Error(408, "Operation timed out.", retry_after=0),
        Error(429, "Provider returned error", in_body=True),  # an error inside an HTTP 200 body
        Text("never arrives whole", drop_after=1),  # the connection drops mid-body
    ],
    ids=["429-retry-after", "429-backoff", "500", "502", "503", "504", "408", "200-body", "dropped"],
)
def test_transient_failures_are_retried(router: OpenRouterDouble, connect: dict, failure: Any) -> None:
    router.queue(failure, "Finally.")
    chat = Chat(M, **connect)
    assert chat("hi") == "Finally."
    assert len(router.chat_requests) == 2
    assert len(chat.history) == 3


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422])
def test_client_errors_are_never_retried(router: OpenRouterDouble, connect: dict, status: int) -> None:
    router.queue(Error(status, "no"), "should not be asked for")
    with pytest.raises(irouter.APIStatusError) as info:
        Chat(M, **connect)("hi")
    assert info.value.status == status
    assert len(router.chat_requests) == 1


def test_retries_run_out(router: OpenRouterDouble, connect: dict, caplog: pytest.LogCaptureFixture) -> None:
    router.queue(*[Error(503, "busy", retry_after=0)] * 5)
    with pytest.raises(irouter.ServerError):
        Chat(M, max_retries=3, **connect)("hi")
    assert len(router.chat_requests) == 4  # the first try and three retries
    assert "retry 3 of 3" in caplog.text
    router.reset()
    router.queue(Error(503, "busy", retry_after=0), "ok")
    with pytest.raises(irouter.ServerError):
        Chat(M, max_retries=3, **connect)("hi", max_retries=0)  # per call
    with pytest.raises(ValueError, match="max_retries"):
        Chat(M, max_retries=-1, **connect)


def test_timeouts_are_retried(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text("late", delay=1.0), "on time")
    chat = Chat(M, timeout=0.3, **connect)
    assert chat("hi") == "on time"
    assert len(router.chat_requests) == 2


def test_streams_retry_only_before_the_first_chunk(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(503, "busy", retry_after=0), "streamed fine")
    chat = Chat(M, **connect)
    assert "".join(chat("hi", stream=True)) == "streamed fine"
    router.reset()
    router.queue(Text("one two three four", drop_after=3), "a retry would say this")
    with pytest.raises(irouter.APIConnectionError) as info:
        list(chat("again", stream=True))
    assert info.value.partial_text == "one two"
    assert len(router.chat_requests) == 1  # text had been handed out: no silent retry


def test_async_retries(router: OpenRouterDouble, connect: dict) -> None:
    import asyncio

    router.queue(Error(429, "slow", retry_after=0), "async ok", Error(502, "x", retry_after=0), "stream ok")

    async def main() -> None:
        chat = irouter.AsyncChat(M, **connect)
        assert await chat("hi") == "async ok"
        assert "".join([p async for p in chat("hi", stream=True)]) == "stream ok"

    asyncio.run(main())
    assert len(router.chat_requests) == 4


# --------------------------------------------------------------------------------------------- atomic turns


def get_weather(city: str) -> str:
    """Weather."""
    return "sunny"


def test_dropped_connection_during_a_tool_loop(router: OpenRouterDouble, connect: dict) -> None:
    router.queue("hello")
    chat = Chat(M, max_retries=0, **connect)
    chat("first")
    before = json.dumps(chat.history)
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), Text("lost", drop_after=1))
    with pytest.raises(irouter.APIConnectionError):
        chat("weather?", tools=[get_weather])
    assert json.dumps(chat.history) == before
    assert len(router.chat_requests) == 3  # the tool step ran; the request after it was dropped
    assert router.chat_requests[-1]["messages"][-1]["role"] == "tool"


def test_ctrl_c_during_a_fan_out_commits_nothing(router: OpenRouterDouble, connect: dict) -> None:
    import os
    import signal
    import time

    router.queue(Text("slow a", delay=0.6), model="a/a")
    router.queue(Text("slow b", delay=0.6), model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        chat("hi")
    time.sleep(1.0)  # the requests still in flight finish now...
    assert chat.history == {"a/a": chat.history["a/a"][:1], "b/b": chat.history["b/b"][:1]}  # ...and are dropped
    assert chat("again") == {"a/a": "You said: again", "b/b": "You said: again"}


def test_one_chat_from_many_threads(router: OpenRouterDouble, connect: dict) -> None:
    chat = Chat(["a/a", "b/b"], **connect)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(15):
                chat(f"thread {n} turn {i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for model in ("a/a", "b/b"):
        history = chat.history[model]
        assert len(history) == 1 + 2 * 90
        pairs = list(zip(history[1::2], history[2::2], strict=True))
        assert all(u["role"] == "user" and a["role"] == "assistant" for u, a in pairs)
        assert all(a["content"] == f"You said: {u['content']}" for u, a in pairs)  # never interleaved
    assert len(chat.ledger) == 180  # no lost updates
    assert chat.usage["a/a"]["total_tokens"] == sum(e.total_tokens for e in chat.ledger if e.model == "a/a")


# --------------------------------------------------------------------------------------------- set_history


def test_set_history(router: OpenRouterDouble, connect: dict) -> None:
    chat = Chat(M, **connect)
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "now", "arguments": "{}"}}],
        },
        {"tool_call_id": "t1", "role": "tool", "content": "noon"},
        {"role": "assistant", "content": "It is noon."},
    ]
    chat.set_history(history)
    assert chat.history == history
    chat("thanks")
    assert router.chat_requests[-1]["messages"][:5] == history
    multi = Chat(["a/a", "b/b"], **connect)
    multi.set_history(history[:2], model="b/b")
    assert multi.history["b/b"] == history[:2]
    multi.set_history({"a/a": history[:1]})
    assert multi.history["a/a"] == history[:1]
    multi("go on")
    assert multi.history["b/b"][-1]["content"] == "You said: go on"


@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        ("not a list", TypeError, "list of message dicts"),
        ([["user", "hi"]], TypeError, r"history\[0\] must be a dict"),
        ([{"role": "robot", "content": "hi"}], ValueError, "role 'robot'"),
        ([{"role": "user"}], ValueError, "has no 'content'"),
        ([{"role": "tool", "content": "x"}], ValueError, "tool_call_id"),
        ([{"role": "assistant", "content": None}], ValueError, "neither 'content' nor 'tool_calls'"),
        ([{"role": "user", "content": 5}], TypeError, "string or a list"),
        ([{"role": "user", "content": "x", "when": object()}], TypeError, "not plain JSON"),
    ],
)
def test_set_history_checks(connect: dict, bad: Any, exc: type, match: str) -> None:
    chat = Chat(M, **connect)
    with pytest.raises(exc, match=match):
        chat.set_history(bad)
    assert chat.history == [{"role": "system", "content": "You are a helpful assistant."}]
    multi = Chat(["a/a", "b/b"], **connect)
    with pytest.raises(TypeError, match="several models"):
        multi.set_history([])
    with pytest.raises(ValueError, match="Not models of this chat"):
        multi.set_history({"c/c": []})


# --------------------------------------------------------------------------------------------- saved chats


def test_save_load_continue(router: OpenRouterDouble, connect: dict, tmp_path: Path) -> None:
    from .media import png

    chat = Chat(
        ["a/a", "b/b"],
        system="Be kind.",
        temperature=0.3,
        tools=[get_weather],
        max_cost=5.0,
        allow_unpriced=True,
        **connect,
    )
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), "Sunny.", model="a/a")
    chat(["look", png()])
    path = chat.save(tmp_path / "chats" / "trip.json")
    text = path.read_text()
    assert DEFAULT_KEY not in text
    assert [p.name for p in path.parent.iterdir()] == ["trip.json"]  # no temporary file left behind
    data = json.loads(text)
    assert data["unsaved_options"] == ["tools"]
    assert data["options"] == {"temperature": 0.3}
    loaded = Chat.load(path, api_key=router.api_key, tools=[get_weather])
    assert loaded.history == chat.history
    assert loaded.usage == chat.usage
    assert loaded.cost == chat.cost
    assert loaded.ledger == chat.ledger
    assert loaded.max_cost == 5.0
    assert loaded.base_url == router.base_url
    loaded("and tomorrow?")
    assert router.chat_requests[-1]["temperature"] == 0.3
    last = router.chat_requests[-1]
    saved = chat.history[last["model"]]
    assert last["messages"][: len(saved)] == saved  # the loaded chat goes on from the saved history
    with pytest.raises(ValueError, match="Not a saved irouter chat"):
        Chat.from_dict({"models": ["x"]}, api_key="k")


def test_fork_branches_the_conversation(router: OpenRouterDouble, connect: dict) -> None:
    chat = Chat(M, **connect)
    chat("shared start")
    branch = chat.fork()
    branch("only in the branch")
    chat("only in the original")
    assert branch.history[:3] == chat.history[:3]
    assert branch.history[3]["content"] == "only in the branch"
    assert chat.history[3]["content"] == "only in the original"
    assert len(branch.ledger) == len(chat.ledger) == 2
    assert repr(branch) != repr(object())


def test_history_to_markdown(router: OpenRouterDouble, connect: dict) -> None:
    from irouter.base import history_to_markdown as compat

    assert compat is history_to_markdown
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="c1")]), "Sunny in Oslo.")
    chat = Chat(M, **connect)
    chat(["Weather?", "https://example.org/map.png"], tools=[get_weather])
    assert history_to_markdown(chat.history) == (
        "**System:** You are a helpful assistant.\n\n"
        "**User:** Weather?\n[image: https://example.org/map.png]\n\n"
        '**Assistant** calls `get_weather({"city": "Oslo"})`\n\n'
        "**Tool (get_weather):** sunny\n\n"
        "**Assistant:** Sunny in Oslo."
    )
    multi = Chat(["a/a", "b/b"], **connect)
    multi("hi")
    text = history_to_markdown(multi)
    assert text.startswith("## a/a\n\n**System:**")
    assert "## b/b\n\n" in text


# --------------------------------------------------------------------------------------------- bad input


def test_typos_in_options_are_caught(router: OpenRouterDouble, connect: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", router.base_url)  # the double as OpenRouter: its fields are known
    monkeypatch.setenv("OPENROUTER_API_KEY", router.api_key)
    chat = Chat(M)
    with pytest.raises(TypeError, match="did you mean temperature="):
        chat("hi", temprature=0.2)
    with pytest.raises(TypeError, match="did you mean max_tokens="):
        Chat(M, max_token=10)
    with pytest.raises(TypeError, match="did you mean tools="):
        chat("hi", tool=[get_weather])
    assert router.chat_requests == []
    chat("hi", custom_provider_flag=True)  # unknown but not a typo of anything: sent as it is
    assert router.chat_requests[-1]["custom_provider_flag"] is True
    # another server has parameters of its own (vLLM's min_tokens, llama.cpp's repeat_penalty): no guessing there
    Chat(M, **connect)("hi", min_tokens=5, repeat_penalty=1.1)
    assert router.chat_requests[-1]["min_tokens"] == 5


def test_bad_arguments_everywhere(connect: dict) -> None:
    with pytest.raises(ValueError, match="max_steps"):
        Chat(M, max_steps=-1, **connect)
    with pytest.raises(TypeError, match="model"):
        Call(None, **connect)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        Call(M, **connect)("  ")


# --------------------------------------------------------------------------------------------- key hygiene


def test_the_key_never_shows(
    router: OpenRouterDouble, connect: dict, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="irouter")
    router.queue(Error(401, "User not found."), Error(503, "busy", retry_after=0), "ok")
    chat = Chat(M, **connect)
    seen = [repr(chat), str(chat), repr(chat._endpoint), repr(vars(chat)), repr(Call(M, **connect))]
    for _ in range(2):
        try:
            chat("hi")
        except irouter.IrouterError as exc:
            seen += [str(exc), repr(exc), repr(vars(exc)), str(exc.__cause__)]
    chat("hi")
    seen += [repr(e) for e in chat.ledger]
    seen.append(chat.save(tmp_path / "c.json").read_text())
    seen.append(json.dumps(chat.to_dict()))
    seen.append(caplog.text)
    assert "retry 1 of 2" in caplog.text  # the log did record things
    for text in seen:
        assert DEFAULT_KEY not in text
        assert DEFAULT_KEY[10:30] not in text


# --------------------------------------------------------------------------------------------- properties

texts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
parts = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(
        lambda u: {"type": "image_url", "image_url": {"url": f"https://example.org/{u}.png"}},
        st.text("abc", min_size=1, max_size=5),
    ),
)
messages = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, texts),
    st.builds(lambda ps: {"role": "user", "content": ps}, st.lists(parts, min_size=1, max_size=3)),
    st.builds(lambda t: {"role": "assistant", "content": t}, texts),
    st.builds(lambda t, r: {"role": "assistant", "content": t, "reasoning": r}, texts, texts),
    st.builds(lambda t: {"tool_call_id": "c1", "role": "tool", "content": t}, texts),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(messages, max_size=8), system=st.one_of(st.none(), texts))
def test_save_load_save_is_byte_identical(tmp_path: Path, history: list, system: str | None) -> None:
    chat = Chat(["a/a", "b/b"], system=system, base_url="http://127.0.0.1:9/api/v1", api_key="k", seed=7)
    chat.set_history({"a/a": history})
    first = chat.save(tmp_path / "one.json").read_bytes()
    again = Chat.load(tmp_path / "one.json", api_key="k").save(tmp_path / "two.json").read_bytes()
    assert first == again
    assert json.loads(first)["history"]["a/a"] == history


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outcomes=st.lists(st.sampled_from(["ok", "http", "body", "drop", "stream-drop"]), min_size=1, max_size=6))
def test_failed_turns_leave_no_trace(router: OpenRouterDouble, connect: dict, outcomes: list[str]) -> None:
    """Any sequence of successful and failed turns leaves the history of the successful turns alone."""
    chat = Chat(M, max_retries=0, **connect)
    expected = list(chat.history)
    for i, outcome in enumerate(outcomes):
        message = f"turn {i}"
        failure = {
            "http": Error(500, "x"),
            "body": Error(502, "y", in_body=True),
            "drop": Text("z", drop_after=0),
            "stream-drop": Text("a b c", drop_after=2),
        }.get(outcome)
        if failure is not None:
            router.queue(failure)
            with pytest.raises(irouter.APIError):  # noqa: PT012 - one of two ways to fail
                if outcome == "stream-drop":
                    list(chat(message, stream=True))
                else:
                    chat(message)
        else:
            chat(message)
            expected += [{"role": "user", "content": message}, {"role": "assistant", "content": f"You said: {message}"}]
        assert chat.history == expected


def test_one_async_chat_from_many_tasks(router: OpenRouterDouble, connect: dict) -> None:
    import asyncio

    async def main() -> irouter.AsyncChat:
        chat = irouter.AsyncChat(M, **connect)
        await asyncio.gather(*(chat(f"task {n}") for n in range(40)))
        return chat

    chat = asyncio.run(main())
    history = chat.history
    assert len(history) == 1 + 80
    for question, answer in zip(history[1::2], history[2::2], strict=True):
        assert answer["content"] == f"You said: {question['content']}"  # turns never interleave
    assert len(chat.ledger) == 40


def test_irouters_own_options_never_reach_the_server(router: OpenRouterDouble, connect: dict) -> None:
    with pytest.raises(TypeError, match="budgets belong to a Chat"):
        Call(M, max_cost=0.0, **connect)
    with pytest.raises(TypeError, match="budgets belong to a Chat"):
        Chat(M, **connect)("hi", max_cost=0)
    with pytest.raises(TypeError, match="pass stream=True to a call"):
        Chat(M, stream=True, **connect)
    with pytest.raises(TypeError, match="pass raw=True to a call"):
        Call(M, raw=True, **connect)
    assert router.requests == []
    chat = Chat(M, max_cost=1.0, max_total_tokens=100, max_tokens=10, allow_unpriced=False, **connect)
    chat("hi")
    assert not {"max_cost", "max_total_tokens", "allow_unpriced", "stream", "raw"} & set(router.chat_requests[-1])


def test_ctrl_c_during_a_fan_out_lets_the_process_exit(router: OpenRouterDouble) -> None:
    """Requests still in flight after Ctrl-C must not hold the process open until they finish (20 s here)."""
    import subprocess
    import sys

    router.queue(Text("slow", delay=20), model="a/a")
    router.queue(Text("slow", delay=20), model="b/b")
    script = (
        "import os, signal, threading, irouter\n"
        f"chat = irouter.Chat(['a/a', 'b/b'], base_url={router.base_url!r}, api_key={router.api_key!r})\n"
        "threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "try:\n    chat('hi')\nexcept KeyboardInterrupt:\n    print('interrupted', flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "interrupted"
    assert out.returncode == 0


def test_streams_retry_errors_that_come_before_any_text(router: OpenRouterDouble, connect: dict) -> None:
    """An error chunk (or a dropped connection) before the first text is retried like a failed request; the
    same reply after text has been handed out is not (see test_streams_retry_only_before_the_first_chunk)."""
    import asyncio

    router.queue(Error(502, "Provider returned error", in_body=True), Text("x", drop_after=1), "recovered")
    chat = Chat(M, **connect)
    assert "".join(chat("hi", stream=True)) == "recovered"
    assert len(router.chat_requests) == 3
    assert len(chat.history) == 3

    router.reset()
    router.queue(Error(502, "Provider returned error", in_body=True), "async recovered")

    async def main() -> str:
        achat = irouter.AsyncChat(M, **connect)
        return "".join([piece async for piece in achat("hi", stream=True)])

    assert asyncio.run(main()) == "async recovered"
