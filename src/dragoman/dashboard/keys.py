"""The gateway keys panel: every key with its limits and its spend against its budget.

Keys live in the usage store (`dragoman.store.keys`, from the operations work). This module is the
dashboard's one reader of them: where that module, or its table, is absent, there are no gateway
keys to show. Only the fields below leave; a key's hash never does.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import msgspec

from dragoman.store.db import Database, StoreError

FIELDS = (
    "name",
    "budget_usd",
    "period",
    "spent_usd",
    "resets_at",
    "rpm",
    "tpm",
    "models",
    "expires_at",
    "revoked",
    "created_at",
)


async def list_keys(db: Database) -> list[dict[str, Any]] | None:
    """The keys as rows of `FIELDS`, or None when the gateway has no key store."""
    try:
        store = importlib.import_module("dragoman.store.keys")
        lister = store.list_keys
    except (ImportError, AttributeError):
        return None
    try:
        rows = await lister(db)  # the one line to adapt to the key store's own signature
    except StoreError as exc:
        if _no_table(exc):
            return None
        raise
    return [_row(r) for r in rows]


def _no_table(exc: StoreError) -> bool:
    text = str(exc).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _row(value: Any) -> dict[str, Any]:
    if isinstance(value, msgspec.Struct):
        data = msgspec.structs.asdict(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    elif isinstance(value, dict):
        data = value
    else:
        data = {name: getattr(value, name, None) for name in FIELDS}
    return {name: data.get(name) for name in FIELDS}
