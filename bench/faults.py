"""Load and faults (``bench/run.py --faults``; a miniature of it runs inside ``--smoke``).

Bounded, loopback only, one ``dragoman serve`` worker pinned to its core, the paced mock and the
client on the other:

1. **Paced streams**: 1,000 concurrent streams of 40 content chunks, 25 ms apart, straight to the
   mock and then through Dragoman, passed through (OpenAI->OpenAI, Anthropic->Anthropic) and
   translated (OpenAI->Anthropic, Anthropic->OpenAI). The mock holds every stream after its head
   until all of them are open (or 20 s went by), so they really are concurrent, and spreads their
   ticks over the 25 ms. Each chunk carries the mock's send time (CLOCK_MONOTONIC, one clock for
   every process of the machine) in its text, which survives translation: the client takes, per
   chunk, the time from the mock's write to its own read. Dragoman's added delay is that figure
   through Dragoman beside the same figure straight to the mock, in the same run. Zero errors is a
   pass condition (every stream 200, 40 chunks, its end marker); RSS per open stream is the peak RSS
   during the phase over the RSS before it, divided by the streams.
2. **Soak**: a mix at constant concurrency (streams of both fronts, through and translated, unary
   requests, and one request in five dropped by its client after two chunks) for 3 minutes (smoke: a
   few seconds); Dragoman's RSS and open file descriptors sampled every few seconds must stay flat.
3. **Disconnects**: a fresh Dragoman, 200 long streams, every client gone mid-stream at once; then
   the mock's count of open connections must fall to zero (every upstream connection closed) and
   Dragoman's descriptors must come back to where they were.

The mock (``python bench/faults.py mock --port N``) is a raw asyncio protocol on uvloop: one timer
every 5 ms writes the next chunk of the fifth of the streams whose turn it is, so 1,000 paced
streams cost it a fraction of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

TICK = 0.005  # seconds between the mock's timer ticks
SLOTS = 5  # streams take turns: each is written every SLOTS ticks (25 ms)
MARK = re.compile(rb"zq(\d+\.\d+);")  # a chunk's text: zq<the mock's monotonic send time>;
ENDS = (b"data: [DONE]", b"event: message_stop")


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


# ================================================================================== the paced mock


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    body = json.dumps(data, separators=(",", ":")).encode()
    return (f"event: {event}\n".encode() if event else b"") + b"data: " + body + b"\n\n"


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


OPENAI_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "paced"}


def openai_delta(text: str) -> bytes:
    return _sse({**OPENAI_CHUNK, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def anthropic_delta(text: str) -> bytes:
    return _sse(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        "content_block_delta",
    )


OPENAI_HEAD = _sse({**OPENAI_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
OPENAI_TAIL = (
    _sse({**OPENAI_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + _sse({**OPENAI_CHUNK, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 40, "total_tokens": 45}})
    + b"data: [DONE]\n\n"
)
ANTHROPIC_HEAD = _sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_paced",
            "type": "message",
            "role": "assistant",
            "model": "paced",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    },
    "message_start",
) + _sse(
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"
)
ANTHROPIC_TAIL = (
    _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    + _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 40},
        },
        "message_delta",
    )
    + _sse({"type": "message_stop"}, "message_stop")
)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _json_reply(body: bytes, status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


class PacedMock:
    def __init__(self) -> None:
        self.open = 0  # connections not yet closed
        self.streaming = 0  # of those, in the middle of a stream
        self.requests = 0
        self.waiting: list[Conn] = []  # streams held until the barrier opens
        self.barrier = 0  # hold new streams until this many wait (0: none held)
        self.barrier_deadline = 0.0
        self.slots: list[set[Conn]] = [set() for _ in range(SLOTS)]
        self.turn = 0
        self.next_slot = 0
        self.loop = asyncio.get_running_loop()
        self.next_tick = self.loop.time()
        self.loop.call_soon(self._tick)

    def _tick(self) -> None:
        if self.waiting and (len(self.waiting) >= self.barrier or self.loop.time() > self.barrier_deadline):
            self.barrier = 0
            for conn in self.waiting:
                self._schedule(conn)
            self.waiting = []
        slot = self.slots[self.turn % SLOTS]
        self.turn += 1
        now = f"{time.monotonic():.6f}"
        for conn in list(slot):
            conn.step(now)
        self.next_tick += TICK
        self.loop.call_at(max(self.next_tick, self.loop.time()), self._tick)

    def _schedule(self, conn: Conn) -> None:
        conn.slot = self.slots[self.next_slot % SLOTS]
        self.next_slot += 1
        conn.slot.add(conn)

    def stream(self, conn: Conn) -> None:
        if self.barrier:
            self.waiting.append(conn)
        else:
            self._schedule(conn)


class Conn(asyncio.Protocol):
    def __init__(self, mock: PacedMock) -> None:
        self.mock = mock
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.slot: set[Conn] | None = None
        self.left = 0
        self.anthropic = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.mock.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.mock.open -= 1
        self._end_stream()
        with suppress(ValueError):
            self.mock.waiting.remove(self)

    def _end_stream(self) -> None:
        if self.slot is not None:
            self.slot.discard(self)
            self.slot = None
        if self.left:
            self.left = 0
            self.mock.streaming -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            size = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + size:
                return
            body, self.buf = self.buf[end + 4 : end + 4 + size], self.buf[end + 4 + size :]
            method, path, _ = lines[0].split(" ", 2)
            self.close_after = headers.get("connection", "").lower() == "close"
            self.handle(method, path, body)

    def handle(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        self.reply(method, path, body)
        if self.close_after and not self.left:  # a whole reply went out; a stream closes at its end
            self.transport.close()

    def reply(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        mock = self.mock
        if method == "GET" and path.startswith("/health"):
            self.transport.write(_json_reply(b'{"status":"ok"}'))
            return
        if method == "GET" and path.startswith("/stats"):
            stats = {"open": mock.open - 1, "streaming": mock.streaming, "requests": mock.requests}
            self.transport.write(_json_reply(json.dumps(stats).encode()))
            return
        if method == "POST" and path.startswith("/arm"):
            want = json.loads(body or b"{}")
            mock.barrier = int(want.get("n", 0))
            mock.barrier_deadline = mock.loop.time() + float(want.get("timeout", 20))
            self.transport.write(_json_reply(b"{}"))
            return
        mock.requests += 1
        req = json.loads(body)
        self.anthropic = path.endswith("/messages")
        # model "paced-<chunks>"
        chunks = int(str(req.get("model", "paced-40")).rsplit("-", 1)[-1] or 40)
        if not req.get("stream"):
            answer: dict[str, Any]
            if self.anthropic:
                answer = {
                    "id": "msg_u",
                    "type": "message",
                    "role": "assistant",
                    "model": "paced",
                    "content": [{"type": "text", "text": "zq0.0;"}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": 1},
                }
            else:
                answer = {
                    "id": "u",
                    "object": "chat.completion",
                    "created": 1,
                    "model": "paced",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "zq0.0;"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                }
            self.transport.write(_json_reply(json.dumps(answer).encode()))
            return
        self.left = chunks
        mock.streaming += 1
        self.transport.write(STREAM_HEAD + _chunked(ANTHROPIC_HEAD if self.anthropic else OPENAI_HEAD))
        mock.stream(self)

    def step(self, now: str) -> None:
        assert self.transport is not None
        text = f"zq{now};"
        out = _chunked(anthropic_delta(text) if self.anthropic else openai_delta(text))
        self.left -= 1
        if self.left <= 0:
            out += _chunked(ANTHROPIC_TAIL if self.anthropic else OPENAI_TAIL) + b"0\r\n\r\n"
            self.left = 1  # so that _end_stream counts it
            self._end_stream()
            self.transport.write(out)
            if self.close_after:
                self.transport.close()
            return
        self.transport.write(out)


async def serve_mock(port: int) -> None:
    mock = PacedMock()
    server = await asyncio.get_running_loop().create_server(lambda: Conn(mock), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# ====================================================================================== the client


class Tally:
    """What a phase's clients saw."""

    def __init__(self) -> None:
        self.latency: list[float] = []  # seconds from the mock's write to the client's read, per chunk
        self.gaps: list[float] = []  # seconds between a stream's chunks, as the client read them
        self.ok = 0
        self.errors: list[str] = []
        self.open = 0
        self.max_open = 0
        self.dropped = 0


