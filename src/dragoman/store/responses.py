"""Stored Responses (`store: true`): what `GET /v1/responses/{id}`, its `input_items`, `DELETE` and a
later turn's `previous_response_id` read. One row per response, in the usage store's database (SQLite
or PostgreSQL), in a migration group of its own.

    row = id, created, key_name, input (the turn's whole input, earlier turns' included), response

Writing happens off the reply path: `save` starts a task (which reads the reply and writes the row)
and returns; a later read in this process waits (bounded) for writes in flight first, so a client
that chains its next turn at once still finds its response. A write that fails is logged and
forgotten: the reply already went out. Rows older than `server.usage_retention_days` are deleted,
at most once an hour, by a write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from dragoman.store.db import Column, Database, StoreError, Tx, column_ddl
from dragoman.store.migrations import Migrations

log = logging.getLogger("dragoman.store.responses")

TABLE = "stored_responses"
WRITE_TIMEOUT = 10.0  # seconds a write may take before it is given up
PENDING_WAIT = 5.0  # seconds a read waits for this process's writes in flight
PRUNE_EVERY = 3600.0  # seconds between two retention passes

_COLUMNS: tuple[Column, ...] = (
    Column("id", "text", "PRIMARY KEY"),
    Column("created", "real", "NOT NULL"),
    Column("key_name", "text"),
    Column("input", "text", "NOT NULL"),  # JSON, kept as text: byte-exact sealed blobs
    Column("response", "text", "NOT NULL"),
)

MIGRATIONS = Migrations("responses")

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


@MIGRATIONS
async def m001_stored_responses(tx: Tx) -> None:
    await tx.execute(f"CREATE TABLE {TABLE} ({column_ddl(tx.kind, _COLUMNS)})")
    await tx.execute(f"CREATE INDEX {TABLE}_created ON {TABLE} (created)")


@dataclass(slots=True)
class Stored:
    id: str
    key_name: str | None
    input: list[Any]
    response: dict[str, Any]


class ResponseStore:
    """Stored responses over a database the caller opens (`Gateway.usage_database`)."""

    def __init__(self, database: Callable[[], Awaitable[Database]], retention_days: int = 0) -> None:
        self._database = database
        self._retention = retention_days * 86400.0
        self._pruned = 0.0
        self._ready: Database | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def _db(self) -> Database:
        db = await self._database()
        if self._ready is not db:
            await MIGRATIONS.apply(db)
            self._ready = db
        return db

    def save(self, make: Callable[[], Stored | None]) -> None:
        """Make the row (None: nothing to keep) and write it in the background; returns at once."""
        task = asyncio.create_task(self._write(make))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, make: Callable[[], Stored | None]) -> None:
        stored = None
        try:
            stored = make()
            if stored is not None:
                await asyncio.wait_for(self._insert(stored), WRITE_TIMEOUT)
        except (StoreError, TimeoutError) as exc:
            log.warning("could not store response %s: %s", stored.id if stored else "-", exc or "timed out")
        except Exception:
            log.exception("could not store response %s", stored.id if stored else "-")

    async def _insert(self, stored: Stored) -> None:
        db = await self._db()
        row = [
            stored.id,
            time.time(),
            stored.key_name,
            _enc.encode(stored.input).decode(),
            _enc.encode(stored.response).decode(),
        ]
        await db.insert_ignore(TABLE, _COLUMNS, [row], "id")
        now = time.time()
        if self._retention and now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            removed = await db.execute(f"DELETE FROM {TABLE} WHERE created < ?", [now - self._retention])
            if removed:
                log.info("deleted %d stored response(s) older than the retention", removed)

    async def _settled(self) -> None:
        if self._pending:  # writes are rare (one per stored response): wait for all of them
            await asyncio.wait(set(self._pending), timeout=PENDING_WAIT)

    async def get(self, rid: str) -> Stored | None:
        await self._settled()
        db = await self._db()
        rows = await db.fetch(f"SELECT id, key_name, input, response FROM {TABLE} WHERE id = ?", [rid])
        if not rows:
            return None
        row = rows[0]
        return Stored(row["id"], row["key_name"], _dec.decode(row["input"]), _dec.decode(row["response"]))

    async def delete(self, rid: str) -> bool:
        await self._settled()
        db = await self._db()
        return await db.execute(f"DELETE FROM {TABLE} WHERE id = ?", [rid]) > 0

    async def close(self) -> None:
        """Let writes in flight finish (bounded)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=WRITE_TIMEOUT)
