"""What the usage-ledger tests share: outcome records, a TCP proxy that takes a store down and
brings it back on the same port, and row counts read straight from the store."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from dragoman.canonical import Usage
from dragoman.store.db import open_database
from dragoman.trip.outcome import Attempt, Outcome, new_request_id


def outcome(**fields: Any) -> Outcome:
    """A finished request as the trip hands it to sinks; any field can be overridden."""
    base: dict[str, Any] = {
        "request_id": new_request_id(),
        "time": time.time(),
        "method": "POST",
        "path": "/v1/messages",
        "front": "anthropic",
        "model": "claude-sonnet-4-6",
        "route": "anthropic/claude-sonnet-4-6",
        "provider": "anthropic",
        "upstream_model": "claude-sonnet-4-6",
        "upstream_dialect": "anthropic",
        "passthrough": True,
        "stream": True,
        "status": 200,
        "attempts": [Attempt(provider="anthropic", model="claude-sonnet-4-6", status=200, latency_ms=12.5)],
        "latency_ms": 850.0,
        "ttfb_ms": 120.0,
        "usage": Usage(
            input_tokens=1200, output_tokens=300, cache_read_tokens=8000, cache_write_tokens=500, reasoning_tokens=40
        ),
        "cost_usd": 0.012,
        "key_name": "team-a",
        "client": "claude-code",
        "user_agent": "claude-cli/2.0.1 (external, cli)",
        "stop_reason": "end_turn",
        "tool_calls": 1,
        "instance": "test:1",
    }
    base.update(fields)
    return Outcome(**base)


async def request_ids(url: str) -> list[str]:
    """Every request id in the store, duplicates included (there must be none)."""
    db = await open_database(url)
    try:
        rows = await db.fetch("SELECT request_id FROM usage_records")
    finally:
        await db.close()
    return [r["request_id"] for r in rows]


async def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until `check()` holds (generous: other test runs share this machine)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class TcpProxy:
    """Forwards a local port to a target; `down()` refuses connections and cuts live ones, `up()`
    listens again on the same port: a store that goes away and comes back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links.discard(writer)
        self._links.discard(up_writer)
