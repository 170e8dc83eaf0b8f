"""Numbered schema migrations, per store, recorded in the database they change.

Each store that keeps tables owns one `Migrations` group and registers its steps in order:

    ledger = Migrations("ledger")

    @ledger
    async def m001_usage(tx: Tx) -> None:
        await tx.execute("CREATE TABLE usage (...)")

`await ledger.apply(db)` runs, in one transaction under a lock named after the group, every step
not yet recorded in `dragoman_migrations (store, name)`, in the order registered: several workers
or instances starting together apply each step once. Groups are independent, so the gateway-keys
store or the Responses store add their own `Migrations("keys")`, `Migrations("responses")` to the
same database without coordinating numbers with the ledger.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

from dragoman.store.db import Database, Tx

Step = Callable[[Tx], Awaitable[None]]

_NAME = re.compile(r"^m(\d{3})_\w+$")


class Migrations:
    def __init__(self, store: str) -> None:
        self.store = store
        self.steps: list[tuple[str, Step]] = []
        self._last = 0

    def __call__(self, step: Step) -> Step:
        """Register a step; its function name (`m001_...`) is its permanent id and sets its order."""
        name = step.__name__
        match = _NAME.match(name)
        if match is None:
            raise ValueError(f"migration {name!r} must be named m<NNN>_<what>")
        number = int(match.group(1))
        if number <= self._last:
            raise ValueError(f"migration {name!r} must come after {self.steps[-1][0]!r}")
        self.steps.append((name, step))
        self._last = number
        return step

    async def apply(self, db: Database) -> list[str]:
        """Apply what is pending; returns the names applied now."""
        applied: list[str] = []
        async with db.transaction() as tx:
            await tx.lock(f"dragoman-migrations:{self.store}")
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS dragoman_migrations ("
                "store TEXT NOT NULL, name TEXT NOT NULL, applied_at REAL NOT NULL, PRIMARY KEY (store, name))"
            )
            rows = await tx.fetch("SELECT name FROM dragoman_migrations WHERE store = ?", [self.store])
            done = {r["name"] for r in rows}
            for name, step in self.steps:
                if name in done:
                    continue
                await step(tx)
                await tx.execute(
                    "INSERT INTO dragoman_migrations (store, name, applied_at) VALUES (?, ?, ?)",
                    [self.store, name, time.time()],
                )
                applied.append(name)
        return applied
