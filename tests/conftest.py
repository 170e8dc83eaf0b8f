"""Real HTTP on loopback: fake upstreams that record what they receive and replay recorded
provider bytes, and the gateway itself served in-process on an ephemeral port."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dragoman.config import Config, parse
from dragoman.gateway import Gateway
from dragoman.server.app import start
from dragoman.transport.upstream import Upstream
from tests.rawserver import Peer, Server


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | list[bytes] = b"{}"  # a list is streamed chunk by chunk
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0  # seconds between streamed chunks
    hang: bool = False  # keep the connection open after the body (a stalled upstream)
    abort: bool = False  # drop the connection after the body (a broken upstream)


class FakeUpstream:
    """Answers every request with the next queued Reply (or `default`), recording each request."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.replies: list[Reply | Callable[[Seen], Reply]] = []
        self.default: Reply | Callable[[Seen], Reply] | None = None
        self.url = ""
        self.closed_early = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def reply(self, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self.replies.extend(replies)

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path, request.query_string, dict(request.headers), await request.read())
        self.seen.append(seen)
        spec = self.replies.pop(0) if self.replies else self.default
        if spec is None:
            return web.json_response({"error": "no reply queued"}, status=599)
        reply = spec(seen) if callable(spec) else spec
        if isinstance(reply.body, bytes) and not reply.hang and not reply.abort:
            return web.Response(
                body=reply.body, status=reply.status, headers={"content-type": reply.content_type, **reply.headers}
            )
        resp = web.StreamResponse(status=reply.status, headers={"content-type": reply.content_type, **reply.headers})
        await resp.prepare(request)
        chunks = [reply.body] if isinstance(reply.body, bytes) else reply.body
        try:
            for chunk in chunks:
                await resp.write(chunk)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
            if reply.abort:
                assert request.transport is not None
                request.transport.abort()
                return resp
            if reply.hang:
                await asyncio.sleep(3600)
        except (ConnectionResetError, asyncio.CancelledError):
            self.closed_early.set()
            raise
        await resp.write_eof()
        return resp

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Where the browser tests left their screenshots."""
    from tests.browser import SAVED

    for path in SAVED:
        terminalreporter.write_line(f"screenshot: {path}")


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and every process it starts) keeps its ledger and journal in its own temp dir,
    never in the user's home."""
    path = tmp_path / "dragoman-data"
    monkeypatch.setenv("DRAGOMAN_DATA_DIR", str(path))
    return path


PG_HOST = os.environ.get("DRAGOMAN_TEST_PG", "127.0.0.1:5432")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test (created from the CI's `test` database, trust
    auth, the current user), dropped afterwards."""
    import asyncpg

    name = f"dragoman_t{os.getpid()}_{os.urandom(4).hex()}"
    admin = await asyncpg.connect(f"postgresql://{PG_HOST}/test")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield f"postgresql://{PG_HOST}/{name}"
    admin = await asyncpg.connect(f"postgresql://{PG_HOST}/test")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


REDIS_URL = os.environ.get("DRAGOMAN_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix no other test uses (`server.redis_prefix`); every key under it is
    deleted afterwards."""
    import redis.asyncio as redis

    prefix = f"dragoman-test-{os.urandom(6).hex()}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def make(handle: Callable[[Peer], Awaitable[None]], **kw: Any) -> Server:
        s = await Server(handle, **kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        await s.stop()


@pytest.fixture
async def up() -> AsyncIterator[Upstream]:
    client = Upstream()
    yield client
    await client.close()


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> AsyncIterator[GatewayFactory]:
    """`await gateway(toml_dict)` starts a gateway with that config on an ephemeral port; its usage
    ledger (SQLite by default) lives in the test's own data dir."""
    runners: list[Any] = []
    # no key from the developer's environment may leak into a test
    for var in (
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "KIMI_API_KEY",
        "MOONSHOT_API_KEY",
        "MINIMAX_API_KEY",
        "DEEPSEEK_API_KEY",
        "OPENROUTER_API_KEY",
        "OPENCODE_API_KEY",
        "OLLAMA_API_KEY",
        "DRAGOMAN_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)

    async def make(config: dict[str, Any] | Config | None = None) -> RunningGateway:
        cfg = config if isinstance(config, Config) else parse(config or {})
        gw = Gateway.from_config(cfg)
        runner, port = await start(gw, "127.0.0.1", 0)
        runners.append(runner)
        return RunningGateway(url=f"http://127.0.0.1:{port}", gateway=gw)

    yield make
    for runner in runners:
        await runner.cleanup()


def chat_completion(content: str = "ok") -> bytes:
    """A minimal non-streaming OpenAI reply."""
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
    ).encode()


def providers_at(upstream: FakeUpstream | Server, **extra: Any) -> dict[str, Any]:
    """A config with one custom provider per dialect, all pointing at the fake upstream."""
    cfg: dict[str, Any] = {
        # one attempt per request: these tests are about what one upstream answer becomes
        # (retries and fallbacks have their own tests, which configure them)
        "server": {"default_provider": "up-openai", "retries": 0},
        "providers": {
            "up-openai": {"dialect": "openai", "base_url": upstream.url + "/v1", "api_key": "sk-up-openai-secret"},
            "up-anthropic": {"dialect": "anthropic", "base_url": upstream.url, "api_key": "sk-ant-up-secret"},
            "up-ollama": {"dialect": "ollama", "base_url": upstream.url},
        },
    }
    for key, value in extra.items():
        cfg.setdefault(key, {}).update(value)
    return cfg
