"""HTTP handlers, one module per client dialect (plus `meta` for dialect-free endpoints)."""

from __future__ import annotations

from aiohttp import web

from dragoman.gateway import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
