"""The bare reference pass-through: the practical limit of a Python proxy on aiohttp.

Per request it does the least any gateway must: read the body, parse it (msgspec), rewrite the model
(``provider/model`` -> ``model``), re-encode it, forward it to the upstream on one pooled
``aiohttp.ClientSession``, and stream the answer back chunk by chunk as it arrives. No translation:
``/v1/chat/completions`` goes to the upstream's ``/v1/chat/completions`` and ``/v1/messages`` to its
``/v1/messages``, whatever the model, so in the benchmark's translated scenarios it is the
pass-through ceiling, not a like-for-like.

Run: ``python bench/bare_proxy.py --port 4200 --upstream http://127.0.0.1:9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

import aiohttp
import msgspec
from aiohttp import web

from scenarios import API_KEY

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}
)


async def health(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def proxy(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        body = _decode.decode(raw)
    except msgspec.DecodeError as e:
        return web.json_response({"error": {"message": f"invalid JSON: {e}"}}, status=400)
    model = body.get("model", "")
    body["model"] = model.split("/", 1)[1] if "/" in model else model
    path = request.path
    if path == "/v1/messages":
        headers = {
            "x-api-key": API_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        }
    else:
        headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    session = request.app[SESSION]
    async with session.post(request.app[UPSTREAM] + path, data=_encode.encode(body), headers=headers) as up:
        if body.get("stream") is True:
            resp = web.StreamResponse(status=up.status)
            resp.content_type = up.content_type
            resp.headers["Cache-Control"] = "no-cache"
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        data = await up.read()
        return web.Response(
            status=up.status,
            body=data,
            headers={k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP},
        )


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None, keepalive_timeout=60)
    app[SESSION] = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
    )
    yield
    await app[SESSION].close()


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", proxy)
    app.router.add_post("/v1/messages", proxy)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="bare aiohttp pass-through proxy (benchmark reference)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4200)
    p.add_argument("--upstream", default="http://127.0.0.1:9100")
    args = p.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(f"bare proxy on http://{args.host}:{args.port} -> {args.upstream}", file=sys.stderr, flush=True)
    web.run_app(make_app(args.upstream), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
