"""The gateway keys' table, in the usage store beside the ledger (its own migration group).

Only a SHA-256 of each key is kept; `key_id` (the part of the key after `sk-dgm-`) finds the row.
A key is never deleted, only revoked: its name stays taken, so the ledger's `key_name` keeps
meaning one key.
"""

from __future__ import annotations

from dragoman.store.db import Column, Tx, column_ddl
from dragoman.store.migrations import Migrations

TABLE = "gateway_keys"

COLUMNS: tuple[Column, ...] = (
    Column("key_id", "text", "PRIMARY KEY"),
    Column("name", "text", "NOT NULL UNIQUE"),
    Column("hash", "text", "NOT NULL"),  # sha256 hex of the whole key
    Column("created", "real", "NOT NULL"),
    Column("expires", "real"),
    Column("revoked", "real"),
    Column("budget_usd", "real"),
    Column("period", "text"),  # day | week | month (UTC calendar)
    Column("rpm", "int"),
    Column("tpm", "int"),
    Column("models", "text"),  # a JSON array of globs; NULL: every model
)

MIGRATIONS = Migrations("keys")


@MIGRATIONS
async def m001_gateway_keys(tx: Tx) -> None:
    await tx.execute(f"CREATE TABLE {TABLE} ({column_ddl(tx.kind, COLUMNS)})")
