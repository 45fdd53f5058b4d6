"""Grids against the double over real HTTP: per-cell accounting, failures as values, resume, duplicates, the
forecast and the cap, rate-limit back-off, tools and typed output per cell, the async grid."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import irouter
from irouter import AsyncCall, Call, Cell, CellError
from irouter.testing import Error, OpenRouterDouble, Raw, Text, ToolCall, model_record

PRICES = (0.000001, 0.000002)
"""Dollars per prompt and completion token, in the catalog and in the double's reported cost: the same."""
A, B = "lab/a", "lab/b"


def catalog(max_completion: int = 200) -> list[dict[str, Any]]:
    records = [
        model_record(m, m, 8000, ["text"], f"{PRICES[0]:.6f}", f"{PRICES[1]:.6f}", ["max_tokens", "tools"])
        for m in (A, B)
    ]
    for record in records:
        record["top_provider"]["max_completion_tokens"] = max_completion
    return records


@pytest.fixture
def double() -> Iterator[OpenRouterDouble]:
    with OpenRouterDouble(models=catalog(), prices=PRICES) as router:
        yield router


def make(double: OpenRouterDouble, models: Any = (A, B), cls: Any = Call, **defaults: Any) -> Any:
    return cls(list(models), base_url=double.base_url, api_key=double.api_key, **defaults)


def by_key(cells: list[Cell]) -> dict[tuple[Any, str], Cell]:
    return {(c.prompt_id, c.model): c for c in cells}


def test_every_cell_comes_back_with_its_accounts(double: OpenRouterDouble, tmp_path: Path) -> None:
    grid = make(double, temperature=0).grid(["one two", "three"], store=tmp_path / "g.sqlite", progress=False)
    cells = list(grid.run())
    assert sorted((c.prompt_id, c.model) for c in cells) == [(0, A), (0, B), (1, A), (1, B)]
    bodies = double.chat_requests
    assert len(bodies) == 4
    assert all(b["temperature"] == 0 for b in bodies)
    cell = by_key(cells)[(0, A)]
    assert cell.ok
    assert cell.text == "You said: one two"
    assert cell.value == cell.text
    assert cell.requests == 1
    assert not cell.from_store
    # the double counts words plus three per message; the cost is what it reported
    assert (cell.prompt_tokens, cell.completion_tokens) == (5, 4)
    assert cell.cost == pytest.approx(5 * PRICES[0] + 4 * PRICES[1])
    assert cell.served_model == A
    assert cell.finish_reason == "stop"
    assert cell.latency is not None


def test_a_tool_loop_per_cell_sums_its_requests(double: OpenRouterDouble, tmp_path: Path) -> None:
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    double.queue(Text(tool_calls=[ToolCall("weather", {"city": "Paris"})]), Text("It is sunny."))
    cells = list(make(double, [A]).grid(["Weather?"], store=tmp_path / "g.sqlite", tools=[weather]).run())
    (cell,) = cells
    assert cell.text == "It is sunny."
    assert cell.requests == 2
    first, second = double.chat_requests
    assert first["tools"][0]["function"]["name"] == "weather"
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == "sunny in Paris"
    # two requests' usage summed: every cent the double reported is on the cell
    usages = list(double.generations.values())
    assert cell.cost == pytest.approx(sum(g["total_cost"] for g in usages))
    assert cell.prompt_tokens == sum(g["tokens_prompt"] for g in usages)
    assert cell.completion_tokens == sum(g["tokens_completion"] for g in usages)


class City(BaseModel):
    name: str
    population: int


def test_a_typed_response_format_gives_parsed_values_also_from_the_store(
    double: OpenRouterDouble, tmp_path: Path
) -> None:
    double.default = lambda body: Text('{"name": "Paris", "population": 2100000}')
    grid = make(double).grid(["Paris?"], store=tmp_path / "g.sqlite", response_format=City)
    cells = list(grid.run())
    assert all(c.value == City(name="Paris", population=2100000) for c in cells)
    assert double.chat_requests[0]["response_format"]["type"] == "json_schema"
    assert cells[0].to_dict()["value"] == {"name": "Paris", "population": 2100000}
    again = list(grid.results())
    assert [c.value for c in again] == [City(name="Paris", population=2100000)] * 2
    assert all(c.from_store for c in again)


