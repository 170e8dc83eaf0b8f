"""What a gateway key may do, checked before the upstream call: its models, requests and tokens per
minute, and its budget for the period.

    admit(key, trip)   models → budget → RPM → TPM, or the client's error (403, 402, 429 + retry-after)
    record(outcome)    a sink: the tokens and cost of every finished request go to the key's counters

Rates are a sliding minute (this minute's count plus the last one's, weighted by how much of it is
still inside the last 60 s). With `server.redis`, the counters are Redis keys every instance shares:
`admit` is one pipelined round trip, and `record` adds in batches (never an UPDATE per request).
Without it, or while Redis is down, they are this process's own. The spend against a budget is the
larger of the counter and what the ledger has for the period (read every SPEND_SYNC s): spend
survives restarts and a flushed Redis, and workers without Redis see each other's within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from dragoman.errors import BillingError, GatewayError, PermissionDenied, RateLimited
from dragoman.store.db import Database
from dragoman.store.keys.admin import spend_since
from dragoman.store.keys.records import GatewayKey, Period, period_bounds, when
from dragoman.store.keys.ring import KeyRing
from dragoman.store.redis_link import RedisLink
from dragoman.trip.outcome import Outcome

if TYPE_CHECKING:
    from dragoman.trip.plan import Trip

log = logging.getLogger("dragoman.keys")

SPEND_SYNC = 30.0  # seconds between reads of the ledger's spend per key
FLUSH_AFTER = 0.05  # seconds the batch of counter increments gathers before it goes to Redis
WINDOW = 60
ADJECTIVE: dict[Period, str] = {"day": "daily", "week": "weekly", "month": "monthly"}


class Counts(msgspec.Struct):
    """A key's counters at one moment."""

    requests_prev: float = 0.0
    requests: float = 0.0  # this minute, this request included
    tokens_prev: float = 0.0
    tokens: float = 0.0
    spend: float = 0.0  # this period, USD


class _Minutes:
    """One key's requests and tokens this minute and the last, counted by this process."""

    __slots__ = ("minute", "requests", "requests_prev", "tokens", "tokens_prev")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.requests = self.requests_prev = self.tokens = self.tokens_prev = 0.0

    def roll(self, minute: int) -> None:
        """Move on to `minute` (this minute's counts become the last one's, or go)."""
        if minute <= self.minute:
            return  # (a clock stepped back: keep counting where it was)
        follows = minute == self.minute + 1
        self.requests_prev = self.requests if follows else 0.0
        self.tokens_prev = self.tokens if follows else 0.0
        self.requests = self.tokens = 0.0
        self.minute = minute

    def counts(self, spend: float) -> Counts:
        return Counts(self.requests_prev, self.requests, self.tokens_prev, self.tokens, spend)


def estimate(prev: float, cur: float, elapsed: float) -> float:
    """The sliding minute: this minute's count plus the share of the last minute still inside it."""
    return prev * max(WINDOW - elapsed, 0.0) / WINDOW + cur


def wait_seconds(prev: float, cur: float, elapsed: float, fits: Callable[[float], bool]) -> int:
    """Whole seconds until the sliding count `fits` (at most two minutes)."""
    for t in range(1, 2 * WINDOW + 1):
        at = elapsed + t
        if at < WINDOW:
            value = estimate(prev, cur, at)
        elif at < 2 * WINDOW:
            value = estimate(cur, 0.0, at - WINDOW)
        else:
            value = 0.0
        if fits(value):
            return t
    return 2 * WINDOW


