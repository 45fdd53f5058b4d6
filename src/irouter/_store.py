"""The store: one SQLite file (the standard library's ``sqlite3``) holding cell states and results, keyed by the
hash of the request. Grids use it to resume and to let several processes share one run; the response cache
(`irouter._log.ResponseCache`) keeps its answers in the same ``cells`` table (``kind = 'response'``), and the
conversation log (`irouter._log`) has its tables here too.

One schema, versioned (``meta.schema_version``); an older file migrates forward when opened (`MIGRATIONS`)::

    meta(key TEXT PRIMARY KEY, value TEXT)
    cells(key TEXT PRIMARY KEY,         -- sha256 of the canonical request (see grid.cell_key)
          model TEXT, request TEXT,     -- the canonical request JSON (model, messages, options); never a key
          state TEXT,                   -- pending | running | done | failed
          owner TEXT, lease_until REAL, -- who is sending it, and until when the claim holds (Unix time)
          attempts INTEGER, result TEXT,-- how many times it was claimed; the finished cell's JSON
          cost REAL, prompt_tokens INTEGER, completion_tokens INTEGER, updated REAL)
    grid_cells(grid TEXT, seq INTEGER, prompt_id TEXT, model TEXT, key TEXT)
          -- one row per (prompt, model) of a grid, in input order; duplicates share one cells row

    version 2 adds:
    cells.kind TEXT ('grid' | 'response'), cells.hits INTEGER   -- response-cache rows and how often they served
    conversations(id TEXT PRIMARY KEY, created REAL, updated REAL, title TEXT, models TEXT, settings TEXT)
    conversation_models(conversation TEXT, model TEXT, position INTEGER)
    messages(id INTEGER PRIMARY KEY, conversation TEXT, model TEXT, seq INTEGER, role TEXT, message TEXT,
             text TEXT, time REAL)             -- message: the JSON message, attachments replaced by their hash
    attachments(hash TEXT PRIMARY KEY, data TEXT)   -- each attachment's data once (sha256 of the data)
    requests(id INTEGER PRIMARY KEY, conversation TEXT, model TEXT, time REAL, cached INTEGER, cost REAL,
             prompt_tokens INTEGER, completion_tokens INTEGER, entry TEXT)   -- one ledger entry each
    messages_fts(text)                          -- FTS5 over messages.text (rowid = messages.id), when SQLite has it

    version 3 adds:
    batches(id TEXT PRIMARY KEY, model, status, cells, submitted, updated, cost, error, collected)
    batch_cells(batch TEXT, key TEXT)
          -- deferred grids: each Batch API batch accepted and its cells

Concurrency: WAL journal, a ``busy_timeout``, and short transactions. A cell is sent only by the process that
claimed it (`Store.claim`: one ``BEGIN IMMEDIATE`` transaction, so two processes never claim the same cell). A
claim is a lease: the owner renews it while its requests are in flight (`Store.renew`); if the process dies, the
lease runs out and another process may claim the cell. A process on the same machine whose owner process is gone
(``kill -9``) is noticed at once (`Store.reap`). Each finished cell is written in its own transaction
(`Store.finish`), so a crash loses only the cells in flight. No API key is ever written: requests hold the body
fields only.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import IrouterError

SCHEMA_VERSION = 3
LEASE_SECONDS = 30.0
"""How long a claim holds without renewal (renewed every `RENEW_SECONDS` while in flight)."""
RENEW_SECONDS = 10.0
BUSY_TIMEOUT_MS = 60_000
"""How long a transaction waits for another process's write lock before failing."""
CHUNK = 500
"""Rows per ``executemany`` / ``IN (...)`` query (SQLite limits bound parameters)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    owner TEXT,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    cost REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    updated REAL
);
CREATE INDEX IF NOT EXISTS cells_owner ON cells (owner) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS cells_model_state ON cells (model, state);
CREATE TABLE IF NOT EXISTS grid_cells (
    grid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prompt_id TEXT NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (grid, seq),
    UNIQUE (grid, prompt_id, model)
);
"""

