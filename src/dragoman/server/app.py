"""The HTTP server: the endpoint table, and running it on one or several worker processes."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dragoman import dashboard
from dragoman.config import Config
from dragoman.gateway import Gateway
from dragoman.observe import access, logs
from dragoman.observe.banner import banner
from dragoman.observe.metrics import multiprocess
from dragoman.server.fronts import GATEWAY, REQUEST_ID, admin, anthropic, meta, openai, responses, usage
from dragoman.server.listen import claim_port
from dragoman.server.watchdog import SendWatchdog

log = logging.getLogger("dragoman.server")

# Each API endpoint answers at /v1/<path> and at /<path>: clients disagree on whether a base URL
# ends in /v1, so both spellings of it work.
ENDPOINTS = [
    ("POST", "/chat/completions", openai.chat_completions),
    ("POST", "/messages", anthropic.messages),
    ("POST", "/messages/count_tokens", anthropic.count_tokens),
    ("POST", "/responses", responses.create),
    ("GET", "/responses", responses.upgrade),  # a WebSocket upgrade: 426, use HTTP
    ("GET", "/responses/{id}", responses.retrieve),
    ("DELETE", "/responses/{id}", responses.delete),
    ("GET", "/responses/{id}/input_items", responses.input_items),
    ("GET", "/models", meta.models),
    ("GET", "/providers", meta.providers),
    ("GET", "/usage", usage.usage),
    ("GET", "/keys", admin.list_keys),
    ("POST", "/keys", admin.create_key),
    ("DELETE", "/keys/{name}", admin.revoke_key),
]

ROUTES = [
    *(web.route(method, prefix + path, handler) for method, path, handler in ENDPOINTS for prefix in ("/v1", "")),
    web.get("/health", meta.health),
    web.get("/metrics", admin.metrics),
    web.route("*", "/v1/v1/{tail:.*}", meta.doubled_v1),  # a base URL that already ended in /v1
    web.route("*", r"/{tail:[\s\S]*}", meta.not_found),  # any path, a newline in it too
]


WATCHDOG: web.AppKey[SendWatchdog] = web.AppKey("send_watchdog", SendWatchdog)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


COMPLETIONS = frozenset({openai.chat_completions, anthropic.messages, responses.create})  # logged from their Outcome


def logged(log: access.AccessLog, handler: Handler) -> Handler:
    """A handler whose requests the access log shows (`plain`) unless an Outcome already did (its
    reply carries a request id)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            log.plain(request.method, request.path, exc.status, (time.perf_counter() - started) * 1000)
            raise
        if REQUEST_ID not in response.headers:
            log.plain(request.method, request.path, response.status, (time.perf_counter() - started) * 1000)
        return response

    return handle


def routes_for(gw: Gateway) -> list[web.RouteDef]:
    """ROUTES, the ones that are not completions wrapped for the access log when it is on."""
    log = access.find(gw)
    if log is None:
        return list(ROUTES)
    return [
        r if r.handler in COMPLETIONS else web.RouteDef(r.method, r.path, logged(log, r.handler), r.kwargs)
        for r in ROUTES
    ]


def make_app(gw: Gateway) -> web.Application:
    # client_max_size is enforced by our own streaming reader (with a clear 413), not aiohttp's
    app = web.Application(client_max_size=gw.max_body + 1)
    app[GATEWAY] = gw
    dashboard.mount(app, gw)  # /ui: the web dashboard, its own sub-application
    app[WATCHDOG] = watchdog = SendWatchdog(gw.config.server.send_timeout)
    app.add_routes(routes_for(gw))
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


def _worker(config: Config, host: str, port: int, workers: int, report: Any | None) -> None:
    """One serving process. `report` (several workers) is the parent's queue: ("ready", banner) once
    listening, ("failed", why) when it cannot; a single worker prints its banner itself."""
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
        try:
            runner, bound = await start(gw, host, port, reuse_port=workers > 1)
        except OSError as exc:
            await gw.close()
            if report is None:
                raise
            report.put(("failed", exc.strerror or str(exc)))
            return
        text = banner(gw, host, bound, workers)
        # what start-up made (modules, config, the catalog) lives as long as the process: out of the
        # collector's sight, so that its full collections walk only what requests leave behind
        gc.freeze()
        if report is not None:
            report.put(("ready", text))
        else:
            print(text, flush=True)
        await stop.wait()
        await drain(runner, gw, config.server.shutdown_grace, hurry)

    try:
        asyncio.run(main())
    finally:
        logs.flush()


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


def serve(config: Config, host: str, port: int, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM. Raises PortTaken when the port is not free (a second `serve` on
    it included), OSError when a worker cannot listen."""
    with claim_port(host, port) as port:
        if workers <= 1:
            _worker(config, host, port, 1, None)
            return
        _serve_workers(config, host, port, workers)


def _serve_workers(config: Config, host: str, port: int, workers: int) -> None:
    if not config.server.shared_reasoning:
        log.warning(
            "%d workers with the in-memory reasoning store: each worker remembers only the reasoning it saw, so a "
            "tool-call turn that lands on another worker cannot get it back; set server.redis (or "
            'server.reasoning_store) to a redis:// URL (pip install "dragoman[redis]") to share it',
            workers,
        )
    # several processes share the port through SO_REUSEPORT: the kernel balances connections
    ctx = multiprocessing.get_context("fork")
    report: Any = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(config, host, port, workers, report)) for _ in range(workers)]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        texts = _await_workers(procs, report)
        print(texts[0], flush=True)
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(10)
        if multiprocess():
            from prometheus_client import multiprocess as mp

            for p in procs:
                if p.pid is not None:
                    mp.mark_process_dead(p.pid)  # type: ignore[no-untyped-call]


def _await_workers(procs: list[Any], report: Any) -> list[str]:
    """Every worker's banner once all listen; OSError naming why when one cannot."""
    texts: list[str] = []
    while len(texts) < len(procs):
        try:
            kind, text = report.get(timeout=0.2)
        except queue.Empty:
            dead = [p for p in procs if not p.is_alive()]
            if dead:
                raise OSError(f"a worker exited with status {dead[0].exitcode} while starting") from None
            continue
        if kind == "failed":
            raise OSError(text)
        texts.append(text)
    return texts
