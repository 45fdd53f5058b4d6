"""Where deferred grids meet the other features of the store and the wire: provider slugs, prompt caching, the
response cache and the log in the same file, and store files written by earlier schemas. Real HTTP to the double."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx2
import pytest

from irouter import Call, Log
from irouter import _batch_wire as wire
from irouter import _store as st
from irouter._store import SCHEMA_VERSION
from irouter.testing import OpenRouterDouble

from .test_cli import env as cli_env  # noqa: F401 (a fixture)
from .test_cli import run

LLAMA = "meta-llama/llama-3.3-70b-instruct"
FAST = 0.01


@pytest.fixture
def router() -> Any:
    with OpenRouterDouble() as double:
        double.batches.step = 0.03
        yield double


def submissions(router: OpenRouterDouble) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in router.requests if r.method == "POST" and r.path == "/api/beta/batches"]


def pinned(provider: str, quantization: str | None = None) -> dict[str, Any]:
    routing: dict[str, Any] = {"order": [provider], "only": [provider], "allow_fallbacks": False}
    if quantization:
        routing["quantizations"] = [quantization]
    return routing


# --------------------------------------------------------------------------------------------- provider slugs
def test_a_deferred_grid_sends_provider_slugs_as_the_plain_model_with_routing(
    router: OpenRouterDouble, tmp_path: Path
) -> None:
    """Two providers of one model: two batches, each for the plain slug, each request pinned to its provider
    (as a normal request is); the cells keep the full slugs."""
    slugs = [f"{LLAMA}@deepinfra", f"{LLAMA}@together:fp8"]
    call = Call(slugs, base_url=router.base_url, api_key=router.api_key)
    g = call.grid(["one", "two"], store=tmp_path / "g.sqlite", progress=False, deferred=True, poll_interval=FAST)
    cells = list(g.run())

    posts = submissions(router)
    assert [p["model"] for p in posts] == [LLAMA, LLAMA]  # one batch per slug, each naming the plain model
    assert [p.get("provider") for p in posts] == [{"only": ["deepinfra"]}, {"only": ["together"]}]
    assert [list(p) for p in posts] == [["endpoint", "model", "provider", "requests"]] * 2
    routing = [[item["body"].get("provider") for item in p["requests"]] for p in posts]
    assert routing == [[pinned("deepinfra")] * 2, [pinned("together", "fp8")] * 2]
    assert router.chat_requests == []
    assert all(c.ok for c in cells), [c.error for c in cells]
    assert sorted((c.model, c.provider) for c in cells) == sorted([(slugs[0], "DeepInfra"), (slugs[1], "Together")] * 2)
    assert {c.model for c in g.results()} == set(slugs)

    # the same requests as a normal grid sends, but for the model named once by the batch
    normal = Call(slugs, base_url=router.base_url, api_key=router.api_key).grid(
        ["one", "two"], store=tmp_path / "n.sqlite", progress=False
    )
    list(normal.run())
    sent = {(b["provider"]["only"][0], b["messages"][-1]["content"]): b for b in router.chat_requests}
    for post in posts:
        for item in post["requests"]:
            body = item["body"]
            twin = sent[(body["provider"]["only"][0], body["messages"][-1]["content"])]
            assert body == {k: v for k, v in twin.items() if k not in ("model", "stream", "stream_options")}


def test_the_forecast_of_a_deferred_grid_prices_provider_slugs(router: OpenRouterDouble, tmp_path: Path) -> None:
    slug = f"{LLAMA}@deepinfra"
    call = Call([slug, LLAMA], base_url=router.base_url, api_key=router.api_key)
    forecast = call.grid(["one"], deferred=True, max_tokens=10).forecast()
    assert forecast.deferred
    assert forecast.models[slug].expected is not None
    assert forecast.models[slug].expected == pytest.approx(forecast.models[LLAMA].expected)
    assert forecast.deferred_expected == pytest.approx(forecast.expected * wire.PRICE_SHARE)


def test_the_double_takes_only_provider_only_on_a_batch(router: OpenRouterDouble) -> None:
    url = router.base_url.replace("/api/v1", "/api/beta/batches")
    headers = {"Authorization": f"Bearer {router.api_key}"}
    lines = [wire.request_line("a" * 64, {"messages": [{"role": "user", "content": "Hi"}]})]
    refused = httpx2.post(url, content=wire.submission(LLAMA, lines, provider={"order": ["x"]}), headers=headers)
    assert refused.status_code == 400
    assert "only provider.only" in refused.json()["error"]["message"]
    router.batches.step = 0
    accepted = httpx2.post(url, content=wire.submission(LLAMA, lines, provider={"only": ["together"]}), headers=headers)
    assert accepted.status_code == 202
    done = httpx2.get(f"{url}/{accepted.json()['id']}", headers=headers).json()
    assert done["results"][0]["response"]["body"]["provider"] == "Together"  # the batch's routing answered it


# --------------------------------------------------------------------------------------------- prompt caching
def test_a_deferred_grid_places_cache_breakpoints_like_a_normal_grid(tmp_path: Path) -> None:
    """``cache=True`` (Anthropic's ``cache_control`` works inside batches): the batch's requests carry the
    breakpoints the normal grid's requests carry."""
    from irouter.catalog import list_models

    from .test_caching import ANTHROPIC, catalog, marks

    with OpenRouterDouble(models=catalog()) as router:
        router.batches.step = 0.01
        list_models(router.base_url)
        kwargs = {"base_url": router.base_url, "api_key": router.api_key, "system": "Be brief."}
        options = {"cache": True, "cache_ttl": "1h", "progress": False}
        cells = list(
            Call(ANTHROPIC, **kwargs).grid(["one"], store=tmp_path / "d.sqlite", deferred=True, **options).run()
        )
        assert all(c.ok for c in cells)
        list(Call(ANTHROPIC, **kwargs).grid(["one"], store=tmp_path / "n.sqlite", **options).run())
        (normal,) = router.chat_requests
        (post,) = submissions(router)
        (item,) = post["requests"]
        assert marks(normal) == [("system", "Be brief.", "1h"), ("user", "one", "1h")]
        assert marks({"model": ANTHROPIC, **item["body"]}) == marks(normal)
        assert item["body"]["messages"] == normal["messages"]


# --------------------------------------------------------------------------------------------- older store files
DATA = Path(__file__).resolve().parent / "data" / "store"
PAIR = ["a/a", "b/b"]


def load(path: Path, dump: str) -> Path:
    with sqlite3.connect(path) as db:
        db.executescript((DATA / dump).read_text())
    return path


def rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


def version(path: Path) -> str:
    return str(rows(path, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0])


def test_a_schema_2_log_and_grid_file_migrates_to_3_and_runs_deferred(router: OpenRouterDouble, tmp_path: Path) -> None:
    """A file of schema 2 (a grid, a logged conversation, a response-cache row) opens, gets the batch tables, keeps
    its grid cells, its log and its cache, and runs a deferred grid; the cache's row is never a grid or batch cell."""
    path = load(tmp_path / "v2.sqlite", "store-v2.sql")
    assert version(path) == "2"
    call = Call(PAIR, base_url=router.base_url, api_key=router.api_key, temperature=0)
    done = list(call.grid(["What is 2+2?", "Name a colour."], store=path, progress=False).run())
    assert router.chat_requests == []
    assert sorted(c.text for c in done) == sorted(["You said: What is 2+2?", "You said: Name a colour."] * 2)
    assert version(path) == str(SCHEMA_VERSION)

    log = Log(path)
    (found,) = log.search("number")
    assert log.get(found["id"])["history"]["a/a"][-1]["content"] == "You said: Remember the number 7."
    assert log.cache_stats()["entries"] == 1

    g = call.grid(["What is 2+2?", "Say hi."], store=path, progress=False, deferred=True, poll_interval=FAST)
    assert g.forecast().models["a/a"].observed == 2  # the grid's done cells, not the cached chat answer
    cells = list(g.run())
    assert sorted((c.prompt_id, c.model, c.from_store) for c in cells) == sorted(
        [(0, m, True) for m in PAIR] + [(1, m, False) for m in PAIR]
    )
    posts = submissions(router)
    assert [len(p["requests"]) for p in posts] == [1, 1]
    (response_key,) = rows(path, "SELECT key FROM cells WHERE kind = 'response'")
    assert response_key not in {i["custom_id"] for p in posts for i in p["requests"]}
    assert rows(path, "SELECT state, kind FROM cells WHERE key = ?", response_key) == [("done", "response")]
    assert log.cache_stats()["entries"] == 1
    assert len(Log(path).search("number")) == 1


def test_a_file_with_the_unversioned_batch_tables_migrates_and_reattaches(
    router: OpenRouterDouble, tmp_path: Path
) -> None:
    """A file written by the first deferred grids (schema 1 plus batch tables made without a version bump, two
    batches still open) migrates to the current schema, and the next run re-attaches to the open batches: nothing
    is submitted again, and their cells get their answers."""
    path = load(tmp_path / "h21.sqlite", "store-v1-batches.sql")
    assert version(path) == "1"
    # the double holds the open batches under new ids: the file is made to name them (the requests are the same)
    url = router.base_url.replace("/api/v1", "/api/beta/batches")
    headers = {"Authorization": f"Bearer {router.api_key}"}
    router.batches.pause()
    for old, model in rows(path, "SELECT id, model FROM batches WHERE collected = 0"):
        keys = [k for (k,) in rows(path, "SELECT key FROM batch_cells WHERE batch = ? ORDER BY rowid", (old,))]
        lines = []
        for key in keys:
            request = json.loads(rows(path, "SELECT request FROM cells WHERE key = ?", (key,))[0][0])
            lines.append(wire.request_line(key, {"messages": request["messages"], **request["options"]}))
        new = httpx2.post(url, content=wire.submission(model, lines), headers=headers).json()["id"]
        with sqlite3.connect(path) as db:
            db.execute("UPDATE batches SET id = ? WHERE id = ?", (new, old))
            db.execute("UPDATE batch_cells SET batch = ? WHERE batch = ?", (new, old))
            db.execute("UPDATE cells SET owner = ? WHERE owner = ?", (st.BATCH_OWNER + new, st.BATCH_OWNER + old))
    before = len(submissions(router))
    router.batches.resume()

    call = Call(PAIR, base_url=router.base_url, api_key=router.api_key, temperature=0)
    g = call.grid(["Name a colour.", "Say hi."], store=path, progress=False, deferred=True, poll_interval=FAST)
    cells = list(g.run())
    assert version(path) == str(SCHEMA_VERSION)
    assert len(submissions(router)) == before  # re-attached: nothing submitted again
    assert router.chat_requests == []
    assert sorted((c.prompt_id, c.model, c.text) for c in cells) == sorted(
        (i, m, f"You said: {p}") for i, p in enumerate(["Name a colour.", "Say hi."]) for m in PAIR
    )
    assert rows(path, "SELECT COUNT(*) FROM batches WHERE collected = 0") == [(0,)]
    assert rows(path, "SELECT DISTINCT kind FROM cells") == [("grid",)]
    first = list(call.grid(["What is 2+2?"], store=path, progress=False).run())
    assert [c.from_store for c in first] == [True, True]
    assert Log(path).conversations() == []  # the log's tables are there too


def test_irouter_batches_lists_the_batches_of_older_files_and_of_a_log_file(
    router: OpenRouterDouble,
    cli_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    kept = load(tmp_path / "h21.sqlite", "store-v1-batches.sql")
    out = run(cli_env, "batches", "--store", str(kept), "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [(r["model"], r["status"], r["cells"], r["collected"]) for r in listed] == [
        ("a/a", "completed", 1, True),
        ("b/b", "completed", 1, True),
        ("a/a", "validating", 2, False),
        ("b/b", "validating", 2, False),
    ]
    log = load(tmp_path / "v2.sqlite", "store-v2.sql")
    none = run(cli_env, "batches", "--store", str(log))
    assert (none.returncode, none.stdout, none.stderr.strip()) == (0, "", "irouter: no batches")
    assert len(Log(log).search("number")) == 1  # still the log it was
    assert router.requests == []


# --------------------------------------------------------------------------------------------- options of grids
def test_grids_and_batches_refuse_a_calls_fallbacks_before_any_request(
    router: OpenRouterDouble, tmp_path: Path
) -> None:
    """A grid and `Call.batch` refuse ``fallbacks=`` as their own option; given as a default of the `Call` it would
    have run anyway (a cell answered by another model, kept under the cell's model). Refused the same way."""
    kwargs = {"base_url": router.base_url, "api_key": router.api_key}

    def no(answer: str) -> bool:
        return False

    for defaults in ({"fallbacks": ["b/b"]}, {"fallbacks": ["b/b"], "fallback_on": no}):
        call = Call(["a/a"], **kwargs, **defaults)
        for make in (
            lambda c: c.grid(["hi"], store=tmp_path / "g.sqlite", progress=False),
            lambda c: c.grid(["hi"], store=tmp_path / "g.sqlite", progress=False, deferred=True),
            lambda c: c.batch(["hi"]),
        ):
            with pytest.raises(TypeError, match=r"fallbacks= \(a default of this Call\(\.\.\.\)\) is not an option"):
                make(call)
    assert router.requests == []


def test_a_grid_takes_the_options_that_make_sense_there(router: OpenRouterDouble, tmp_path: Path) -> None:
    """A grid keeps its answers in its own store: a Call's ``cache_responses`` default is left to its calls, and
    the grid's own ``cache_responses=``/``log=`` are refused, saying why; ``cache=True`` and ``models=`` are sent."""
    kwargs = {"base_url": router.base_url, "api_key": router.api_key}
    call = Call(["a/a"], temperature=0, cache_responses=True, **kwargs)
    with pytest.raises(TypeError, match=r"cache_responses= is not an option of call\.grid.*its own store"):
        call.grid(["hi"], cache_responses=True)
    with pytest.raises(TypeError, match=r"log= is not an option of call\.grid.*belongs to a Chat"):
        call.grid(["hi"], log=True)
    assert router.requests == []
    cells = list(call.grid(["hi"], store=tmp_path / "g.sqlite", progress=False, models=["b/b"]).run())
    assert [c.text for c in cells] == ["You said: hi"]
    assert [b["models"] for b in router.chat_requests] == [["b/b"]]


# --------------------------------------------------------------------------------------------- the double's routes
def test_the_doubles_routes_coexist_and_unknown_ones_are_404(router: OpenRouterDouble) -> None:
    headers = {"Authorization": f"Bearer {router.api_key}"}
    origin = router.base_url.removesuffix("/api/v1")
    known = {
        ("GET", "/api/v1/models"): 200,
        ("GET", f"/api/v1/models/{LLAMA}/endpoints"): 200,
        ("GET", "/api/beta/batches"): 200,
        ("GET", "/api/v1/credits"): 200,
    }
    for (method, path), status in known.items():
        assert httpx2.request(method, origin + path, headers=headers).status_code == status, path
    embedded = httpx2.post(f"{router.base_url}/embeddings", json={"model": "m/e", "input": "hi"}, headers=headers)
    assert embedded.status_code == 200
    chat = httpx2.post(
        f"{router.base_url}/chat/completions",
        json={"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert chat.json()["choices"][0]["message"]["content"] == "You said: hi"
    unknown = [
        ("GET", "/api/v1/embeddings"),
        ("GET", "/api/v1/chat/completions"),
        ("POST", "/api/v1/models"),
        ("POST", "/api/v1/nothing"),
        ("DELETE", "/api/v1/models"),
        ("GET", "/api/beta/nothing"),
        ("POST", "/api/beta/batches/batch_1/cancel"),
        ("GET", "/api/beta/batches/batch_1/results"),
        ("DELETE", "/api/beta/batches"),
        ("GET", "/api/beta/batchesXYZ"),
    ]
    for method, path in unknown:
        answer = httpx2.request(method, origin + path, headers=headers, content=b"{}")
        assert answer.status_code == 404, (method, path, answer.text)
    # only what was answered counts as a chat or embeddings request
    assert router.chat_requests == [{"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]}]
    assert router.embedding_requests == [{"model": "m/e", "input": "hi"}]
    assert router.batches.ids == []


# --------------------------------------------------------------------------------------------- normal after deferred
def test_a_normal_run_collects_the_batches_a_dead_deferred_run_left(router: OpenRouterDouble, tmp_path: Path) -> None:
    """A deferred run killed after submitting; the next run of the grid is a normal one. It sends the cells no
    batch holds, and collects the open batches for the others (it neither sends them again nor waits forever)."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from .test_batches import SCRIPT, stored_batches

    store = tmp_path / "run.sqlite"
    router.batches.pause()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "IROUTER_"))}
    first = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, router.base_url, router.api_key, str(store), *PAIR],
        env={**env, "IROUTER_CACHE_DIR": str(tmp_path / "cache")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(stored_batches(store)) < 2:
        assert first.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    router.batches.resume()

    prompts = [f"Prompt number {i}" for i in range(6)]  # the 5 in the batches and one more
    call = Call(PAIR, base_url=router.base_url, api_key=router.api_key)
    cells: list[Any] = []
    grid = call.grid(prompts, store=store, progress=False, poll_interval=FAST)
    thread = threading.Thread(target=lambda: cells.extend(grid.run()), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the normal run waited forever for cells held by open batches"
    assert sorted((c.prompt_id, c.model, c.text) for c in cells) == sorted(
        (i, m, f"You said: {p}") for i, p in enumerate(prompts) for m in PAIR
    )
    assert sorted(b["messages"][-1]["content"] for b in router.chat_requests) == [prompts[5]] * 2
    assert len(submissions(router)) == 2
    assert rows(store, "SELECT COUNT(*) FROM batches WHERE collected = 0") == [(0,)]


def test_a_deferred_grid_sends_extra_headers_with_its_batches(router: OpenRouterDouble, tmp_path: Path) -> None:
    """``extra_headers=`` go with every request of a grid, the batch routes' included (a gateway that needs them
    would refuse the submission otherwise)."""
    call = Call(PAIR, base_url=router.base_url, api_key=router.api_key)
    headers = {"X-Team": "evals"}
    g = call.grid(
        ["hi"], store=tmp_path / "g.sqlite", progress=False, deferred=True, poll_interval=FAST, extra_headers=headers
    )
    assert all(c.ok for c in g.run())
    batch_requests = [r for r in router.requests if r.path.startswith("/api/beta/batches")]
    assert {r.method for r in batch_requests} == {"POST", "GET"}
    assert all(r.headers.get("x-team") == "evals" for r in batch_requests)
