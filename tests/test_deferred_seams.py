"""Where deferred grids meet the other features of the store and the wire: provider slugs, prompt caching, the
response cache and the log in the same file, and store files written by earlier schemas. Real HTTP to the double."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from irouter import Call
from irouter import _batch_wire as wire
from irouter.testing import OpenRouterDouble

LLAMA = "meta-llama/llama-3.3-70b-instruct"
FAST = 0.01


@pytest.fixture
def router() -> Any:
    with OpenRouterDouble() as double:
        double.batches.step = 0.03
        yield double


def submissions(router: OpenRouterDouble) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in router.requests if r.method == "POST" and r.path == "/api/beta/batches"]


def pinned(provider: str, quantization: str | None = None) -> dict[str, Any]:
    routing: dict[str, Any] = {"order": [provider], "only": [provider], "allow_fallbacks": False}
    if quantization:
        routing["quantizations"] = [quantization]
    return routing


# --------------------------------------------------------------------------------------------- provider slugs
def test_a_deferred_grid_sends_provider_slugs_as_the_plain_model_with_routing(
    router: OpenRouterDouble, tmp_path: Path
) -> None:
    """Two providers of one model: two batches, each for the plain slug, each request pinned to its provider
    (as a normal request is); the cells keep the full slugs."""
    slugs = [f"{LLAMA}@deepinfra", f"{LLAMA}@together:fp8"]
    call = Call(slugs, base_url=router.base_url, api_key=router.api_key)
    g = call.grid(["one", "two"], store=tmp_path / "g.sqlite", progress=False, deferred=True, poll_interval=FAST)
    cells = list(g.run())

    posts = submissions(router)
    assert [p["model"] for p in posts] == [LLAMA, LLAMA]  # one batch per slug, each naming the plain model
    assert [p.get("provider") for p in posts] == [{"only": ["deepinfra"]}, {"only": ["together"]}]
    assert [list(p) for p in posts] == [["endpoint", "model", "provider", "requests"]] * 2
    routing = [[item["body"].get("provider") for item in p["requests"]] for p in posts]
    assert routing == [[pinned("deepinfra")] * 2, [pinned("together", "fp8")] * 2]
    assert router.chat_requests == []
    assert all(c.ok for c in cells), [c.error for c in cells]
    assert sorted((c.model, c.provider) for c in cells) == sorted([(slugs[0], "DeepInfra"), (slugs[1], "Together")] * 2)
    assert {c.model for c in g.results()} == set(slugs)

    # the same requests as a normal grid sends, but for the model named once by the batch
    normal = Call(slugs, base_url=router.base_url, api_key=router.api_key).grid(
        ["one", "two"], store=tmp_path / "n.sqlite", progress=False
    )
    list(normal.run())
    sent = {(b["provider"]["only"][0], b["messages"][-1]["content"]): b for b in router.chat_requests}
    for post in posts:
        for item in post["requests"]:
            body = item["body"]
            twin = sent[(body["provider"]["only"][0], body["messages"][-1]["content"])]
            assert body == {k: v for k, v in twin.items() if k not in ("model", "stream", "stream_options")}


def test_the_forecast_of_a_deferred_grid_prices_provider_slugs(router: OpenRouterDouble, tmp_path: Path) -> None:
    slug = f"{LLAMA}@deepinfra"
    call = Call([slug, LLAMA], base_url=router.base_url, api_key=router.api_key)
    forecast = call.grid(["one"], deferred=True, max_tokens=10).forecast()
    assert forecast.deferred
    assert forecast.models[slug].expected is not None
    assert forecast.models[slug].expected == pytest.approx(forecast.models[LLAMA].expected)
    assert forecast.deferred_expected == pytest.approx(forecast.expected * wire.PRICE_SHARE)


def test_the_double_takes_only_provider_only_on_a_batch(router: OpenRouterDouble) -> None:
    import httpx2

    url = router.base_url.replace("/api/v1", "/api/beta/batches")
    headers = {"Authorization": f"Bearer {router.api_key}"}
    lines = [wire.request_line("a" * 64, {"messages": [{"role": "user", "content": "Hi"}]})]
    refused = httpx2.post(url, content=wire.submission(LLAMA, lines, provider={"order": ["x"]}), headers=headers)
    assert refused.status_code == 400
    assert "only provider.only" in refused.json()["error"]["message"]
    router.batches.step = 0
    accepted = httpx2.post(url, content=wire.submission(LLAMA, lines, provider={"only": ["together"]}), headers=headers)
    assert accepted.status_code == 202
    done = httpx2.get(f"{url}/{accepted.json()['id']}", headers=headers).json()
    assert done["results"][0]["response"]["body"]["provider"] == "Together"  # the batch's routing answered it


# --------------------------------------------------------------------------------------------- prompt caching
def test_a_deferred_grid_places_cache_breakpoints_like_a_normal_grid(tmp_path: Path) -> None:
    """``cache=True`` (Anthropic's ``cache_control`` works inside batches): the batch's requests carry the
    breakpoints the normal grid's requests carry."""
    from irouter.catalog import list_models

    from .test_caching import ANTHROPIC, catalog, marks

    with OpenRouterDouble(models=catalog()) as router:
        router.batches.step = 0.01
        list_models(router.base_url)
        kwargs = {"base_url": router.base_url, "api_key": router.api_key, "system": "Be brief."}
        options = {"cache": True, "cache_ttl": "1h", "progress": False}
        cells = list(
            Call(ANTHROPIC, **kwargs).grid(["one"], store=tmp_path / "d.sqlite", deferred=True, **options).run()
        )
        assert all(c.ok for c in cells)
        list(Call(ANTHROPIC, **kwargs).grid(["one"], store=tmp_path / "n.sqlite", **options).run())
        (normal,) = router.chat_requests
        (post,) = submissions(router)
        (item,) = post["requests"]
        assert marks(normal) == [("system", "Be brief.", "1h"), ("user", "one", "1h")]
        assert marks({"model": ANTHROPIC, **item["body"]}) == marks(normal)
        assert item["body"]["messages"] == normal["messages"]
