"""The seed notebook (``tests/data/seed/chat-notebook.md``) replayed end to end against the OpenRouter double.

Every shape the notebook prints is asserted exactly; the double is scripted with the notebook's own answers and
token counts, so the values match too.
"""

from __future__ import annotations

import json

import pytest

from irouter import Chat
from irouter.testing import OpenRouterDouble, Text

LLAMA, MINI = "meta-llama/llama-3.3-70b-instruct", "openai/gpt-4o-mini"
SYSTEM = "You are the best assistant in the world."
LLAMA_1 = (
    "Thank you for the compliment! I was created by Meta AI, a leading artificial intelligence research and "
    "development company."
)
LLAMA_2 = "Thank you for the compliment! I was created by a team of researcher and engineer at Meta."
MINI_2 = "I was created by OpenAI, an organization focused on developing and advancing artificial intelligence."


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@pytest.fixture
def env(router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> OpenRouterDouble:
    """The notebook's set-up: the key (and here the base URL) come from the environment, as load_dotenv does."""
    from dotenv import load_dotenv

    load_dotenv()
    monkeypatch.setenv("OPENROUTER_API_KEY", router.api_key)
    monkeypatch.setenv("OPENROUTER_BASE_URL", router.base_url)
    return router


def test_model_overview_with_get_all_models(env: OpenRouterDouble) -> None:
    from irouter.base import get_all_models

    model_slugs = get_all_models()
    assert LLAMA in model_slugs
    assert MINI in model_slugs
    assert all(isinstance(s, str) for s in model_slugs)
    assert env.requests[-1].path == "/api/v1/models"


def test_single_model(env: OpenRouterDouble) -> None:
    c = Chat(LLAMA, system=SYSTEM)
    assert c.history == [{"role": "system", "content": SYSTEM}]
    assert c.usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

    env.queue(Text(LLAMA_1, usage=usage(28, 152)))
    assert c("Who created you?") == LLAMA_1
    assert c.history == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Who created you?"},
        {"role": "assistant", "content": LLAMA_1},
    ]
    assert c.usage == {"prompt_tokens": 28, "completion_tokens": 152, "total_tokens": 180}
    json.dumps(c.history)

    sent = env.chat_requests[-1]
    assert sent["model"] == LLAMA
    assert sent["messages"] == c.history[:2]


def test_multiple_models_then_resets(env: OpenRouterDouble) -> None:
    c = Chat([LLAMA, MINI], system=SYSTEM)
    start = [{"role": "system", "content": SYSTEM}]
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert c.history == {LLAMA: start, MINI: start}
    assert c.usage == {LLAMA: zero, MINI: zero}

    env.queue(Text(LLAMA_2, usage=usage(29, 159)), model=LLAMA)
    env.queue(Text(MINI_2, usage=usage(24, 17)), model=MINI)
    assert c("Who created you?") == {LLAMA: LLAMA_2, MINI: MINI_2}

    assert c.history == {
        LLAMA: [*start, {"role": "user", "content": "Who created you?"}, {"role": "assistant", "content": LLAMA_2}],
        MINI: [*start, {"role": "user", "content": "Who created you?"}, {"role": "assistant", "content": MINI_2}],
    }
    assert c.history[LLAMA][-1] == {"role": "assistant", "content": LLAMA_2}
    assert c.usage == {LLAMA: usage(29, 159), MINI: usage(24, 17)}
    assert c.usage[LLAMA] == {"prompt_tokens": 29, "completion_tokens": 159, "total_tokens": 188}
    assert sorted(r["model"] for r in env.chat_requests) == sorted([LLAMA, MINI])

    c.reset_history()
    assert c.history == {LLAMA: start, MINI: start}
    assert c.usage == {LLAMA: usage(29, 159), MINI: usage(24, 17)}  # usage survives reset_history
    c.reset_usage()
    assert c.usage == {LLAMA: zero, MINI: zero}


def test_reset_clears_both(env: OpenRouterDouble) -> None:
    c = Chat(MINI)
    c("Hello")
    assert c.usage["total_tokens"] > 0
    c.reset()
    assert c.history == [{"role": "system", "content": "You are a helpful assistant."}]
    assert c.usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_each_model_sees_its_own_history(env: OpenRouterDouble) -> None:
    c = Chat([LLAMA, MINI], system=SYSTEM)
    env.queue("llama one", model=LLAMA)
    env.queue("mini one", model=MINI)
    c("first")
    env.queue("llama two", model=LLAMA)
    env.queue("mini two", model=MINI)
    c("second")
    second = {r["model"]: r["messages"] for r in env.chat_requests[2:]}
    assert second[LLAMA][2] == {"role": "assistant", "content": "llama one"}
    assert second[MINI][2] == {"role": "assistant", "content": "mini one"}
    assert second[LLAMA][-1] == {"role": "user", "content": "second"}