def test_failures_are_values_and_no_cell_is_lost(double: OpenRouterDouble, tmp_path: Path) -> None:
    def answer(body: dict[str, Any]) -> Any:
        if body["model"] == B:
            return Error(400, "Provider rejected the input")
        return Text("fine")

    double.default = answer
    cells = list(make(double).grid([f"p{i}" for i in range(5)], store=tmp_path / "g.sqlite").run())
    assert len(cells) == 10
    failed = [c for c in cells if not c.ok]
    assert sorted(c.prompt_id for c in failed) == [0, 1, 2, 3, 4]
    assert {c.model for c in failed} == {B}
    assert failed[0].error == CellError("BadRequestError", 400, "Provider rejected the input")
    assert failed[0].text is None
    assert failed[0].to_dict()["error"]["status"] == 400
    assert all(c.ok and c.text == "fine" for c in cells if c.model == A)


def test_a_second_run_sends_nothing_for_done_cells(double: OpenRouterDouble, tmp_path: Path) -> None:
    prompts = [{"id": f"q{i}", "prompt": f"question {i}"} for i in range(6)]
    grid = make(double).grid(prompts, store=tmp_path / "g.sqlite")
    first = list(grid.run())
    sent = len(double.chat_requests)
    assert sent == 12
    again = make(double).grid(prompts, store=tmp_path / "g.sqlite")
    second = list(again.run())
    assert len(double.chat_requests) == sent
    assert all(c.from_store for c in second)
    assert by_key(second).keys() == by_key(first).keys()
    assert {k: c.text for k, c in by_key(second).items()} == {k: c.text for k, c in by_key(first).items()}
    assert again.forecast().cells_to_send == 0


def test_duplicate_cells_are_sent_once_and_answer_every_row(double: OpenRouterDouble, tmp_path: Path) -> None:
    prompts = ["same", "other", "same", {"id": "x", "prompt": "same"}]
    cells = list(make(double, [A]).grid(prompts, store=tmp_path / "g.sqlite").run())
    assert sorted(str(c.prompt_id) for c in cells) == ["0", "1", "2", "x"]
    assert len(double.chat_requests) == 2
    assert len({c.key for c in cells}) == 2
    assert all(c.text == "You said: same" for c in cells if c.prompt_id != 1)


def test_prompt_ids_must_be_unique(double: OpenRouterDouble, tmp_path: Path) -> None:
    grid = make(double).grid([{"id": 1, "prompt": "a"}, {"id": 1, "prompt": "b"}], store=tmp_path / "g.sqlite")
    with pytest.raises(ValueError, match="unique 'id'"):
        list(grid.run())
    assert double.chat_requests == []


def test_retry_failed_chooses_whether_failed_cells_are_sent_again(double: OpenRouterDouble, tmp_path: Path) -> None:
    double.queue(Error(400, "bad luck"), model=A)
    store = tmp_path / "g.sqlite"
    first = by_key(list(make(double, [A]).grid(["x", "y"], store=store, concurrency=1).run()))
    assert not first[(0, A)].ok
    assert first[(1, A)].ok
    assert len(double.chat_requests) == 2
    kept = by_key(list(make(double, [A]).grid(["x", "y"], store=store, retry_failed=False).run()))
    assert len(double.chat_requests) == 2
    assert kept[(0, A)].error == first[(0, A)].error
    assert kept[(0, A)].from_store
    retried = by_key(list(make(double, [A]).grid(["x", "y"], store=store).run()))
    assert len(double.chat_requests) == 3
    assert retried[(0, A)].ok
    assert not retried[(0, A)].from_store
    assert retried[(1, A)].from_store


def test_options_change_the_key_and_stream_does_not(double: OpenRouterDouble, tmp_path: Path) -> None:
    call = make(double, [A])
    key = next(iter(call.grid(["x"], store=tmp_path / "1.sqlite").run())).key
    hotter = next(iter(call.grid(["x"], store=tmp_path / "2.sqlite", temperature=1).run())).key
    again = next(iter(call.grid(["x"], store=tmp_path / "3.sqlite").run())).key
    assert key == again != hotter