_V2 = (
    "ALTER TABLE cells ADD COLUMN kind TEXT NOT NULL DEFAULT 'grid'",
    "ALTER TABLE cells ADD COLUMN hits INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS cells_kind ON cells (kind, updated)",
    "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, "
    "title TEXT, models TEXT NOT NULL, settings TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated)",
    "CREATE TABLE IF NOT EXISTS conversation_models (conversation TEXT NOT NULL, model TEXT NOT NULL, "
    "position INTEGER NOT NULL, PRIMARY KEY (conversation, model))",
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, conversation TEXT NOT NULL, model TEXT NOT NULL, "
    "seq INTEGER NOT NULL, role TEXT, message TEXT NOT NULL, text TEXT, time REAL, UNIQUE (conversation, model, seq))",
    "CREATE TABLE IF NOT EXISTS attachments (hash TEXT PRIMARY KEY, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, conversation TEXT, model TEXT NOT NULL, "
    "time REAL NOT NULL, cached INTEGER NOT NULL DEFAULT 0, cost REAL, prompt_tokens INTEGER, "
    "completion_tokens INTEGER, entry TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS requests_conversation ON requests (conversation)",
    "CREATE INDEX IF NOT EXISTS requests_time ON requests (time)",
)

_V3 = (
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, model TEXT NOT NULL, status TEXT NOT NULL, "
    "cells INTEGER NOT NULL, submitted REAL NOT NULL, updated REAL, cost REAL, error TEXT, "
    "collected INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS batch_cells (batch TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (batch, key))",
)
"""Deferred grids (OpenRouter's Batch API): each batch accepted, and its cells. While a batch runs, its cells are
``running`` with owner ``batch:<id>`` and no lease, so no run claims them again; the run that collects the batch
writes them."""

MIGRATIONS: dict[int, tuple[str, ...]] = {2: _V2, 3: _V3}
"""The statements taking a file from version ``n - 1`` to ``n`` (run in one transaction; a new file runs them all)."""

FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text)"
"""Full-text search of the log; a SQLite built without FTS5 gets none (search then falls back to ``LIKE``)."""

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
BATCH_OWNER = "batch:"
"""The owner prefix of cells inside a batch (``batch:<id>``)."""


class StoreError(IrouterError, RuntimeError):
    """The store file cannot be used: written by a newer irouter, or not an irouter store."""


@dataclass(frozen=True)
class GridRow:
    """One (prompt, model) of a grid as registered: ``prompt_id`` is JSON text, ``request`` canonical JSON."""

    prompt_id: str
    model: str
    key: str
    request: str


@dataclass(frozen=True)
class CellRow:
    """One registered grid cell read back with its state."""

    seq: int
    prompt_id: str
    model: str
    key: str
    state: str
    owner: str | None
    lease_until: float | None
    request: str
    result: str | None
    updated: float | None = None
    """Unix time of the cell's last write."""


@dataclass(frozen=True)
class Observed:
    """What the done cells of one model used: how many, and their mean and smallest completion tokens."""

    cells: int
    mean_completion: float
    min_completion: int


