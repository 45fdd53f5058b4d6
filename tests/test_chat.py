"""Chat over HTTP: request bodies and headers, options, failures that leave history alone, fan-out."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import irouter
from irouter import Chat
from irouter.testing import DEFAULT_KEY, Error, OpenRouterDouble, Text

M = "openai/gpt-4o-mini"


def test_request_body_and_headers(router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", router.base_url)  # the double stands in for OpenRouter
    monkeypatch.setenv("OPENROUTER_API_KEY", router.api_key)
    chat = Chat(M)
    chat("Hi")
    request = router.requests[-1]
    assert request.method == "POST"
    assert request.path == "/api/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["http-referer"] == "https://github.com/CarloLepelaars/irouter"
    assert request.headers["x-title"] == "irouter"
    assert request.json == {
        "model": M,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hi"},
        ],
    }


def test_attribution_headers_overridable(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(M, extra_headers={"X-Title": "My App", "HTTP-Referer": "https://example.org"}, **connect)
    chat("Hi")
    assert router.requests[-1].headers["x-title"] == "My App"
    assert router.requests[-1].headers["http-referer"] == "https://example.org"
    chat("Again", extra_headers={"X-Title": "Per call"})
    assert router.requests[-1].headers["x-title"] == "Per call"
    assert router.requests[-1].headers["http-referer"] == "https://example.org"


def test_options_pass_through_defaults_and_overrides(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(
        M,
        temperature=0.2,
        max_tokens=50,
        provider={"order": ["OpenAI"]},
        extra_body={"transforms": ["middle-out"], "usage": {"include": True}},
        **connect,
    )
    chat("one")
    body = router.chat_requests[-1]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert body["provider"] == {"order": ["OpenAI"]}
    assert body["transforms"] == ["middle-out"]
    assert body["usage"] == {"include": True}

    chat(
        "two",
        temperature=1.0,
        seed=7,
        stop=["\n"],
        models=["x/y"],
        reasoning={"effort": "low"},
        response_format={"type": "json_object"},
        plugins=[{"id": "web"}],
        max_tokens=None,
        extra_body={"transforms": []},
    )
    body = router.chat_requests[-1]
    assert body["temperature"] == 1.0
    assert "max_tokens" not in body  # None unsets a default
    assert body["seed"] == 7
    assert body["stop"] == ["\n"]
    assert body["models"] == ["x/y"]
    assert body["reasoning"] == {"effort": "low"}
    assert body["response_format"] == {"type": "json_object"}
    assert body["plugins"] == [{"id": "web"}]
    assert body["transforms"] == []
    assert body["usage"] == {"include": True}  # extra_body merges key by key
    assert "timeout" not in body
    assert "extra_headers" not in body
    assert "extra_body" not in body
    chat("three")
    assert router.chat_requests[-1]["temperature"] == 0.2  # per-call options do not stick


def test_list_message_becomes_text_parts(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(M, **connect)
    part = {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}
    chat(["Describe", part])
    sent = router.chat_requests[-1]["messages"][-1]
    assert sent == {"role": "user", "content": [{"type": "text", "text": "Describe"}, part]}
    assert chat.history[-2] == sent


def test_history_is_plain_json_and_reply_content(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text("caf\u00e9 \u2615", extra_message={"annotations": [], "images": None}))
    chat = Chat(M, system=None, **connect)
    assert chat.history == []
    assert chat("Coffee?") == "caf\u00e9 \u2615"
    assert json.loads(json.dumps(chat.history)) == chat.history
    assert chat.history == [
        {"role": "user", "content": "Coffee?"},
        {"role": "assistant", "content": "caf\u00e9 \u2615"},
    ]


def test_usage_sums_over_turns(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(
        Text("a", usage={"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}),
        Text("b", usage={"prompt_tokens": 15, "completion_tokens": 2, "total_tokens": 17}),
    )
    chat = Chat(M, **connect)
    chat("x")
    chat("y")
    assert chat.usage == {"prompt_tokens": 25, "completion_tokens": 3, "total_tokens": 28}


def test_server_without_usage_leaves_counters(connect: dict[str, str]) -> None:
    with OpenRouterDouble(report_usage=False) as bare:
        chat = Chat(M, base_url=bare.base_url, api_key=bare.api_key)
        assert chat("hi") == "You said: hi"
        assert chat.usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_repr_shows_models_turns_tokens_not_key(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text("ok", usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}))
    chat = Chat(M, **connect)
    chat("hi")
    assert repr(chat) == "Chat('openai/gpt-4o-mini', turns=1, tokens=7)"
    multi = Chat([M, "x/y"], **connect)
    assert repr(multi) == "Chat(['openai/gpt-4o-mini', 'x/y'], turns=0, tokens=0)"
    assert DEFAULT_KEY not in repr(chat) + str(chat) + repr(chat._endpoint) + repr(vars(chat))


# --------------------------------------------------------------------------------------------- failures

STATUS_CLASSES = [
    (400, irouter.BadRequestError),
    (401, irouter.AuthenticationError),
    (402, irouter.PaymentRequiredError),
    (403, irouter.PermissionDeniedError),
    (404, irouter.NotFoundError),
    (408, irouter.RequestTimeoutError),
    (429, irouter.RateLimitError),
    (500, irouter.ServerError),
    (502, irouter.ServerError),
    (503, irouter.ServerError),
    (524, irouter.ServerError),
    (529, irouter.ServerError),
    (413, irouter.APIStatusError),
]


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
def test_http_errors_are_typed_and_leave_state(
    router: OpenRouterDouble, connect: dict[str, str], status: int, cls: type[Exception]
) -> None:
    chat = Chat(M, max_retries=0, **connect)
    chat("first")
    history, usage = [dict(m) for m in chat.history], chat.usage
    meta = {"provider_name": "Google", "raw": "upstream said no"}
    router.queue(Error(status, f"failure {status}", metadata=meta, retry_after=3))
    with pytest.raises(cls) as info:
        chat("second")
    error = info.value
    assert isinstance(error, irouter.APIStatusError)
    assert isinstance(error, irouter.IrouterError)
    assert error.status == status
    assert error.code == status
    assert error.message == f"failure {status}"
    assert error.metadata == meta
    assert error.model == M
    assert error.retry_after == 3.0
    assert "upstream said no" in str(error)
    assert DEFAULT_KEY not in str(error) + repr(error)
    assert chat.history == history
    assert chat.usage == usage


def test_error_inside_http_200_body(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(M, max_retries=0, **connect)
    router.queue(Error(429, "Provider returned error", metadata={"provider_name": "Chutes"}, in_body=True, delay=0.12))
    with pytest.raises(irouter.RateLimitError) as info:
        chat("hi")
    assert info.value.status == 200
    assert info.value.code == 429
    assert info.value.metadata["provider_name"] == "Chutes"
    assert len(chat.history) == 1


def test_choice_finished_with_error(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text("partial", finish_reason="error", extra_message={}))
    with pytest.raises(irouter.APIStatusError) as info:
        Chat(M, max_retries=0, **connect)("hi")
    assert info.value.status == 200


def test_non_json_body(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    from irouter.testing import Raw

    router.queue(Raw(b"<html>Bad gateway</html>", status=200, content_type="text/html"))
    chat = Chat(M, max_retries=0, **connect)
    with pytest.raises(irouter.APIResponseError, match="not valid JSON"):
        chat("hi")
    router.queue(Raw(b"<html>Bad gateway</html>", status=502, content_type="text/html"))
    with pytest.raises(irouter.ServerError, match="Bad gateway"):
        chat("hi")
    router.queue(Raw(b'{"object": "chat.completion", "choices": []}'))
    with pytest.raises(irouter.APIResponseError, match="no choices"):
        chat("hi")
    assert len(chat.history) == 1


def test_wrong_key_and_missing_key(router: OpenRouterDouble) -> None:
    chat = Chat(M, base_url=router.base_url, api_key="sk-or-v1-wrong")
    with pytest.raises(irouter.AuthenticationError, match="User not found"):
        chat("hi")
    # No key for a non-OpenRouter base URL is allowed client-side; the server then says so.
    keyless = Chat(M, base_url=router.base_url)
    with pytest.raises(irouter.AuthenticationError, match="No auth credentials found"):
        keyless("hi")
    assert "authorization" not in router.requests[-1].headers


def test_missing_key_for_openrouter_raises_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_BASE_URL")
    with pytest.raises(irouter.MissingAPIKeyError, match="OPENROUTER_API_KEY") as info:
        Chat(M)
    assert "api_key=" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(irouter.MissingAPIKeyError):
        irouter.Call([M, "x/y"], api_key="  ")


def test_connection_refused_and_timeout(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(M, base_url="http://127.0.0.1:9/api/v1", api_key="k", max_retries=0)
    with pytest.raises(irouter.APIConnectionError) as info:
        chat("hi")
    assert not isinstance(info.value, irouter.APITimeoutError)
    assert len(chat.history) == 1

    slow = Chat(M, timeout=0.3, max_retries=0, **connect)
    router.queue(Text("late", delay=2.0))
    with pytest.raises(irouter.APITimeoutError):
        slow("hi")
    assert len(slow.history) == 1
    assert slow.usage["total_tokens"] == 0


# --------------------------------------------------------------------------------------------- fan-out


def test_fan_out_requests_are_all_in_flight_at_once(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """16 models: the server only answers once all 16 requests are waiting (a barrier), so a client that sent
    them in batches (a pool sized to the CPU count) would break the barrier and fail."""
    models = [f"vendor/model-{i}" for i in range(16)]
    barrier = threading.Barrier(len(models), timeout=20)

    def wait_for_all(request: dict[str, Any]) -> Text:
        barrier.wait()
        return Text(f"answer from {request['model']}")

    for model in models:
        router.queue(wait_for_all, model=model)
    chat = Chat(models, **connect)
    answers = chat("go")
    assert answers == {m: f"answer from {m}" for m in models}
    assert all(len(chat.history[m]) == 3 for m in models)


def test_one_model_failing_keeps_the_others(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    good, bad = "good/model", "bad/model"
    chat = Chat([good, bad], max_retries=0, **connect)
    router.queue(Text("fine", usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}), model=good)
    router.queue(Error(503, "Service temporarily unavailable"), model=bad)
    with pytest.raises(irouter.MultiModelError) as info:
        chat("hi")
    error = info.value
    assert error.answers == {good: "fine"}
    assert isinstance(error.errors[bad], irouter.ServerError)
    assert error.errors[bad].model == bad
    assert chat.history[good][-1] == {"role": "assistant", "content": "fine"}
    assert chat.history[bad] == [{"role": "system", "content": "You are a helpful assistant."}]
    assert chat.usage[good]["total_tokens"] == 6
    assert chat.usage[bad]["total_tokens"] == 0
    assert "bad/model" in str(error)


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("model", "exc"),
    [
        ("", ValueError),
        ([], TypeError),
        (None, TypeError),
        (42, TypeError),
        ([M, M], ValueError),
        ([" x/y"], ValueError),
        ([M, 3], ValueError),
    ],
)
def test_bad_models_raise_before_any_request(
    router: OpenRouterDouble, connect: dict[str, str], model: Any, exc: type[Exception]
) -> None:
    with pytest.raises(exc):
        Chat(model, **connect)
    assert router.requests == []


@pytest.mark.parametrize(
    ("message", "exc"),
    [
        ("", ValueError),
        ("   ", ValueError),
        ([], ValueError),
        (None, TypeError),
        (3, TypeError),
        ([1], TypeError),
        ([{"text": "no type"}], ValueError),
    ],
)
def test_bad_messages_raise_before_any_request(
    router: OpenRouterDouble, connect: dict[str, str], message: Any, exc: type[Exception]
) -> None:
    chat = Chat(M, **connect)
    with pytest.raises(exc):
        chat(message)
    assert router.requests == []
    assert len(chat.history) == 1


def test_bad_options_raise_before_any_request(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(M, **connect)
    with pytest.raises(TypeError, match="extra_body must be a dict"):
        chat("hi", extra_body=["x"])
    with pytest.raises(ValueError, match="timeout"):
        chat("hi", timeout=-1)
    with pytest.raises(TypeError, match="messages"):
        chat("hi", messages=[])
    with pytest.raises(TypeError, match="system must be a string"):
        Chat(M, system=3, **connect)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url"):
        Chat(M, base_url="ftp://example.org", api_key="k")
    assert router.requests == []


def test_one_at_a_time_turns_reuse_one_connection(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """Requests spread over several pools only when they overlap: a chat's turns keep one warm connection."""
    import asyncio

    chat = Chat(M, **connect)
    for i in range(6):
        chat(f"turn {i}")
    assert None not in {r.client for r in router.requests}
    assert len({r.client for r in router.requests}) == 1

    async def turns() -> None:
        achat = irouter.AsyncChat(M, **connect)
        for i in range(4):
            await achat(f"async turn {i}")

    router.reset()
    asyncio.run(turns())
    assert len({r.client for r in router.requests}) == 1
    # ...while overlapping requests do spread out (8 models at once: several connections)
    router.reset()
    Chat([f"m/{i}" for i in range(8)], **connect)("at once")
    assert len({r.client for r in router.requests}) > 1


def test_the_openrouter_key_stays_with_openrouter(router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENROUTER_API_KEY and the attribution headers go to OpenRouter (or OPENROUTER_BASE_URL) only: an explicit
    base_url elsewhere gets neither, unless an api_key is given for it."""
    monkeypatch.setenv("OPENROUTER_API_KEY", router.api_key)
    with OpenRouterDouble(api_key=None, require_auth=False) as other:
        Chat(M, base_url=other.base_url)("hi")
        headers = other.requests[-1].headers
        assert "authorization" not in headers
        assert "x-title" not in headers
        assert "http-referer" not in headers
        Chat(M, base_url=other.base_url, api_key="its-own-key")("hi")
        assert other.requests[-1].headers["authorization"] == "Bearer its-own-key"
    monkeypatch.setenv("OPENROUTER_BASE_URL", router.base_url)
    Chat(M)("hi")
    assert router.requests[-1].headers["authorization"] == f"Bearer {router.api_key}"
    assert router.requests[-1].headers["x-title"] == "irouter"
