"""The ledger sink: outcomes recorded without waiting, written in batches, kept on local disk while
the store is down or slow and replayed when it is back (each row exactly once), dropped and counted
only when the journal is full; flushed on close; old rows pruned."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from dragoman.canonical import Usage
from dragoman.config import parse
from dragoman.gateway import Gateway
from dragoman.store import ledger
from dragoman.store.db import open_database
from dragoman.store.ledger import Ledger
from dragoman.store.ledger.query import recent
from dragoman.store.ledger.retention import prune
from dragoman.store.ledger.rows import to_row
from dragoman.store.ledger.schema import COLUMNS, KEY, MIGRATIONS, TABLE
from dragoman.trip.outcome import Attempt, Outcome
from tests.conftest import PG_HOST
from tests.ledger_helpers import TcpProxy, eventually, outcome, request_ids


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/usage.db"
    return str(request.getfixturevalue("pg_url"))


def journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*")) if directory.exists() else []


async def test_close_writes_every_queued_record_with_its_fields(store_url: str, tmp_path: Path):
    sink = Ledger(store_url, journal_dir=tmp_path / "journal")
    await sink.start()
    records = [outcome() for _ in range(250)]
    special = outcome(
        status=502,
        end="broken",
        error_type="api_error",
        error="upstream closed the stream",
        passthrough=False,
        stream=False,
        ttfb_ms=None,
        cost_usd=None,
        usage=Usage(input_tokens=7, output_tokens=0),
        attempts=[
            Attempt(
                provider="anthropic",
                model="claude-sonnet-4-6",
                status=529,
                latency_ms=40.0,
                error_type="overloaded_error",
            ),
            Attempt(provider="minimax", model="MiniMax-M2.7", key=1, status=200, latency_ms=300.0),
        ],
    )
    for o in [*records, special]:
        sink.record(o)
    await sink.close()
    assert sink.stats()["written"] == 251 and sink.stats()["queued"] == 0
    assert journal_files(tmp_path / "journal") == []

    ids = await request_ids(store_url)
    assert sorted(ids) == sorted(o.request_id for o in [*records, special])
    db = await open_database(store_url)
    try:
        got = (await recent(db, limit=1, status="5xx"))[0]
    finally:
        await db.close()
    assert got["request_id"] == special.request_id
    assert got["end"] == "broken" and got["passthrough"] is False and got["stream"] is False
    assert got["error"] == "upstream closed the stream" and got["cost_usd"] is None and got["ttfb_ms"] is None
    assert got["usage"] == {
        "input_tokens": 7,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": None,
    }
    assert [a["provider"] for a in got["attempts"]] == ["anthropic", "minimax"]
    assert got["attempts"][0]["error_type"] == "overloaded_error" and got["attempts"][1]["key"] == 1
    assert set(got) == {f.name for f in msgspec.structs.fields(Outcome)}


async def test_the_same_request_recorded_twice_is_one_row(store_url: str, tmp_path: Path):
    sink = Ledger(store_url, journal_dir=tmp_path / "journal")
    await sink.start()
    once = outcome()
    sink.record(once)
    await eventually(lambda: sink.stats()["written"] == 1, what="the first write")
    sink.record(once)
    await sink.close()
    assert await request_ids(store_url) == [once.request_id]
    assert sink.stats()["duplicates"] == 1


async def test_bodies_are_kept_only_when_asked_and_always_redacted(tmp_path: Path):
    secret = "sk-up-provider-secret-123"
    body = '{"messages": [{"role": "user", "content": "my key is ' + secret + '"}]}'
    plain = outcome(request_body=body, response_body="ok", error=f"401 for key {secret}")
    url = f"sqlite://{tmp_path}/usage.db"
    sink = Ledger(url, journal_dir=tmp_path / "j1", secrets=(secret,))
    await sink.start()
    sink.record(plain)
    await sink.close()

    opted = outcome(request_body=body, response_body=f"echo {secret}")
    sink = Ledger(url, journal_dir=tmp_path / "j2", secrets=(secret,), log_bodies=True)
    await sink.start()
    sink.record(opted)
    await sink.close()

    db = await open_database(url)
    try:
        rows = {r["request_id"]: r for r in await recent(db, limit=10)}
        raw = await db.fetch(f"SELECT * FROM {TABLE}")
    finally:
        await db.close()
    assert rows[plain.request_id]["request_body"] is None and rows[plain.request_id]["response_body"] is None
    assert rows[plain.request_id]["error"] == "401 for key [redacted]"
    assert rows[opted.request_id]["request_body"] == body.replace(secret, "[redacted]")
    assert rows[opted.request_id]["response_body"] == "echo [redacted]"
    assert secret not in repr(raw)


async def test_a_store_that_goes_down_and_comes_back_loses_nothing(pg_url: str, tmp_path: Path):
    host, _, port = PG_HOST.partition(":")
    proxy = TcpProxy(host, int(port))
    await proxy.up()
    db_name = pg_url.rsplit("/", 1)[1]
    url = f"postgresql://127.0.0.1:{proxy.port}/{db_name}"
    sink = Ledger(url, journal_dir=tmp_path / "journal", retry_min=0.1, retry_max=0.3, linger=0.01)
    await sink.start()

    before = [outcome() for _ in range(40)]
    for o in before:
        sink.record(o)
    await eventually(lambda: sink.stats()["written"] == 40, what="the first rows")

    await proxy.down()
    during = [outcome() for _ in range(300)]
    for o in during:
        sink.record(o)  # requests keep being served: record never waits for the store
    await eventually(lambda: sink.stats()["journaled"] == 300, what="the outage's rows in the journal")
    assert sink.stats()["store_up"] is False
    assert journal_files(tmp_path / "journal")

    await proxy.up()  # the same port again
    after = [outcome() for _ in range(60)]
    for o in after:
        sink.record(o)
    await eventually(lambda: sink.stats()["written"] == 400, what="journal replay and new rows")
    await sink.close()
    await proxy.down()

    ids = await request_ids(pg_url)
    assert len(ids) == len(set(ids)) == 400
    assert set(ids) == {o.request_id for o in [*before, *during, *after]}
    stats = sink.stats()
    assert stats["journaled"] >= 300 and stats["replayed"] == stats["journaled"]
    assert stats["dropped"] == 0 and stats["store_failures"] >= 1
    assert journal_files(tmp_path / "journal") == []


async def test_rows_journaled_with_the_store_unreachable_land_once_after_a_restart(pg_url: str, tmp_path: Path):
    journal = tmp_path / "journal"
    wrong = pg_url.replace(PG_HOST, "127.0.0.1:1")  # nothing listens there
    first = Ledger(wrong, journal_dir=journal)
    await first.start()
    lost_in_store = [outcome() for _ in range(500)]
    for o in lost_in_store:
        first.record(o)
    await first.close()
    assert first.stats()["journaled"] == 500 and first.stats()["written"] == 0
    assert journal_files(journal)

    # one of them had reached the store before (a retry after a timeout): still one row
    db = await open_database(pg_url)
    try:
        await MIGRATIONS.apply(db)
        await db.insert_ignore(TABLE, COLUMNS, [to_row(lost_in_store[7])], KEY)
    finally:
        await db.close()

    second = Ledger(pg_url, journal_dir=journal)
    await second.start()
    await eventually(lambda: second.stats()["replayed"] == 500, what="the replay")
    await second.close()
    ids = await request_ids(pg_url)
    assert len(ids) == len(set(ids)) == 500
    assert set(ids) == {o.request_id for o in lost_in_store}
    assert second.stats()["duplicates"] == 1
    assert journal_files(journal) == []


async def test_a_full_journal_drops_and_counts_every_row_it_cannot_keep(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.ERROR, "dragoman.ledger")
    journal = tmp_path / "journal"
    blocker = tmp_path / "a-file"
    blocker.write_text("the store's directory cannot be created under a file")
    line = len(msgspec.json.encode(outcome())) + 1
    sink = Ledger(f"sqlite://{blocker}/usage.db", journal_dir=journal, journal_max_bytes=line * 25 + line // 2)
    await sink.start()
    for _ in range(100):
        sink.record(outcome())
    await sink.close()
    stats = sink.stats()
    assert stats["journaled"] == 25 and stats["dropped"] == 75
    assert sum(p.stat().st_size for p in journal_files(journal)) <= line * 25 + line // 2
    assert any("dropped" in r.getMessage() and "75 dropped in all" in r.getMessage() for r in caplog.records)


async def test_a_slow_store_spills_the_queue_to_the_journal_then_catches_up(tmp_path: Path):
    path = tmp_path / "usage.db"
    url = f"sqlite://{path}"
    db = await open_database(url)
    await MIGRATIONS.apply(db)
    await db.close()

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock: every insert waits
    sink = Ledger(url, journal_dir=tmp_path / "journal", queue_max=50, batch_max=20, linger=0.0)
    await sink.start()
    records = [outcome() for _ in range(400)]
    for o in records:
        sink.record(o)
        await asyncio.sleep(0)
    await eventually(lambda: sink.stats()["journaled"] > 0, what="the overflow spilling to disk")
    assert sink.stats()["queued"] <= 2 * 50
    holder.execute("COMMIT")
    holder.close()

    await eventually(lambda: sink.stats()["queued"] == 0, timeout=60, what="the queue to drain")
    await sink.close()
    ids = await request_ids(url)
    assert len(ids) == len(set(ids)) == 400 and set(ids) == {o.request_id for o in records}
    assert sink.stats()["dropped"] == 0
    assert journal_files(tmp_path / "journal") == []


async def test_close_with_a_hung_store_keeps_every_row_in_the_journal(tmp_path: Path):
    path = tmp_path / "usage.db"
    url = f"sqlite://{path}"
    db = await open_database(url)
    await MIGRATIONS.apply(db)
    await db.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the insert in flight at close never finishes in time
    journal = tmp_path / "journal"
    sink = Ledger(url, journal_dir=journal, close_timeout=1.0, insert_timeout=60.0, linger=0.0)
    await sink.start()
    records = [outcome() for _ in range(120)]
    for o in records:
        sink.record(o)
    await asyncio.sleep(0.3)  # the writer is inside its insert, waiting for the lock
    await sink.close()
    assert sink.stats()["journaled"] == 120 and sink.stats()["written"] == 0
    holder.execute("COMMIT")
    holder.close()

    after = Ledger(url, journal_dir=journal)
    await after.start()
    await eventually(lambda: after.stats()["replayed"] == 120, what="the replay")
    await after.close()
    ids = await request_ids(url)
    assert len(ids) == len(set(ids)) == 120 and set(ids) == {o.request_id for o in records}


async def test_a_segment_left_by_a_dead_worker_is_replayed(tmp_path: Path):
    journal = tmp_path / "journal"
    journal.mkdir()
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    orphans = [outcome() for _ in range(30)]
    lines = b"".join(msgspec.json.encode(o) + b"\n" for o in orphans)
    (journal / f"seg-{dead_pid}-1-1.jsonl").write_bytes(lines + b'{"request_id": "torn')  # died mid-write

    url = f"sqlite://{tmp_path}/usage.db"
    sink = Ledger(url, journal_dir=journal)
    await sink.start()
    await eventually(lambda: sink.stats()["replayed"] == 30, what="the orphan's replay")
    await sink.close()
    assert sorted(await request_ids(url)) == sorted(o.request_id for o in orphans)
    assert sink.stats()["dropped"] == 1  # the torn line, counted
    assert journal_files(journal) == []


async def test_a_live_workers_segment_is_left_to_that_worker(tmp_path: Path):
    journal = tmp_path / "journal"
    journal.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = journal / f"seg-{proc.pid}-1-1.jsonl"
        theirs.write_bytes(msgspec.json.encode(outcome()) + b"\n")
        url = f"sqlite://{tmp_path}/usage.db"
        sink = Ledger(url, journal_dir=journal)
        await sink.start()
        sink.record(outcome())
        await eventually(lambda: sink.stats()["written"] == 1, what="our own row")
        await sink.close()
        assert theirs.exists() and sink.stats()["replayed"] == 0
    finally:
        proc.kill()
        proc.wait()


async def test_retention_prunes_old_rows_at_start_in_batches(store_url: str, tmp_path: Path):
    now = time.time()
    old = [outcome(time=now - 100 * 86_400 - i) for i in range(45)]
    fresh = [outcome(time=now - 89 * 86_400), outcome(time=now)]
    db = await open_database(store_url)
    try:
        await MIGRATIONS.apply(db)
        await db.insert_ignore(TABLE, COLUMNS, [to_row(o) for o in [*old, *fresh]], KEY)
        assert await prune(db, now - 120 * 86_400, batch=7) == 0
    finally:
        await db.close()

    sink = Ledger(store_url, journal_dir=tmp_path / "journal", retention_days=90)
    await sink.start()
    await eventually(lambda: sink.stats()["pruned"] == 45, what="retention at start")
    await sink.close()
    assert sorted(await request_ids(store_url)) == sorted(o.request_id for o in fresh)


async def test_pruning_walks_the_table_in_small_batches(store_url: str):
    now = time.time()
    db = await open_database(store_url)
    try:
        await MIGRATIONS.apply(db)
        await db.insert_ignore(TABLE, COLUMNS, [to_row(outcome(time=now - 1000 - i)) for i in range(50)], KEY)
        await db.insert_ignore(TABLE, COLUMNS, [to_row(outcome(time=now))], KEY)
        assert await prune(db, now - 500, batch=7) == 50
        assert await db.fetch(f"SELECT COUNT(*) AS n FROM {TABLE}") == [{"n": 1}]
    finally:
        await db.close()


async def test_retention_zero_keeps_everything(tmp_path: Path):
    url = f"sqlite://{tmp_path}/usage.db"
    ancient = outcome(time=1.0)
    sink = Ledger(url, journal_dir=tmp_path / "journal", retention_days=0)
    await sink.start()
    sink.record(ancient)
    await sink.close()
    assert await request_ids(url) == [ancient.request_id]


def test_the_config_chooses_the_ledger():
    assert ledger.make_sink(Gateway.from_config(parse({"server": {"usage_store": "off"}}))) is None
    gw = Gateway.from_config(
        parse(
            {"server": {"usage_store": "sqlite", "usage_retention_days": 7, "log_bodies": True, "api_keys": ["gk-1"]}}
        )
    )
    sink = ledger.find(gw)
    assert isinstance(sink, Ledger)
    assert sink.retention_days == 7 and sink.log_bodies is True and "gk-1" in sink.secrets
    assert ledger.find(Gateway.from_config(parse({"server": {"usage_store": "off"}}))) is None


async def test_the_default_store_is_a_file_in_the_data_dir(data_dir: Path):
    gw = Gateway.from_config(parse({}))
    await gw.start()
    gw.sinks.record(outcome())
    await gw.close()
    assert await request_ids(f"sqlite://{data_dir}/usage.db") != []


async def test_a_gateway_whose_store_is_down_still_serves(gateway, pg_url: str):
    running = await gateway({"server": {"usage_store": pg_url.replace(PG_HOST, "127.0.0.1:1")}})
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(running.url + "/health") as resp:
        assert resp.status == 200
    sink = ledger.find(running.gateway)
    assert sink is not None
    running.gateway.sinks.record(outcome())
    await eventually(lambda: sink.stats()["journaled"] == 1, what="the row in the journal")
