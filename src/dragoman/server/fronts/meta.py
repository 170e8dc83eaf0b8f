"""Endpoints that speak no particular completion dialect: models, providers, health, and the
answers for paths that are not endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dragoman.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound
from dragoman.gateway import Gateway
from dragoman.providers.base import Provider
from dragoman.server.fronts import check_client_key, error_response, gateway

CREATED_AT = "2026-01-01T00:00:00Z"  # the gateway does not know when a model was made


def _envelope(request: web.Request) -> str:
    """The envelope a dialect-free answer uses: Anthropic's for its paths and its SDK's header."""
    path = request.path
    while path.startswith("/v1/"):
        path = path[3:]
    return "anthropic" if path.startswith("/messages") or "anthropic-version" in request.headers else "openai"


async def _refused(request: web.Request) -> web.Response | None:
    try:
        await check_client_key(request)
    except GatewayError as exc:
        return error_response(exc, _envelope(request))
    return None


async def models(request: web.Request) -> web.Response:
    """Both list shapes: Anthropic's when the client sends `anthropic-version`, OpenAI's otherwise."""
    refused = await _refused(request)
    if refused is not None:
        return refused
    gw = gateway(request)
    listed = await gw.models.listed(gw)
    if "anthropic-version" not in request.headers:
        data = [{"id": m.id, "object": "model", "created": 0, "owned_by": m.owner} for m in listed]
        return web.json_response({"object": "list", "data": data})
    try:
        page, more = _page(request, [m.id for m in listed])
    except InvalidRequest as exc:
        return error_response(exc, "anthropic")
    return web.json_response(
        {
            "data": [{"type": "model", "id": mid, "display_name": mid, "created_at": CREATED_AT} for mid in page],
            "has_more": more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


def _page(request: web.Request, ids: list[str]) -> tuple[list[str], bool]:
    """Anthropic's paging: `after_id` / `before_id` and `limit` (every model when no limit is given)."""
    query = request.query
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None:
        ids = ids[ids.index(after) + 1 :] if after in ids else []
    if before is not None:
        ids = ids[: ids.index(before)] if before in ids else []
    if "limit" not in query:
        return ids, False
    try:
        limit = int(query["limit"])
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: must be a whole number from 1 to 1000", param="limit")
    if before is not None:  # the page that ends just before `before_id`
        return ids[-limit:], len(ids) > limit
    return ids[:limit], len(ids) > limit


def provider_rows(gw: Gateway) -> list[dict[str, Any]]:
    rows = []
    for pid, p in gw.providers.items():
        rows.append(
            {
                "id": pid,
                "title": p.spec.title,
                "dialect": _dialect(p),
                "base_url": p.base_url,
                "key_configured": bool(p.api_key),
                "available": p.available,
                "models": list(p.models),
                "aliases": dict(p.spec.aliases),
            }
        )
    return rows


def _dialect(p: Provider) -> str:
    """The wire format its default model is spoken in (a provider option may change it)."""
    try:
        return p.hooks.dialect_for(p, p.spec.default_model or "")
    except GatewayError:
        return p.dialect


async def providers(request: web.Request) -> web.Response:
    refused = await _refused(request)
    if refused is not None:
        return refused
    gw = gateway(request)
    return web.json_response(
        {"object": "list", "default_provider": gw.router.default_provider, "data": provider_rows(gw)}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def not_found(request: web.Request) -> web.Response:
    """404, or 405 with `Allow` when the path is an endpoint asked with another method."""
    allowed = sorted(
        {
            route.method
            for resource in request.app.router.resources()
            if resource.canonical == request.path
            for route in resource
        }
    )
    error: GatewayError = NotFound(f"no endpoint {request.method} {request.path}")
    if allowed:
        error = MethodNotAllowed(
            f"{request.path} accepts {' or '.join(allowed)}, not {request.method}",
            headers={"Allow": ", ".join(allowed)},
        )
    return error_response(error, _envelope(request))


async def doubled_v1(request: web.Request) -> web.Response:
    """`/v1/v1/...`: the client's base URL already ended in /v1 and its SDK added another."""
    rest = request.path.removeprefix("/v1/v1")
    base = f"{request.scheme}://{request.host}"
    error = NotFound(
        f"{request.path} has /v1 twice: the base URL given to the client already ends in /v1 and the client adds "
        f"its own. Set it to {base} for Anthropic clients (Claude Code's ANTHROPIC_BASE_URL) or {base}/v1 for "
        f"OpenAI clients; this endpoint is {rest}."
    )
    return error_response(error, _envelope(request))
