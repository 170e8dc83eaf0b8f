"""What `dragoman serve` prints once it listens: where, which providers, routes and aliases, where
usage is kept, who may call it, and what is shared. Never a key: only whether one is set."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dragoman.store.db import describe
from dragoman.store.paths import data_dir

if TYPE_CHECKING:
    from dragoman.gateway import Gateway


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def banner(gw: Gateway, host: str, port: int, workers: int) -> str:
    server = gw.config.server
    shown = f"[{host}]" if ":" in host else host
    lines = [f"dragoman listening on http://{shown}:{port} ({workers} worker{'s' if workers > 1 else ''})"]
    ready = [p for p in gw.providers.values() if p.available]
    waiting = [p.id for p in gw.providers.values() if not p.available]
    lines.append(
        "  providers: "
        + (", ".join(f"{p.id} ({p.dialect} at {_host(p.base_url)})" for p in ready) or "none with a key")
        + f"; default {server.default_provider}"
    )
    if waiting:
        lines.append(f"  without a key: {', '.join(waiting)}")
    for name, route in gw.config.routes.items():
        lines.append(f"  route {name}: {' | '.join(route.targets)} ({route.strategy})")
    if gw.config.aliases:
        lines.append("  aliases: " + ", ".join(f"{a} -> {t}" for a, t in gw.config.aliases.items()))
    store = server.usage_store
    if store == "sqlite":
        store = f"sqlite://{data_dir() / 'usage.db'}"
    store = "off" if store == "off" else describe(store)
    lines.append(f"  usage: {store} (retention {server.usage_retention_days or 'forever'} d)")
    keys = []
    if gw.keys is not None:
        active = sum(1 for k in gw.keys.by_id.values() if k.revoked is None)
        keys.append(f"{active} gateway key{'s' if active != 1 else ''}" if gw.keys.loaded else "gateway keys unknown")
    if server.api_keys:
        keys.append(f"{len(server.api_keys)} static key{'s' if len(server.api_keys) != 1 else ''}")
    keys.append("admin key set" if server.admin_key else "no admin key")
    lines.append("  auth: " + ", ".join(keys))
    if gw.redis is not None:
        lines.append(f"  redis: {gw.redis.description} (rate limits, budgets, cooldowns, reasoning)")
    elif server.shared_reasoning:
        lines.append(f"  reasoning memory: {describe(server.reasoning_url)}")
    extras = []
    if server.metrics:
        extras.append("/metrics" + ("" if server.metrics_public else " (admin)"))
    extras.append(f"access log {server.log_format}" if server.access_log else "no access log")
    lines.append("  " + ", ".join(extras))
    return "\n".join(lines)
