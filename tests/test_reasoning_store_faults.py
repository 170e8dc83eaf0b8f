"""The Redis reasoning store when Redis is not there: a closed port, and the real Redis behind a
proxy that goes away and comes back. Replies still succeed (nothing recalled, nothing remembered),
an outage is logged once and counted, `dragoman serve` says at start-up that it cannot reach the
store, and naming Redis without the redis package is a clear config error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from dragoman.canonical import Reasoning
from dragoman.config import Config, ConfigError, ServerConfig, parse
from dragoman.gateway import Gateway
from dragoman.server.app import start
from dragoman.store.reasoning import RedisReasoningStore
from tests.conftest import FakeUpstream, GatewayFactory, Reply
from tests.test_providers import OAI_OK, assistant_turns, config, moonshot_turn_one, oai, tool_history

REDIS = "redis://127.0.0.1:6379/15"
PARTS = [Reasoning("I should look it up", signature="sig-1")]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards."""
    name = f"dragoman-test:{uuid.uuid4().hex}:"
    yield name
    client = redis.Redis.from_url(REDIS)
    try:
        keys = [key async for key in client.scan_iter(match=name + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class Proxy:
    """A TCP proxy to the real Redis that can be taken down (every connection cut) and brought back."""

    def __init__(self) -> None:
        self.port = closed_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.pipes):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self.pipes |= {writer, up_writer}

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self.pipes -= {writer, up_writer}


async def test_store_round_trip_on_the_real_redis(prefix: str):
    store = RedisReasoningStore(REDIS, ttl=60, prefix=prefix)
    try:
        assert await store.check() is None
        await store.remember(["call-a", "call-b"], PARTS)
        found = await store.recall_many(["call-a", "call-b", "call-none"])
        assert found == {"call-a": PARTS, "call-b": PARTS}
        assert store.failures == 0 and store.reachable
    finally:
        await store.close()


async def test_unreachable_store_degrades_and_logs_once(caplog: pytest.LogCaptureFixture, prefix: str):
    store = RedisReasoningStore(f"redis://:hunter2-password@127.0.0.1:{closed_port()}/0", prefix=prefix, retry_after=0)
    caplog.set_level(logging.WARNING, logger="dragoman.store.reasoning")
    try:
        for _ in range(5):
            await store.remember(["call-a"], PARTS)  # dropped, quietly
            assert await store.recall_many(["call-a"]) == {}  # nothing, not an exception
        assert store.failures == 10 and not store.reachable
        lines = [r.getMessage() for r in caplog.records if r.name == "dragoman.store.reasoning"]
        assert len(lines) == 1 and "unreachable" in lines[0] and "127.0.0.1" in lines[0]
        assert "hunter2" not in lines[0]
        reason = await store.check()
        assert reason is not None and "hunter2" not in reason
    finally:
        await store.close()


async def test_outage_skips_the_store_until_it_is_due_again(caplog: pytest.LogCaptureFixture, prefix: str):
    proxy = Proxy()
    await proxy.up()
    store = RedisReasoningStore(f"redis://127.0.0.1:{proxy.port}/15", ttl=60, prefix=prefix, retry_after=0.2)
    caplog.set_level(logging.WARNING, logger="dragoman.store.reasoning")
    try:
        await store.remember(["before"], PARTS)
        assert await store.recall_many(["before"]) == {"before": PARTS}
        await proxy.down()
        assert await store.recall_many(["before"]) == {}
        assert store.failures == 1
        for _ in range(10):  # within retry_after: not even tried
            assert await store.recall_many(["before"]) == {}
        assert store.failures == 1 and store.skipped == 10
        await proxy.up()
        await asyncio.sleep(0.3)
        assert await store.recall_many(["before"]) == {"before": PARTS}  # back, and what it held is there
        assert store.reachable
        messages = [r.getMessage() for r in caplog.records if r.name == "dragoman.store.reasoning"]
        assert len(messages) == 2 and "unreachable" in messages[0] and "answers again" in messages[1]
    finally:
        await store.close()
        with contextlib.suppress(AssertionError):
            await proxy.down()


@pytest.mark.parametrize("store", ["closed port", "proxy goes down"])
async def test_replies_succeed_while_the_store_is_down(upstream: FakeUpstream, gateway: GatewayFactory, prefix, store):
    proxy = Proxy()
    cfg = config("moonshot", upstream, "/v1")
    if store == "closed port":
        cfg["server"] = {"reasoning_store": f"redis://127.0.0.1:{closed_port()}/0"}
        gw = await gateway(cfg)
    else:
        await proxy.up()
        running = Gateway.from_config(
            parse(cfg), reasoning=RedisReasoningStore(f"redis://127.0.0.1:{proxy.port}/15", prefix=prefix)
        )
        runner, port = await start(running, "127.0.0.1", 0)
        from tests.conftest import RunningGateway

        gw = RunningGateway(url=f"http://127.0.0.1:{port}", gateway=running)
        await proxy.down()
    try:
        # the real Kimi K2.5 thinking + tool-call stream: remembering its reasoning fails, the reply does not
        got, _ = await moonshot_turn_one(upstream, gw)
        assert got["finish"] == "tool_calls" and got["calls"][0]["id"] == "functions.weather:0"
        assert "error" not in got
        # the next turn: nothing can be recalled, so the provider's fallback ("") is sent, and it answers
        upstream.reply(Reply(body=OAI_OK))
        history = tool_history("functions.weather:0", arguments=got["calls"][0]["arguments"])
        reply = await oai(gw).chat.completions.create(model="moonshot/kimi-k2.5", messages=history)
        assert reply.choices[0].message.content == "ok"
        assert assistant_turns(upstream.last)[0]["reasoning_content"] == ""
        assert len(upstream.seen) == 2
    finally:
        if store != "closed port":
            await runner.cleanup()


async def test_serve_warns_at_start_up_and_serves(upstream: FakeUpstream, tmp_path: Path):
    port, serve_port = closed_port(), closed_port()
    path = tmp_path / "dragoman.toml"
    path.write_text(
        f"""
[server]
port = {serve_port}
default_provider = "fake"
reasoning_store = "redis://127.0.0.1:{port}/0"
[providers.fake]
dialect = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-fake"
"""
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        "serve",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        listening = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"listening on" in listening
        warning = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"WARNING" in warning and b"cannot reach the reasoning store" in warning
        assert f"127.0.0.1:{port}".encode() in warning and b"serving without it" in warning
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{serve_port}/health") as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


def test_redis_store_without_the_redis_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # an import of it now fails, as when it is not installed
    with pytest.raises(ConfigError) as err:
        parse({"server": {"reasoning_store": "redis://127.0.0.1:6379/0"}})
    assert "server.reasoning_store" in str(err.value) and "pip install 'dragoman[redis]'" in str(err.value)
    # a Config built without parse() meets the same error in the gateway
    cfg: Any = Config(server=ServerConfig(reasoning_store="redis://127.0.0.1:6379/0"))
    with pytest.raises(ConfigError, match="redis package"):
        Gateway.from_config(cfg)


async def test_serve_without_the_redis_package_says_so(tmp_path: Path):
    path = tmp_path / "dragoman.toml"
    path.write_text('[server]\nreasoning_store = "redis://127.0.0.1:6379/0"\n')
    script = "import sys; sys.modules['redis'] = None; from dragoman.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        "serve",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"bad config" in err and b"pip install 'dragoman[redis]'" in err and b"Traceback" not in err
