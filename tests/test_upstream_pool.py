"""The upstream client's connection pool and whole-body reads, against raw servers on loopback
(under both the standard event loop and uvloop): bodies far past the flow-control mark, idle
connections bounded per host and in total, closed by their keep-alive timer, and never reused once
the peer has closed them."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time

import pytest
import uvloop

from dragoman.errors import UpstreamConnectionLost
from dragoman.transport import upstream as upstream_mod
from dragoman.transport.upstream import Upstream
from tests.rawserver import CHUNKED, Peer, Server, chunk, keep_alive, reply, send, settle

pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture is deprecated')

BIG = bytes(range(256)) * 4096 * 12  # 12 MiB: many times the flow-control mark


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    return uvloop.EventLoopPolicy() if request.param == "uvloop" else asyncio.DefaultEventLoopPolicy()


# --- whole bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked", "gzip", "close-delimited"])
async def test_read_of_a_body_past_the_flow_control_mark(serve, up: Upstream, framing: str):
    async def handle(peer: Peer) -> None:
        await peer.request()
        if framing == "content-length":
            peer.write(reply(BIG))
        elif framing == "chunked":
            peer.write(CHUNKED + b"".join(chunk(BIG[i : i + 65536]) for i in range(0, len(BIG), 65536)) + b"0\r\n\r\n")
        elif framing == "gzip":
            peer.write(reply(gzip.compress(BIG, 1), headers="Content-Encoding: gzip\r\n"))
        else:
            peer.write(b"HTTP/1.1 200 OK\r\n\r\n" + BIG)
            await peer.writer.drain()
            return
        await peer.writer.drain()
        await peer.request()

    s = await serve(handle)
    # a read timeout far below the test's own: before the fix the read hung until it, then 504
    resp = await send(up, s.url, read=10)
    body = await asyncio.wait_for(resp.read(), 60)
    assert len(body) == len(BIG) and body == BIG
    assert len(s.requests) == 1


async def test_large_error_body_reads_whole(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(reply(b'{"error": "' + b"x" * (3 << 20) + b'"}', status="500 Internal Server Error"))
        await peer.request()

    s = await serve(handle)
    resp = await send(up, s.url, read=10)
    assert resp.status == 500
    assert len(await asyncio.wait_for(resp.read(), 60)) == (3 << 20) + 13


# --- pool bounds -----------------------------------------------------------------------------------


async def burst(up: Upstream, s: Server, n: int) -> None:
    """`n` requests in flight at once (the server answers none until all have arrived)."""
    everyone = asyncio.Event()

    async def one(i: int) -> None:
        resp = await send(up, f"{s.url}/{i}")
        assert await resp.read() == f"/{i}".encode()

    s.handle = lambda peer: answer_when_all_arrived(peer, s, n, everyone)
    await asyncio.gather(*(one(i) for i in range(n)))


async def answer_when_all_arrived(peer: Peer, s: Server, n: int, everyone: asyncio.Event) -> None:
    while (req := await peer.request()) is not None:
        if len(s.requests) >= n:
            everyone.set()
        await everyone.wait()
        peer.write(reply(req.path.encode()))


async def test_idle_connections_after_a_burst_settle_at_the_per_host_bound(serve):
    up = Upstream(max_idle_per_host=16, max_idle=100)
    try:
        s = await serve(keep_alive)
        await burst(up, s, 200)
        assert len(set(s.peers)) == 200  # all at once: one connection each
        assert up.idle == 16
        assert await settle(lambda: s.open, 16) == 16  # the server sees the others closed
        assert await settle(lambda: up.open, 16) == 16
        # the kept ones serve the next requests: no new connection
        for _ in range(3):
            await (await send(up, s.url + "/again")).read()
        assert len(set(s.peers)) == 200
    finally:
        await up.close()


async def test_idle_connections_are_bounded_in_total(serve):
    up = Upstream(max_idle_per_host=50, max_idle=60)
    try:
        first, second = await serve(keep_alive), await serve(keep_alive)
        await burst(up, first, 50)
        await burst(up, second, 50)
        assert up.idle == 60
        assert await settle(lambda: first.open + second.open, 60) == 60
        assert first.open == 50 and second.open == 10  # the later host got what was left
    finally:
        await up.close()


# --- idle expiry -----------------------------------------------------------------------------------


async def test_idle_connection_is_closed_by_its_timer(serve):
    up = Upstream(keepalive=0.3)
    try:
        s = await serve(keep_alive)
        await (await send(up, s.url)).read()
        assert up.idle == 1
        # no further request: the timer, not the next use, closes it
        assert await settle(lambda: s.open, 0) == 0
        assert up.idle == 0 and up.open == 0
        await (await send(up, s.url)).read()
        assert len(s.peers) == 2
    finally:
        await up.close()


async def test_server_keep_alive_hint_shortens_the_trust(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            peer.write(reply(req.path.encode(), headers="Keep-Alive: timeout=1, max=100\r\n"))

    s = await serve(handle)
    await (await send(up, s.url)).read()
    # trusted for a second less than the server keeps it: closed at once, never raced
    assert await settle(lambda: s.open, 0) == 0
    await (await send(up, s.url)).read()
    assert len(s.peers) == 2 and len(s.requests) == 2


async def test_idle_peer_that_sends_bytes_is_dropped(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(reply(b"one"))
        await asyncio.sleep(0.05)
        peer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")  # unasked: the server gives up
        await peer.until_closed()

    s = await serve(handle)
    await (await send(up, s.url)).read()
    assert await settle(lambda: up.idle, 0) == 0
    s.handle = keep_alive
    assert await (await send(up, s.url + "/two")).read() == b"echo /two"
    assert len(s.peers) == 2


class ClosingServer:
    """A thread that answers one request per connection and then closes it (FIN), so that the
    close can reach the client while the client's event loop is not looking."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.connections = 0
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests += 1
                conn.sendall(reply(b"answer %d" % self.requests))
                conn.shutdown(socket.SHUT_WR)
            self.closed.set()

    def stop(self) -> None:
        self.sock.close()


