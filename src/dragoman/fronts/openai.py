"""The OpenAI Chat Completions front: POST /v1/chat/completions."""

from __future__ import annotations

import logging

from aiohttp import web

from dragoman import pipeline
from dragoman.errors import GatewayError, UpstreamError, encode
from dragoman.fronts import check_client_key, gateway

log = logging.getLogger("dragoman.fronts.openai")


def error_response(error: GatewayError) -> web.Response:
    return web.Response(
        body=encode(error.to_openai()),
        status=error.status,
        content_type="application/json",
        headers=error.headers,
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        check_client_key(request)
        return await pipeline.complete(gateway(request), "openai", request)
    except GatewayError as exc:
        return error_response(exc)
    except Exception:
        log.exception("unexpected error in /v1/chat/completions")
        return error_response(UpstreamError("internal gateway error", status=500))
