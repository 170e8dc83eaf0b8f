"""The upstream HTTP client on its own, against raw asyncio servers on loopback (under both the
standard event loop and uvloop): keep-alive pooling, every body framing, decompression, flow
control, timeouts by phase, failures (each classified: may the request have reached the upstream?)
and cancellation. Pool bounds and idle expiry are in `test_upstream_pool.py`."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import subprocess
import zlib
from pathlib import Path

import pytest
import uvloop

from dragoman.errors import UpstreamConnectionLost, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from dragoman.transport import upstream as upstream_mod
from dragoman.transport.upstream import Upstream
from tests.rawserver import CHUNKED, Peer, chunk, keep_alive, reply, send, timeouts

# production runs on uvloop, the rest of the suite on the standard loop: these run on both
# (pytest-asyncio now prefers a conftest `pytest_asyncio_loop_factories` hook; this file keeps to itself)
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture is deprecated')


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    return uvloop.EventLoopPolicy() if request.param == "uvloop" else asyncio.DefaultEventLoopPolicy()


# --- pooling and framing ---------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(serve, up: Upstream):
    s = await serve(keep_alive)
    for i in range(3):
        resp = await send(up, f"{s.url}/v1/x?n={i}")
        assert resp.status == 200 and await resp.read() == f"echo /v1/x?n={i}".encode()
        resp.close()
    assert len(s.peers) == 1 and len({r.peer for r in s.requests}) == 1


async def test_request_wire_format(serve, up: Upstream):
    s = await serve(keep_alive)
    resp = await up.send("POST", s.url + "/p", {"Authorization": "Bearer k", "x-a": "1"}, b'{"a":1}', **timeouts())
    await resp.read()
    req = s.requests[0]
    assert req.method == "POST" and req.path == "/p" and req.body == b'{"a":1}'
    assert req.headers["host"] == s.url.removeprefix("http://")
    assert req.headers["content-length"] == "7" and req.headers["authorization"] == "Bearer k"
    assert req.headers["x-a"] == "1" and "accept-encoding" not in req.headers
    resp = await up.send("GET", s.url, {"user-agent": "me/1"}, None, **timeouts())
    await resp.read()
    assert s.requests[1].path == "/" and "content-length" not in s.requests[1].headers
    assert s.requests[1].headers["user-agent"] == "me/1"


async def test_header_injection_is_refused(serve, up: Upstream):
    s = await serve(keep_alive)
    for value in ("1\r\nx-evil: 2", "caf\udce9"):  # a split line; bytes that were not text
        with pytest.raises(UpstreamError, match="invalid upstream request header") as err:
            await up.send("POST", s.url, {"x-a": value}, b"", **timeouts())
        assert not err.value.may_have_reached
    assert s.requests == []


async def test_headers_are_case_insensitive(serve, up: Upstream):
    s = await serve(keep_alive)
    resp = await send(up, s.url)
    h = resp.headers
    assert h["X-THING"] == "One, Two" and h.get("x-Thing") == "One, Two" and "X-Thing" in h
    assert h.get("missing") is None and "missing" not in h
    assert ("x-thing", "One, Two") in list(h.items()) and ("content-length", "6") in h.items()
    await resp.read()


async def test_chunked_stream_arrives_chunk_by_chunk(serve, up: Upstream):
    go_on = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(CHUNKED + chunk(b"data: 1\n\n"))
        await go_on.wait()  # the rest only once the client has the first chunk
        peer.write(chunk(b"data: 2\n\n") + chunk(b"data: 3\n\n") + b"0\r\n\r\n")
        await peer.request()

    s = await serve(handle)
    resp = await send(up, s.url)
    assert resp.status == 200 and resp.headers["content-type"] == "text/event-stream"
    it = resp.chunks()
    assert await it.__anext__() == b"data: 1\n\n"
    go_on.set()
    rest = b"".join([c async for c in it])
    assert rest == b"data: 2\n\ndata: 3\n\n"
    resp.close()
    assert len(up._pools[("http", "127.0.0.1", s.srv.sockets[0].getsockname()[1])]) == 1


async def test_close_delimited_and_http10_bodies(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        req = await peer.request()
        assert req is not None
        if req.path == "/eof":
            peer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
            await asyncio.sleep(0.02)
            peer.write(b"part two")
        else:
            peer.write(reply(b"old", version="1.0"))
            await peer.reader.read()

    s = await serve(handle)
    resp = await send(up, s.url + "/eof")
    assert await resp.read() == b"part one, part two"
    resp = await send(up, s.url + "/eof")
    assert b"".join([c async for c in resp.chunks()]) == b"part one, part two"
    resp = await send(up, s.url + "/10")
    assert await resp.read() == b"old"
    assert len(s.peers) == 3  # none of those could be kept


async def test_connection_close_is_honoured(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(reply(b"bye", headers="Connection: close\r\n"))
        await peer.reader.read()

    s = await serve(handle)
    for _ in range(2):
        assert await (await send(up, s.url)).read() == b"bye"
    assert len(s.peers) == 2


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_compressed_bodies_are_decoded(serve, up: Upstream, coding: str):
    plain = b'{"text": "' + b"hello " * 2000 + b'"}'
    packed = gzip.compress(plain) if coding == "gzip" else zlib.compress(plain)
    name = coding

    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(reply(packed, headers=f"Content-Encoding: {name}\r\n"))
        await peer.request()
        head = CHUNKED.replace(b"\r\n\r\n", f"\r\nContent-Encoding: {name}\r\n\r\n".encode())
        peer.write(head + b"".join(chunk(packed[i : i + 100]) for i in range(0, len(packed), 100)) + b"0\r\n\r\n")
        await peer.request()

    s = await serve(handle)
    resp = await send(up, s.url)
    assert (
        await resp.read() == plain and "content-encoding" not in resp.headers and "content-length" not in resp.headers
    )
    resp = await send(up, s.url)
    assert b"".join([c async for c in resp.chunks()]) == plain and "transfer-encoding" not in resp.headers


async def test_interim_1xx_is_skipped(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + reply(b"final"))
        await peer.request()

    s = await serve(handle)
    resp = await send(up, s.url)
    assert resp.status == 200 and "link" not in resp.headers and await resp.read() == b"final"


async def test_concurrent_requests_use_separate_connections_then_lifo(serve, up: Upstream):
    arrived = asyncio.Event()

    async def handle(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if len(s.requests) >= 4:
                arrived.set()
            await arrived.wait()  # all four are in flight at once
            peer.write(reply(req.path.encode()))

    s = await serve(handle)
    replies = await asyncio.gather(*(send(up, f"{s.url}/{i}") for i in range(4)))
    assert [await r.read() for r in replies] == [b"/0", b"/1", b"/2", b"/3"]
    assert len(set(s.peers)) == 4
    pool = next(iter(up._pools.values()))
    assert len(pool) == 4
    newest = pool[-1].transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    await (await send(up, s.url + "/again")).read()
    assert s.requests[-1].peer == newest and len(s.peers) == 4


# --- flow control ----------------------------------------------------------------------------------


async def test_slow_consumer_pauses_the_socket(serve, up: Upstream):
    blob = bytes(range(256)) * 4096 * 8  # 8 MiB
    sent = asyncio.Event()

    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(blob)}\r\n\r\n".encode())
        for i in range(0, len(blob), 65536):
            peer.write(blob[i : i + 65536])
            await peer.writer.drain()
        sent.set()
        await peer.request()

    s = await serve(handle)
    resp = await send(up, s.url)
    await asyncio.sleep(0.3)
    conn = resp._conn
    assert conn is not None and conn.paused and not sent.is_set()
    assert conn.buffered < upstream_mod.HIGH_WATER + 1024 * 1024
    got = 0
    async for c in resp.chunks():
        got += len(c)
    assert got == len(blob) and sent.is_set()


# --- failures --------------------------------------------------------------------------------------


async def test_reused_connection_lost_before_reply_is_not_sent_again(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(reply(b"first"))
        await peer.request()  # the second request arrives as the server drops the idle connection

    s = await serve(handle)
    assert await (await send(up, s.url)).read() == b"first"
    with pytest.raises(UpstreamConnectionLost, match="lost before the reply") as err:
        await send(up, s.url + "/second")
    assert err.value.before_reply and err.value.reused and err.value.may_have_reached
    assert err.value.status == 502
    # the POST went out once: no silent second attempt on a fresh connection
    assert len(s.requests) == 2 and len(s.peers) == 1


async def test_fresh_connection_dropped_before_reply_is_not_retried(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()

    s = await serve(handle)
    with pytest.raises(UpstreamConnectionLost, match="connection lost") as err:
        await send(up, s.url)
    assert err.value.before_reply and not err.value.reused and err.value.may_have_reached
    assert len(s.peers) == 1 and len(s.requests) == 1


async def test_refused_is_502_unreachable(up: Upstream):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(UpstreamUnreachable, match="unreachable") as err:
            await up.send("POST", f"http://127.0.0.1:{port}/", {"authorization": "sk-secret"}, b"", **timeouts())
    assert err.value.status == 502 and "sk-secret" not in err.value.message
    assert not err.value.may_have_reached


async def test_invalid_url_is_502(up: Upstream):
    for url in ("ftp://x/y", "http:///nohost", "http://h:notaport/"):
        with pytest.raises(UpstreamError, match="invalid upstream URL") as err:
            await send(up, url)
        assert not err.value.may_have_reached


async def test_connect_timeout_is_504(serve, up: Upstream):
    async def silent(peer: Peer) -> None:  # accepts TCP, never answers the TLS handshake
        await peer.reader.read()

    s = await serve(silent)
    url = s.url.replace("http://", "https://")
    with pytest.raises(UpstreamTimeout, match="connecting") as err:
        await send(up, url, connect=0.2)
    assert err.value.status == 504 and err.value.phase == "connect" and not err.value.may_have_reached
    assert s.requests == []


async def test_first_byte_timeout_is_504(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        req = await peer.request()
        assert req is not None
        if req.path == "/head":  # the head, then nothing of the body
            peer.write(CHUNKED)
        await peer.until_closed()

    s = await serve(handle)
    for path in ("/nothing", "/head"):
        with pytest.raises(UpstreamTimeout, match="waiting for the reply") as err:
            resp = await send(up, s.url + path, first_byte=0.2, read=60)
            await resp.read()
        assert err.value.status == 504 and err.value.phase == "first_byte" and err.value.may_have_reached
    assert len(s.requests) == 2


async def test_read_timeout_applies_between_bytes_only(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if req.path == "/late":  # later than the read timeout, well within the first-byte one
                await asyncio.sleep(0.5)
                peer.write(CHUNKED + chunk(b"late") + b"0\r\n\r\n")
                continue
            peer.write(CHUNKED + chunk(b"first"))
            await peer.until_closed()

    s = await serve(handle)
    assert await (await send(up, s.url + "/late", first_byte=60, read=0.1)).read() == b"late"
    resp = await send(up, s.url + "/body", first_byte=60, read=0.2)
    it = resp.chunks()
    assert await it.__anext__() == b"first"
    with pytest.raises(UpstreamTimeout, match="streaming the reply") as err:
        await asyncio.wait_for(it.__anext__(), 20)  # the read timeout, not the first-byte one
    assert err.value.status == 504 and err.value.phase == "read"
    await asyncio.wait_for(s.client_closed.wait(), 2)


async def test_timeout_only_counts_while_waiting(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(CHUNKED + chunk(b"a"))
        await asyncio.sleep(0.1)
        peer.write(chunk(b"b") + b"0\r\n\r\n")
        await peer.request()

    s = await serve(handle)
    resp = await send(up, s.url, read=0.2)
    await asyncio.sleep(0.4)  # a slow consumer is not a slow upstream
    assert b"".join([c async for c in resp.chunks()]) == b"ab"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("how", ["read", "chunks"])
async def test_body_cut_short_is_connection_lost(serve, up: Upstream, framing: str, how: str):
    async def handle(peer: Peer) -> None:
        await peer.request()
        if framing == "chunked":
            peer.write(CHUNKED + chunk(b"partial"))
        else:
            peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await asyncio.sleep(0.05)

    s = await serve(handle)
    resp = await send(up, s.url)
    with pytest.raises(UpstreamError, match="connection lost") as err:
        if how == "read":
            await resp.read()
        else:
            async for _ in resp.chunks():
                pass
    assert err.value.status == 502
    resp.close()
    assert not any(up._pools.values())


async def test_malformed_reply_is_502(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await peer.until_closed()

    s = await serve(handle)
    with pytest.raises(UpstreamError, match="malformed"):
        await send(up, s.url)


async def test_close_mid_body_drops_the_connection(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(CHUNKED + chunk(b"first"))
        await peer.until_closed()

    s = await serve(handle)
    resp = await send(up, s.url)
    assert await resp.chunks().__anext__() == b"first"
    resp.close()
    await asyncio.wait_for(s.client_closed.wait(), 2)
    assert not any(up._pools.values())


async def test_cancelled_send_closes_the_connection(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.until_closed()

    s = await serve(handle)
    task = asyncio.create_task(send(up, s.url))
    while not s.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(s.client_closed.wait(), 2)
    assert not any(up._pools.values())


async def test_cancelled_stream_closes_the_connection(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(CHUNKED + chunk(b"first"))
        await peer.until_closed()

    s = await serve(handle)
    resp = await send(up, s.url)

    async def consume() -> None:
        async for _ in resp.chunks():
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(s.client_closed.wait(), 2)
    resp.close()
    assert not any(up._pools.values())


async def test_close_drops_idle_connections(serve, up: Upstream):
    async def handle(peer: Peer) -> None:
        await keep_alive(peer)
        s.client_closed.set()

    s = await serve(handle)
    await (await send(up, s.url)).read()
    await up.close()
    await asyncio.wait_for(s.client_closed.wait(), 2)


# --- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


async def test_https_with_sni(serve, up: Upstream, cert: tuple[Path, Path]):
    crt, key = cert
    names: list[str | None] = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    ctx.sni_callback = lambda sock, name, c: names.append(name)  # type: ignore[assignment,misc]
    s = await serve(keep_alive, ssl=ctx)
    url = s.url.replace("127.0.0.1", "localhost")
    with pytest.raises(UpstreamError, match="unreachable"):  # not signed by a trusted authority
        await send(up, url)
    up._ssl = ssl.create_default_context(cafile=str(crt))
    for _ in range(2):
        resp = await send(up, url + "/tls")
        assert await resp.read() == b"echo /tls"
    assert names[-1] == "localhost" and len(s.requests) == 2 and s.requests[0].peer == s.requests[1].peer
