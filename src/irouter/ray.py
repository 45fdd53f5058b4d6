"""Grids on Ray Data: prompts x models across the workers of a Ray cluster, with one budget and one rate limit.

>>> import ray, irouter.ray                                                                  # doctest: +SKIP
>>> prompts = ray.data.read_parquet("s3://bucket/prompts/")  # rows with an "id" and a "prompt"  # doctest: +SKIP
>>> answers = irouter.ray.grid(prompts, ["openai/gpt-4o-mini"], max_cost=20.0)               # doctest: +SKIP
>>> answers.write_parquet("s3://bucket/answers/")                                            # doctest: +SKIP

Ray does the distribution; irouter does the LLM work inside it. Each worker (`GridWorker`, a callable class for
``Dataset.map_batches``) keeps one event loop and one `AsyncCall` (its connection pools reused) for its whole life
and runs every batch through the single-machine grid engine (`irouter.grid`): the same cells, keys, retries, tool
loops and structured output. What must be shared by the whole job lives in one Ray actor, `Job`:

- **the budget**: before a cell is sent its worker asks the job for the cell's worst case (its prompt plus
  ``max_tokens`` at the catalog's prices); the worker's own ledger then reserves every request against what the job
  granted it, and gives back what was not spent when the cell ends. The sum of the costs reported never passes
  ``max_cost``, however many workers;
- **the rate limit**: ``rpm=`` / ``tpm=`` per model for the whole job, and a 429's ``Retry-After`` pauses every
  worker, not only the one that met it;
- **finished cells**: each finished cell is recorded there, so a batch that Ray runs again (its worker died) sends
  only the cells that had not finished; and ``resume_from=`` loads the keys of an earlier run's output, so a second
  run sends only what is missing.

The API key reaches the workers through their environment (Ray's ``runtime_env``): nothing pickled here holds it.
``import irouter`` never imports Ray; this module does, on first use.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._ledger import Meter
from .errors import BudgetExceeded, RateLimitError
from .grid import _GridMeter, _InFlight, _Limiter, _on_loop, _per_model, stored

if TYPE_CHECKING:
    from .grid import Cell, _Run

T = TypeVar("T")

__all__ = ["COLUMNS", "GridWorker", "Job", "grid"]

COLUMNS = (
    "id",
    "model",
    "key",
    "text",
    "value",
    "error",
    "error_status",
    "error_message",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "estimated_cost",
    "provider",
    "served_model",
    "latency",
    "ttft",
    "finish_reason",
    "requests",
)
"""The output columns, one row per cell. ``value`` is the parsed ``response_format`` value as JSON text (``None``
without a ``response_format``); ``error`` is the error's type name, beside its HTTP status and message."""

