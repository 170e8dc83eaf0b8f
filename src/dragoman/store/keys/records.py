"""A gateway key as the gateway knows it, the key's text, and budget periods.

A key reads `sk-dgm-<id>-<secret>`: the `sk-` prefix makes every redaction in the gateway treat it
as a secret, `<id>` (12 hex digits) finds its row, and `<secret>` (256 random bits) is what only its
holder knows. The store keeps `sha256(key)`; a key is shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, Literal

import msgspec

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
PREFIX = "sk-dgm-"
_TOKEN = re.compile(r"^sk-dgm-([0-9a-f]{12})-[A-Za-z0-9_\-]{20,}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+\-]{0,63}$")


class GatewayKey(msgspec.Struct, kw_only=True):
    key_id: str
    name: str
    hash: str
    created: float
    expires: float | None = None
    revoked: float | None = None
    budget_usd: float | None = None
    period: Period = "month"
    rpm: int | None = None
    tpm: int | None = None
    models: list[str] | None = None  # globs; None: every model

    @property
    def limited(self) -> bool:
        """Whether anything about it is checked per request."""
        return self.budget_usd is not None or self.rpm is not None or self.tpm is not None or bool(self.models)

    def state(self, now: float) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"

    def allows(self, *names: str | None) -> bool:
        """Whether any of the names (as sent, the route, the targets) matches one of its globs."""
        if not self.models:
            return True
        return any(name and fnmatchcase(name, glob) for name in names for glob in self.models)


def new_token() -> tuple[str, str]:
    """(key id, the whole key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}-{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The id inside a gateway key; None for anything else (a provider's key, a typo)."""
    if not token.startswith(PREFIX):
        return None
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(key: GatewayKey, token: str) -> bool:
    return hmac.compare_digest(key.hash, digest(token))


_bounds: dict[Period, tuple[float, float]] = {}


def period_bounds(period: Period, now: float | None = None) -> tuple[float, float]:
    """The current budget period (UTC calendar: a day from midnight, a week from Monday, a month
    from the 1st) as (start, end) epoch seconds. Remembered until it ends: this is on every request."""
    at_epoch = time.time() if now is None else now
    cached = _bounds.get(period)
    if cached is not None and cached[0] <= at_epoch < cached[1]:
        return cached
    bounds = _compute_bounds(period, at_epoch)
    if now is None or abs(at_epoch - time.time()) < 1.0:
        _bounds[period] = bounds
    return bounds


def _compute_bounds(period: Period, epoch: float) -> tuple[float, float]:
    at = datetime.fromtimestamp(epoch, UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


def when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch else "-"


_SPAN = re.compile(r"^(\d+)\s*([hdw])$")


def parse_expiry(text: str, now: float | None = None) -> float:
    """`2026-12-31` (the end of that day, UTC), `2026-12-31T18:00`, or a span from now: `12h`,
    `30d`, `2w`. ValueError names what is accepted."""
    value = text.strip()
    base = time.time() if now is None else now
    span = _SPAN.match(value.lower())
    if span:
        return base + int(span.group(1)) * {"h": 3600, "d": 86_400, "w": 604_800}[span.group(2)]
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r}: expected a date (2026-12-31), a date and time (2026-12-31T18:00) or a span (12h, 30d, 2w)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if len(value) == 10:  # a bare date: valid through that day
        at += timedelta(days=1)
    return at.timestamp()


def to_row(key: GatewayKey) -> list[Any]:
    """In `schema.COLUMNS` order."""
    models = msgspec.json.encode(key.models).decode() if key.models else None
    return [
        key.key_id,
        key.name,
        key.hash,
        key.created,
        key.expires,
        key.revoked,
        key.budget_usd,
        key.period,
        key.rpm,
        key.tpm,
        models,
    ]


def from_row(row: dict[str, Any]) -> GatewayKey:
    raw = row.get("models")
    models: list[str] | None = msgspec.json.decode(raw, type=list[str]) if raw else None
    period = row.get("period") or "month"
    return GatewayKey(
        key_id=row["key_id"],
        name=row["name"],
        hash=row["hash"],
        created=float(row["created"]),
        expires=row.get("expires"),
        revoked=row.get("revoked"),
        budget_usd=row.get("budget_usd"),
        period=period if period in PERIODS else "month",
        rpm=row.get("rpm"),
        tpm=row.get("tpm"),
        models=models,
    )
