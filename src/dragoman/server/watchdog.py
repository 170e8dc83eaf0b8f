"""Client connections that stopped reading: aborted after `server.send_timeout` seconds.

A stream to a client that no longer reads blocks its handler in `drain()` for ever, holding the
upstream connection with it. Rather than a timer around every write (the hot path), one sweep every
few seconds looks at the connections whose writes are paused. Paused at every look with a write
buffer of exactly the same size, for `send_timeout` seconds, means the client is gone: while the
handler waits in `drain()` nothing is added to the buffer, so an unchanged size means nothing was
sent (a slow reader's buffer drains and refills between looks, to a different size). Aborting the
transport ends the handler, which closes its upstream connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger("dragoman.server")


class SendWatchdog:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.interval = min(max(timeout / 4, 0.05), 5.0)
        self.aborted = 0  # connections ended because their client stopped reading
        self._server: web.Server | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stuck: dict[Any, tuple[int, float]] = {}  # handler -> (write buffer size, paused since)

    def watch(self, server: web.Server | None) -> None:
        self._server = server
        if server is not None and self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.interval, self._sweep)

    async def stop(self, app: web.Application | None = None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stuck.clear()

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        stuck: dict[Any, tuple[int, float]] = {}
        server = self._server
        for handler in server.connections if server is not None else ():
            transport = handler.transport
            if transport is None or not handler.writing_paused:
                continue
            size = transport.get_write_buffer_size()
            before = self._stuck.get(handler)
            if before is None or size != before[0]:
                stuck[handler] = (size, now)  # newly paused, or it sent something: the clock starts again
            elif now - before[1] >= self.timeout:
                self.aborted += 1
                log.info("closing a client connection that read nothing for %g s", self.timeout)
                transport.abort()
            else:
                stuck[handler] = before
        self._stuck = stuck
        self._handle = loop.call_later(self.interval, self._sweep)
