"""The conversation log and the response cache: both live in one store file (`irouter._store`, one schema).

- **The log** keeps every conversation of a chat made with ``log=True`` (the CLI's by default): its models, its
  messages (each attachment's data stored once, by hash), and every request's ledger entry. `Log` reads it back:
  recent conversations, full-text search, one conversation, spend per model per day.
- **The response cache** (``cache_responses=True``) answers a request identical to one already answered from the
  store, at no cost. Its rows are the store's content-addressed ``cells`` (``kind = 'response'``), keyed by the
  sha256 of the canonical request: the model, the base URL and the body, minus the fields that do not change the
  answer (`irouter._options.ANSWER_NEUTRAL`).

Neither ever breaks a turn: a file that is locked (for longer than `BUSY_SECONDS`), full or corrupt gives one
`StoreWarning` (per file and process) and the chat goes on without it. Several processes may write at once (WAL,
short transactions). No API key is ever written: only messages, request bodies and ledger entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from . import _options as opts
from ._ledger import LedgerEntry
from ._store import DONE, Store, StoreError, canonical
from ._wire import Reply
from .errors import StoreWarning

T = TypeVar("T")
BUSY_SECONDS = 3.0
"""How long a log or cache write waits for another process's write lock before giving up (with a warning)."""
ATTACHMENT_MIN = 256
"""Data URLs (and base64 data) longer than this many characters are stored once in ``attachments``, by hash."""
RESPONSE = "response"
"""The ``cells.kind`` of the response cache's rows."""


