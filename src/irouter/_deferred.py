"""Deferred grids: a grid's cells sent through OpenRouter's Batch API (about half price, results within 24 hours).

`Grid` runs this instead of its normal engine when made with ``deferred=True`` (or ``"mixed"``). The run:

1. lists the cells still to send and names, before anything is submitted, those the Batch API refuses (images,
   audio, files, non-text output, tool loops): an error, or with ``"mixed"`` they run the normal way;
2. claims the rest in the store, one model at a time, splits them into batches within the documented limits and
   submits each; a batch's id is written to the store the moment it is accepted (`Store.batch_submitted`), and its
   cells then belong to it: no run sends them again;
3. polls every open batch of the store (its own and those a dead process left) with growing waits until each is
   terminal, and writes each cell's answer (or error) as a normal grid does, with the cell's usage and the batch's
   cost; failed or expired batches and per-request errors become cell errors that the next run retries.

The wire format is `irouter._batch_wire`'s alone; this module only drives it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import _batch_wire as wire
from . import _retry as retry
from . import _store as st
from ._ledger import Hold, entry_for, worst_case
from .errors import BatchRefusedError, BudgetExceeded

if TYPE_CHECKING:
    from ._client import Plan
    from ._engine import TurnSpec
    from .call import _OneOff
    from .grid import Cell, Grid, _Progress

MAX_POLL_WAIT = 60.0
"""The longest wait between two polls."""
POLL_GROWTH = 1.5
"""Each wait between polls is this much longer than the last (up to `MAX_POLL_WAIT`, or 20 ``poll_interval``)."""


def configure(grid: Grid, call: _OneOff, options: Mapping[str, Any]) -> None:
    """Check ``deferred=`` and ``poll_interval=`` (before anything is sent) and set them on ``grid``."""
    deferred = options.get("deferred", False)
    if not (deferred is True or deferred is False or deferred == "mixed"):
        raise ValueError(f"deferred must be True, False or 'mixed', got {deferred!r}")
    interval = options.get("poll_interval", grid.poll_interval)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise ValueError(f"poll_interval must be a positive number of seconds, got {interval!r}")
    grid.poll_interval = float(interval)
    if not deferred:
        return
    if grid.stream:
        raise ValueError("stream=True cannot be used with deferred=True: batches are answered whole, not streamed")
    elsewhere = [m for m in grid.models if call._routes.get(m) is not None]
    if elsewhere or call._endpoint is None:
        raise ValueError(
            f"deferred=True needs OpenRouter's Batch API, but {', '.join(elsewhere) or 'this Call'} is not served by "
            "an OpenRouter endpoint: run those models without deferred=True"
        )
    grid.deferred = deferred


def batch_endpoint(call: _OneOff) -> Any:
    """The call's endpoint aimed at the batch routes (same key and headers; base URL from `wire.batches_base`)."""
    endpoint = copy.copy(call._endpoint)
    endpoint.base_url = wire.batches_base(endpoint.base_url)
    return endpoint


def tool_refusal(plan: Plan) -> str | None:
    """A grid with tools may need a second request per cell (the tool step): a batch answers one."""
    if plan.toolbox is not None:
        return "has tools (a tool step needs a second request, which a batch cannot make)"
    return None


