"""The gateway keys panel: every key with its limits and its spend against its budget.

Keys live in the usage store (`dragoman.store.keys`); this module picks the panel's fields from the
store's own description of each key (`key_rows`, also behind `GET /v1/keys`). Only the fields below
leave; neither a key nor its hash ever does.
"""

from __future__ import annotations

from typing import Any

from dragoman.gateway import Gateway
from dragoman.store.keys import key_rows

# panel field -> the key store's name for it
FIELDS = {
    "name": "name",
    "state": "state",
    "budget_usd": "budget_usd",
    "period": "period",
    "spent_usd": "spend_usd",
    "remaining_usd": "remaining_usd",
    "resets_at": "resets_at",
    "rpm": "rpm",
    "tpm": "tpm",
    "models": "models",
    "requests_last_minute": "requests_last_minute",
    "tokens_last_minute": "tokens_last_minute",
    "expires_at": "expires",
    "revoked": "revoked",
    "created_at": "created",
}


async def list_keys(gw: Gateway) -> list[dict[str, Any]] | None:
    """The keys as rows of `FIELDS`, or None when gateway keys are off."""
    if gw.keys is None:
        return None
    return [{name: row.get(source) for name, source in FIELDS.items()} for row in await key_rows(gw)]