async def test_connection_the_peer_closed_is_not_reused():
    server = ClosingServer()
    up = Upstream()
    try:
        resp = await send(up, server.url)
        assert await resp.read() == b"answer 1"
        # the peer's FIN arrives while this loop is blocked, so only the check before writing sees it
        assert server.closed.wait(10)
        time.sleep(0.2)
        resp = await send(up, server.url)
        assert await resp.read() == b"answer 2"
        assert server.requests == 2 and server.connections == 2
    finally:
        await up.close()
        server.stop()


async def test_a_connection_parked_moments_ago_is_reused_without_asking_the_socket(monkeypatch: pytest.MonkeyPatch):
    # within `FRESH` of its park no poll is made: a peer that closed at once without saying so
    # fails the request as lost before any reply on a reused connection, the policy's to retry
    monkeypatch.setattr(upstream_mod, "FRESH", 10.0)
    server = ClosingServer()
    up = Upstream()
    try:
        resp = await send(up, server.url)
        assert await resp.read() == b"answer 1"
        assert server.closed.wait(10)
        time.sleep(0.2)  # the FIN is in: the poll of the test above would have seen it
        with pytest.raises(UpstreamConnectionLost) as lost:
            await send(up, server.url)
        assert lost.value.before_reply and lost.value.reused
        assert server.requests == 1
    finally:
        await up.close()
        server.stop()


def test_keepalive_hint_parsing():
    hint = upstream_mod.keepalive_hint
    assert hint("timeout=5, max=1000", 60.0) == 4.0
    assert hint("max=5", 60.0) == 60.0
    assert hint("timeout=600", 60.0) == 60.0
    assert hint("timeout=abc", 60.0) == 60.0
    assert hint("timeout=0", 60.0) == 0.0
