"""Gateway keys ("virtual keys"): kept in the usage store, hashed; each with optional model globs,
RPM, TPM, a budget per day, week or month, and an expiry.

    records.py  a key, its text, periods        admin.py  create / list / revoke in the store
    ring.py     every key in memory (refreshed)  limits.py the checks before the upstream call, and
                                                           the sink that counts tokens and spend

`make_sink` is the built-in sink factory (observe/sinks.py); `key_rows` is what the dashboard and
`GET /v1/keys` show.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dragoman.store.keys.limits import Counts, Limits
from dragoman.store.keys.records import GatewayKey, period_bounds
from dragoman.store.keys.ring import KeyRing

if TYPE_CHECKING:
    from dragoman.gateway import Gateway

__all__ = ["Counts", "GatewayKey", "KeyRing", "Limits", "key_rows", "make_sink"]


def make_sink(gw: Gateway) -> Limits | None:
    """The key limits count what finished requests used; None when gateway keys are off."""
    return gw.limits


def describe_key(key: GatewayKey, counts: Counts | None, limits: Limits | None, now: float) -> dict[str, Any]:
    start, end = period_bounds(key.period, now)
    spend = counts.spend if counts is not None else 0.0
    requests, tokens = limits.rate(counts, now) if limits is not None and counts is not None else (0.0, 0.0)
    return {
        "name": key.name,
        "key_id": key.key_id,
        "state": key.state(now),
        "created": key.created,
        "expires": key.expires,
        "revoked": key.revoked,
        "budget_usd": key.budget_usd,
        "period": key.period,
        "period_start": start,
        "resets_at": end,
        "spend_usd": round(spend, 6),
        "remaining_usd": None if key.budget_usd is None else round(max(key.budget_usd - spend, 0.0), 6),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "models": key.models,
        "requests_last_minute": requests,
        "tokens_last_minute": tokens,
    }


async def key_rows(gw: Gateway) -> list[dict[str, Any]]:
    """Every gateway key with its limits and its spend against its budget this period, oldest first.
    Never the key itself nor its hash. Empty when gateway keys are off."""
    ring, limits = gw.keys, gw.limits
    if ring is None:
        return []
    keys = ring.all()
    counts = await limits.snapshot(keys) if limits is not None else {}
    now = time.time()
    return [describe_key(k, counts.get(k.key_id), limits, now) for k in keys]
