"""Call: stateless one-off requests, raw responses with attribute access, several models."""

from __future__ import annotations

import json

import pytest

import irouter
from irouter import Call, Response
from irouter.testing import Error, OpenRouterDouble, Text

M = "openai/gpt-4o-mini"


def test_text_without_system_by_default(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    ask = Call(M, **connect)
    assert ask("Say hi") == "You said: Say hi"
    assert router.chat_requests[-1]["messages"] == [{"role": "user", "content": "Say hi"}]
    ask("Again")
    assert router.chat_requests[-1]["messages"] == [{"role": "user", "content": "Again"}]  # no state


def test_system_prompt_and_options(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    ask = Call(M, system="Be brief.", temperature=0, **connect)
    ask(["Look:", {"type": "text", "text": "here"}], max_tokens=5)
    body = router.chat_requests[-1]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "text", "text": "here"}]},
    ]
    assert body["temperature"] == 0
    assert body["max_tokens"] == 5


def test_message_dicts_are_sent_as_they_are(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    messages = [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Thanks", "name": "ann"},
    ]
    Call(M, system="ignored for message lists", **connect)(messages)
    assert router.chat_requests[-1]["messages"] == messages


def test_raw_response_attribute_access(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}, "index": 0}
    router.queue(Text("Here", provider="Google", extra_message={"images": [image]}))
    r = Call(M, **connect)("draw", raw=True)
    assert isinstance(r, Response)
    assert isinstance(r, dict)
    assert r.choices[0].message.content == "Here"
    assert r.choices[0].message.images[0].image_url.url.startswith("data:image/png")
    assert r.provider == "Google"
    assert r.model == M
    assert r.id.startswith("gen-")
    assert r.usage.cost == r["usage"]["cost"] > 0
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.choices[0].message.tool_calls is None  # absent optional fields read as None
    assert json.loads(json.dumps(r)) == r
    with pytest.raises(KeyError):
        r["not_there"]
    assert "choices" in dir(r)


def test_several_models(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue("a says", model="a/a")
    router.queue("b says", model="b/b")
    ask = Call(["a/a", "b/b"], **connect)
    assert ask("hi") == {"a/a": "a says", "b/b": "b says"}
    raw = ask("hi", raw=True)
    assert set(raw) == {"a/a", "b/b"}
    assert raw["a/a"].choices[0].message.content == "You said: hi"
    assert repr(ask) == "Call(['a/a', 'b/b'])"


def test_errors_and_partial_failure(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Error(402, "This request requires more credits"), model="b/b")
    ask = Call(["a/a", "b/b"], **connect)
    with pytest.raises(irouter.MultiModelError) as info:
        ask("hi")
    assert info.value.answers == {"a/a": "You said: hi"}
    assert isinstance(info.value.errors["b/b"], irouter.PaymentRequiredError)
    router.queue(Error(404, "No endpoints found that support tool use."))
    with pytest.raises(irouter.NotFoundError, match="No endpoints"):
        Call(M, **connect)("hi")
