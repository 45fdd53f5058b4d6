"""Capability checks before sending, against the model catalog the double serves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import irouter
from irouter import Call, Chat, Image
from irouter.catalog import list_models
from irouter.testing import OpenRouterDouble

from .media import png, wav


@dataclass
class Answer:
    text: str


def weather(city: str) -> str:
    """Weather."""
    return "sunny"


@pytest.fixture
def known(router: OpenRouterDouble, connect: dict) -> dict:
    """The double's catalog, fetched once: from now on checks run against it."""
    list_models(router.base_url)
    return connect


def test_unknown_slug_suggests_close_ones(router: OpenRouterDouble, known: dict) -> None:
    with pytest.raises(irouter.UnknownModelError, match="Did you mean 'openai/gpt-4o-mini'") as info:
        Chat("openai/gpt4o-mini", **known)("hi")
    assert info.value.suggestions[0] == "openai/gpt-4o-mini"
    assert isinstance(info.value, ValueError)
    assert router.chat_requests == []
    assert Chat("openai/gpt4o-mini", check_capabilities=False, **known)("hi") == "You said: hi"


def test_variants_and_routers_pass(router: OpenRouterDouble, known: dict) -> None:
    assert Chat(["openai/gpt-4o-mini:online", "openrouter/auto", "google/gemma-3n-e2b-it:free"], **known)("hi")


@pytest.mark.parametrize(
    ("model", "call", "capability"),
    [
        ("google/gemma-3n-e2b-it:free", {"tools": [weather]}, "tools"),
        ("google/gemma-3n-e2b-it:free", {"response_format": Answer}, "structured output"),
        ("meta-llama/llama-3.3-70b-instruct", {"message": ["look", png()]}, "image input"),
        ("openai/gpt-4o-mini", {"message": ["listen", wav()]}, "audio input"),
        ("openai/gpt-4o-mini", {"message": ["watch", "https://example.org/a.mp4"]}, "video input"),
    ],
)
def test_what_a_model_cannot_take_is_refused(
    router: OpenRouterDouble, known: dict, model: str, call: dict, capability: str
) -> None:
    message = call.pop("message", "hi")
    with pytest.raises(irouter.CapabilityError, match=f"{model} does not take {capability}") as info:
        Chat(model, **known)(message, **call)
    assert (info.value.model, info.value.capability) == (model, capability)
    with pytest.raises(irouter.CapabilityError):
        Call(model, **known)(message, **call)
    assert router.chat_requests == []
    Chat(model, **known)(message, check_capabilities=False, **call)  # the switch sends it anyway
    assert len(router.chat_requests) >= 1


def test_what_a_model_can_take_goes_through(router: OpenRouterDouble, known: dict) -> None:
    chat = Chat("openai/gpt-4o-mini", **known)
    chat(["look", Image(png())], tools=[weather])
    chat("pdf is fine everywhere", response_format={"type": "json_object"})
    assert Chat("google/gemini-2.0-flash-exp:free", **known)(["listen", wav()])
    assert len(router.chat_requests) >= 3


def test_no_catalog_no_check(router: OpenRouterDouble, connect: dict) -> None:
    """A non-OpenRouter endpoint whose catalog was never fetched: nothing is checked, nothing is fetched."""
    assert Chat("made/up-model", **connect)("hi") == "You said: hi"
    assert all(not r.path.endswith("/models") for r in router.requests)
    with pytest.raises(irouter.UnknownModelError):  # forcing the check fetches the catalog
        Chat("made/up-model", check_capabilities=True, **connect)("hi")
    with pytest.raises(TypeError, match="check_capabilities"):
        Chat("made/up-model", check_capabilities="yes", **connect)


def test_async_checks_fetch_the_catalog_off_the_event_loop(router: OpenRouterDouble, connect: dict) -> None:
    """The first check of the day needs the catalog: an async chat fetches it in a worker thread, so creating the
    call does no network I/O and the check's verdict arrives when it is awaited."""
    import asyncio

    async def main() -> None:
        chat = irouter.AsyncChat("made/up-model", check_capabilities=True, **connect)
        pending = chat("hi")  # nothing fetched yet: that would block the loop
        assert not any(r.path.endswith("/models") for r in router.requests)
        with pytest.raises(irouter.UnknownModelError):
            await pending
        assert any(r.path.endswith("/models") for r in router.requests)
        assert router.chat_requests == []

    asyncio.run(main())