class StreamClient(asyncio.Protocol):
    def __init__(
        self, request: bytes, tally: Tally, want: int, done: asyncio.Future[None], drop_after: int = 0
    ) -> None:
        self.request, self.tally, self.want, self.done, self.drop_after = request, tally, want, done, drop_after
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.status = 0
        self.tail = b""
        self.got = 0
        self.last = 0.0
        self.counted_open = False
        self.finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.status:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.head[9:12])
            data = self.head[end + 4 :]
            if self.status == 200:
                self.counted_open = True
                self.tally.open += 1
                self.tally.max_open = max(self.tally.max_open, self.tally.open)
        buf = self.tail + data
        last_end = 0
        for m in MARK.finditer(buf):
            sent = float(m.group(1))
            if sent > 0:
                self.tally.latency.append(now - sent)
            if self.got:
                self.tally.gaps.append(now - self.last)
            self.last = now
            self.got += 1
            last_end = m.end()
        self.tail = buf[last_end:][-80:]
        if self.drop_after and self.got >= self.drop_after:
            self.tally.dropped += 1
            self._finish(None)
            assert self.transport is not None
            self.transport.abort()
            return
        if any(end in buf for end in ENDS) or (self.status != 200 and b"}" in buf):
            if self.status != 200:
                self._finish(f"status {self.status}: {buf[:200]!r}")
            elif self.got != self.want:
                self._finish(f"{self.got} chunks of {self.want}")
            elif b'"error"' in buf:
                self._finish(f"an error event: {buf[-300:]!r}")
            else:
                self.tally.ok += 1
                self._finish(None)
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost after {self.got} chunks ({exc or 'closed'})")

    def _finish(self, error: str | None) -> None:
        if self.finished:
            return
        self.finished = True
        if self.counted_open:
            self.tally.open -= 1
        if error is not None:
            self.tally.errors.append(error)
        if not self.done.done():
            self.done.set_result(None)