def _refusal(key: GatewayKey, counts: Counts, elapsed: float, end: float) -> GatewayError | None:
    """Why the key may not make another request now (None: it may)."""
    if key.budget_usd is not None and counts.spend >= key.budget_usd:
        return BillingError(
            f"gateway key {key.name!r} has used its {ADJECTIVE[key.period]} budget: ${counts.spend:.2f} of "
            f"${key.budget_usd:.2f}; it resets at {when(end)}",
            headers={"x-should-retry": "false", "x-dragoman-budget-reset": str(int(end))},
        )
    if key.rpm is not None and estimate(counts.requests_prev, counts.requests, elapsed) > key.rpm:
        rpm = key.rpm
        wait = wait_seconds(counts.requests_prev, counts.requests - 1, elapsed, lambda v: v + 1 <= rpm)
        return RateLimited(
            f"gateway key {key.name!r} is over its limit of {key.rpm} requests per minute; retry in {wait} s",
            headers={"retry-after": str(wait)},
        )
    if key.tpm is not None and estimate(counts.tokens_prev, counts.tokens, elapsed) >= key.tpm:
        tpm = key.tpm
        wait = wait_seconds(counts.tokens_prev, counts.tokens, elapsed, lambda v: v < tpm)
        return RateLimited(
            f"gateway key {key.name!r} is over its limit of {key.tpm} tokens per minute; retry in {wait} s",
            headers={"retry-after": str(wait)},
        )
    return None


