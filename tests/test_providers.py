"""Providers as an axis: ``model@provider[:quantization]`` slugs on the wire and in the accounts, and
``irouter.providers`` (OpenRouter's per-model endpoints list) over HTTP."""

from __future__ import annotations

import asyncio
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irouter
from irouter import AsyncChat, Call, Chat, NotFoundError, UnknownModelError, providers, register_endpoint
from irouter._routing import QUANTIZATIONS
from irouter.catalog import clear_cache
from irouter.endpoints import unregister_endpoint
from irouter.testing import OpenRouterDouble

from .conftest import SAMPLES

LLAMA = "meta-llama/llama-3.3-70b-instruct"
KIMI = "moonshotai/kimi-k3"
CAPTURE = "model-endpoints-kimi-k3-2026-08.response.json"


def capture() -> dict[str, Any]:
    return json.loads((SAMPLES / CAPTURE).read_text())  # type: ignore[no-any-return]


def pinned(provider: str, quantization: str | None = None) -> dict[str, Any]:
    """The routing a provider slug must send: that provider only, no fallbacks, the quantization if named."""
    routing: dict[str, Any] = {"order": [provider], "only": [provider], "allow_fallbacks": False}
    if quantization:
        routing["quantizations"] = [quantization]
    return routing


# --------------------------------------------------------------------------------------------- slugs on the wire

_name = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
providers_ = st.builds(
    lambda head, tail, variant: head + tail + (f"/{variant}" if variant else ""),
    st.sampled_from(string.ascii_letters + string.digits),
    st.text(string.ascii_letters + string.digits + "._-", max_size=8),
    st.none() | _name,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    provider=providers_,
    quantization=st.none() | st.sampled_from(QUANTIZATIONS),
    style=st.sampled_from(["call", "stream", "async"]),
)
def test_provider_slug_is_sent_as_routing_and_named_in_full(
    router: OpenRouterDouble, provider: str, quantization: str | None, style: str
) -> None:
    full = f"{LLAMA}@{provider}" + (f":{quantization}" if quantization else "")
    router.reset()
    kwargs = {"base_url": router.base_url, "api_key": router.api_key}
    if style == "async":

        async def turn() -> Any:
            chat = AsyncChat([full, LLAMA], **kwargs)
            return chat, await chat("Hello")

        chat, answer = asyncio.run(turn())
    else:
        chat = Chat([full, LLAMA], **kwargs)
        answer = chat("Hello", stream=style == "stream")
        if style == "stream":
            stream = answer
            pieces = list(stream)
            assert pieces
            assert stream.text == {full: "You said: Hello", LLAMA: "You said: Hello"}
            answer = stream.result
    bodies = router.chat_requests
    assert sorted(b["model"] for b in bodies) == [LLAMA, LLAMA]
    assert [b["provider"] for b in bodies if "provider" in b] == [pinned(provider, quantization)]
    assert answer == {full: "You said: Hello", LLAMA: "You said: Hello"}
    assert list(chat.history) == list(chat.usage) == [full, LLAMA]
    assert chat.usage[full]["total_tokens"] > 0
    entries = {e.model: e for e in chat.ledger}
    assert set(entries) == {full, LLAMA}
    assert entries[full].served_model == LLAMA  # the server answers under the plain slug
    answered = router.generations[str(entries[full].generation_id)]["provider_name"]
    assert entries[full].provider == answered != entries[LLAMA].provider == "OpenAI"


def test_two_providers_of_one_model_side_by_side(router: OpenRouterDouble) -> None:
    def by_provider(body: dict[str, Any]) -> str:
        return f"from {body['provider']['only'][0]}"

    router.queue(by_provider, by_provider)
    slugs = [f"{LLAMA}@deepinfra", f"{LLAMA}@together:fp16"]
    chat = Chat(slugs, base_url=router.base_url, api_key=router.api_key)
    assert chat("Hi") == {slugs[0]: "from deepinfra", slugs[1]: "from together"}
    assert {e.model: e.provider for e in chat.ledger} == {slugs[0]: "DeepInfra", slugs[1]: "Together"}
    assert chat.cost[slugs[0]] > 0
    chat("Again")  # the second turn of each goes to its own provider, with its own history
    assert [len(chat.history[s]) for s in slugs] == [5, 5]  # system, then two turns
    assert chat.history[slugs[1]][2]["content"] == "from together"
    routed = [(b["provider"]["only"], len(b["messages"])) for b in router.chat_requests]
    assert sorted(routed) == [(["deepinfra"], 2), (["deepinfra"], 4), (["together"], 2), (["together"], 4)]


def slug_errors() -> st.SearchStrategy[str]:
    """Malformed suffixes: nothing after '@', nothing before, two '@', a bad provider name, a bad quantization."""
    bad_quant = st.text(string.ascii_lowercase + string.digits, min_size=0, max_size=6).filter(
        lambda q: q not in QUANTIZATIONS
    )
    bad_provider = st.sampled_from(["", "-x", ".x", "a b", "x/", "x/y/z", "dé", "x!", "/x"])
    return st.one_of(
        bad_provider.map(lambda p: f"{LLAMA}@{p}"),
        bad_quant.map(lambda q: f"{LLAMA}@deepinfra:{q}"),
        providers_.map(lambda p: f"{LLAMA}@{p}@{p}"),
        providers_.map(lambda p: f"@{p}"),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slug=slug_errors())
