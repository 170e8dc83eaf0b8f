"""The ledger's dashboard queries on SQLite and PostgreSQL: totals per time bucket with the busiest
groups kept and the rest folded, nearest-rank latency percentiles per provider, and the feed's
reads that leave the kept bodies in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragoman.canonical import Usage
from dragoman.store.db import open_database
from dragoman.store.ledger import Ledger, query
from dragoman.trip.outcome import Attempt, Outcome
from tests.ledger_helpers import outcome

T0 = 1_800_000_000.0  # a whole number of minutes: bucket edges are easy to name
STEP = 60


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/usage.db"
    return str(request.getfixturevalue("pg_url"))


async def fill(url: str, journal: Path, records: list[Outcome], log_bodies: bool = False) -> None:
    sink = Ledger(url, journal_dir=journal, log_bodies=log_bodies)
    await sink.start()
    for o in records:
        sink.record(o)
    await sink.close()
    assert sink.stats()["written"] == len(records)


def used(n_in: int, n_out: int, cached: int = 0) -> Usage:
    return Usage(input_tokens=n_in, output_tokens=n_out, cache_read_tokens=cached, cache_write_tokens=0)


async def test_series_buckets_groups_and_folds(store_url: str, tmp_path: Path):
    records = [
        # bucket 0: two anthropic (one error), one kimi
        outcome(time=T0 + 1, provider="anthropic", usage=used(10, 5, 100), cost_usd=0.5),
        # a failure names no provider: it counts against the one it was last tried on
        outcome(
            time=T0 + 59.9,
            provider=None,
            status=502,
            end="error",
            usage=None,
            cost_usd=None,
            attempts=[
                Attempt(provider="kimi", model="k", status=500),
                Attempt(provider="anthropic", model="m", status=502),
            ],
        ),
        outcome(time=T0 + 30, provider="kimi", usage=used(1, 1), cost_usd=None),
        # bucket 2: anthropic, then three small providers that fold into "other" with top=2
        outcome(time=T0 + 120, provider="anthropic", usage=used(20, 0), cost_usd=0.25),
        outcome(time=T0 + 121, provider="kimi", usage=used(2, 2), cost_usd=None),
        outcome(time=T0 + 122, provider="moonshot", usage=used(3, 3), cost_usd=0.01),
        outcome(
            time=T0 + 123,
            provider=None,
            model="nope/x",
            status=404,
            end="error",
            usage=None,
            cost_usd=None,
            attempts=[],
        ),
        # outside the window on both sides
        outcome(time=T0 - 1, provider="anthropic", usage=used(1000, 1000), cost_usd=9.0),
        outcome(time=T0 + 180, provider="anthropic", usage=used(1000, 1000), cost_usd=9.0),
    ]
    await fill(store_url, tmp_path / "journal", records)
    db = await open_database(store_url)
    try:
        got = await query.series(db, by="provider", since=T0, until=T0 + 180, step=STEP, top=2)
        assert got["step"] == STEP
        assert got["buckets"] == [T0, T0 + 60, T0 + 120, T0 + 180]  # contiguous, the one holding `until` too
        by_key = {(s["key"], s["other"]): s for s in got["series"]}
        assert list(by_key) == [("anthropic", False), ("kimi", False), (None, True)]
        anthropic, kimi, other = by_key.values()
        assert anthropic["requests"] == [2, 0, 1, 0]
        assert anthropic["errors"] == [1, 0, 0, 0]
        assert anthropic["tokens"] == [115, 0, 20, 0]
        assert anthropic["cost_usd"] == [0.5, 0.0, 0.25, 0.0]
        assert kimi["requests"] == [1, 0, 1, 0]
        assert kimi["cost_usd"] == [None, 0.0, None, 0.0]  # requests, none priced: unknown, not 0
        assert other["requests"] == [0, 0, 2, 0]  # moonshot and the unrouted request
        assert other["errors"] == [0, 0, 1, 0]
        assert other["cost_usd"] == [0.0, 0.0, 0.01, 0.0]

        everyone = await query.series(db, by="provider", since=T0, until=T0 + 180, step=STEP)
        keys = [s["key"] for s in everyone["series"]]
        assert keys == ["anthropic", "kimi", None, "moonshot"]  # busiest first; None: never routed
        assert not any(s["other"] for s in everyone["series"])

        models = await query.series(db, by="model", since=T0, until=T0 + 180, step=STEP)
        # billed as provider/upstream model; unanswered as the client named it
        assert {s["key"] for s in models["series"]} == {"anthropic/claude-sonnet-4-6", "kimi/claude-sonnet-4-6",
                                                        "moonshot/claude-sonnet-4-6", "claude-sonnet-4-6", "nope/x"}  # fmt: skip
        by_key_name = await query.series(db, by="key", since=T0, until=T0 + 180, step=STEP)
        assert [(s["key"], sum(s["requests"])) for s in by_key_name["series"]] == [("team-a", 7)]
    finally:
        await db.close()


async def test_series_rejects_what_it_cannot_answer(tmp_path: Path):
    db = await open_database(f"sqlite://{tmp_path}/usage.db")
    try:
        with pytest.raises(query.QueryError, match="by 'day'"):
            await query.series(db, by="day", since=T0, until=T0 + 60)
        with pytest.raises(query.QueryError, match="before until"):
            await query.series(db, since=T0, until=T0)
        with pytest.raises(query.QueryError, match="too many buckets"):
            await query.series(db, since=T0, until=T0 + 86_400 * 30, step=10)
    finally:
        await db.close()


def test_bucket_steps_are_round_and_bounded():
    assert query.bucket_step(15 * 60) == 10
    assert query.bucket_step(3600) == 30
    assert query.bucket_step(6 * 3600) == 300
    assert query.bucket_step(24 * 3600) == 900
    assert query.bucket_step(7 * 86_400) == 10_800
    assert query.bucket_step(30 * 86_400) == 21_600
    for span in (1, 59, 3601, 86_400 * 365, 86_400 * 3650):
        assert span / query.bucket_step(span) <= query.MAX_BUCKETS


async def test_percentiles_are_nearest_rank_over_answered_requests(store_url: str, tmp_path: Path):
    records = [
        outcome(time=T0 + i, provider="anthropic", latency_ms=float(i), ttfb_ms=float(i) / 10) for i in range(1, 21)
    ]
    records += [
        # failures: in the error rate, not in the latency (a provider that fails fast must not look fast)
        outcome(
            time=T0 + 30,
            provider=None,
            status=500,
            end="error",
            latency_ms=0.5,
            ttfb_ms=None,
            attempts=[Attempt(provider="anthropic", model="m", status=500)],
        ),
        outcome(time=T0 + 31, provider="anthropic", status=200, end="broken", latency_ms=99_999.0, ttfb_ms=1.0),
        outcome(time=T0 + 32, provider="kimi", latency_ms=700.0, ttfb_ms=None),
        outcome(time=T0 + 33, provider="kimi", status=429, end="error", latency_ms=3.0, ttfb_ms=None),
        outcome(time=T0 + 34, provider=None, model="nope/x", status=404, end="error", latency_ms=1.0, attempts=[]),
        outcome(time=T0 - 10, provider="anthropic", latency_ms=1e9),  # before the window
    ]
    await fill(store_url, tmp_path / "journal", records)
    db = await open_database(store_url)
    try:
        rows = await query.provider_health(db, since=T0, until=T0 + 60)
    finally:
        await db.close()
    assert [r["provider"] for r in rows] == ["anthropic", "kimi", None]
    anthropic, kimi, unrouted = rows
    assert (anthropic["requests"], anthropic["errors"]) == (22, 2)
    assert anthropic["error_rate"] == pytest.approx(2 / 22)
    assert anthropic["latency_ms"] == {"p50": 10.0, "p95": 19.0, "p99": 20.0}
    assert anthropic["ttfb_ms"] == {"p50": 1.0, "p95": 1.9, "p99": 2.0}
    assert (kimi["requests"], kimi["errors"], kimi["error_rate"]) == (2, 1, 0.5)
    assert kimi["latency_ms"] == {"p50": 700.0, "p95": 700.0, "p99": 700.0}
    assert kimi["ttfb_ms"] == {"p50": None, "p95": None, "p99": None}
    assert (unrouted["requests"], unrouted["errors"], unrouted["latency_ms"]["p50"]) == (1, 1, None)


async def test_recent_without_bodies_leaves_them_in_the_store(store_url: str, tmp_path: Path):
    kept = outcome(time=T0, request_body='{"messages":"a prompt"}', response_body='{"content":"an answer"}')
    await fill(store_url, tmp_path / "journal", [kept], log_bodies=True)
    db = await open_database(store_url)
    try:
        [full] = await query.recent(db)
        [light] = await query.recent(db, bodies=False)
    finally:
        await db.close()
    assert full["request_body"] == '{"messages":"a prompt"}'
    assert light["request_body"] is None and light["response_body"] is None
    assert {k: v for k, v in light.items() if not k.endswith("_body")} == {
        k: v for k, v in full.items() if not k.endswith("_body")
    }
