"""The usage ledger: one row per finished request, in SQLite (default) or PostgreSQL.

`make_sink` is the built-in sink factory (`observe/sinks.py`); `query` is the read side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dragoman.config import ConfigError
from dragoman.store.ledger.sink import Ledger, LedgerCounters

if TYPE_CHECKING:
    from dragoman.gateway import Gateway

__all__ = ["Ledger", "LedgerCounters", "find", "make_sink"]


def make_sink(gw: Gateway) -> Ledger | None:
    """The ledger the config names; None when `server.usage_store = "off"`."""
    server = gw.config.server
    if server.usage_store == "off":
        return None
    if server.usage_store.startswith(("postgresql://", "postgres://")):
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise ConfigError(
                gw.config.path, "server.usage_store", "PostgreSQL needs asyncpg: pip install 'dragoman[postgres]'"
            ) from None
    return Ledger(
        server.usage_store,
        log_bodies=server.log_bodies,
        secrets=gw.secrets,  # every key of every provider, not only the first
        retention_days=server.usage_retention_days,
        journal_max_bytes=server.usage_journal_mb * 1024 * 1024,
    )


def find(gw: Gateway) -> Ledger | None:
    """The gateway's ledger sink, if it has one."""
    return next((s for s in gw.sinks.sinks if isinstance(s, Ledger)), None)
