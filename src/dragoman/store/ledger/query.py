"""The ledger's read side: the last requests, totals grouped one way, totals over time buckets,
and latency percentiles.

All take an open `Database`; `dragoman logs`, `dragoman usage`, `GET /v1/usage` and the dashboard
call them. Everything is computed in SQL that SQLite and PostgreSQL both run.
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
from dragoman.store.ledger.schema import COLUMNS, TABLE

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


_BODIES = ("request_body", "response_body")
_WITHOUT_BODIES = ", ".join(c.name for c in COLUMNS if c.name not in _BODIES)


async def recent(
    db: Database,
    *,
    model: str | None = None,
    provider: str | None = None,
    status: str | int | None = None,
    since: float | None = None,
    limit: int = 50,
    bodies: bool = True,
) -> list[dict[str, Any]]:
    """The newest records first, filtered; `bodies=False` leaves the kept bodies in the store
    (they come back as None)."""
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
    sql = f"SELECT {'*' if bodies else _WITHOUT_BODIES} FROM {TABLE}"
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


# --- over time, and percentiles (the dashboard) --------------------------------------------------

SeriesBy = Literal["provider", "model", "key"]
SERIES_GROUPS: tuple[SeriesBy, ...] = ("provider", "model", "key")
# the provider that answered, else the one last tried: a failure counts against the provider it
# failed on (the outcome names a provider only once one answered)
_PROVIDER = {
    "sqlite": "COALESCE(provider, json_extract(attempts, '$[' || (json_array_length(attempts) - 1) || '].provider'))",
    "postgres": "COALESCE(provider, attempts->-1->>'provider')",
}
# the bucket a row falls in, as a whole number of steps since the epoch (PostgreSQL's CAST rounds)
_BUCKET = {"sqlite": "CAST(time / ? AS INTEGER)", "postgres": "CAST(floor(time / ?) AS BIGINT)"}
_TOKENS = (
    "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)"
    " + COALESCE(cache_read_tokens, 0) + COALESCE(cache_write_tokens, 0)"
)
STEPS = (10, 30, 60, 300, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400)
MAX_BUCKETS = 120
PERCENTILES = (50, 95, 99)


def bucket_step(span: float) -> int:
    """The smallest round step (seconds) that cuts `span` into at most `MAX_BUCKETS` buckets."""
    for step in STEPS:
        if span / step <= MAX_BUCKETS:
            return step
    return STEPS[-1] * max(1, int(span / (STEPS[-1] * MAX_BUCKETS)) + 1)


def _window(since: float, until: float | None) -> tuple[float, float]:
    end = time.time() if until is None else until
    if since >= end:
        raise QueryError("since must be before until")
    return since, end


async def series(
    db: Database,
    *,
    by: str = "provider",
    since: float,
    until: float | None = None,
    step: int | None = None,
    top: int = 8,
) -> dict[str, Any]:
    """Requests, errors, tokens (every kind) and cost per time bucket, one series per group.

    The `top` groups with the most requests in the window get a series each; the rest are summed
    into one series with `other: true` (client-chosen model names cannot grow the answer). A group
    whose value is unknown (no provider, no key) has key None. Buckets are contiguous from the one
    holding `since` to the one holding `until`, zero where nothing happened; a bucket's cost is None
    when it had requests but none of them had a known price."""
    if by not in SERIES_GROUPS:
        raise QueryError(f"by {by!r}: expected one of {', '.join(SERIES_GROUPS)}")
    if top < 1:
        raise QueryError("top must be at least 1")
    since, until = _window(since, until)
    step = step or bucket_step(until - since)
    if (until - since) / step > 10 * MAX_BUCKETS:
        raise QueryError(f"step {step}: too many buckets for that span")
    key = {"provider": _PROVIDER[db.kind], "model": _MODEL, "key": "key_name"}[by]
    group = f"COALESCE({key}, '')"  # NULL and '' fold together: the UI calls both "(none)"
    window = "time >= ? AND time < ?"
    ranked = await db.fetch(
        f"SELECT {group} AS g, COUNT(*) AS n FROM {TABLE} WHERE {window} GROUP BY {group} ORDER BY n DESC, g LIMIT ?",
        [since, until, top + 1],
    )
    keep = [r["g"] for r in ranked[:top]]
    folded = len(ranked) > top
    marks = ", ".join("?" * len(keep)) or "NULL"
    label = f"CASE WHEN {group} IN ({marks}) THEN {group} END"  # NULL: one of the folded groups
    rows = await db.fetch(
        f"SELECT {_BUCKET[db.kind]} AS bucket, {label} AS g, COUNT(*) AS requests, "
        f"SUM(CASE WHEN {_ERROR} THEN 1 ELSE 0 END) AS errors, "
        f"CAST(SUM({_TOKENS}) AS BIGINT) AS tokens, SUM(cost_usd) AS cost_usd "
        f"FROM {TABLE} WHERE {window} GROUP BY 1, 2",
        [float(step), *keep, since, until],
    )
    first, last = int(since // step), int(until // step)
    count = last - first + 1
    buckets = [(first + i) * step for i in range(count)]
    out: dict[str | None, dict[str, Any]] = {}
    for g in [*keep, *([None] if folded else [])]:
        out[g] = {
            "key": g or None,
            "other": g is None,
            "requests": [0] * count,
            "errors": [0] * count,
            "tokens": [0] * count,
            "cost_usd": [0.0] * count,
        }
    for row in rows:
        i = int(row["bucket"]) - first
        target = out.get(row["g"])
        if target is None or not 0 <= i < count:
            continue  # a row written between the two queries into a group that was not ranked
        target["requests"][i] += int(row["requests"])
        target["errors"][i] += int(row["errors"] or 0)
        target["tokens"][i] += int(row["tokens"] or 0)
        cost = row["cost_usd"]
        target["cost_usd"][i] = None if cost is None else round(float(cost), 10)
    return {
        "object": "usage.series",
        "by": by,
        "since": since,
        "until": until,
        "step": step,
        "buckets": buckets,
        "series": list(out.values()),
    }


def _percentile_sql(group: str, column: str, where: str) -> str:
    """Nearest-rank percentiles of `column` per group: the smallest value whose rank reaches p% of
    the group (integer arithmetic, so 95% of 20 rows is exactly rank 19)."""
    picks = ", ".join(f"MIN(CASE WHEN rn * 100 >= {p} * cnt THEN v END) AS p{p}" for p in PERCENTILES)
    return (
        f"SELECT g, {picks} FROM ("
        f"SELECT {group} AS g, {column} AS v, "
        f"ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY {column}) AS rn, "
        f"COUNT(*) OVER (PARTITION BY {group}) AS cnt "
        f"FROM {TABLE} WHERE {where} AND {column} IS NOT NULL) ranked GROUP BY g"
    )


async def provider_health(db: Database, *, since: float, until: float | None = None) -> list[dict[str, Any]]:
    """Per provider over the window: requests, errors, the error rate, and p50/p95/p99 of latency and
    of time to first byte over the requests that were answered (failures count in the error rate,
    not in the latency: a provider that fails fast must not look fast). A failure counts against
    the provider it was last tried on. Busiest first; provider None holds the requests that never
    reached one."""
    since, until = _window(since, until)
    window = "time >= ? AND time < ?"
    group = f"COALESCE({_PROVIDER[db.kind]}, '')"
    counts = await db.fetch(
        f"SELECT {group} AS g, COUNT(*) AS requests, "
        f"SUM(CASE WHEN {_ERROR} THEN 1 ELSE 0 END) AS errors "
        f"FROM {TABLE} WHERE {window} GROUP BY {group} ORDER BY requests DESC, g",
        [since, until],
    )
    answered = f"{window} AND NOT {_ERROR}"
    latency = {r["g"]: r for r in await db.fetch(_percentile_sql(group, "latency_ms", answered), [since, until])}
    ttfb = {r["g"]: r for r in await db.fetch(_percentile_sql(group, "ttfb_ms", answered), [since, until])}

    def picks(row: dict[str, Any] | None) -> dict[str, float | None]:
        return {f"p{p}": None if row is None or row[f"p{p}"] is None else float(row[f"p{p}"]) for p in PERCENTILES}

    out = []
    for r in counts:
        requests, errors = int(r["requests"]), int(r["errors"] or 0)
        out.append(
            {
                "provider": r["g"] or None,
                "requests": requests,
                "errors": errors,
                "error_rate": errors / requests if requests else 0.0,
                "latency_ms": picks(latency.get(r["g"])),
                "ttfb_ms": picks(ttfb.get(r["g"])),
            }
        )
    return out
