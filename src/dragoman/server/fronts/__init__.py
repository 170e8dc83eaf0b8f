"""HTTP handlers, one module per client dialect (plus `meta` for dialect-free endpoints)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from dragoman.credentials import presented_keys
from dragoman.errors import AuthenticationFailed, GatewayError, UpstreamError, encode
from dragoman.gateway import Gateway

log = logging.getLogger("dragoman.server.fronts")

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def check_client_key(request: web.Request) -> None:
    """When `server.api_keys` is set, a request must carry one of them in either SDK's header (the
    other header may then carry the client's own provider key, see `dragoman.credentials`)."""
    gw = request.app[GATEWAY]
    if not gw.config.server.api_keys:
        return
    if not any(gw.is_gateway_key(k) for k in presented_keys(request.headers)):
        raise AuthenticationFailed(
            "missing or unknown gateway key: send one of server.api_keys as a Bearer token or x-api-key"
        )


def error_response(error: GatewayError, dialect: str) -> web.Response:
    """An error in the client's own envelope."""
    body = error.to_anthropic() if dialect == "anthropic" else error.to_openai()
    return web.Response(body=encode(body), status=error.status, content_type="application/json", headers=error.headers)


async def guarded(
    request: web.Request, dialect: str, handle: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Run a handler behind the client-key check; every failure leaves in the client's envelope."""
    try:
        check_client_key(request)
        return await handle()
    except GatewayError as exc:
        return error_response(exc, dialect)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(UpstreamError("internal gateway error", status=500), dialect)