def test_the_store_never_holds_the_api_key(double: OpenRouterDouble, tmp_path: Path) -> None:
    store = tmp_path / "g.sqlite"
    list(make(double).grid(["secret?"], store=store, extra_headers={"X-Trace": "1"}).run())
    for name in [store, *tmp_path.glob("g.sqlite-*")]:
        assert double.api_key.encode() not in Path(name).read_bytes()


# --------------------------------------------------------------------------------------------- forecast and cap
def test_the_forecast_brackets_the_real_cost(double: OpenRouterDouble, tmp_path: Path) -> None:
    prompts = [f"tell me about topic number {i} in a few words" for i in range(12)]
    grid = make(double).grid(prompts, store=tmp_path / "g.sqlite", max_tokens=60)
    forecast = grid.forecast()
    assert double.chat_requests == []
    assert forecast.cells == forecast.cells_to_send == 24
    cells = list(grid.run())
    real = sum(c.cost for c in cells)
    assert forecast.low is not None
    assert forecast.high is not None
    assert forecast.low <= real <= forecast.high
    for model, part in forecast.models.items():
        spent = sum(c.cost for c in cells if c.model == model)
        assert part.low <= spent <= part.high
    # after the run the expected bound uses the answers seen: a fresh grid of the same shape is forecast closer
    fresh = make(double).grid([p + "!" for p in prompts], store=tmp_path / "g.sqlite", max_tokens=60).forecast()
    assert fresh.models[A].observed == 12
    assert abs(fresh.expected - real) < abs(forecast.expected - real)
    assert "total" in str(forecast)
    assert forecast.to_dict()["total"]["cells"] == 24


def test_a_run_expected_to_cost_more_than_max_cost_is_refused_before_sending(
    double: OpenRouterDouble, tmp_path: Path
) -> None:
    grid = make(double).grid(["a", "b"], store=tmp_path / "g.sqlite", max_cost=1e-9)
    with pytest.raises(irouter.BudgetExceeded, match="force=True"):
        list(grid.run())
    assert double.chat_requests == []


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 12), share=st.floats(0.05, 1.2), concurrency=st.integers(1, 8))
def test_max_cost_is_never_exceeded(
    tmp_path_factory: pytest.TempPathFactory, n: int, share: float, concurrency: int
) -> None:
    """Every answer uses every completion token allowed; with force=True the run goes on until the cap stops
    it, and what was spent never passes max_cost."""
    max_tokens = 50
    usage = {"prompt_tokens": 5, "completion_tokens": max_tokens, "total_tokens": 5 + max_tokens}
    usage["cost"] = 5 * PRICES[0] + max_tokens * PRICES[1]
    with OpenRouterDouble(models=catalog(), prices=PRICES, latency=0.02) as router:
        router.default = lambda body: Text("long", usage=usage)
        cap = share * n * 2 * usage["cost"]
        grid = make(router).grid(
            [f"p{i}" for i in range(n)],
            store=tmp_path_factory.mktemp("cap") / "g.sqlite",
            max_cost=cap,
            max_tokens=max_tokens,
            concurrency=concurrency,
            force=True,
        )
        cells = list(grid.run())
        assert len(cells) == 2 * n
        spent = sum(c.cost or 0.0 for c in cells)
        assert spent <= cap + 1e-12
        assert len(router.chat_requests) == sum(1 for c in cells if c.ok)
        assert {c.error.type for c in cells if not c.ok} <= {"BudgetExceeded"}


# --------------------------------------------------------------------------------------------- rate limits
@pytest.mark.parametrize(
    "error",
    [
        Error(429, "Rate limit exceeded", retry_after=0.3),
        Error(402, "Too many requests in flight", metadata={"reason": "in_flight_budget_exhausted"}, retry_after=0.3),
    ],
)
def test_rate_limits_are_waited_out(double: OpenRouterDouble, tmp_path: Path, error: Error) -> None:
    double.queue(error)
    cells = list(make(double, [A]).grid(["x", "y", "z"], store=tmp_path / "g.sqlite", concurrency=1).run())
    assert all(c.ok for c in cells)
    times = [r.time for r in double.requests if r.path.endswith("/chat/completions")]
    assert len(times) == 4  # the limited request, sent again, then the others
    assert times[1] - times[0] >= 0.25  # Retry-After honoured before the next request


