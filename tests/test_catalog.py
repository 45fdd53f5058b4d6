"""The model catalog over HTTP: records, filters, the memory and disk cache, lookups."""

from __future__ import annotations

import json
import time

import pytest

import irouter
from irouter import ModelInfo, get_all_models, models
from irouter.catalog import cache_dir, cached_records, clear_cache, closest, find, list_models
from irouter.testing import OpenRouterDouble, model_record

from .conftest import SAMPLES


@pytest.fixture
def captured() -> list[dict]:
    return json.loads((SAMPLES / "models-list-2026-08.response.json").read_text())["data"]


@pytest.fixture
def shop(captured: list[dict]) -> OpenRouterDouble:
    free = model_record(
        "google/gemma-3n-e2b-it:free", "Google: Gemma 3n 2B (free)", 8192, ["text"], "0", "0", ["max_tokens"]
    )
    imager = {
        **model_record(
            "google/gemini-2.5-flash-image",
            "Gemini Image",
            32768,
            ["text", "image"],
            "0.0000003",
            "0.0000025",
            ["max_tokens"],
        )
    }
    imager["architecture"] = {**imager["architecture"], "output_modalities": ["image", "text"]}
    with OpenRouterDouble(models=[*captured, free, imager]) as double:
        yield double


def test_records_from_the_captured_catalog(shop: OpenRouterDouble) -> None:
    found = {m.id: m for m in models(base_url=shop.base_url)}
    mini = found["openai/gpt-4.1-mini"]
    assert isinstance(mini, ModelInfo)
    assert mini.name == "OpenAI: GPT-4.1 Mini"
    assert mini.context_length == 1047576
    assert mini.input_modalities == ("image", "text", "file")
    assert mini.output_modalities == ("text",)
    assert mini.prompt_price == pytest.approx(4e-7)
    assert mini.prompt_price_per_million == pytest.approx(0.4)
    assert mini.completion_price_per_million == pytest.approx(1.6)
    assert mini.supports_tools
    assert mini.supports_structured_output
    assert not mini.is_free
    assert mini.cost(1_000_000, 1_000_000) == pytest.approx(2.0)
    assert found["google/gemma-3n-e2b-it:free"].is_free
    assert found["openai/gpt-3.5-turbo"].supports_structured_output  # it lists structured_outputs
    assert "authorization" not in shop.requests[-1].headers  # no key needed


def test_filters(shop: OpenRouterDouble) -> None:
    def ids(**kwargs: object) -> list[str]:
        return sorted(m.id for m in models(base_url=shop.base_url, **kwargs))  # type: ignore[arg-type]

    assert ids(free=True) == ["google/gemma-3n-e2b-it:free"]
    assert "google/gemma-3n-e2b-it:free" not in ids(free=False)
    assert ids(modality="image") == sorted(
        ["anthropic/claude-sonnet-4", "openai/gpt-4.1-mini", "openai/gpt-4o", "google/gemini-2.5-flash-image"]
    )
    assert ids(output_modality="image") == ["google/gemini-2.5-flash-image"]
    assert "google/gemma-3n-e2b-it:free" not in ids(tools=True)
    assert ids(structured_output=True) == ["openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"]
    assert ids(max_price=2) == ["google/gemma-3n-e2b-it:free", "openai/gpt-3.5-turbo", "openai/gpt-4.1-mini"]
    assert ids(search="GPT mini") == ["openai/gpt-4.1-mini"]
    assert ids(search="claude", tools=True) == ["anthropic/claude-sonnet-4"]


def test_one_request_a_day(shop: OpenRouterDouble) -> None:
    get_all_models(base_url=shop.base_url)
    names = get_all_models(slug=False, base_url=shop.base_url)
    models(base_url=shop.base_url)
    assert len(shop.requests) == 1  # memory cache
    assert "OpenAI: GPT-4.1 Mini" in names
    clear_cache()
    assert cached_records(shop.base_url) is not None  # the disk cache, written atomically
    list_models(shop.base_url)
    assert len(shop.requests) == 1
    assert [p.name for p in cache_dir().iterdir() if p.suffix == ".tmp"] == []
    list_models(shop.base_url, refresh=True)
    assert len(shop.requests) == 2
    list_models(shop.base_url, max_age=0)
    assert len(shop.requests) == 3


def test_stale_disk_cache_is_refetched(shop: OpenRouterDouble) -> None:
    list_models(shop.base_url)
    [path] = cache_dir().glob("models-*.json")
    stored = json.loads(path.read_text())
    stored["fetched_at"] = time.time() - 2 * 24 * 3600
    path.write_text(json.dumps(stored))
    clear_cache()
    assert cached_records(shop.base_url) is None
    list_models(shop.base_url)
    assert len(shop.requests) == 2
    path.write_text("not json")
    clear_cache()
    list_models(shop.base_url)  # a broken cache file is ignored, not fatal
    assert len(shop.requests) == 3


def test_find_and_closest(captured: list[dict]) -> None:
    assert find(captured, "openai/gpt-4o").id == "openai/gpt-4o"
    assert find(captured, "openai/gpt-4o:online").id == "openai/gpt-4o"
    assert find(captured, "openai/gpt-4o:nitro:online").id == "openai/gpt-4o"
    assert find(captured, "openai/gpt-5") is None
    assert closest(captured, "openai/gpt4o")[0] == "openai/gpt-4o"
    assert "anthropic/claude-sonnet-4" in closest(captured, "anthropic/claude-sonet-4")
    assert closest(captured, "zzz/qqq") == []


def test_bad_catalog_answer(router: OpenRouterDouble) -> None:
    from irouter.testing import Raw

    router.models = []
    assert get_all_models(base_url=router.base_url) == []
    with OpenRouterDouble() as other:
        other.queue(Raw(b'{"oops": 1}'))  # (queued replies only answer chat requests)
        assert len(get_all_models(base_url=other.base_url)) > 3
    with pytest.raises(irouter.APIConnectionError):
        get_all_models(base_url="http://127.0.0.1:9/api/v1")
