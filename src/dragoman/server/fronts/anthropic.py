"""The Anthropic Messages front: POST /v1/messages and /v1/messages/count_tokens."""

from __future__ import annotations

import logging

from aiohttp import web

from dragoman import dialects, tokens
from dragoman.errors import GatewayError, InvalidRequest, encode
from dragoman.providers.base import COUNT_TOKENS
from dragoman.server.body import read_json
from dragoman.server.fronts import complete, gateway, guarded

log = logging.getLogger("dragoman.server.fronts.anthropic")


async def messages(request: web.Request) -> web.StreamResponse:
    # the query string (Claude Code sends ?beta=true) carries nothing the gateway needs
    return await complete(request, "anthropic")


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """Forwarded to Anthropic-dialect providers that count; a local estimate otherwise (and when
    the upstream cannot answer). Always `{"input_tokens": n}`."""
    return await guarded(request, "anthropic", lambda: _count_tokens(request))


async def _count_tokens(request: web.Request) -> web.Response:
    gw = gateway(request)
    _, body = await read_json(request, gw.max_body, gw.config.server.body_timeout)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("`model` must be a non-empty string", param="model")
    if not isinstance(body.get("messages"), list):
        raise InvalidRequest("`messages` is required and must be an array", param="messages")
    model, _ = gw.router.choose_for(model, "anthropic", body)  # counted where the request would go
    route = gw.router.resolve(model)
    provider = route.provider
    url = provider.hooks.count_tokens_url(provider)
    if (
        url is not None
        and COUNT_TOKENS in provider.spec.capabilities
        and provider.hooks.dialect_for(provider, route.model) == "anthropic"
    ):
        forwarded = dict(body, model=route.model)
        headers = {"content-type": "application/json", **dialects.get("anthropic").request_headers(False)}
        client_key = gw.client_key(request.headers) if provider.client_auth else None
        key = gw.health.pick_key(provider, set())
        beta = request.headers.get("anthropic-beta")
        if beta is not None and not (beta.isascii() and beta.isprintable()):
            raise InvalidRequest("header anthropic-beta must be printable ASCII", param="anthropic-beta")
        headers.update(provider.request_headers(client_key, beta, key))
        try:
            up = await gw.upstream.send(
                "POST",
                url,
                headers,
                encode(forwarded),
                connect_timeout=provider.connect_timeout,
                first_byte_timeout=provider.first_byte_timeout,
                read_timeout=provider.timeout,
            )
            try:
                raw = await up.read()
            finally:
                up.close()
            if up.status == 200:
                return web.Response(body=raw, content_type="application/json")
            log.info("count_tokens upstream %s answered %s; estimating locally", provider.id, up.status)
        except GatewayError as exc:
            log.info("count_tokens upstream %s failed (%s); estimating locally", provider.id, exc.message)
    return web.json_response({"input_tokens": tokens.estimate_anthropic(body)})