def test_a_grid_waits_for_long_retry_after_by_default(double: OpenRouterDouble, tmp_path: Path) -> None:
    """A call raises at once when the server asks for more than 60 s; a grid's default is to wait (600 s), unless
    max_retry_wait= says otherwise."""
    grid = make(double, [A]).grid(["x"], store=tmp_path / "g.sqlite")
    assert grid._plan.max_retry_wait >= 600
    call_plan = make(double, [A])._plan({}, "call(...)")
    assert call_plan.max_retry_wait == 60
    own = make(double, [A]).grid(["x"], store=tmp_path / "g.sqlite", max_retry_wait=5)
    assert own._plan.max_retry_wait == 5


def test_rpm_spaces_requests(double: OpenRouterDouble, tmp_path: Path) -> None:
    list(make(double, [A]).grid([f"p{i}" for i in range(8)], store=tmp_path / "g.sqlite", rpm=240).run())
    times = sorted(r.time for r in double.requests if r.path.endswith("/chat/completions"))
    # 240 a minute: four at once (a second's worth), then four a second
    assert len(times) == 8
    assert times[-1] - times[0] >= 0.75
    with pytest.raises(ValueError, match="rpm"):
        make(double, [A]).grid(["x"], rpm=0)
    with pytest.raises(ValueError, match="not one of this grid's models"):
        make(double, [A]).grid(["x"], tpm={"z/z": 10})


# --------------------------------------------------------------------------------------------- stopping
def test_breaking_out_releases_claims_and_a_rerun_finishes(tmp_path: Path) -> None:
    with OpenRouterDouble(models=catalog(), prices=PRICES, latency=0.3) as router:
        store = tmp_path / "g.sqlite"
        grid = make(router).grid([f"p{i}" for i in range(8)], store=store, concurrency=2)
        for _ in grid.run():
            break
        db = sqlite3.connect(store)
        states = dict(db.execute("SELECT state, COUNT(*) FROM cells GROUP BY state").fetchall())
        assert "running" not in states
        done = states.get("done", 0)
        assert 1 <= done < 16
        sent = len(router.chat_requests)
        time.sleep(0.4)  # requests abandoned in flight may still land on the double
        rest = list(make(router).grid([f"p{i}" for i in range(8)], store=store).run())
        assert len(rest) == 16
        assert all(c.ok for c in rest)
        assert sum(c.from_store for c in rest) == done
        assert len(router.chat_requests) - sent <= 16 - done + 2  # no done cell is sent again


def test_bad_arguments_raise_before_anything_is_sent(double: OpenRouterDouble) -> None:
    call = make(double)
    with pytest.raises(TypeError, match="list of prompts"):
        call.grid("one prompt")
    with pytest.raises(ValueError, match="concurrency"):
        call.grid(["x"], concurrency=0)
    with pytest.raises(TypeError, match=r"raw= is not an option of call\.grid"):
        call.grid(["x"], raw=True)
    with pytest.raises(ValueError, match="max_cost"):
        call.grid(["x"], max_cost=-1)
    assert double.chat_requests == []


# --------------------------------------------------------------------------------------------- async
def test_an_async_grid_streams_cells(double: OpenRouterDouble, tmp_path: Path) -> None:
    async def main() -> list[Cell]:
        call = make(double, cls=AsyncCall)
        grid = call.grid(["a", "b", "c"], store=tmp_path / "g.sqlite")
        return [cell async for cell in grid.run()]

    cells = asyncio.run(main())
    assert len(cells) == 6
    assert all(c.ok for c in cells)
    assert len(double.chat_requests) == 6
    assert asyncio.run(main())
    assert len(double.chat_requests) == 6


def test_results_without_a_run_list_nothing_then_everything(double: OpenRouterDouble, tmp_path: Path) -> None:
    grid = make(double).grid(["a", "b"], store=tmp_path / "g.sqlite")
    assert grid.results().records() == []
    list(grid.run())
    results = grid.results()
    assert len(results) == 4
    out = tmp_path / "cells.jsonl"
    assert results.to_jsonl(out) == 4
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["model"] for r in rows} == {A, B}
    assert all(r["error"] is None for r in rows)


