"""Reasoning memory: what a model reasoned before each tool call it made.

OpenAI-format clients drop `reasoning_content` (and can never carry a thinking signature), yet
Moonshot, Kimi and DeepSeek reject a tool-call turn without its reasoning, and Claude rejects one
without its signed thinking. The gateway remembers the reasoning parts it saw in replies, keyed by
the tool-call ids that followed them, and re-attaches them when a client's history lacks them.

`ReasoningStore` is the interface: `MemoryReasoningStore` (bounded, in process, the default) and
`RedisReasoningStore` (shared by every worker and instance, `server.reasoning_store =
"redis://..."`). Before a provider's hooks run, the pipeline fetches what a request's history can
use in one round trip and hands the hooks a synchronous `Snapshot`.

A shared store that cannot be reached degrades the gateway, never takes a request down: recall
finds nothing and remember is dropped, the first failure of an outage is logged (and its end),
every failed or skipped operation is counted, and during an outage the store is only tried again
every `retry_after` seconds, so that requests do not each wait for a dead server.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec

from dragoman.canonical import Reasoning
from dragoman.errors import redact

log = logging.getLogger("dragoman.store.reasoning")


class Recall(Protocol):
    def recall(self, tool_call_id: str) -> list[Reasoning] | None: ...


class ReasoningStore(Protocol):
    async def remember(self, tool_call_ids: list[str], parts: list[Reasoning]) -> None: ...

    async def recall_many(self, tool_call_ids: list[str]) -> dict[str, list[Reasoning]]: ...

    async def check(self) -> str | None:
        """None when the store answers, else why it does not (said once at start-up)."""
        ...

    async def close(self) -> None: ...


class Snapshot:
    """What the store held for one request's tool-call ids."""

    __slots__ = ("_found",)

    def __init__(self, found: dict[str, list[Reasoning]] | None = None) -> None:
        self._found = found or {}

    def recall(self, tool_call_id: str) -> list[Reasoning] | None:
        return self._found.get(tool_call_id)


class MemoryReasoningStore:
    """An LRU bounded by entry count; one entry per tool-call id, sharing the parts list."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, list[Reasoning]] = OrderedDict()

    async def remember(self, tool_call_ids: list[str], parts: list[Reasoning]) -> None:
        if not tool_call_ids or not parts:
            return
        for tid in tool_call_ids:
            self._items[tid] = parts
            self._items.move_to_end(tid)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    async def recall_many(self, tool_call_ids: list[str]) -> dict[str, list[Reasoning]]:
        found: dict[str, list[Reasoning]] = {}
        for tid in tool_call_ids:
            parts = self._items.get(tid)
            if parts is not None:
                self._items.move_to_end(tid)
                found[tid] = parts
        return found

    async def check(self) -> str | None:
        return None

    async def close(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(list[Reasoning])


def dumps(parts: list[Reasoning]) -> bytes:
    return _enc.encode(parts)


def loads(data: bytes) -> list[Reasoning]:
    return _dec.decode(data)


class RedisUnavailable(Exception):
    """`reasoning_store` names Redis but the redis package is not installed."""


class RedisReasoningStore:
    """Shared memory for several workers or instances; entries expire after `ttl` seconds."""

    PREFIX = "dragoman:reasoning:"

    def __init__(
        self,
        url: str,
        ttl: int = 86_400,
        *,
        prefix: str = PREFIX,
        timeout: float = 2.0,
        retry_after: float = 5.0,
    ) -> None:
        try:
            import redis.asyncio as redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError:
            raise RedisUnavailable("the redis package is not installed: pip install 'dragoman[redis]'") from None
        # no retries inside the client: a failed operation is reported at once and the outage logic decides
        self._redis: Any = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self.where = _where(url)
        self.prefix = prefix
        self.ttl = ttl
        self.retry_after = retry_after
        self.failures = 0  # operations that failed
        self.skipped = 0  # operations not tried during an outage
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def reachable(self) -> bool:
        """False during an outage (since the last failure, until an operation succeeds)."""
        return self._down_since is None

    async def remember(self, tool_call_ids: list[str], parts: list[Reasoning]) -> None:
        if not tool_call_ids or not parts or self._skip():
            return
        data = dumps(parts)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for tid in tool_call_ids:
                    pipe.set(self.prefix + tid, data, ex=self.ttl)
                await pipe.execute()
        except self._errors as exc:
            self._failed(exc)
            return
        self._answered()

    async def recall_many(self, tool_call_ids: list[str]) -> dict[str, list[Reasoning]]:
        if not tool_call_ids or self._skip():
            return {}
        try:
            values = await self._redis.mget([self.prefix + tid for tid in tool_call_ids])
        except self._errors as exc:
            self._failed(exc)
            return {}
        self._answered()
        found: dict[str, list[Reasoning]] = {}
        for tid, value in zip(tool_call_ids, values, strict=True):
            if value is not None:
                try:
                    found[tid] = loads(value)
                except msgspec.DecodeError:
                    continue
        return found

    async def check(self) -> str | None:
        try:
            await self._redis.ping()
        except self._errors as exc:
            self._failed(exc, quiet=True)
            return f"{self.where} ({_reason(exc)})"
        self._answered()
        return None

    async def close(self) -> None:
        try:
            await self._redis.aclose()
        except self._errors:
            pass

    def _skip(self) -> bool:
        if self._down_since is None:
            return False
        if asyncio.get_running_loop().time() >= self._retry_at:
            self._retry_at = asyncio.get_running_loop().time() + self.retry_after  # this one probes
            return False
        self.skipped += 1
        return True

    def _failed(self, exc: BaseException, quiet: bool = False) -> None:
        self.failures += 1
        now = asyncio.get_running_loop().time()
        self._retry_at = now + self.retry_after
        if self._down_since is None:
            self._down_since = now
            if not quiet:
                log.warning(
                    "reasoning store %s unreachable (%s): carrying on without it (nothing recalled or remembered)"
                    " until it answers",
                    self.where,
                    _reason(exc),
                )

    def _answered(self) -> None:
        if self._down_since is not None:
            down = asyncio.get_running_loop().time() - self._down_since
            self._down_since = None
            log.warning("reasoning store %s answers again after %.1f s", self.where, down)


def _where(url: str) -> str:
    """The store's address for logs: no user name or password."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "redis"
    return f"{parts.scheme}://{host}{parts.path}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0][:200]) if text else type(exc).__name__


def open_store(spec: str, max_entries: int, ttl: int, prefix: str = "dragoman:") -> ReasoningStore:
    """`memory` (the default) or a `redis://` / `rediss://` / `unix://` URL; `prefix` starts every
    key (`server.redis_prefix`), so deployments sharing one Redis keep apart."""
    if spec in ("", "memory"):
        return MemoryReasoningStore(max_entries)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisReasoningStore(spec, ttl, prefix=prefix + "reasoning:")
    raise ValueError(f"unknown reasoning store {spec!r}: use 'memory' or a redis:// URL")
