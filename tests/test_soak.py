"""Soak: thousands of turns from many threads against the double with random faults injected.

Afterwards every history must be well formed and hold every turn that succeeded, once, and nothing of the turns
that failed. Marked ``slow``: ``pytest -m "not slow"`` skips it, ``.ci/run`` runs it.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest

import irouter
from irouter import Chat
from irouter._persist import check_history
from irouter.testing import Error, OpenRouterDouble, Text

TURNS_PER_THREAD = 250
THREADS = 8


def chaos(seed: int) -> Any:
    rng = random.Random(seed)
    lock = threading.Lock()

    def respond(body: dict) -> Any:
        with lock:
            roll = rng.random()
        said = body["messages"][-1]["content"]
        if roll < 0.06:
            return Error(429, "Rate limit exceeded", retry_after=0)
        if roll < 0.10:
            return Error(500, "Internal error", retry_after=0)
        if roll < 0.13:
            return Error(502, "Provider returned error", in_body=True, retry_after=0)
        if roll < 0.16:
            return Text("cut short", drop_after=1)
        if roll < 0.18:
            return Error(400, "Provider rejected this")
        return Text(f"You said: {said}")

    return respond


@pytest.mark.slow
@pytest.mark.timeout(400)  # about 2 minutes on 2 busy cores, at the edge of the 120 s every other test gets
def test_soak_threads_and_faults() -> None:
    with OpenRouterDouble() as router:
        router.default = chaos(seed=1234)
        chats = [
            Chat(["a/a", "b/b"], base_url=router.base_url, api_key=router.api_key, max_retries=1) for _ in range(2)
        ]
        done: list[tuple[int, str, str]] = []
        failed: list[tuple[int, str]] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            chat_index = n % len(chats)
            chat = chats[chat_index]
            for i in range(TURNS_PER_THREAD):
                message = f"t{n}-{i}"
                try:
                    if i % 5 == 0:
                        stream = chat(message, stream=True)
                        list(stream)
                        answers = stream.result
                    else:
                        answers = chat(message)
                    with lock:
                        done.extend((chat_index, slug, message) for slug in answers)
                except irouter.MultiModelError as exc:
                    with lock:
                        done.extend((chat_index, slug, message) for slug in exc.answers)
                        failed.extend((chat_index, message) for _ in exc.errors)
                except irouter.APIError:
                    with lock:
                        failed.append((chat_index, message))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)

    assert len(done) + len(failed) == THREADS * TURNS_PER_THREAD * 2
    assert len(failed) > 50  # faults really happened...
    assert len(done) > 3000  # ...and most turns got through
    for index, chat in enumerate(chats):
        for slug, history in chat.history.items():
            check_history(history)  # well formed
            users = [m["content"] for m in history if m["role"] == "user"]
            expected = Counter(message for i, s, message in done if i == index and s == slug)
            assert Counter(users) == expected  # every success present once, nothing of the failures
            for question, answer in zip(history[1::2], history[2::2], strict=True):
                assert (question["role"], answer["role"]) == ("user", "assistant")
                assert answer["content"] == f"You said: {question['content']}"
        assert len(chat.ledger) >= sum(1 for i, _, _ in done if i == index)