def test_a_tool_raising_keyboard_interrupt_stops_the_run_and_releases_claims(tmp_path: Path) -> None:
    def stop() -> str:
        """Stop."""
        raise KeyboardInterrupt

    with OpenRouterDouble(models=catalog(), prices=PRICES, latency=0.05) as router:
        router.default = lambda body: Text(tool_calls=[ToolCall("stop", {})])
        store = tmp_path / "g.sqlite"
        grid = make(router, [A]).grid([f"p{i}" for i in range(8)], store=store, tools=[stop], concurrency=2)
        with pytest.raises(KeyboardInterrupt):
            list(grid.run())
        assert len(router.chat_requests) <= 3  # the cells in flight, and no new one after the interruption
        states = dict(sqlite3.connect(store).execute("SELECT state, COUNT(*) FROM cells GROUP BY state").fetchall())
        assert states == {"pending": 8}


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_tool_raising_keyboard_interrupt_stops_a_batch(flavour: str) -> None:
    def stop() -> str:
        """Stop."""
        raise KeyboardInterrupt

    with OpenRouterDouble(latency=0.05) as router:
        router.default = lambda body: Text(tool_calls=[ToolCall("stop", {})])
        prompts = [f"p{i}" for i in range(8)]
        connect = {"base_url": router.base_url, "api_key": router.api_key, "tools": [stop]}

        def batch() -> Any:
            if flavour == "sync":
                return Call("m/m", **connect).batch(prompts, concurrency=2)
            return asyncio.run(AsyncCall("m/m", **connect).batch(prompts, concurrency=2))

        with pytest.raises(KeyboardInterrupt):
            batch()
        assert len(router.chat_requests) <= 3


def test_batch_backs_off_on_rate_limits_and_keeps_its_shape(double: OpenRouterDouble) -> None:
    double.queue(Error(429, "Rate limit exceeded", retry_after=0.2))
    results = make(double, [A]).batch(["x", "y"], concurrency=2)
    assert sorted(results) == ["You said: x", "You said: y"]
    assert len(double.chat_requests) == 3


