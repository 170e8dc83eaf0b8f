"""Cooldowns shared through Redis: a `CooldownBoard` (trip/health.py) every worker and instance honours.

Checks never leave the process: `until` reads a local mirror. A cooldown set here is written to the
mirror at once and to Redis by a background task (one hash, `<prefix>cooldowns`, name -> deadline,
plus a message on the channel of the same name). Every board listens on that channel, so a cooldown
one instance saw reaches the others within a round trip, and reads the whole hash again every few
seconds (a message lost while a connection was down is caught up there). Redis down: the board goes
on as a local one and writes what is pending once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgspec

from dragoman.store.redis_link import RedisLink, client
from dragoman.trip.health import MemoryBoard

log = logging.getLogger("dragoman.health")

RESYNC = 3.0  # seconds between full reads of the hash
STALE = 300.0  # a deadline this far in the past is removed from the hash


class Change(msgspec.Struct):
    name: str
    until: float


_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(list[Change])


class RedisBoard:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.key = link.key("cooldowns")
        self._local = MemoryBoard()
        self.entries = self._local.entries  # (the mirror: the protocol's read-only view)
        self._pending: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.synced = 0  # full reads done, for tests and the dashboard

    # -- the CooldownBoard protocol (local, synchronous) -----------------------------------------

    def until(self, name: str) -> float:
        return self._local.until(name)

    def set(self, name: str, until: float) -> None:
        self._local.set(name, until)
        self._pending[name] = until
        self._wake.set()

    def active(self) -> dict[str, float]:
        return self._local.active()

    # -- the background ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._writer(), name="dragoman-cooldowns-writer"),
                loop.create_task(self._mirror(), name="dragoman-cooldowns-mirror"),
            ]

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._pending:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), 1.0)

    async def _writer(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            if not self.link.usable():
                await asyncio.sleep(0.5)
                self._wake.set()
                continue
            try:
                await self._flush()
                self.link.succeeded()
            except self.link.errors as exc:
                self.link.failed(exc, "cooldowns are kept")
                self._wake.set()
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            async with self.link.redis.pipeline(transaction=False) as pipe:
                for name, until in pending.items():
                    if until > 0:
                        pipe.hset(self.key, name, repr(until))
                    else:
                        pipe.hdel(self.key, name)
                pipe.publish(self.key, _encode.encode([Change(n, u) for n, u in pending.items()]))
                await pipe.execute()
        except BaseException:
            for name, until in pending.items():
                self._pending.setdefault(name, until)  # newer changes made meanwhile win
            raise

    async def _mirror(self) -> None:
        """Listen to the channel, and read the whole hash on (re)connecting and every RESYNC s."""
        retry = 1.0
        while not self._closing:
            listener = client(self.link.url, timeout=None)  # a subscription waits as long as it likes
            pubsub: Any = listener.pubsub()
            try:
                await pubsub.subscribe(self.key)
                await self._resync()
                retry = 1.0
                last = time.monotonic()
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=RESYNC)
                    if message is not None and message.get("type") == "message":
                        self._apply(message.get("data"))
                    if time.monotonic() - last >= RESYNC:
                        await self._resync()
                        last = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.link.failed(exc, "cooldowns are kept")
                await asyncio.sleep(retry)
                retry = min(retry * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await listener.aclose()

    def _apply(self, data: Any) -> None:
        try:
            changes = _decode.decode(data)
        except (msgspec.DecodeError, TypeError):
            return
        for change in changes:
            if change.name not in self._pending:  # a change of our own not yet written is newer
                self._local.set(change.name, change.until)

    async def _resync(self) -> None:
        entries: dict[bytes, bytes] = await self.link.redis.hgetall(self.key)
        now = time.time()
        seen: dict[str, float] = {}
        stale: list[str] = []
        for raw_name, raw_until in entries.items():
            name = raw_name.decode()
            try:
                until = float(raw_until)
            except ValueError:
                stale.append(name)
                continue
            if until < now - STALE:
                stale.append(name)
            seen[name] = until
        for name in list(self._local.active()):
            if name not in seen and name not in self._pending:
                self._local.set(name, 0)  # cleared elsewhere (a message we missed)
        for name, until in seen.items():
            if name not in self._pending:
                self._local.set(name, until)
        if stale:
            await self.link.redis.hdel(self.key, *stale)
        self.link.succeeded()
        self.synced += 1
