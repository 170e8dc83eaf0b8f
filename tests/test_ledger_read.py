"""Reading the ledger: the last requests with filters, totals grouped five ways, the `dragoman logs`
and `dragoman usage` commands (a real process against a config) and `GET /v1/usage` over HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from dragoman.canonical import Usage
from dragoman.store.db import open_database
from dragoman.store.ledger import Ledger, query
from dragoman.trip.outcome import Outcome
from tests.ledger_helpers import outcome

NOW = time.time()
DAY = 86_400.0


def sample() -> list[Outcome]:
    """Three days of traffic over three providers, two keys, two clients; one unpriced, errors."""
    return [
        outcome(time=NOW - 2 * DAY, provider="anthropic", upstream_model="claude-sonnet-4-6", model="sonnet",
                usage=Usage(input_tokens=100, output_tokens=50, cache_read_tokens=1000, cache_write_tokens=10, reasoning_tokens=5),
                cost_usd=0.01, key_name="team-a", client="claude-code"),
        outcome(time=NOW - 2 * DAY + 60, provider="anthropic", upstream_model="claude-sonnet-4-6", model="sonnet",
                usage=Usage(input_tokens=200, output_tokens=20), cost_usd=0.02, key_name="team-b", client="codex"),
        outcome(time=NOW - DAY, provider="moonshot", upstream_model="kimi-k2.6", model="moonshot/kimi-k2.6",
                usage=Usage(input_tokens=300, output_tokens=30, cache_read_tokens=3000), cost_usd=0.03,
                key_name="team-a", client="claude-code"),
        outcome(time=NOW - DAY + 5, provider="moonshot", upstream_model="kimi-k2.6", model="moonshot/kimi-k2.6",
                status=429, end="error", error_type="rate_limit_error", usage=None, cost_usd=None,
                key_name="team-a", client="claude-code"),
        outcome(time=NOW - 30, provider="kimi", upstream_model="kimi-for-coding", model="kimi/kimi-for-coding",
                usage=Usage(input_tokens=400, output_tokens=40), cost_usd=None, key_name="team-b", client="codex"),
        outcome(time=NOW - 10, provider="kimi", upstream_model="kimi-for-coding", model="kimi/kimi-for-coding",
                status=200, end="broken", usage=Usage(input_tokens=1, output_tokens=2), cost_usd=None,
                key_name="team-b", client="codex"),
        outcome(time=NOW - 5, provider=None, upstream_model=None, model="nope/unknown", status=404,
                end="error", error_type="not_found_error", usage=None, cost_usd=None, key_name=None,
                client="openai-python", attempts=[]),
    ]  # fmt: skip


async def fill(url: str, journal: Path, records: list[Outcome]) -> None:
    sink = Ledger(url, journal_dir=journal)
    await sink.start()
    for o in records:
        sink.record(o)
    await sink.close()
    assert sink.stats()["written"] == len(records)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/usage.db"
    return str(request.getfixturevalue("pg_url"))


async def test_recent_requests_newest_first_with_filters(store_url: str, tmp_path: Path):
    records = sample()
    await fill(store_url, tmp_path / "journal", records)
    db = await open_database(store_url)
    try:
        latest = await query.recent(db, limit=3)
        assert [r["request_id"] for r in latest] == [o.request_id for o in records[::-1][:3]]
        by_model = await query.recent(db, model="kimi-k2.6")  # the upstream model's name
        assert {r["request_id"] for r in by_model} == {records[2].request_id, records[3].request_id}
        assert len(await query.recent(db, model="moonshot/kimi-k2.6")) == 2
        assert len(await query.recent(db, model="sonnet")) == 2  # as the client named it
        assert {r["provider"] for r in await query.recent(db, provider="kimi")} == {"kimi"}
        errors = await query.recent(db, status="error")
        assert {r["request_id"] for r in errors} == {
            records[3].request_id,
            records[5].request_id,
            records[6].request_id,
        }
        assert [r["status"] for r in await query.recent(db, status="4xx")] == [404, 429]
        assert [r["status"] for r in await query.recent(db, status=429)] == [429]
        assert len(await query.recent(db, status="ok")) == 4
        assert len(await query.recent(db, since=NOW - 60)) == 3
        with pytest.raises(query.QueryError, match="expected ok, error"):
            await query.recent(db, status="teapot")
    finally:
        await db.close()


async def test_totals_grouped_each_way(store_url: str, tmp_path: Path):
    await fill(store_url, tmp_path / "journal", sample())
    db = await open_database(store_url)
    try:
        by_provider = await query.summary(db, by="provider")
        assert by_provider["totals"] == {
            "requests": 7,
            "errors": 3,
            "input_tokens": 1001,
            "output_tokens": 142,
            "cache_read_tokens": 4000,
            "cache_write_tokens": 10,
            "reasoning_tokens": 5,
            "cost_usd": 0.06,
            "unpriced": 2,
        }
        groups = {g["key"]: g for g in by_provider["groups"]}
        assert set(groups) == {"anthropic", "moonshot", "kimi", None}
        assert groups["kimi"]["cost_usd"] is None and groups["kimi"]["unpriced"] == 2  # unknown, not $0
        assert groups["moonshot"]["errors"] == 1 and groups["moonshot"]["cost_usd"] == 0.03
        assert groups["anthropic"]["requests"] == 2 and groups["anthropic"]["cache_read_tokens"] == 1000

        by_model = {g["key"]: g["requests"] for g in (await query.summary(db, by="model"))["groups"]}
        assert by_model == {
            "anthropic/claude-sonnet-4-6": 2,
            "moonshot/kimi-k2.6": 2,
            "kimi/kimi-for-coding": 2,
            "nope/unknown": 1,
        }
        by_key = {g["key"]: g["requests"] for g in (await query.summary(db, by="key"))["groups"]}
        assert by_key == {"team-a": 3, "team-b": 3, None: 1}
        by_client = {g["key"]: g["requests"] for g in (await query.summary(db, by="client"))["groups"]}
        assert by_client == {"claude-code": 3, "codex": 3, "openai-python": 1}
        days = (await query.summary(db, by="day"))["groups"]
        assert [g["key"] for g in days] == sorted(g["key"] for g in days)
        assert sum(g["requests"] for g in days) == 7 and len(days) in (3, 4)  # 3 UTC days, 4 near midnight
        recent_only = await query.summary(db, by="provider", since=NOW - 60)
        assert recent_only["totals"]["requests"] == 3 and recent_only["since"] == NOW - 60
        with pytest.raises(query.QueryError, match="expected one of provider, model, key, day, client"):
            await query.summary(db, by="colour")
    finally:
        await db.close()


def test_since_accepts_spans_dates_and_epochs():
    assert abs(query.parse_since("2h") - (time.time() - 7200)) < 5
    assert query.parse_since("2026-12-01") == 1796083200.0
    assert query.parse_since("2026-12-01T01:00:00+01:00") == 1796083200.0
    assert query.parse_since("1796083200") == 1796083200.0
    with pytest.raises(query.QueryError, match="expected a span"):
        query.parse_since("last tuesday")


# --- the commands, run as a user runs them -------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dragoman", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def config_file(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "dragoman.toml"
    path.write_text(f'[server]\nusage_store = "{store}"\n')
    return path


async def test_logs_prints_the_records_as_json_with_the_outcomes_field_names(store_url: str, tmp_path: Path):
    records = sample()
    await fill(store_url, tmp_path / "journal", records)
    cfg = config_file(tmp_path, store_url)
    code, out, err = await run_cli("logs", "--config", str(cfg), "--json", "--limit", "2000")
    assert code == 0, err
    got = json.loads(out)
    assert [r["request_id"] for r in got] == [o.request_id for o in records[::-1]]
    fields = {f.name for f in msgspec.structs.fields(Outcome)}
    assert all(set(r) == fields for r in got)
    first = next(r for r in got if r["request_id"] == records[0].request_id)
    assert first["usage"] == {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 10,
        "reasoning_tokens": 5,
    }
    assert first["key_name"] == "team-a" and first["client"] == "claude-code" and first["cost_usd"] == 0.01

    code, out, err = await run_cli(
        "logs", "--config", str(cfg), "--json", "--provider", "moonshot", "--status", "429", "--since", "3d"
    )
    assert code == 0, err
    assert [r["request_id"] for r in json.loads(out)] == [records[3].request_id]

    code, out, err = await run_cli("logs", "--config", str(cfg), "--limit", "3")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["time", "(UTC)", "status"] and len(lines) == 4
    assert records[-1].request_id in lines[1] and "404" in lines[1]
    assert "broken" in lines[2] and "kimi/kimi-for-coding" in lines[2]


async def test_usage_prints_totals_by_group(store_url: str, tmp_path: Path):
    await fill(store_url, tmp_path / "journal", sample())
    cfg = config_file(tmp_path, store_url)
    code, out, err = await run_cli("usage", "--config", str(cfg), "--by", "key", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["by"] == "key" and summary["totals"]["requests"] == 7 and summary["totals"]["cost_usd"] == 0.06
    assert {g["key"]: g["requests"] for g in summary["groups"]} == {"team-a": 3, "team-b": 3, None: 1}

    code, out, err = await run_cli("usage", "--config", str(cfg), "--by", "provider")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.strip().splitlines()}
    assert rows["provider"].split() == [
        "provider", "requests", "errors", "input", "cache", "read", "cache", "write", "output", "reasoning", "cost",
    ]  # fmt: skip
    assert "(+2 unpriced)" in rows["kimi"] and "(+2 unpriced)" in rows["total"]
    assert rows["moonshot"].split()[1:4] == ["2", "1", "300"]
    assert "$0.06" in rows["total"]


async def test_the_commands_explain_a_ledger_that_is_off_or_a_bad_filter(tmp_path: Path):
    code, _, err = await run_cli("logs", "--config", str(config_file(tmp_path, "off")))
    assert code == 1 and "usage ledger is off" in err
    cfg = config_file(tmp_path, f"sqlite://{tmp_path}/usage.db")
    code, _, err = await run_cli("logs", "--config", str(cfg), "--status", "teapot")
    assert code == 2 and "expected ok, error" in err
    code, _, err = await run_cli("usage", "--config", str(cfg), "--since", "yesterday-ish")
    assert code == 2 and "expected a span" in err
    code, out, err = await run_cli("logs", "--config", str(cfg))
    assert code == 0 and out == "" and "no requests recorded" in err


async def test_the_commands_report_an_unreachable_store_without_its_password(tmp_path: Path):
    cfg = config_file(tmp_path, "postgresql://root:pw-hunter2@127.0.0.1:1/test")
    code, _, err = await run_cli("usage", "--config", str(cfg))
    assert code == 1 and "usage store" in err and "pw-hunter2" not in err and "Traceback" not in err


# --- GET /v1/usage ------------------------------------------------------------------------------


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers or {}) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_usage_endpoint_serves_the_summary_behind_the_client_key(gateway, data_dir: Path, tmp_path: Path):
    await fill("sqlite", tmp_path / "journal", sample())  # the default store: usage.db in the data dir
    running = await gateway({"server": {"api_keys": ["gk-dashboard-key"]}})

    status, body = await get(running.url + "/v1/usage")
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = await get(running.url + "/v1/usage", {"anthropic-version": "2023-06-01"})
    assert status == 401 and body["type"] == "error"

    auth = {"authorization": "Bearer gk-dashboard-key"}
    status, body = await get(running.url + "/v1/usage?by=model", auth)
    assert status == 200, body
    assert body["object"] == "usage" and body["by"] == "model" and body["totals"]["requests"] == 7
    assert {g["key"] for g in body["groups"]} >= {"anthropic/claude-sonnet-4-6", "kimi/kimi-for-coding"}
    db = await open_database("sqlite")
    try:
        assert body == json.loads(json.dumps(await query.summary(db, by="model")))  # same as `usage --json`
    finally:
        await db.close()

    status, body = await get(running.url + f"/v1/usage?since={NOW - 60}", {"x-api-key": "gk-dashboard-key"})
    assert status == 200 and body["totals"]["requests"] == 3 and body["by"] == "provider"

    status, body = await get(running.url + "/v1/usage?by=colour", auth)
    assert status == 400 and body["error"]["param"] == "by" and "expected one of" in body["error"]["message"]
    status, body = await get(running.url + "/v1/usage?since=whenever", auth)
    assert status == 400 and body["error"]["param"] == "since"


async def test_usage_endpoint_when_the_ledger_is_off_or_its_store_is_down(gateway):
    off = await gateway({"server": {"usage_store": "off"}})
    status, body = await get(off.url + "/v1/usage")
    assert status == 404 and "usage ledger is off" in body["error"]["message"]

    down = await gateway({"server": {"usage_store": "postgresql://root:pw-secret@127.0.0.1:1/test"}})
    status, body = await get(down.url + "/v1/usage")
    assert status == 503 and "unavailable" in body["error"]["message"]
    assert "pw-secret" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)
