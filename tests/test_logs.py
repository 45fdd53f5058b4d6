"""The conversation log and the response cache, against the double and real SQLite files: round trips of multi-model
chats with tools and images, search, going on with a logged conversation (library and CLI), a corrupt and a locked
file (another process holding the write lock), two processes logging at once, cache hits that send nothing, TTL
expiry, and a grid store of schema 1 migrating forward."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irouter import AsyncChat, Call, Chat, Log, StoreWarning
from irouter._log import ResponseCache
from irouter._store import SCHEMA_VERSION, Store
from irouter.testing import OpenRouterDouble, Text, ToolCall

from .media import png

A, B = "openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"
DATA = Path(__file__).resolve().parent / "data" / "store"


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def db_bytes(path: Path) -> bytes:
    """Every byte SQLite keeps for ``path`` (the file, its WAL and shared memory)."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def table(path: Path, sql: str) -> list[Any]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


# --------------------------------------------------------------------------------------------- the log
def test_multi_model_chat_with_tools_and_images_round_trips(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    image = tmp_path / "pixel.png"
    image.write_bytes(png(400, 400))  # its data URL is long enough to be stored apart
    router.queue(Text(tool_calls=[ToolCall("weather", {"city": "Paris"})]), "Paris is sunny.", model=A)
    router.queue("I see a pixel.", "Still the pixel.", model=B)
    router.queue("The same pixel.", model=A)
    chat = Chat([A, B], base_url=router.base_url, api_key=router.api_key, log=path, tools=[weather])
    chat(["Weather in Paris? And this image:", image])
    chat(["The image again:", image])

    data = Log(path).get(chat.log_id)
    assert data["models"] == [A, B]
    assert data["history"] == chat.history  # tool calls, tool results, images: all as they were
    assert [e["generation_id"] for e in data["ledger"]] == [e.generation_id for e in chat.ledger]
    assert [e["cost"] for e in data["ledger"]] == [e.cost for e in chat.ledger]
    assert len(chat.ledger) == 5  # A: a tool step and its answer, then one more; B: two answers
    # the image was sent four times (two turns, two models) and is stored once
    assert table(path, "SELECT COUNT(*) FROM attachments") == [(1,)]
    assert b"iVBOR" not in b"".join(row[0].encode() for row in table(path, "SELECT message FROM messages"))
    assert router.api_key.encode() not in db_bytes(path)


def test_the_key_is_never_stored(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    chat = Chat(A, base_url=router.base_url, api_key=router.api_key, log=path, temperature=0, cache_responses=True)
    chat("Hello", extra_headers={"X-Title": "key test"})
    Chat(A, base_url=router.base_url, api_key=router.api_key, log=path, temperature=0, cache_responses=True)("Hello")
    assert table(path, "SELECT COUNT(*) FROM cells WHERE kind = 'response'") == [(1,)]
    assert router.api_key.encode() not in db_bytes(path)
    assert router.api_key[-12:].encode() not in db_bytes(path)


def test_search_finds_the_conversations_with_the_words(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    connect = {"base_url": router.base_url, "api_key": router.api_key, "log": path}
    router.queue("Bananas are yellow.", "Rain is wet.", "Purple bananas exist.")
    first = Chat(A, **connect)
    first("Tell me about bananas")
    second = Chat(A, **connect)
    second("And the weather?")
    third = Chat(A, **connect)
    third("Something purple")
    log = Log(path)
    assert {r["id"] for r in log.search("bananas")} == {first.log_id, third.log_id}
    assert [r["id"] for r in log.search("rain")] == [second.log_id]
    assert [r["id"] for r in log.search('"purple bananas"')] == [third.log_id]
    assert log.search("nothing-like-this") == []
    assert "[" in log.search("rain")[0]["snippet"]  # the match is marked
    assert [r["id"] for r in log.conversations()] == [third.log_id, second.log_id, first.log_id]


def test_search_without_fts5_matches_words_as_substrings(router: OpenRouterDouble, tmp_path: Path) -> None:
    """A SQLite built without FTS5 has no index (the store notes it in ``meta``): search falls back to LIKE."""
    path = tmp_path / "logs.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'fts'")
        db.execute("DROP TABLE messages_fts")
    router.queue("Bananas are yellow.", "Rain is wet.")
    first = Chat(A, base_url=router.base_url, api_key=router.api_key, log=path)
    first("Tell me about bananas")
    Chat(A, base_url=router.base_url, api_key=router.api_key, log=path)("And the weather?")
    assert [r["id"] for r in Log(path).search("banana yellow")] == [first.log_id]


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
PART = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.builds(
        lambda b: {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b}},
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=0, max_size=600),
    ),
    st.builds(
        lambda b: {"type": "input_audio", "input_audio": {"data": b, "format": "wav"}},
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=600),
    ),
)
MESSAGE = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, TEXT),
    st.builds(lambda ps: {"role": "user", "content": ps}, st.lists(PART, min_size=1, max_size=4)),
    st.builds(lambda t: {"role": "assistant", "content": t}, TEXT),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=st.lists(st.lists(MESSAGE, min_size=1, max_size=3), min_size=1, max_size=3))
