"""Client-side bounds, with raw sockets as clients: a request head trickled in (slowloris), an idle
keep-alive connection, a request body that stalls, and a client that stops reading its stream are
each ended after their [server] timeout; a slow client that keeps reading is not. Under both the
standard event loop and uvloop (production's)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import uvloop

from tests.conftest import FakeUpstream, GatewayFactory, Reply, providers_at

pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture is deprecated')

SSE = "text/event-stream"
BIG_EVENT = b'data: {"pad":"' + b"a" * 32000 + b'"}\n\n'


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    return uvloop.EventLoopPolicy() if request.param == "uvloop" else asyncio.DefaultEventLoopPolicy()


async def connect(url: str, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window stays small
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await asyncio.open_connection(sock=sock, limit=1 << 20)


async def closed_by_server(reader: asyncio.StreamReader, within: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not)."""
    got = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data
    raise AssertionError("the server kept the connection open")


async def test_trickled_request_head_is_closed(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream, server={"keepalive_timeout": 0.5}))
    reader, writer = await connect(gw.url)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")

    async def trickle() -> None:
        try:
            for i in range(2000):  # a header line every 50 ms: never a complete head
                writer.write(b"X-Slow-%d: 1\r\n" % i)
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, RuntimeError):
            pass

    task = asyncio.create_task(trickle())
    try:
        assert await closed_by_server(reader) == b""
    finally:
        task.cancel()
        writer.close()
    assert upstream.seen == []


async def test_idle_keep_alive_connection_is_closed(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream, server={"keepalive_timeout": 0.5}))
    reader, writer = await connect(gw.url)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    assert await closed_by_server(reader) == b'{"status": "ok"}'  # the body, then the close
    writer.close()


async def test_stalled_request_body_is_408_in_the_clients_dialect(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream, server={"body_timeout": 0.5}))
    for path, envelope in (("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")):
        reader, writer = await connect(gw.url)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"model": "up-openai/m", '
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 408"), head
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        body = await reader.readexactly(length)
        writer.close()
        error = json.loads(body)
        if envelope == "openai":
            assert error["error"]["code"] == "request_timeout" and "stalled" in error["error"]["message"]
        else:
            assert error["type"] == "error" and "stalled" in error["error"]["message"]
    assert upstream.seen == []


async def test_client_that_stops_reading_a_stream_is_dropped(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=[BIG_EVENT] * 640, content_type=SSE))  # 20 MiB: more than every buffer between
    gw = await gateway(providers_at(upstream, server={"send_timeout": 0.5}))
    reader, writer = await connect(gw.url, rcvbuf=4096)
    body = json.dumps({"model": "up-openai/m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    # read nothing: the gateway must give up on this client and close its upstream connection
    await asyncio.wait_for(upstream.closed_early.wait(), 60)
    assert len(upstream.seen) == 1
    got = await closed_by_server(reader)
    assert got.startswith(b"HTTP/1.1 200") and len(got) < 640 * len(BIG_EVENT)
    writer.close()


async def test_slow_client_that_keeps_reading_gets_the_whole_stream(upstream: FakeUpstream, gateway: GatewayFactory):
    events = [BIG_EVENT] * 96 + [b"data: [DONE]\n\n"]  # 3 MiB
    upstream.reply(Reply(body=events, content_type=SSE))
    gw = await gateway(providers_at(upstream, server={"send_timeout": 2}))  # the stream takes longer
    reader, writer = await connect(gw.url, rcvbuf=4096)
    body = json.dumps({"model": "up-openai/m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
    )
    got = b""
    while data := await asyncio.wait_for(reader.read(16384), 60):
        got += data
        await asyncio.sleep(0.02)  # far slower than loopback, far faster than the timeout
    writer.close()
    assert got.count(b"data: {") == 96 and got.rstrip().endswith(b"0\r\n\r\n".rstrip())
    assert not upstream.closed_early.is_set()
