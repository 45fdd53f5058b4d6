"""Saved chats checked field by field, secrets never saved, and chats and calls that pickle without their key."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irouter
from irouter import AsyncCall, AsyncChat, Call, Chat
from irouter.testing import OpenRouterDouble, Text, ToolCall

M = "openai/gpt-4o-mini"
KEY = "sk-or-v1-" + "5ec7e7" * 10 + "beef"
"""A key that cannot be mistaken for anything else in a pickle's bytes."""


@pytest.fixture
def keyed() -> Iterator[OpenRouterDouble]:
    """A double that accepts only `KEY`."""
    with OpenRouterDouble(api_key=KEY) as double:
        yield double


def get_weather(city: str) -> str:
    """Weather."""
    return f"sunny in {city}"


def saved_chat(router: OpenRouterDouble, connect: dict) -> dict[str, Any]:
    """A real saved chat: two models, a tool step, usage and a ledger, made over HTTP."""
    chat = Chat(["a/a", "b/b"], temperature=0.3, tools=[get_weather], max_cost=5.0, allow_unpriced=True, **connect)
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), "Sunny.", model="a/a")
    chat("Weather in Oslo?")
    data = chat.to_dict()
    assert data["ledger"][0]["cost"] is not None  # the double reports a cost: the hand edit below is meaningful
    return data


# --------------------------------------------------------------------------------------------- loading checks

EDITS: list[tuple[str, Any, str]] = [
    # (where, the new value (None: remove the field), what the error must name)
    ("ledger.0.cost", "0.5", r"ledger\[0\]\['cost'\] must be a number or null, got '0.5'"),
    ("ledger.0.cost", float("nan"), r"ledger\[0\]\['cost'\]"),
    ("ledger.0.prompt_tokens", "12", r"ledger\[0\]\['prompt_tokens'\] must be a whole number"),
    ("ledger.0.prompt_tokens", -3, r"ledger\[0\]\['prompt_tokens'\]"),
    ("ledger.0.total_tokens", 1.5, r"ledger\[0\]\['total_tokens'\]"),
    ("ledger.1.streamed", "yes", r"ledger\[1\]\['streamed'\] must be true/false"),
    ("ledger.0.model", None, r"ledger\[0\] has no 'model'"),
    ("ledger.0.surprise", 1, r"ledger\[0\] has unknown fields \['surprise'\]"),
    ("ledger.0", "a request", r"ledger\[0\] must be an object"),
    ("ledger", {"a": 1}, r"'ledger' must be a list"),
    ("models", None, r"'models' must be a non-empty list"),
    ("models", "a/a", r"'models' must be a non-empty list"),
    ("models", [], r"'models' must be a non-empty list"),
    ("models", ["a/a", 7], r"'models' must be a non-empty list"),
    ("history", [], r"'history' must be an object"),
    ("history.a/a", "hello", r"history\['a/a'\] must be a list"),
    ("history.a/a.1.role", "robot", r"history\['a/a'\]\[1\] has role 'robot'"),
    ("history.a/a.1.content", 42, r"history\['a/a'\]\[1\]\['content'\] must be a string"),
    ("history.c/c", [], r"'history' names models that are not in 'models'"),
    ("usage.a/a.prompt_tokens", "5", r"usage\['a/a'\] must map token counts to whole numbers"),
    ("usage.a/a", 5, r"usage\['a/a'\]"),
    ("cost.a/a", "0.5", r"cost\['a/a'\] must be a number of dollars or null"),
    ("max_cost", "5", r"'max_cost' must be a non-negative number"),
    ("max_cost", -1, r"'max_cost' must be a non-negative number"),
    ("max_total_tokens", 2.5, r"'max_total_tokens' must be a non-negative whole number"),
    ("system", 5, r"'system' must be a string or null"),
    ("base_url", 5, r"'base_url' must be a URL string"),
    ("options", ["temperature"], r"'options' must be an object"),
    ("options.stream", True, r"Saved chat: 'options': stream= is not an option of Chat"),
    ("options.max_steps", 0, r"Saved chat: 'options': max_steps must be"),
    ("unsaved_options", "tools", r"'unsaved_options' must be a list"),
    ("format", "irouter.chat/0", r"Not a saved irouter chat"),
]


