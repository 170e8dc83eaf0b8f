"""The ledger's table and its migrations.

A migration is frozen once released: a new column is a new `m00N_` step (ALTER TABLE ... ADD
COLUMN) plus its entry at the end of `COLUMNS`, never an edit of `m001`.
"""

from __future__ import annotations

from dragoman.store.db import Column, Tx, column_ddl
from dragoman.store.migrations import Migrations

TABLE = "usage_records"
KEY = "request_id"

_M001_COLUMNS: tuple[Column, ...] = (
    Column("request_id", "text", "PRIMARY KEY"),
    Column("time", "real", "NOT NULL"),
    Column("method", "text"),
    Column("path", "text"),
    Column("front", "text"),
    Column("model", "text"),
    Column("route", "text"),
    Column("rule", "text"),
    Column("provider", "text"),
    Column("upstream_model", "text"),
    Column("upstream_dialect", "text"),
    Column("passthrough", "bool"),
    Column("stream", "bool"),
    Column("status", "int"),
    Column("end_reason", "text"),  # Outcome.end (END is reserved in SQL)
    Column("error_type", "text"),
    Column("error", "text"),
    Column("attempts", "json"),
    Column("latency_ms", "real"),
    Column("ttfb_ms", "real"),
    Column("input_tokens", "int"),  # uncached input only
    Column("output_tokens", "int"),  # reasoning included
    Column("cache_read_tokens", "int"),
    Column("cache_write_tokens", "int"),
    Column("reasoning_tokens", "int"),
    Column("cost_usd", "real"),
    Column("key_name", "text"),
    Column("client", "text"),
    Column("user_agent", "text"),
    Column("stop_reason", "text"),
    Column("tool_calls", "int"),
    Column("instance", "text"),
    Column("request_body", "text"),
    Column("response_body", "text"),
)

# What the writer inserts: m001's columns, then whatever later migrations add.
COLUMNS: tuple[Column, ...] = _M001_COLUMNS

MIGRATIONS = Migrations("ledger")


@MIGRATIONS
async def m001_usage_records(tx: Tx) -> None:
    await tx.execute(f"CREATE TABLE {TABLE} ({column_ddl(tx.kind, _M001_COLUMNS)})")
    # `logs` and `usage` read recent rows, optionally for one provider, model or key; retention
    # deletes the oldest: every query walks one of these
    await tx.execute(f"CREATE INDEX {TABLE}_time ON {TABLE} (time)")
    await tx.execute(f"CREATE INDEX {TABLE}_provider_time ON {TABLE} (provider, time)")
    await tx.execute(f"CREATE INDEX {TABLE}_model_time ON {TABLE} (model, time)")
    await tx.execute(f"CREATE INDEX {TABLE}_key_time ON {TABLE} (key_name, time)")