def test_progress_is_a_live_line_on_stderr_when_asked_and_quiet_otherwise(
    double: OpenRouterDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    double.queue(Error(400, "no"), model=B)
    list(make(double).grid(["a", "b"], store=tmp_path / "1.sqlite", progress=True, concurrency=1).run())
    err = capsys.readouterr().err
    assert "\r" in err
    assert "grid: 4/4 done, 1 failed" in err
    assert "cells/s" in err
    assert err.endswith("\n")
    list(make(double).grid(["a", "b"], store=tmp_path / "2.sqlite").run())  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_max_cost_on_a_model_without_prices_asks_for_force(router: OpenRouterDouble, tmp_path: Path) -> None:
    call = Call("lab/unlisted", base_url=router.base_url, api_key=router.api_key)
    forecast = call.grid(["a"], store=tmp_path / "g.sqlite").forecast()
    assert forecast.expected is None
    assert "?" in str(forecast)
    with pytest.raises(ValueError, match="force=True"):
        list(call.grid(["a"], store=tmp_path / "g.sqlite", max_cost=1.0).run())
    assert router.chat_requests == []
    cells = list(call.grid(["a"], store=tmp_path / "g.sqlite", max_cost=1.0, force=True).run())
    assert [c.ok for c in cells] == [True]


def test_a_call_with_a_sync_http_client_runs_its_grid_through_that_client(
    double: OpenRouterDouble, tmp_path: Path
) -> None:
    import httpx2

    seen: list[str] = []
    with httpx2.Client(event_hooks={"request": [lambda request: seen.append(str(request.url))]}) as client:
        call = make(double, http_client=client)
        cells = list(call.grid(["x", "y"], store=tmp_path / "g.sqlite").run())
    assert [c.ok for c in cells] == [True] * 4
    # every chat request went through it (and the catalog fetch for prices too, as for a chat)
    assert len([u for u in seen if u.endswith("/chat/completions")]) == len(double.chat_requests) == 4


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=8),
    second=st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), max_size=8),
)
def test_each_distinct_cell_is_sent_once_across_runs(
    tmp_path_factory: pytest.TempPathFactory, first: list[str], second: list[str]
) -> None:
    """Two grids on one store, with repeated prompts: the double sees each distinct (model, prompt) once, and
    every row of each grid gets its cell."""
    with OpenRouterDouble(models=catalog(), prices=PRICES) as router:
        store = tmp_path_factory.mktemp("once") / "g.sqlite"
        one = list(make(router).grid(first, store=store, concurrency=3).run())
        two = list(make(router).grid(second, store=store, concurrency=3).run())
        assert len(one) == 2 * len(first)
        assert len(two) == 2 * len(second)
        sent = [(b["model"], b["messages"][-1]["content"]) for b in router.chat_requests]
        assert sorted(sent) == sorted({(m, p) for p in first + second for m in (A, B)})
        assert all(c.text == f"You said: {second[c.prompt_id]}" for c in two)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_streamed_grid_reports_time_to_first_token(tmp_path: Path, flavour: str) -> None:
    with OpenRouterDouble(models=catalog(), prices=PRICES) as router:
        router.default = lambda body: Text("streamed answer", delay=0.1)
        store = tmp_path / "g.sqlite"
        if flavour == "sync":
            cells = list(make(router).grid(["x"], store=store, stream=True).run())
        else:

            async def main() -> list[Cell]:
                return [c async for c in make(router, cls=AsyncCall).grid(["x"], store=store, stream=True).run()]

            cells = asyncio.run(main())
        assert all(body["stream"] is True for body in router.chat_requests)
        assert [c.text for c in cells] == ["streamed answer"] * 2
        assert all(c.ttft is not None and 0.1 <= c.ttft <= c.latency for c in cells)
        assert all(c.cost is not None for c in cells)
        # the key does not depend on streaming: the same cells are done for a grid that does not stream
        list(make(router).grid(["x"], store=store).run())
        assert len(router.chat_requests) == 2


def test_cells_past_the_cap_fail_with_the_grids_own_words(tmp_path: Path) -> None:
    with OpenRouterDouble(models=catalog(), prices=PRICES) as router:
        grid = make(router, [A]).grid(["a", "b"], store=tmp_path / "g.sqlite", max_cost=1e-6, force=True)
        cells = list(grid.run())
        assert [c.error.type for c in cells if c.error] == ["BudgetExceeded", "BudgetExceeded"]
        assert "this grid has spent $0.000000 of max_cost=$1e-06" in cells[0].error.message
        assert router.chat_requests == []


def test_ctrl_c_stops_a_grid_sends_nothing_more_and_releases_its_claims(tmp_path: Path) -> None:
    import os
    import signal
    import threading

    with OpenRouterDouble(models=catalog(), prices=PRICES, latency=0.3) as router:
        store = tmp_path / "g.sqlite"
        grid = make(router, [A]).grid([f"p{i}" for i in range(20)], store=store, concurrency=2)
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        seen: list[Cell] = []
        with pytest.raises(KeyboardInterrupt):
            seen.extend(grid.run())
        timer.join()
        sent = len(router.chat_requests)
        time.sleep(0.5)
        assert len(router.chat_requests) == sent  # nothing more after Ctrl-C
        assert sent <= 6
        states = dict(sqlite3.connect(store).execute("SELECT state, COUNT(*) FROM cells GROUP BY state").fetchall())
        assert "running" not in states
        assert states.get("done", 0) + states["pending"] == 20