def new_owner() -> str:
    """An owner id for one run: ``host:pid:random`` (the host and pid let a dead local owner be noticed)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _alive(owner: str) -> bool:
    """Whether ``owner``'s process may still be running (``True`` unless it is on this host and gone)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """One SQLite store file, opened by one run (one owner). Not shared between threads: the grid engine uses it
    from its event loop only.

    Args:
        path: the file (made, with its folder, if missing).
        lease: seconds a claim holds without renewal.
        clock: Unix time (tests pass a fake one to expire leases).
        busy_timeout: seconds a statement waits for another process's write lock before failing (the log and the
            response cache wait less than a grid: they must not hold up a chat).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT_MS / 1000,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease = lease
        self.clock = clock
        self.owner = new_owner()
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # with WAL: a process crash loses nothing committed
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path} cannot be used as an irouter store (SQLite): {exc}") from None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        """Make the tables of a new file, or take an older file's schema forward (`MIGRATIONS`), in one write
        transaction (several processes may open a file at once: one migrates, the others then find it done)."""
        self._db.executescript(_SCHEMA)  # IF NOT EXISTS: safe when several processes open a new file at once
        if self._version() == SCHEMA_VERSION:
            return
        with self._write() as db:
            version = self._version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer irouter (store schema {version}, this one reads "
                    f"{SCHEMA_VERSION}): upgrade irouter, or use another store file"
                )
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
            try:
                db.execute(FTS)
                fts = "1"
            except sqlite3.OperationalError:  # SQLite built without FTS5
                fts = "0"
            db.execute("INSERT OR REPLACE INTO meta VALUES ('fts', ?)", (fts,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _version(self) -> int:
        """The file's schema version: 0 for a new file."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return 0 if row is None else int(row[0])

    @property
    def has_fts(self) -> bool:
        """Whether the log's full-text index exists (SQLite with FTS5)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'fts'").fetchone()
        return row is not None and row[0] == "1"

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one query (no transaction: a reader never waits for a writer, with WAL)."""
        return self._db.execute(sql, params).fetchall()

    def write(self) -> Store._Tx:
        """A short write transaction for the log and the cache (see `_write`)."""
        return self._write()

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, kind: object, *rest: object) -> None:
            self.db.execute("ROLLBACK" if kind is not None else "COMMIT")

    def _write(self) -> Store._Tx:
        """A short write transaction (``BEGIN IMMEDIATE``: takes the write lock at once, waiting `busy_timeout`)."""
        return Store._Tx(self._db)

    # ------------------------------------------------------------------------------------------ registering a grid
    def register(self, rows: Iterable[GridRow]) -> str:
        """Record a grid's cells (new cells as pending) in one transaction and return the grid's id: the sha256
        of its ordered (prompt id, model, key) rows. Registering the same grid again changes nothing.

        Raises ``ValueError`` when two rows share a prompt id and model (prompt ids must be unique)."""
        import hashlib

        digest = hashlib.sha256()
        staging = f"staging:{self.owner}"
        now = self.clock()
        with self._write() as db:
            seq = 0
            for chunk in _chunks(iter(rows), CHUNK):
                db.executemany(
                    "INSERT OR IGNORE INTO cells (key, model, request, state, updated) VALUES (?, ?, ?, 'pending', ?)",
                    [(r.key, r.model, r.request, now) for r in chunk],
                )
                try:
                    db.executemany(
                        "INSERT INTO grid_cells (grid, seq, prompt_id, model, key) VALUES (?, ?, ?, ?, ?)",
                        [(staging, seq + i, r.prompt_id, r.model, r.key) for i, r in enumerate(chunk)],
                    )
                except sqlite3.IntegrityError:  # the transaction is rolled back: nothing registered
                    raise ValueError(
                        "Two prompts share an id (with the same model): give each row of prompts a unique 'id'"
                    ) from None
                for r in chunk:
                    digest.update(f"{r.prompt_id}\x00{r.model}\x00{r.key}\x01".encode())
                seq += len(chunk)
            grid = digest.hexdigest()
            exists = db.execute("SELECT 1 FROM grid_cells WHERE grid = ? LIMIT 1", (grid,)).fetchone()
            if exists:
                db.execute("DELETE FROM grid_cells WHERE grid = ?", (staging,))
            else:
                db.execute("UPDATE grid_cells SET grid = ? WHERE grid = ?", (grid, staging))
        return grid

    def states(self, keys: Sequence[str]) -> dict[str, str]:
        """The state of each key the store knows (keys it does not know are left out). Reads only."""
        found: dict[str, str] = {}
        for chunk in _chunks(iter(keys), CHUNK):
            marks = ",".join("?" * len(chunk))
            for key, state in self._db.execute(f"SELECT key, state FROM cells WHERE key IN ({marks})", chunk):
                found[key] = state
        return found

    def observed(self, model: str) -> Observed | None:
        """Completion tokens of ``model``'s done grid cells (for the forecast; the response cache's rows are
        chats' answers, not cells); ``None`` when there are none."""
        row = self._db.execute(
            "SELECT COUNT(*), AVG(completion_tokens), MIN(completion_tokens) FROM cells "
            "WHERE model = ? AND state = 'done' AND kind = 'grid' AND completion_tokens IS NOT NULL",
            (model,),
        ).fetchone()
        if not row or not row[0]:
            return None
        return Observed(int(row[0]), float(row[1]), int(row[2]))

    # ------------------------------------------------------------------------------------------ reading a grid
    def page(self, grid: str, after: int, limit: int = CHUNK, states: Sequence[str] | None = None) -> list[CellRow]:
        """Up to ``limit`` cells of ``grid`` with ``seq > after``, in input order (only in ``states`` if given)."""
        where = ""
        params: list[Any] = [grid, after]
        if states:
            where = f" AND c.state IN ({','.join('?' * len(states))})"
            params.extend(states)
        rows = self._db.execute(
            "SELECT g.seq, g.prompt_id, g.model, g.key, c.state, c.owner, c.lease_until, c.request, c.result, "
            "c.updated "
            "FROM grid_cells g JOIN cells c ON c.key = g.key "
            f"WHERE g.grid = ? AND g.seq > ?{where} ORDER BY g.seq LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [CellRow(*row) for row in rows]

    def rows(self, grid: str, states: Sequence[str] | None = None) -> Iterator[CellRow]:
        """Every cell of ``grid`` in input order, read a page at a time."""
        after = -1
        while True:
            page = self.page(grid, after, CHUNK, states)
            yield from page
            if len(page) < CHUNK:
                return
            after = page[-1].seq

    def cell(self, key: str) -> tuple[str, str | None, str | None]:
        """``(state, owner, result)`` of one cell."""
        row = self._db.execute("SELECT state, owner, result FROM cells WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0], row[1], row[2]

    def known(self, grid: str) -> bool:
        return self._db.execute("SELECT 1 FROM grid_cells WHERE grid = ? LIMIT 1", (grid,)).fetchone() is not None

    # ------------------------------------------------------------------------------------------ claims and results
    def claim(self, keys: Sequence[str], retry_failed: bool = True, failed_before: float | None = None) -> list[str]:
        """Claim the cells among ``keys`` that may be sent by this run (pending; failed when ``retry_failed``, and
        only if they failed before ``failed_before`` when given: a cell another process just failed in the same
        run is not sent again; running under a lease that has run out), in one transaction. Returns the keys
        claimed, in order: only this run sends them."""
        now = self.clock()
        before = now if failed_before is None else failed_before
        claimed: list[str] = []
        with self._write() as db:
            for key in keys:
                cursor = db.execute(
                    "UPDATE cells SET state = 'running', owner = ?, lease_until = ?, attempts = attempts + 1, "
                    "updated = ? WHERE key = ? AND (state = 'pending' OR (state = 'failed' AND ? AND updated <= ?) "
                    "OR (state = 'running' AND lease_until < ?))",
                    (self.owner, now + self.lease, now, key, retry_failed, before, now),
                )
                if cursor.rowcount:
                    claimed.append(key)
        return claimed

    def renew(self) -> int:
        """Extend the leases of every cell this run holds; returns how many."""
        now = self.clock()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE cells SET lease_until = ? WHERE owner = ? AND state = 'running'", (now + self.lease, self.owner)
            )
        return cursor.rowcount

    def finish(self, key: str, ok: bool, result: str, cost: float | None, prompt: int, completion: int) -> None:
        """Write a finished cell (``ok``: done, else failed) in its own transaction."""
        with self._write() as db:
            db.execute(
                "UPDATE cells SET state = ?, result = ?, cost = ?, prompt_tokens = ?, completion_tokens = ?, "
                "lease_until = NULL, updated = ? WHERE key = ?",
                (DONE if ok else FAILED, result, cost, prompt, completion, self.clock(), key),
            )

    def release(self, keys: Sequence[str] | None = None) -> int:
        """Give back this run's claims (all, or those among ``keys``) unsent: a cell that had failed before goes
        back to failed, any other to pending. Returns how many."""
        sql = (
            "UPDATE cells SET state = CASE WHEN result IS NULL THEN 'pending' ELSE 'failed' END, owner = NULL, "
            "lease_until = NULL WHERE owner = ? AND state = 'running'"
        )
        with self._write() as db:
            if keys is None:
                return db.execute(sql, (self.owner,)).rowcount
            return sum(db.execute(sql + " AND key = ?", (self.owner, key)).rowcount for key in keys)

    def reap(self) -> int:
        """Release the claims of owners on this machine whose process is gone (``kill -9``), without waiting for
        their leases to run out. Returns how many cells were released."""
        owners = [o for (o,) in self._db.execute("SELECT DISTINCT owner FROM cells WHERE state = 'running'")]
        dead = [o for o in owners if o and o != self.owner and not _alive(o)]
        released = 0
        for owner in dead:
            with self._write() as db:
                released += db.execute(
                    "UPDATE cells SET state = CASE WHEN result IS NULL THEN 'pending' ELSE 'failed' END, "
                    "owner = NULL, lease_until = NULL WHERE owner = ? AND state = 'running'",
                    (owner,),
                ).rowcount
        return released

    # ------------------------------------------------------------------------------------------ batches
    def batch_submitted(self, batch: str, model: str, keys: Sequence[str], status: str) -> None:
        """Record a batch the server accepted, with its cells (claimed by this run), in one transaction: from now
        on the cells belong to the batch (no run claims them) until `batch_collected`."""
        now = self.clock()
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO batches (id, model, status, cells, submitted, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (batch, model, status, len(keys), now, now),
            )
            db.executemany("INSERT OR IGNORE INTO batch_cells VALUES (?, ?)", [(batch, k) for k in keys])
            db.executemany(
                "UPDATE cells SET state = 'running', owner = ?, lease_until = NULL, updated = ? WHERE key = ?",
                [(BATCH_OWNER + batch, now, k) for k in keys],
            )

    def batch_status(self, batch: str, status: str, cost: float | None = None, error: str | None = None) -> None:
        """Note the last status seen of a batch (and its cost or error when known)."""
        with self._write() as db:
            db.execute(
                "UPDATE batches SET status = ?, cost = COALESCE(?, cost), error = COALESCE(?, error), updated = ? "
                "WHERE id = ?",
                (status, cost, error, self.clock(), batch),
            )

    def batch_collected(self, batch: str) -> None:
        """The batch's cells are written: it is no longer waited for."""
        with self._write() as db:
            db.execute("UPDATE batches SET collected = 1, updated = ? WHERE id = ?", (self.clock(), batch))

    def batch_keys(self, batch: str) -> list[str]:
        """The keys of the cells sent in ``batch``."""
        return [k for (k,) in self._db.execute("SELECT key FROM batch_cells WHERE batch = ? ORDER BY rowid", (batch,))]

    def batches(self, open_only: bool = False) -> list[dict[str, Any]]:
        """Every batch recorded (``open_only``: those not yet collected), oldest first, as dicts of the table's
        columns."""
        where = " WHERE collected = 0" if open_only else ""
        cursor = self._db.execute(f"SELECT * FROM batches{where} ORDER BY submitted, id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while True:
        chunk = [item for _, item in zip(range(size), items, strict=False)]
        if not chunk:
            return
        yield chunk


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, non-ASCII kept (what keys are hashed from)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
