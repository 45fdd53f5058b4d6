"""Grids: many prompts across many models, resumable, with a cost forecast and a hard cap.

>>> grid = Call(["openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"]).grid(prompts, store="eval.sqlite",
...                                                                              max_cost=5)  # doctest: +SKIP
>>> print(grid.forecast())                                                                   # doctest: +SKIP
>>> for cell in grid.run(): ...                                                              # doctest: +SKIP
>>> grid.results().to_pandas()                                                               # doctest: +SKIP

Every (prompt, model) pair is a **cell**: a plain value (`Cell`) keyed by the hash of its request (`cell_key`).
The engine is one async core: it claims cells in the store (`irouter._store`), runs each one through the same
turn machinery as a call (tool loops, typed ``response_format``, retries, budget reservations), writes each result
as soon as it finishes, and streams the cells to the caller. `Grid.run` drives that core on a background event
loop; `AsyncGrid.run` is the core itself. Nothing here knows of any cluster: a cluster adapter calls the same core.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import _store as st
from ._cancel import Cancelled, CancelSignal
from ._drivers import Recorder
from ._engine import TurnResult
from ._ledger import LedgerEntry, Meter, Quote, estimate_prompt_tokens, worst_case
from ._store import GridRow, Store, canonical
from ._wire import build_body
from .errors import BudgetExceeded, RateLimitError

if TYPE_CHECKING:
    from ._client import Plan
    from .call import _OneOff

T = TypeVar("T")

__all__ = ["AsyncGrid", "Cell", "CellError", "Forecast", "Grid", "GridResults", "ModelForecast", "cell_key"]

GRID_MAX_RETRY_WAIT = 600.0
"""A grid waits this long for a ``Retry-After`` by default (OpenRouter's in-flight 402 asks for up to 120 s);
an interactive call would rather raise (see `irouter._retry`). ``max_retry_wait=`` overrides it."""
GRID_MAX_RETRIES = 4
"""Retries per request in a grid unless ``max_retries=`` is given (rate limits are expected in long runs)."""
EXPECTED_SHARE = 0.5
"""Without observed answers, the forecast expects a completion of this share of ``max_tokens``..."""
EXPECTED_COMPLETION_TOKENS = 400
"""...or, when ``max_tokens`` is not set, this many completion tokens (a typical chat answer)."""
LOW_PROMPT_SHARE = 1 / 3
"""The low bound counts this share of the (generous) local prompt estimate, about 9 characters a token."""
NOT_SENT = ("stream", "stream_options", "usage")
"""Request fields that do not change the answer, left out of a cell's key."""


# --------------------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class CellError:
    """Why a cell failed: the exception's class name, its HTTP status (``None`` if not an HTTP error), message."""

    type: str
    status: int | None
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> CellError:
        status = getattr(exc, "status", None)
        message = getattr(exc, "message", None)  # the server's own message for API errors
        return cls(
            type(exc).__name__,
            status if isinstance(status, int) else None,
            message if isinstance(message, str) and message else str(exc),
        )


@dataclass(frozen=True)
class Cell:
    """One prompt sent to one model: the answer (or the failure) and what it used.

    ``value`` is the parsed ``response_format`` instance when the grid has a typed one, else the text.
    Tokens and dollars are summed over the cell's requests (tool steps included); ``cost`` is what the server
    reported (``None`` if it reported none), ``estimated_cost`` the catalog-price estimate when it did not.
    ``latency`` is the seconds from the cell's first request to its answer (tool runs included); ``ttft`` the
    seconds to the first text of its first request when the grid streams (``stream=True``), else ``None``.
    ``requests`` counts the requests answered. ``from_store`` marks a cell finished by an earlier run (or another
    process) and read back from the store.
    """

    prompt_id: Any
    model: str
    key: str
    text: str | None = None
    value: Any = None
    error: CellError | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    estimated_cost: float | None = None
    provider: str | None = None
    served_model: str | None = None
    latency: float | None = None
    ttft: float | None = None
    finish_reason: str | None = None
    requests: int = 0
    from_store: bool = False

    @property
    def ok(self) -> bool:
        """Whether the cell has an answer (no error)."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``value`` through ``model_dump`` (pydantic) or ``asdict`` (dataclasses); ``error``
        as ``{"type", "status", "message"}`` or ``None``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["value"] = jsonable(self.value)
        out["error"] = asdict(self.error) if self.error is not None else None
        return out


def jsonable(value: Any) -> Any:
    """A parsed value as plain JSON data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def stored(cell: Cell) -> str:
    """What the store keeps of a cell (shared by duplicates): `Cell.to_dict` without prompt_id, model, key and
    from_store, as canonical JSON."""
    kept = {k: v for k, v in cell.to_dict().items() if k not in ("prompt_id", "model", "key", "from_store")}
    return canonical(kept)


def _cell_from(row: st.CellRow, parse: Callable[[str, str], Any] | None, mine: str | None = None) -> Cell:
    """A stored cell read back for one grid row (``from_store`` unless this run wrote it, ``mine``)."""
    data = json.loads(row.result or "{}")
    error = CellError(**data["error"]) if data.get("error") else None
    value = data.get("value")
    if parse is not None and error is None and data.get("text") is not None:
        value = parse(row.model, data["text"])
    known = {f.name for f in fields(Cell)} - {"prompt_id", "model", "key", "value", "error", "from_store"}
    return Cell(
        prompt_id=json.loads(row.prompt_id),
        model=row.model,
        key=row.key,
        value=value,
        error=error,
        from_store=row.owner is None or row.owner != mine,
        **{k: v for k, v in data.items() if k in known},
    )


# --------------------------------------------------------------------------------------------- forecast
@dataclass(frozen=True)
class ModelForecast:
    """One model's share of a forecast. Dollars are ``None`` when the catalog has no price for the model."""

    model: str
    cells: int
    cells_to_send: int
    prompt_tokens: int
    """Local estimate over the cells to send."""
    low: float | None
    expected: float | None
    high: float | None
    observed: int = 0
    """Done cells of this model in the store whose completion lengths the expected bound uses."""


@dataclass(frozen=True)
class Forecast:
    """What a grid run may cost, before anything is sent: per model and in total, for the cells still to send.

    ``low``: a third of the generous prompt estimate and no completion (or the shortest answer seen).
    ``expected``: the prompt estimate plus the model's mean observed completion (done cells in the store), else
    half of ``max_tokens``, else `EXPECTED_COMPLETION_TOKENS`. ``high``: the prompt estimate plus ``max_tokens``
    (else the model's completion limit) for every cell: the most one request per cell can cost (tool steps make
    more requests). Totals are ``None`` if any model's are.

    ``deferred_low``, ``deferred_expected``, ``deferred_high``: the same bounds at Batch API prices (a grid run
    with ``deferred=True``: typically half, `irouter._batch_wire.PRICE_SHARE`); a deferred grid's ``max_cost``
    is checked against ``deferred_expected``.
    """

    models: dict[str, ModelForecast]
    max_cost: float | None = None
    deferred: bool = False
    """Whether the grid runs deferred (through the Batch API): its ``max_cost`` is checked at batch prices."""

    def _total(self, name: str) -> Any:
        values = [getattr(m, name) for m in self.models.values()]
        return None if any(v is None for v in values) else sum(values)

    @property
    def cells(self) -> int:
        return int(self._total("cells"))

    @property
    def cells_to_send(self) -> int:
        return int(self._total("cells_to_send"))

    @property
    def prompt_tokens(self) -> int:
        return int(self._total("prompt_tokens"))

    @property
    def low(self) -> float | None:
        return self._total("low")  # type: ignore[no-any-return]

    @property
    def expected(self) -> float | None:
        return self._total("expected")  # type: ignore[no-any-return]

    @property
    def high(self) -> float | None:
        return self._total("high")  # type: ignore[no-any-return]

    def _deferred(self, value: float | None) -> float | None:
        from ._batch_wire import PRICE_SHARE

        return None if value is None else value * PRICE_SHARE

    @property
    def deferred_low(self) -> float | None:
        return self._deferred(self.low)

    @property
    def deferred_expected(self) -> float | None:
        return self._deferred(self.expected)

    @property
    def deferred_high(self) -> float | None:
        return self._deferred(self.high)

    def to_dict(self) -> dict[str, Any]:
        """``{"models": {slug: {...}}, "total": {...}, "deferred": {"low", "expected", "high"}, "max_cost": ...}``,
        JSON-ready (``deferred``: the totals at Batch API prices)."""
        total = {n: getattr(self, n) for n in ("cells", "cells_to_send", "prompt_tokens", "low", "expected", "high")}
        deferred = {n: getattr(self, f"deferred_{n}") for n in ("low", "expected", "high")}
        return {
            "models": {m: asdict(f) for m, f in self.models.items()},
            "total": total,
            "deferred": deferred,
            "max_cost": self.max_cost,
        }

    def to_pandas(self) -> Any:
        """One row per model and a ``total`` row."""
        pandas = _pandas()
        data = self.to_dict()
        rows = [{k: v for k, v in f.items() if k != "observed"} for f in data["models"].values()]
        rows.append({"model": "total", **data["total"]})
        if self.deferred:
            rows.append({"model": "total (deferred)", **data["total"], **data["deferred"]})
        return pandas.DataFrame(rows).set_index("model")

    def __str__(self) -> str:
        head = ("model", "cells", "to send", "prompt tok", "low $", "expected $", "high $")
        rows = [
            (m.model, m.cells, m.cells_to_send, m.prompt_tokens, m.low, m.expected, m.high)
            for m in self.models.values()
        ]
        rows.append(("total", self.cells, self.cells_to_send, self.prompt_tokens, self.low, self.expected, self.high))
        text = [[_fmt(v) for v in row] for row in [head, *rows]]
        widths = [max(len(r[i]) for r in text) for i in range(len(head))]
        lines = [
            "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
            for r in text
        ]
        prices = (self.deferred_low, self.deferred_expected, self.deferred_high)
        lines.append(
            f"deferred (Batch API, typically half price): low ${_fmt(prices[0])}, expected ${_fmt(prices[1])}, "
            f"high ${_fmt(prices[2])}" + ("  <- this grid" if self.deferred else "")
        )
        if self.max_cost is not None:
            lines.append(f"max_cost: ${self.max_cost:g}")
        return "\n".join(lines)


def _pandas() -> Any:
    """pandas, imported on first use (it is not a dependency of irouter)."""
    import importlib

    try:
        return importlib.import_module("pandas")
    except ImportError:
        raise ImportError("This needs pandas: pip install pandas") from None


def _fmt(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class _Tally:
    """Per-model sums gathered while the grid's cells are listed."""

    cells: int = 0
    to_send: int = 0
    prompt_tokens: int = 0
    low: float | None = 0.0
    expected: float | None = 0.0
    high: float | None = 0.0


# --------------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class _Row:
    """One cell as listed from the prompts."""

    prompt_id: Any
    model: str
    key: str
    request: str
    body: dict[str, Any]


def cell_key(model: str, messages: list[dict[str, Any]], options_json: str) -> tuple[str, str]:
    """``(key, request)``: a cell's canonical request JSON (``{"messages", "model", "options"}``, sorted keys, no
    whitespace) and its sha256. ``options_json`` is the canonical JSON of the request fields that change the
    answer (see `Grid`)."""
    request = f'{{"messages":{canonical(messages)},"model":{canonical(model)},"options":{options_json}}}'
    return hashlib.sha256(request.encode()).hexdigest(), request


class Grid:
    """Prompts x models, made by `Call.grid` (see there for the arguments). Nothing is sent until `run`.

    A cell's key is the sha256 of the canonical JSON of its model, messages and options (every request field
    except ``stream``, ``stream_options`` and ``usage``; tools as their schemas): the same key is the same cell,
    sent once, whichever grid or process asks for it.
    """

    def __init__(
        self,
        call: _OneOff,
        prompts: Sequence[Any],
        plan: Plan,
        *,
        store: str | os.PathLike[str] | None,
        max_cost: float | None,
        concurrency: int,
        rpm: int | Mapping[str, int] | None,
        tpm: int | Mapping[str, int] | None,
        retry_failed: bool,
        force: bool,
        progress: bool | None,
        in_flight_budget: float | str | None = "auto",
    ) -> None:
        from ._ledger import check_limit

        if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
            raise TypeError(
                "prompts must be a list of prompts (strings, content lists, message lists or {'id': ..., 'prompt': "
                "...} rows)"
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number of at least 1, got {concurrency!r}")
        for name, value in (("retry_failed", retry_failed), ("force", force)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress must be True, False or None (auto), got {progress!r}")
        if store is not None and not isinstance(store, (str, os.PathLike)):
            raise TypeError(f"store must be a file path (or None for a temporary one), got {store!r}")
        self._call = call
        self._prompts = prompts
        self._plan = plan
        self.models = list(call.models)
        self.max_cost: float | None = check_limit("max_cost", max_cost)
        if in_flight_budget != "auto":
            try:
                check_limit("in_flight_budget", in_flight_budget)
            except ValueError:
                raise ValueError(
                    f"in_flight_budget must be a non-negative number of dollars, 'auto' (the account's remaining "
                    f"credits) or None (no limit), got {in_flight_budget!r}"
                ) from None
        self.in_flight_budget = in_flight_budget
        self.concurrency = concurrency
        self.rpm = _per_model("rpm", rpm, self.models)
        self.tpm = _per_model("tpm", tpm, self.models)
        self.retry_failed = retry_failed
        self.force = force
        self.progress = progress
        self._temp: Any = None
        self.store_path = Path(store) if store is not None else None
        options = dict(plan.body)
        if plan.toolbox is not None:
            options["tools"] = plan.toolbox.schemas
        self._options = options
        wire = {k: v for k, v in build_body("", [], options).items() if k not in ("model", "messages", *NOT_SENT)}
        self._options_json = canonical(wire)
        self._quotes: dict[str, Quote | None] = {}
        self._grid_id: str | None = None
        self._parsers: dict[str, Callable[[str], Any]] = {}
        self._check_pending = False
        """The catalog check still to do (async grids), in a worker thread when the run starts."""
        self.stream = False
        """Read answers as streams (``stream=True`` among the options): cells get their time to first token."""
        self.deferred: bool | str = False
        """Send the cells through OpenRouter's Batch API (``deferred=True`` or ``"mixed"``: see `Call.grid`)."""
        self.poll_interval = 5.0
        """Seconds before a deferred run's first poll (the waits grow from there)."""
        self._hooks: Any = None
        """A cluster adapter's hooks (`irouter.ray`): ``hooks.attach(run)`` swaps a run's budget, rate limit and
        in-flight gate for job-wide ones before it sends anything."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._prompts)} prompts x {self.models}, store={str(self.path)!r})"

    # ------------------------------------------------------------------------------------------ cells
    @property
    def path(self) -> Path:
        """The store file (a private temporary one when no ``store=`` was given)."""
        if self.store_path is None:
            import tempfile

            self._temp = tempfile.TemporaryDirectory(prefix="irouter-grid-")
            self.store_path = Path(self._temp.name) / "grid.sqlite"
        return self.store_path

    def _rows(self) -> Iterator[_Row]:
        """Every cell, prompt by prompt (each prompt to every model), computed as it is needed."""
        for index, item in enumerate(self._prompts):
            prompt_id: Any = index
            if isinstance(item, Mapping) and "role" not in item:
                if "prompt" not in item:
                    raise ValueError(f"prompts[{index}] is a dict without 'prompt': use {{'id': ..., 'prompt': ...}}")
                prompt_id, item = item.get("id", index), item["prompt"]
            if not isinstance(prompt_id, (str, int)) or isinstance(prompt_id, bool):
                raise TypeError(f"prompts[{index}]['id'] must be a string or an integer, got {prompt_id!r}")
            messages = self._call._messages(item)
            for model in self.models:
                key, request = cell_key(model, messages, self._options_json)
                body = {"messages": messages, **self._options}
                yield _Row(prompt_id, model, key, request, body)

    def _quote(self, model: str) -> Quote | None:
        if model not in self._quotes:
            self._quotes[model] = self._call._quote(model, fetch=True)
        return self._quotes[model]

    def _scan(self, store: Store | None, tallies: dict[str, _Tally]) -> Iterator[GridRow]:
        """The grid's rows for the store, adding each cell to the forecast tallies on the way."""
        observed = {m: store.observed(m) if store is not None else None for m in self.models}
        batch: list[_Row] = []

        def flush() -> Iterator[GridRow]:
            states = store.states([r.key for r in batch]) if store is not None else {}
            seen: set[str] = set()
            for row in batch:
                tally = tallies.setdefault(row.model, _Tally())
                tally.cells += 1
                state = states.get(row.key, st.PENDING)
                finished = state == st.DONE or (state == st.FAILED and not self.retry_failed)
                if not finished and row.key not in seen:  # duplicates are sent once (counted once per chunk)
                    seen.add(row.key)
                    self._add(tally, row, observed[row.model])
                yield GridRow(canonical(row.prompt_id), row.model, row.key, row.request)
            batch.clear()

        for row in self._rows():
            batch.append(row)
            if len(batch) >= st.CHUNK:
                yield from flush()
        yield from flush()

    def _add(self, tally: _Tally, row: _Row, observed: st.Observed | None) -> None:
        quote = self._quote(row.model)
        prompt = estimate_prompt_tokens(row.body)
        high = worst_case(row.body, quote)[1]
        limit = row.body.get("max_tokens", row.body.get("max_completion_tokens"))
        if observed is not None:
            mean, least = observed.mean_completion, observed.min_completion
        else:
            mean = EXPECTED_SHARE * limit if isinstance(limit, int) else EXPECTED_COMPLETION_TOKENS
            least = 0
        tally.to_send += 1
        tally.prompt_tokens += prompt
        cost = quote.cost if quote is not None and quote.cost(0, 0) is not None else None
        low = cost(int(prompt * LOW_PROMPT_SHARE), least) if cost else None
        expected = None
        if cost is not None and quote is not None:
            expected = (cost(prompt, 0) or 0.0) + mean * (quote.completion_price or 0.0)
        tally.low = None if low is None or tally.low is None else tally.low + low
        tally.expected = None if expected is None or tally.expected is None else tally.expected + expected
        tally.high = None if high is None or tally.high is None else tally.high + high

    def _forecast(self, tallies: dict[str, _Tally], store: Store | None) -> Forecast:
        observed = {m: store.observed(m) if store is not None else None for m in self.models}
        models = {
            m: ModelForecast(
                m,
                t.cells,
                t.to_send,
                t.prompt_tokens,
                t.low,
                t.expected,
                t.high,
                observed[m].cells if observed[m] is not None else 0,  # type: ignore[union-attr]
            )
            for m in self.models
            for t in [tallies.get(m, _Tally())]
        }
        return Forecast(models, self.max_cost, self.deferred is not False)

    def forecast(self) -> Forecast:
        """What running the grid may cost (the cells not yet done in the store), without sending anything. Reads
        the model catalog (fetched once if not at hand) and the store, if it exists; writes nothing."""
        store = Store(self.path) if self.store_path is not None and self.store_path.exists() else None
        try:
            tallies: dict[str, _Tally] = {}
            for _ in self._scan(store, tallies):
                pass
            return self._forecast(tallies, store)
        finally:
            if store is not None:
                store.close()

    def _register(self, store: Store) -> tuple[str, Forecast]:
        for model in self.models:  # the catalog, fetched now: not while the registration holds the write lock
            self._quote(model)
        tallies: dict[str, _Tally] = {}
        grid_id = store.register(self._scan(store, tallies))
        self._grid_id = grid_id
        return grid_id, self._forecast(tallies, store)

    def _check(self, forecast: Forecast) -> None:
        """Refuse a run whose expected cost passes ``max_cost`` (or cannot be known), unless ``force``."""
        if self.max_cost is None or self.force or forecast.cells_to_send == 0:
            return
        expected = forecast.deferred_expected if forecast.deferred else forecast.expected
        if expected is None:
            unpriced = [m for m, f in forecast.models.items() if f.expected is None]
            raise ValueError(
                f"max_cost= cannot be checked: the model catalog lists no price for {', '.join(unpriced)}. Pass "
                "force=True to run anyway (cells of unpriced models are then not capped)."
            )
        if expected > self.max_cost:
            raise BudgetExceeded(
                f"Budget reached before the run: the forecast expects ${expected:.4f} for "
                f"{forecast.cells_to_send:,} cells (low ${forecast.low or 0:.4f}, high ${forecast.high or 0:.4f}), "
                f"more than max_cost=${self.max_cost:g}. Nothing was sent. Raise max_cost, send fewer prompts, "
                "lower max_tokens, or pass force=True to run until the cap stops it.\n" + str(forecast),
                spent=0.0,
                limit=self.max_cost,
                kind="cost",
                model=", ".join(self.models),
                needed=expected,
            )

    def _parse(self) -> Callable[[str, str], Any] | None:
        output = self._plan.output_type
        if output is None:
            return None
        from ._structured import parser_for

        def parse(model: str, text: str) -> Any:
            if model not in self._parsers:
                self._parsers[model] = parser_for(output, model)
            try:
                return self._parsers[model](text)
            except Exception:
                return None

        return parse

    # ------------------------------------------------------------------------------------------ results
    def results(self) -> GridResults:
        """Every cell of this grid as the store has it (run or not), in input order: see `GridResults`."""
        store = Store(self.path)
        try:
            grid_id = self._grid_id or self._register(store)[0]
        finally:
            store.close()
        return GridResults(self.path, grid_id, self._parse(), self._temp)

    # ------------------------------------------------------------------------------------------ running
    def run(self) -> Iterator[Cell]:
        """Send the cells not yet done and yield every cell as it finishes (cells already in the store first,
        ``from_store=True``). Runs the async engine on a background event loop; breaking out of the loop or
        Ctrl-C stops it: nothing more is sent, cells in flight are abandoned and their claims released.

        Raises `BudgetExceeded` before sending anything when the forecast expects more than ``max_cost``
        (unless ``force=True``)."""
        import queue

        cancel = CancelSignal()
        out: queue.Queue[Any] = queue.Queue(maxsize=max(256, 4 * self.concurrency))
        end = object()

        async def pump() -> None:
            async for cell in self._acells(cancel):
                while True:
                    try:
                        out.put_nowait(cell)
                        break
                    except queue.Full:
                        await asyncio.sleep(0.01)  # the caller is slower: wait (memory stays flat)

        def finished(error: BaseException | None) -> None:
            out.put(end if error is None else error)

        background = Background(pump, finished)
        try:
            while True:
                item = out.get()
                if item is end:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, asyncio.CancelledError):
                        raise Cancelled
                    raise item
                yield item
        finally:
            if not background.done.is_set():  # the caller stopped early (break, Ctrl-C): stop the run
                cancel.set()
                background.stop()
                while not background.done.wait(0.05):
                    with contextlib.suppress(queue.Empty):
                        out.get_nowait()  # keep the loop from waiting on a full queue

    async def _acells(self, cancel: CancelSignal) -> AsyncGenerator[Cell, None]:
        """The engine: register, check the forecast, yield the done cells, then run the rest."""
        if self._check_pending:
            await asyncio.to_thread(self._call._check_capabilities, None, self._plan)
            self._check_pending = False
        store = Store(self.path)
        try:
            store.reap()
            grid_id, forecast = await asyncio.to_thread(self._register_in_thread)
            self._check(forecast)
            progress = _Progress.make(self.progress, forecast.cells_to_send)
            parse = self._parse()
            started = store.clock()
            for row in store.rows(grid_id, (st.DONE, st.FAILED)):
                finished = row.state == st.DONE or not self.retry_failed
                if finished and row.result is not None and not _after(row, started):
                    yield _cell_from(row, parse)
            budget = self.in_flight_budget
            if budget == "auto" and not self.deferred:
                budget = await asyncio.to_thread(self._credits_left) if forecast.cells_to_send else None
            plan = replace(self._plan, cancel=cancel)
            if self.deferred:
                from ._deferred import Deferred

                async for cell in Deferred(self, store, grid_id, plan, started, progress, parse).cells():
                    yield cell
            else:
                run = _Run(self, store, grid_id, plan, started, progress, parse)
                run.in_flight = _InFlight(budget if isinstance(budget, (int, float)) else None)
                if self._hooks is not None:
                    self._hooks.attach(run)
                async for cell in run.cells():
                    yield cell
                if run.batched and self._call._endpoint is not None:  # an earlier deferred run's open batches
                    from ._deferred import Deferred

                    polling = replace(plan, cancel=CancelSignal())  # the run's signal is set when it ends
                    async for cell in Deferred(self, store, grid_id, polling, started, progress, parse).collect():
                        yield cell
            if progress is not None:
                progress.close()
        finally:
            with contextlib.suppress(Exception):
                store.release()
            store.close()

    def _credits_left(self) -> float | None:
        """The account's remaining credits: ``GET /credits`` (total less usage), or the key's ``limit_remaining``
        (``GET /key``) when lower; ``None`` when neither says (another server, a key without the right): no gate."""
        endpoint = self._call._endpoint
        if endpoint is None:
            return None
        left: list[float] = []
        with contextlib.suppress(Exception):
            data = endpoint.get("/credits", timeout=10.0)["data"]
            left.append(float(data["total_credits"]) - float(data["total_usage"]))
        with contextlib.suppress(Exception):
            remaining = endpoint.get("/key", timeout=10.0)["data"]["limit_remaining"]
            if isinstance(remaining, (int, float)) and not isinstance(remaining, bool):
                left.append(float(remaining))
        return max(0.0, min(left)) if left else None

    def _register_in_thread(self) -> tuple[str, Forecast]:
        """Registration in a worker thread (it may fetch the catalog and hash many prompts), on its own connection."""
        store = Store(self.path)
        try:
            return self._register(store)
        finally:
            store.close()


def _in_batch(owner: str | None) -> bool:
    """Whether a running cell's owner is a Batch API batch (``batch:<id>``: no lease, no process to wait for)."""
    return owner is not None and owner.startswith(st.BATCH_OWNER)


def _after(row: st.CellRow, started: float) -> bool:
    """Whether a cell was last written after the run started (by this run or another process)."""
    return row.updated is not None and row.updated > started


class AsyncGrid(Grid):
    """`Grid` for asyncio, made by `AsyncCall.grid`: ``async for cell in grid.run()``."""

    def run(self) -> AsyncIterator[Cell]:  # type: ignore[override]
        """`Grid.run` as an async iterator, on the running event loop. Cancelling the task that iterates stops the
        run (claims of cells in flight are released)."""
        return self._acells(CancelSignal())


def _per_model(name: str, value: Any, models: list[str]) -> dict[str, int]:
    """``rpm``/``tpm``: one number for every model, or ``{slug: number}``."""
    if value is None:
        return {}
    given = dict(value) if isinstance(value, Mapping) else dict.fromkeys(models, value)
    for model, limit in given.items():
        if model not in models:
            raise ValueError(f"{name}= names {model!r}, which is not one of this grid's models {models}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"{name} must be a whole number of at least 1 per minute, got {limit!r}")
    return given


# --------------------------------------------------------------------------------------------- accounts
class _GridMeter(Meter):
    """A grid's one budget, shared by every cell: running totals instead of a ledger (memory stays flat)."""

    def __init__(self, max_cost: float | None, quote: Callable[[str], Quote | None]) -> None:
        super().__init__(max_cost, None, quote)
        self._spent = 0.0
        self._used = 0
        self.changed: Callable[[], None] = lambda: None

    def settle(self, hold: Any, entry: LedgerEntry | None) -> None:
        with self._lock:
            if hold is not None:
                self.holds = [h for h in self.holds if h is not hold]
            if entry is not None:
                self._spent += entry.cost if entry.cost is not None else (entry.estimated_cost or 0.0)
                self._used += entry.total_tokens
        self.changed()

    def reserve(self, model: str, body: Mapping[str, Any]) -> Any:
        """`Meter.reserve`, refusing in a grid's words."""
        try:
            return super().reserve(model, body)
        except BudgetExceeded as exc:
            need = f"it could use up to ${exc.needed:.6f}, and " if exc.needed else ""
            raise BudgetExceeded(
                f"Budget reached: the request to {model} was not sent: {need}this grid has spent ${exc.spent:.6f} of "
                f"max_cost=${exc.limit:g} (requests in flight hold their worst case until they end). Raise max_cost "
                "and run again: the store keeps every finished cell, so only the rest is sent.",
                spent=exc.spent,
                limit=exc.limit,
                kind=exc.kind,
                model=model,
                needed=exc.needed,
            ) from None

    def spent(self) -> float:
        return self._spent

    def tokens(self) -> int:
        return self._used

    def held(self) -> float:
        return sum(h.cost for h in self.holds)


class _CellMeter(Meter):
    """One cell's view of the grid's budget: reserves against it, and keeps the cell's own ledger entries."""

    def __init__(self, shared: _GridMeter) -> None:
        super().__init__(None, None, shared.quote)
        self.shared = shared

    def reserve(self, model: str, body: Mapping[str, Any]) -> Any:
        return self.shared.reserve(model, body)

    def settle(self, hold: Any, entry: LedgerEntry | None) -> None:
        self.shared.settle(hold, entry)
        if entry is not None:
            self.entries.append(entry)

    def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        return self.shared.price(model, prompt_tokens, completion_tokens)


def _accounted(entries: list[LedgerEntry]) -> dict[str, Any]:
    """A cell's accounts: summed over its requests; who answered from the last one."""
    costs = [e.cost for e in entries if e.cost is not None]
    estimates = [e.estimated_cost for e in entries if e.cost is None and e.estimated_cost is not None]
    last = entries[-1] if entries else None
    return {
        "prompt_tokens": sum(e.prompt_tokens for e in entries),
        "completion_tokens": sum(e.completion_tokens for e in entries),
        "total_tokens": sum(e.total_tokens for e in entries),
        "cost": round(sum(costs), 12) if costs else None,
        "estimated_cost": round(sum(estimates), 12) if estimates else None,
        "provider": last.provider if last else None,
        "served_model": last.served_model if last else None,
        "finish_reason": last.finish_reason if last else None,
        "requests": len(entries),
        "ttft": entries[0].ttft if entries else None,
    }


# --------------------------------------------------------------------------------------------- rate limits
class _Bucket:
    """A token bucket refilled continuously: ``per_minute`` units a minute, at most a second's worth at once
    (smoother than the server's minute windows, so a grid never bursts a minute's quota)."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = max(1.0, per_minute / 60.0)
        self.level = self.capacity
        self.rate = per_minute / 60.0
        self.stamp = time.monotonic()

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        while True:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.level >= amount:
                self.level -= amount
                return
            await asyncio.sleep((amount - self.level) / self.rate)


class _Limiter:
    """How many cells may be in flight: at most ``ceiling``, halved on a rate limit (429, OpenRouter's in-flight
    402; at most once a second), grown back by one per ``limit`` cells that finish (additive increase). A
    ``Retry-After`` pauses every new cell until it has passed. Optional per-model rpm/tpm buckets."""

    def __init__(self, ceiling: int, rpm: dict[str, int], tpm: dict[str, int]) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.active = 0
        self.resume_at = 0.0
        self.last_cut = 0.0
        self.throttled_count = 0
        self._wake = asyncio.Event()
        self.rpm = {m: _Bucket(n) for m, n in rpm.items()}
        self.tpm = {m: _Bucket(n) for m, n in tpm.items()}

    async def acquire(self, model: str, tokens: int) -> None:
        while True:
            pause = self.resume_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.active < max(1, int(self.limit)):
                break
            self._wake.clear()
            await self._wake.wait()
        self.active += 1
        try:
            if model in self.rpm:
                await self.rpm[model].take(1)
            if model in self.tpm:
                await self.tpm[model].take(tokens)
        except BaseException:
            self.release(False)
            raise

    def release(self, ok: bool) -> None:
        self.active -= 1
        if ok and self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / max(1.0, self.limit))
        self._wake.set()

    def observe(self, exc: Exception, wait: float) -> None:
        """Told of every retry by the retry policy: rate limits cut the concurrency and pause new cells."""
        if not isinstance(exc, RateLimitError):
            return
        now = time.monotonic()
        self.throttled_count += 1
        if now - self.last_cut >= 1.0:
            self.limit = max(1.0, self.limit / 2)
            self.last_cut = now
        if exc.retry_after:
            self.resume_at = max(self.resume_at, now + wait)


class _InFlight:
    """The dollars this run's requests in flight reserve together, kept under ``budget``: OpenRouter reserves
    the worst case of every running paid request against the account's balance and refuses the next one with a
    transient 402 (``in_flight_budget_exhausted``, ``Retry-After: 120``) past it. A cell waits while its worst
    case would not fit, unless nothing else is held (then it goes, and the server decides)."""

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self.held = 0.0
        self.count = 0
        self._wake = asyncio.Event()

    async def acquire(self, need: float | None) -> float | None:
        """Hold ``need`` dollars (a cell's worst case) once it fits; what to `release` (``None``: nothing held)."""
        if self.budget is None or not need:
            return None
        while self.count and self.held + need > self.budget:
            self._wake.clear()
            await self._wake.wait()
        self.held += need
        self.count += 1
        return need

    def release(self, held: float | None) -> None:
        if held is None:
            return
        self.count -= 1
        self.held = self.held - held if self.count else 0.0
        self._wake.set()


def _on_loop(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` called on the running event loop, whichever thread calls the result (the sync drivers of a Call
    with its own http_client run turns in worker threads)."""
    loop = asyncio.get_running_loop()

    def call(*args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing waits any more
            loop.call_soon_threadsafe(fn, *args)

    return call


# --------------------------------------------------------------------------------------------- progress
class _Progress:
    """One live line on a terminal's stderr (or a notebook display): done, failed, spent, rate, ETA."""

    def __init__(self, total: int, show: Callable[[str, bool], None]) -> None:
        self.total, self.done, self.failed, self.spent = total, 0, 0, 0.0
        self.start = time.monotonic()
        self.shown = 0.0
        self._show = show
        self.note = ""
        """Said after the counts (a deferred run's batches)."""

    @classmethod
    def make(cls, setting: bool | None, total: int) -> _Progress | None:
        from ._display import in_notebook

        if setting is False or total == 0:
            return None
        if in_notebook():
            from ._display import _notebook_show

            return cls(total, _notebook_show())
        if setting or sys.stderr.isatty():
            return cls(total, _stderr_show)
        return None

    def line(self) -> str:
        seconds = time.monotonic() - self.start
        rate = self.done / seconds if seconds > 0 else 0.0
        eta = f"{(self.total - self.done) / rate:.0f} s" if rate > 0 and self.done < self.total else "-"
        return (
            f"grid: {self.done:,}/{self.total:,} done, {self.failed:,} failed, ${self.spent:.4f} spent, "
            f"{rate:.1f} cells/s, ETA {eta}{self.note}"
        )

    def add(self, cell: Cell) -> None:
        self.done += 1
        self.failed += 0 if cell.ok else 1
        self.spent += cell.cost if cell.cost is not None else (cell.estimated_cost or 0.0)
        now = time.monotonic()
        if now - self.shown >= 0.2:
            self.shown = now
            self._show(self.line(), True)

    def close(self) -> None:
        """The final line (kept: on a terminal the line ends)."""
        self._show(self.line(), True)
        if self._show is _stderr_show:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _stderr_show(text: str, update: bool) -> None:
    sys.stderr.write(f"\r{text}\x1b[K")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------- one run
class _Run:
    """One run of a grid's remaining cells on one event loop: claims, the cell tasks, the leases."""

    def __init__(
        self,
        grid: Grid,
        store: Store,
        grid_id: str,
        plan: Plan,
        started: float,
        progress: _Progress | None,
        parse: Callable[[str, str], Any] | None,
    ) -> None:
        self.grid, self.store, self.grid_id, self.started = grid, store, grid_id, started
        self.progress, self.parse = progress, parse
        self.limiter = _Limiter(grid.concurrency, grid.rpm, grid.tpm)
        self.plan = replace(plan, on_retry=_on_loop(self.limiter.observe))
        self.turn = turn_runner(grid._call, grid.concurrency, grid.stream)
        self.meter = _GridMeter(grid.max_cost, grid._quote)
        self._settled = asyncio.Event()
        self.meter.changed = _on_loop(self._settled.set)
        self.inflight: dict[str, list[st.CellRow]] = {}
        self.waiting: list[st.CellRow] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.out: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(64, 2 * grid.concurrency))
        self.page = min(st.CHUNK, max(32, grid.concurrency))
        self.failure: BaseException | None = None
        self.dispatcher: asyncio.Future[None] | None = None
        self.in_flight = _InFlight(None)
        """The grid's in-flight budget (set by the caller once it knows the account's balance)."""
        self.batched = False
        """Some cells are held by Batch API batches (an earlier deferred run): not waited for here, but collected
        once this run ends (`Grid._acells`)."""

    async def cells(self) -> AsyncIterator[Cell]:
        end = object()

        async def dispatch() -> None:
            try:
                await self._dispatch()
                await self._finish_waiting()
                while self.tasks:
                    await asyncio.wait(set(self.tasks))
            finally:
                await self.out.put(end)

        dispatcher = asyncio.ensure_future(dispatch())
        self.dispatcher = dispatcher
        renewer = asyncio.ensure_future(self._renew())
        try:
            while True:
                item = await self.out.get()
                if item is end:
                    break
                yield item
            if self.failure is not None:  # a cell's task broke (a tool raised KeyboardInterrupt, a bug): stop
                raise self.failure
            dispatcher.result()  # raise what stopped it, if anything
        finally:
            self.plan.cancel.set()  # nothing more is sent, also by turns running in worker threads
            renewer.cancel()
            for task in [dispatcher, *self.tasks]:
                task.cancel()
            await asyncio.gather(dispatcher, renewer, *self.tasks, return_exceptions=True)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(min(st.RENEW_SECONDS, self.store.lease / 3))
            self.store.renew()

    async def _dispatch(self) -> None:
        """Page through the grid's cells in input order: claim the ones to send, start them as the limiter
        allows; remember those another process holds."""
        after = -1
        while True:
            rows = self.store.page(self.grid_id, after, self.page)
            if not rows:
                return
            after = rows[-1].seq
            await self._take(rows)

    async def _take(self, rows: list[st.CellRow]) -> None:
        wanted = [r.key for r in rows if self._sendable(r) and r.key not in self.inflight]
        keys = list(dict.fromkeys(wanted))
        claimed = set(self.store.claim(keys, self.grid.retry_failed, self.started)) if keys else set()
        for row in rows:
            if row.key in self.inflight:
                self.inflight[row.key].append(row)  # a duplicate of a cell in flight: answered with it
            elif row.key in claimed:
                claimed.discard(row.key)  # a later duplicate finds it in flight, or finished
                self.inflight[row.key] = [row]
                await self._start(row)
            elif _in_batch(row.owner if row.state == st.RUNNING else None):
                self.batched = True  # its batch is polled once the run ends
            elif self._sendable(row) or _after(row, self.started):
                self.waiting.append(row)  # held by another process, or finished since the run started

    def _sendable(self, row: st.CellRow) -> bool:
        return row.state in (st.PENDING, st.RUNNING) or (row.state == st.FAILED and self.grid.retry_failed)

    async def _start(self, row: st.CellRow) -> None:
        request = json.loads(row.request)
        body = {"messages": request["messages"], **self.grid._options}
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        tokens = estimate_prompt_tokens(body) + (limit if isinstance(limit, int) else 0)
        await self.limiter.acquire(row.model, tokens)
        task = asyncio.ensure_future(self._cell(row, request["messages"], body))
        self.tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A cell's task ended. Cells end as values; anything else it raised stops the whole run."""
        self.tasks.discard(task)
        failure = None if task.cancelled() else task.exception()
        if failure is not None and self.failure is None:
            self.failure = failure.original if isinstance(failure, _Carried) else failure
            self.plan.cancel.set()
            if self.dispatcher is not None:
                self.dispatcher.cancel()

    async def _finish_waiting(self) -> None:
        """Cells other processes held: wait for them, read their results; claim them if their owner let go."""
        while self.waiting:
            rows, self.waiting = self.waiting, []
            for row in rows:
                if row.key in self.inflight:  # a duplicate of a cell this run sends
                    self.inflight[row.key].append(row)
                elif self.store.claim([row.key], self.grid.retry_failed, self.started):  # its owner let go
                    self.inflight[row.key] = [row]
                    await self._start(row)
                elif (state := self.store.cell(row.key))[0] in (st.DONE, st.FAILED):
                    fresh = self.store.page(self.grid_id, row.seq - 1, 1)[0]
                    await self._emit(_cell_from(fresh, self.parse, self.store.owner))
                elif _in_batch(state[1]):  # another process's deferred run submitted it meanwhile
                    self.batched = True
                else:
                    self.waiting.append(row)  # still in flight elsewhere
            if self.waiting:
                self.store.reap()
                await asyncio.sleep(0.5)

    async def _admit(self, model: str, body: dict[str, Any]) -> None:
        """Wait while the cell's worst case fits the budget only once requests in flight settle (their holds
        are worst cases too); if it can never fit, go on and let the reservation refuse it."""
        meter = self.meter
        if meter.max_cost is None:
            return
        need = self._worst(model, body)
        while need is not None and meter.holds:
            spent = meter.spent()
            if spent + need > meter.max_cost or spent + meter.held() + need <= meter.max_cost:
                return
            self._settled.clear()
            await self._settled.wait()

    def _worst(self, model: str, body: dict[str, Any]) -> float | None:
        """A cell's worst case in dollars (`worst_case`, what its reservation holds); ``None`` when unknown."""
        return worst_case(body, self.grid._quote(model))[1]

    async def _cell(self, row: st.CellRow, messages: list[dict[str, Any]], body: dict[str, Any]) -> None:
        ok = False
        held: float | None = None
        try:
            await self._admit(row.model, body)
            held = await self.in_flight.acquire(self._worst(row.model, body))
            cell = await self._turn(row, messages)
            ok = cell.ok
        finally:
            self.in_flight.release(held)
            self.limiter.release(ok)
        try:
            self.store.finish(row.key, cell.ok, stored(cell), cell.cost, cell.prompt_tokens, cell.completion_tokens)
        except Exception as exc:  # the caller still gets the cell; a later run sends it again
            import logging

            logging.getLogger("irouter").warning("irouter: could not write a grid cell to %s: %s", self.store, exc)
        for twin in self.inflight.pop(row.key, [row]):
            await self._emit(replace(cell, prompt_id=json.loads(twin.prompt_id)))

    async def _turn(self, row: st.CellRow, messages: list[dict[str, Any]]) -> Cell:
        """Run the cell's turn through the same machinery as a call; a failure becomes the cell's error."""
        meter = _CellMeter(self.meter)
        started = time.monotonic()
        text: str | None = None
        value: Any = None
        error: CellError | None = None
        try:
            result = await self.turn(row.model, messages, self.plan, Recorder(meter, row.model))
            text, value = result.reply.content, result.value
        except Cancelled:
            raise
        except Exception as exc:
            error = CellError.of(exc)
        except BaseException as exc:  # KeyboardInterrupt from a tool: carried out of the task, stops the run
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _Carried(exc) from None
        return Cell(
            prompt_id=json.loads(row.prompt_id),
            model=row.model,
            key=row.key,
            text=text,
            value=value,
            error=error,
            latency=time.monotonic() - started,
            **_accounted(meter.entries),
        )

    async def _emit(self, cell: Cell) -> None:
        if self.progress is not None:
            self.progress.add(cell)
        await self.out.put(cell)


# --------------------------------------------------------------------------------------------- the engine's parts
class _Carried(Exception):
    """A ``KeyboardInterrupt``/``SystemExit`` raised inside a cell's task, carried out as an ordinary exception (an
    event loop would otherwise stop at once, leaving the run's claims and tasks behind); re-raised as it was."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


TurnRunner = Callable[[str, list[dict[str, Any]], "Plan", "Recorder | None"], Awaitable[TurnResult]]


def turn_runner(call: _OneOff, concurrency: int, stream: bool = False) -> TurnRunner:
    """How the engine runs one cell's turn: the async turn driver (`_arun`, or `_arun_streamed` with ``stream``:
    the answer is read as a stream, which gives the time to first token) on the event loop; for a `Call` given a
    sync ``http_client=`` (which an event loop cannot use), the sync drivers in worker threads, one per cell in
    flight. Either way the same turn machinery as a call."""

    def ignore(piece: str) -> None:
        pass

    if call._awaits or call._http_client is None:

        async def arun(model: str, messages: list[dict[str, Any]], plan: Plan, recorder: Recorder | None) -> Any:
            if stream:
                return await call._arun_streamed(model, messages[:-1], messages[-1], plan, ignore, recorder)
            return await call._arun(model, messages[:-1], messages[-1], plan, recorder)

        return arun
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="irouter-grid")

    async def run(model: str, messages: list[dict[str, Any]], plan: Plan, recorder: Recorder | None) -> Any:
        work = contextvars.copy_context().run
        history, user = messages[:-1], messages[-1]
        loop = asyncio.get_running_loop()
        if stream:
            return await loop.run_in_executor(
                pool, work, call._run_streamed, model, history, user, plan, ignore, recorder
            )
        return await loop.run_in_executor(pool, work, call._run, model, history, user, plan, recorder)

    return run


async def abatch(
    call: _OneOff, items: list[tuple[list[dict[str, Any]], str]], plan: Plan, concurrency: int
) -> list[Any]:
    """`Call.batch`'s engine: every (messages, model) item's turn value, or the exception it raised, in order;
    at most ``concurrency`` in flight, fewer after rate limits (as in a grid). No store."""
    limiter = _Limiter(concurrency, {}, {})
    plan = replace(plan, on_retry=_on_loop(limiter.observe))
    turn = turn_runner(call, concurrency)
    results: list[Any] = [None] * len(items)
    tasks: set[asyncio.Task[None]] = set()

    stop: list[BaseException] = []
    main = asyncio.current_task()

    async def one(index: int, messages: list[dict[str, Any]], model: str) -> None:
        ok = False
        try:
            results[index] = (await turn(model, messages, plan, None)).value
            ok = True
        except Cancelled:
            raise
        except Exception as exc:
            results[index] = exc
        except BaseException as exc:  # a tool raised KeyboardInterrupt: the whole batch stops now
            if isinstance(exc, asyncio.CancelledError):
                raise
            stop.append(exc)
            plan.cancel.set()
            if main is not None:
                main.cancel()
        finally:
            limiter.release(ok)

    try:
        for index, (messages, model) in enumerate(items):
            await limiter.acquire(model, 0)
            task = asyncio.ensure_future(one(index, messages, model))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(set(tasks))
    except BaseException as exc:
        plan.cancel.set()
        for task in list(tasks):
            task.cancel()
        if stop and isinstance(exc, asyncio.CancelledError):
            raise stop[0] from None
        raise
    return results


def run_sync(make: Callable[[], Coroutine[Any, Any, T]], cancel: CancelSignal) -> T:
    """Run ``make()`` to its end on a new event loop in a background thread, waiting here. Ctrl-C (or any
    interruption) while waiting sets ``cancel``, cancels the coroutine and propagates at once."""
    background = Background(make)
    try:
        background.done.wait()
    except BaseException:
        cancel.set()
        background.stop()
        raise
    if background.error is not None:
        if isinstance(background.error, asyncio.CancelledError):
            raise Cancelled
        raise background.error
    return background.result  # type: ignore[no-any-return]


class Background:
    """A coroutine run to its end on a new event loop of its own, in a daemon thread (what the sync API drives the
    async engine with). ``done`` is set when it has ended and the loop is closed; then ``result`` or ``error``.

    A ``KeyboardInterrupt`` raised in any of the loop's tasks (a tool's) stops the loop at once: the main task is
    then cancelled and run to its end, so its cleanup (claims released) still happens, and ``error`` is that
    interruption. ``on_done(error)`` is called in the loop's thread at the very end."""

    def __init__(
        self,
        make: Callable[[], Coroutine[Any, Any, Any]],
        on_done: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._make, self._on_done = make, on_done
        self._task: asyncio.Task[Any] | None = None
        self._stopping = False
        threading.Thread(target=self._work, name="irouter-loop", daemon=True).start()

    def stop(self) -> None:
        """Cancel the coroutine (from any thread); `done` is set once it has cleaned up."""
        self._stopping = True
        with contextlib.suppress(RuntimeError):  # the loop already closed
            self.loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _work(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            self._task = task = loop.create_task(self._make())
            if self._stopping:
                task.cancel()
            try:
                self.result = loop.run_until_complete(task)
            except BaseException as exc:
                self.error = exc
                if not task.done():  # the loop stopped under it: let it clean up
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        loop.run_until_complete(task)
            rest = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for other in rest:
                other.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
                from ._transport import arelease_pools

                loop.run_until_complete(arelease_pools())
        finally:
            loop.close()
            if self._on_done is not None:
                self._on_done(self.error)
            self.done.set()


# --------------------------------------------------------------------------------------------- results
class GridResults:
    """Every cell of one grid, read back from its store in input order. Iterating reads a page at a time;
    `records`, `to_pandas`, `table` and `summary` load them all."""

    def __init__(self, path: Path, grid_id: str, parse: Callable[[str, str], Any] | None, keep: Any = None) -> None:
        self.path, self.grid_id, self._parse = path, grid_id, parse
        self._keep = keep  # a temporary store's folder lives as long as its results

    def __repr__(self) -> str:
        return f"GridResults({str(self.path)!r}, grid={self.grid_id[:12]})"

    def __iter__(self) -> Iterator[Cell]:
        """The cells that have a result (done or failed); cells never run are left out."""
        store = Store(self.path)
        try:
            for row in store.rows(self.grid_id, (st.DONE, st.FAILED)):
                if row.result is not None:
                    yield _cell_from(row, self._parse)
        finally:
            store.close()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per cell (`Cell.to_dict`)."""
        return [cell.to_dict() for cell in self]

    def to_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write one JSON line per cell; returns how many."""
        count = 0
        with open(path, "w", encoding="utf-8") as handle:
            for cell in self:
                handle.write(json.dumps(cell.to_dict(), ensure_ascii=False, default=str) + "\n")
                count += 1
        return count

    def to_pandas(self) -> Any:
        """One row per cell (pandas is imported here only). ``error`` is the error's type name (or ``None``),
        with ``error_status`` and ``error_message`` beside it."""
        pandas = _pandas()
        rows = []
        for cell in self:
            row = cell.to_dict()
            error = row.pop("error")
            row["error"] = error["type"] if error else None
            row["error_status"] = error["status"] if error else None
            row["error_message"] = error["message"] if error else None
            rows.append(row)
        columns = [f.name for f in fields(Cell)] + ["error_status", "error_message"]
        return pandas.DataFrame(rows, columns=columns)

    def table(self) -> Any:
        """Prompt id x model -> the value (the text, or the parsed value); failed cells are ``None``."""
        frame = self.to_pandas()
        values = [c.value if c.ok else None for c in self]
        frame = frame.assign(value=values)
        return frame.pivot(index="prompt_id", columns="model", values="value")

    def summary(self) -> Any:
        """Per model: cells, failed, cost (reported, else estimated), mean latency, tokens."""
        frame = self.to_pandas()
        frame["spent"] = frame["cost"].fillna(frame["estimated_cost"]).fillna(0.0)
        frame["failed"] = frame["error"].notna()
        return frame.groupby("model").agg(
            cells=("key", "size"),
            failed=("failed", "sum"),
            cost=("spent", "sum"),
            mean_latency=("latency", "mean"),
            prompt_tokens=("prompt_tokens", "sum"),
            completion_tokens=("completion_tokens", "sum"),
            total_tokens=("total_tokens", "sum"),
        )


def new_grid(call: _OneOff, prompts: Sequence[Any], grid_args: dict[str, Any], options: dict[str, Any]) -> Any:
    """What `Call.grid` and `AsyncCall.grid` do: check everything (before anything is sent) and make the grid.

    Grids wait for long ``Retry-After`` (`GRID_MAX_RETRY_WAIT`) and retry more (`GRID_MAX_RETRIES`) unless the
    call or the grid sets ``max_retry_wait=`` / ``max_retries=``."""
    from . import _options as opts

    plan = call._plan(options, opts.GRID)
    stream = options.get("stream", False)
    if not isinstance(stream, bool):
        raise TypeError(f"stream must be True or False, got {stream!r}")
    given = {*options, *call.defaults}
    if "max_retry_wait" not in given:
        plan.max_retry_wait = GRID_MAX_RETRY_WAIT
    if "max_retries" not in given:
        plan.max_retries = GRID_MAX_RETRIES
    # the models and what every cell needs (tools, structured output), against the catalog; attachments are not
    # checked per prompt. The async classes never block here: the rest is done when the run starts.
    pending = not call._check_capabilities(None, plan, fetch=not call._awaits)
    grid = (AsyncGrid if call._awaits else Grid)(call, prompts, plan, **grid_args)
    grid._check_pending = pending
    grid.stream = stream
    if "deferred" in options or "poll_interval" in options:
        from ._deferred import configure

        configure(grid, call, options)
    return grid