KEY_VARIABLES = ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL")
"""Variables `grid` hands to its workers through ``runtime_env`` when the driver has them (plus ``api_key_env``)."""
GRANT_MARGIN = 2.0
"""A cell asks the job for this many times its estimated worst case: the requests it sends reserve their own worst
case against the grant, estimated from the whole request body (a little more than the cell's), and a tool step
needs a second reservation. What is not spent goes back to the job when the cell ends."""
WAIT_FOR_BUDGET = 0.05
"""Seconds a worker waits before asking again for a cell's worst case that fits once other cells settle."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - the extra is installed where this is tested
        raise ImportError('irouter.ray needs Ray Data: pip install "irouter[ray]"') from None
    return ray


# --------------------------------------------------------------------------------------------- the job's actor
class _JobState:
    """What the whole job shares, kept in one Ray actor (methods run one at a time): the budget's grants, the
    per-model rate limits, a pause after a 429, and the cells finished (with what the store keeps of each)."""

    def __init__(self, max_cost: float | None, rpm: Any, tpm: Any) -> None:
        self.max_cost = max_cost
        self.spent = 0.0
        self.granted = 0.0
        """Dollars granted to workers and not yet settled (spent or given back)."""
        self.rpm, self.tpm = rpm, tpm
        self.paces: dict[tuple[str, str], float] = {}
        self.resume_at = 0.0
        self.results: dict[str, tuple[str, float]] = {}
        self.skipped: set[str] = set()
        self.workers: dict[str, int] = {}

    # cells
    def done(self, keys: list[str]) -> dict[str, str | None]:
        """For each key finished in this job: what the store keeps of it; ``None`` for keys skipped (resume)."""
        found: dict[str, str | None] = {k: None for k in keys if k in self.skipped}
        found.update({k: self.results[k][0] for k in keys if k in self.results})
        return found

    def finish(self, key: str, result: str) -> None:
        self.results.setdefault(key, (result, time.time()))

    def skip(self, keys: list[str]) -> int:
        self.skipped.update(keys)
        return len(self.skipped)

    def finished(self) -> dict[str, float]:
        return {k: at for k, (_, at) in self.results.items()}

    # budget
    def grant(self, need: float) -> tuple[str, float]:
        """``("ok", need)`` when it fits beside what was spent and granted; ``("wait", 0)`` when it would fit
        once grants settle; ``("never", 0)`` when it no longer fits at all."""
        if self.max_cost is None:
            return "ok", 0.0
        if self.spent + need > self.max_cost:
            return "never", 0.0
        if self.spent + self.granted + need > self.max_cost:
            return ("wait", 0.0) if self.granted > 0 else ("never", 0.0)
        self.granted += need
        return "ok", need

    def settle(self, returned: float, spent: float, excess: float = 0.0) -> None:
        """A worker gives back ``returned`` dollars unspent and reports ``spent`` since it last settled, of which
        ``excess`` was beyond what the job had granted (answers dearer than their worst case)."""
        self.spent += spent
        self.granted = max(0.0, self.granted - returned - spent + excess)

    # rate limits
    def pace(self, model: str, tokens: int) -> float:
        """Seconds the caller waits before sending one request of ``tokens`` tokens to ``model`` (a generic cell
        rate algorithm per limit, about a second's worth of burst), or until a job-wide pause ends."""
        now = time.time()
        wait = max(0.0, self.resume_at - now)
        for name, limits, amount in (("rpm", self.rpm, 1), ("tpm", self.tpm, tokens)):
            per_minute = limits.get(model) if isinstance(limits, dict) else limits
            if not per_minute:
                continue
            interval = 60.0 / per_minute
            burst = max(1.0, per_minute / 60.0)
            amount = min(max(amount, 1), burst)
            start = max(self.paces.get((name, model), now), now)
            self.paces[(name, model)] = start + amount * interval
            wait = max(wait, start + amount * interval - now - burst * interval)
        return wait

    def pause(self, until: float) -> None:
        self.resume_at = max(self.resume_at, until)

    # reporting
    def hello(self, worker: str, pid: int) -> None:
        self.workers[worker] = pid

    def report(self) -> dict[str, Any]:
        return {
            "spent": self.spent,
            "granted": self.granted,
            "max_cost": self.max_cost,
            "finished": len(self.results),
            "skipped": len(self.skipped),
            "workers": dict(self.workers),
        }


class Job:
    """One grid job's shared state, in a Ray actor: the budget (``max_cost`` dollars for every worker together),
    the rate limits (``rpm``/``tpm``: a number for every model or ``{slug: number}``, for the whole job) and the
    cells finished. `grid` makes one; make your own to share it between `GridWorker` stages or to read it after.

    A `Job` pickles as its actor's handle: pass it to workers freely (it holds no key). The actor lives as long as
    a handle to it does (the returned dataset holds one).
    """

    def __init__(
        self,
        *,
        max_cost: float | None = None,
        rpm: int | Mapping[str, int] | None = None,
        tpm: int | Mapping[str, int] | None = None,
    ) -> None:
        from ._ledger import check_limit

        check_limit("max_cost", max_cost)
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None:  # checked as a grid checks them (the models are not known here)
                _per_model(name, value, list(value) if isinstance(value, Mapping) else ["every model"])
        ray = _ray()
        actor = ray.remote(num_cpus=0, max_restarts=0)(_JobState)
        self.max_cost = max_cost
        self.paced = rpm is not None or tpm is not None
        """Whether workers ask the actor before each cell (rate limits); after a 429 they do anyway."""
        self.actor = actor.remote(max_cost, dict(rpm) if isinstance(rpm, Mapping) else rpm, _plain(tpm))

    def __repr__(self) -> str:
        return f"Job(max_cost={self.max_cost!r})"

    def report(self) -> dict[str, Any]:
        """``spent`` (dollars reported by finished requests), ``granted`` (held by cells in flight), ``max_cost``,
        ``finished`` and ``skipped`` cell counts, and ``workers`` (worker id -> process id)."""
        return _ray().get(self.actor.report.remote())  # type: ignore[no-any-return]

    def finished(self) -> dict[str, float]:
        """Every cell finished in this job: its key -> the Unix time it was recorded."""
        return _ray().get(self.actor.finished.remote())  # type: ignore[no-any-return]

    def skip(self, keys: Iterable[str]) -> int:
        """Mark cells (by key) as done elsewhere: no worker of this job sends them, and they are left out of the
        output. Returns how many keys are skipped in all."""
        ray, count, chunk = _ray(), 0, []
        for key in keys:
            chunk.append(key)
            if len(chunk) >= 10_000:  # a chunk at a time: an output of millions of cells is never one message
                count = ray.get(self.actor.skip.remote(chunk))
                chunk = []
        if chunk or not count:
            count = ray.get(self.actor.skip.remote(chunk))
        return int(count)


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def done_keys(output: Any, retry_failed: bool = True) -> Iterable[str]:
    """The keys of the cells in an earlier output (a path Ray Data reads as Parquet, or a ``Dataset``) that a new
    run need not send: every cell, or with ``retry_failed`` only those without an error."""
    ray = _ray()
    dataset = ray.data.read_parquet(os.fspath(output)) if isinstance(output, (str, os.PathLike)) else output
    for batch in dataset.select_columns(["key", "error"]).iter_batches(batch_format="pyarrow", batch_size=65_536):
        for key, error in zip(batch.column("key").to_pylist(), batch.column("error").to_pylist(), strict=True):
            if error is None or not retry_failed:
                yield key


# --------------------------------------------------------------------------------------------- inside a worker
class _JobMeter(_GridMeter):
    """A worker's ledger: every request reserves against the dollars the job granted this worker (``max_cost``
    grows with each grant and shrinks as the rest is given back). It never makes a cell wait on its own: the job
    decides that (`_JobGate`)."""

    def __init__(self, job_max_cost: float | None, quote: Callable[[str], Any]) -> None:
        super().__init__(None if job_max_cost is None else 0.0, quote)
        self.job_max_cost = job_max_cost
        self.excess = 0.0
        """Dollars requests cost beyond the worst case they held (the server's price above the catalog's)."""

    def held(self) -> float:
        return 0.0  # the grid's local admission (`_Run._admit`) never waits: the job's grants do

    def settle(self, hold: Any, entry: Any) -> None:
        """`_GridMeter.settle`; a request that cost more than it held widens the grant by as much (the money is
        spent: the job counts it when the worker settles), so one dear answer does not refuse the next cells."""
        if self.max_cost is not None and hold is not None and entry is not None:
            used = entry.cost if entry.cost is not None else (entry.estimated_cost or 0.0)
            beyond = max(0.0, used - hold.cost)
            self.max_cost += beyond
            self.excess += beyond
        super().settle(hold, entry)

    def reserve(self, model: str, body: Mapping[str, Any]) -> Any:
        try:
            return Meter.reserve(self, model, body)
        except BudgetExceeded as exc:
            raise BudgetExceeded(
                f"Budget reached: the request to {model} was not sent: the job's max_cost=${self.job_max_cost:g} is "
                "spent or held by requests in flight on its workers. Raise max_cost and run again with resume_from= "
                "the output so far: only the missing cells are sent.",
                spent=exc.spent,
                limit=exc.limit,
                kind=exc.kind,
                model=model,
                needed=exc.needed,
            ) from None


class _JobGate(_InFlight):
    """Before a cell is sent: its worst case granted by the job (waiting while it would fit once others settle);
    after: the part of this worker's grants not spent nor held goes back, with what was spent."""

    def __init__(self, actor: Any, meter: _JobMeter) -> None:
        super().__init__(None)
        self.actor, self.meter = actor, meter
        self.outstanding = 0.0
        self.reported = 0.0
        self.reported_excess = 0.0
        self.pending: set[Any] = set()

    async def acquire(self, need: float | None) -> float | None:
        if self.meter.max_cost is None:
            return None
        while True:
            verdict, granted = await self.actor.grant.remote((need or 0.0) * GRANT_MARGIN)
            if verdict == "ok":
                self.meter.max_cost += granted
                self.outstanding += granted
                return float(granted)
            if verdict == "never":  # the worker's reservation refuses it, as a budget error
                return None
            await asyncio.sleep(WAIT_FOR_BUDGET)

    def release(self, held: float | None) -> None:
        if self.meter.max_cost is None:
            return
        self.outstanding -= held or 0.0
        self.settle()

    def settle(self) -> Any:
        """Give back what is neither spent nor held by a cell in flight; report what was spent since last time."""
        if self.meter.max_cost is None:
            return None
        spent = self.meter.spent() - self.reported
        excess = self.meter.excess - self.reported_excess
        free = max(0.0, self.meter.max_cost - self.meter.spent() - self.outstanding)
        if not free and not spent:
            return None
        self.meter.max_cost -= free
        self.reported += spent
        self.reported_excess += excess
        ref = self.actor.settle.remote(free, spent, excess)
        self.pending.add(ref)
        return ref


class _JobLimiter(_Limiter):
    """A worker's concurrency (``concurrency_per_worker``, adaptive as in a grid), and before each cell the job's
    pace: its rate limits and any pause a 429 on another worker started."""

    def __init__(self, ceiling: int, actor: Any, paced: bool) -> None:
        super().__init__(ceiling, {}, {})
        self.actor, self.paced = actor, paced

    async def acquire(self, model: str, tokens: int) -> None:
        await super().acquire(model, tokens)
        try:
            wait = await self.actor.pace.remote(model, tokens) if self.paced else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
        except BaseException:
            self.release(False)
            raise

    def observe(self, exc: Exception, wait: float) -> None:
        super().observe(exc, wait)
        if isinstance(exc, RateLimitError) and exc.retry_after:
            self.paced = True  # from now on every cell asks the job whether a pause is on
            self.actor.pause.remote(time.time() + wait)


class _Hooks:
    """What a worker swaps into each grid run (`Grid._hooks`): its limiter, ledger and gate, shared by the runs."""

    def __init__(self, limiter: _JobLimiter, meter: _JobMeter, gate: _JobGate) -> None:
        self.limiter, self.meter, self.gate = limiter, meter, gate

    def attach(self, run: _Run) -> None:
        from dataclasses import replace

        run.limiter = self.limiter
        run.plan = replace(run.plan, on_retry=_on_loop(self.limiter.observe))
        self.meter.quote = run.meter.quote
        run.meter = self.meter
        run.in_flight = self.gate


class _Loop:
    """One event loop in a daemon thread for the worker's life: its async client's pools live on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="irouter-ray-loop", daemon=True).start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()


class GridWorker:
    """A callable class for ``Dataset.map_batches``: each batch of rows (an ``id`` and a ``prompt`` column) sent
    to every model, one output row per cell (the columns of `COLUMNS`).

    >>> job = irouter.ray.Job(max_cost=5.0)                                                  # doctest: +SKIP
    >>> answers = prompts.map_batches(GridWorker, fn_constructor_kwargs={"models": ["openai/gpt-4o-mini"],
    ...     "job": job}, compute=ray.data.ActorPoolStrategy(size=4), num_cpus=0.5,
    ...     batch_format="pyarrow")                                                          # doctest: +SKIP

    Args:
        models: the model slugs.
        job: the job's shared budget, rate limit and finished cells (`Job`); ``None``: none (each worker then
            knows only its own cells).
        concurrency: requests in flight at most in this worker (halved on rate limits, grown back after).
        system, base_url: as for `Call`.
        api_key_env: the environment variable holding the key in the worker (Ray's ``runtime_env``), for a
            ``base_url`` other than OpenRouter's; by default irouter's own rules (``OPENROUTER_API_KEY``).
        id_column, prompt_column: where each row's id and prompt are (a prompt is a string, a content-part list
            or a message list, as in a grid).
        retry_failed: cells that failed earlier in this worker are sent again.
        options: request options for every cell (``temperature``, ``max_tokens``, ``tools``,
            ``response_format``...), as for ``Call.grid``.
    """

    def __init__(
        self,
        models: str | Sequence[str],
        *,
        job: Job | None = None,
        concurrency: int = 64,
        system: str | None = "",
        base_url: str | None = None,
        api_key_env: str | None = None,
        id_column: str = "id",
        prompt_column: str = "prompt",
        retry_failed: bool = True,
        **options: Any,
    ) -> None:
        import tempfile
        import uuid
        from pathlib import Path

        from .call import AsyncCall

        self._args: dict[str, Any] = {
            "models": models,
            "job": job,
            "concurrency": concurrency,
            "system": system,
            "base_url": base_url,
            "api_key_env": api_key_env,
            "id_column": id_column,
            "prompt_column": prompt_column,
            "retry_failed": retry_failed,
            **options,
        }
        key = os.environ.get(api_key_env) if api_key_env else None
        self.call = AsyncCall(list(models) if not isinstance(models, str) else models, base_url, key, system)
        self.options, self.job = options, job
        self.concurrency, self.retry_failed = concurrency, retry_failed
        self.id_column, self.prompt_column = id_column, prompt_column
        self.call.grid([], concurrency=concurrency, progress=False, **options)  # bad options raise here, at once
        self.path = Path(tempfile.mkdtemp(prefix="irouter-ray-")) / "cells.sqlite"
        self.name = uuid.uuid4().hex[:12]
        self._loop = _Loop()
        self._hooks = self._loop.run(self._make_hooks())
        if job is not None:
            job.actor.hello.remote(self.name, os.getpid())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its arguments (never the key, which each worker reads from its environment)."""
        args = dict(self._args)
        return (_remake, (args,))

    def __repr__(self) -> str:
        return f"GridWorker({self._args['models']!r}, concurrency={self.concurrency})"

    async def _make_hooks(self) -> _Hooks | None:
        if self.job is None:
            return None
        meter = _JobMeter(self.job.max_cost, lambda model: None)
        limiter = _JobLimiter(self.concurrency, self.job.actor, self.job.paced)
        return _Hooks(limiter, meter, _JobGate(self.job.actor, meter))

    def __call__(self, batch: Any) -> Any:
        """The cells of every row of ``batch`` (a pyarrow Table, a pandas DataFrame or a dict of columns), as a
        pyarrow Table, one row per (row, model)."""
        import pyarrow as pa  # type: ignore[import-untyped]

        table = _as_table(batch)
        for name in (self.id_column, self.prompt_column):
            if name not in table.column_names:
                raise ValueError(
                    f"irouter.ray: the rows have no {name!r} column (they have {table.column_names}): give each row "
                    f"an id and a prompt, or name the columns with id_column= / prompt_column="
                )
        ids = table.column(self.id_column).to_pylist()
        prompts = table.column(self.prompt_column).to_pylist()
        cells = self._loop.run(self._run([{"id": i, "prompt": p} for i, p in zip(ids, prompts, strict=True)]))
        id_type = table.schema.field(self.id_column).type
        typed = self.options.get("response_format") is not None
        return pa.Table.from_pylist([_row(c, typed) for c in cells], schema=_schema(id_type))

    async def _run(self, rows: list[dict[str, Any]]) -> list[Cell]:
        from ._cancel import CancelSignal
        from ._store import Store

        grid = self.call.grid(
            rows,
            store=self.path,
            concurrency=self.concurrency,
            retry_failed=self.retry_failed,
            progress=False,
            in_flight_budget=None,
            force=True,
            **self.options,
        )
        grid._hooks = self._hooks
        skipped: set[str] = set()
        if self.job is not None:
            known = await self.job.actor.done.remote([r.key for r in grid._rows()])
            skipped = {k for k, v in known.items() if v is None}
            if known:
                store = Store(self.path)
                try:
                    await asyncio.to_thread(grid._register, store)
                    for key, kept in known.items():
                        # done, even when it failed: this job does not send it again (its error is in the result)
                        store.finish(key, True, kept or "{}", None, 0, 0)
                finally:
                    store.close()
        cells: list[Cell] = []
        recorded: list[Any] = []
        async for cell in grid._acells(CancelSignal()):
            if cell.key in skipped:
                continue
            cells.append(cell)
            if self.job is not None and not cell.from_store:
                recorded.append(self.job.actor.finish.remote(cell.key, stored(cell)))
        if self._hooks is not None:
            self._hooks.gate.settle()
            recorded.extend(self._hooks.gate.pending)
            self._hooks.gate.pending.clear()
        for ref in recorded:
            await ref
        return cells


