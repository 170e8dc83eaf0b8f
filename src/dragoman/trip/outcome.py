"""The typed record of a finished trip, and the sinks that receive it.

When a trip ends — success, error, refusal before routing, the client gone, the upstream broken
mid-stream, the gateway shutting down — exactly one `Outcome` is handed to every registered sink.
Everything that must see a finished request (the usage ledger, metrics, the access log, budget
counters) is a sink; nothing else in the trip knows about them.

A sink's `record` runs on the event loop right after the reply ends: it must be cheap (append to a
queue, bump a counter) and must never raise or block. A sink may also have `record_batch(outcomes)`:
the outcomes of one step of the loop then come to it in one call, in order (what `record` would get
one at a time). `start` and `close` bracket the gateway's life
(`close` flushes what is queued). Built-in sinks are made from the config; third-party ones come from
the `dragoman.sinks` entry point group: a callable taking the `Gateway` and returning a sink or None.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Literal, Protocol

import msgspec

from dragoman.canonical import Usage

log = logging.getLogger("dragoman.sinks")

# How the reply ended, from the client's side:
#   ok           a complete reply
#   error        an error reply (status >= 400) before any byte of an answer
#   client_gone  the client left before the end
#   broken       the upstream failed after the stream began (the client got an error event)
#   shutdown     the gateway ended the stream while shutting down
End = Literal["ok", "error", "client_gone", "broken", "shutdown"]


class Attempt(msgspec.Struct, omit_defaults=True, gc=False):  # strings and numbers: never in a cycle
    """One try against one target."""

    provider: str
    model: str
    key: int = 0  # which of the provider's keys (its index, never the key)
    status: int | None = None  # the upstream's HTTP status; None when no answer came
    latency_ms: float = 0.0  # until the answer's head, or the failure
    error_type: str | None = None  # Anthropic-style error type name
    error: str | None = None  # redacted


# Outcomes wait in the ledger's queue until their batch is written, long enough to be promoted and
# walked by the collector again and again; they hold strings, numbers, a Usage and a list of
# Attempts, never themselves, so the collector need not track them (the list is still tracked).
class Outcome(msgspec.Struct, omit_defaults=True, gc=False):
    request_id: str
    time: float  # epoch seconds when the request arrived
    method: str
    path: str
    front: str | None = None  # the client's dialect: openai | anthropic | responses
    model: str | None = None  # as the client named it
    route: str | None = None  # the route or alias that name matched
    rule: str | None = None  # the router rule that chose the target
    provider: str | None = None  # the provider that answered (or was last tried)
    upstream_model: str | None = None
    upstream_dialect: str | None = None
    passthrough: bool | None = None  # same dialect both sides: bytes passed untouched
    stream: bool = False
    status: int = 0  # what the client got
    end: End = "ok"
    error_type: str | None = None
    error: str | None = None  # redacted
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    latency_ms: float = 0.0  # arrival to the last byte sent
    ttfb_ms: float | None = None  # arrival to the first byte of the reply body sent
    usage: Usage | None = None  # Anthropic's convention: input_tokens excludes cached input
    cost_usd: float | None = None  # None when the price is unknown, never a made-up 0
    key_name: str | None = None  # the gateway key's name, never the key
    client: str | None = None  # the client family, from its User-Agent (claude-code, codex...)
    user_agent: str | None = None
    stop_reason: str | None = None
    tool_calls: int = 0
    instance: str | None = None
    request_body: str | None = None  # only with log_bodies, redacted
    response_body: str | None = None


class Sink(Protocol):
    name: str

    def record(self, outcome: Outcome) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Sinks:
    """Fans one outcome out to every sink; a failing sink is logged and counted, never raised."""

    def __init__(self, sinks: list[Sink] | None = None) -> None:
        self.sinks: list[Sink] = list(sinks or [])
        self.failures = 0
        # whether anything reads an outcome: without a sink the trip skips what only the record
        # would carry (usage read off a reply, attempt records)
        self.active = bool(self.sinks)
        self._pending: list[Outcome] = []  # handed over with `soon`, not yet recorded
        self._takers = [_taker(sink) for sink in self.sinks]

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)
        self._takers.append(_taker(sink))
        self.active = True

    def record(self, outcome: Outcome) -> None:
        """Record `outcome` at once (with whatever `soon` was handed before it)."""
        self._pending.append(outcome)
        self.flush()

    def soon(self, outcome: Outcome, loop: asyncio.AbstractEventLoop) -> None:
        """Record `outcome` on the loop's next step, with every other outcome handed over until
        then: the replies of this step leave first, and each sink takes the step's outcomes one
        after another (its code and data stay hot, instead of taking turns with the trip's)."""
        pending = self._pending
        pending.append(outcome)
        if len(pending) == 1:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Record what `soon` was handed (at once: `close` calls it before the sinks close)."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        for sink, many in self._takers:
            if many is not None:
                try:
                    many(batch)
                except Exception:
                    self.failures += len(batch)
                    log.exception("sink %s failed to record %d requests", sink.name, len(batch))
                continue
            for outcome in batch:
                try:
                    sink.record(outcome)
                except Exception:
                    self.failures += 1
                    log.exception("sink %s failed to record request %s", sink.name, outcome.request_id)

    async def start(self) -> None:
        for sink in self.sinks:
            try:
                await sink.start()
            except Exception:
                log.exception("sink %s failed to start", sink.name)

    async def close(self) -> None:
        self.flush()
        for sink in reversed(self.sinks):
            try:
                await sink.close()
            except Exception:
                log.exception("sink %s failed to close", sink.name)

    def __len__(self) -> int:
        return len(self.sinks)


def _taker(sink: Sink) -> tuple[Sink, Callable[[list[Outcome]], None] | None]:
    many = getattr(sink, "record_batch", None)
    return sink, many if callable(many) else None


_NODE = os.uname().nodename if hasattr(os, "uname") else "local"
_instance = f"{_NODE}:{os.getpid()}"


def _forked() -> None:
    global _instance
    _instance = f"{_NODE}:{os.getpid()}"


os.register_at_fork(after_in_child=_forked)


def instance_name() -> str:
    """host:pid (a forked worker renames itself)."""
    return _instance


def new_request_id() -> str:
    """Time-ordered and unique across instances: 12 hex digits of milliseconds, 16 random (the
    `random` module reseeds from the OS in every forked worker)."""
    return f"{int(time.time() * 1000):012x}{random.getrandbits(64):016x}"