class Deferred:
    """One deferred run of a grid's remaining cells (see the module's docstring)."""

    def __init__(
        self,
        grid: Grid,
        store: st.Store,
        grid_id: str,
        plan: Plan,
        started: float,
        progress: _Progress | None,
        parse: Callable[[str, str], Any] | None,
    ) -> None:
        from .grid import _GridMeter

        self.grid, self.store, self.grid_id, self.plan = grid, store, grid_id, plan
        self.started, self.progress, self.parse = started, progress, parse
        self.endpoint = batch_endpoint(grid._call)
        self.meter = _GridMeter(grid.max_cost, grid._quote)
        self.rows: dict[str, list[st.CellRow]] = {}
        """This grid's cells by key (duplicates share a key)."""
        self.holds: dict[str, Hold] = {}
        self.out: list[Cell] = []
        self.counts = {"submitted": 0, "open": 0}
        self.specs: dict[str, TurnSpec] = {}
        """Each model's turn spec (what its request bodies are made with)."""

    # ------------------------------------------------------------------------------------------ the run
    async def cells(self) -> AsyncIterator[Cell]:
        todo, normal = self._plan_cells()
        for model in self.grid.models:
            await self._submit_model(model, [k for k in todo if self.rows[k][0].model == model])
            for cell in self._drain():
                yield cell
        if normal:
            async for cell in self._run_normally(normal):
                yield cell
        async for cell in self._poll():
            yield cell

    async def collect(self) -> AsyncIterator[Cell]:
        """Submit nothing: wait for the open batches of the store and write their cells (a normal run of a grid
        some of whose cells an earlier deferred run left in batches)."""
        for row in self.store.rows(self.grid_id):
            self.rows.setdefault(row.key, []).append(row)
        async for cell in self._poll():
            yield cell

    def _plan_cells(self) -> tuple[list[str], set[str]]:
        """(keys to batch, keys to run normally): refused cells are named here, before anything is submitted."""
        todo: list[str] = []
        refused: list[tuple[Any, str, str]] = []
        normal: set[str] = set()
        tools = tool_refusal(self.plan)
        for row in self.store.rows(self.grid_id):
            known = row.key in self.rows
            self.rows.setdefault(row.key, []).append(row)
            if known or not self._sendable(row):
                continue
            body = self._body(row)
            why = tools or wire.refusal(body)
            if why is None:
                todo.append(row.key)
            else:
                refused.append((json.loads(row.prompt_id), row.model, why))
                normal.add(row.key)
        if refused and self.grid.deferred != "mixed":
            raise BatchRefusedError(refused)
        return todo, normal

    def _sendable(self, row: st.CellRow) -> bool:
        if row.state == st.RUNNING:
            return not (row.owner or "").startswith(st.BATCH_OWNER)
        return row.state == st.PENDING or (row.state == st.FAILED and self.grid.retry_failed)

    def _body(self, row: st.CellRow) -> dict[str, Any]:
        """The cell's request body, made as a normal request of the grid's call would make it (`ModelClient._spec`:
        the plain slug and pinned routing of ``model@provider``, prompt-cache breakpoints)."""
        spec = self.specs.get(row.model)
        if spec is None:
            spec = self.specs[row.model] = self.grid._call._spec(row.model, self.plan)
        return spec.body(row.model, json.loads(row.request)["messages"], spec.turn_options())

    # ------------------------------------------------------------------------------------------ submitting
    async def _submit_model(self, model: str, keys: list[str]) -> None:
        """Claim ``model``'s cells and submit them in batches within the documented limits."""
        if not keys:
            return
        claimed = self.store.claim(keys, self.grid.retry_failed, self.started)
        if not claimed:
            return
        bodies = {k: self._body(self.rows[k][0]) for k in claimed}
        lines = [wire.request_line(k, bodies[k]) for k in claimed]
        first = bodies[claimed[0]]  # the model's bodies share their model and routing
        for part in wire.split(lines):
            keys_in = [claimed[i] for i in part]
            hold = self._reserve(model, [bodies[k] for k in keys_in])
            if isinstance(hold, BudgetExceeded):
                self._fail(keys_in, model, hold)
                continue
            try:
                info = await self._send_batch(first["model"], first.get("provider"), [lines[i] for i in part])
            except Exception as exc:
                self.meter.settle(hold, None)
                self._fail(keys_in, model, exc)
                continue
            self.store.batch_submitted(info.id, model, keys_in, info.status)
            if hold is not None:
                self.holds[info.id] = hold
            self.counts["submitted"] += 1
            self.counts["open"] += 1
            self._show()

    def _reserve(self, model: str, bodies: list[dict[str, Any]]) -> Hold | BudgetExceeded | None:
        """Hold a batch's worst case at batch prices against ``max_cost`` (``None`` without a cap); what refuses
        it when it does not fit."""
        meter = self.meter
        if meter.max_cost is None:
            return None
        quote = self.grid._quote(model)
        costs = [worst_case(b, quote)[1] for b in bodies]
        if any(c is None for c in costs):
            return None  # unpriced: the forecast already said so (force=True runs it uncapped)
        need = sum(c or 0.0 for c in costs) * wire.PRICE_SHARE
        if meter.spent() + meter.held() + need > meter.max_cost:
            return BudgetExceeded(
                f"Budget reached: a batch of {len(bodies)} cell(s) to {model} was not submitted: it could cost up to "
                f"${need:.6f} at batch prices, and this grid has spent ${meter.spent():.6f} (with "
                f"${meter.held():.6f} held by open batches) of max_cost=${meter.max_cost:g}. Raise max_cost and run "
                "again.",
                spent=meter.spent(),
                limit=meter.max_cost,
                kind="cost",
                model=model,
                needed=need,
            )
        hold = Hold(model, need, 0)
        with meter._lock:
            meter.holds.append(hold)
        return hold

    async def _send_batch(self, model: str, provider: Any, lines: list[bytes]) -> wire.BatchInfo:
        """Submit one batch for ``model`` (the name the server knows), with the routing its requests carry."""
        content = wire.submission(model, lines, provider=wire.batch_provider(provider))

        async def attempt() -> Any:
            self.plan.cancel.check()
            return await self.endpoint.arequest(
                "POST", wire.ROUTE, content, timeout=self.plan.timeout, extra_headers=self.plan.extra_headers
            )

        return wire.read_batch(await retry.acall(attempt, self.plan.policy()))

    def _fail(self, keys: list[str], model: str, exc: BaseException) -> None:
        from .grid import CellError

        self._write(keys, model, lambda key: (None, CellError.of(exc), None))

    # ------------------------------------------------------------------------------------------ normal cells
    async def _run_normally(self, keys: set[str]) -> AsyncIterator[Cell]:
        """The refused cells of a ``"mixed"`` run, through the grid's normal engine (only those keys)."""
        from .grid import _InFlight, _Run

        class Only(_Run):
            async def _dispatch(self) -> None:
                after = -1
                while rows := self.store.page(self.grid_id, after, self.page):
                    after = rows[-1].seq
                    await self._take([r for r in rows if r.key in keys])

        from ._cancel import CancelSignal

        plan = replace(self.plan, cancel=CancelSignal())  # the normal run sets its signal when it ends; polling goes on
        run = Only(self.grid, self.store, self.grid_id, plan, self.started, self.progress, self.parse)
        self.meter.changed = run.meter.changed
        run.meter = self.meter  # one budget for the batches and the cells sent normally
        run.in_flight = _InFlight(None)
        async for cell in run.cells():
            yield cell

    # ------------------------------------------------------------------------------------------ polling
    async def _poll(self) -> AsyncIterator[Cell]:
        """Poll every open batch of the store until each is terminal, collecting each as it ends."""
        wait = self.grid.poll_interval
        ceiling = min(MAX_POLL_WAIT, 20 * wait)
        while True:
            open_batches = self.store.batches(open_only=True)
            self.counts["open"] = len(open_batches)
            self._show()
            if not open_batches:
                return
            for batch in open_batches:
                data = await self._get(batch["id"])
                self._seen(batch, data)
                for cell in self._drain():
                    yield cell
            if self.store.batches(open_only=True):
                self.plan.cancel.check()
                await asyncio.sleep(wait)
                wait = min(ceiling, wait * POLL_GROWTH)

    async def _get(self, batch: str) -> Any:
        async def attempt() -> Any:
            self.plan.cancel.check()
            return await self.endpoint.arequest(
                "GET", f"{wire.ROUTE}/{batch}", timeout=self.plan.timeout, extra_headers=self.plan.extra_headers
            )

        try:
            return await retry.acall(attempt, self.plan.policy())
        except Exception as exc:
            if getattr(exc, "status", None) == 404:  # deleted, or another account's: its cells go back
                return {"id": batch, "status": wire.FAILED, "error": {"message": f"batch not found ({exc})"}}
            raise

    def _seen(self, batch: Mapping[str, Any], data: Any) -> None:
        info = wire.read_batch(data)
        if not info.terminal:
            self.store.batch_status(info.id, info.status)
            return
        keys = self.store.batch_keys(info.id)
        self.counts["open"] -= 1
        if info.status == wire.COMPLETED:
            self._collect(batch, info, wire.results_of(data), keys)
        else:
            self._lost(info, str(batch["model"]), keys)
        self.store.batch_status(info.id, info.status, info.cost, info.error)
        self.store.batch_collected(info.id)
        hold = self.holds.pop(info.id, None)
        if hold is not None:
            self.meter.settle(hold, None)

    def _lost(self, info: wire.BatchInfo, model: str, keys: list[str]) -> None:
        """A failed, expired or cancelled batch: every cell an error the next run retries."""
        from .grid import CellError

        why = f": {info.error}" if info.error else ""
        error = CellError(
            f"Batch{info.status.capitalize()}",
            None,
            f"batch {info.id} ended {info.status}{why}; run the grid again to retry these cells (deferred or not)",
        )
        self._write(keys, model, lambda key: (None, error, None))

    def _collect(
        self, batch: Mapping[str, Any], info: wire.BatchInfo, results: list[wire.Result], keys: list[str]
    ) -> None:
        """A completed batch: each cell's answer or error, with its usage and its share of the batch's cost."""
        from ._structured import parser_for
        from ._wire import parse_completion
        from .grid import CellError

        by_id = {r.custom_id: r for r in results}
        model = str(batch["model"])
        quote = self.grid._quote(model)

        def price(_: str, prompt: int, completion: int) -> float | None:
            full = quote.cost(prompt, completion) if quote is not None else None
            return None if full is None else full * wire.PRICE_SHARE

        output = self.grid._plan.output_type
        checked: Callable[[str], Any] = parser_for(output, model) if output is not None else str

        outcome: dict[str, Any] = {}
        for key in keys:
            result = by_id.get(wire.custom_id(key))
            if result is None:
                outcome[key] = (None, CellError("BatchResultMissing", None, f"batch {info.id} has no result"), None)
            elif result.body is None:
                err = result.error or {}
                kind = str(err.get("type") or err.get("error_type") or "BatchRequestError")
                outcome[key] = (None, CellError(kind, result.status_code, str(err.get("message") or err)), None)
            else:
                try:
                    reply = parse_completion(result.body, model=model)
                except Exception as exc:
                    outcome[key] = (None, CellError.of(exc), None)
                    continue
                entry = entry_for(
                    model, reply.usage, reply, started=time.monotonic(), wall_started=time.time(), ttft=None,
                    step=1, streamed=False, price=price,
                )  # fmt: skip
                try:
                    checked(reply.content)
                except Exception as exc:  # as in a normal grid: a reply that does not fit the type fails the cell
                    outcome[key] = (None, CellError.of(exc), entry)
                    continue
                outcome[key] = (reply.content, None, entry)
        _share_cost(outcome, info.cost)
        self._write(keys, model, lambda key: outcome[key], latency=time.time() - float(batch["submitted"]))

    # ------------------------------------------------------------------------------------------ writing cells
    def _write(
        self, keys: list[str], model: str, made: Callable[[str], tuple[Any, Any, Any]], latency: float | None = None
    ) -> None:
        """Write each of ``model``'s cells (``made(key)`` -> ``(text, error, ledger entry)``) to the store, and
        queue this grid's rows of it for the caller (cells of other grids sharing a batch are only written)."""
        from .grid import Cell, _accounted

        for key in keys:
            text, error, entry = made(key)
            if entry is not None:
                self.meter.settle(None, entry)
            rows = self.rows.get(key)
            value = self.parse(model, text) if self.parse is not None and text is not None else text
            cell = Cell(
                prompt_id=None, model=model, key=key, text=text, value=value, error=error, latency=latency,
                **_accounted([entry] if entry is not None else []),
            )  # fmt: skip
            stored = {k: v for k, v in cell.to_dict().items() if k not in ("prompt_id", "model", "key", "from_store")}
            self.store.finish(key, cell.ok, st.canonical(stored), cell.cost, cell.prompt_tokens, cell.completion_tokens)
            for row in rows or []:
                self.out.append(replace(cell, prompt_id=json.loads(row.prompt_id)))

    def _drain(self) -> list[Cell]:
        cells, self.out = self.out, []
        if self.progress is not None:
            for cell in cells:
                self.progress.add(cell)
        return cells

    def _show(self) -> None:
        if self.progress is not None:
            submitted, running = self.counts["submitted"], self.counts["open"]
            self.progress.note = f"; batches: {submitted} submitted, {running} in progress"
            self.progress._show(self.progress.line(), True)