def default_path() -> Path:
    """Where the log lives: ``$IROUTER_LOG_PATH``, else ``logs.db`` in the platform's user data folder
    (``$XDG_DATA_HOME/irouter`` or ``~/.local/share/irouter`` on Linux, ``~/Library/Application Support/irouter``
    on macOS, ``%LOCALAPPDATA%\\irouter`` on Windows)."""
    if os.environ.get("IROUTER_LOG_PATH"):
        return Path(os.environ["IROUTER_LOG_PATH"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "irouter" / "logs.db"


def log_path(given: str | os.PathLike[str] | bool | None) -> Path:
    """The file a ``log=`` argument names: a path as given, else `default_path`."""
    if given is None or isinstance(given, bool):
        return default_path()
    return Path(given).expanduser()


# --------------------------------------------------------------------------------------------- one store per file
_stores: dict[Path, Store] = {}
_lock = threading.RLock()
"""Guards `_stores` and every use of them: the threads of a fan-out share one connection per file."""
_warned: set[Path] = set()


def _store(path: Path) -> Store:
    store = _stores.get(path)
    if store is None:
        store = _stores[path] = Store(path, busy_timeout=BUSY_SECONDS)
    return store


def using(path: Path, use: Callable[[Store], T], what: str) -> T | None:
    """``use(store)`` on the file at ``path``, or ``None`` after one `StoreWarning` when the file cannot be used
    (locked, full, corrupt, unwritable): the chat goes on without the log or the cache."""
    try:
        with _lock:
            return use(_store(path))
    except (sqlite3.Error, StoreError, OSError) as exc:
        with _lock:
            broken = _stores.pop(path, None)
            if broken is not None:
                _close(broken)
            first = path not in _warned
            _warned.add(path)
        if first:
            warnings.warn(
                f"irouter could not use {path} for {what} ({type(exc).__name__}: {exc}); the chat goes on without "
                "it (this is said once)",
                StoreWarning,
                stacklevel=2,
            )
        return None


def _close(store: Store) -> None:
    with contextlib.suppress(sqlite3.Error):
        store.close()


def close_all() -> None:
    """Close every file this process has open for the log and the cache (they reopen on next use)."""
    with _lock:
        for store in _stores.values():
            _close(store)
        _stores.clear()


def open_for_reading(path: Path) -> Store:
    """The store at ``path`` for `Log`: raises ``FileNotFoundError`` when there is none, `StoreError` when it is
    not an irouter store."""
    if not path.exists():
        raise FileNotFoundError(f"No irouter log at {path} (nothing was logged there yet)")
    with _lock:
        return _store(path)


# --------------------------------------------------------------------------------------------- the response cache
@dataclass
class ResponseCache:
    """Answers of earlier identical requests, in the store at ``path``.

    Only requests whose answer is meant to be the same are served from it: ``temperature=0``, unless ``always``
    (``cache_responses="always"``). An unset temperature is the provider's default, usually above zero, so it
    counts as above zero. ``ttl``: seconds an answer stays usable (``None``: forever). ``clock``: Unix time."""

    path: Path
    base_url: str
    always: bool = False
    ttl: float | None = None
    clock: Callable[[], float] = time.time

    def key(self, model: str, body: Mapping[str, Any]) -> tuple[str, str] | None:
        """``(key, request)`` for a request that may be cached, else ``None``."""
        temperature = body.get("temperature")
        if not self.always and not (_number(temperature) and temperature == 0):
            return None
        kept = {k: v for k, v in body.items() if k not in opts.ANSWER_NEUTRAL}
        request = canonical({"base_url": self.base_url, "model": model, "body": kept})
        return hashlib.sha256(f"{RESPONSE}\x00{request}".encode()).hexdigest(), request

    def get(self, model: str, body: Mapping[str, Any]) -> Reply | None:
        """The stored answer to this request (counted as a hit), or ``None``."""
        found = self.key(model, body)
        if found is None:
            return None
        key = found[0]
        oldest = self.clock() - self.ttl if self.ttl is not None else None

        def read(store: Store) -> str | None:
            rows = store.read(
                "SELECT result, updated FROM cells WHERE key = ? AND kind = ? AND state = ?", (key, RESPONSE, DONE)
            )
            if not rows or (oldest is not None and (rows[0][1] or 0) < oldest):
                return None
            # locked: the answer counts, its hit does not
            with contextlib.suppress(sqlite3.OperationalError), store.write() as db:
                db.execute("UPDATE cells SET hits = hits + 1 WHERE key = ?", (key,))
            return str(rows[0][0])

        text = using(self.path, read, "the response cache")
        try:
            return None if text is None else Reply(**json.loads(text))
        except (ValueError, TypeError):  # not an answer this irouter can read: sent again, and replaced
            return None

    def put(self, model: str, body: Mapping[str, Any], reply: Reply) -> None:
        """Keep ``reply`` as the answer to this request (if it may be cached)."""
        found = self.key(model, body)
        if found is None or reply.finish_reason == "error":
            return
        key, request = found
        usage = reply.usage or {}
        cost = usage.get("cost") if _number(usage.get("cost")) else None
        row = (key, model, request, DONE, json.dumps(asdict(reply), ensure_ascii=False), cost)
        tokens = (_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), self.clock(), RESPONSE)

        def write(store: Store) -> None:
            with store.write() as db:
                db.execute(
                    "INSERT OR REPLACE INTO cells (key, model, request, state, result, cost, prompt_tokens, "
                    "completion_tokens, updated, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row + tokens,
                )

        using(self.path, write, "the response cache")

    def forget(self, model: str, body: Mapping[str, Any]) -> None:
        """Take the answer to this request out (it failed its turn: it would fail the same way every time)."""
        found = self.key(model, body)
        if found is None:
            return

        def delete(store: Store) -> None:
            with store.write() as db:
                db.execute("DELETE FROM cells WHERE key = ? AND kind = ?", (found[0], RESPONSE))

        using(self.path, delete, "the response cache")


def cached_entry(entry: LedgerEntry) -> LedgerEntry:
    """The ledger entry of an answer served from the cache: nothing used, nothing spent, marked ``cached``."""
    return replace(
        entry,
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        cached_tokens=0,
        reasoning_tokens=0,
        cost=0.0,
        estimated_cost=0.0,
        cached=True,
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any) -> int:
    return int(value) if _number(value) else 0


# --------------------------------------------------------------------------------------------- writing the log
def new_id() -> str:
    """A conversation id: sortable by time, unique (``20261127T163512-1a2b3c4d``)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


@dataclass
class Turn:
    """What one call adds to a logged conversation."""

    conversation: str
    settings: dict[str, Any]
    """The chat's `to_dict` without history and accounts: models, system prompt, base URL, options, budgets."""
    messages: dict[str, tuple[int, list[dict[str, Any]]]]
    """Per model: the position of the first new message, and the new messages (any logged at or after that
    position are replaced)."""
    entries: list[LedgerEntry]


def write_turn(path: Path, turn: Turn) -> bool:
    """Add ``turn`` to the log at ``path`` in one transaction; ``False`` (after one warning) when it cannot."""

    def write(store: Store) -> bool:
        now = time.time()
        fts = store.has_fts
        with store.write() as db:
            _conversation(db, turn, now)
            for model, (start, messages) in turn.messages.items():
                _forget_from(db, turn.conversation, model, start, fts)  # a history rewritten from there
                for seq, message in enumerate(messages, start):
                    stored, text = _stored_message(db, message)
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO messages (conversation, model, seq, role, message, text, time) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (turn.conversation, model, seq, message.get("role"), stored, text, now),
                    )
                    if fts and cursor.rowcount and text:
                        db.execute("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", (cursor.lastrowid, text))
            db.executemany(
                "INSERT INTO requests (conversation, model, time, cached, cost, prompt_tokens, completion_tokens, "
                "entry) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        turn.conversation,
                        e.model,
                        e.time,
                        int(e.cached),
                        e.cost if e.cost is not None else e.estimated_cost,
                        e.prompt_tokens,
                        e.completion_tokens,
                        json.dumps(e.to_dict()),
                    )
                    for e in turn.entries
                ],
            )
        return True

    return bool(using(path, write, "the conversation log"))