def test_malformed_suffix_is_refused_before_any_request(router: OpenRouterDouble, slug: str) -> None:
    router.reset()
    with pytest.raises((ValueError, UnknownModelError)) as caught:
        Chat([slug], base_url=router.base_url, api_key=router.api_key)("Hi")
    assert slug in str(caught.value)
    assert router.chat_requests == []


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ({"order": ["together"]}, "does not include 'deepinfra'"),
        ({"only": ["Together", "Fireworks"]}, "does not include 'deepinfra'"),
        ({"allow_fallbacks": True}, "would let other providers answer"),
        ({"ignore": ["DeepInfra"]}, "excludes 'deepinfra'"),
        ({"quantizations": ["fp16", "bf16"]}, "does not include 'fp8'"),
    ],
)
def test_conflicting_provider_option_is_refused_before_any_request(
    router: OpenRouterDouble, given: dict[str, Any], why: str
) -> None:
    slug = f"{LLAMA}@deepinfra:fp8"
    kwargs = {"base_url": router.base_url, "api_key": router.api_key}
    with pytest.raises(ValueError, match=why):
        Chat(slug, provider=given, **kwargs)  # a default: at construction
    chat = Chat([slug, LLAMA], **kwargs)
    with pytest.raises(ValueError, match=why):
        chat("Hi", provider=given)  # per call
    with pytest.raises(ValueError, match=why):
        chat("Hi", extra_body={"provider": given})
    with pytest.raises(ValueError, match=why):
        Call(slug, **kwargs).grid(["Hi"], provider=given)
    assert router.chat_requests == []
    assert [m["role"] for m in chat.history[slug]] == ["system"]


def test_compatible_provider_option_is_merged(router: OpenRouterDouble) -> None:
    slug = f"{LLAMA}@deepinfra:fp8"
    given = {"sort": "price", "only": ["DeepInfra", "together"], "quantizations": ["fp8", "bf16"], "zdr": True}
    chat = Chat([slug, LLAMA], base_url=router.base_url, api_key=router.api_key, provider=given)
    chat("Hi", extra_body={"provider": {"data_collection": "deny"}})
    bodies = {("provider" in b and "order" in b["provider"]): b for b in router.chat_requests}
    assert bodies[True]["provider"] == {
        "data_collection": "deny",
        "order": ["deepinfra"],
        "only": ["deepinfra"],
        "allow_fallbacks": False,
        "quantizations": ["fp8"],
    }
    assert bodies[False]["provider"] == {"data_collection": "deny"}  # extra_body replaces provider=, as ever
    chat("Again")
    bodies = {("order" in b["provider"]): b for b in router.chat_requests[2:]}
    assert bodies[True]["provider"] == {**given, **pinned("deepinfra", "fp8")}
    assert bodies[False]["provider"] == given  # the plain slug's request is untouched


def test_catalog_lookups_use_the_plain_slug(router: OpenRouterDouble) -> None:
    kwargs = {"base_url": router.base_url, "api_key": router.api_key, "check_capabilities": True}
    slug = f"{LLAMA}@together"
    chat = Chat(slug, max_cost=1.0, **kwargs)  # a budget needs the catalog's price of the plain slug
    chat("Hi", tools=[], response_format=None)
    assert chat.ledger[0].model == slug
    with pytest.raises(UnknownModelError, match="no-such/model@together"):
        Chat("no-such/model@together", **kwargs)("Hi")

    def clock() -> str:
        return "noon"

    tools_less = "google/gemma-3n-e2b-it:free@chutes"
    with pytest.raises(irouter.CapabilityError, match="tools"):
        Chat(tools_less, **kwargs)("Hi", tools=[clock])
    assert len(router.chat_requests) == 1


def test_provider_suffix_on_another_endpoint_is_refused(router: OpenRouterDouble) -> None:
    register_endpoint("mine/", router.base_url, api_key="k")
    try:
        with pytest.raises(ValueError, match="another endpoint"):
            Chat("mine/model@deepinfra")
    finally:
        unregister_endpoint("mine/")


def test_provider_slugs_in_grids_and_saved_chats(router: OpenRouterDouble, tmp_path: Path) -> None:
    slugs = [f"{LLAMA}@deepinfra", f"{LLAMA}@together"]
    kwargs = {"base_url": router.base_url, "api_key": router.api_key}
    grid = Call(slugs, **kwargs).grid(["one", "two"], store=str(tmp_path / "g.sqlite"))
    cells = list(grid.run())
    assert sorted((c.model, c.provider) for c in cells) == sorted([(slugs[0], "DeepInfra"), (slugs[1], "Together")] * 2)
    assert sorted(b["provider"]["only"][0] for b in router.chat_requests) == ["deepinfra"] * 2 + ["together"] * 2
    assert {c.model for c in grid.results()} == set(slugs)

    chat = Chat(slugs, **kwargs)
    chat("Hi")
    saved = chat.save(tmp_path / "chat.json")
    again = Chat.load(saved, api_key=router.api_key)
    assert again.models == slugs
    again("Next")
    last = router.chat_requests[-2:]
    assert sorted(b["provider"]["only"][0] for b in last) == ["deepinfra", "together"]
    assert all(b["model"] == LLAMA and len(b["messages"]) == 4 for b in last)


