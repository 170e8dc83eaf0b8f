"""policy: the attempts of one trip — which target next, retry or fall back, how long to wait.

    for each target, in the route's order (fallback | weighted | least-busy), cooled ones last:
        shape its request from the original body
        attempt; on failure, before any byte reached the client:
            429/401 with another key left     → the key cools down alone; at once, with the next key
            connection error, first-byte timeout, 408/429/5xx/529 (or x-should-retry: true)
                                              → retry the same target (backoff with jitter, or the
                                                upstream's retry-after), `server.retries` times
            context length exceeded           → the next target whose model takes more
            then                              → the next target (same classes of failure)
            any other 4xx                     → the client's error: no retry, no fallback
    every target failed                       → the last error, naming what was tried

Nothing is retried once a byte went to the client, and the transport never re-sends on its own: a
request the upstream may have accepted is sent again only when this policy decides so.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from dragoman.errors import GatewayError, InvalidRequest, Overloaded, Unsupported, is_context_overflow
from dragoman.routing import Route, Target
from dragoman.trip.exchange import SHUTTING_DOWN, Exchange, Result
from dragoman.trip.health import Health
from dragoman.trip.outcome import Attempt
from dragoman.trip.plan import Trip, shape
from dragoman.trip.reply import Reply

if TYPE_CHECKING:
    from dragoman.config import ServerConfig
    from dragoman.gateway import Gateway

log = logging.getLogger("dragoman.policy")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
KEY_STATUSES = frozenset({401, 429})  # answers about one key, not about the request or the provider
RETRY, FALLBACK, FATAL = "retry", "fallback", "fatal"


def classify(result: Result) -> str:
    """By the error the gateway made of the answer (a provider hook may have turned MiniMax's
    "insufficient balance" 500 into a 402 that must not be retried), and the upstream's hints."""
    error = result.error
    if result.status is None:
        return RETRY  # no answer: connection refused or lost, a timeout
    status = error.status if error is not None else result.status
    should = result.should_retry
    flag = error.headers.get("x-should-retry") if error is not None else None
    if flag is not None:
        should = flag.strip().lower() == "true"
    if should is True:
        return RETRY
    if status in RETRY_STATUSES:
        return RETRY if should is not False else FALLBACK
    if error is not None and is_context_overflow(error):
        return FALLBACK
    return FATAL


def backoff(server: ServerConfig, retry: int, retry_after: float | None) -> float | None:
    """Seconds before retry number `retry` (0-based); None when the upstream asks for longer than
    the gateway waits (the policy then falls back instead)."""
    if retry_after is not None:
        return retry_after if retry_after <= server.retry_after_max else None
    cap = min(server.retry_backoff * (2**retry), server.retry_backoff_max)
    return random.uniform(cap / 2, cap)


def ordered(route: Route, health: Health) -> list[Target]:
    targets = list(route.targets)
    if len(targets) < 2:
        return targets
    if route.strategy == "weighted" and route.weights:
        pool = list(zip(targets, route.weights, strict=True))
        targets = []
        while pool:
            total = sum(w for _, w in pool)
            if total <= 0:
                targets.extend(t for t, _ in pool)
                break
            pick = random.uniform(0, total)
            for i, (target, weight) in enumerate(pool):
                pick -= weight
                if pick <= 0 or i == len(pool) - 1:
                    targets.append(target)
                    pool.pop(i)
                    break
    elif route.strategy == "least-busy":
        targets.sort(key=health.busy)  # stable: ties keep the configured order
    return targets


