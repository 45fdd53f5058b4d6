"""Edge cases found by using the new features from the outside, as a first-time user would: each test names the
user-visible behaviour it pins down, against the OpenRouter double over HTTP."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import irouter
from irouter import Call
from irouter.endpoints import unregister_endpoint
from irouter.testing import Error, OpenRouterDouble

from . import test_cli
from .test_cli import run

cli_env = test_cli.env
"""The fixture of tests/test_cli.py: the double's URL and key, and a tmp home, cache and config."""


def test_a_deferred_grid_of_a_provider_slug_sends_the_plain_model_and_its_routing(tmp_path: Path) -> None:
    """OpenRouter knows no 'x/y@provider' model: a batch carries the plain slug, and each request the provider
    routing, exactly as a normal request would; the cells keep the full name."""
    slug = "meta-llama/llama-3.3-70b-instruct@together:fp8"
    with OpenRouterDouble() as router:
        router.batches.step = 0.03
        call = Call(slug, base_url=router.base_url, api_key=router.api_key, temperature=0)
        grid = call.grid(["Hi"], store=tmp_path / "g.sqlite", deferred=True, progress=False, poll_interval=0.01)
        cells = list(grid.run())
        call("Hi")  # the same request the normal way, to compare
    [post] = [r for r in router.requests if r.method == "POST" and r.path == "/api/beta/batches"]
    body = json.loads(post.body)
    assert body["model"] == "meta-llama/llama-3.3-70b-instruct"
    [item] = body["requests"]
    normal = router.chat_requests[-1]
    assert (
        item["body"]["provider"]
        == normal["provider"]
        == {
            "order": ["together"],
            "only": ["together"],
            "allow_fallbacks": False,
            "quantizations": ["fp8"],
        }
    )
    assert {k: v for k, v in normal.items() if k != "model"} == item["body"]
    [cell] = cells
    assert cell.ok, cell.error
    assert cell.model == slug


def test_providers_of_an_unknown_model_say_what_to_do(router: OpenRouterDouble) -> None:
    with pytest.raises(irouter.NotFoundError) as caught:
        irouter.providers("no-such/model", base_url=router.base_url)
    text = str(caught.value)
    assert "Resource not found" in text
    assert "'no-such/model'" in text
    assert "irouter models" in text
    assert caught.value.model == "no-such/model"


def test_providers_of_a_local_or_registered_model_are_refused_before_any_request(
    router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", router.base_url)  # the default endpoint is the double
    irouter.register_endpoint("mine/", router.base_url, api_key="k")
    try:
        for slug in ("local/smollm2", "mine/model"):
            with pytest.raises(ValueError, match="not served through OpenRouter"):
                irouter.providers(slug)
    finally:
        unregister_endpoint("mine/")
    assert router.requests == []


def test_a_server_that_never_answers_at_start_is_stopped_before_the_error(
    router: OpenRouterDouble, connect: dict[str, str], tmp_path: Path
) -> None:
    """start_timeout= is the wait: when it passes, the silent server is stopped then and there (not left running
    while irouter waits for a session that never opened), and nothing is sent."""
    pytest.importorskip("mcp")
    import irouter.mcp
    from irouter import Chat

    pidfile = tmp_path / "pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    silent = irouter.mcp.stdio(sys.executable, "-c", code, start_timeout=1)
    chat = Chat("m/m", tools=[silent], **connect)
    with pytest.raises(irouter.mcp.MCPServerError, match=r"did not start in 1 s"):
        chat("hi")
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        os.kill(pid, 9)
        pytest.fail("the server that did not start was still running when the error was raised")
    assert router.requests == []
    chat.close()


def test_a_pickled_mcp_server_keeps_no_secret_environment_variable(router: OpenRouterDouble) -> None:
    """A common way to start a server is env=dict(os.environ): its API keys and tokens must not reach a pickle."""
    pytest.importorskip("mcp")
    import pickle

    import irouter.mcp
    from irouter import Chat

    env = {"OPENROUTER_API_KEY": router.api_key, "GITHUB_TOKEN": "ghp_s3cr3tvalue", "MODE": "fast"}
    server = irouter.mcp.stdio(sys.executable, "server.py", env=env)
    chat = Chat("m/m", tools=[server], base_url=router.base_url, api_key=router.api_key)
    for thing in (server, chat):
        data = pickle.dumps(thing)
        assert router.api_key.encode() not in data
        assert b"ghp_s3cr3tvalue" not in data
    again = pickle.loads(pickle.dumps(server))
    assert again.env == {"MODE": "fast"}
    assert server.env == env  # the live spec still starts the server with everything it was given


@pytest.mark.parametrize("env", [["A=1"], {"A": 1}, "A=1"])
def test_an_mcp_server_env_that_is_not_a_dict_of_strings_is_refused_at_once(env: object) -> None:
    pytest.importorskip("mcp")
    import irouter.mcp

    with pytest.raises(TypeError, match=r"env must be a dict of names to strings"):
        irouter.mcp.stdio(sys.executable, "server.py", env=env)  # type: ignore[arg-type]


def test_a_judge_that_replies_with_a_tool_call_is_a_failed_verdict_not_a_lost_review(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    from irouter import Chat
    from irouter.testing import Text, ToolCall

    a, b, judge = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct", "anthropic/claude-sonnet-4.5"
    chat = Chat([a, b], **connect)
    chat("Capital of Australia?")
    router.queue(Text(tool_calls=[ToolCall("lookup", {})]), model=judge)  # one pass calls a tool, the other judges
    review = chat.review(judge)
    [failed] = review.errors
    assert isinstance(failed.error, irouter.StructuredOutputError)
    assert "without a verdict" in str(failed.error)
    assert "tool_calls" in str(failed.error)
    assert len(review.verdicts) == 2
    assert [r.model for r in review.ranking] == [a, b]


def test_compare_without_a_judge_when_a_model_fails_prints_its_table(
    router: OpenRouterDouble, cli_env: dict[str, str]
) -> None:
    a, b = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"
    router.queue(Error(400, "bad request"), model=b)
    out = run(cli_env, "compare", "Hi", "-m", a, "-m", b, "--no-log")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "400: bad request" in out.stderr
    lines = out.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("model ")))
    assert lines[start].split() == ["model", "cost", "latency", "tokens"]
    assert lines[start + 1].split()[0] == a
    assert lines[start + 2].split()[::4] == [b, "failed"]


