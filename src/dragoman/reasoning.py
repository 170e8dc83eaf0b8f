"""Reasoning memory: what a model reasoned before each tool call it made.

OpenAI-format clients drop `reasoning_content` (and can never carry a thinking signature), yet
Moonshot, Kimi and DeepSeek reject a tool-call turn without its reasoning, and Claude rejects one
without its signed thinking. The gateway remembers the reasoning parts it saw in replies, keyed by
the tool-call ids that followed them, and re-attaches them when a client's history lacks them.

`ReasoningStore` is the interface a shared store (Redis...) implements; `MemoryReasoningStore` is
the bounded in-process default.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

import msgspec

from dragoman.canonical import Reasoning


class ReasoningStore(Protocol):
    def remember(self, tool_call_ids: list[str], parts: list[Reasoning]) -> None: ...

    def recall(self, tool_call_id: str) -> list[Reasoning] | None: ...


class MemoryReasoningStore:
    """An LRU bounded by entry count; one entry per tool-call id, sharing the parts list."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, list[Reasoning]] = OrderedDict()

    def remember(self, tool_call_ids: list[str], parts: list[Reasoning]) -> None:
        if not tool_call_ids or not parts:
            return
        for tid in tool_call_ids:
            self._items[tid] = parts
            self._items.move_to_end(tid)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def recall(self, tool_call_id: str) -> list[Reasoning] | None:
        parts = self._items.get(tool_call_id)
        if parts is not None:
            self._items.move_to_end(tool_call_id)
        return parts

    def __len__(self) -> int:
        return len(self._items)


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(list[Reasoning])


def dumps(parts: list[Reasoning]) -> bytes:
    """Wire form for shared stores."""
    return _enc.encode(parts)


def loads(data: bytes) -> list[Reasoning]:
    return _dec.decode(data)
