"""The OpenAI Chat Completions front: POST /v1/chat/completions."""

from __future__ import annotations

from aiohttp import web

from dragoman.server.fronts import complete


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await complete(request, "openai")
