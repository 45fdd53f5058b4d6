"""Streaming over HTTP: text as it arrives, one model and many, tool loops, failures, cancelling."""

from __future__ import annotations

import threading
import time

import pytest

import irouter
from irouter import Call, Chat
from irouter.testing import Error, OpenRouterDouble, Raw, Text, ToolCall

from .conftest import SAMPLES

M = "openai/gpt-4o-mini"


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def test_one_model_streams_text_and_leaves_the_same_state(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text("The quick brown fox", usage=usage(9, 4)), Text("The quick brown fox", usage=usage(9, 4)))
    streamed, plain = Chat(M, **connect), Chat(M, **connect)
    stream = streamed("Tell me", stream=True)
    pieces = list(stream)
    assert pieces == ["The", " quick", " brown", " fox"]
    assert stream.result == stream.text == "The quick brown fox"
    assert plain("Tell me") == "The quick brown fox"
    assert streamed.history == plain.history
    assert streamed.usage == plain.usage == usage(9, 4)
    body = router.chat_requests[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "stream" not in router.chat_requests[1]


def test_text_arrives_before_the_answer_is_complete(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text("one two three four", chunk_delay=0.3))
    stream = Chat(M, **connect)("count", stream=True)
    first = next(stream)
    assert first == "one"
    assert stream.text == "one"  # the rest has not arrived yet
    assert "".join([first, *stream]) == "one two three four"


def test_several_models_stream_at_once(router: OpenRouterDouble, connect: dict) -> None:
    models = ["a/a", "b/b", "c/c"]
    barrier = threading.Barrier(3, timeout=10)

    def together(body: dict) -> Text:
        barrier.wait()  # only answers once all three requests are in flight
        return Text(f"hello from {body['model']}")

    for m in models:
        router.queue(together, model=m)
    chat = Chat(models, **connect)
    stream = chat("hi", stream=True)
    pairs = list(stream)
    assert {slug for slug, _ in pairs} == set(models)
    assert all(isinstance(piece, str) for _, piece in pairs)
    assert stream.result == {m: f"hello from {m}" for m in models}
    assert stream.text == stream.result
    assert {m: chat.history[m][-1]["content"] for m in models} == stream.result


def test_tool_loops_stream_each_step(router: OpenRouterDouble, connect: dict) -> None:
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return f"sunny in {city}"

    router.queue(
        Text(
            "Checking.",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="c1"),
                ToolCall("get_weather", {"city": "Rome"}, id="c2"),
            ],
        ),
        Text("Sunny in both."),
    )
    chat = Chat(M, **connect)
    assert "".join(chat("weather?", stream=True, tools=[get_weather])) == "Checking.Sunny in both."
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert chat.history[2]["tool_calls"][0] == {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert chat.history[3]["content"] == "sunny in Paris"
    assert router.chat_requests[1]["messages"][2] == chat.history[2]  # arguments were merged from many deltas


@pytest.mark.parametrize("style", ["repeat-finish", "empty-choices", "null-finish"])
def test_every_final_usage_form(style: str) -> None:
    with OpenRouterDouble(usage_style=style) as router:
        router.queue(Text("ok", usage=usage(3, 1)))
        chat = Chat(M, base_url=router.base_url, api_key=router.api_key)
        assert list(chat("hi", stream=True)) == ["ok"]
        assert chat.usage == usage(3, 1)


def test_servers_without_usage(connect: dict) -> None:
    with OpenRouterDouble(report_usage=False) as bare:
        chat = Chat(M, base_url=bare.base_url, api_key=bare.api_key)
        assert "".join(chat("hi", stream=True)) == "You said: hi"
        assert chat.usage == usage(0, 0)


def test_structured_output_and_raw_json_answers(router: OpenRouterDouble, connect: dict) -> None:
    from dataclasses import dataclass

    @dataclass
    class City:
        name: str

    stream = Chat(M, **connect)("Paris?", stream=True, response_format=City)
    assert "".join(stream) == '{"name": "example"}'
    assert stream.result == City("example")
    # a server that answers a stream request with plain JSON is read all the same
    router.queue(
        Raw(
            b'{"id": "x", "choices": [{"index": 0, "finish_reason": "stop", "message": '
            b'{"role": "assistant", "content": "plain"}}], "usage": {"prompt_tokens": 1, '
            b'"completion_tokens": 1, "total_tokens": 2}}'
        )
    )
    chat = Chat(M, **connect)
    assert list(chat("hi", stream=True)) == ["plain"]
    assert chat.usage == usage(1, 1)


# --------------------------------------------------------------------------------------------- failures


def test_error_before_the_stream(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(429, "Rate limit exceeded", retry_after=2))
    chat = Chat(M, max_retries=0, **connect)
    with pytest.raises(irouter.RateLimitError) as info:
        list(chat("hi", stream=True))
    assert info.value.retry_after == 2.0
    assert len(chat.history) == 1


def test_midstream_error_keeps_partial_text_and_billed_usage(router: OpenRouterDouble, connect: dict) -> None:
    sample = (SAMPLES / "chat-stream-midstream-error-2025-11.response.sse").read_bytes()
    router.queue(Raw(sample, content_type="text/event-stream"))
    chat = Chat("minimax/minimax-m2:free", **connect)
    with pytest.raises(irouter.BadRequestError, match="Token limit reached") as info:
        list(chat("hi", stream=True))
    assert info.value.partial_text == ""
    assert len(chat.history) == 1
    assert chat.usage == usage(43, 10)  # the sample's error chunk reports what was billed


def test_documented_error_chunk_after_text(router: OpenRouterDouble, connect: dict) -> None:
    body = (
        b'data: {"id":"gen-1","choices":[{"index":0,"delta":{"content":"Half an "}}]}\n\n'
        b'data: {"id":"gen-1","choices":[{"index":0,"delta":{"content":"answer"}}]}\n\n'
        b'data: {"id":"gen-1","error":{"code":"server_error","message":"Provider disconnected"},'
        b'"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}\n\n'
    )
    router.queue(Raw(body, content_type="text/event-stream"))
    chat = Chat(M, **connect)
    stream = chat("hi", stream=True)
    received = []
    with pytest.raises(irouter.APIStatusError, match="Provider disconnected") as info:  # noqa: PT012
        for piece in stream:
            received.append(piece)
    assert received == ["Half an ", "answer"]  # the text before the error was delivered
    assert info.value.partial_text == "Half an answer"
    assert len(chat.history) == 1


def test_connection_dropped_mid_stream(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text("one two three four five", drop_after=3))
    chat = Chat(M, **connect)
    with pytest.raises(irouter.APIConnectionError) as info:
        list(chat("hi", stream=True))
    assert info.value.partial_text == "one two"
    assert len(chat.history) == 1
    # a truncated stream (no finish, no [DONE]) is an error too, not a short answer
    router.queue(
        Raw(b'data: {"choices":[{"index":0,"delta":{"content":"cut"}}]}\n\n', content_type="text/event-stream")
    )
    with pytest.raises(irouter.APIConnectionError, match="ended before the answer was complete"):
        list(chat("hi", stream=True))
    assert len(chat.history) == 1
    assert "".join(chat("and now?", stream=True)) == "You said: and now?"  # the chat is still usable


def _sse(*events: str) -> bytes:
    return b"".join(f"data: {e}\n\n".encode() for e in events)


NO_FINISH = [
    '{"id":"gen-1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"All "}}]}',
    '{"id":"gen-1","model":"m","choices":[{"index":0,"delta":{"content":"there"}}]}',
    '{"id":"gen-1","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
]
"""A whole answer whose chunks never carry a ``finish_reason`` (some OpenAI-compatible servers)."""


def test_done_without_a_finish_reason_is_a_complete_answer(router: OpenRouterDouble, connect: dict) -> None:
    """``[DONE]`` ends the answer as the same body would without streaming (which has no finish reason either)."""
    plain_body = (
        b'{"id":"gen-1","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"All there"}}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    )
    router.queue(Raw(_sse(*NO_FINISH, "[DONE]"), content_type="text/event-stream"), Raw(plain_body))
    streamed, plain = Chat(M, **connect), Chat(M, **connect)
    assert "".join(streamed("hi", stream=True)) == "All there"
    assert plain("hi") == "All there"
    assert streamed.history == plain.history
    assert streamed.usage == plain.usage == usage(3, 2)
    assert [e.finish_reason for e in streamed.ledger] == [e.finish_reason for e in plain.ledger] == [None]


def test_done_without_a_finish_reason_async(router: OpenRouterDouble, connect: dict) -> None:
    import asyncio

    router.queue(Raw(_sse(*NO_FINISH, "[DONE]"), content_type="text/event-stream"))

    async def main() -> str:
        return "".join([p async for p in irouter.AsyncCall(M, **connect)("hi", stream=True)])

    assert asyncio.run(main()) == "All there"


@pytest.mark.parametrize("end", ["", "data: [DONE]"])
def test_done_with_or_without_a_blank_line(router: OpenRouterDouble, connect: dict, end: str) -> None:
    """``[DONE]`` as the last line with no blank line after it still counts; without it the answer was cut off."""
    body = _sse(*NO_FINISH) + end.encode()
    router.queue(Raw(body, content_type="text/event-stream"))
    chat = Chat(M, max_retries=0, **connect)
    if end:
        assert "".join(chat("hi", stream=True)) == "All there"
        return
    with pytest.raises(irouter.APIConnectionError, match="ended before the answer was complete") as info:
        list(chat("hi", stream=True))
    assert info.value.partial_text == "All there"
    assert len(chat.history) == 1


def test_several_models_one_fails(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(503, "Service temporarily unavailable"), model="b/b")
    chat = Chat(["a/a", "b/b"], max_retries=0, **connect)
    stream = chat("hi", stream=True)
    with pytest.raises(irouter.MultiModelError) as info:
        list(stream)
    assert info.value.answers == {"a/a": "You said: hi"}
    assert isinstance(info.value.errors["b/b"], irouter.ServerError)
    assert stream.text["a/a"] == "You said: hi"
    assert chat.history["a/a"][-1]["content"] == "You said: hi"
    assert len(chat.history["b/b"]) == 1


# --------------------------------------------------------------------------------------------- cancelling


def wait_until_free(chat: Chat, model: str = M) -> None:
    """Wait for the cancelled worker to let go of the model (it notices at the next line it reads)."""
    lock = chat._turn_locks[model]
    deadline = time.monotonic() + 10
    while not lock.acquire(timeout=0.05):
        assert time.monotonic() < deadline, "the cancelled stream never stopped"
    lock.release()


def test_breaking_out_cancels_the_turn(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text("a b c d e f g h", chunk_delay=0.2))
    chat = Chat(M, **connect)
    with chat("long answer", stream=True) as stream:
        for piece in stream:
            assert piece == "a"
            break
    wait_until_free(chat)
    assert len(chat.history) == 1  # nothing half-done joins the history
    assert chat("next") == "You said: next"


def test_ctrl_c_while_waiting_cancels_the_turn(router: OpenRouterDouble, connect: dict) -> None:
    """A real SIGINT arrives while the loop waits for the next piece: the stream closes, nothing is kept."""
    import os
    import signal

    router.queue(Text("a b c d e f g h", chunk_delay=0.3))
    chat = Chat(M, **connect)
    received = []
    timer = threading.Timer(0.45, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012 - Ctrl-C lands somewhere inside the loop
        for piece in chat("long answer", stream=True):
            received.append(piece)
    timer.join()
    assert 0 < len(received) < 8
    wait_until_free(chat)
    assert len(chat.history) == 1  # the interrupted turn is not kept
    assert chat("again") == "You said: again"


def test_call_streams_too(router: OpenRouterDouble, connect: dict) -> None:
    assert "".join(Call(M, **connect)("hello", stream=True)) == "You said: hello"
    pairs = list(Call(["a/a", "b/b"], **connect)("hello", stream=True))
    assert {s for s, _ in pairs} == {"a/a", "b/b"}


def test_reasoning_citations_and_images_in_deltas(router: OpenRouterDouble, connect: dict) -> None:
    details = [{"type": "reasoning.text", "text": "Thinking hard.", "signature": "sig", "index": 0}]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    note = {
        "type": "url_citation",
        "url_citation": {"url": "https://a.org", "title": "A", "content": "", "start_index": 0, "end_index": 0},
    }
    extra = {"reasoning": "Thinking hard.", "reasoning_details": details, "annotations": [note], "images": [image]}
    router.queue(Text("Here you go.", extra_message=extra), Text("Here you go.", extra_message=extra))
    streamed, plain = Chat(M, **connect), Chat(M, **connect)
    assert "".join(streamed("go", stream=True)) == "Here you go."
    plain("go")
    assert streamed.history == plain.history  # the same message, whichever way it arrived
    assert streamed.history[-1]["reasoning_details"] == details
    assert streamed.reasoning == "Thinking hard."
    assert streamed.web_citations == [{"url": "https://a.org", "title": "A", "content": ""}]
    assert streamed.images[0].url == image["image_url"]["url"]


def test_a_plain_break_cancels_the_turn(router: OpenRouterDouble, connect: dict) -> None:
    """No ``with``, no ``close()``: dropping the stream after a ``break`` is enough."""
    router.queue(Text("a b c d e f g h", chunk_delay=0.2))
    chat = Chat(M, **connect)
    for piece in chat("long answer", stream=True):
        assert piece == "a"
        break
    wait_until_free(chat)
    assert len(chat.history) == 1
    assert chat.ledger == []  # the answer never completed, so nothing was recorded as spent


def test_closing_stops_before_the_next_request(router: OpenRouterDouble, connect: dict) -> None:
    """Closed while a retry waits, or while a tool runs: no further request goes out."""
    import time

    router.queue(Error(429, "slow down", retry_after=2), "never asked for")
    chat = Chat(M, **connect)
    stream = chat("hi", stream=True)
    time.sleep(0.3)
    stream.close()
    wait_until_free(chat)
    assert len(router.chat_requests) == 1

    def slow_tool() -> str:
        """Takes a while."""
        time.sleep(0.6)
        return "done"

    router.reset()
    router.queue(Text(tool_calls=[ToolCall("slow_tool", {})]), "never asked for")
    stream = chat("go", stream=True, tools=[slow_tool])
    time.sleep(0.3)
    stream.close()
    wait_until_free(chat)
    assert len(router.chat_requests) == 1
    assert len(chat.history) == 1


def test_an_async_break_cancels_the_turn(router: OpenRouterDouble, connect: dict) -> None:
    import asyncio

    router.queue(Text("a b c d e f g h", chunk_delay=0.2))
    chat = irouter.AsyncChat(M, **connect)

    async def main() -> None:
        async for piece in chat("long answer", stream=True):
            assert piece == "a"
            break
        await asyncio.sleep(0.6)

    asyncio.run(main())
    assert len(chat.history) == 1
