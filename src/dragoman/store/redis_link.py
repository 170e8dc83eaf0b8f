"""One connection to the Redis that every worker and instance shares (`server.redis`).

Rate limits, budget counters and cooldowns go through a `RedisLink`. Redis is never allowed to take
the gateway down: calls have short timeouts and no retries of their own, and after a failure the link
is left alone for a while (1 s, doubling to 30 s) so requests do not each wait for a dead server.
While it is down every user falls back to what its instance knows by itself; the link logs when that
starts and when Redis is back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dragoman.store.db import describe

log = logging.getLogger("dragoman.redis")

TIMEOUT = 0.5  # seconds for a connection or a command: a healthy Redis on a LAN answers in < 1 ms
RETRY_MIN, RETRY_MAX = 1.0, 30.0


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a failing Redis raises through redis-py (its own errors, sockets, timeouts)."""
    import redis

    return (redis.RedisError, OSError, TimeoutError)


def client(url: str, *, timeout: float | None = TIMEOUT) -> Any:
    """A redis.asyncio client that fails fast instead of retrying (the link does the backing off)."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


class RedisLink:
    def __init__(self, url: str, prefix: str = "dragoman:") -> None:
        self.url = url
        self.description = describe(url)
        self.prefix = prefix
        self.redis: Any = client(url)
        self.errors = redis_errors()
        self.up = True
        self.failures = 0
        self._retry_at = 0.0
        self._backoff = RETRY_MIN

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def usable(self) -> bool:
        """Up, or down long enough that it is worth trying again."""
        return self.up or time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException, what: str) -> None:
        self.failures += 1
        if self.up:
            log.warning(
                "Redis %s unavailable (%s: %s): %s per instance until it is back",
                self.description,
                type(exc).__name__,
                exc,
                what,
            )
        self.up = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MAX)

    def succeeded(self) -> None:
        if not self.up:
            log.warning("Redis %s is back: limits, budgets and cooldowns are shared again", self.description)
        self.up = True
        self._backoff = RETRY_MIN

    async def close(self) -> None:
        try:
            await self.redis.aclose()
        except self.errors:
            pass