def test_any_messages_come_back_from_the_log_as_they_were(tmp_path_factory: Any, turns: list[Any]) -> None:
    from irouter._log import Turn, write_turn

    path = tmp_path_factory.mktemp("prop") / "logs.db"
    settings_ = {"models": [A, B]}
    history: dict[str, list[Any]] = {A: [], B: []}
    for messages in turns:
        new = {m: (len(history[m]), messages) for m in (A, B)}
        assert write_turn(path, Turn("c1", settings_, new, []))
        for m in (A, B):
            history[m] = history[m] + messages
    assert Log(path).get("c1")["history"] == history


def test_resume_goes_on_with_a_multi_model_conversation(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    connect = {"base_url": router.base_url, "api_key": router.api_key}
    chat = Chat([A, B], **connect, log=path, temperature=0.3)
    chat("My name is Ada.")
    logged = chat.log_id
    assert logged is not None

    again = Chat.resume(logged[:12], log=path, **connect)
    assert again.history == chat.history
    assert again.models == [A, B]
    assert again.defaults["temperature"] == 0.3
    assert again("What is my name?") == {A: "You said: What is my name?", B: "You said: What is my name?"}
    sent = router.chat_requests[-2:]
    assert all(
        [m["content"] for m in body["messages"]][1:3] == ["My name is Ada.", "You said: My name is Ada."]
        for body in sent
    )
    assert all(body["temperature"] == 0.3 for body in sent)
    assert again.log_id == logged  # the same conversation goes on in the log
    assert Log(path).get(logged)["history"] == again.history
    assert len(Log(path).conversations()) == 1

    async def main() -> Any:
        achat = AsyncChat.resume(log=path, **connect)  # the most recent conversation
        return await achat("Once more"), achat.history

    answer, history = asyncio.run(main())
    assert answer == {A: "You said: Once more", B: "You said: Once more"}
    assert Log(path).get(logged)["history"] == history


def test_resume_of_an_unknown_conversation_says_so(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with pytest.raises(FileNotFoundError):
        Chat.resume("nope", log=path)
    Chat(A, base_url=router.base_url, api_key=router.api_key, log=path)("hi")
    with pytest.raises(KeyError, match="irouter logs"):
        Chat.resume("nope", log=path)


def test_reset_history_starts_a_new_logged_conversation(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    chat = Chat(A, base_url=router.base_url, api_key=router.api_key, log=path)
    chat("one")
    first = chat.log_id
    chat.reset_history()
    chat("two")
    assert chat.log_id != first
    assert [len(Log(path).get(i)["history"][A]) for i in (first, chat.log_id)] == [3, 3]


def test_library_logs_only_when_asked(router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(os.environ["IROUTER_LOG_PATH"])
    Chat(A, base_url=router.base_url, api_key=router.api_key)("not logged")
    assert not path.exists()
    monkeypatch.setenv("IROUTER_LOG", "1")
    chat = Chat(A, base_url=router.base_url, api_key=router.api_key)
    chat("logged")
    assert [r["id"] for r in Log().conversations()] == [chat.log_id]
    assert Chat(A, base_url=router.base_url, api_key=router.api_key, log=False).log_id is None


def test_stats_sum_spend_and_tokens_per_model_and_day(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    chat = Chat([A, B], base_url=router.base_url, api_key=router.api_key, log=path)
    chat("one")
    chat("two three")
    rows = Log(path).stats()
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {A, B}
    for model in (A, B):
        entries = [e for e in chat.ledger if e.model == model]
        assert by_model[model]["requests"] == len(entries) == 2
        assert by_model[model]["prompt_tokens"] == sum(e.prompt_tokens for e in entries)
        assert by_model[model]["completion_tokens"] == sum(e.completion_tokens for e in entries)
        assert by_model[model]["cost"] == pytest.approx(chat.cost[model])
        assert by_model[model]["day"] == time.strftime("%Y-%m-%d", time.gmtime(entries[0].time))


# --------------------------------------------------------------------------------------------- never breaks a turn
def test_a_corrupt_log_gives_one_warning_and_the_chat_goes_on(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(b"this is not a SQLite database" * 100)
    chat = Chat(A, base_url=router.base_url, api_key=router.api_key, log=path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert chat("one") == "You said: one"
        assert chat("two") == "You said: two"
    assert [type(w.message) for w in caught] == [StoreWarning]
    assert str(path) in str(caught[0].message)
    assert chat.log_id is None
    assert len(router.chat_requests) == 2


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO meta VALUES ('locked by', 'another process')")
print("locked", flush=True)
time.sleep(60)
"""


def test_a_locked_log_gives_one_warning_then_catches_up(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    chat = Chat([A, B], base_url=router.base_url, api_key=router.api_key, log=path)
    chat("before the lock")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert chat("while locked") == {A: "You said: while locked", B: "You said: while locked"}
            assert chat("still locked") == {A: "You said: still locked", B: "You said: still locked"}
        assert [type(w.message) for w in caught] == [StoreWarning]
        assert "locked" in str(caught[0].message)
    finally:
        locker.kill()
        locker.wait()
    chat("after the lock")
    logged = Log(path).get(chat.log_id)
    assert logged["history"] == chat.history  # the turns written while locked were caught up
    assert len(logged["ledger"]) == len(chat.ledger) == 8


WRITER = """
import sys
from irouter import Chat
base_url, key, path, name = sys.argv[1:5]
chat = Chat(["a/a", "b/b"], base_url=base_url, api_key=key, log=path)
for i in range(10):
    chat(f"{name} message {i}")
print(chat.log_id)
"""


def test_two_processes_log_at_once(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IROUTER_LOG")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-W",
                "error::UserWarning",
                "-c",
                WRITER,
                router.base_url,
                router.api_key,
                str(path),
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("left", "right")
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "Warning" not in err
        ids.append(out.strip())
    log = Log(path)
    assert {r["id"] for r in log.conversations()} == set(ids)
    for conversation, name in zip(ids, ("left", "right"), strict=True):
        data = log.get(conversation)
        for model in ("a/a", "b/b"):
            users = [m["content"] for m in data["history"][model] if m["role"] == "user"]
            assert users == [f"{name} message {i}" for i in range(10)]
        assert len(data["ledger"]) == 20


# --------------------------------------------------------------------------------------------- schema
def test_a_schema_1_grid_store_migrates_forward(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "grid.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript((DATA / "store-v1.sql").read_text())
    assert table(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]

    call = Call(["a/a", "b/b"], base_url=router.base_url, api_key=router.api_key, temperature=0)
    grid = call.grid(["What is 2+2?", "Name a colour."], store=path, progress=False)
    cells = list(grid.run())
    assert router.chat_requests == []  # every cell came from the migrated store
    assert sorted(c.text for c in cells) == sorted(["You said: What is 2+2?", "You said: Name a colour."] * 2)
    assert table(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert table(path, "SELECT DISTINCT kind FROM cells") == [("grid",)]

    chat = Chat("a/a", base_url=router.base_url, api_key=router.api_key, log=path)  # the log's tables are there too
    chat("Logged in the grid's file")
    assert Log(path).search("grid's")[0]["id"] == chat.log_id


def test_a_newer_schema_is_refused_with_a_warning(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    chat = Chat(A, base_url=router.base_url, api_key=router.api_key, log=path)
    with pytest.warns(StoreWarning, match="newer irouter"):
        assert chat("hi") == "You said: hi"


# --------------------------------------------------------------------------------------------- the response cache
def cached_chat(router: OpenRouterDouble, cls: Any = Chat, model: Any = A, **options: Any) -> Any:
    return cls(model, base_url=router.base_url, api_key=router.api_key, temperature=0, cache_responses=True, **options)


def test_a_cache_hit_sends_nothing_and_answers_the_same(router: OpenRouterDouble) -> None:
    first = cached_chat(router)
    answer = first("What is 2+2?")
    assert len(router.chat_requests) == 1
    assert first.ledger[0].cached is False

    second = cached_chat(router)
    assert second("What is 2+2?") == answer
    assert len(router.chat_requests) == 1  # the double saw no second request
    assert second.history == first.history
    (entry,) = second.ledger
    assert entry.cached
    assert entry.cost == 0
    assert entry.total_tokens == 0
    assert entry.generation_id == first.ledger[0].generation_id
    assert second.cost == 0
    assert second.usage["total_tokens"] == 0

    streamed = cached_chat(router)
    assert "".join(streamed("What is 2+2?", stream=True)) == answer
    assert len(router.chat_requests) == 1
    assert streamed.history == first.history
    assert streamed.ledger[0].cached
    assert streamed.ledger[0].streamed


def test_a_streamed_answer_is_cached_and_served_to_both_shapes(router: OpenRouterDouble) -> None:
    router.queue(Text("Four, since two and two make four."))
    answer = "".join(cached_chat(router)("2+2?", stream=True))
    assert cached_chat(router)("2+2?") == answer == "Four, since two and two make four."
    assert "".join(cached_chat(router)("2+2?", stream=True)) == answer
    assert len(router.chat_requests) == 1


def test_async_and_multi_model_hits(router: OpenRouterDouble) -> None:
    router.queue("from A", model=A)
    router.queue("from B", model=B)

    async def main() -> list[Any]:
        first = await cached_chat(router, AsyncChat, [A, B])("Hi both")
        second_chat = cached_chat(router, AsyncChat, [A, B])
        second = await second_chat("Hi both")
        pieces = [p async for p in cached_chat(router, AsyncChat, [A, B])("Hi both", stream=True)]
        return [first, second, sorted(pieces), [e.cached for e in second_chat.ledger]]

    first, second, pieces, cached = asyncio.run(main())
    assert first == second == {A: "from A", B: "from B"}
    assert pieces == sorted([(A, "from A"), (B, "from B")])
    assert cached == [True, True]
    assert len(router.chat_requests) == 2  # one per model, the first time only


def test_a_cached_tool_call_still_runs_the_tool(router: OpenRouterDouble) -> None:
    runs: list[str] = []

    def forecast(city: str) -> str:
        """The forecast."""
        runs.append(city)
        return "rain"

    router.queue(Text(tool_calls=[ToolCall("forecast", {"city": "Oslo"})]), "Rain in Oslo.")
    first = cached_chat(router, tools=[forecast])
    assert first("Forecast for Oslo?") == "Rain in Oslo."
    second = cached_chat(router, tools=[forecast])
    assert second("Forecast for Oslo?") == "Rain in Oslo."
    assert runs == ["Oslo", "Oslo"]  # both turns ran the tool
    assert len(router.chat_requests) == 2  # the second turn's two requests came from the cache
    assert second.history == first.history
    assert [e.cached for e in second.ledger] == [True, True]


def test_only_answers_meant_to_repeat_are_cached(router: OpenRouterDouble) -> None:
    connect = {"base_url": router.base_url, "api_key": router.api_key}
    for temperature in (None, 0.7):  # unset: the provider's default, which is usually above zero
        for _ in range(2):
            Chat(A, **connect, cache_responses=True, temperature=temperature)("Poem?")
    assert len(router.chat_requests) == 4
    for _ in range(2):
        Chat(A, **connect, cache_responses="always", temperature=0.7)("Poem?")
    assert len(router.chat_requests) == 5


def test_fields_that_do_not_change_the_answer_are_not_in_the_key(router: OpenRouterDouble) -> None:
    cached_chat(router)("Hi", user="alice", metadata={"run": "1"})
    cached_chat(router)("Hi", user="bob", session_id="s2")
    assert len(router.chat_requests) == 1
    cached_chat(router)("Hi", max_tokens=50)  # this one may change the answer
    cached_chat(router, model="openai/gpt-4o")("Hi")
    assert len(router.chat_requests) == 3


def test_call_and_the_environment_turn_the_cache_on(router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    call = Call(A, base_url=router.base_url, api_key=router.api_key, temperature=0)
    call("Hi", cache_responses=True)
    assert call("Hi", cache_responses=True) == "You said: Hi"
    assert len(router.chat_requests) == 1
    call("Hi")  # not asked for: sent
    assert len(router.chat_requests) == 2
    monkeypatch.setenv("IROUTER_CACHE", "1")
    call("Hi")
    assert len(router.chat_requests) == 2
    call("Hi", cache_responses=False)
    assert len(router.chat_requests) == 3


@pytest.mark.parametrize(
    ("options", "error"),
    [({"cache_responses": "yes"}, "cache_responses must be"), ({"cache_responses_ttl": -1}, "positive number")],
)
def test_bad_cache_settings_raise_before_any_request(router: OpenRouterDouble, options: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Chat(A, base_url=router.base_url, api_key=router.api_key)("Hi", **options)
    assert router.requests == []


def test_answers_expire_after_the_ttl(router: OpenRouterDouble) -> None:
    cached_chat(router, cache_responses_ttl=0.05)("Hi")
    time.sleep(0.3)
    cached_chat(router, cache_responses_ttl=0.05)("Hi")
    assert len(router.chat_requests) == 2
    cached_chat(router, cache_responses_ttl=3600)("Hi")  # the fresh answer is served
    assert len(router.chat_requests) == 2


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(age=st.floats(0, 1000), ttl=st.floats(0.001, 1000))
def test_ttl_decides_on_the_stored_answers_age(tmp_path: Path, age: float, ttl: float) -> None:
    """The cache with a clock of its own: an answer ``age`` seconds old is served exactly while ``age <= ttl``."""
    now = [1_000_000.0]
    body = {"model": A, "messages": [{"role": "user", "content": f"{age} {ttl}"}], "temperature": 0}
    cache = ResponseCache(tmp_path / "c.db", "http://x", ttl=ttl, clock=lambda: now[0])
    from irouter._wire import parse_completion

    reply = parse_completion({"choices": [{"message": {"role": "assistant", "content": "hi"}}]})
    cache.put(A, body, reply)
    now[0] += age
    found = cache.get(A, body)
    assert (found is not None) == (age <= ttl)
    if found is not None:
        assert found == reply


def test_cache_stats_and_clear(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    first = cached_chat(router, log=path)
    first("Hi")
    for _ in range(2):
        cached_chat(router, log=path)("Hi")
    cached_chat(router, log=path)("Other")
    log = Log(path)
    stats = log.cache_stats()
    assert (stats["entries"], stats["hits"]) == (2, 2)
    assert first.cost > 0
    assert stats["saved"] == pytest.approx(2 * first.cost)
    assert log.clear_cache() == 2
    assert log.cache_stats()["entries"] == 0
    cached_chat(router, log=path)("Hi")
    assert len(router.chat_requests) == 3
    assert len(log.conversations()) == 5  # the log keeps its conversations


# --------------------------------------------------------------------------------------------- the command line
def cli(router: OpenRouterDouble, tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "IROUTER_", "XDG_"))}
    env.update(
        OPENROUTER_BASE_URL=router.base_url,
        OPENROUTER_API_KEY=router.api_key,
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        IROUTER_CACHE_DIR=str(tmp_path / "cache"),
        NO_COLOR="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "irouter", *args], capture_output=True, text=True, env=env, input=stdin, timeout=120
    )


def test_the_cli_logs_and_goes_on(router: OpenRouterDouble, tmp_path: Path) -> None:
    out = cli(router, tmp_path, "Remember the word mango", "-m", "a/a", "--no-check")
    assert out.returncode == 0, out.stderr
    path = tmp_path / "data" / "irouter" / "logs.db"  # the user data folder (XDG_DATA_HOME)
    (row,) = Log(path).conversations()
    assert cli(router, tmp_path, "Not kept", "-m", "a/a", "--no-log").returncode == 0
    assert len(Log(path).conversations()) == 1

    out = cli(router, tmp_path, "chat", "--continue", "--no-stats", stdin="What was the word?\n")
    assert out.returncode == 0, out.stderr
    assert f"continuing {row['id']}" in out.stderr
    sent = [m["content"] for m in router.chat_requests[-1]["messages"]]
    assert sent[1:] == ["Remember the word mango", "You said: Remember the word mango", "What was the word?"]
    assert len(Log(path).get(row["id"])["history"]["a/a"]) == 5

    listed = cli(router, tmp_path, "logs", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [row["id"]]
    found = cli(router, tmp_path, "logs", "-q", "mango", "--json")
    assert [r["id"] for r in json.loads(found.stdout)] == [row["id"]]
    assert json.loads(cli(router, tmp_path, "logs", "-q", "papaya", "--json").stdout) == []
    shown = cli(router, tmp_path, "logs", "show", row["id"][:10], "--json")
    assert json.loads(shown.stdout)["history"] == Log(path).get(row["id"])["history"]
    text = cli(router, tmp_path, "logs", "show")
    assert "**User:** What was the word?" in text.stdout
    stats = json.loads(cli(router, tmp_path, "logs", "stats", "--json").stdout)
    assert [(r["model"], r["requests"]) for r in stats] == [("a/a", 2)]
    missing = cli(router, tmp_path, "logs", "show", "nope")
    assert missing.returncode == 2
    assert "irouter logs" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_cli_cache_commands(router: OpenRouterDouble, tmp_path: Path) -> None:
    path = tmp_path / "data" / "irouter" / "logs.db"
    for _ in range(2):
        cached_chat(router, log=path)("Hi")
    stats = json.loads(cli(router, tmp_path, "cache", "stats", "--json").stdout)
    assert (stats["entries"], stats["hits"]) == (1, 1)
    out = cli(router, tmp_path, "cache", "clear")
    assert out.returncode == 0
    assert "cleared 1" in out.stderr
    assert Log(path).cache_stats()["entries"] == 0


def test_a_chat_without_log_or_cache_never_loads_sqlite(router: OpenRouterDouble) -> None:
    code = (
        "import sys\nfrom irouter import Chat\n"
        f"Chat('a/a', base_url={router.base_url!r}, api_key={router.api_key!r})('hi')\n"
        "print('sqlite3' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}  # coverage itself loads sqlite3
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_the_cli_keeps_logging_after_model_switch(router: OpenRouterDouble, tmp_path: Path) -> None:
    stdin = "Hello there\n/model b/b\nAnd again\n"
    out = cli(router, tmp_path, "chat", "-m", "a/a", "--no-check", "--no-stats", stdin=stdin)
    assert out.returncode == 0, out.stderr
    latest = Log(tmp_path / "data" / "irouter" / "logs.db").get()
    assert latest["models"] == ["b/b"]
    users = [m["content"] for m in latest["history"]["b/b"] if m["role"] == "user"]
    assert users == ["Hello there", "And again"]


def test_a_locked_file_still_serves_cached_answers(
    router: OpenRouterDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers never wait for a writer (WAL): while another process holds the write lock, a cached answer is served
    (its hit is not counted) and nothing is sent."""
    path = tmp_path / "logs.db"
    monkeypatch.setenv("IROUTER_LOG_PATH", str(path))  # the cache's file, for chats that are not logged
    answer = cached_chat(router)("Hi")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert cached_chat(router)("Hi") == answer  # not logged: only the cache touches the file
    finally:
        locker.kill()
        locker.wait()
    assert len(router.chat_requests) == 1
