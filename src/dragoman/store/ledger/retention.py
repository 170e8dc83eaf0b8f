"""Retention: delete rows older than the cutoff in small batches, so no statement holds the table
(or SQLite's single write lock) for long and the writer slips in between."""

from __future__ import annotations

import asyncio

from dragoman.store.db import Database
from dragoman.store.ledger.schema import TABLE

BATCH = 1000


async def prune(db: Database, before: float, batch: int = BATCH, pause: float = 0.01) -> int:
    """Delete every row whose `time` is before `before` (epoch seconds); returns how many."""
    if db.kind == "sqlite":
        sql = f"DELETE FROM {TABLE} WHERE rowid IN (SELECT rowid FROM {TABLE} WHERE time < ? LIMIT ?)"
    else:
        sql = f"DELETE FROM {TABLE} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {TABLE} WHERE time < ? LIMIT ?))"
    total = 0
    while True:
        removed = await db.execute(sql, [before, batch])
        total += removed
        if removed < batch:
            return total
        await asyncio.sleep(pause)