def test_the_cache_of_a_log_file_not_made_yet_is_empty(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`irouter cache clear` is safe to run first thing (say, before an eval): no file means nothing to forget,
    and no file is made; a negative --older-than is a usage error."""
    missing = tmp_path / "none" / "logs.db"
    cleared = run(cli_env, "cache", "clear", "--path", str(missing))
    assert cleared.returncode == 0, cleared.stderr
    assert "cleared 0 cached answers" in cleared.stderr
    stats = run(cli_env, "cache", "stats", "--json", "--path", str(missing))
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["entries"] == 0
    assert not missing.parent.exists()
    negative = run(cli_env, "cache", "clear", "--older-than", "-5", "--path", str(missing))
    assert negative.returncode == 2
    assert "older_than must be a number of seconds, 0 or more" in negative.stderr
    with pytest.raises(ValueError, match="older_than"):
        irouter.Log(missing).clear_cache(older_than=-1)


def test_a_misspelt_summarize_with_is_refused_before_the_first_request(router: OpenRouterDouble) -> None:
    """It is used only once the window is full, maybe hours later: the catalog check finds it at once, like a
    misspelt model or fallback."""
    from irouter import Chat, UnknownModelError

    chat = Chat(
        "openai/gpt-4o-mini",
        on_overflow="summarize",
        summarize_with="openai/gpt-4o-minii",
        check_capabilities=True,
        base_url=router.base_url,
        api_key=router.api_key,
    )
    with pytest.raises(UnknownModelError, match="'openai/gpt-4o-minii' is not in the model catalog"):
        chat("hi")
    assert router.chat_requests == []

    def weather(city: str) -> str:
        """Today's weather."""
        return "sunny"

    ok = Chat(
        "openai/gpt-4o-mini",
        on_overflow="summarize",
        summarize_with="google/gemma-3n-e2b-it:free",  # in the catalog, without tool support
        check_capabilities=True,
        tools=[weather],
        base_url=router.base_url,
        api_key=router.api_key,
    )
    ok("hi")  # the summarizer is not asked to take the chat's tools
    assert router.chat_requests[-1]["model"] == "openai/gpt-4o-mini"


def test_an_embedding_slug_with_a_provider_is_sent_as_routing(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    """'model@provider' means the same in embed() as in a chat: the plain slug and OpenRouter's provider routing
    (a server would refuse the '@' name); the result and its ledger keep the full name."""
    vectors = irouter.embed(["hello"], "openai/text-embedding-3-small@openai", provider={"sort": "price"}, **connect)
    assert router.embedding_requests[-1] == {
        "input": ["hello"],
        "model": "openai/text-embedding-3-small",
        "provider": {"sort": "price", "order": ["openai"], "only": ["openai"], "allow_fallbacks": False},
    }
    assert vectors.model == vectors.ledger[0].model == "openai/text-embedding-3-small@openai"
    with pytest.raises(ValueError, match="excludes 'openai'"):
        irouter.embed(["hello"], "openai/text-embedding-3-small@openai", provider={"ignore": ["openai"]}, **connect)
    with pytest.raises(ValueError, match="is not a quantization"):
        irouter.embed(["hello"], "openai/text-embedding-3-small@openai:fp9", **connect)
    assert len(router.embedding_requests) == 1


def test_an_embedding_that_is_not_base64_float32s_is_a_response_error(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    from irouter.testing import Raw

    for vector in ("AAAA", "not base64!"):
        router.queue_embeddings(Raw(json.dumps({"data": [{"embedding": vector, "index": 0}]}).encode()))
        with pytest.raises(irouter.APIResponseError, match="not base64 float32s"):
            irouter.embed(["hello"], **connect)


def test_an_adopted_answer_is_what_the_log_keeps_and_a_resumed_chat_goes_on_from(
    router: OpenRouterDouble, tmp_path: Path
) -> None:
    from irouter import Chat, Log

    a, b = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"
    path = tmp_path / "logs.db"
    connect = {"base_url": router.base_url, "api_key": router.api_key}
    router.queue("Canberra.", model=a)
    router.queue("Sydney.", model=b)
    chat = Chat([a, b], log=path, **connect)
    chat("Capital of Australia?")
    chat.adopt(a)
    assert Log(path).get(chat.log_id)["history"] == chat.history  # at once, not only with the next turn
    chat("Its population?")
    assert Log(path).get(chat.log_id)["history"] == chat.history
    chat.adopt(text="About 470,000.")
    again = Chat.resume(chat.log_id, log=path, **connect)
    assert again.history == chat.history
    again("And its founding year?")
    sent = router.chat_requests[-1]["messages"]
    assert sent[2] == {"role": "assistant", "content": "Canberra."}  # b goes on from the adopted answers
    assert sent[4] == {"role": "assistant", "content": "About 470,000."}
    assert Log(path).search("Sydney") == []  # the replaced answer is not found as if it were still said


def test_a_chat_that_drops_old_turns_keeps_logging_every_turn(router: OpenRouterDouble, tmp_path: Path) -> None:
    """on_overflow='drop_oldest' takes turns out of history; the log keeps everything said, in order (it used to
    stop recording new turns once history got shorter than what was logged)."""
    from irouter import Chat, Log, list_models

    path = tmp_path / "logs.db"
    list_models(router.base_url)
    slug = "google/gemma-3n-e2b-it:free"  # an 8,192-token window in the double's catalog
    chat = Chat(slug, on_overflow="drop_oldest", log=path, base_url=router.base_url, api_key=router.api_key)
    for i in range(6):
        chat(f"Question {i}: " + "word " * 1_500)
    assert chat.dropped  # turns were dropped
    logged = Log(path).get(chat.log_id)["history"][slug]
    assert [m["content"].split(":")[0] for m in logged if m["role"] == "user"] == [f"Question {i}" for i in range(6)]
    assert logged == [chat.history[0], *chat.dropped, *chat.history[1:]]
    assert Log(path).search("Question 5")[0]["id"] == chat.log_id


def test_spend_in_the_log_counts_each_request_once(router: OpenRouterDouble, tmp_path: Path) -> None:
    """reset_history(), set_history() and fork() start new conversations in the log; the requests already logged
    are not logged again with them, so `irouter logs stats` is what was spent."""
    from irouter import Chat, Log

    path = tmp_path / "logs.db"
    chat = Chat("openai/gpt-4o-mini", log=path, base_url=router.base_url, api_key=router.api_key)
    chat("one")
    chat.reset_history()
    chat("two")
    chat.set_history([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    chat("three")
    twin = chat.fork()
    twin("four")
    [day] = Log(path).stats()
    assert day["requests"] == len(router.chat_requests) == 4
    assert day["cost"] == pytest.approx(sum(e.cost for e in twin.ledger))  # the fork's ledger holds all four
    assert sorted(c["requests"] for c in Log(path).conversations()) == [1, 1, 1, 1]


def test_a_deferred_structured_cell_that_does_not_fit_fails_as_in_a_normal_grid(tmp_path: Path) -> None:
    """Both ways the reply 'not json' for a typed grid is a StructuredOutputError cell (which the next run
    retries), not a successful cell whose value is None."""
    from typing import TypedDict

    from irouter.testing import Text

    class Capital(TypedDict):
        city: str

    outcomes = {}
    for deferred in (False, True):
        with OpenRouterDouble() as router:
            router.batches.step = 0.03
            router.queue(Text(json.dumps({"city": "Paris"})), Text("not json"))
            call = Call("openai/gpt-4o-mini", response_format=Capital, base_url=router.base_url, api_key=router.api_key)
            grid = call.grid(
                ["France?", "Peru?"], store=tmp_path / f"{deferred}.sqlite", deferred=deferred, progress=False,
                poll_interval=0.01, concurrency=1,  # one at a time: the replies are queued in the prompts' order
            )  # fmt: skip
            cells = sorted(grid.run(), key=lambda c: c.prompt_id)
        outcomes[deferred] = [(c.ok, c.value, c.error.type if c.error else None) for c in cells]
        assert cells[1].cost is not None
        assert cells[1].cost > 0
    assert (
        outcomes[True] == outcomes[False] == [(True, {"city": "Paris"}, None), (False, None, "StructuredOutputError")]
    )


def test_the_judges_and_the_synthesis_are_in_the_logged_spend(router: OpenRouterDouble, tmp_path: Path) -> None:
    import asyncio

    from irouter import AsyncChat, Chat, Log

    a, b, judge = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct", "anthropic/claude-sonnet-4.5"
    path = tmp_path / "logs.db"
    connect = {"base_url": router.base_url, "api_key": router.api_key}
    chat = Chat([a, b], log=path, **connect)
    chat("Capital of Australia?")
    chat.review(judge)
    chat.synthesize(judge)

    async def main() -> Any:
        other = AsyncChat([a, b], log=path, **connect)
        await other("Capital of Peru?")
        await other.review(judge)
        await other.synthesize(judge)
        return other

    other = asyncio.run(main())
    logged = {c["id"]: c for c in Log(path).conversations()}
    for one in (chat, other):
        assert logged[one.log_id]["requests"] == len(one.ledger) == 5  # two answers, two judge passes, a synthesis
        assert logged[one.log_id]["cost"] == pytest.approx(sum(e.cost for e in one.ledger))
    by_model = {row["model"]: row["requests"] for row in Log(path).stats()}
    assert by_model[judge] == 6


def test_compare_shows_the_answers_when_the_synthesis_fails(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    a, b, chair = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct", "anthropic/claude-sonnet-4.5"
    router.queue("Canberra.", model=a)
    router.queue("Sydney.", model=b)
    router.queue(Error(503, "overloaded"), Error(503, "overloaded"), Error(503, "overloaded"), model=chair)
    out = run(cli_env, "compare", "Capital?", "-m", a, "-m", b, "--synthesize", chair, "-o", "max_retries=1")
    assert out.returncode == 1
    assert f"## {a}\n\nCanberra." in out.stdout
    assert f"## {b}\n\nSydney." in out.stdout
    assert f"irouter: error: --synthesize {chair}: 503: overloaded" in out.stderr
    router.queue("Canberra.", model=a)
    router.queue("Sydney.", model=b)
    router.queue(Error(503, "overloaded"), Error(503, "overloaded"), Error(503, "overloaded"), model=chair)
    as_json = run(
        cli_env, "compare", "Capital?", "-m", a, "-m", b, "--synthesize", chair, "--json", "-o", "max_retries=1"
    )
    report = json.loads(as_json.stdout)
    assert report["answers"] == {a: "Canberra.", b: "Sydney."}
    assert report["synthesis"] is None
    assert report["synthesis_error"].startswith("503: overloaded")


def test_the_numpy_array_of_no_texts_is_two_dimensional(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    pytest.importorskip("numpy")
    empty = irouter.embed([], **connect)
    assert empty.to_numpy().shape == (0, 0)
    assert router.requests == []  # nothing to send
    assert irouter.embed(["a", "b"], **connect).to_numpy().shape == (2, 8)


def test_a_review_with_failed_verdicts_pickles_and_copies(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    import copy
    import pickle

    from irouter import Chat
    from irouter.testing import Text

    a, b, judge = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct", "anthropic/claude-sonnet-4.5"
    chat = Chat([a, b], max_retries=0, **connect)
    chat("Capital of Australia?")
    router.queue(Error(500, "boom"), Text("not a verdict"), model=judge)
    review = chat.review(judge)
    assert sorted(type(v.error).__name__ for v in review.errors) == ["ServerError", "StructuredOutputError"]
    data = pickle.dumps(review)
    assert router.api_key.encode() not in data
    for again in (pickle.loads(data), copy.deepcopy(review)):
        assert [str(v.error) for v in again.errors] == [str(v.error) for v in review.errors]
        server = next(v.error for v in again.errors if isinstance(v.error, irouter.ServerError))
        assert (server.status, server.message, server.model) == (500, "boom", judge)
        assert again.to_dict() == review.to_dict()
