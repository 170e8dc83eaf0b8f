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

from dragoman import dashboard
from dragoman.config import Config
from dragoman.gateway import Gateway
from dragoman.server.fronts import GATEWAY, anthropic, meta, openai, usage
from dragoman.server.watchdog import SendWatchdog

log = logging.getLogger("dragoman.server")

# Each API endpoint answers at /v1/<path> and at /<path>: clients disagree on whether a base URL
# ends in /v1, so both spellings of it work.
ENDPOINTS = [
    ("POST", "/chat/completions", openai.chat_completions),
    ("POST", "/messages", anthropic.messages),
    ("POST", "/messages/count_tokens", anthropic.count_tokens),
    ("GET", "/models", meta.models),
    ("GET", "/providers", meta.providers),
    ("GET", "/usage", usage.usage),
]

ROUTES = [
    *(web.route(method, prefix + path, handler) for method, path, handler in ENDPOINTS for prefix in ("/v1", "")),
    web.get("/health", meta.health),
    web.route("*", "/v1/v1/{tail:.*}", meta.doubled_v1),  # a base URL that already ended in /v1
    web.route("*", "/{tail:.*}", meta.not_found),
]


WATCHDOG: web.AppKey[SendWatchdog] = web.AppKey("send_watchdog", SendWatchdog)


def make_app(gw: Gateway) -> web.Application:
    # client_max_size is enforced by our own streaming reader (with a clear 413), not aiohttp's
    app = web.Application(client_max_size=gw.max_body + 1)
    app[GATEWAY] = gw
    dashboard.mount(app, gw)  # /ui: the web dashboard, its own sub-application
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
        shutdown_timeout=5.0,  # the drain has already waited for what was in flight
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
        signals = 0
        stop, hurry = asyncio.Event(), asyncio.Event()

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            (stop if signals == 1 else hurry).set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # before "listening": a signal right after it is a clean stop
            loop.add_signal_handler(sig, on_signal)
        runner, bound = await start(gw, host, port, reuse_port=reuse_port)
        if ready is not None:
            ready(bound)
        await stop.wait()
        await drain(runner, gw, config.server.shutdown_grace, hurry)

    asyncio.run(main())


async def drain(runner: web.AppRunner, gw: Gateway, grace: float, hurry: asyncio.Event) -> None:
    """Stop listening, let in-flight requests finish for up to `grace` seconds (a second signal
    cuts that short), end what is left with a proper error in each client's dialect, then flush the
    sinks and close."""
    gw.draining = True
    for site in list(runner.sites):
        await site.stop()
    if gw.inflight:
        log.warning("shutting down: waiting up to %.0f s for %d request(s) in flight", grace, len(gw.inflight))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while gw.inflight and not hurry.is_set():
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            await asyncio.wait_for(hurry.wait(), timeout=min(left, 0.05))
        except TimeoutError:
            pass
    if gw.inflight:
        log.warning("shutting down: ending %d request(s) still in flight", len(gw.inflight))
        for trip in list(gw.inflight):
            trip.abort("the gateway is shutting down")
        for _ in range(100):  # their error events go out
            if not gw.inflight:
                break
            await asyncio.sleep(0.02)
    await runner.cleanup()  # closes the gateway: the sinks flush what they hold


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
    if not config.server.shared_reasoning:
        log.warning(
            "%d workers with the in-memory reasoning store: each worker remembers only the reasoning it saw, so a "
            "tool-call turn that lands on another worker cannot get it back; set server.reasoning_store to a "
            'redis:// URL (pip install "dragoman[redis]") to share it',
            workers,
        )
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
