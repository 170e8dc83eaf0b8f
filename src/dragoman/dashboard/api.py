"""The dashboard's JSON endpoints, `GET /ui/api/<name>`. Each answers JSON, never cached; errors
come in OpenAI's envelope with the right status (401 without the key, 400 for a bad parameter,
404 when the ledger is off, 503 while the usage store is down)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from dragoman.dashboard import access, keys, panels
from dragoman.errors import GatewayError, InvalidRequest, NotFound, Overloaded, UpstreamError
from dragoman.gateway import Gateway
from dragoman.server.fronts import GATEWAY, error_response
from dragoman.store import ledger
from dragoman.store.db import Database, StoreError
from dragoman.store.ledger import query

log = logging.getLogger("dragoman.dashboard")

DEFAULT_SINCE = "1h"
MAX_SPAN = 366 * 86_400.0  # what one chart may cover
FEED_MAX = 200

Handler = Callable[[web.Request, Gateway], Awaitable[Any]]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def endpoint(fn: Handler, *, public: bool = False) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        gw = request.app[GATEWAY]
        try:
            if not public:
                await access.authorize(request)
            response = _json(await fn(request, gw))
        except GatewayError as exc:
            response = error_response(exc, "openai")
        except query.QueryError as exc:
            response = error_response(InvalidRequest(str(exc)), "openai")
        except StoreError as exc:
            log.warning("dashboard %s: %s", request.path, exc)
            response = error_response(Overloaded("the usage store is unavailable; try again shortly"), "openai")
        except Exception:
            log.exception("dashboard %s failed", request.path)
            response = error_response(UpstreamError("internal dashboard error", status=500), "openai")
        response.headers["cache-control"] = "no-store"
        return response

    return handle


async def _database(gw: Gateway) -> Database:
    sink = ledger.find(gw)
    if sink is None:
        raise NotFound('the usage ledger is off (server.usage_store = "off"): nothing to chart')
    return await sink.database()


def _since(request: web.Request) -> float:
    text = request.query.get("since") or DEFAULT_SINCE
    try:
        since = query.parse_since(text)
    except query.QueryError as exc:
        raise InvalidRequest(str(exc), param="since") from None
    if not time.time() - MAX_SPAN <= since < time.time():
        raise InvalidRequest(f"since {text!r}: must be in the past, at most 366 days ago", param="since")
    return since


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query.get(name) or default
    if value not in allowed:
        raise InvalidRequest(f"{name} {value!r}: expected one of {', '.join(allowed)}", param=name)
    return value


def _limit(request: web.Request) -> int:
    text = request.query.get("limit") or "50"
    if not text.isdigit() or not 1 <= int(text) <= FEED_MAX:
        raise InvalidRequest(f"limit {text!r}: expected a whole number from 1 to {FEED_MAX}", param="limit")
    return int(text)


async def session(request: web.Request, gw: Gateway) -> dict[str, Any]:
    """Public: which key the dashboard needs, and whether this request carried it."""
    return {"required": access.required(gw), "authorized": await access.authorized(request)}


async def status(request: web.Request, gw: Gateway) -> dict[str, Any]:
    """This instance's own state: in flight, the ledger writer, cooldowns (no store needed)."""
    return panels.status(gw)


async def feed(request: web.Request, gw: Gateway) -> dict[str, Any]:
    """The newest requests, newest first: `limit`, and optionally `provider`, `model`, `status`."""
    limit = _limit(request)
    get = request.query.get
    db = await _database(gw)
    try:
        records = await query.recent(
            db, limit=limit, bodies=False, provider=get("provider"), model=get("model"), status=get("status")
        )
    except query.QueryError as exc:
        raise InvalidRequest(str(exc), param="status") from None
    return {"object": "list", "data": [panels.feed_row(r) for r in records]}


async def series(request: web.Request, gw: Gateway) -> dict[str, Any]:
    """Requests, errors, tokens and cost per time bucket since `since`, by `by`."""
    since = _since(request)
    by = _choice(request, "by", query.SERIES_GROUPS, "provider")
    return await query.series(await _database(gw), by=by, since=since)


async def providers(request: web.Request, gw: Gateway) -> dict[str, Any]:
    """Totals, and per provider the error rate and latency / time-to-first-byte percentiles."""
    since = _since(request)
    db = await _database(gw)
    totals = await query.summary(db, by="provider", since=since)
    return {
        "since": since,
        "totals": totals["totals"],
        "providers": await query.provider_health(db, since=since),
    }


async def gateway_keys(request: web.Request, gw: Gateway) -> dict[str, Any]:
    """Gateway keys with limits and spend; `available: false` when there is no key store."""
    rows = await keys.list_keys(gw)
    return {"available": rows is not None, "data": rows or []}


ROUTES: tuple[tuple[str, Handler, bool], ...] = (
    ("session", session, True),
    ("status", status, False),
    ("feed", feed, False),
    ("series", series, False),
    ("providers", providers, False),
    ("keys", gateway_keys, False),
)