async def run(gw: Gateway, trip: Trip, reply: Reply) -> None:
    """Attempt the trip's targets until one answers; raises the client's error otherwise."""
    health: Health = gw.health
    server = gw.config.server
    outcome = trip.outcome
    now = time.time()
    targets = trip.route.targets
    queue = ordered(trip.route, health) if len(targets) > 1 else targets
    if len(queue) > 1:
        blocked = [t for t in queue if health.blocked(t, now)]
        # cooling targets (and those another request is probing) wait at the back: tried only when
        # every healthy one failed, the soonest to recover first
        if blocked:
            queue = [t for t in queue if t not in blocked] + sorted(blocked, key=lambda t: health.cooling(t, now))
    recorded = gw.sinks.active  # the attempts are written down for the sinks alone
    last: Result | None = None
    tried: list[str] = []
    overflow_window: int | None = None  # the context window a request was too long for
    number = 0
    for target in queue:
        if overflow_window is not None:
            info = target.provider.info(target.model)
            window = info.context_window if info is not None else None
            if window is not None and window <= overflow_window:
                continue
        if not health.quiet():
            health.attempting(target, time.time())  # the probe of a cooldown that just ended
        try:
            shaped = await shape(gw, trip, target)
        except Unsupported as exc:
            if len(queue) == 1:
                raise
            log.info("%s cannot take this request: %s", target.label, exc.message)
            outcome.attempts.append(_attempt(target, 0, None, exc))
            last = Result(ok=False, error=exc, status=exc.status)
            tried.append(target.label)
            continue
        tried.append(target.label)
        # what the outcome names if this target is the last one tried (the answering attempt
        # writes the same fields again)
        outcome.provider = target.provider.id
        outcome.upstream_model = target.model
        outcome.upstream_dialect = shaped.dialect
        outcome.passthrough = shaped.passthrough
        keys_tried: set[int] = set()
        retries = 0
        counted = health.count_load
        if counted:
            health.enter(target)
        several_keys = len(target.provider.api_keys) > 1
        try:
            while True:
                number += 1
                key = health.pick_key(target.provider, keys_tried) if several_keys else 0
                exchange = Exchange(gw, trip, shaped, key, reply, number)
                try:
                    result = await exchange.run()
                except asyncio.CancelledError:  # the client left mid-attempt: the record still says where
                    waited = exchange.head_ms or (time.perf_counter() - exchange.sent_at) * 1000
                    outcome.attempts.append(
                        Attempt(
                            provider=target.provider.id,
                            model=target.model,
                            key=key,
                            status=exchange.head_status,
                            latency_ms=round(waited, 2),
                        )
                    )
                    raise
                if recorded:
                    outcome.attempts.append(_attempt(target, key, result, result.error))
                if result.ok:
                    if not health.quiet():
                        health.succeeded(target)
                    return
                last = result
                kind = classify(result)
                overflow = result.error is not None and is_context_overflow(result.error)
                if kind == FATAL or overflow:
                    # the upstream answered and the request was at fault (a bad request, a prompt
                    # too long for this model): no failure of the target, and a probe is over
                    health.succeeded(target)
                else:
                    health.failed(target)
                if result.committed:
                    return  # the client has its error event; nothing may be sent again
                if trip.aborted is not None:
                    raise Overloaded(SHUTTING_DOWN, status=503)
                if result.status in KEY_STATUSES and several_keys:
                    health.key_refused(target.provider, key, result.retry_after or target.provider.cooldown)
                    keys_tried.add(key)
                    if health.usable_keys(target.provider, keys_tried):
                        continue  # the same request with another key, at once
                if kind == FATAL:
                    assert result.error is not None
                    raise _final(result.error, tried, number, outcome.provider)
                if kind == FALLBACK and overflow:
                    info = target.provider.info(target.model)
                    overflow_window = info.context_window if info is not None and info.context_window else 0
                    break
                if kind == RETRY and retries < server.retries:
                    wait = backoff(server, retries, result.retry_after)
                    if wait is not None:
                        retries += 1
                        log.info(
                            "%s: %s; retry %d in %.2f s",
                            target.label,
                            result.error.message if result.error else result.status,
                            retries,
                            wait,
                        )
                        await asyncio.sleep(wait)
                        continue
                break  # the next target, if any
        finally:
            if counted:
                health.leave(target)
    if last is None or last.error is None:
        raise InvalidRequest(f"model {trip.model!r}: no target of this route can take the request", param="model")
    raise _final(last.error, tried, number, outcome.provider)


def _attempt(target: Target, key: int, result: Result | None, error: GatewayError | None) -> Attempt:
    return Attempt(
        provider=target.provider.id,
        model=target.model,
        key=key,
        status=result.status if result is not None else None,
        latency_ms=int(result.latency_ms * 100 + 0.5) / 100 if result is not None else 0.0,  # (not round(): see fronts)
        error_type=error.anthropic_type if error is not None else None,
        error=error.message[:500] if error is not None else None,
    )


def _final(error: GatewayError, tried: list[str], attempts: int, provider: str | None) -> GatewayError:
    """The error the client gets: the last one, naming what was tried when it was more than one;
    its headers say, like a success's, which provider answered last and after how many attempts."""
    if len(tried) > 1:
        error.message = f"{error.message} (every target failed: {', '.join(tried)}; {attempts} attempts)"
    elif attempts > 1:
        error.message = f"{error.message} ({attempts} attempts)"
    error.headers = {**error.headers, "x-dragoman-attempts": str(attempts)}
    if provider is not None:
        error.headers["x-dragoman-provider"] = provider
    return error