def _remake(args: dict[str, Any]) -> GridWorker:
    args = dict(args)
    return GridWorker(args.pop("models"), **args)


def _as_table(batch: Any) -> Any:
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, Mapping):
        return pa.table({k: list(v) for k, v in batch.items()})
    return pa.Table.from_pandas(batch, preserve_index=False)


def _schema(id_type: Any) -> Any:
    import pyarrow as pa

    text, whole, real = pa.string(), pa.int64(), pa.float64()
    types = {"id": id_type, "error_status": whole, "requests": whole, "latency": real, "ttft": real}
    types.update(dict.fromkeys(("prompt_tokens", "completion_tokens", "total_tokens"), whole))
    types.update(dict.fromkeys(("cost", "estimated_cost"), real))
    return pa.schema([(name, types.get(name, text)) for name in COLUMNS])


def _row(cell: Cell, typed: bool) -> dict[str, Any]:
    """One output row: flat, Arrow-friendly (``value`` only for a typed ``response_format``)."""
    from .grid import jsonable

    row = {name: getattr(cell, name, None) for name in COLUMNS if name not in ("id", "value", "error")}
    row["id"] = cell.prompt_id
    row["value"] = json.dumps(jsonable(cell.value), ensure_ascii=False, default=str) if typed else None
    row["error"] = cell.error.type if cell.error else None
    row["error_status"] = cell.error.status if cell.error else None
    row["error_message"] = cell.error.message if cell.error else None
    return row


