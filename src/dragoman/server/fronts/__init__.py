"""HTTP handlers, one module per client dialect (plus `meta` for dialect-free endpoints)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from dragoman.errors import AuthenticationFailed, GatewayError, InvalidRequest, UpstreamError, encode
from dragoman.gateway import Gateway

log = logging.getLogger("dragoman.server.fronts")

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def check_client_key(request: web.Request) -> None:
    """When `server.api_keys` is set, a request must carry one of them (either SDK's header)."""
    keys = request.app[GATEWAY].config.server.api_keys
    if not keys:
        return
    given = request.headers.get("x-api-key") or ""
    if not given:
        auth = request.headers.get("authorization") or ""
        given = auth[7:] if auth[:7].lower() == "bearer " else ""
    # surrogateescape: a header's undecodable bytes compare as themselves rather than raising
    presented = given.encode("utf-8", "surrogateescape")
    if not given or not any(hmac.compare_digest(presented, k.encode()) for k in keys):
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
    except RecursionError:  # a body nested within the decoder's reach but beyond a later stage's
        return error_response(InvalidRequest("request body nests JSON arrays or objects too deeply"), dialect)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(UpstreamError("internal gateway error", status=500), dialect)