def _share_cost(outcome: dict[str, Any], batch_cost: float | None) -> None:
    """When the results carry no cost of their own, the batch's cost (what OpenRouter charges) is shared among
    its answered cells in proportion to their tokens (equally when none are reported)."""
    entries = [e for _, _, e in outcome.values() if e is not None]
    if batch_cost is None or not entries or any(e.cost is not None for e in entries):
        return
    tokens = sum(e.total_tokens for e in entries)
    for key, (text, error, entry) in outcome.items():
        if entry is not None:
            share = entry.total_tokens / tokens if tokens else 1 / len(entries)
            outcome[key] = (text, error, replace(entry, cost=round(batch_cost * share, 12), estimated_cost=None))


# --------------------------------------------------------------------------------------------- managing batches
def _endpoint(base_url: str | None, api_key: str | None) -> Any:
    from ._transport import Endpoint

    endpoint = Endpoint(base_url, api_key)
    endpoint.base_url = wire.batches_base(endpoint.base_url)
    return endpoint


def _row(info: wire.BatchInfo) -> dict[str, Any]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.created_at)) if info.created_at else None
    return {
        "id": info.id,
        "status": info.status,
        "model": info.model,
        "cells": info.total,
        "created": created,
        "completed": info.completed,
        "failed": info.failed,
        "cost": info.cost,
    }


