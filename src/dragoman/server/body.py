"""A client's request, read defensively: the body (size limit, content encoding, a bound on how
long it may stall), its JSON (large bodies decoded off the event loop) and the headers the gateway
forwards. Every failure is a clear 4xx the front renders in the client's dialect.

aiohttp's own decompression is off (`server.app`): a body that lies about its encoding must be a
400 here, not an exception inside aiohttp, and the size limit must count decompressed bytes.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import msgspec
from aiohttp import web

from dragoman.errors import InvalidRequest, RequestTimeout, RequestTooLarge

# Bodies above this are decoded in a worker thread, so that one huge request does not stall every
# other stream and health check on the loop for the length of its decode.
DECODE_INLINE_MAX = 1024 * 1024
_ENCODINGS = {"gzip": 47, "x-gzip": 47, "deflate": 47}  # 32 + 15: a gzip or a zlib header, whichever comes

_decode = msgspec.json.Decoder()


async def read_json(
    request: web.Request, limit: int, stall_timeout: float | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The request body (decompressed) and the JSON object it holds, or a clear 400/408/413/415."""
    raw = await read_body(request, limit, stall_timeout)
    return raw, await parse_json(raw)


def body_at_hand(request: web.Request, limit: int) -> bytes | None:
    """The body when all of it has arrived and it is not encoded (the usual case), read without
    a coroutine; None when `read_body` must wait for it or decompress it."""
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLarge(f"request body is {length} bytes; the limit is {limit}")
    if "content-encoding" in request.headers:
        return None
    content = request.content
    if not content.is_eof():
        return None
    raw: bytes = content.read_nowait()
    if len(raw) > limit:
        raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
    return raw


async def read_body(request: web.Request, limit: int, stall_timeout: float | None = None) -> bytes:
    """The body, decompressed, at most `limit` bytes; `stall_timeout` bounds the wait for each
    next piece of it (408 when it runs out)."""
    at_hand = body_at_hand(request, limit)
    if at_hand is not None:
        return at_hand
    coding = request.headers.get("content-encoding", "").strip().lower()
    inflate: Any = None
    if coding and coding != "identity":
        wbits = _ENCODINGS.get(coding)
        if wbits is None:
            raise InvalidRequest(
                f"Content-Encoding {coding!r} is not supported; send the body as is, gzip or deflate", status=415
            )
        inflate = zlib.decompressobj(wbits=wbits)
    content = request.content
    if stall_timeout is None or content.is_eof():  # the whole body is already here: no timer
        raw = await _collect(content, limit, inflate)
    else:
        raw = await _collect_bounded(content, limit, inflate, stall_timeout)
    if inflate is not None and not inflate.eof:
        raise InvalidRequest(f"request body is truncated {coding} data")
    return raw


async def _collect(content: Any, limit: int, inflate: Any, guard: _Stall | None = None) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for piece in content.iter_any():
        if guard is not None:
            guard.last = guard.loop.time()
        chunk = piece
        if inflate is not None:
            try:
                chunk = inflate.decompress(piece, limit + 1 - size)
            except zlib.error:
                raise InvalidRequest("request body is not valid gzip/deflate data (see Content-Encoding)") from None
            if inflate.unconsumed_tail:
                raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes once decompressed")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Stall:
    """One lazy timer for a body read: each piece only notes the time; the timer, when due,
    expires the read if nothing came for `seconds` and otherwise re-arms itself."""

    def __init__(self, seconds: float, timeout: asyncio.Timeout) -> None:
        self.loop = asyncio.get_running_loop()
        self.seconds = seconds
        self.timeout = timeout
        self.last = self.loop.time()
        self.handle = self.loop.call_at(self.last + seconds, self.check)

    def check(self) -> None:
        now = self.loop.time()
        if now - self.last >= self.seconds:
            self.timeout.reschedule(now)
        else:
            self.handle = self.loop.call_at(self.last + self.seconds, self.check)


async def _collect_bounded(content: Any, limit: int, inflate: Any, stall_timeout: float) -> bytes:
    try:
        async with asyncio.timeout(None) as timeout:
            guard = _Stall(stall_timeout, timeout)
            try:
                return await _collect(content, limit, inflate, guard)
            finally:
                guard.handle.cancel()
    except TimeoutError:
        raise RequestTimeout(f"request body stalled: nothing of it for {stall_timeout:g} s") from None


def decode_json(raw: bytes) -> dict[str, Any]:
    """A body's JSON object, or a clear 400."""
    if not raw or raw.isspace():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        body = _decode.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's own guard: arrays or objects nested deeper than the stack allows
        raise InvalidRequest("request body nests JSON arrays or objects too deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {type(body).__name__}")
    return body


async def parse_json(raw: bytes) -> dict[str, Any]:
    """`decode_json`, in a worker thread for bodies over `DECODE_INLINE_MAX` bytes."""
    if len(raw) <= DECODE_INLINE_MAX:
        return decode_json(raw)
    return await asyncio.to_thread(decode_json, raw)
