"""The HTTP server: the endpoint table, and running it on one or several worker processes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from dragoman.config import Config
from dragoman.gateway import Gateway
from dragoman.server.fronts import GATEWAY, anthropic, meta, openai
from dragoman.server.watchdog import SendWatchdog

log = logging.getLogger("dragoman.server")

ROUTES = [
    web.post("/v1/chat/completions", openai.chat_completions),
    web.post("/v1/messages", anthropic.messages),
    web.post("/v1/messages/count_tokens", anthropic.count_tokens),
    web.get("/v1/models", meta.models),
    web.get("/v1/providers", meta.providers),
    web.get("/health", meta.health),
    web.route("*", "/{tail:.*}", meta.not_found),
]


WATCHDOG: web.AppKey[SendWatchdog] = web.AppKey("send_watchdog", SendWatchdog)


def make_app(gw: Gateway) -> web.Application:
    # client_max_size is enforced by our own streaming reader (with a clear 413), not aiohttp's
    app = web.Application(client_max_size=gw.max_body + 1)
    app[GATEWAY] = gw
    app[WATCHDOG] = watchdog = SendWatchdog(gw.config.server.send_timeout)
    app.add_routes(ROUTES)
    app.on_cleanup.append(watchdog.stop)

    async def close_upstream(app: web.Application) -> None:
        await gw.close()

    app.on_cleanup.append(close_upstream)
    return app


async def start(
    gw: Gateway, host: str, port: int, *, reuse_port: bool = False, sock: socket.socket | None = None
) -> tuple[web.AppRunner, int]:
    """Start serving in the running loop; returns the runner and the bound port."""
    await gw.start()
    app = make_app(gw)
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        # bounds both an idle keep-alive connection and one whose request head trickles in: aiohttp
        # closes a connection still waiting for a complete head this long after it opened or last answered
        keepalive_timeout=gw.config.server.keepalive_timeout,
        auto_decompress=False,  # server.body decompresses, with a 400 for a body that lies
    )
    await runner.setup()
    app[WATCHDOG].watch(runner.server)
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    return runner, bound


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on platforms without it
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _worker(config: Config, host: str, port: int, reuse_port: bool, ready: Callable[[int], None] | None) -> None:
    install_uvloop()

    async def main() -> None:
        gw = Gateway.from_config(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # before "listening": a signal right after it is a clean stop
            loop.add_signal_handler(sig, stop.set)
        runner, bound = await start(gw, host, port, reuse_port=reuse_port)
        if ready is not None:
            ready(bound)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def _announce(host: str, workers: int) -> Callable[[int], None]:
    def ready(port: int) -> None:
        print(
            f"dragoman listening on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})",
            flush=True,
        )

    return ready


def serve(config: Config, host: str, port: int, workers: int = 1) -> None:
    if workers <= 1:
        _worker(config, host, port, False, _announce(host, 1))
        return
    # several processes share the port through SO_REUSEPORT: the kernel balances connections
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(config, host, port, True, _announce(host, workers) if i == 0 else None))
        for i in range(workers)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for p in procs:
        p.join()
