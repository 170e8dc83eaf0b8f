"""The one seam between the gateway and the network: send a request to a provider, get a status,
headers and an async byte stream back.

Why not aiohttp's client: at concurrency 1 a gateway is bounded by its HTTP client's per-request
cost, and `ClientSession.request` (its set-up, tracing hooks, timers, response machinery) was the
largest item in the profile. This is a minimal HTTP/1.1 client on raw asyncio (uvloop) transports
with llhttp (httptools) as the parser: one keep-alive pool per (scheme, host, port), idle connections
reused last-in first-out, the request written in one `write`, the body handed over as it arrives
with flow control, gzip/deflate undone, and a request that meets a keep-alive connection the server
has just closed retried once on a fresh one.

Network failures become gateway errors here (refused → 502, timeout → 504) so that nothing above
this module ever sees an OSError or a parser exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import zlib
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

from dragoman import __version__
from dragoman.errors import GatewayError, UpstreamError, UpstreamTimeout

HIGH_WATER = 256 * 1024  # buffered body bytes above which the socket is paused until the consumer reads
KEEPALIVE = 60.0  # seconds an idle pooled connection is trusted for
# the client's own business: never taken from the caller, never handed back
_HOP = ("connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection")
_SKIP = frozenset((*_HOP, "host", "content-length", "accept-encoding"))
_USER_AGENT = f"dragoman/{__version__}"
# how a connection failed, turned into a message by `_error` with what the caller was doing
LOST, TIMEOUT, MALFORMED = "lost", "timeout", "malformed"


class Headers(dict[str, str]):
    """Response headers, keyed by lower-cased name (repeated fields joined with ', ')."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection: parser callbacks fill the current response; consumers wait on it."""

    def __init__(self, upstream: Upstream, key: tuple[str, str, int]) -> None:
        self.upstream = upstream
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.idle_since = 0.0
        self.timeout = 0.0
        self.timer: asyncio.TimerHandle | None = None  # left armed between requests: re-armed only when due
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
        self.received = False  # any byte of this request's response
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
        if not self.busy:
            pool = self.upstream._pools.get(self.key)
            if pool is not None and self in pool:
                pool.remove(self)
        elif not self.complete and self.failed is None:
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
        for name in _HOP:
            dict.pop(h, name, None)
        self.status = status
        self._wake()

    def on_body(self, data: bytes) -> None:
        if not self.status:
            return
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
    def start(self, data: bytes, timeout: float) -> None:
        assert self.transport is not None
        self.busy = True
        self.timeout = timeout
        now = self.last = self.loop.time()
        if self.timer is None or self.deadline > now + timeout:
            self._arm(now + timeout)
        self.transport.write(data)

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

    def abort(self) -> None:
        self._stop_timer()
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()

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
        if not self.busy or self.complete:
            return  # `start` arms it again
        now = self.loop.time()
        if self.waiter is None:  # the consumer is busy elsewhere: only waiting counts
            self._arm(now + self.timeout)
        elif now >= self.last + self.timeout:
            self._fail(TIMEOUT)
        else:
            self._arm(self.last + self.timeout)

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

    async def read(self) -> bytes:
        """The whole body (the connection goes back to the pool)."""
        if self._body is not None:
            return self._body
        conn = self._conn
        if conn is None:
            return b""
        while not conn.complete and conn.failed is None:
            await conn.wait()
        if not conn.complete:
            self._conn = None
            raise _error(conn.failed, "reading the reply")
        self._body = conn.take()
        self._conn = None
        conn.release()
        return self._body

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
                raise _error(conn.failed, "streaming the reply")
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
    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int], list[_Conn]] = {}
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
        key, host, path = _target(url)
        data = _request(method, path, host, headers, body)
        pool = self._pools.get(key)
        conn = self._unpark(pool) if pool else None
        reused = conn is not None
        while True:
            if conn is None:
                conn = await self._connect(key, connect_timeout)
            conn.start(data, read_timeout)
            while not conn.status and conn.failed is None:
                await conn.wait()  # closes the connection if this task is cancelled
            if conn.status:
                return UpstreamResponse(conn)
            if not (reused and conn.failed == LOST and not conn.received):
                raise _error(conn.failed, "waiting for the reply")
            conn, reused = None, False  # the server had closed the idle connection: once more, afresh

    async def close(self) -> None:
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        self._pools.clear()

    def _unpark(self, pool: list[_Conn]) -> _Conn | None:
        while pool:
            conn = pool.pop()
            fresh = conn.idle_since > conn.loop.time() - KEEPALIVE
            if fresh and conn.transport is not None and not conn.transport.is_closing():
                return conn
            conn.abort()
        return None

    def _park(self, conn: _Conn) -> None:
        pool = self._pools.get(conn.key)
        if pool is None:
            pool = self._pools[conn.key] = []
        if pool and pool[0].idle_since < conn.idle_since - KEEPALIVE:
            pool.pop(0).abort()  # the oldest idle one has outlived its trust
        pool.append(conn)

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
            raise UpstreamTimeout("upstream timed out connecting") from None
        except (OSError, ValueError) as exc:  # refused, unresolvable, TLS refused; ValueError: a bad host name
            reason = (exc.strerror if isinstance(exc, OSError) else None) or "connection failed"
            raise UpstreamError(f"upstream unreachable: {reason}") from None
        self._conns.add(conn)
        return conn


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> tuple[tuple[str, str, int], str, str]:
    """The pool key, the Host header and the request target of a URL."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        hostname = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UpstreamError("invalid upstream URL") from None
    if scheme not in ("http", "https") or not hostname:
        raise UpstreamError("invalid upstream URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, hostname, port), parts.netloc.rpartition("@")[2], path


def _request(method: str, path: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    agent = False
    for name, value in headers.items():
        low = name.lower()
        if low in _SKIP:
            if low == "host":
                lines[1] = f"Host: {value}"
            continue
        agent = agent or low == "user-agent"
        lines.append(f"{name}: {value}")
    if not agent:
        lines.append(f"User-Agent: {_USER_AGENT}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body) if body else 0}")
    head = "\r\n".join(lines)
    if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:  # a header would split it
        raise UpstreamError("invalid upstream request header")
    data = (head + "\r\n\r\n").encode("utf-8")
    return data + body if body else data


def _error(how: str | None, doing: str) -> GatewayError:
    if how == TIMEOUT:
        return UpstreamTimeout(f"upstream timed out {doing}")
    if how == MALFORMED:
        return UpstreamError(f"upstream sent a malformed HTTP reply {doing}")
    return UpstreamError(f"upstream connection lost {doing}")