def request_bytes(port: int, front: str, model: str, stream: bool = True, key: str = "bench") -> bytes:
    if front == "openai":
        path = "/v1/chat/completions"
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "go"}], "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        auth = f"Authorization: Bearer {key}\r\n"
    else:
        path = "/v1/messages"
        body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "go"}], "stream": stream}
        auth = f"x-api-key: {key}\r\nanthropic-version: 2023-06-01\r\n"
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data


async def one_stream(
    port: int,
    request: bytes,
    tally: Tally,
    want: int,
    drop_after: int = 0,
    timeout: float = 120,
    connecting: asyncio.Semaphore | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    try:
        if connecting is None:
            transport, _ = await loop.create_connection(
                lambda: StreamClient(request, tally, want, done, drop_after), "127.0.0.1", port
            )
        else:
            async with connecting:  # connects in waves: the listen backlog is not what is measured
                transport, _ = await loop.create_connection(
                    lambda: StreamClient(request, tally, want, done, drop_after), "127.0.0.1", port
                )
    except OSError as exc:
        tally.errors.append(f"connect: {exc}")
        return
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        tally.errors.append("timed out")
    finally:
        transport.abort()


async def unary(port: int, request: bytes, tally: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 60)
        writer.close()
        if data[9:12] == b"200" and MARK.search(data):
            tally.ok += 1
        else:
            tally.errors.append(f"unary: {data[:200]!r}")
    except (OSError, TimeoutError) as exc:
        tally.errors.append(f"unary: {exc!r}")


async def http_json(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    raw = await reader.read()
    writer.close()
    return json.loads(raw.split(b"\r\n\r\n", 1)[1] or b"{}")


# ================================================================================ process sampling


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Peak:
    """The peak of `read()` while active, sampled every 50 ms in a thread."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read, self.peak = read, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.read())

    def __enter__(self) -> Peak:
        self.peak = self.read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


# ========================================================================================== phases


async def paced(
    target_port: int,
    mock_port: int,
    front: str,
    model: str,
    n: int,
    chunks: int,
    rss: Callable[[], int] | None,
    cpu: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """`n` concurrent paced streams to `target_port`; the mock holds them until all are open."""
    await http_json(mock_port, "POST", "/arm", {"n": n, "timeout": 20})
    tally = Tally()
    request = request_bytes(target_port, front, model)
    connecting = asyncio.Semaphore(64)

    async def go() -> None:
        await one_stream(target_port, request, tally, chunks, connecting=connecting)

    before = rss() if rss else 0
    cpu_before = cpu() if cpu else 0.0
    started = time.monotonic()
    if rss is not None:
        with Peak(rss) as peak:
            await asyncio.gather(*(go() for _ in range(n)))
        peak_rss = peak.peak
    else:
        await asyncio.gather(*(go() for _ in range(n)))
        peak_rss = 0
    out: dict[str, Any] = {
        "streams": n,
        "chunks": chunks,
        "ok": tally.ok,
        "errors": len(tally.errors),
        "error_samples": tally.errors[:5],
        "max_open": tally.max_open,
        "wall_s": round(time.monotonic() - started, 2),
        "latency_ms": {"p50": round(pct(tally.latency, 50) * 1000, 2), "p99": round(pct(tally.latency, 99) * 1000, 2)},
        "gap_ms": {"p50": round(pct(tally.gaps, 50) * 1000, 2), "p99": round(pct(tally.gaps, 99) * 1000, 2)},
    }
    if cpu is not None:  # of the paced part: the connects and the barrier's wait are idle time
        out["cpu_s"] = round(cpu() - cpu_before, 2)
    if rss is not None:
        out["rss_before_mib"] = round(before / 2**20, 1)
        out["rss_peak_mib"] = round(peak_rss / 2**20, 1)
        out["rss_per_stream_kib"] = round((peak_rss - before) / max(tally.max_open, 1) / 1024, 1)
    return out


async def soak(
    port: int, seconds: float, concurrency: int, sample_every: float, pid: int, rss: Callable[[], int]
) -> dict[str, Any]:
    """A steady mix at `concurrency` for `seconds`, RSS and fds sampled."""
    tally = Tally()
    kinds = [
        ("openai", "mock-openai/paced-10", True, 0),
        ("openai", "mock-anthropic/paced-10", True, 0),
        ("anthropic", "mock-anthropic/paced-10", True, 0),
        ("anthropic", "mock-openai/paced-10", True, 0),
        ("openai", "mock-openai/paced-10", False, 0),
        ("anthropic", "mock-openai/paced-10", False, 0),
        ("openai", "mock-anthropic/paced-10", True, 2),  # the client leaves after two chunks
        ("anthropic", "mock-anthropic/paced-10", True, 2),
        ("openai", "mock-openai/paced-10", True, 0),
        ("anthropic", "mock-anthropic/paced-10", True, 0),
    ]
    requests = [request_bytes(port, front, model, stream) for front, model, stream, _ in kinds]
    samples: list[dict[str, float]] = []
    end = time.monotonic() + seconds
    count = 0

    async def worker(i: int) -> None:
        nonlocal count
        k = i
        while time.monotonic() < end:
            _, _, stream, drop = kinds[k % len(kinds)]
            if stream:
                await one_stream(port, requests[k % len(kinds)], tally, 10, drop_after=drop)
            else:
                await unary(port, requests[k % len(kinds)], tally)
            count += 1
            k += 7

    async def sampler() -> None:
        t0 = time.monotonic()
        while time.monotonic() < end:
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_mib": round(rss() / 2**20, 1), "fds": fds(pid)})
            await asyncio.sleep(sample_every)

    await asyncio.gather(sampler(), *(worker(i) for i in range(concurrency)))
    await asyncio.sleep(1.0)  # the last closes settle
    after = {"rss_mib": round(rss() / 2**20, 1), "fds": fds(pid)}
    third = max(len(samples) // 3, 1)
    first, last = samples[:third], samples[-third:]

    def mean(xs: list[dict[str, float]], key: str) -> float:
        return sum(x[key] for x in xs) / len(xs)

    return {
        "seconds": seconds,
        "concurrency": concurrency,
        "requests": count,
        "ok": tally.ok,
        "dropped_by_client": tally.dropped,
        "errors": len(tally.errors),
        "error_samples": tally.errors[:5],
        "samples": samples,
        "rss_first_third_mib": round(mean(first, "rss_mib"), 1),
        "rss_last_third_mib": round(mean(last, "rss_mib"), 1),
        "fds_first_third": round(mean(first, "fds"), 1),
        "fds_last_third": round(mean(last, "fds"), 1),
        "after": after,
    }


async def disconnects(port: int, mock_port: int, n: int, pid: int) -> dict[str, Any]:
    """`n` long streams, every client gone at once mid-stream; then the mock's open connections."""
    fds_before = fds(pid)
    tally = Tally()
    loop = asyncio.get_running_loop()
    transports = []
    futures = []
    for i in range(n):
        front = "openai" if i % 2 else "anthropic"
        model = ("mock-openai" if i % 4 < 2 else "mock-anthropic") + "/paced-4000"
        done: asyncio.Future[None] = loop.create_future()
        transport, proto = await loop.create_connection(
            lambda d=done, f=front, m=model: StreamClient(request_bytes(port, f, m), tally, 4000, d),  # type: ignore[misc]
            "127.0.0.1",
            port,
        )
        transports.append((transport, proto))
        futures.append(done)
    deadline = time.monotonic() + 60
    while any(p.got < 2 for _, p in transports) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    streaming_before = (await http_json(mock_port, "GET", "/stats"))["streaming"]
    for transport, _ in transports:
        transport.abort()  # the client is gone, mid-stream
    left: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = await http_json(mock_port, "GET", "/stats")
        if left["open"] == 0:
            break
        await asyncio.sleep(0.1)
    took = 30 - (deadline - time.monotonic())
    await asyncio.sleep(0.5)
    return {
        "streams": n,
        "upstream_streaming_before": streaming_before,
        "upstream_open_after": left.get("open"),
        "upstream_streaming_after": left.get("streaming"),
        "closed_within_s": round(took, 2),
        "dragoman_fds_before": fds_before,
        "dragoman_fds_after": fds(pid),
    }


# ========================================================================================= the run


def run(args: argparse.Namespace, cpus: Any, log_dir: Path, tmp: Path, smoke: bool) -> dict[str, Any]:
    """The whole load-and-fault run; the results, with `failures` (empty when it passed). `cpus`: the
    harness's CpuLayout, detected before it pinned itself to the load core."""
    from systems import (
        CLK_TCK,
        HOST,
        PORTS,
        CpuLayout,
        cpu_ticks,
        dragoman_command,
        log,
        pick_ports,
        rss_bytes,
        spawn,
        stop,
    )

    PORTS.setdefault("paced-mock", 9150)
    PORTS.setdefault("dragoman-faults", 4150)
    pick_ports()
    mock_port, port = PORTS["paced-mock"], PORTS["dragoman-faults"]
    n = 100 if smoke else 1000
    soak_s = 5.0 if smoke else 180.0
    drops = 20 if smoke else 200
    mock_srv = spawn(
        "paced-mock",
        [*CpuLayout.prefix(cpus.load), sys.executable, str(Path(__file__)), "mock", "--port", str(mock_port)],
        log_dir,
    )
    mock_srv.wait_ready(mock_port, "/health", 30)
    cfg = tmp / "dragoman-faults.toml"
    cfg.write_text(
        f"""\
# generated by bench/faults.py
[server]
host = "{HOST}"
port = {port}
default_provider = "mock-openai"
usage_store = "sqlite"
access_log = false

[providers.mock-openai]
dialect = "openai"
base_url = "http://{HOST}:{mock_port}/v1"
api_key = "bench"

[providers.mock-anthropic]
dialect = "anthropic"
base_url = "http://{HOST}:{mock_port}"
api_key = "bench"
"""
    )
    cmd = [*CpuLayout.prefix(cpus.sut_cpus(1)), *dragoman_command(args), "serve", "--config", str(cfg)]
    env = {"DRAGOMAN_DATA_DIR": str(tmp / "data-faults")}

    def start() -> Any:
        srv = spawn("dragoman-faults", cmd, log_dir, env)
        srv.wait_ready(port, "/health", 60)
        return srv

    results: dict[str, Any] = {"streams": n, "chunks": 40, "interval_ms": TICK * SLOTS * 1000, "failures": []}
    srv = start()
    try:
        pid = srv.pid  # taskset execs dragoman in place; one worker is one process

        def rss() -> int:
            return rss_bytes([pid])

        def cpu() -> float:
            return cpu_ticks([pid]) / CLK_TCK

        async def main() -> None:
            phases: dict[str, Any] = {}
            log(f"faults: warm-up, then {n} paced streams direct to the mock and through dragoman")
            await paced(port, mock_port, "openai", "mock-openai/paced-40", min(n, 100), 40, None)
            phases["direct openai"] = await paced(mock_port, mock_port, "openai", "paced-40", n, 40, None)
            phases["direct anthropic"] = await paced(mock_port, mock_port, "anthropic", "paced-40", n, 40, None)
            cases = [
                ("openai->openai (through)", "openai", "mock-openai/paced-40"),
                ("openai->anthropic (translated)", "openai", "mock-anthropic/paced-40"),
            ]
            if not smoke:
                cases += [
                    ("anthropic->anthropic (through)", "anthropic", "mock-anthropic/paced-40"),
                    ("anthropic->openai (translated)", "anthropic", "mock-openai/paced-40"),
                ]
            for name, front, model in cases:
                log(f"faults: {n} paced streams {name}")
                phases[name] = await paced(port, mock_port, front, model, n, 40, rss, cpu)
                direct = phases[f"direct {name.split('->')[1].split(' ')[0]}"]
                phases[name]["added_latency_ms"] = {
                    q: round(phases[name]["latency_ms"][q] - direct["latency_ms"][q], 2) for q in ("p50", "p99")
                }
            results["paced"] = phases
            log(f"faults: soak for {soak_s:.0f} s")
            results["soak"] = await soak(port, soak_s, 20 if smoke else 200, 1.0 if smoke else 5.0, pid, rss)

        asyncio.run(main())
        stop(srv)
        srv = start()  # a fresh one: no idle upstream connection from the phases before
        pid = srv.pid
        log(f"faults: {drops} clients gone mid-stream")
        results["disconnects"] = asyncio.run(disconnects(port, mock_port, drops, pid))
    finally:
        stop(srv)
        stop(mock_srv)
    results["failures"] = judge(results)
    return results


def judge(res: dict[str, Any]) -> list[str]:
    out = []
    for name, phase in res.get("paced", {}).items():
        if phase["errors"] or phase["ok"] != phase["streams"]:
            samples = phase["error_samples"]
            out.append(f"paced {name}: {phase['errors']} error(s), {phase['ok']}/{phase['streams']} ok: {samples}")
    soak_res = res.get("soak")
    if soak_res:
        if soak_res["errors"]:
            out.append(f"soak: {soak_res['errors']} error(s): {soak_res['error_samples']}")
        if soak_res["rss_last_third_mib"] > soak_res["rss_first_third_mib"] * 1.15 + 5:
            out.append(f"soak: RSS grew {soak_res['rss_first_third_mib']} -> {soak_res['rss_last_third_mib']} MiB")
        if soak_res["fds_last_third"] > soak_res["fds_first_third"] * 1.5 + 20:
            out.append(f"soak: fds grew {soak_res['fds_first_third']} -> {soak_res['fds_last_third']}")
    drop = res.get("disconnects")
    if drop:
        if drop["upstream_open_after"] != 0:
            out.append(f"disconnects: {drop['upstream_open_after']} upstream connection(s) still open")
        if drop["dragoman_fds_after"] > drop["dragoman_fds_before"] + 5:
            out.append(f"disconnects: dragoman fds {drop['dragoman_fds_before']} -> {drop['dragoman_fds_after']}")
    return out


def render(res: dict[str, Any]) -> str:
    head = (
        f"{res['streams']} concurrent paced streams, {res['chunks']} chunks {res['interval_ms']:.0f} ms apart, "
        "one dragoman worker; latency: the mock's write to the client's read (ms)"
    )
    cols = ("ok", "max open", "lat p50", "lat p99", "added p50", "added p99", "gap p99", "RSS/stream", "CPU s")
    lines = [head, f"{'phase':32}" + "".join(f"{c:>11}" for c in cols)]
    for name, p in res.get("paced", {}).items():
        added = p.get("added_latency_ms", {})
        cells = (
            f"{p['ok']}/{p['streams']}",
            p["max_open"],
            p["latency_ms"]["p50"],
            p["latency_ms"]["p99"],
            added.get("p50", ""),
            added.get("p99", ""),
            p["gap_ms"]["p99"],
            f"{p['rss_per_stream_kib']:.1f} KiB" if "rss_per_stream_kib" in p else "",
            p.get("cpu_s", ""),
        )
        lines.append(f"{name:32}" + "".join(f"{c!s:>11}" for c in cells))
    s = res.get("soak")
    if s:
        lines.append(
            f"soak {s['seconds']:.0f} s at {s['concurrency']}: {s['requests']} requests, {s['errors']} errors, "
            f"{s['dropped_by_client']} dropped by their client"
        )
        lines.append(
            f"  RSS {s['rss_first_third_mib']} -> {s['rss_last_third_mib']} MiB (mean of the first and last third), "
            f"fds {s['fds_first_third']} -> {s['fds_last_third']}; after: {s['after']}"
        )
    d = res.get("disconnects")
    if d:
        lines.append(
            f"disconnects: {d['streams']} clients gone mid-stream ({d['upstream_streaming_before']} upstream "
            f"streams open): {d['upstream_open_after']} upstream connections open after {d['closed_within_s']} s; "
            f"dragoman fds {d['dragoman_fds_before']} -> {d['dragoman_fds_after']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="the paced mock of the load-and-fault run")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mock")
    m.add_argument("--port", type=int, required=True)
    a = p.parse_args(argv)
    with suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with suppress(KeyboardInterrupt):
        asyncio.run(serve_mock(a.port))


if __name__ == "__main__":
    main()