def edit(data: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the field at ``where`` (dotted; list indexes as numbers) set or removed."""
    data = copy.deepcopy(data)
    *path, last = where.split(".")
    target: Any = data
    for step in path:
        target = target[int(step)] if isinstance(target, list) else target[step]
    key: Any = int(last) if isinstance(target, list) else last
    if value is None:
        del target[key]
    else:
        target[key] = value
    return data


@pytest.mark.parametrize(("where", "value", "message"), EDITS, ids=[f"{w}={v!r}" for w, v, _ in EDITS])
def test_a_hand_edited_file_is_refused_naming_the_field(
    router: OpenRouterDouble, connect: dict, tmp_path: Path, where: str, value: Any, message: str
) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(edit(saved_chat(router, connect), where, value)))
    sent = len(router.chat_requests)
    with pytest.raises(ValueError, match=message):
        Chat.load(path, api_key=router.api_key, tools=[get_weather])
    assert len(router.chat_requests) == sent


def test_a_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "irouter.chat/1", "models": [')
    with pytest.raises(ValueError, match=r"broken.json is not a saved chat: it is not JSON"):
        Chat.load(path, api_key="k")


def test_the_callers_own_bad_option_is_reported_as_theirs(router: OpenRouterDouble, connect: dict) -> None:
    data = saved_chat(router, connect)
    with pytest.raises(ValueError, match="max_steps must be") as info:
        Chat.from_dict(data, api_key=router.api_key, max_steps=0)
    assert "Saved chat" not in str(info.value)


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
)


def leaves(data: Any, prefix: str = "") -> list[str]:
    """Every dotted path in ``data`` (objects and lists), the containers included."""
    found = []
    items = enumerate(data) if isinstance(data, list) else data.items() if isinstance(data, dict) else []
    for key, value in items:
        where = f"{prefix}{key}"
        found.append(where)
        found += leaves(value, f"{where}.")
    return found


@pytest.fixture(scope="module")
def template() -> Iterator[dict[str, Any]]:
    with OpenRouterDouble() as double:
        yield saved_chat(double, {"base_url": double.base_url, "api_key": double.api_key})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_edit_loads_into_a_working_chat_or_is_refused(
    router: OpenRouterDouble, template: dict[str, Any], data: st.DataObject
) -> None:
    """Whatever one field of a saved chat is changed to: ``ValueError``, or a chat whose accounts add up and whose
    next turn goes out over HTTP. Never a chat that loads and breaks later."""
    where = data.draw(st.sampled_from(leaves(template)))
    value = data.draw(json_values)
    changed = edit(template, where, value)
    changed["base_url"] = router.base_url
    try:
        chat = Chat.from_dict(json.loads(json.dumps(changed)), api_key=router.api_key, tools=[get_weather])
    except ValueError:
        return
    chat.max_cost = chat.max_total_tokens = None  # an edited budget may be spent already: that is not the point
    chat("one more turn")
    assert {"role": "user", "content": "one more turn"} in router.chat_requests[-1]["messages"]
    for model in chat.models:
        assert isinstance(chat.usage[model]["total_tokens"], int)
        assert chat.cost[model] is None or isinstance(chat.cost[model], float)
    json.dumps(chat.to_dict())


# --------------------------------------------------------------------------------------------- no secrets saved

SECRETS = {
    "Authorization": "Bearer sk-user-bearer-1111",
    "X-Api-Key": "xkey-2222",
    "api-key": "azure-3333",
    "Cookie": "session=4444",
    "X-Auth-Token": "tok-5555",
}


def test_secret_headers_are_never_saved(router: OpenRouterDouble, tmp_path: Path) -> None:
    secrets = {**SECRETS, "Authorization": f"Bearer {router.api_key}"}  # the key as a header, not as api_key=
    chat = Chat(M, base_url=router.base_url, extra_headers={**secrets, "X-Title": "my app"})
    chat("hi")
    assert router.requests[-1].headers["x-api-key"] == "xkey-2222"  # they were sent...
    path = chat.save(tmp_path / "chat.json")
    text = path.read_text()
    for value in [*secrets.values(), router.api_key]:  # ...and not saved
        assert value not in text
    data = json.loads(text)
    assert data["options"] == {"extra_headers": {"X-Title": "my app"}}
    assert data["unsaved_options"] == sorted(f"extra_headers[{name!r}]" for name in SECRETS)

    # loading: give the secret headers again; the saved ones stay
    loaded = Chat.load(path, extra_headers={"X-Api-Key": "xkey-again", "Authorization": f"Bearer {router.api_key}"})
    loaded("and again")
    headers = router.requests[-1].headers
    assert (headers["x-api-key"], headers["x-title"]) == ("xkey-again", "my app")
    assert "cookie" not in headers


def test_only_secret_headers_leave_no_extra_headers_option(router: OpenRouterDouble, connect: dict) -> None:
    data = Chat(M, extra_headers={"Authorization": "Bearer x"}, seed=3, **connect).to_dict()
    assert data["options"] == {"seed": 3}
    assert data["unsaved_options"] == ["extra_headers['Authorization']"]


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["authorization", "x-api-key", "api-key", "cookie", "proxy-authorization", "x-goog-api-key"]),
    upper=st.lists(st.booleans(), min_size=30, max_size=30),
    value=st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=12, max_size=40),
)
def test_no_spelling_of_a_secret_header_is_saved(name: str, upper: list[bool], value: str) -> None:
    spelled = "".join(c.upper() if up else c for c, up in zip(name, upper, strict=False))
    value = f"s3cr3t:{value}"  # never a piece of the rest of the file
    chat = Chat(M, base_url="http://127.0.0.1:9/api/v1", extra_headers={spelled: value, "X-Title": "t"})
    text = json.dumps(chat.to_dict())
    assert value not in text
    assert f"extra_headers[{spelled!r}]" in chat.to_dict()["unsaved_options"]


# --------------------------------------------------------------------------------------------- pickles

texts = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")
messages = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, texts),
    st.builds(lambda t: {"role": "assistant", "content": t}, texts),
    st.builds(
        lambda t: {"role": "user", "content": [{"type": "text", "text": t}, {"type": "text", "text": KEY[:20]}]},
        texts,
    ),
    st.builds(lambda t: {"tool_call_id": "c1", "role": "tool", "content": t}, texts),
)


def assert_no_key(blob: bytes) -> None:
    for piece in (KEY, KEY[9:], KEY[-24:]):
        assert piece.encode() not in blob
        assert piece.encode("utf-16-le") not in blob


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=st.lists(messages, max_size=6),
    system=st.one_of(st.none(), texts),
    models=st.sampled_from([[M], ["a/a", "b/b"]]),
    protocol=st.integers(2, pickle.HIGHEST_PROTOCOL),
)
def test_pickled_chats_hold_no_key_and_go_on_over_http(
    keyed: OpenRouterDouble, history: list, system: str | None, models: list[str], protocol: int
) -> None:
    chat = Chat(
        models, system=system, base_url=keyed.base_url, api_key=KEY, temperature=0.2, max_cost=3.0, allow_unpriced=True
    )
    chat.set_history({models[0]: history})
    keyed.queue("before")
    chat("before pickling")
    blob = pickle.dumps(chat, protocol=protocol)
    assert_no_key(blob)

    again = pickle.loads(blob)
    assert (again.history, again.usage, again.cost, again.ledger) == (chat.history, chat.usage, chat.cost, chat.ledger)
    assert (again.max_cost, again.defaults, again.system) == (3.0, {"temperature": 0.2}, system)
    sent = len(keyed.chat_requests)
    with pytest.raises(irouter.MissingAPIKeyError, match=r"chat\.api_key = "):
        again("after")  # the key was given as api_key=: it must be given again
    assert len(keyed.chat_requests) == sent
    assert again.history == chat.history  # the refused turn left nothing behind

    again.api_key = KEY
    again("after")
    request = keyed.requests[-1]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    first = models[0]
    expected_history = chat.history if len(models) == 1 else chat.history[first]
    sent_for_first = [r for r in keyed.chat_requests if r["model"] == first][-1]
    assert sent_for_first["messages"][:-1] == expected_history
    assert sent_for_first["temperature"] == 0.2
    assert len(again.ledger) == len(chat.ledger) + len(models)
    assert chat.ledger == again.ledger[: len(chat.ledger)]  # the original is untouched


def test_a_key_from_the_environment_is_read_again_on_unpickling(
    keyed: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", keyed.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    made = [Chat(M), Call(M), AsyncChat(M), AsyncCall(M)]
    blobs = [pickle.dumps(obj) for obj in made]
    for blob in blobs:
        assert_no_key(blob)
    chat, call, achat, acall = (pickle.loads(blob) for blob in blobs)
    assert chat("hi") == "You said: hi"
    assert call("yo") == "You said: yo"
    assert asyncio.run(achat("async hi")) == "You said: async hi"
    assert asyncio.run(acall("async yo")) == "You said: async yo"
    assert {r.headers["authorization"] for r in keyed.requests} == {f"Bearer {KEY}"}

    monkeypatch.delenv("OPENROUTER_API_KEY")  # a worker without the variable: told how to give the key
    for blob in blobs:
        again = pickle.loads(blob)
        with pytest.raises(irouter.MissingAPIKeyError, match="OPENROUTER_API_KEY"):
            again("no key here")  # async ones too: refused before an awaitable is made


def test_calls_pickle_without_the_key(keyed: OpenRouterDouble) -> None:
    for cls in (Call, AsyncCall):
        blob = pickle.dumps(cls([M, "b/b"], base_url=keyed.base_url, api_key=KEY, seed=1))
        assert_no_key(blob)
        again = pickle.loads(blob)
        again.api_key = KEY
        result = again("go")
        if cls is AsyncCall:
            result = asyncio.run(result)
        assert result == {M: "You said: go", "b/b": "You said: go"}
        assert keyed.chat_requests[-1]["seed"] == 1


def test_a_pickled_chat_goes_on_in_another_process(keyed: OpenRouterDouble, tmp_path: Path) -> None:
    """What a distributed engine does: pickle here, unpickle in a worker whose environment has the key."""
    chat = Chat(M, base_url=keyed.base_url, api_key=KEY)
    chat("remember 7")
    blob = tmp_path / "chat.pickle"
    blob.write_bytes(pickle.dumps(chat))
    assert_no_key(blob.read_bytes())
    worker = (
        "import os, pickle, sys\n"
        "chat = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "chat.api_key = os.environ['WORKER_KEY']\n"
        "print(chat('what number?'), len(chat.history))\n"
    )
    env = {**os.environ, "WORKER_KEY": KEY, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", worker, str(blob)], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["You", "said:", "what", "number?", "5"]
    assert [m["content"] for m in keyed.chat_requests[-1]["messages"][1:]] == [
        "remember 7",
        "You said: remember 7",
        "what number?",
    ]


def test_deepcopy_keeps_the_key_and_copies_the_state(keyed: OpenRouterDouble) -> None:
    for cls in (Chat, AsyncChat):
        chat = cls(M, base_url=keyed.base_url, api_key=KEY, max_total_tokens=10_000, max_tokens=50)
        twin = copy.deepcopy(chat)
        result = twin("only in the copy")
        if cls is AsyncChat:
            result = asyncio.run(result)
        assert result == "You said: only in the copy"
        assert len(twin.history) == 3
        assert len(chat.history) == 1
        assert (len(twin.ledger), len(chat.ledger)) == (1, 0)
        assert twin.max_total_tokens == 10_000
    call = copy.deepcopy(Call(M, base_url=keyed.base_url, api_key=KEY))
    assert call("copied") == "You said: copied"
    assert copy.copy(Chat(M, base_url=keyed.base_url, api_key=KEY))("shallow") == "You said: shallow"


def test_api_key_can_be_set_but_not_read(keyed: OpenRouterDouble) -> None:
    chat = Chat(M, base_url=keyed.base_url, api_key="wrong")
    with pytest.raises(irouter.AuthenticationError):
        chat("hi")
    chat.api_key = KEY
    assert chat("hi") == "You said: hi"
    with pytest.raises(AttributeError, match="can be set but not read"):
        _ = chat.api_key
    branch, twin = chat.fork(), copy.deepcopy(chat)
    branch.api_key = twin.api_key = "wrong"  # a copy's key is its own
    assert chat("still") == "You said: still"
    with pytest.raises(irouter.AuthenticationError):
        branch("no")


def test_an_async_chat_pickles_after_running_in_an_event_loop(keyed: OpenRouterDouble) -> None:
    chat = AsyncChat(M, base_url=keyed.base_url, api_key=KEY)
    asyncio.run(chat("in a first loop"))  # leaves an asyncio lock per loop behind: not picklable, made anew
    blob = pickle.dumps(chat)
    assert_no_key(blob)
    again = pickle.loads(blob)
    again.api_key = KEY
    assert asyncio.run(again("in another loop")) == "You said: in another loop"
    assert len(again.history) == 5


def test_budgets_and_system_given_to_load_override_the_saved_ones(
    router: OpenRouterDouble, connect: dict[str, str], tmp_path: Path
) -> None:
    """Raising the budget of a saved chat that ran out, on loading it (as other options are overridden)."""
    chat = Chat(M, max_cost=0.0001, max_tokens=10, **connect)
    chat("hi")
    chat.max_cost = chat.cost  # spent: the next request is refused
    path = chat.save(tmp_path / "chat.json")
    with pytest.raises(irouter.BudgetExceeded):
        Chat.load(path, **connect)("again")
    assert len(router.chat_requests) == 1
    loaded = Chat.load(path, max_cost=1.0, max_total_tokens=10**6, system="Be brief.", **connect)
    assert (loaded.max_cost, loaded.max_total_tokens, loaded.system) == (1.0, 10**6, "Be brief.")
    assert loaded("again") == "You said: again"
    assert Chat.from_dict(chat.to_dict(), max_cost=None, **connect).max_cost is None
    with pytest.raises(ValueError, match="allow_unpriced=True"):
        Chat.load(path, **{**connect, "base_url": connect["base_url"] + "/other"}, check_capabilities=False)
    unpriced = Chat.load(path, allow_unpriced=True, **{**connect, "base_url": connect["base_url"] + "/other"})
    assert unpriced.max_cost == chat.max_cost


def test_options_of_one_call_do_not_stop_a_chat_from_pickling(keyed: OpenRouterDouble) -> None:
    """A lambda hook or a local tool given to one call is not the chat's: once that turn is over the chat pickles.
    While a turn waits for tool results its options travel with it, so the unpickled chat goes on with them."""
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}

    def local_tool() -> str:
        """A tool defined inside a function: not picklable."""
        return "local"

    chat = Chat(M, base_url=keyed.base_url, api_key=KEY)
    keyed.queue(Text(tool_calls=[ToolCall("local_tool", {}, id="l")]), "done")
    assert chat("hi", tools=[local_tool], before_tool=lambda call: None) == "done"
    again = pickle.loads(pickle.dumps(chat))
    assert again.history == chat.history

    keyed.queue(Text(tool_calls=[ToolCall("lookup", {}, id="w")]), "found")
    chat("look", tools=[lookup], temperature=0.3)
    again = pickle.loads(pickle.dumps(chat))
    again.api_key = KEY
    assert again.answer_tool_calls({"w": "it"}) == "found"
    assert (keyed.chat_requests[-1]["tools"], keyed.chat_requests[-1]["temperature"]) == ([lookup], 0.3)


def test_registered_endpoints_find_their_key_again(keyed: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    from irouter import register_endpoint
    from irouter.endpoints import unregister_endpoint

    monkeypatch.setenv("MINE_KEY", KEY)
    register_endpoint("env/", keyed.base_url, api_key_env="MINE_KEY")
    register_endpoint("given/", keyed.base_url, api_key=KEY)
    try:
        blob = pickle.dumps(Chat(["env/a", "given/b"]))
        assert_no_key(blob)
        # in this process: env/ reads MINE_KEY again, given/ takes its key from the registry as it is here
        assert pickle.loads(blob)("hi") == {"env/a": "You said: hi", "given/b": "You said: hi"}
        unregister_endpoint("given/")  # a worker where the prefix is not registered: the key must be given again
        with pytest.raises(irouter.MissingAPIKeyError, match="register the endpoint of 'given/b' again"):
            pickle.loads(blob)("hi")
    finally:
        unregister_endpoint("env/")
        unregister_endpoint("given/")
