"""Gateway keys over real HTTP with the official SDKs: the CLI keeps only a hash, any key makes every
endpoint but /health need one, revocation and new keys reach a running gateway, model globs, RPM,
TPM and budgets are enforced before the upstream sees anything (429 + retry-after, 402 naming the
budget and its reset, in the client's own envelope), spend survives a restart, static keys and
client provider keys keep working, and the admin endpoints take only the admin key."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import ClientSession

from dragoman.store.db import open_database
from dragoman.store.keys.admin import create_key, revoke_key
from dragoman.store.keys.limits import Counts
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway, providers_at
from tests.ledger_helpers import TcpProxy
from tests.ops_helpers import HI, cli, openai_reply, to_toml

ANT_OK = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],'
    b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5}}'
)


def reply_for(seen: Any) -> Reply:
    return Reply(body=ANT_OK) if "/messages" in seen.path else Reply(body=openai_reply())


async def make_key(name: str, store: str = "sqlite", **limits: Any) -> str:
    db = await open_database(store)
    try:
        _, token = await create_key(db, name, **limits)
    finally:
        await db.close()
    return token


def oai(gw: RunningGateway, key: str | None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.openai_url, api_key=key or "none", max_retries=0)


def ant(gw: RunningGateway, key: str | None) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=key or "none", max_retries=0)


async def chat(gw: RunningGateway, key: str | None, model: str = "up-openai/m") -> Any:
    return await oai(gw, key).chat.completions.create(model=model, messages=HI)


def config(upstream: FakeUpstream, **server: Any) -> dict[str, Any]:
    cfg = providers_at(upstream, server=server)
    # $100,000 per million tokens: a request of 10 in + 5 out costs $1.50
    cfg["prices"] = {"up-openai/m": {"input": 100_000, "output": 100_000}}
    return cfg


# ---- the CLI -------------------------------------------------------------------------------------


async def test_the_cli_shows_a_key_once_and_the_store_keeps_only_its_hash(tmp_path: Path, data_dir: Path):
    cfg = tmp_path / "dragoman.toml"
    store = f"sqlite://{tmp_path / 'usage.db'}"
    cfg.write_text(to_toml({"server": {"usage_store": store}}))
    code, out, err = await cli(
        "keys", "create", "alice", "--config", str(cfg), "--budget", "20", "--period", "week",
        "--rpm", "60", "--tpm", "1000", "--models", "anthropic/*,gpt-5*", "--expires", "2099-12-31",
    )  # fmt: skip
    assert code == 0, err
    token = out.strip()
    assert token.startswith("sk-dgm-") and len(token) > 50 and "shown this once" in err
    db = await open_database(store)
    try:
        rows = await db.fetch("SELECT * FROM gateway_keys")
    finally:
        await db.close()
    assert len(rows) == 1 and rows[0]["hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(v) for v in rows[0].values())  # only the hash, never the key
    assert rows[0]["budget_usd"] == 20 and rows[0]["period"] == "week" and rows[0]["rpm"] == 60

    code, out, err = await cli("keys", "list", "--config", str(cfg))
    assert code == 0, err
    assert "alice" in out and "active" in out and "$20.00" in out and "anthropic/*,gpt-5*" in out
    assert token not in out and rows[0]["hash"] not in out

    code, _out, err = await cli("keys", "create", "alice", "--config", str(cfg))
    assert code == 2 and "exists" in err and "Traceback" not in err
    code, _out, err = await cli("keys", "revoke", "alice", "--config", str(cfg))
    assert code == 0, err
    code, out, _err = await cli("keys", "list", "--config", str(cfg), "--json")
    assert '"state": "revoked"' in out
    code, _out, err = await cli("keys", "revoke", "nobody", "--config", str(cfg))
    assert code == 2 and "no key named 'nobody'" in err
    code, _out, err = await cli("keys", "create", "bob", "--config", str(cfg), "--expires", "someday")
    assert code == 2 and "--expires" in err


# ---- who may call -----------------------------------------------------------------------------------


async def test_once_a_key_exists_every_endpoint_but_health_needs_one(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("alice")
    gw = await gateway(config(upstream))
    async with ClientSession() as http:
        async with http.get(gw.url + "/health") as resp:
            assert resp.status == 200
        for path in ("/v1/models", "/v1/providers", "/v1/usage", "/metrics", "/v1/keys"):
            async with http.get(gw.url + path) as resp:
                assert resp.status == 401, path
                assert (await resp.json())["error"]["type"] == "authentication_error"
        async with http.post(
            gw.url + "/v1/messages/count_tokens",
            json={"model": "up-anthropic/m", "messages": HI},
            headers={"anthropic-version": "2023-06-01"},
        ) as resp:
            assert resp.status == 401 and (await resp.json())["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        await chat(gw, None)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        await ant(gw, "sk-dgm-000000000000-not-a-real-key-at-all").messages.create(
            model="up-anthropic/m", max_tokens=5, messages=HI
        )
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert upstream.seen == []  # nothing reached the upstream
    # a Bearer token or x-api-key carries it
    assert (await chat(gw, token)).choices[0].message.content == "ok"
    msg = await ant(gw, token).messages.create(model="up-anthropic/m", max_tokens=5, messages=HI)
    assert msg.content[0].text == "ok"  # type: ignore[union-attr]
    async with ClientSession() as http:
        body = {"model": "up-anthropic/m", "max_tokens": 5, "messages": HI}
        headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
        async with http.post(gw.url + "/v1/messages", json=body, headers=headers) as resp:
            assert resp.status == 200
    assert all(token not in str(s.headers) for s in upstream.seen)  # a gateway key never travels upstream


async def test_revocation_and_new_keys_reach_a_running_gateway(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("alice")
    gw = await gateway(config(upstream, key_cache_ttl=0.5))
    await chat(gw, token)
    later = await make_key("bob")  # made elsewhere after start: works at once
    await chat(gw, later)
    db = await open_database("sqlite")
    try:
        await revoke_key(db, "alice")  # revoked elsewhere: refused within key_cache_ttl
    finally:
        await db.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            await chat(gw, token)
        except openai.AuthenticationError as exc:
            assert "revoked" in str(exc)
            break
        assert time.monotonic() < deadline, "the revoked key was still admitted"
        await _sleep(0.1)
    await chat(gw, later)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_an_expired_key_is_refused(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("brief", expires=time.time() + 1.5)
    gw = await gateway(config(upstream))
    await chat(gw, token)
    await _sleep(1.6)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        await chat(gw, token)


# ---- limits -------------------------------------------------------------------------------------


async def test_model_globs_hold_before_routing_to_the_upstream(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("narrow", models=["up-openai/*", "cheap"])
    cfg = config(upstream)
    cfg["routes"] = {"cheap": {"targets": ["up-anthropic/m"]}}
    gw = await gateway(cfg)
    await chat(gw, token)
    await chat(gw, token, "cheap")  # the route's name is allowed
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await chat(gw, token, "up-anthropic/m")
    assert "may not use model 'up-anthropic/m'" in str(refused.value) and "up-openai/*" in str(refused.value)
    with pytest.raises(anthropic.PermissionDeniedError):
        await ant(gw, token).messages.create(model="up-anthropic/other", max_tokens=5, messages=HI)
    assert len(upstream.seen) == 2


async def test_rpm_is_a_429_with_retry_after_in_each_dialect(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("busy", rpm=2)
    gw = await gateway(config(upstream))
    await chat(gw, token)
    await ant(gw, token).messages.create(model="up-anthropic/m", max_tokens=5, messages=HI)
    with pytest.raises(openai.RateLimitError) as refused:
        await chat(gw, token)
    after = int(refused.value.response.headers["retry-after"])
    assert 1 <= after <= 120
    assert "2 requests per minute" in str(refused.value)
    assert refused.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    with pytest.raises(anthropic.RateLimitError) as again:
        await ant(gw, token).messages.create(model="up-anthropic/m", max_tokens=5, messages=HI)
    assert again.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(again.value.response.headers["retry-after"]) >= 1
    assert len(upstream.seen) == 2  # refused before the upstream call
    other = await make_key("calm", rpm=2)
    await chat(gw, other)  # a limit is per key


async def test_tpm_counts_the_tokens_of_finished_requests(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("wordy", tpm=20)
    gw = await gateway(config(upstream))
    await chat(gw, token)  # 15 tokens
    await chat(gw, token)  # 30: over, but only known after it finished
    with pytest.raises(openai.RateLimitError, match="20 tokens per minute"):
        await chat(gw, token)
    assert len(upstream.seen) == 2


async def test_an_exhausted_budget_is_a_402_naming_it_and_its_reset(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("thrifty", budget_usd=2.0, period="day")
    gw = await gateway(config(upstream))
    await chat(gw, token)  # $1.50
    await chat(gw, token)  # $3.00
    with pytest.raises(openai.APIStatusError) as refused:
        await chat(gw, token)
    error = refused.value
    assert error.status_code == 402 and error.response.headers["x-should-retry"] == "false"
    assert "daily budget: $3.00 of $2.00" in str(error) and "resets at" in str(error) and "UTC" in str(error)
    assert error.body["type"] == "insufficient_quota"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as again:
        await ant(gw, token).messages.create(model="up-anthropic/m", max_tokens=5, messages=HI)
    assert again.value.status_code == 402 and again.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    assert len(upstream.seen) == 2


async def test_spend_survives_a_restart(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("thrifty", budget_usd=2.5)
    first = await gateway(config(upstream))
    await chat(first, token)
    await chat(first, token)  # $3.00, in the ledger once it flushes
    await first.gateway.close()
    second = await gateway(config(upstream))  # a fresh process's counters: rebuilt from the ledger
    with pytest.raises(openai.APIStatusError, match=r"\$3.00 of \$2.50"):
        await chat(second, token)


async def test_static_keys_and_client_provider_keys_keep_working(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("alice")
    cfg = config(upstream, api_keys=["sk-static-gateway-key-123"])
    cfg["providers"]["up-anthropic"].pop("api_key", None)
    cfg["providers"]["up-anthropic"]["auth"] = "client"
    gw = await gateway(cfg)
    await chat(gw, "sk-static-gateway-key-123")
    # the gateway key in x-api-key, the client's own provider key as a Bearer token
    client = anthropic.AsyncAnthropic(
        base_url=gw.url, api_key="sk-ant-users-own-key-99", default_headers={"x-api-key": token}, max_retries=0
    )
    await client.messages.create(model="up-anthropic/m", max_tokens=5, messages=HI)
    sent = {k.lower(): v for k, v in upstream.last.headers.items()}
    assert sent["x-api-key"] == "sk-ant-users-own-key-99" and token not in str(sent)


# ---- admin endpoints ------------------------------------------------------------------------------


async def test_admin_endpoints_take_only_the_admin_key(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    token = await make_key("alice")
    gw = await gateway(config(upstream, admin_key="sk-admin-key-0123456789"))
    admin = {"authorization": "Bearer sk-admin-key-0123456789"}
    async with ClientSession() as http:
        for path in ("/v1/usage", "/metrics", "/v1/keys"):
            async with http.get(gw.url + path, headers={"authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 403, path
                assert (await resp.json())["error"]["type"] == "permission_error"
            async with http.get(gw.url + path, headers=admin) as resp:
                assert resp.status == 200, path
        async with http.post(gw.url + "/v1/keys", json={"name": "bob", "rpm": 1, "budget_usd": 3}, headers=admin) as r:
            assert r.status == 201
            made = await r.json()
        assert made["key"].startswith("sk-dgm-") and made["rpm"] == 1 and made["budget_usd"] == 3
        async with http.post(gw.url + "/v1/keys", json={"name": "bob"}, headers=admin) as r:
            assert r.status == 400 and "exists" in (await r.json())["error"]["message"]
        async with http.post(gw.url + "/v1/keys", json={"name": "x", "period": "year"}, headers=admin) as r:
            assert r.status == 400
        await chat(gw, made["key"])  # at once, on this instance
        async with http.get(gw.url + "/v1/keys", headers=admin) as r:
            listed = (await r.json())["data"]
        assert [k["name"] for k in listed] == ["alice", "bob"]
        assert made["key"] not in str(listed) and "hash" not in listed[0]
        assert listed[1]["requests_last_minute"] >= 1 and listed[1]["remaining_usd"] == pytest.approx(1.5)
        async with http.delete(gw.url + "/v1/keys/bob", headers=admin) as r:
            assert r.status == 200 and (await r.json())["state"] == "revoked"
        async with http.delete(gw.url + "/v1/keys/nobody", headers=admin) as r:
            assert r.status == 404
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        await chat(gw, made["key"])
    await chat(gw, "sk-admin-key-0123456789")  # the admin key admits API calls too


async def test_without_an_admin_key_a_gateway_key_cannot_read_usage(upstream: FakeUpstream, gateway: GatewayFactory):
    token = await make_key("alice")
    gw = await gateway(config(upstream, api_keys=["sk-static-gateway-key-123"]))
    async with ClientSession() as http:
        async with http.get(gw.url + "/v1/usage", headers={"x-api-key": token}) as resp:
            assert resp.status == 403 and "server.admin_key" in (await resp.json())["error"]["message"]
        async with http.get(gw.url + "/v1/usage", headers={"x-api-key": "sk-static-gateway-key-123"}) as resp:
            assert resp.status == 200


# ---- the store down ------------------------------------------------------------------------------


async def test_a_store_down_at_start_uses_the_keys_read_before(
    upstream: FakeUpstream, gateway: GatewayFactory, pg_url: str
):
    upstream.default = reply_for
    host, _, rest = pg_url.removeprefix("postgresql://").partition("/")
    proxy = TcpProxy(host.split(":")[0], int(host.split(":")[1]))
    await proxy.up()
    store = f"postgresql://127.0.0.1:{proxy.port}/{rest}"
    token = await make_key("alice", store=store)
    first = await gateway(config(upstream, usage_store=store))
    await chat(first, token)  # read from the store, and a copy kept in the data dir
    await first.gateway.close()
    await proxy.down()
    try:
        second = await gateway(config(upstream, usage_store=store))
        assert second.gateway.keys is not None and second.gateway.keys.loaded
        await chat(second, token)
        with pytest.raises(openai.AuthenticationError):
            await chat(second, None)
    finally:
        await proxy.up()


async def test_keys_unknown_refuse_with_a_503_rather_than_admit_everyone(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = reply_for
    closed = "postgresql://127.0.0.1:1/nothing"  # nothing listens on port 1: no store, no copy
    gw = await gateway(config(upstream, usage_store=closed))
    with pytest.raises(openai.InternalServerError) as refused:
        await chat(gw, None)
    assert refused.value.status_code == 503 and "cannot read its keys" in str(refused.value)
    async with ClientSession() as http, http.get(gw.url + "/health") as resp:
        assert resp.status == 200
    assert upstream.seen == []


def test_the_sliding_minute_carries_the_last_minute_over_and_forgets_older_ones():
    from dragoman.store.keys.limits import _Minutes, estimate

    mine = _Minutes(100)
    mine.requests, mine.tokens = 30.0, 900.0
    mine.roll(100)  # the same minute: nothing moves
    assert mine.counts(0.0) == Counts(0.0, 30.0, 0.0, 900.0, 0.0)
    mine.roll(101)  # the next one: this minute's counts are the last one's
    mine.requests += 1
    assert mine.counts(2.5) == Counts(30.0, 1.0, 900.0, 0.0, 2.5)
    assert estimate(mine.requests_prev, mine.requests, 30.0) == 16.0  # half of the last minute still in
    mine.roll(99)  # a clock stepped back: counting goes on where it was
    assert (mine.minute, mine.requests_prev, mine.requests) == (101, 30.0, 1.0)
    mine.roll(105)  # minutes passed with nothing: both go
    assert mine.counts(0.0) == Counts()
