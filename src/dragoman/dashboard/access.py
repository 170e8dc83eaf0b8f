"""Who may see the dashboard: whoever the admin endpoints admit (`server.auth.require_admin`): the
admin key when one is configured, else one of `server.api_keys`, else everyone while the gateway asks
no key at all (a loopback gateway with no keys).

The key travels as a Bearer token (or `x-api-key`), never in a URL: the page keeps it in the
browser's sessionStorage and sends it with each API call.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from dragoman.errors import GatewayError
from dragoman.gateway import Gateway
from dragoman.server.auth import keys_required, require_admin
from dragoman.server.fronts import GATEWAY

Required = Literal["admin_key", "api_keys"] | None


def required(gw: Gateway) -> Required:
    """Which key the dashboard asks for, if any."""
    server = gw.config.server
    if server.admin_key:
        return "admin_key"
    if server.api_keys:
        return "api_keys"
    return "admin_key" if keys_required(gw) else None  # gateway keys alone never open the admin side


async def authorize(request: web.Request) -> None:
    """Raise the client's 401/403 unless the request carries the key the dashboard needs."""
    await require_admin(request, request.app[GATEWAY])


async def authorized(request: web.Request) -> bool:
    try:
        await authorize(request)
    except GatewayError:
        return False
    return True
