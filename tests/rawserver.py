"""A raw asyncio HTTP/1.1 server on loopback for the upstream client's tests: each test scripts
what the server does with the bytes, and the server records every request and connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dragoman.transport.upstream import Upstream, UpstreamResponse


def timeouts(read: float = 5.0, first_byte: float = 5.0, connect: float = 5.0) -> dict[str, float]:
    return {"connect_timeout": connect, "first_byte_timeout": first_byte, "read_timeout": read}


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: int
    head: bytes


class Peer:
    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.port: int = writer.get_extra_info("peername")[1]

    async def request(self) -> Req | None:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode().split("\r\n")
        method, path, _ = lines[0].split(" ")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        req = Req(method, path, headers, body, self.port, head)
        self.server.requests.append(req)
        return req

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def until_closed(self) -> None:
        """Until the client drops the connection."""
        while await self.reader.read(65536):
            pass
        self.server.client_closed.set()


class Server:
    def __init__(self, handle: Callable[[Peer], Awaitable[None]], **ssl_kw: Any) -> None:
        self.handle = handle
        self.ssl_kw = ssl_kw
        self.peers: list[int] = []
        self.open = 0  # connections the server has not closed yet
        self.requests: list[Req] = []
        self.client_closed = asyncio.Event()
        self.url = ""

    async def _on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(self, reader, writer)
        self.peers.append(peer.port)
        self.open += 1
        try:
            await self.handle(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.client_closed.set()
        except asyncio.CancelledError:  # the test is over
            pass
        finally:
            self.open -= 1
            writer.close()

    async def start(self, host: str = "127.0.0.1") -> Server:
        self.srv = await asyncio.start_server(self._on, "127.0.0.1", 0, **self.ssl_kw)
        port = self.srv.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_kw else 'http'}://{host}:{port}"
        return self

    async def stop(self) -> None:
        self.srv.close()


def reply(body: bytes = b"ok", status: str = "200 OK", headers: str = "", version: str = "1.1") -> bytes:
    return f"HTTP/{version} {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"


async def keep_alive(peer: Peer) -> None:
    while (req := await peer.request()) is not None:
        peer.write(reply(b"echo " + req.path.encode(), headers="X-Thing: One\r\nx-thing: Two\r\n"))


async def send(up: Upstream, url: str, body: bytes | None = b"{}", **kw: float) -> UpstreamResponse:
    return await up.send("POST", url, {"content-type": "application/json"}, body, **timeouts(**kw))


async def settle(count: Callable[[], int], want: int, within: float = 20.0) -> int:
    """Wait until `count()` is `want` (or the time is up); the last value seen."""
    deadline = time.monotonic() + within
    while (n := count()) != want and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return n
