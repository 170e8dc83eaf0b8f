"""The OpenAI Chat Completions front: POST /v1/chat/completions."""

from __future__ import annotations

from aiohttp import web

from dragoman import pipeline
from dragoman.server.fronts import gateway, guarded


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await guarded(request, "openai", lambda: pipeline.complete(gateway(request), "openai", request))
