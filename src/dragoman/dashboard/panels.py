"""What the dashboard shows that is not a ledger query: the gateway's own state (in flight, the
ledger writer's counters, cooldowns), and the feed's view of a ledger record."""

from __future__ import annotations

import time
from typing import Any

from dragoman.gateway import Gateway
from dragoman.store import ledger
from dragoman.trip.outcome import instance_name

# what the feed shows of a record: never the kept bodies, never the whole user agent
FEED_FIELDS = (
    "request_id",
    "time",
    "method",
    "path",
    "front",
    "model",
    "route",
    "rule",
    "provider",
    "upstream_model",
    "stream",
    "passthrough",
    "status",
    "end",
    "error_type",
    "error",
    "latency_ms",
    "ttfb_ms",
    "usage",
    "cost_usd",
    "key_name",
    "client",
    "stop_reason",
    "tool_calls",
    "instance",
)
ATTEMPT_FIELDS = ("provider", "model", "key", "status", "latency_ms", "error_type")


def feed_row(record: dict[str, Any]) -> dict[str, Any]:
    row = {name: record.get(name) for name in FEED_FIELDS}
    row["attempts"] = [{name: a.get(name) for name in ATTEMPT_FIELDS} for a in record.get("attempts") or []]
    return row


def cooldowns(gw: Gateway, now: float | None = None) -> list[dict[str, Any]]:
    """Active cooldowns, soonest over first: targets (`provider/model`) and provider keys (by index)."""
    now = time.time() if now is None else now
    rows: list[dict[str, Any]] = []
    for name, until in gw.health.board.active().items():
        kind, _, rest = name.partition(":")
        label = rest
        if kind == "key":
            provider, _, index = rest.rpartition(":")
            label = f"{provider} key #{int(index) + 1}" if index.isdigit() else rest
        elif kind != "target":
            kind, label = "other", name
        rows.append({"kind": kind, "name": label, "until": until, "seconds_left": max(until - now, 0.0)})
    rows.sort(key=lambda r: r["until"])
    return rows


def status(gw: Gateway) -> dict[str, Any]:
    sink = ledger.find(gw)
    return {
        "time": time.time(),
        "instance": instance_name(),
        "inflight": len(gw.inflight),
        "draining": gw.draining,
        "providers": sorted(gw.providers),
        "store": None if sink is None else sink.description,
        "ledger": None if sink is None else sink.stats(),
        "cooldowns": cooldowns(gw),
    }
