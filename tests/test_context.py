"""Context windows: `ContextWindowError` before any request, the overflow policies (``drop_oldest``,
``summarize``) leaving valid histories, ``chat.count_tokens``, and the provider's context-length 400."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irouter import AsyncChat, BadRequestError, Call, Chat, ContextWindowError, MultiModelError
from irouter._ledger import estimate_prompt_tokens
from irouter._persist import check_history
from irouter.catalog import list_models
from irouter.testing import OpenRouterDouble, Raw, Text, model_record

from .conftest import SAMPLES

SMALL, BIG, SUMMARIZER = "lab/small", "lab/big", "lab/summarizer"
WINDOW = 1000


def catalog() -> list[dict[str, Any]]:
    params = ["max_tokens", "tools"]
    return [
        model_record(SMALL, "Small", WINDOW, ["text"], "0.000001", "0.000002", params),
        model_record(BIG, "Big", 100_000, ["text"], "0.000001", "0.000002", params),
        model_record(SUMMARIZER, "Summarizer", 100_000, ["text"], "0.000001", "0.000002", params),
    ]


@pytest.fixture
def windowed() -> Any:
    with OpenRouterDouble(models=catalog()) as double:
        list_models(double.base_url)  # the catalog at hand (a chat with OpenRouter fetches it for its checks)
        yield double


def connect_to(router: OpenRouterDouble) -> dict[str, str]:
    return {"base_url": router.base_url, "api_key": router.api_key}


def words(n: int, tag: str = "w") -> str:
    """About ``n`` estimated tokens of text (three characters a token)."""
    return (tag[0] * 2 + " ") * n


def turn(i: int, size: int, tools: bool) -> list[dict[str, Any]]:
    """One finished turn: a user message, optionally a tool call and its result, and the answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"q{i} " + words(size)}]
    if tools:
        call = {"id": f"c{i}", "type": "function", "function": {"name": "look", "arguments": "{}"}}
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": words(size // 2, "t")})
    messages.append({"role": "assistant", "content": f"a{i} " + words(size // 2, "a")})
    return messages


def tool_pairs_intact(history: list[dict[str, Any]]) -> None:
    """Every tool message answers a call of an assistant message before it, and every call is answered."""
    check_history(history)  # raises on a call left without its result in the middle
    called = {c["id"] for m in history for c in m.get("tool_calls") or []}
    answered = [m["tool_call_id"] for m in history if m["role"] == "tool"]
    assert set(answered) == called
    for i, message in enumerate(history):
        if message["role"] == "tool":
            before = {c["id"] for m in history[:i] for c in m.get("tool_calls") or []}
            assert message["tool_call_id"] in before


# --------------------------------------------------------------------------------------------- refusing


def test_overflow_is_raised_before_any_request(windowed: OpenRouterDouble) -> None:
    chat = Chat(SMALL, system="Be brief.", **connect_to(windowed))
    with pytest.raises(ContextWindowError) as info:
        chat(words(1200))
    exc = info.value
    assert windowed.chat_requests == []
    assert isinstance(exc, BadRequestError)
    assert (exc.model, exc.limit, exc.sent) == (SMALL, WINDOW, False)
    assert exc.estimate == chat.count_tokens(words(1200)) > WINDOW
    assert SMALL in str(exc)
    assert "1,000" in str(exc)
    assert "on_overflow" in str(exc)
    assert chat.history == [{"role": "system", "content": "Be brief."}]
    assert chat.ledger == []


def test_max_tokens_counts_against_the_window(windowed: OpenRouterDouble) -> None:
    chat = Chat(SMALL, **connect_to(windowed))
    with pytest.raises(ContextWindowError) as info:
        chat("short question", max_tokens=WINDOW)
    assert info.value.estimate == chat.count_tokens("short question") + WINDOW
    assert windowed.chat_requests == []
    assert chat("short question", max_tokens=100) == "You said: short question"


def test_a_model_without_a_known_window_is_not_checked(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """No catalog at hand (or no context_length): nothing is refused on this side."""
    long = words(5000)
    assert Chat(SMALL, **connect)(long).startswith("You said:")
    assert len(router.chat_requests) == 1


def test_count_tokens_is_the_estimate_of_the_request_sent(windowed: OpenRouterDouble) -> None:
    def look(place: str) -> str:
        """Look somewhere."""
        return "found"

    windowed.queue("first", "second")
    chat = Chat(BIG, system="Be brief.", tools=[look], **connect_to(windowed))
    assert chat.count_tokens() < chat.count_tokens("hello there")
    predicted = chat.count_tokens("hello there")
    chat("hello there")
    assert predicted == estimate_prompt_tokens(windowed.chat_requests[-1])
    predicted = chat.count_tokens("and again")
    chat("and again")
    assert predicted == estimate_prompt_tokens(windowed.chat_requests[-1])
    both = Chat([SMALL, BIG], **connect_to(windowed))
    assert set(both.count_tokens("x")) == {SMALL, BIG}


def test_the_provider_context_error_is_a_context_window_error(windowed: OpenRouterDouble) -> None:
    """Both captured wordings: the limit and the requested tokens are read from the message."""
    names = [
        "error-400-context-length-exceeded.response.json",
        "error-400-context-length-exceeded-previous-errors.response.json",
    ]
    windowed.queue(*(Raw((SAMPLES / n).read_bytes(), status=400) for n in names))
    chat = Chat(BIG, **connect_to(windowed))
    found = []
    for _ in names:
        with pytest.raises(ContextWindowError) as info:
            chat("hello")
        found.append((info.value.limit, info.value.estimate, info.value.sent, info.value.status, info.value.model))
    assert found == [(1048576, 1048902, True, 400, BIG), (1048576, 1780624, True, 400, BIG)]
    assert len(windowed.chat_requests) == 2  # a 400 is not retried


# --------------------------------------------------------------------------------------------- making room


def test_drop_oldest_keeps_whole_turns_and_the_system_prompt(windowed: OpenRouterDouble) -> None:
    history = [{"role": "system", "content": "Be brief."}]
    for i in range(4):
        history += turn(i, 120, tools=i % 2 == 0)
    chat = Chat(SMALL, system="Be brief.", on_overflow="drop_oldest", **connect_to(windowed))
    chat.set_history(history)
    assert chat.count_tokens(words(200)) > WINDOW
    windowed.queue("done")
    assert chat(words(200)) == "done"  # about 200 tokens more: the oldest turn must go
    sent = windowed.chat_requests[-1]["messages"]
    assert sent[0] == history[0]
    assert estimate_prompt_tokens(windowed.chat_requests[-1]) <= WINDOW
    dropped = chat.dropped
    assert dropped
    assert dropped[0]["role"] == "user"
    assert [history[0], *dropped, *sent[1:-1]] == history  # nothing lost, nothing reordered: whole turns went
    assert chat.history == [*sent, {"role": "assistant", "content": "done"}]
    tool_pairs_intact(chat.history)
    chat.reset_history()
    assert chat.dropped == []


def test_no_room_even_after_dropping_raises(windowed: OpenRouterDouble) -> None:
    chat = Chat(SMALL, on_overflow="drop_oldest", **connect_to(windowed))
    chat.set_history(turn(0, 30, tools=False))
    with pytest.raises(ContextWindowError):
        chat(words(1500))
    assert windowed.chat_requests == []
    assert chat.dropped == []
    assert len(chat.history) == 2


def test_summarize_replaces_the_dropped_turns(windowed: OpenRouterDouble) -> None:
    history = [{"role": "system", "content": "Be brief."}]
    for i in range(4):
        history += turn(i, 40, tools=i == 1)
    windowed.queue("The user asked four questions about w.", model=SUMMARIZER)
    windowed.queue("answer", model=SMALL)
    chat = Chat(SMALL, system="Be brief.", on_overflow="summarize", summarize_with=SUMMARIZER, **connect_to(windowed))
    chat.set_history(history)
    assert chat(words(700)) == "answer"
    summary_request, main = windowed.chat_requests
    assert summary_request["model"] == SUMMARIZER
    assert summary_request["max_tokens"] > 0
    asked = summary_request["messages"][-1]["content"]
    for message in chat.dropped:  # the summariser saw every dropped message
        assert str(message["content"])[:20] in asked
    assert "[calls look({})]" in asked  # tool calls too
    summary = main["messages"][1]
    assert summary["role"] == "user"
    assert summary["content"].endswith("The user asked four questions about w.")
    assert main["messages"][0] == history[0]
    assert chat.history == [*main["messages"], {"role": "assistant", "content": "answer"}]
    tool_pairs_intact(chat.history)
    assert [e.model for e in chat.ledger] == [SUMMARIZER, SMALL]  # the summary's request is in the accounts


def test_summarize_needs_a_model(windowed: OpenRouterDouble) -> None:
    with pytest.raises(ValueError, match="summarize_with="):
        Chat(SMALL, on_overflow="summarize", **connect_to(windowed))
    with pytest.raises(ValueError, match="on_overflow must be"):
        Chat(SMALL, **connect_to(windowed))("hi", on_overflow="truncate")
    ask = Call(SMALL, **connect_to(windowed))
    with pytest.raises(TypeError, match="on_overflow= is not an option of call"):
        ask("hi", on_overflow="drop_oldest")
    assert windowed.chat_requests == []


def test_each_model_has_its_own_window(windowed: OpenRouterDouble) -> None:
    """A multi-model chat: the small model refuses (before sending), the big one answers and keeps its turn."""
    chat = Chat([SMALL, BIG], **connect_to(windowed))
    with pytest.raises(MultiModelError) as info:
        chat(words(1200))
    assert isinstance(info.value.errors[SMALL], ContextWindowError)
    assert [b["model"] for b in windowed.chat_requests] == [BIG]
    assert len(chat.history[BIG]) == 3
    assert len(chat.history[SMALL]) == 1

    dropping = Chat([SMALL, BIG], on_overflow="drop_oldest", **connect_to(windowed))
    dropping.set_history({SMALL: turn(0, 200, tools=True), BIG: turn(0, 200, tools=True)})
    dropping(words(700))
    assert dropping.dropped[BIG] == []
    assert len(dropping.dropped[SMALL]) == 4


def test_async_summarize(windowed: OpenRouterDouble) -> None:
    windowed.queue("short summary", model=SUMMARIZER)
    windowed.queue("async answer", model=SMALL)

    async def main() -> Any:
        chat = AsyncChat(SMALL, on_overflow="summarize", summarize_with=SUMMARIZER, **connect_to(windowed))
        chat.set_history(turn(0, 300, tools=True) + turn(1, 100, tools=False))
        answer = await chat(words(300))
        return answer, chat

    answer, chat = asyncio.run(main())
    assert answer == "async answer"
    assert len(chat.dropped) == 4
    assert chat.history[0]["content"].endswith("short summary")
    tool_pairs_intact(chat.history)


def test_streamed_turn_drops_too(windowed: OpenRouterDouble) -> None:
    windowed.queue(Text("streamed"))
    chat = Chat(SMALL, on_overflow="drop_oldest", **connect_to(windowed))
    chat.set_history(turn(0, 300, tools=False) + turn(1, 100, tools=True))
    assert "".join(chat(words(400), stream=True)) == "streamed"
    assert len(chat.dropped) == 2
    tool_pairs_intact(chat.history)


# --------------------------------------------------------------------------------------------- property

TURNS = st.lists(st.tuples(st.integers(5, 150), st.booleans()), min_size=0, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=TURNS, new=st.integers(5, 400), policy=st.sampled_from(["drop_oldest", "summarize"]))
def test_both_policies_leave_a_valid_history(
    windowed: OpenRouterDouble, shape: list[tuple[int, bool]], new: int, policy: str
) -> None:
    """Any history of whole turns (with or without tool steps), any new message: the turn either raises before
    sending, or sends a request within the window, from a history that is the system prompt, (a summary,) then the
    newest turns unchanged, and leaves a valid history with every tool call answered."""
    history = [{"role": "system", "content": "Be brief."}]
    for i, (size, tools) in enumerate(shape):
        history += turn(i, size, tools)
    before = len(windowed.chat_requests)
    windowed.queue("summary", model=SUMMARIZER)
    chat = Chat(SMALL, system="Be brief.", on_overflow=policy, summarize_with=SUMMARIZER, **connect_to(windowed))
    chat.set_history(history)
    message = words(new)
    try:
        chat(message)
    except ContextWindowError:
        assert chat.history == history
        return
    sent = [b for b in windowed.chat_requests[before:] if b["model"] == SMALL][-1]
    assert estimate_prompt_tokens(sent) <= WINDOW
    kept = sent["messages"][1:-1]
    if chat.dropped:
        assert chat.dropped[0]["role"] == "user"
        if policy == "summarize":
            assert kept[0]["content"].endswith("summary")
            kept = kept[1:]
    assert [history[0], *chat.dropped, *kept] == history
    assert chat.history[: len(sent["messages"])] == sent["messages"]
    tool_pairs_intact(chat.history)
    json.dumps(chat.history)


def test_a_summary_longer_than_asked_is_cut_to_its_room(windowed: OpenRouterDouble) -> None:
    """A server that ignores ``max_tokens`` (here the summariser rambles): the summary is cut, the request fits."""
    windowed.queue("blah " * 5000, model=SUMMARIZER)
    chat = Chat(SMALL, on_overflow="summarize", summarize_with=SUMMARIZER, **connect_to(windowed))
    chat.set_history(turn(0, 300, tools=True) + turn(1, 100, tools=False))
    assert chat(words(400)).startswith("You said:")
    sent = windowed.chat_requests[-1]
    assert sent["model"] == SMALL
    assert estimate_prompt_tokens(sent) <= WINDOW
    assert sent["messages"][0]["content"].startswith("Summary of the earlier part")  # no system prompt here


def test_openrouter_fallbacks_widen_the_window(windowed: OpenRouterDouble) -> None:
    """With OpenRouter's ``models=[...]`` a larger model may answer: the window is the largest of them (an unknown
    one means no check)."""
    chat = Chat(SMALL, models=[BIG], **connect_to(windowed))
    assert chat(words(1200)).startswith("You said:")
    with pytest.raises(ContextWindowError):
        Chat(SMALL, models=[SMALL], **connect_to(windowed))(words(1200))
    assert Chat(SMALL, models=["lab/unknown"], **connect_to(windowed))(words(1200)).startswith("You said:")
    assert [b["model"] for b in windowed.chat_requests] == [SMALL, SMALL]


def test_dropped_messages_are_saved_and_forks_keep_their_own(windowed: OpenRouterDouble, tmp_path: Any) -> None:
    chat = Chat(SMALL, on_overflow="drop_oldest", **connect_to(windowed))
    chat.set_history(turn(0, 300, tools=True) + turn(1, 100, tools=False))
    twin = chat.fork()
    chat(words(400))
    assert len(chat.dropped) == 4
    assert twin.dropped == []
    loaded = Chat.load(chat.save(tmp_path / "chat.json"), api_key=windowed.api_key)
    assert loaded.dropped == chat.dropped
    assert loaded.history == chat.history
    broken = {**chat.to_dict(), "dropped": {SMALL: [{"role": "robot", "content": "x"}]}}
    with pytest.raises(ValueError, match=r"dropped\['lab/small'\]\[0\] has role 'robot'"):
        Chat.from_dict(broken, api_key=windowed.api_key)
