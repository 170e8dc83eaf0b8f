"""The ledger's read side: the last requests, and totals grouped one way.

Both take an open `Database`; `dragoman logs`, `dragoman usage` and `GET /v1/usage` call them.
Records come back with the Outcome's field names (`rows.to_record`); totals count requests,
errors, tokens by kind (input is uncached input; output includes reasoning) and cost. A cost
is null where no row of the group had a known price, and `unpriced` counts the requests with
usage but no price, so a partial total never passes for a complete one.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

from dragoman.store.db import Database
from dragoman.store.ledger.rows import to_record
from dragoman.store.ledger.schema import TABLE

GroupBy = Literal["provider", "model", "key", "day", "client"]
GROUPS: tuple[GroupBy, ...] = ("provider", "model", "key", "day", "client")

# the model as it was billed (provider/upstream model) where known, else as the client named it
_MODEL = (
    "CASE WHEN provider IS NOT NULL AND upstream_model IS NOT NULL"
    " THEN provider || '/' || upstream_model ELSE model END"
)
_DAY = {
    "sqlite": "strftime('%Y-%m-%d', time, 'unixepoch')",
    "postgres": "to_char(to_timestamp(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
_ERROR = "(status >= 400 OR end_reason IN ('error', 'broken'))"
_STATUS_CLASS = re.compile(r"^([1-5])xx$")


class QueryError(ValueError):
    """A filter or grouping the ledger cannot answer (the message says what is accepted)."""


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str) -> float:
    """Epoch seconds from `90s`, `15m`, `2h`, `7d`, `2w` (that long ago), an ISO date or date-time
    (UTC unless it says otherwise), or epoch seconds themselves."""
    value = text.strip().lower()
    match = _SPAN.match(value)
    if match:
        return time.time() - float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"since {text!r}: expected a span (30m, 2h, 7d), a date (2026-12-01, 2026-12-01T09:00) or epoch seconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _status_filter(status: str | int) -> tuple[str, list[Any]]:
    text = str(status).strip().lower()
    if text == "ok":
        return f"NOT {_ERROR}", []
    if text == "error":
        return _ERROR, []
    if text.isdigit():
        return "status = ?", [int(text)]
    match = _STATUS_CLASS.match(text)
    if match:
        low = int(match.group(1)) * 100
        return "status >= ? AND status < ?", [low, low + 100]
    raise QueryError(f"status {status!r}: expected ok, error, a code (429) or a class (5xx)")


async def recent(
    db: Database,
    *,
    model: str | None = None,
    provider: str | None = None,
    status: str | int | None = None,
    since: float | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest records first, filtered."""
    if limit < 1:
        raise QueryError("limit must be at least 1")
    where: list[str] = []
    params: list[Any] = []
    if model:
        where.append(f"(model = ? OR upstream_model = ? OR {_MODEL} = ?)")
        params += [model, model, model]
    if provider:
        where.append("provider = ?")
        params.append(provider)
    if status is not None and status != "":
        clause, values = _status_filter(status)
        where.append(clause)
        params += values
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    sql = f"SELECT * FROM {TABLE}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY time DESC, request_id DESC LIMIT ?"
    params.append(limit)
    return [to_record(row) for row in await db.fetch(sql, params)]


def _totals_sql() -> str:
    return (
        "COUNT(*) AS requests, "
        f"SUM(CASE WHEN {_ERROR} THEN 1 ELSE 0 END) AS errors, "
        "CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, "
        "CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, "
        "CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, "
        "CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, "
        "CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, "
        "SUM(cost_usd) AS cost_usd, "
        "SUM(CASE WHEN cost_usd IS NULL AND input_tokens IS NOT NULL THEN 1 ELSE 0 END) AS unpriced"
    )


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: int(row.get(name) or 0)
        for name in (
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "unpriced",
        )
    }
    cost = row.get("cost_usd")
    out["cost_usd"] = None if cost is None else round(float(cost), 10)
    return out


async def summary(db: Database, *, by: str = "provider", since: float | None = None) -> dict[str, Any]:
    """Totals over every record since `since`, and the same per group."""
    if by not in GROUPS:
        raise QueryError(f"by {by!r}: expected one of {', '.join(GROUPS)}")
    key = {"provider": "provider", "model": _MODEL, "key": "key_name", "day": _DAY[db.kind], "client": "client"}[by]
    where, params = ("WHERE time >= ?", [since]) if since is not None else ("", [])
    totals = await db.fetch(f"SELECT {_totals_sql()} FROM {TABLE} {where}", params)
    order = "group_key" if by == "day" else "requests DESC, group_key"
    rows = await db.fetch(
        f"SELECT {key} AS group_key, {_totals_sql()} FROM {TABLE} {where} GROUP BY {key} ORDER BY {order}",
        params,
    )
    return {
        "object": "usage",
        "by": by,
        "since": since,
        "totals": _totals(totals[0] if totals else {}),
        "groups": [{"key": r["group_key"], **_totals(r)} for r in rows],
    }
