"""Endpoints that speak no particular completion dialect: models, providers, health."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dragoman.errors import GatewayError
from dragoman.gateway import Gateway
from dragoman.providers.base import Provider
from dragoman.server.fronts import check_client_key, error_response, gateway


def model_ids(gw: Gateway) -> list[tuple[str, str]]:
    """(model id as a client should name it, provider id) for every available provider."""
    out: list[tuple[str, str]] = []
    for pid, provider in gw.providers.items():
        if not provider.available:
            continue
        for model in provider.models:
            out.append((f"{pid}/{model}", pid))
        for alias in provider.spec.aliases:
            out.append((f"{pid}/{alias}", pid))
    for alias, target in gw.config.aliases.items():
        pid = target.partition("/")[0]
        if pid in gw.providers and gw.providers[pid].available:
            out.append((alias, pid))
    return out


def _refused(request: web.Request) -> web.Response | None:
    try:
        check_client_key(request)
    except GatewayError as exc:
        return error_response(exc, "anthropic" if "anthropic-version" in request.headers else "openai")
    return None


async def models(request: web.Request) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    ids = model_ids(gateway(request))
    if "anthropic-version" in request.headers:
        data: list[dict[str, Any]] = [
            {"type": "model", "id": mid, "display_name": mid, "created_at": "2026-01-01T00:00:00Z"} for mid, _ in ids
        ]
        return web.json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": mid, "object": "model", "created": 0, "owned_by": pid} for mid, pid in ids],
        }
    )


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
    refused = _refused(request)
    if refused is not None:
        return refused
    gw = gateway(request)
    return web.json_response(
        {"object": "list", "default_provider": gw.router.default_provider, "data": provider_rows(gw)}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def not_found(request: web.Request) -> web.Response:
    from dragoman.errors import NotFound, encode

    status = 404
    error = NotFound(f"no endpoint {request.method} {request.path}")
    if request.path in ("/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"):
        status = 405
        error = NotFound(f"{request.path} accepts POST, not {request.method}", status=405)
    anthropic = request.path.startswith("/v1/messages") or "anthropic-version" in request.headers
    body = error.to_anthropic() if anthropic else error.to_openai()
    return web.Response(body=encode(body), status=status, content_type="application/json")