def _forget_from(db: sqlite3.Connection, conversation: str, model: str, start: int, fts: bool) -> None:
    """Remove ``model``'s logged messages from position ``start`` on (none, unless its history was rewritten
    there: `Chat.adopt`, turns dropped by ``on_overflow``), so the log holds the history the chat goes on from."""
    where = "conversation = ? AND model = ? AND seq >= ?"
    if fts:
        db.execute(
            f"DELETE FROM messages_fts WHERE rowid IN (SELECT id FROM messages WHERE {where})",
            (conversation, model, start),
        )
    db.execute(f"DELETE FROM messages WHERE {where}", (conversation, model, start))


def _conversation(db: sqlite3.Connection, turn: Turn, now: float) -> None:
    models = turn.settings.get("models") or list(turn.messages)
    users = (message for _, messages in turn.messages.values() for message in messages if message.get("role") == "user")
    title = next((text for text in map(_text, users) if text), "")  # the first words the user sent
    db.execute(
        "INSERT INTO conversations (id, created, updated, title, models, settings) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated, models = excluded.models, "
        "settings = excluded.settings, title = COALESCE(NULLIF(title, ''), excluded.title)",
        (turn.conversation, now, now, title[:200], json.dumps(models), json.dumps(turn.settings, default=str)),
    )
    db.executemany(
        "INSERT OR IGNORE INTO conversation_models (conversation, model, position) VALUES (?, ?, ?)",
        [(turn.conversation, m, i) for i, m in enumerate(models)],
    )