class Concurrent:
    """A default responder that counts the requests the double is answering at once (each takes a moment)."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.15)
        with self.lock:
            self.now -= 1
        return "ok"


def in_flight_grid(double: OpenRouterDouble, tmp_path: Path, **grid: Any) -> tuple[Any, float, Concurrent]:
    """8 cells of the same size on one model, concurrency 8; the worst case of one cell in dollars."""
    counter = Concurrent()
    double.default = counter
    prompts = [f"prompt {i}" for i in range(8)]
    made = make(double, [A], max_tokens=100).grid(
        prompts, store=tmp_path / "g.sqlite", concurrency=8, progress=False, **grid
    )
    return made, made.forecast().high / 8, counter


def test_the_in_flight_budget_keeps_the_worst_cases_in_flight_under_it(
    double: OpenRouterDouble, tmp_path: Path
) -> None:
    _, per_cell, _ = in_flight_grid(double, tmp_path / "probe")
    grid, _, counter = in_flight_grid(double, tmp_path, in_flight_budget=2.5 * per_cell)
    cells = list(grid.run())
    assert [c.ok for c in cells] == [True] * 8
    assert 1 <= counter.most <= 2
    assert not [r for r in double.requests if r.path.endswith(("/credits", "/key"))]  # a number: nothing read


def test_auto_reads_the_accounts_credits_and_gates_likewise(double: OpenRouterDouble, tmp_path: Path) -> None:
    _, per_cell, _ = in_flight_grid(double, tmp_path / "probe")
    balance = {"data": {"total_credits": 10.0, "total_usage": 10.0 - 2.5 * per_cell}}
    double.queue_get("/credits", Raw(json.dumps(balance).encode()))
    grid, _, counter = in_flight_grid(double, tmp_path)  # in_flight_budget="auto" by default
    cells = list(grid.run())
    assert [c.ok for c in cells] == [True] * 8
    assert 1 <= counter.most <= 2
    assert [r.path for r in double.requests if r.method == "GET" and r.path.endswith("/credits")]


def test_auto_takes_the_keys_limit_remaining_when_lower(double: OpenRouterDouble, tmp_path: Path) -> None:
    _, per_cell, _ = in_flight_grid(double, tmp_path / "probe")
    key = {"data": {"label": "k", "limit": 5.0, "limit_remaining": 1.5 * per_cell, "usage": 0.0}}
    double.queue_get("/key", Raw(json.dumps(key).encode()))  # /credits: the double's 100 dollars
    grid, _, counter = in_flight_grid(double, tmp_path)
    cells = list(grid.run())
    assert [c.ok for c in cells] == [True] * 8
    assert counter.most == 1


def test_a_failing_credits_read_leaves_the_grid_ungated(double: OpenRouterDouble, tmp_path: Path) -> None:
    double.queue_get("/credits", Error(403, "Only management keys can fetch credits"))
    double.queue_get("/key", Error(500, "Internal Server Error"))
    grid, _, counter = in_flight_grid(double, tmp_path)
    cells = list(grid.run())
    assert [c.ok for c in cells] == [True] * 8
    assert counter.most > 2  # nothing held the cells back
    assert [r for r in double.requests if r.path.endswith("/credits")]


def test_a_single_cell_larger_than_the_in_flight_budget_still_goes(double: OpenRouterDouble, tmp_path: Path) -> None:
    grid, _, counter = in_flight_grid(double, tmp_path, in_flight_budget=0.0)
    cells = list(grid.run())
    assert [c.ok for c in cells] == [True] * 8
    assert counter.most == 1


@pytest.mark.parametrize("bad", [-1, "lots", True, float("nan")])
def test_a_bad_in_flight_budget_raises_before_anything_is_sent(double: OpenRouterDouble, bad: Any) -> None:
    with pytest.raises(ValueError, match="in_flight_budget"):
        make(double).grid(["x"], in_flight_budget=bad)
    assert not double.requests


@settings(max_examples=30, deadline=None)
@given(
    budget=st.floats(min_value=0, max_value=10, allow_nan=False),
    needs=st.lists(st.floats(min_value=0.01, max_value=5, allow_nan=False), min_size=1, max_size=12),
)
def test_the_in_flight_holds_stay_under_the_budget_unless_alone(budget: float, needs: list[float]) -> None:
    from irouter.grid import _InFlight

    async def run() -> None:
        gate = _InFlight(budget)
        held: list[float] = []

        async def one(need: float) -> None:
            token = await gate.acquire(need)
            held.append(need)
            assert len(held) == 1 or sum(held) <= budget + 1e-9
            await asyncio.sleep(0.001)
            held.remove(need)
            gate.release(token)

        await asyncio.gather(*(one(n) for n in needs))
        assert gate.count == 0

    asyncio.run(run())
