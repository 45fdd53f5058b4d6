"""The OpenRouter double itself, checked at the byte level with a plain HTTP client (not irouter)."""

from __future__ import annotations

import json

import httpx2
import pytest

from irouter._wire import StreamAccumulator, sse_data
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


def post(router: OpenRouterDouble, body: dict, **headers: str) -> httpx2.Response:
    auth = {"Authorization": f"Bearer {router.api_key}", **headers}
    return httpx2.post(f"{router.base_url}/chat/completions", json=body, headers=auth, timeout=10)


def test_non_streaming_body_starts_with_keepalive_whitespace(router: OpenRouterDouble) -> None:
    router.queue(Text("Hi!", delay=0.12))
    response = post(router, BODY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-generation-id"].startswith("gen-")
    raw = response.content
    assert raw.startswith(b"\n         \n")
    assert raw.count(b"\n         \n") >= 2  # more keep-alives while the reply is delayed
    body = json.loads(raw)
    assert list(body)[:5] == ["id", "object", "created", "model", "provider"]
    assert body["choices"][0]["message"]["content"] == "Hi!"
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["cost"] == pytest.approx(usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6)


@pytest.mark.parametrize("style", ["repeat-finish", "empty-choices", "null-finish"])
def test_stream_format(style: str) -> None:
    with OpenRouterDouble(usage_style=style) as router:
        router.queue(Text("one two three", tool_calls=[ToolCall("lookup", {"query": "a long argument"})]))
        response = post(router, {**BODY, "stream": True})
        assert response.headers["content-type"] == "text/event-stream"
        text = response.text
    lines = text.splitlines()
    assert lines[0] == ": OPENROUTER PROCESSING"
    assert text.rstrip().endswith("data: [DONE]")
    chunks = [json.loads(d) for d in sse_data(lines)]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    with_usage = [c for c in chunks if "usage" in c]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1]
    if style == "empty-choices":
        assert chunks[-1]["choices"] == []
    elif style == "null-finish":
        assert chunks[-1]["choices"][0]["finish_reason"] is None
    else:
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # the tool arguments are split over several chunks
    argument_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert len(argument_chunks) > 2
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    reply = acc.reply()
    assert reply.content == "one two three"
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls[0]["function"] == {"name": "lookup", "arguments": '{"query": "a long argument"}'}
    assert reply.usage == with_usage[0]["usage"]


def test_errors_use_openrouter_envelope(router: OpenRouterDouble) -> None:
    router.queue(
        Error(429, "Rate limit exceeded: free-models-per-min.", retry_after=7, headers={"X-RateLimit-Limit": "20"})
    )
    response = post(router, {**BODY, "stream": True})
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"  # errors before the first byte are not SSE
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-limit"] == "20"
    assert response.json()["error"] == {"message": "Rate limit exceeded: free-models-per-min.", "code": 429}


def test_auth_and_validation(router: OpenRouterDouble) -> None:
    response = httpx2.post(f"{router.base_url}/chat/completions", json=BODY)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "No auth credentials found"
    response = post(router, BODY, Authorization="Bearer nope")
    assert response.json()["error"] == {"message": "User not found.", "code": 401}
    assert post(router, {"model": "x"}).status_code == 400
    assert httpx2.get(f"{router.base_url}/nowhere").status_code == 404


def test_models_key_credits_generation(router: OpenRouterDouble) -> None:
    models = httpx2.get(f"{router.base_url}/models").json()  # no key needed
    assert models["total_count"] == len(models["data"]) > 3
    record = models["data"][0]
    assert {"id", "name", "context_length", "architecture", "pricing", "supported_parameters"} <= set(record)
    auth = {"Authorization": f"Bearer {router.api_key}"}
    generation = post(router, BODY).json()["id"]
    found = httpx2.get(f"{router.base_url}/generation", params={"id": generation}, headers=auth).json()
    assert found["data"]["id"] == generation
    assert found["data"]["total_cost"] > 0
    credits = httpx2.get(f"{router.base_url}/credits", headers=auth).json()["data"]
    assert credits["total_usage"] == found["data"]["total_cost"]
    assert httpx2.get(f"{router.base_url}/key", headers=auth).json()["data"]["usage"] == credits["total_usage"]
    assert httpx2.get(f"{router.base_url}/generation", params={"id": "gen-x"}, headers=auth).status_code == 404


def test_queue_order_model_scoping_and_reset(router: OpenRouterDouble) -> None:
    router.queue("global one", "global two")
    router.queue("for b", model="b/b")
    first = post(router, {**BODY, "model": "b/b"}).json()
    second = post(router, BODY).json()
    assert first["choices"][0]["message"]["content"] == "for b"
    assert second["choices"][0]["message"]["content"] == "global one"
    assert len(router.requests) == 2
    router.reset()
    assert router.requests == []
    assert post(router, BODY).json()["choices"][0]["message"]["content"] == "You said: hello there"
    with pytest.raises(ValueError, match="usage_style"):
        OpenRouterDouble(usage_style="bogus")


def test_runs_standalone() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "irouter.testing", "--any-key"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip().split("=", 1)[1]
        response = httpx2.post(f"{base}/chat/completions", json=BODY, headers={"Authorization": "Bearer any"})
        assert response.json()["choices"][0]["message"]["content"] == "You said: hello there"
    finally:
        proc.terminate()
        proc.wait(10)


def test_default_reply_plays_along_with_tools_and_schemas(router: OpenRouterDouble) -> None:
    """With nothing queued, the double calls every offered function once (arguments made from the schema), then
    reports the results; with a json_schema response format it answers JSON that fits."""
    from dataclasses import dataclass

    import jsonschema

    from irouter import Chat
    from irouter._structured import response_format_for

    calls: list[tuple[str, int, list[str]]] = []

    def book(city: str, nights: int, extras: list[str]) -> str:
        """Book a hotel."""
        calls.append((city, nights, extras))
        return f"booked {city}"

    chat = Chat("m/m", base_url=router.base_url, api_key=router.api_key)
    assert chat("book it", tools=[book]) == "You said: book it Tool results: booked example"
    assert calls == [("example", 1, ["example"])]

    @dataclass
    class Stay:
        city: str
        nights: int
        breakfast: bool

    assert chat("structured", response_format=Stay) == Stay("example", 1, True)
    schema = response_format_for(Stay)["json_schema"]["schema"]
    jsonschema.validate(json.loads(chat.history[-1]["content"]), schema)
