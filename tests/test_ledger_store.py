"""The store layer under the usage ledger, on a real SQLite file and a real PostgreSQL: numbered
migrations applied once and recorded per store, idempotent multi-row inserts, and failures
reported as StoreError without secrets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dragoman.store.db import Column, StoreError, Tx, open_database
from dragoman.store.ledger.rows import to_row
from dragoman.store.ledger.schema import COLUMNS, KEY, MIGRATIONS, TABLE
from dragoman.store.migrations import Migrations
from tests.ledger_helpers import outcome


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/ledger/usage.db"
    return str(request.getfixturevalue("pg_url"))


async def test_migrations_apply_once_and_are_recorded(store_url: str):
    db = await open_database(store_url)
    try:
        assert await MIGRATIONS.apply(db) == ["m001_usage_records"]
        assert await MIGRATIONS.apply(db) == []
        recorded = await db.fetch("SELECT store, name FROM dragoman_migrations")
        assert recorded == [{"store": "ledger", "name": "m001_usage_records"}]
        assert await db.fetch(f"SELECT COUNT(*) AS n FROM {TABLE}") == [{"n": 0}]
    finally:
        await db.close()


async def test_workers_starting_together_apply_each_migration_once(store_url: str):
    first, second = await open_database(store_url), await open_database(store_url)
    try:
        results = await asyncio.gather(MIGRATIONS.apply(first), MIGRATIONS.apply(second))
        assert sorted(results) == [[], ["m001_usage_records"]]
    finally:
        await first.close()
        await second.close()


async def test_another_store_adds_its_own_numbered_migrations_to_the_same_database(store_url: str):
    keys = Migrations("keys")

    @keys
    async def m001_gateway_keys(tx: Tx) -> None:
        await tx.execute("CREATE TABLE gateway_keys (name TEXT PRIMARY KEY, budget_usd REAL)")

    @keys
    async def m002_key_owner(tx: Tx) -> None:
        await tx.execute("ALTER TABLE gateway_keys ADD COLUMN owner TEXT")

    db = await open_database(store_url)
    try:
        assert await MIGRATIONS.apply(db) == ["m001_usage_records"]
        assert await keys.apply(db) == ["m001_gateway_keys", "m002_key_owner"]
        await db.execute("INSERT INTO gateway_keys (name, budget_usd, owner) VALUES (?, ?, ?)", ["ci", 5.0, "ops"])
        rows = await db.fetch("SELECT store, name FROM dragoman_migrations ORDER BY store, name")
        assert [(r["store"], r["name"]) for r in rows] == [
            ("keys", "m001_gateway_keys"),
            ("keys", "m002_key_owner"),
            ("ledger", "m001_usage_records"),
        ]
    finally:
        await db.close()


def test_migrations_are_named_and_ordered():
    group = Migrations("x")

    async def m002_b(tx: Tx) -> None: ...

    async def m001_a(tx: Tx) -> None: ...

    async def create_things(tx: Tx) -> None: ...

    group(m002_b)
    with pytest.raises(ValueError, match="must come after"):
        group(m001_a)
    with pytest.raises(ValueError, match="m<NNN>_"):
        group(create_things)


async def test_a_failed_migration_leaves_nothing_half_applied(store_url: str):
    broken = Migrations("broken")

    @broken
    async def m001_table(tx: Tx) -> None:
        await tx.execute("CREATE TABLE half (a TEXT)")
        await tx.execute("THIS IS NOT SQL")

    db = await open_database(store_url)
    try:
        await MIGRATIONS.apply(db)
        with pytest.raises(StoreError):
            await broken.apply(db)
        with pytest.raises(StoreError):
            await db.fetch("SELECT * FROM half")
        assert await db.fetch("SELECT name FROM dragoman_migrations WHERE store = ?", ["broken"]) == []
    finally:
        await db.close()


async def test_inserts_are_idempotent_on_the_request_id(store_url: str):
    db = await open_database(store_url)
    try:
        await MIGRATIONS.apply(db)
        first = [outcome() for _ in range(5)]
        assert await db.insert_ignore(TABLE, COLUMNS, [to_row(o) for o in first], KEY) == 5
        again = [*first[2:], outcome()]
        assert await db.insert_ignore(TABLE, COLUMNS, [to_row(o) for o in again], KEY) == 1
        ids = [r["request_id"] for r in await db.fetch(f"SELECT request_id FROM {TABLE}")]
        assert sorted(ids) == sorted(o.request_id for o in [*first, again[-1]])
    finally:
        await db.close()


async def test_a_batch_larger_than_one_statement_takes_lands_whole(store_url: str):
    # 3,000 rows x 34 columns is past SQLite's bound-parameter limit for one statement
    db = await open_database(store_url)
    try:
        await MIGRATIONS.apply(db)
        batch = [outcome() for _ in range(3000)]
        assert await db.insert_ignore(TABLE, COLUMNS, [to_row(o) for o in batch], KEY) == 3000
        assert await db.fetch(f"SELECT COUNT(*) AS n FROM {TABLE}") == [{"n": 3000}]
    finally:
        await db.close()


async def test_portable_column_types_round_trip(store_url: str):
    columns = (
        Column("k", "text", "PRIMARY KEY"),
        Column("r", "real"),
        Column("i", "int"),
        Column("b", "bool"),
        Column("j", "json"),
    )
    group = Migrations("types")

    @group
    async def m001_types(tx: Tx) -> None:
        from dragoman.store.db import column_ddl

        await tx.execute(f"CREATE TABLE types ({column_ddl(tx.kind, columns)})")

    db = await open_database(store_url)
    try:
        await group.apply(db)
        rows = [("a", 1.5, 2**40, True, '{"x": [1, 2]}'), ("b", None, None, None, None), ("c", 0.0, 0, False, "[]")]
        assert await db.insert_ignore("types", columns, rows, "k") == 3
        got = await db.fetch("SELECT * FROM types ORDER BY k")
        assert got[0]["r"] == 1.5 and got[0]["i"] == 2**40 and bool(got[0]["b"]) is True
        import json

        assert json.loads(got[0]["j"]) == {"x": [1, 2]}
        assert got[1] == {"k": "b", "r": None, "i": None, "b": None, "j": None}
        assert got[2]["i"] == 0 and got[2]["b"] in (False, 0) and got[2]["b"] is not None
        if db.kind == "sqlite":
            # the adapters registered for speed (store/db.py) bind what sqlite3 bound without them
            kinds = await db.fetch("SELECT k, typeof(r) AS r, typeof(b) AS b FROM types ORDER BY k")
            assert [(k["r"], k["b"]) for k in kinds] == [("real", "integer"), ("null", "null"), ("real", "integer")]
            assert [r["b"] for r in got] == [1, None, 0]
    finally:
        await db.close()


async def test_an_unreachable_postgres_is_a_store_error_without_the_password():
    with pytest.raises(StoreError) as caught:
        await open_database("postgresql://root:hunter2-secret@127.0.0.1:1/test")
    assert "hunter2-secret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


async def test_an_unwritable_sqlite_path_is_a_store_error(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError):
        await open_database(f"sqlite://{blocker}/usage.db")


async def test_the_default_sqlite_store_lives_in_the_data_dir(data_dir: Path):
    db = await open_database("sqlite")
    try:
        await MIGRATIONS.apply(db)
    finally:
        await db.close()
    assert (data_dir / "usage.db").is_file()


async def test_sqlite_batches_of_every_size_use_a_handful_of_statements(tmp_path: Path):
    """sqlite3 keeps each distinct statement text prepared (an LRU of 128) and a prepared INSERT
    of hundreds of rows takes megabytes: one text per batch size grew a soak's RSS by ~130 MiB
    (bench/faults.py). Batches of 1 to 300 rows go in whole, through at most five texts."""
    db = await open_database(f"sqlite://{tmp_path}/ledger/usage.db")
    sizes: set[int] = set()  # rows per INSERT statement the connection ran

    def traced(sql: str) -> None:
        if sql.startswith("INSERT"):
            sizes.add(sql.split(" VALUES ")[1].count("("))

    try:
        await MIGRATIONS.apply(db)
        conn = await db._writer.call(lambda c: c)  # type: ignore[attr-defined]
        conn.set_trace_callback(traced)
        total = 0
        for size in range(1, 301, 7):
            rows = [to_row(outcome()) for _ in range(size)]
            assert await db.insert_ignore(TABLE, COLUMNS, rows, KEY) == size
            total += size
        assert await db.fetch(f"SELECT COUNT(*) AS n FROM {TABLE}") == [{"n": total}]
        assert sizes and len(sizes) <= 5, sorted(sizes)
    finally:
        await db.close()