# --------------------------------------------------------------------------------------------- the whole job
def grid(
    dataset: Any,
    models: str | Sequence[str],
    *,
    max_cost: float | None = None,
    concurrency_per_worker: int = 64,
    workers: int | tuple[int, int] = 2,
    batch_size: int = 256,
    rpm: int | Mapping[str, int] | None = None,
    tpm: int | Mapping[str, int] | None = None,
    resume_from: Any = None,
    retry_failed: bool = True,
    system: str | None = "",
    base_url: str | None = None,
    api_key_env: str | None = None,
    id_column: str = "id",
    prompt_column: str = "prompt",
    num_cpus: float = 0.5,
    job: Job | None = None,
    **options: Any,
) -> Any:
    """Every row of ``dataset`` (an ``id`` and a ``prompt``) sent to every model, as a new ``ray.data.Dataset``
    with one row per cell (the columns of `COLUMNS`). Lazy, like any Dataset: nothing is sent until it is
    consumed (``write_parquet``, ``iter_batches``, ``materialize``...).

    Args:
        dataset: a ``ray.data.Dataset`` of prompts.
        models: the model slugs.
        max_cost: dollars the whole job may spend (every worker together): a hard cap, reserved before each
            request is sent. Cells past it fail with a budget error instead of being sent.
        concurrency_per_worker: requests in flight at most per worker.
        workers: how many workers (Ray actors), or ``(min, max)`` for an autoscaling pool.
        batch_size: rows per batch a worker takes at once.
        rpm, tpm: requests / tokens per minute per model, for the whole job.
        resume_from: an earlier run's output (a Parquet path or a Dataset): its cells are not sent again and are
            left out of this output (failed ones are sent again unless ``retry_failed=False``).
        retry_failed: see ``resume_from``.
        system, base_url, api_key_env, id_column, prompt_column: see `GridWorker`.
        num_cpus: CPUs Ray reserves per worker (the work is waiting on the network: less than one is typical).
        job: a `Job` of your own (then ``max_cost``, ``rpm`` and ``tpm`` must not be given here).
        options: request options for every cell (``temperature``, ``max_tokens``, ``tools``, ``response_format``).

    The workers read the key from their environment: the variables ``OPENROUTER_API_KEY``,
    ``OPENROUTER_BASE_URL`` (and ``api_key_env``) set in this process are passed on through Ray's ``runtime_env``;
    on a cluster set them in the job's ``runtime_env`` instead. No object pickled for the workers holds the key.
    """
    if isinstance(concurrency_per_worker, bool) or not isinstance(concurrency_per_worker, int):
        raise ValueError(f"concurrency_per_worker must be a whole number, got {concurrency_per_worker!r}")
    if job is not None and (max_cost is not None or rpm is not None or tpm is not None):
        raise ValueError("give max_cost=, rpm= and tpm= to the Job, not beside job=")
    if not hasattr(dataset, "map_batches"):
        raise TypeError(f"dataset must be a ray.data.Dataset, got {type(dataset).__name__}")
    job = job if job is not None else Job(max_cost=max_cost, rpm=rpm, tpm=tpm)
    kwargs: dict[str, Any] = dict(
        models=models,
        job=job,
        concurrency=concurrency_per_worker,
        system=system,
        base_url=base_url,
        api_key_env=api_key_env,
        id_column=id_column,
        prompt_column=prompt_column,
        retry_failed=retry_failed,
        **options,
    )
    _check(kwargs)
    if resume_from is not None:
        job.skip(done_keys(resume_from, retry_failed))
    names = [*KEY_VARIABLES, *([api_key_env] if api_key_env else [])]
    env = {name: os.environ[name] for name in names if os.environ.get(name)}
    ray = _ray()
    sizes = {"min_size": workers[0], "max_size": workers[1]} if isinstance(workers, tuple) else {"size": workers}
    return dataset.map_batches(
        GridWorker,
        fn_constructor_kwargs=kwargs,
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(**sizes),
        num_cpus=num_cpus,
        **({"runtime_env": {"env_vars": env}} if env else {}),
    )


def _check(kwargs: dict[str, Any]) -> None:
    """Bad models or options raise here, before the job starts (no request is made)."""
    from . import _options as opts
    from .call import Call

    args = {k: v for k, v in kwargs.items() if k != "job"}
    models = args.pop("models")
    if isinstance(models, str):
        models = [models]
    if not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"models must be one or more model slugs, got {models!r}")
    concurrency = args.pop("concurrency")
    if concurrency < 1:
        raise ValueError(f"concurrency_per_worker must be at least 1, got {concurrency!r}")
    for name in ("system", "base_url", "api_key_env", "id_column", "prompt_column", "retry_failed"):
        args.pop(name)
    call = Call(models, kwargs["base_url"], "unused: only checking the options", kwargs["system"])
    call._plan(args, opts.GRID)
