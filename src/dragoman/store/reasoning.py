"""Reasoning memory: what a model reasoned before each tool call it made.

OpenAI-format clients drop `reasoning_content` (and can never carry a thinking signature), yet
Moonshot, Kimi and DeepSeek reject a tool-call turn without its reasoning, and Claude rejects one
without its signed thinking. The gateway remembers the reasoning parts it saw in replies, keyed by
the tool-call ids that followed them, and re-attaches them when a client's history lacks them.

`ReasoningStore` is the interface: `MemoryReasoningStore` (bounded, in process, the default) and
`RedisReasoningStore` (shared by every worker and instance, `server.reasoning_store =
"redis://..."`). Before a provider's hooks run, the pipeline fetches what a request's history can
use in one round trip and hands the hooks a synchronous `Snapshot`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

import msgspec

from dragoman.canonical import Reasoning


class Recall(Protocol):
    def recall(self, tool_call_id: str) -> list[Reasoning] | None: ...


class ReasoningStore(Protocol):
    async def remember(self, tool_call_ids: list[str], parts: list[Reasoning]) -> None: ...

    async def recall_many(self, tool_call_ids: list[str]) -> dict[str, list[Reasoning]]: ...

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


class RedisReasoningStore:
    """Shared memory for several workers or instances; entries expire after `ttl` seconds."""

    PREFIX = "dragoman:reasoning:"

    def __init__(self, url: str, ttl: int = 86_400) -> None:
        import redis.asyncio as redis  # optional dependency: `pip install dragoman[redis]`

        self._redis: Any = redis.Redis.from_url(url)
        self.ttl = ttl

    async def remember(self, tool_call_ids: list[str], parts: list[Reasoning]) -> None:
        if not tool_call_ids or not parts:
            return
        data = dumps(parts)
        async with self._redis.pipeline(transaction=False) as pipe:
            for tid in tool_call_ids:
                pipe.set(self.PREFIX + tid, data, ex=self.ttl)
            await pipe.execute()

    async def recall_many(self, tool_call_ids: list[str]) -> dict[str, list[Reasoning]]:
        if not tool_call_ids:
            return {}
        values = await self._redis.mget([self.PREFIX + tid for tid in tool_call_ids])
        found: dict[str, list[Reasoning]] = {}
        for tid, value in zip(tool_call_ids, values, strict=True):
            if value is not None:
                try:
                    found[tid] = loads(value)
                except msgspec.DecodeError:
                    continue
        return found

    async def close(self) -> None:
        await self._redis.aclose()


def open_store(spec: str, max_entries: int, ttl: int) -> ReasoningStore:
    """`memory` (the default) or a `redis://` / `rediss://` / `unix://` URL."""
    if spec in ("", "memory"):
        return MemoryReasoningStore(max_entries)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisReasoningStore(spec, ttl)
    raise ValueError(f"unknown reasoning store {spec!r}: use 'memory' or a redis:// URL")