# --------------------------------------------------------------------------------------------- providers()


def test_endpoints_list_parsed_from_the_capture() -> None:
    body = capture()
    with OpenRouterDouble(endpoints={KIMI: body}) as double:
        found = providers(KIMI, base_url=double.base_url)
        assert double.requests[-1].path == f"/api/v1/models/{KIMI}/endpoints"
    records = body["data"]["endpoints"]
    assert [p.tag for p in found] == [r["tag"] for r in records]
    assert [p.slug for p in found] == [f"{KIMI}@{r['tag']}" for r in records]
    for p, r in zip(found, records, strict=True):
        assert (p.provider, p.model, p.name, p.quantization) == (
            r["provider_name"],
            r["model_id"],
            r["name"],
            r["quantization"],
        )
        assert p.prompt_price == float(r["pricing"]["prompt"])
        assert p.completion_price == float(r["pricing"]["completion"])
        assert p.cache_read_price == float(r["pricing"]["input_cache_read"])
        assert (p.context_length, p.max_completion_tokens) == (r["context_length"], r["max_completion_tokens"])
        assert p.supported_parameters == tuple(r["supported_parameters"])
        assert (p.uptime_last_5m, p.uptime_last_30m, p.uptime_last_1d) == (
            r["uptime_last_5m"],
            r["uptime_last_30m"],
            r["uptime_last_1d"],
        )
        assert p.latency is not None
        assert p.throughput is not None
        assert [p.latency.p50, p.latency.p75, p.latency.p90, p.latency.p99] == list(r["latency_last_30m"].values())
        assert p.throughput.p99 == r["throughput_last_30m"]["p99"]
        assert p.healthy == (r["status"] == 0)
        assert p.supports("tools") == ("tools" in r["supported_parameters"])
    assert [p.healthy for p in found] == [True, False, True, False]  # two degraded endpoints in the capture
    assert not found[2].supports("tools")  # fireworks/fast lacks tools
    text = str(found)
    assert text.splitlines()[0] == f"4 providers of {KIMI}"
    assert f"{KIMI}@alibaba (degraded)" in text
    assert "2,687" in text
    assert "99.7%" in text


def test_providers_are_cached_like_the_catalog(router: OpenRouterDouble) -> None:
    router.endpoints[KIMI] = capture()
    first = providers(KIMI, base_url=router.base_url)
    assert providers(KIMI, base_url=router.base_url) == first
    clear_cache()  # memory gone: the disk copy serves
    assert providers(KIMI, base_url=router.base_url) == first
    assert len(router.requests) == 1
    providers(KIMI, base_url=router.base_url, refresh=True)
    assert len(router.requests) == 2
    assert "authorization" not in router.requests[0].headers
    providers(KIMI, base_url=router.base_url, refresh=True, api_key=router.api_key)  # a key fills in percentiles
    assert router.requests[-1].headers["authorization"] == f"Bearer {router.api_key}"


def test_providers_filter_derive_and_fail(router: OpenRouterDouble) -> None:
    router.endpoints[KIMI] = capture()
    assert [p.tag for p in providers(f"{KIMI}@fireworks", base_url=router.base_url)] == ["fireworks", "fireworks/fast"]
    assert [p.tag for p in providers(f"{KIMI}@morph:fp4", base_url=router.base_url)] == ["morph/fast"]
    derived = providers(LLAMA, base_url=router.base_url)  # a catalog model without a captured list
    catalog = next(m for m in router.models if m["id"] == LLAMA)
    assert derived[0].prompt_price == float(catalog["pricing"]["prompt"])
    assert all(p.model == LLAMA and p.context_length == catalog["context_length"] for p in derived)
    with pytest.raises(NotFoundError, match="Resource not found"):
        providers("no-such/model", base_url=router.base_url)
    with pytest.raises(ValueError, match="slug"):
        providers("kimi k3", base_url=router.base_url)
    frame = derived.to_pandas()
    assert list(frame["slug"]) == [p.slug for p in derived]
    assert frame.loc[0, "latency_p50_ms"] == derived[0].latency.p50  # type: ignore[union-attr]


def test_provider_suffix_in_fallback_models_is_refused(router: OpenRouterDouble) -> None:
    chat = Chat(f"{LLAMA}@deepinfra", base_url=router.base_url, api_key=router.api_key)
    with pytest.raises(ValueError, match="fallback models take plain slugs"):
        chat("Hi", models=["openai/gpt-4o-mini@azure"])
    chat("Hi", models=["openai/gpt-4o-mini"])
    assert router.chat_requests[-1]["models"] == ["openai/gpt-4o-mini"]
    assert len(router.chat_requests) == 1
