"""`GET /v1/usage`: the ledger's totals as JSON (what `dragoman usage --json` prints), for the
dashboard. Query parameters: `by` (provider, model, key, day, client) and `since` (30m, 7d, a
date, or epoch seconds). An admin endpoint (`server.auth.require_admin`)."""

from __future__ import annotations

import logging

from aiohttp import web

from dragoman.errors import GatewayError, InvalidRequest, NotFound, Overloaded, encode
from dragoman.server.fronts import check_admin, error_response, gateway
from dragoman.store import ledger
from dragoman.store.db import StoreError
from dragoman.store.ledger import query

log = logging.getLogger("dragoman.server.fronts")


async def usage(request: web.Request) -> web.Response:
    dialect = "anthropic" if "anthropic-version" in request.headers else "openai"
    try:
        await check_admin(request)
        sink = ledger.find(gateway(request))
        if sink is None:
            raise NotFound('the usage ledger is off (server.usage_store = "off")')
        by = request.query.get("by", "provider")
        since_text = request.query.get("since")
        try:
            since = query.parse_since(since_text) if since_text else None
            if by not in query.GROUPS:
                raise query.QueryError(f"by {by!r}: expected one of {', '.join(query.GROUPS)}")
        except query.QueryError as exc:
            raise InvalidRequest(str(exc), param="since" if str(exc).startswith("since") else "by") from None
        try:
            summary = await query.summary(await sink.database(), by=by, since=since)
        except StoreError as exc:
            log.warning("GET /v1/usage: %s", exc)
            raise Overloaded("the usage store is unavailable; try again shortly") from None
    except GatewayError as exc:
        return error_response(exc, dialect)
    return web.Response(body=encode(summary), content_type="application/json")