class Limits:
    name = "key_limits"

    def __init__(
        self,
        ring: KeyRing,
        link: RedisLink | None = None,
        database: Callable[[], Awaitable[Database]] | None = None,
    ) -> None:
        self.ring = ring
        self.link = link
        self._database = database
        self._minutes: dict[str, _Minutes] = {}  # key id -> this process's counts
        self._spend: dict[tuple[str, float], float] = {}  # (key id, period start) -> USD, this process
        self._ledger: dict[tuple[str, float], float] = {}  # (key id, period start) -> USD, the ledger's
        self._pending: dict[tuple[str, int, float], list[float]] = {}  # (key id, minute, period start) -> [tok, usd]
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._syncing: asyncio.Task[None] | None = None
        self._closing = False

    # -- the admission check ---------------------------------------------------------------------

    def admit(self, key: GatewayKey, trip: Trip) -> Awaitable[None] | None:
        """Refuses the request (raises the client's error) when the key may not make it now. This
        process's own counters answer at once; with Redis usable, the answer is a coroutine that
        asks it, for the caller to await."""
        route = trip.route
        if key.models and not (key.allows(trip.model, route.name) or all(key.allows(t.label) for t in route.targets)):
            raise PermissionDenied(
                f"gateway key {key.name!r} may not use model {trip.model!r} (allowed: {', '.join(key.models)})"
            )
        if key.budget_usd is None and key.rpm is None and key.tpm is None:
            return None
        link = self.link
        if link is not None and link.usable():
            return self._admit_shared(key, link)
        now = time.time()
        minute = int(now // WINDOW)
        start, end = period_bounds(key.period, now)
        counts = self._local_counts(key, minute, start)
        counts.spend = max(counts.spend, self._ledger.get((key.key_id, start), 0.0))
        refusal = _refusal(key, counts, now - minute * WINDOW, end)
        if refusal is not None:
            if key.rpm is not None:
                self._mine(key.key_id, minute).requests -= 1  # a refused request does not count
            raise refusal
        return None

    async def _admit_shared(self, key: GatewayKey, link: RedisLink) -> None:
        now = time.time()
        minute = int(now // WINDOW)
        start, end = period_bounds(key.period, now)
        counts = self._local_counts(key, minute, start)  # (counted here too: Redis may fail mid-way)
        try:
            counts = await self._redis_counts(link, key, minute, start)
        except link.errors as exc:
            link.failed(exc, "rate limits and budgets are counted")
        else:
            link.succeeded()
        counts.spend = max(counts.spend, self._ledger.get((key.key_id, start), 0.0))
        refusal = _refusal(key, counts, now - minute * WINDOW, end)
        if refusal is not None:
            await self._undo(key, minute)
            raise refusal

    def _local_counts(self, key: GatewayKey, minute: int, start: float) -> Counts:
        """Counts a request (when the key has an RPM) in this process's counters, and reads them."""
        kid = key.key_id
        mine = self._mine(kid, minute)
        if key.rpm is not None:
            mine.requests += 1
        return mine.counts(self._spend.get((kid, start), 0.0))

    async def _redis_counts(self, link: RedisLink, key: GatewayKey, minute: int, start: float) -> Counts:
        kid = key.key_id
        r_now, r_prev = link.key("rl", kid, "r", str(minute)), link.key("rl", kid, "r", str(minute - 1))
        t_now, t_prev = link.key("rl", kid, "t", str(minute)), link.key("rl", kid, "t", str(minute - 1))
        async with link.redis.pipeline(transaction=False) as pipe:
            if key.rpm is not None:
                pipe.incr(r_now)
                pipe.expire(r_now, 3 * WINDOW)
            pipe.mget([r_prev, r_now, t_prev, t_now, link.key("spend", kid, str(int(start)))])
            replies = await pipe.execute()
        values = [float(v) if v is not None else 0.0 for v in replies[-1]]
        return Counts(*values)

    async def _undo(self, key: GatewayKey, minute: int) -> None:
        """A refused request does not count against the rate."""
        if key.rpm is None:
            return
        self._mine(key.key_id, minute).requests -= 1
        link = self.link
        if link is not None and link.up:
            try:
                await link.redis.decr(link.key("rl", key.key_id, "r", str(minute)))
            except link.errors as exc:
                link.failed(exc, "rate limits and budgets are counted")

    def _mine(self, kid: str, minute: int) -> _Minutes:
        """This process's counts of a key, rolled to `minute`."""
        mine = self._minutes.get(kid)
        if mine is None:
            mine = self._minutes[kid] = _Minutes(minute)
        elif mine.minute != minute:
            mine.roll(minute)
        return mine

    # -- the sink: spend and tokens of finished requests -----------------------------------------

    def record(self, outcome: Outcome) -> None:
        self.record_batch([outcome])

    def record_batch(self, outcomes: list[Outcome]) -> None:
        now = time.time()
        minute = int(now // WINDOW)
        by_name = self.ring.by_name
        for outcome in outcomes:
            name = outcome.key_name
            if name is None:
                continue
            key = by_name.get(name)
            if key is None:
                continue
            u = outcome.usage  # what the TPM counts: every token in and out, cached ones too
            tokens = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens + u.output_tokens if u else 0
            cost = outcome.cost_usd or 0.0
            if not tokens and not cost:
                continue
            start = period_bounds(key.period, now)[0]
            if tokens:
                self._mine(key.key_id, minute).tokens += tokens
            if cost:
                slot = (key.key_id, start)
                self._spend[slot] = self._spend.get(slot, 0.0) + cost
            if self.link is not None:
                pending = self._pending.setdefault((key.key_id, minute, start), [0.0, 0.0])
                pending[0] += tokens
                pending[1] += cost
                self._wake.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._database is not None:
            self.ring.on_load.append(self._keys_changed)
            await self.ring.start(self._database)
            await self._sync_spend()
            self._tasks.append(loop.create_task(self._spend_loop(), name="dragoman-key-spend"))
        if self.link is not None:
            self._tasks.append(loop.create_task(self._flusher(), name="dragoman-key-counters"))

    async def close(self) -> None:
        self._closing = True
        for task in [*self._tasks, *([self._syncing] if self._syncing is not None else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.link is not None and self._pending and self.link.up:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(self.link), 1.0)
        await self.ring.close()

    async def _flusher(self) -> None:
        link = self.link
        assert link is not None
        while not self._closing:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_AFTER)  # let a batch gather
            self._wake.clear()
            if not self._pending or not link.usable():
                continue
            try:
                await self._flush(link)
                link.succeeded()
            except link.errors as exc:
                link.failed(exc, "rate limits and budgets are counted")
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _flush(self, link: RedisLink) -> None:
        pending, self._pending = self._pending, {}
        now = time.time()
        try:
            async with link.redis.pipeline(transaction=False) as pipe:
                for (kid, minute, start), (tokens, cost) in pending.items():
                    if tokens:
                        slot = link.key("rl", kid, "t", str(minute))
                        pipe.incrby(slot, int(tokens))
                        pipe.expire(slot, 3 * WINDOW)
                    if cost:
                        slot = link.key("spend", kid, str(int(start)))
                        pipe.incrbyfloat(slot, cost)
                        pipe.expireat(slot, int(max(start, now) + 40 * 86_400))  # past any period's end
                await pipe.execute()
        except BaseException:
            for where, (tokens, cost) in pending.items():  # kept for the next try
                kept = self._pending.setdefault(where, [0.0, 0.0])
                kept[0] += tokens
                kept[1] += cost
            raise

    def _keys_changed(self) -> None:
        """A key made or changed elsewhere: its spend is read now, not at the next sync."""
        with contextlib.suppress(RuntimeError):  # no running loop: the next sync reads it
            self._syncing = asyncio.get_running_loop().create_task(self._sync_spend())

    async def _spend_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(SPEND_SYNC)
            await self._sync_spend()

    async def _sync_spend(self) -> None:
        """The ledger's spend per key for its current period (one query per period in use)."""
        if self._database is None or not self.ring.by_id:
            return
        now = time.time()
        by_period: dict[Period, list[GatewayKey]] = {}
        for key in self.ring.by_id.values():
            by_period.setdefault(key.period, []).append(key)
        try:
            db = await self._database()
            fresh: dict[tuple[str, float], float] = {}
            for period, keys in by_period.items():
                start = period_bounds(period, now)[0]
                found = await spend_since(db, [k.name for k in keys], start)
                for key in keys:
                    fresh[(key.key_id, start)] = found.get(key.name, 0.0)
        except Exception as exc:
            log.info("gateway keys: cannot read spend from the ledger (%s); keeping the last read", exc)
            return
        self._ledger = fresh

    # -- what the dashboard and `/v1/keys` read --------------------------------------------------

    async def snapshot(self, keys: list[GatewayKey]) -> dict[str, Counts]:
        """Each key's counters now, by key id (Redis when there; never counts a request)."""
        now = time.time()
        minute = int(now // WINDOW)
        out: dict[str, Counts] = {}
        for key in keys:
            start = period_bounds(key.period, now)[0]
            out[key.key_id] = self._mine(key.key_id, minute).counts(self._spend.get((key.key_id, start), 0.0))
        link = self.link
        if link is not None and keys and link.usable():
            try:
                slots: list[str] = []
                for key in keys:
                    start = period_bounds(key.period, now)[0]
                    kid = key.key_id
                    slots += [
                        link.key("rl", kid, "r", str(minute - 1)),
                        link.key("rl", kid, "r", str(minute)),
                        link.key("rl", kid, "t", str(minute - 1)),
                        link.key("rl", kid, "t", str(minute)),
                        link.key("spend", kid, str(int(start))),
                    ]
                values: list[Any] = await link.redis.mget(slots)
                for i, key in enumerate(keys):
                    got = [float(v) if v is not None else 0.0 for v in values[5 * i : 5 * i + 5]]
                    out[key.key_id] = Counts(*got)
            except link.errors as exc:
                link.failed(exc, "rate limits and budgets are counted")
        for key in keys:
            start = period_bounds(key.period, now)[0]
            counts = out[key.key_id]
            counts.spend = max(counts.spend, self._ledger.get((key.key_id, start), 0.0))
        return out

    def rate(self, counts: Counts, now: float | None = None) -> tuple[float, float]:
        """(requests, tokens) in the sliding minute."""
        at = time.time() if now is None else now
        elapsed = at - int(at // WINDOW) * WINDOW
        return (
            math.floor(estimate(counts.requests_prev, counts.requests, elapsed) * 100) / 100,
            math.floor(estimate(counts.tokens_prev, counts.tokens, elapsed)),
        )