def list_batches(base_url: str | None = None, api_key: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The account's batches, newest first (at most ``limit``, read a page of 100 at a time)."""
    endpoint = _endpoint(base_url, api_key)
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while len(rows) < limit:
        page, after = wire.read_page(endpoint.request("GET", wire.ROUTE, params=wire.list_query(100, after)))
        rows.extend(_row(info) for info in page)
        if after is None:
            break
    return rows[:limit]


def get_batch(base_url: str | None, api_key: str | None, batch: str, results: bool = False) -> dict[str, Any]:
    """One batch object as the server returns it (without its ``results`` unless ``results``)."""
    data = dict(_endpoint(base_url, api_key).request("GET", f"{wire.ROUTE}/{batch}"))
    if not results:
        data.pop("results", None)
    return data


def delete_batch(base_url: str | None, api_key: str | None, batch: str) -> Any:
    """Delete a finished batch (the server answers 409 while it runs: `APIStatusError` with status 409). Deleting
    is not cancelling, and the billing records stay."""
    return _endpoint(base_url, api_key).request("DELETE", f"{wire.ROUTE}/{batch}")


def stored_batches(path: str) -> list[dict[str, Any]]:
    """The batches a grid store keeps: id, last status seen, model, cells, when submitted, cost, collected."""
    from pathlib import Path

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such store")
    store = st.Store(path)
    try:
        rows = store.batches()
    finally:
        store.close()
    return [
        {
            "id": r["id"],
            "status": r["status"],
            "model": r["model"],
            "cells": r["cells"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["submitted"])),
            "cost": r["cost"],
            "collected": bool(r["collected"]),
            "error": r["error"],
        }
        for r in rows
    ]
