"""The dashboard's HTTP side: the page and its assets, the JSON API over SQLite and PostgreSQL after
real traffic, who may read it (admin key, gateway keys, nobody), and how it answers when the ledger
is off, the store is down or a parameter is wrong."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from dragoman.dashboard.keys import FIELDS as KEY_FIELDS
from dragoman.store.db import open_database
from dragoman.store.keys.admin import create_key, revoke_key
from dragoman.store.ledger import find, query
from tests.conftest import Reply
from tests.dashboard_helpers import (
    ADMIN_KEY,
    GATEWAY_KEY,
    MARKUP_MODEL,
    OPENAI_COST,
    chat,
    config,
    make_traffic,
    with_admin_key,
)
from tests.ledger_helpers import eventually, outcome


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/usage.db"
    return str(request.getfixturevalue("pg_url"))


async def get(url: str, key: str | None = None, **headers: str) -> tuple[int, dict[str, str], Any]:
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers, allow_redirects=False) as r:
        body: Any = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}, body


async def test_the_api_reports_the_traffic(store_url: str, gateway, upstream):
    running = await gateway(config(upstream, usage_store=store_url))
    traffic = await make_traffic(running, upstream)
    sink = find(running.gateway)
    assert sink is not None
    await eventually(lambda: sink.stats()["written"] >= traffic.requests, what="the ledger to hold the traffic")
    api = running.url + "/ui/api/"

    status, headers, feed = await get(api + "feed?limit=50")
    assert status == 200 and headers["cache-control"] == "no-store"
    rows = feed["data"]
    assert len(rows) == traffic.requests
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    assert {r["model"] for r in rows} == {
        "up-openai/gpt-dash", "up-openai/" + MARKUP_MODEL, "up-anthropic/claude-dash", "openai/gpt-4o",
    }  # fmt: skip
    failed = [r for r in rows if r["status"] >= 400]
    assert sorted(r["status"] for r in failed) == [400, 429, 502]
    tried = {r["status"]: [a["provider"] for a in r["attempts"]] for r in failed}
    assert tried == {400: [], 429: ["up-anthropic"], 502: ["up-openai"]}
    assert all("request_body" not in r and "response_body" not in r and "user_agent" not in r for r in rows)

    status, _, limited = await get(api + "feed?limit=2&provider=up-anthropic")
    # the 429 names the provider it tried, like the answer
    assert status == 200 and [r["provider"] for r in limited["data"]] == ["up-anthropic", "up-anthropic"]
    _, _, errors = await get(api + "feed?status=error")
    assert len(errors["data"]) == traffic.errors

    status, _, series = await get(api + "series?since=15m&by=provider")
    assert status == 200 and series["step"] == 10 and len(series["buckets"]) in (90, 91)
    per = {s["key"]: s for s in series["series"]}
    assert {k: sum(s["requests"]) for k, s in per.items()} == traffic.by_provider
    assert {k: sum(s["errors"]) for k, s in per.items()} == {"up-openai": 1, "up-anthropic": 1, None: 1}
    assert sum(sum(s["tokens"]) for s in per.values()) == 2 * 1200 + 55 + 11 + 340
    assert sum(c for s in per.values() for c in s["cost_usd"] if c) == pytest.approx(traffic.cost)
    _, _, by_model = await get(api + "series?since=1h&by=model")
    assert "up-openai/" + MARKUP_MODEL in {s["key"] for s in by_model["series"]}
    _, _, by_key = await get(api + "series?since=1h&by=key")
    assert [(s["key"], sum(s["requests"])) for s in by_key["series"]] == [(None, traffic.requests)]

    status, _, providers = await get(api + "providers?since=1h")
    assert status == 200
    assert providers["totals"]["requests"] == traffic.requests and providers["totals"]["errors"] == traffic.errors
    assert providers["totals"]["cost_usd"] == pytest.approx(traffic.cost)
    table = {p["provider"]: p for p in providers["providers"]}
    assert list(table) == ["up-openai", "up-anthropic", None]
    assert (table["up-openai"]["requests"], table["up-openai"]["errors"]) == (5, 1)
    assert table["up-anthropic"]["error_rate"] == 0.5
    for name in ("up-openai", "up-anthropic"):
        latency = table[name]["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert table[None]["latency_ms"]["p50"] is None  # never answered

    status, _, state = await get(api + "status")
    assert status == 200 and state["inflight"] == 0 and state["cooldowns"] == []
    assert state["ledger"]["written"] == traffic.requests and state["ledger"]["store_up"] is True
    assert state["store"].split("://")[0] in ("sqlite", "postgresql")
    assert "up-openai" in state["providers"]

    status, _, keys = await get(api + "keys")
    assert (status, keys) == (200, {"available": True, "data": []})  # a key store, no gateway keys made


async def test_the_feed_never_carries_kept_bodies(gateway, upstream):
    running = await gateway(config(upstream, log_bodies=True))
    sink = find(running.gateway)
    assert sink is not None
    # a row as the ledger keeps it with log_bodies on (the trip hands it the bodies)
    sink.record(outcome(request_body='{"messages":"a private prompt"}', response_body='{"text":"a private answer"}'))
    await eventually(lambda: sink.stats()["written"] == 1, what="the row to land")
    [stored] = await query.recent(await sink.database())
    assert stored["request_body"] and stored["response_body"]
    status, _, feed = await get(running.url + "/ui/api/feed")
    assert status == 200 and len(feed["data"]) == 1
    assert "private" not in json.dumps(feed)


async def test_the_page_and_its_assets(gateway, upstream):
    running = await gateway(config(upstream, usage_store="off"))
    status, headers, _ = await get(running.url + "/ui")
    assert (status, headers["location"]) == (308, "/ui/")
    status, headers, page = await get(running.url + "/ui/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script type="module" src="static/js/main.js">' in page
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    for name, kind in (
        ("js/main.js", "text/javascript"),
        ("vendor/uPlot.esm.js", "text/javascript"),
        ("vendor/uPlot.min.css", "text/css"),
        ("vendor/uPlot.LICENSE.txt", "text/plain"),
    ):
        status, headers, body = await get(running.url + "/ui/static/" + name)
        assert status == 200 and headers["content-type"].startswith(kind) and body
        etag = headers["etag"]
        status, _, _ = await get(running.url + "/ui/static/" + name, **{"if-none-match": etag})
        assert status == 304
    for missing in ("/ui/static/nope.js", "/ui/static/../__init__.py", "/ui/nothing"):
        status, headers, body = await get(running.url + missing)
        assert status == 404 and body["error"]["type"] == "not_found_error", missing
        assert headers["x-frame-options"] == "DENY", missing  # the dashboard's errors are guarded too
    # the guard is the dashboard's own: the gateway's endpoints answer without it
    status, headers, _ = await get(running.url + "/v1/models")
    assert status == 200 and "content-security-policy" not in headers
    async with aiohttp.ClientSession() as session, session.post(running.url + "/ui/api/feed") as r:
        assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


async def test_an_admin_key_guards_the_dashboard(gateway, upstream):
    running = await gateway(with_admin_key(config(upstream, api_keys=[GATEWAY_KEY])))
    api = running.url + "/ui/api/"
    assert (await get(api + "session"))[2] == {"required": "admin_key", "authorized": False}
    assert (await get(api + "session", ADMIN_KEY))[2] == {"required": "admin_key", "authorized": True}
    for name in ("status", "feed", "series", "providers", "keys"):
        for key in (None, ADMIN_KEY + "x"):
            status, _, body = await get(api + name, key)
            assert status == 401 and body["error"]["type"] == "authentication_error", (name, key)
            assert ADMIN_KEY not in str(body)
        status, _, body = await get(api + name, GATEWAY_KEY)  # known, but not the admin key
        assert status == 403 and "admin_key" in body["error"]["message"], name
        assert ADMIN_KEY not in str(body) and GATEWAY_KEY not in str(body)
        status, _, _ = await get(api + name, ADMIN_KEY)
        assert status == 200, name
    status, _, _ = await get(api + "status", **{"x-api-key": ADMIN_KEY})
    assert status == 200
    # the page itself holds no data and loads without a key (it asks for one)
    assert (await get(running.url + "/ui/"))[0] == 200
    # the gateway's own endpoints still take the gateway key
    assert (await get(running.url + "/v1/providers", GATEWAY_KEY))[0] == 200


async def test_without_an_admin_key_the_gateway_keys_apply(gateway, upstream):
    running = await gateway(config(upstream, api_keys=[GATEWAY_KEY], usage_store="off"))
    api = running.url + "/ui/api/"
    assert (await get(api + "session"))[2] == {"required": "api_keys", "authorized": False}
    assert (await get(api + "status"))[0] == 401
    assert (await get(api + "status", GATEWAY_KEY))[0] == 200
    open_gateway = await gateway(config(upstream, usage_store="off"))
    assert (await get(open_gateway.url + "/ui/api/session"))[2] == {"required": None, "authorized": True}
    assert (await get(open_gateway.url + "/ui/api/status"))[0] == 200


async def test_ledger_off_store_down_and_bad_parameters(gateway, upstream):
    off = await gateway(config(upstream, usage_store="off"))
    for name in ("feed", "series", "providers"):
        status, _, body = await get(off.url + "/ui/api/" + name)
        assert status == 404 and "usage_store" in body["error"]["message"], name
    status, _, state = await get(off.url + "/ui/api/status")
    assert status == 200 and state["store"] is None and state["ledger"] is None
    assert (await get(off.url + "/ui/api/keys"))[2] == {"available": False, "data": []}

    # the store down from the start: the gateway keys are unknown, so only the admin key opens the dashboard
    down = await gateway(with_admin_key(config(upstream, usage_store="postgresql://root:pw-secret@127.0.0.1:1/test")))
    status, _, body = await get(down.url + "/ui/api/feed", ADMIN_KEY)
    assert status == 503 and body["error"]["type"] == "server_error"
    assert "pw-secret" not in str(body)
    status, _, body = await get(down.url + "/ui/api/feed")
    assert status == 503 and "keys" in body["error"]["message"] and "pw-secret" not in str(body)
    status, _, state = await get(down.url + "/ui/api/status", ADMIN_KEY)  # this instance's own state needs no store
    assert status == 200 and state["ledger"]["store_up"] is False and "pw-secret" not in str(state)

    on = await gateway(config(upstream))
    for path, param in (
        ("series?since=yesterday-ish", "since"),
        ("series?since=400d", "since"),
        ("series?by=day", "by"),
        ("providers?since=-5m", "since"),
        ("feed?limit=0", "limit"),
        ("feed?limit=1000", "limit"),
        ("feed?status=weird", "status"),
    ):
        status, _, body = await get(on.url + "/ui/api/" + path)
        assert status == 400 and body["error"]["param"] == param, path


async def test_cooldowns_show_what_the_policy_skips(gateway, upstream):
    cfg = config(upstream)
    cfg["providers"]["up-openai"].update({"cooldown_after": 1, "cooldown": 600})
    running = await gateway(cfg)
    upstream.reply(Reply(status=503, body=b'{"error":{"message":"down"}}'))
    async with aiohttp.ClientSession() as session:
        body = {"model": "up-openai/gpt-dash", "messages": [{"role": "user", "content": "hi"}]}
        async with session.post(running.openai_url + "/chat/completions", json=body) as r:
            assert r.status >= 500
    status, _, state = await get(running.url + "/ui/api/status")
    assert status == 200
    [cooling] = state["cooldowns"]
    assert (cooling["kind"], cooling["name"]) == ("target", "up-openai/gpt-dash")
    assert 590 < cooling["seconds_left"] <= 600


async def test_the_keys_panel_reads_the_key_store(store_url: str, gateway, upstream):
    """Keys made with the key store (as `dragoman keys create` does) show with their limits and this
    period's spend from requests the test makes; neither the key nor its hash ever leaves."""
    db = await open_database(store_url)
    try:
        key, token = await create_key(db, "team-a", budget_usd=5.0, period="day", rpm=100, models=["up-openai/*"])
        await create_key(db, "team-b", tpm=1000)
        await revoke_key(db, "team-b")
    finally:
        await db.close()
    running = await gateway(with_admin_key(config(upstream, usage_store=store_url)))
    oai = openai.AsyncOpenAI(base_url=running.openai_url, api_key=token, max_retries=0)
    upstream.reply(Reply(body=chat("gpt-dash")))
    await oai.chat.completions.create(model="up-openai/gpt-dash", messages=[{"role": "user", "content": "hi"}])
    deadline = time.monotonic() + 30
    while True:
        status, _, keys = await get(running.url + "/ui/api/keys", ADMIN_KEY)
        assert status == 200
        if (keys["data"] and keys["data"][0]["spent_usd"]) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert keys["available"] is True
    team_a, team_b = keys["data"]
    assert set(team_a) == set(KEY_FIELDS)
    assert team_a["name"] == "team-a" and team_a["state"] == "active" and team_a["period"] == "day"
    assert team_a["budget_usd"] == 5.0 and team_a["rpm"] == 100 and team_a["models"] == ["up-openai/*"]
    assert team_a["spent_usd"] == pytest.approx(OPENAI_COST)
    assert team_a["remaining_usd"] == pytest.approx(5.0 - OPENAI_COST)
    assert team_a["resets_at"] > time.time()
    assert team_b["name"] == "team-b" and team_b["state"] == "revoked" and team_b["revoked"] is not None
    assert token not in json.dumps(keys) and key.hash not in json.dumps(keys)
    # a gateway key is not the admin key: the panel stays closed to it
    assert (await get(running.url + "/ui/api/keys", token))[0] == 403


async def test_the_keys_panel_without_a_key_store(gateway, upstream):
    running = await gateway(config(upstream, virtual_keys=False))
    assert (await get(running.url + "/ui/api/keys"))[2] == {"available": False, "data": []}
