"""Capability checks before sending, against the model catalog the double serves."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

import irouter
from irouter import Call, Chat, Image
from irouter.catalog import RECHECK_AFTER, _write_disk, list_models
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
    """The double's catalog, fetched once, and checks asked for (the double is not OpenRouter itself, whose catalog
    alone is checked unasked)."""
    list_models(router.base_url)
    return {**connect, "check_capabilities": True}


def test_unknown_slug_suggests_close_ones(router: OpenRouterDouble, known: dict) -> None:
    with pytest.raises(irouter.UnknownModelError, match="Did you mean 'openai/gpt-4o-mini'") as info:
        Chat("openai/gpt4o-mini", **known)("hi")
    assert info.value.suggestions[0] == "openai/gpt-4o-mini"
    assert isinstance(info.value, ValueError)
    assert router.chat_requests == []
    assert Chat("openai/gpt4o-mini", **{**known, "check_capabilities": False})("hi") == "You said: hi"


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


def _models_requests(router: OpenRouterDouble) -> int:
    return sum(r.path.endswith("/models") for r in router.requests)


def test_another_endpoints_cached_catalog_never_refuses(router: OpenRouterDouble, connect: dict) -> None:
    """Regression: once some command had cached an endpoint's catalog (``irouter models --base-url X``), later
    chats with X refused the models X serves now, for a day, in new processes too."""
    list_models(router.base_url)
    router.models.append({"id": "new/model", "name": "New"})  # served from now on, not in the cached copy
    assert Chat("new/model", **connect)("hi") == "You said: hi"
    assert Call("made/up", **connect)("hi") == "You said: hi"  # the server decides, not an old list
    assert _models_requests(router) == 1


def test_a_stale_catalog_is_fetched_again_before_refusing(router: OpenRouterDouble, connect: dict) -> None:
    """A slug missing from a catalog older than RECHECK_AFTER is looked up once more in a fresh copy."""
    records = list(router.models)
    _write_disk(router.base_url, time.time() - RECHECK_AFTER - 60, records)  # an old copy on disk
    router.models.append({"id": "new/model", "name": "New"})
    checked = {**connect, "check_capabilities": True}
    assert Chat("new/model", **checked)("hi") == "You said: hi"
    assert _models_requests(router) == 1
    with pytest.raises(irouter.UnknownModelError):  # the copy is fresh now: a missing slug is refused at once
        Chat("made/up", **checked)("hi")
    assert _models_requests(router) == 1
    assert len(router.chat_requests) == 1


def test_a_stale_catalog_still_refuses_what_is_nowhere(router: OpenRouterDouble, connect: dict) -> None:
    records = list(router.models)
    _write_disk(router.base_url, time.time() - RECHECK_AFTER - 60, records)
    with pytest.raises(irouter.UnknownModelError):
        Chat("made/up", base_url=router.base_url, api_key=router.api_key, check_capabilities=True)("hi")
    assert _models_requests(router) == 1  # fetched again exactly once
    assert router.chat_requests == []


def test_openrouters_own_catalog_is_checked_unasked(router: OpenRouterDouble) -> None:
    """OpenRouter's catalog (here a fresh cached copy: nothing may reach openrouter.ai) refuses a missing slug
    before any request, without check_capabilities=True."""
    url = "https://openrouter.ai/api/v1"
    _write_disk(url, time.time(), router.models)
    with pytest.raises(irouter.UnknownModelError, match="Did you mean 'openai/gpt-4o-mini'"):
        Chat("openai/gpt4o-mini", base_url=url, api_key="sk-or-v1-test")("hi")


@pytest.mark.parametrize("check", [None, False, True])
def test_a_slug_with_spaces_is_refused_with_a_hint(router: OpenRouterDouble, connect: dict, check: bool | None) -> None:
    """A display name ("OpenAI: GPT-4o mini") is not a slug: refused before sending, with the slug it names."""
    list_models(router.base_url)
    with pytest.raises(irouter.UnknownModelError, match="Did you mean 'openai/gpt-4o-mini'") as info:
        Chat("OpenAI: GPT-4o mini", check_capabilities=check, **connect)
    assert "no spaces" in str(info.value)
    assert info.value.suggestions[0] == "openai/gpt-4o-mini"
    with pytest.raises(irouter.UnknownModelError):
        Call(["openai/gpt-4o-mini", "meta llama"], **connect)
    assert router.chat_requests == []


def test_a_slug_with_spaces_without_a_catalog(router: OpenRouterDouble, connect: dict) -> None:
    with pytest.raises(ValueError, match="slugs have no spaces, like 'openai/gpt-4o-mini'"):
        Chat("gpt 4o", **connect)
    assert router.requests == []
