"""The one seam between the gateway and the network: send a request, get a status, headers and
an async byte stream back. It takes primitives (method, URL, headers, body, timeouts) and knows
nothing of providers; callers add that context to its errors.

Why not aiohttp's client: at concurrency 1 a gateway is bounded by its HTTP client's per-request
cost, and `ClientSession.request` (its set-up, tracing hooks, timers, response machinery) was the
largest item in the profile. This is a minimal HTTP/1.1 client on raw asyncio (uvloop) transports
with llhttp (httptools) as the parser: one keep-alive pool per (scheme, host, port), idle connections
reused last-in first-out and bounded per host and in total, closed by a timer when their keep-alive
runs out, checked for a peer that has closed them before a request is written on them; the request
written in one `write`, the body handed over as it arrives with flow control, gzip/deflate undone.

A request is never sent twice here: a connection lost before the reply is an
`UpstreamConnectionLost` saying whether it was a reused connection, and the caller's policy
decides. Network failures become gateway errors (unreachable → 502, timeout → 504, each saying
whether the request may have reached the upstream) so that nothing above this module ever sees an
OSError or a parser exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools

from dragoman.errors import (
    GatewayError,
    TimeoutPhase,
    UpstreamConnectionLost,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from dragoman.transport.wire import HOP, Headers, keepalive_hint, request_head, target

HIGH_WATER = 256 * 1024  # buffered body bytes above which the socket is paused until the consumer reads
KEEPALIVE = 60.0  # seconds an idle pooled connection is trusted for (less when the server says so)
MAX_IDLE_PER_HOST = 64  # idle connections kept per (scheme, host, port)
MAX_IDLE = 256  # idle connections kept in all
# how a connection failed, turned into an error by `_Conn.error` with what the caller was doing
LOST, MALFORMED = "lost", "malformed"
_POLL = hasattr(select, "poll")
# A connection parked less than this ago is reused without asking the socket whether the peer
# closed it (a system call per request at load): a server closes an idle connection after its
# keep-alive timeout, seconds; one that closes at once without saying so fails the request as lost
# before any reply on a reused connection, which the policy retries (`server.retries`).
FRESH = 0.05
_HOP = frozenset(HOP)


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection: parser callbacks fill the current response; consumers wait on it.

    One timer per connection, re-armed only when due: while a request waits for its first body
    byte it enforces the first-byte deadline, then the gap between bytes (only while the consumer
    waits: a slow consumer is not a slow upstream), and while idle in the pool the keep-alive."""

    def __init__(self, upstream: Upstream, key: tuple[str, str, int]) -> None:
        self.upstream = upstream
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.fd = -1
        self.poller: Any = None  # select.poll on `fd`, made once: `alive` asks it before each reuse
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.pooled = False
        self.reused = False  # the current request went out on a connection that had served another
        self.idle_since = 0.0
        self.keepalive = upstream.keepalive
        self.first_byte_deadline = 0.0
        self.first_byte_timeout = 0.0
        self.read_timeout = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0  # set once the final (non-1xx) head is parsed
        self.headers = Headers()
        self.body: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.failed: str | None = None
        self.timed_out: TimeoutPhase | None = None
        self.received = False  # any byte of this request's response
        self.awaiting_body = True  # no byte of the body yet: the first-byte deadline applies
        self.keep_alive = True
        self.until_eof = False  # close-delimited body
        self.decomp: zlib._Decompress | None = None
        self.last = 0.0

    # -- protocol --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not registered subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.fd = sock.fileno()
                if _POLL:
                    self.poller = select.poll()
                    self.poller.register(self.fd, select.POLLIN)

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            self.keep_alive = False  # bytes nobody asked for: this connection cannot be trusted
            if not self.busy:
                self.abort()
            return
        self.received = True
        self.last = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # after a complete reply: junk, so the connection is not kept
            self._fail(MALFORMED)

    def eof_received(self) -> bool | None:
        return None  # close; connection_lost settles a close-delimited body

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pooled:
            self.upstream._forget(self)
        elif self.busy and not self.complete and self.failed is None:
            if self.until_eof and self.status:
                self.on_message_complete()
            else:
                self._fail(LOST)
        self._stop_timer()
        self.upstream._conns.discard(self)

    # -- parser callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            raise httptools.HttpParserError("a second response")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = dict.get(self.headers, key)
        dict.__setitem__(self.headers, key, text if old is None else f"{old}, {text}")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            self.headers = Headers()  # an interim 1xx answer: the real one follows
            return
        h = self.headers
        self.keep_alive = self.parser.should_keep_alive()
        framed = dict.__contains__(h, "content-length") or dict.__contains__(h, "transfer-encoding")
        if not framed and status not in (204, 304):
            self.until_eof = True
            self.keep_alive = False
        if dict.get(h, "content-encoding", "").strip().lower() in ("gzip", "x-gzip", "deflate"):
            self.decomp = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or a zlib header, whichever comes
            dict.pop(h, "content-encoding")
            dict.pop(h, "content-length", None)  # describes the wire, not what the caller gets
        hint = dict.get(h, "keep-alive")
        if hint is not None:
            self.keepalive = keepalive_hint(hint, self.upstream.keepalive)
        for name in _HOP.intersection(h):  # in C: most replies carry one of them, if any
            dict.pop(h, name)
        self.status = status
        self._wake()

    def on_body(self, data: bytes) -> None:
        if not self.status:
            return
        if self.awaiting_body:
            self._body_began()
        if self.decomp is not None:
            try:
                data = self.decomp.decompress(data)
            except zlib.error:
                self._fail(MALFORMED)
                raise httptools.HttpParserError("bad compressed body") from None
            if not data:
                return
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if self.waiter is not None:
            self._wake()

    def on_message_complete(self) -> None:
        if not self.status or self.failed is not None:
            return  # the end of a 1xx, or of a reply already given up on
        if self.decomp is not None:
            tail = self.decomp.flush()
            if tail:
                self.body.append(tail)
            self.decomp = None
        self.complete = True
        self._wake()

    # -- consumer side ---------------------------------------------------------------------------
    def start(self, data: bytes, first_byte_timeout: float, read_timeout: float, reused: bool) -> None:
        assert self.transport is not None
        self.busy = True
        self.reused = reused
        self.first_byte_timeout = first_byte_timeout
        self.read_timeout = read_timeout
        now = self.last = self.loop.time()
        self.first_byte_deadline = now + first_byte_timeout
        if self.timer is None or self.deadline > self.first_byte_deadline:
            self._arm(self.first_byte_deadline)
        self.transport.write(data)

    def _body_began(self) -> None:
        self.awaiting_body = False
        due = self.loop.time() + self.read_timeout
        if self.timer is None or self.deadline > due:
            self._arm(due)  # once per request: from here on the gap between bytes is what counts

    async def wait(self) -> None:
        """Until the parser or the network has something new for the consumer."""
        self.waiter = self.loop.create_future()
        self.last = self.loop.time()  # the idle clock runs while someone waits
        try:
            await self.waiter
        except BaseException:
            self.abort()
            raise
        finally:
            self.waiter = None

    def take(self) -> bytes:
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        self.buffered = 0
        if self.paused:
            self.paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return data

    def release(self) -> None:
        """The response is over: back to the pool if the connection can carry another."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not (self.complete and self.keep_alive):
            transport.close()
            return
        self.busy = False
        self._reset()
        self.idle_since = self.loop.time()
        self.upstream._park(self)
        expires = self.idle_since + self.keepalive
        # the timer left from the request will do if it is due within another keep-alive: one
        # re-arm fewer per request, and an expired connection is never reused meanwhile (`_unpark`)
        if self.pooled and (self.timer is None or self.deadline > expires + self.keepalive):
            self._arm(expires)

    def is_open(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing()

    def alive(self) -> bool:
        """Whether an idle connection can carry a request: open, and nothing waiting to be read on
        it (an idle peer that has something to say has closed it, or is talking nonsense)."""
        if not self.is_open():
            return False
        if self.fd < 0:
            return True
        try:
            if self.poller is not None:
                return not self.poller.poll(0)
            return not select.select([self.fd], [], [], 0)[0]
        except (OSError, ValueError):
            return False

    def abort(self) -> None:
        self._stop_timer()
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()

    def error(self, doing: str) -> GatewayError:
        """The failure of the current request as a gateway error."""
        if self.timed_out == "first_byte":
            return UpstreamTimeout(
                f"upstream timed out waiting for the reply (nothing within {self.first_byte_timeout:g} s)",
                phase="first_byte",
            )
        if self.timed_out is not None:
            return UpstreamTimeout(
                f"upstream timed out {doing} (nothing for {self.read_timeout:g} s)", phase=self.timed_out
            )
        if self.failed == MALFORMED:
            return UpstreamError(f"upstream sent a malformed HTTP reply {doing}")
        if not self.received:
            return UpstreamConnectionLost(
                "upstream connection lost before the reply" + (" (on a reused connection)" if self.reused else ""),
                before_reply=True,
                reused=self.reused,
            )
        return UpstreamConnectionLost(f"upstream connection lost {doing}", before_reply=False, reused=self.reused)

    def _fail(self, how: str) -> None:
        if self.failed is None and not self.complete:
            self.failed = how
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        self.timer = None
        now = self.loop.time()
        if not self.busy:
            if self.pooled:
                expires = self.idle_since + self.keepalive
                if now >= expires:
                    self.upstream._forget(self)
                    self._close_idle()
                else:
                    self._arm(expires)
            return
        if self.complete or self.failed is not None:
            return  # `release` or `start` arms it again
        if self.awaiting_body:
            if now >= self.first_byte_deadline:
                self.timed_out = "first_byte"
                self._fail(LOST)
            else:
                self._arm(self.first_byte_deadline)
        elif self.waiter is None:  # the consumer is busy elsewhere: only waiting counts
            self._arm(now + self.read_timeout)
        elif now >= self.last + self.read_timeout:
            self.timed_out = "read"
            self._fail(LOST)
        else:
            self._arm(self.last + self.read_timeout)

    def _close_idle(self) -> None:
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _arm(self, deadline: float) -> None:
        self._stop_timer()
        self.deadline = deadline
        self.timer = self.loop.call_at(deadline, self._on_timer)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class UpstreamResponse:
    __slots__ = ("_body", "_conn", "headers", "status")

    def __init__(self, conn: _Conn) -> None:
        self._conn: _Conn | None = conn
        self._body: bytes | None = None
        self.status = conn.status
        self.headers = conn.headers

    def ready(self) -> bytes | None:
        """The whole body when it has all arrived (the connection goes back to the pool), without
        a coroutine; None when `read` must wait for it."""
        if self._body is not None:
            return self._body
        conn = self._conn
        if conn is None or not conn.complete or conn.failed is not None:
            return None
        self._body = conn.take()
        self._conn = None
        conn.release()
        return self._body

    async def read(self) -> bytes:
        """The whole body (the connection goes back to the pool)."""
        body = self.ready()
        if body is not None:
            return body
        conn = self._conn
        if conn is None:
            return b""
        parts: list[bytes] = []
        while not conn.complete and conn.failed is None:
            if conn.paused:
                parts.append(conn.take())  # the whole body is wanted: keep the socket flowing
            await conn.wait()
        if not conn.complete:
            self._conn = None
            raise conn.error("reading the reply")
        parts.append(conn.take())
        self._body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._conn = None
        conn.release()
        return self._body

    @property
    def exhausted(self) -> bool:
        """The body is complete and every byte of it was taken: no chunk follows (the last one can
        go to the client together with the end of the reply)."""
        conn = self._conn
        return conn is None or (conn.complete and conn.failed is None and not conn.body)

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk."""
        return self

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        while True:
            if conn.body:
                return conn.take()
            if conn.complete:
                self._conn = None
                conn.release()
                raise StopAsyncIteration
            if conn.failed is not None:
                self._conn = None
                raise conn.error("streaming the reply")
            await conn.wait()

    def close(self) -> None:
        """Drop the connection unless the body was read to the end (then it goes back to the pool)."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            if conn.complete:
                conn.release()
            else:
                conn.abort()


class Upstream:
    def __init__(
        self,
        *,
        max_idle_per_host: int = MAX_IDLE_PER_HOST,
        max_idle: int = MAX_IDLE,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self.max_idle_per_host = max_idle_per_host
        self.max_idle = max_idle
        self.keepalive = keepalive
        self._pools: dict[tuple[str, str, int], deque[_Conn]] = {}
        self._idle = 0
        self._conns: set[_Conn] = set()
        self._ssl: ssl.SSLContext | None = None

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        connect_timeout: float,
        first_byte_timeout: float,
        read_timeout: float,
    ) -> UpstreamResponse:
        """Send one request, once; return when the reply's status and headers have arrived.

        `first_byte_timeout` bounds the wait from the request write to the first byte of the
        reply's body (or the end of a reply without one), `read_timeout` the gap between bytes after
        that. Raises `UpstreamUnreachable`, `UpstreamTimeout` (with its phase),
        `UpstreamConnectionLost` or `UpstreamError`; messages name no provider."""
        key, host, path = target(url)
        data = request_head(method, path, host, headers, body)
        conn = self._unpark(key)
        reused = conn is not None
        if conn is None:
            conn = await self._connect(key, connect_timeout)
        conn.start(data, first_byte_timeout, read_timeout, reused)
        while not conn.status and conn.failed is None:
            await conn.wait()  # closes the connection if this task is cancelled
        if conn.status:
            return UpstreamResponse(conn)
        raise conn.error("waiting for the reply")

    @property
    def idle(self) -> int:
        """Idle connections in the pools."""
        return self._idle

    @property
    def open(self) -> int:
        """Open connections, idle or busy."""
        return len(self._conns)

    async def close(self) -> None:
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        self._pools.clear()
        self._idle = 0

    def _unpark(self, key: tuple[str, str, int]) -> _Conn | None:
        pool = self._pools.get(key)
        if not pool:
            return None
        now = pool[-1].loop.time()  # (asyncio.get_running_loop() costs a getpid syscall on 3.11)
        while pool:
            conn = pool.pop()
            conn.pooled = False
            self._idle -= 1
            idle = now - conn.idle_since
            if idle < conn.keepalive and (conn.alive() if idle >= FRESH else conn.is_open()):
                return conn
            conn.abort()
        return None

    def _park(self, conn: _Conn) -> None:
        pool = self._pools.get(conn.key)
        if pool is None:
            pool = self._pools[conn.key] = deque()
        if len(pool) >= self.max_idle_per_host or self._idle >= self.max_idle:
            if not pool:
                conn._close_idle()  # every idle slot is taken by other hosts
                return
            oldest = pool.popleft()  # the least recently used gives way
            oldest.pooled = False
            self._idle -= 1
            oldest._close_idle()
        pool.append(conn)
        conn.pooled = True
        self._idle += 1

    def _forget(self, conn: _Conn) -> None:
        """An idle connection leaves its pool (closed by the peer, or its keep-alive is over)."""
        if not conn.pooled:
            return
        conn.pooled = False
        self._idle -= 1
        pool = self._pools.get(conn.key)
        if pool is not None:
            with contextlib.suppress(ValueError):
                pool.remove(conn)

    async def _connect(self, key: tuple[str, str, int], timeout: float) -> _Conn:
        scheme, host, port = key
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        conn = _Conn(self, key)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream timed out connecting (no connection within {timeout:g} s)", phase="connect"
            ) from None
        except (OSError, ValueError) as exc:  # refused, unresolvable, TLS refused; ValueError: a bad host name
            reason = (exc.strerror if isinstance(exc, OSError) else None) or "connection failed"
            raise UpstreamUnreachable(f"upstream unreachable: {reason}") from None
        self._conns.add(conn)
        return conn
