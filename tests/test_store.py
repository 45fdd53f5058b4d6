"""The SQLite store behind grids, on real files: registration, claims with leases, results, several connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irouter._store import SCHEMA_VERSION, GridRow, Store, StoreError


class Clock:
    """A clock the test moves by hand (leases expire when it says so)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def rows(n: int, model: str = "a/a") -> list[GridRow]:
    return [GridRow(str(i), model, f"key{i}", f'{{"m":{i}}}') for i in range(n)]


def test_new_file_has_the_schema_version_and_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "sub" / "run.sqlite")
    db = sqlite3.connect(tmp_path / "sub" / "run.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    with pytest.raises(StoreError, match="newer irouter"):
        Store(tmp_path / "s.sqlite")


def test_register_is_idempotent_and_keeps_input_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    grid = store.register(rows(1200))
    assert store.register(rows(1200)) == grid
    listed = list(store.rows(grid))
    assert [r.prompt_id for r in listed] == [str(i) for i in range(1200)]
    assert {r.state for r in listed} == {"pending"}
    assert store.register(rows(3)) != grid  # another grid


def test_duplicate_prompt_ids_are_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="unique 'id'"):
        store.register([*rows(2), GridRow("0", "a/a", "other", "{}")])
    assert store.states(["key0", "key1"]) == {}


def test_duplicate_cells_share_one_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    grid = store.register([GridRow("0", "a/a", "same", "{}"), GridRow("1", "a/a", "same", "{}")])
    assert [r.key for r in store.rows(grid)] == ["same", "same"]
    assert store.claim(["same", "same"]) == ["same"]


def test_claim_finish_and_retry_failed(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.register(rows(3))
    assert store.claim(["key0", "key1", "key2"]) == ["key0", "key1", "key2"]
    assert store.claim(["key0"]) == []  # held
    store.finish("key0", True, '{"text": "ok"}', 0.001, 10, 5)
    store.finish("key1", False, '{"error": {}}', None, 0, 0)
    assert store.claim(["key0", "key1"], retry_failed=False) == []
    assert store.claim(["key0", "key1"], retry_failed=True) == ["key1"]
    assert store.release() == 2  # key1 (had failed: back to failed) and key2 (back to pending)
    assert store.states(["key1", "key2"]) == {"key1": "failed", "key2": "pending"}
    observed = store.observed("a/a")
    assert observed is not None
    assert (observed.cells, observed.mean_completion) == (1, 5)


def test_another_connection_claims_only_after_the_lease_runs_out(tmp_path: Path) -> None:
    clock = Clock()
    first = Store(tmp_path / "s.sqlite", lease=30, clock=clock)
    second = Store(tmp_path / "s.sqlite", lease=30, clock=clock)
    first.register(rows(2))
    assert first.claim(["key0", "key1"]) == ["key0", "key1"]
    clock.now += 20
    assert first.renew() == 2
    clock.now += 20  # 40 s after the claim, 20 s after the renewal
    assert second.claim(["key0"]) == []
    clock.now += 11
    assert second.claim(["key0", "key1"]) == ["key0", "key1"]


def test_a_dead_local_owner_is_reaped_at_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    store = Store(tmp_path / "s.sqlite")
    store.register(rows(1))
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)
    db = sqlite3.connect(tmp_path / "s.sqlite")
    host = store.owner.split(":")[0]
    db.execute(
        "UPDATE cells SET state='running', owner=?, lease_until=? WHERE key='key0'",
        (f"{host}:{dead_pid}:x", 1e12),
    )
    db.commit()
    assert store.claim(["key0"]) == []
    assert store.reap() == 1
    assert store.claim(["key0"]) == ["key0"]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["claim", "finish_ok", "finish_fail", "release", "renew", "tick"]),
        st.integers(0, 2),  # which connection
        st.lists(st.integers(0, 4), min_size=1, max_size=3),  # which keys
        st.booleans(),  # retry_failed
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_claims_from_several_connections_never_overlap(tmp_path_factory: pytest.TempPathFactory, ops: list) -> None:  # type: ignore[type-arg]
    """Against a plain model: a cell is held by one owner at a time, done cells are never claimed again, failed
    ones only with retry_failed, and an expired lease frees a cell."""
    path = tmp_path_factory.mktemp("h") / "s.sqlite"
    clock = Clock()
    stores = [Store(path, lease=30, clock=clock) for _ in range(3)]
    stores[0].register(rows(5))
    # the model: key -> (state, owner index, lease_until, has_result)
    model: dict[str, list] = {f"key{i}": ["pending", None, None, False] for i in range(5)}  # type: ignore[type-arg]
    for op, who, picks, retry_failed in ops:
        keys = [f"key{i}" for i in picks]
        store = stores[who]
        if op == "tick":
            clock.now += 20
        elif op == "claim":
            expected = []
            for key in keys:
                state, _owner, lease, _ = model[key]
                free = state == "pending" or (state == "failed" and retry_failed)
                if free or (state == "running" and lease < clock.now):
                    model[key][:3] = ["running", who, clock.now + 30]
                    expected.append(key)
            assert store.claim(keys, retry_failed) == expected
        elif op in ("finish_ok", "finish_fail"):
            for key in keys:
                if model[key][0] == "running" and model[key][1] == who:  # only an owner writes its results
                    store.finish(key, op == "finish_ok", "{}", 0.0, 1, 1)
                    model[key] = ["done" if op == "finish_ok" else "failed", model[key][1], None, True]
        elif op == "release":
            store.release()
            for entry in model.values():
                if entry[0] == "running" and entry[1] == who:
                    entry[:3] = ["failed" if entry[3] else "pending", None, None]
        elif op == "renew":
            store.renew()
            for entry in model.values():
                if entry[0] == "running" and entry[1] == who:
                    entry[2] = clock.now + 30
        assert stores[0].states(list(model)) == {k: v[0] for k, v in model.items()}
    for store in stores:
        store.close()


def test_racing_connections_claim_each_cell_exactly_once(tmp_path: Path) -> None:
    """Four threads, each with its own connection, claim the same 200 cells in different orders at once."""
    import random
    import threading

    path = tmp_path / "s.sqlite"
    Store(path).register(rows(200))
    keys = [f"key{i}" for i in range(200)]
    claimed: list[list[str]] = []

    def claim(seed: int) -> None:
        store = Store(path)
        order = keys[:]
        random.Random(seed).shuffle(order)
        mine = []
        for start in range(0, 200, 16):
            mine.extend(store.claim(order[start : start + 16]))
        claimed.append(mine)
        store.close()

    threads = [threading.Thread(target=claim, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [key for mine in claimed for key in mine]
    assert sorted(every) == sorted(keys)  # all claimed, none twice


def test_a_file_that_is_not_sqlite_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some words that are long enough to have a header" * 20)
    with pytest.raises(StoreError, match="cannot be used as an irouter store"):
        Store(path)
