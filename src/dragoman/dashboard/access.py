"""Who may see the dashboard: the admin key when one is configured, else whoever passes the gateway's
own client-key check (`server.api_keys`), else everyone (a loopback gateway with no keys).

The key travels as a Bearer token (or `x-api-key`), never in a URL: the page keeps it in the
browser's sessionStorage and sends it with each API call.
"""

from __future__ import annotations

import hmac
from typing import Literal

from aiohttp import web

from dragoman.credentials import presented_keys
from dragoman.errors import AuthenticationFailed
from dragoman.gateway import Gateway
from dragoman.server.fronts import GATEWAY, check_client_key

Required = Literal["admin_key", "api_keys"] | None


def admin_key(gw: Gateway) -> str | None:
    # server.admin_key comes with the operations work; a config without it has none
    key = getattr(gw.config.server, "admin_key", None)
    return key if isinstance(key, str) and key else None


def required(gw: Gateway) -> Required:
    """Which key the dashboard asks for, if any."""
    if admin_key(gw):
        return "admin_key"
    if gw.config.server.api_keys:
        return "api_keys"
    return None


def authorize(request: web.Request) -> None:
    """Raise `AuthenticationFailed` unless the request carries the key the dashboard needs."""
    gw = request.app[GATEWAY]
    admin = admin_key(gw)
    if admin is None:
        check_client_key(request)
        return
    expected = admin.encode()
    if not any(hmac.compare_digest(given.encode(), expected) for given in presented_keys(request.headers)):
        raise AuthenticationFailed("missing or wrong admin key: the dashboard needs server.admin_key as a Bearer token")


def authorized(request: web.Request) -> bool:
    try:
        authorize(request)
    except AuthenticationFailed:
        return False
    return True
