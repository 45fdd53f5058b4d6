"""Shared fixtures: a fresh OpenRouter double per test, and an environment that can never reach the internet."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from irouter.catalog import clear_cache
from irouter.testing import OpenRouterDouble

SAMPLES = Path(__file__).resolve().parent / "data" / "openrouter"
"""The captured OpenRouter payloads the tests replay, kept in the repository (see ``tests/data/README.md``)."""

# Every local Ray cluster the tests start (docs/ray.md's example, tests/test_ray.py) runs without token
# authentication. Ray reads the mode once per process: a second cluster in the same pytest process whose workers were
# told otherwise could not register with it, and hung.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test may reach OpenRouter: the default base URL points at a closed loopback port, no key is set; each
    test starts with an empty model-catalog cache of its own."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1")
    monkeypatch.setenv("IROUTER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    # the conversation log and the response cache write to a file of the test's own, never the user's
    monkeypatch.setenv("IROUTER_LOG_PATH", str(tmp_path_factory.mktemp("log") / "logs.db"))
    monkeypatch.delenv("IROUTER_LOG", raising=False)
    monkeypatch.delenv("IROUTER_CACHE", raising=False)
    clear_cache()


@pytest.fixture
def router() -> Iterator[OpenRouterDouble]:
    """A running OpenRouter double."""
    with OpenRouterDouble() as double:
        yield double


@pytest.fixture
def connect(router: OpenRouterDouble) -> dict[str, str]:
    """Keyword arguments that point Chat/Call at the double."""
    return {"base_url": router.base_url, "api_key": router.api_key}
