"""Several instances and workers as real processes on loopback, with one Redis and one PostgreSQL: a
key's RPM holds across instances and workers, a cooldown one instance saw is honoured by the other,
reasoning one recorded is replayed by the other, both ledgers land in one table, metrics add up
over workers; Redis down degrades limits to per instance and requests keep flowing; a second
`serve` on a taken port fails with a clear message."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import ClientSession
from prometheus_client.parser import text_string_to_metric_families

from dragoman.store.db import open_database
from tests.conftest import FakeUpstream, GatewayFactory, Reply, Seen, providers_at
from tests.ledger_helpers import eventually
from tests.ops_helpers import HI, REDIS, cli, free_port, openai_reply, serve, to_toml

ADMIN = "sk-admin-key-for-tests-0123"
TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
CALL = {"id": "call_shared_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
THOUGHT = "The user wants the weather: I should call the tool."


def tool_call_reply() -> bytes:
    message = {"role": "assistant", "content": "", "reasoning_content": THOUGHT, "tool_calls": [CALL]}
    return json.dumps(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 1,
            "model": "kimi-k2.5",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
        }
    ).encode()


def answer(seen: Seen) -> Reply:
    if seen.path.startswith("/flaky/"):
        return Reply(status=500, body=b'{"error": {"message": "flaky is down", "type": "server_error"}}')
    if seen.path.startswith("/moon/"):
        has_tool_result = any(m.get("role") == "tool" for m in seen.json["messages"])
        return Reply(body=openai_reply("sunny") if has_tool_result else tool_call_reply())
    return Reply(body=openai_reply())


def shared_config(upstream: FakeUpstream, store: str, prefix: str, **server: Any) -> dict[str, Any]:
    return {
        "server": {
            "default_provider": "good",
            "retries": 0,
            "usage_store": store,
            "redis": REDIS,
            "redis_prefix": prefix,
            "key_cache_ttl": 1.0,
            "admin_key": ADMIN,
            **server,
        },
        "providers": {
            "flaky": {
                "dialect": "openai",
                "base_url": upstream.url + "/flaky/v1",
                "api_key": "sk-flaky-secret",
                "cooldown_after": 1,
                "cooldown": 300,
            },
            "good": {"dialect": "openai", "base_url": upstream.url + "/good/v1", "api_key": "sk-good-secret"},
            "moonshot": {"base_url": upstream.url + "/moon/v1", "api_key": "sk-moon-secret"},
        },
        "routes": {"r": {"targets": ["flaky/m", "good/m"]}},
    }


async def make_key(cfg: Path, name: str, *flags: str) -> str:
    code, out, err = await cli("keys", "create", name, "--config", str(cfg), *flags)
    assert code == 0, err
    return out.strip()


async def metrics_of(url: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    async with ClientSession() as http, http.get(url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}) as r:
        assert r.status == 200
        text = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def client(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def test_two_instances_behave_as_one(upstream: FakeUpstream, tmp_path: Path, pg_url: str, redis_prefix: str):
    upstream.default = answer
    cfg = tmp_path / "dragoman.toml"
    cfg.write_text(to_toml(shared_config(upstream, pg_url, redis_prefix)))
    limited = await make_key(cfg, "team", "--rpm", "3")
    ops = await make_key(cfg, "ops")
    a = await serve(cfg, free_port())
    b = await serve(cfg, free_port())
    requests = 0
    try:
        # a key's RPM across both: 2 on A, 1 on B, then each refuses
        for url in (a.url, a.url, b.url):
            await client(url, limited).chat.completions.create(model="good/m", messages=HI)
            requests += 1
        for url in (b.url, a.url):
            with pytest.raises(openai.RateLimitError) as refused:
                await client(url, limited).chat.completions.create(model="good/m", messages=HI)
            requests += 1
            assert int(refused.value.response.headers["retry-after"]) >= 1

        # a cooldown A saw (flaky failed once: cooldown_after = 1) is honoured by B
        await client(a.url, ops).chat.completions.create(model="r", messages=HI)
        requests += 1
        assert sum(s.path.startswith("/flaky/") for s in upstream.seen) == 1
        cooled = ("dragoman_cooldown_active", (("provider", "flaky"),))
        for _ in range(300):
            if (await metrics_of(b.url)).get(cooled) == 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("B never saw the cooldown")
        resp = await client(b.url, ops).chat.completions.with_raw_response.create(model="r", messages=HI)
        requests += 1
        assert resp.headers["x-dragoman-provider"] == "good" and resp.headers["x-dragoman-attempts"] == "1"
        assert sum(s.path.startswith("/flaky/") for s in upstream.seen) == 1  # B never tried it

        # reasoning A remembered is replayed by B
        first = await client(a.url, ops).chat.completions.create(
            model="moonshot/kimi-k2.5",
            messages=HI,
            tools=[TOOL],  # type: ignore[list-item]
        )
        requests += 1
        assert first.choices[0].message.tool_calls[0].id == "call_shared_1"  # type: ignore[index]
        history = [*HI, {"role": "assistant", "content": "", "tool_calls": [CALL]}]
        history.append({"role": "tool", "tool_call_id": "call_shared_1", "content": "sunny, 20 C"})
        await client(b.url, ops).chat.completions.create(
            model="moonshot/kimi-k2.5",
            messages=history,  # type: ignore[arg-type]
            tools=[TOOL],  # type: ignore[list-item]
        )
        requests += 1
        replayed = next(m for m in upstream.last.json["messages"] if m["role"] == "assistant")
        assert replayed["reasoning_content"] == THOUGHT
    finally:
        assert await a.stop() == 0
        assert await b.stop() == 0
    # both ledgers in the one table
    db = await open_database(pg_url)
    try:
        rows = await db.fetch("SELECT instance, key_name, status FROM usage_records")
    finally:
        await db.close()
    assert len(rows) == requests
    assert len({r["instance"] for r in rows}) == 2
    assert sorted(r["status"] for r in rows if r["key_name"] == "team") == [200, 200, 200, 429, 429]
    for served in (a, b):
        assert "Redis" not in served.log() or "unavailable" not in served.log()
        assert "sk-dgm-" not in served.log() and "secret" not in served.log()


async def test_workers_share_limits_and_add_up_their_metrics(
    upstream: FakeUpstream, tmp_path: Path, pg_url: str, redis_prefix: str
):
    upstream.default = answer
    cfg = tmp_path / "dragoman.toml"
    cfg.write_text(to_toml(shared_config(upstream, pg_url, redis_prefix)))
    limited = await make_key(cfg, "team", "--rpm", "4")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    served = await serve(cfg, free_port(), "--workers", "2", env={"TMPDIR": str(scratch)})
    try:
        assert "(2 workers)" in served.banner
        results = await asyncio.gather(
            *(client(served.url, limited).chat.completions.create(model="good/m", messages=HI) for _ in range(6)),
            return_exceptions=True,
        )
        assert sum(1 for r in results if isinstance(r, openai.RateLimitError)) == 2
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 4
        assert any(p.name.startswith("dragoman-metrics-") for p in scratch.iterdir())
        for _ in range(3):  # whichever worker answers the scrape counts every worker's requests
            samples = await metrics_of(served.url)
            by_status: dict[str, float] = {}
            for (name, labels), v in samples.items():
                if name == "dragoman_requests_total":
                    status = dict(labels)["status"]
                    by_status[status] = by_status.get(status, 0) + v
            assert by_status == {"200": 4, "429": 2}
    finally:
        assert await served.stop() == 0
    assert not any(p.name.startswith("dragoman-metrics-") for p in scratch.iterdir())  # cleaned up


async def test_redis_down_limits_go_per_instance_and_requests_flow(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    upstream.default = lambda seen: Reply(body=openai_reply())
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    from dragoman.store.keys.admin import create_key

    db = await open_database("sqlite")
    try:
        _, token = await create_key(db, "team", rpm=2)
    finally:
        await db.close()
    cfg = providers_at(upstream, server={"redis": dead})
    cfg["providers"]["up-openai"].update(cooldown_after=1, cooldown=60)
    cfg["providers"]["moonshot"] = {"base_url": upstream.url + "/moon/v1", "api_key": "sk-moon-secret"}
    one, two = await gateway(cfg), await gateway(cfg)
    for gw in (one, two):  # each instance counts alone: 2 each
        await client(gw.url, token).chat.completions.create(model="up-openai/m", messages=HI)
        await client(gw.url, token).chat.completions.create(model="up-openai/m", messages=HI)
        with pytest.raises(openai.RateLimitError):
            await client(gw.url, token).chat.completions.create(model="up-openai/m", messages=HI)
    assert any("Redis" in r.getMessage() and "unavailable" in r.getMessage() for r in caplog.records)
    # the reasoning memory on the same dead Redis costs the replay, not the request
    upstream.default = answer
    other_key = await create_other_key()
    got = await client(one.url, other_key).chat.completions.create(
        model="moonshot/kimi-k2.5",
        messages=HI,
        tools=[TOOL],  # type: ignore[list-item]
    )
    assert got.choices[0].message.tool_calls[0].id == "call_shared_1"  # type: ignore[index]
    assert any(
        "reasoning store" in r.getMessage() and ("unreachable" in r.getMessage() or "cannot reach" in r.getMessage())
        for r in caplog.records
    )
    # cooldowns still work, locally
    upstream.default = lambda seen: Reply(status=503, body=b'{"error": {"message": "down"}}')
    with pytest.raises(openai.APIStatusError):
        await client(one.url, other_key).chat.completions.create(model="up-openai/m", messages=HI)
    assert one.gateway.health.board.active()


async def create_other_key() -> str:
    from dragoman.store.keys.admin import create_key

    db = await open_database("sqlite")
    try:
        _, token = await create_key(db, "other")
    finally:
        await db.close()
    return token


async def test_a_second_serve_on_a_taken_port_fails_clearly(upstream: FakeUpstream, tmp_path: Path):
    upstream.default = lambda seen: Reply(body=openai_reply())
    cfg = tmp_path / "dragoman.toml"
    cfg.write_text(
        to_toml({"providers": {"fake": {"dialect": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}}})
    )
    port = free_port()
    first = await serve(cfg, port, "--workers", "2")
    try:
        code, _out, err = await cli("serve", "--config", str(cfg), "--port", str(port), "--workers", "2")
        assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
        code, _out, err = await cli("serve", "--config", str(cfg), "--port", str(port))
        assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err
        async with ClientSession() as http, http.get(first.url + "/health") as resp:
            assert resp.status == 200  # the first is untouched
    finally:
        assert await first.stop() == 0
    with socket.socket() as other:  # any other program listening there
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        code, _out, err = await cli("serve", "--config", str(cfg), "--port", str(taken), "--workers", "2")
    assert code == 1 and "address already in use" in err and "Traceback" not in err


async def test_port_zero_with_workers_is_one_port(upstream: FakeUpstream, tmp_path: Path):
    cfg = tmp_path / "dragoman.toml"
    cfg.write_text(
        to_toml({"providers": {"fake": {"dialect": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}}})
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dragoman", "serve", "--config", str(cfg), "--port", "0", "--workers", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        port = int(line.split("http://127.0.0.1:")[1].split(" ")[0])
        assert port > 0
        async with ClientSession() as http:
            for _ in range(6):
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    assert resp.status == 200
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    await eventually(lambda: proc.returncode is not None)