def _stored_message(db: sqlite3.Connection, message: dict[str, Any]) -> tuple[str, str]:
    """The message as stored (its attachments' data replaced by ``{"$attachment": hash}``) and its plain text."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str) and len(value) > ATTACHMENT_MIN and _is_data(value):
            digest = hashlib.sha256(value.encode()).hexdigest()
            db.execute("INSERT OR IGNORE INTO attachments (hash, data) VALUES (?, ?)", (digest, value))
            return {"$attachment": digest}
        return value

    return json.dumps(strip(message), ensure_ascii=False, default=str), _text(message)


def _is_data(value: str) -> bool:
    """A data URL, or a long run of base64 (audio and file parts carry bare base64)."""
    if value.startswith("data:"):
        return True
    head = value[:ATTACHMENT_MIN]
    return " " not in head and "\n" not in head and all(c.isalnum() or c in "+/=" for c in head)


def _text(message: Mapping[str, Any]) -> str:
    """The words of a message, for search: its text parts, and the names and arguments of its tool calls."""
    content = message.get("content")
    parts = [content] if isinstance(content, str) else []
    if isinstance(content, list):
        parts += [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {} if isinstance(call, dict) else {}
        parts.append(f"{function.get('name', '')} {function.get('arguments', '')}")
    return "\n".join(p for p in parts if isinstance(p, str) and p)


# --------------------------------------------------------------------------------------------- reading the log
class Log:
    """The conversation log at ``path`` (default: `default_path`, or ``IROUTER_LOG_PATH``), read back.

    >>> log = Log()                                                      # doctest: +SKIP
    >>> log.conversations()[0]["id"]                                     # doctest: +SKIP
    '20261127T163512-1a2b3c4d'

    Every method raises ``FileNotFoundError`` when nothing was logged there yet."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = log_path(path)

    def __repr__(self) -> str:
        return f"Log({str(self.path)!r})"

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        store = open_for_reading(self.path)
        with _lock:
            return store.read(sql, tuple(params))

    def conversations(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent conversations first: ``id``, ``title`` (the first user message), ``models``,
        ``created``/``updated`` (Unix time), ``messages``, ``requests`` and ``cost`` (dollars, cached answers 0)."""
        rows = self._read(
            "SELECT c.id, c.title, c.models, c.created, c.updated, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation = c.id), "
            "(SELECT COUNT(*) FROM requests r WHERE r.conversation = c.id), "
            "(SELECT SUM(cost) FROM requests r WHERE r.conversation = c.id) "
            "FROM conversations c ORDER BY c.updated DESC, c.id DESC LIMIT ?",
            (limit,),
        )
        return [_summary(row) for row in rows]

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Conversations whose messages match ``query`` (SQLite FTS5 syntax: words, ``"a phrase"``, ``OR``,
        ``prefix*``; every word must match), best match first, each with a ``snippet``. A SQLite without FTS5
        matches each word as a substring instead."""
        if not query.strip():
            raise ValueError("Give some words to search for")
        store = open_for_reading(self.path)
        if store.has_fts:
            sql = (
                "SELECT m.conversation, snippet(messages_fts, 0, '[', ']', '…', 12), bm25(messages_fts) "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? "
                "ORDER BY bm25(messages_fts)"
            )
            try:
                hits = self._read(sql, (query,))
            except sqlite3.OperationalError:  # FTS syntax the user did not mean: search the words as they are
                quoted = " ".join('"' + w.replace('"', '""') + '"' for w in query.split())
                hits = self._read(sql, (quoted,))
        else:
            words = query.split()
            where = " AND ".join("text LIKE ?" for _ in words)
            hits = [
                (c, t[:120], 0)
                for c, t in self._read(
                    f"SELECT conversation, text FROM messages WHERE {where}", [f"%{w}%" for w in words]
                )
            ]
        found: dict[str, str] = {}
        for conversation, snippet, _ in hits:
            found.setdefault(conversation, snippet)
        ids = list(found)[:limit]
        rows = {r[0]: r for r in self._rows(ids)}
        return [{**_summary(rows[i]), "snippet": found[i]} for i in ids if i in rows]

    def _rows(self, ids: list[str]) -> list[Any]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self._read(
            "SELECT c.id, c.title, c.models, c.created, c.updated, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation = c.id), "
            "(SELECT COUNT(*) FROM requests r WHERE r.conversation = c.id), "
            "(SELECT SUM(cost) FROM requests r WHERE r.conversation = c.id) "
            f"FROM conversations c WHERE c.id IN ({marks})",
            ids,
        )

    def resolve(self, conversation: str | None = None) -> str:
        """The full id of ``conversation`` (an id or a unique start of one); ``None``: the most recent one. Raises
        ``KeyError`` naming what to do when there is no such conversation."""
        if conversation is None:
            rows = self._read("SELECT id FROM conversations ORDER BY updated DESC, id DESC LIMIT 1")
            if not rows:
                raise KeyError(f"No conversation is logged in {self.path} yet")
            return str(rows[0][0])
        rows = self._read(
            "SELECT id FROM conversations WHERE id = ? OR id LIKE ? LIMIT 2", (conversation, f"{conversation}%")
        )
        exact = [r[0] for r in rows if r[0] == conversation]
        if exact or len(rows) == 1:
            return str((exact or [rows[0][0]])[0])
        if not rows:
            raise KeyError(f"No conversation {conversation!r} in {self.path}: `irouter logs` lists them")
        raise KeyError(f"{conversation!r} starts several conversation ids: give more of it")

    def get(self, conversation: str | None = None) -> dict[str, Any]:
        """One conversation (``None``: the most recent) as `Chat.to_dict` data (models, system prompt, base URL,
        options, history per model, ledger) plus ``id``, ``title``, ``created`` and ``updated``: what
        `Chat.resume` goes on from."""
        cid = self.resolve(conversation)
        head = self._read("SELECT title, created, updated, settings FROM conversations WHERE id = ?", (cid,))[0]
        models = [
            m
            for (m,) in self._read(
                "SELECT model FROM conversation_models WHERE conversation = ? ORDER BY position", (cid,)
            )
        ]
        history: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
        blobs: dict[str, str] = {}
        for model, text in self._read(
            "SELECT model, message FROM messages WHERE conversation = ? ORDER BY model, seq", (cid,)
        ):
            history.setdefault(model, []).append(self._restore(json.loads(text), blobs))
        ledger = [
            json.loads(e)
            for (e,) in self._read("SELECT entry FROM requests WHERE conversation = ? ORDER BY id", (cid,))
        ]
        settings = json.loads(head[3])
        return {
            **settings,
            "id": cid,
            "title": head[0],
            "created": head[1],
            "updated": head[2],
            "history": {m: history.get(m, []) for m in settings.get("models", models)},
            "ledger": ledger,
        }

    def _restore(self, value: Any, blobs: dict[str, str]) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$attachment"}:
                digest = value["$attachment"]
                if digest not in blobs:
                    rows = self._read("SELECT data FROM attachments WHERE hash = ?", (digest,))
                    blobs[digest] = rows[0][0] if rows else ""
                return blobs[digest]
            return {k: self._restore(v, blobs) for k, v in value.items()}
        if isinstance(value, list):
            return [self._restore(v, blobs) for v in value]
        return value

    def stats(self, days: int | None = None) -> list[dict[str, Any]]:
        """Spend and tokens per model per day (UTC), newest day first: ``day``, ``model``, ``requests``,
        ``cached`` (answered from the response cache), ``prompt_tokens``, ``completion_tokens``, ``cost``
        (dollars: reported, else estimated). ``days``: only the last so many days."""
        since = time.time() - days * 86400 if days else 0
        rows = self._read(
            "SELECT date(time, 'unixepoch') AS day, model, COUNT(*), SUM(cached), SUM(prompt_tokens), "
            "SUM(completion_tokens), SUM(cost) FROM requests WHERE time >= ? GROUP BY day, model "
            "ORDER BY day DESC, model",
            (since,),
        )
        keys = ("day", "model", "requests", "cached", "prompt_tokens", "completion_tokens", "cost")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def cache_stats(self) -> dict[str, Any]:
        """The response cache: ``entries``, ``hits`` (answers served from it), ``bytes`` (of stored answers),
        ``saved`` (dollars those hits would have cost again), ``oldest``/``newest`` (Unix time). No file yet is an
        empty cache."""
        if not self.path.exists():
            return {"entries": 0, "hits": 0, "bytes": 0, "saved": 0.0, "oldest": None, "newest": None}
        row = self._read(
            "SELECT COUNT(*), SUM(hits), SUM(LENGTH(result)), SUM(hits * COALESCE(cost, 0)), MIN(updated), "
            "MAX(updated) FROM cells WHERE kind = ?",
            (RESPONSE,),
        )[0]
        return {
            "entries": row[0],
            "hits": row[1] or 0,
            "bytes": row[2] or 0,
            "saved": row[3] or 0.0,
            "oldest": row[4],
            "newest": row[5],
        }

    def clear_cache(self, older_than: float | None = None) -> int:
        """Forget the response cache's answers (only those stored more than ``older_than`` seconds ago, if
        given); returns how many. The log's conversations are kept. No file yet: nothing to forget (0)."""
        if older_than is not None and (
            isinstance(older_than, bool) or not isinstance(older_than, (int, float)) or not older_than >= 0
        ):
            raise ValueError(f"older_than must be a number of seconds, 0 or more, got {older_than!r}")
        if not self.path.exists():
            return 0
        store = open_for_reading(self.path)
        before = time.time() - older_than if older_than is not None else float("inf")
        with _lock, store.write() as db:
            return int(db.execute("DELETE FROM cells WHERE kind = ? AND updated < ?", (RESPONSE, before)).rowcount)


def _summary(row: Any) -> dict[str, Any]:
    keys = ("id", "title", "models", "created", "updated", "messages", "requests", "cost")
    summary = dict(zip(keys, row, strict=True))
    summary["models"] = json.loads(summary["models"])
    summary["cost"] = summary["cost"] or 0.0
    return summary
