"""Making, listing and revoking gateway keys in the store (`dragoman keys`, `/v1/keys`)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from dragoman.store.db import Database
from dragoman.store.keys.records import NAME, PERIODS, GatewayKey, Period, digest, from_row, new_token, to_row
from dragoman.store.keys.schema import COLUMNS, MIGRATIONS, TABLE
from dragoman.store.ledger.schema import MIGRATIONS as LEDGER_MIGRATIONS
from dragoman.store.ledger.schema import TABLE as USAGE_TABLE


class KeyProblem(ValueError):
    """A key that cannot be made or found; the message says why."""


async def prepare(db: Database) -> None:
    """Both tables exist: the keys', and the ledger's their spend is read from."""
    await LEDGER_MIGRATIONS.apply(db)
    await MIGRATIONS.apply(db)


async def create_key(
    db: Database,
    name: str,
    *,
    budget_usd: float | None = None,
    period: Period = "month",
    rpm: int | None = None,
    tpm: int | None = None,
    models: Sequence[str] | None = None,
    expires: float | None = None,
    now: float | None = None,
) -> tuple[GatewayKey, str]:
    """A new key: its record and its text (shown once, never stored)."""
    if not NAME.match(name):
        raise KeyProblem(f"name {name!r}: 1-64 letters, digits and . _ @ : + - (starting with a letter or digit)")
    if period not in PERIODS:
        raise KeyProblem(f"period {period!r}: one of {', '.join(PERIODS)}")
    for label, value in (("budget", budget_usd), ("rpm", rpm), ("tpm", tpm)):
        if value is not None and value <= 0:
            raise KeyProblem(f"{label} must be above 0")
    globs = [m.strip() for m in models or () if m.strip()] or None
    created = time.time() if now is None else now
    if expires is not None and expires <= created:
        raise KeyProblem("it would expire before it is made")
    await prepare(db)
    existing = await db.fetch(f"SELECT revoked FROM {TABLE} WHERE name = ?", [name])
    if existing:
        state = "a revoked key" if existing[0]["revoked"] is not None else "a key"
        raise KeyProblem(f"{state} named {name!r} exists; names are never reused (the ledger keeps them)")
    key_id, token = new_token()
    key = GatewayKey(
        key_id=key_id,
        name=name,
        hash=digest(token),
        created=created,
        expires=expires,
        budget_usd=budget_usd,
        period=period,
        rpm=rpm,
        tpm=tpm,
        models=globs,
    )
    names = ", ".join(c.name for c in COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    await db.execute(f"INSERT INTO {TABLE} ({names}) VALUES ({marks})", to_row(key))
    return key, token


async def load_keys(db: Database) -> list[GatewayKey]:
    await prepare(db)
    rows = await db.fetch(f"SELECT * FROM {TABLE} ORDER BY created, name")
    return [from_row(r) for r in rows]


async def revoke_key(db: Database, name: str, now: float | None = None) -> GatewayKey:
    await prepare(db)
    at = time.time() if now is None else now
    changed = await db.execute(f"UPDATE {TABLE} SET revoked = ? WHERE name = ? AND revoked IS NULL", [at, name])
    rows = await db.fetch(f"SELECT * FROM {TABLE} WHERE name = ?", [name])
    if not rows:
        raise KeyProblem(f"no key named {name!r}")
    key = from_row(rows[0])
    if not changed and key.revoked is not None and key.revoked != at:
        raise KeyProblem(f"the key {name!r} was already revoked")
    return key


async def spend_since(db: Database, names: Sequence[str], since: float) -> dict[str, float]:
    """What the ledger has recorded for these key names since then (USD; unknown prices count 0)."""
    if not names:
        return {}
    marks = ", ".join("?" * len(names))
    rows = await db.fetch(
        f"SELECT key_name, SUM(cost_usd) AS spend FROM {USAGE_TABLE} "
        f"WHERE time >= ? AND key_name IN ({marks}) GROUP BY key_name",
        [since, *names],
    )
    return {r["key_name"]: float(r["spend"] or 0.0) for r in rows}
