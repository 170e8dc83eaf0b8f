"""HTTP handlers, one module per client dialect (plus `meta` for dialect-free endpoints)."""

from __future__ import annotations

import hmac

from aiohttp import web

from dragoman.errors import AuthenticationFailed
from dragoman.gateway import Gateway

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
    if not given or not any(hmac.compare_digest(given.encode(), k.encode()) for k in keys):
        raise AuthenticationFailed(
            "missing or unknown gateway key: send one of server.api_keys as a Bearer token or x-api-key"
        )
