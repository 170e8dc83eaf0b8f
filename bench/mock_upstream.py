"""Zero-latency mock LLM upstream for the Dragoman benchmark.

Serves, on a raw asyncio protocol (uvloop when available), so that it is never the bottleneck:

* ``POST /v1/chat/completions`` — OpenAI Chat Completions, JSON or SSE (10 content chunks, a finish
  chunk, a ``choices: []`` usage chunk when ``stream_options.include_usage`` is set, ``data: [DONE]``).
* ``POST /v1/messages`` — Anthropic Messages, JSON or SSE (``message_start``, ``content_block_start``,
  10 ``text_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``).
* ``GET /health`` — ``{"status":"ok"}``; ``GET /v1/models`` lists ``gpt-bench`` and ``claude-bench``.
* ``GET /stats`` — request counters per path (``?reset=1`` zeroes them after reading), so a harness can
  check which upstream dialect a gateway really called.

It also acts as a light correctness oracle: a request without the provider's credentials, with a model
that still carries a ``provider/`` prefix, without ``messages`` (or, for Anthropic, ``max_tokens``), or
that is not valid JSON gets the provider's own error shape and status, and is counted in ``errors``.

Run: ``python bench/mock_upstream.py --port 9100`` (pin it with ``taskset -c 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import time
from typing import Any, cast

import msgspec

from scenarios import API_KEY, COMPLETION_TOKENS, FULL_TEXT, PROMPT_TOKENS, TEXT_CHUNKS

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


# --------------------------------------------------------------------------------------------- bodies


def _openai_usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def openai_json(model: str, created: int) -> bytes:
    return _json.encode(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": FULL_TEXT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _openai_usage(),
        }
    )


def openai_events(model: str, created: int, include_usage: bool) -> list[bytes]:
    """The SSE events of a streamed chat completion, each one complete (``data: ...\\n\\n``)."""
    base: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_bench",
    }
    events: list[dict[str, Any]] = []
    for i, piece in enumerate(TEXT_CHUNKS):
        delta: dict[str, Any] = {"content": piece}
        if i == 0:
            delta = {"role": "assistant", "content": piece, "refusal": None}
        chunk: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
        }
        if include_usage:
            chunk["usage"] = None
        events.append(chunk)
    finish: dict[str, Any] = {
        **base,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    }
    if include_usage:
        finish["usage"] = None
    events.append(finish)
    if include_usage:
        events.append({**base, "choices": [], "usage": _openai_usage()})
    out = [b"data: " + _json.encode(e) + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def anthropic_json(model: str) -> bytes:
    return _json.encode(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": FULL_TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
        }
    )


def anthropic_events(model: str) -> list[bytes]:
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bench",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    for piece in TEXT_CHUNKS:
        events.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [b"event: " + name.encode() + b"\ndata: " + _json.encode(body) + b"\n\n" for name, body in events]


# ------------------------------------------------------------------------------------------- framing


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
}


def http_response(status: int, body: bytes, content_type: bytes = b"application/json", close: bool = False) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
            b"Content-Type: " + content_type + b"\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n" if close else b"",
            b"\r\n",
            body,
        )
    )


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)


def chunked(events: list[bytes]) -> list[bytes]:
    """Each SSE event as one HTTP chunk, followed by the terminating zero-length chunk."""
    out = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    out.append(b"0\r\n\r\n")
    return out


# -------------------------------------------------------------------------------------------- server


class Stats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {OPENAI_PATH: 0, ANTHROPIC_PATH: 0, "stream": 0, "errors": 0}
        self.last_error: str | None = None

    def error(self, msg: str) -> None:
        self.counts["errors"] += 1
        self.last_error = msg


class Responses:
    """Pre-encoded responses, cached per (path, model, stream, include_usage)."""

    def __init__(self) -> None:
        self.created = int(time.time())
        self._cache: dict[tuple[str, str, bool, bool], tuple[bytes, list[bytes]]] = {}

    def get(self, path: str, model: str, stream: bool, include_usage: bool) -> tuple[bytes, list[bytes]]:
        key = (path, model, stream, include_usage)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if path == OPENAI_PATH:
            if stream:
                hit = (STREAM_HEAD, chunked(openai_events(model, self.created, include_usage)))
            else:
                hit = (http_response(200, openai_json(model, self.created)), [])
        elif stream:
            hit = (STREAM_HEAD, chunked(anthropic_events(model)))
        else:
            hit = (http_response(200, anthropic_json(model)), [])
        if len(self._cache) < 1024:
            self._cache[key] = hit
        return hit


def openai_error(status: int, message: str, code: str) -> bytes:
    body = _json.encode({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
    return http_response(status, body)


def anthropic_error(status: int, message: str, kind: str) -> bytes:
    body = _json.encode({"type": "error", "error": {"type": kind, "message": message}})
    return http_response(status, body)


class MockProtocol(asyncio.Protocol):
    __slots__ = ("_buf", "_server", "_transport")

    def __init__(self, server: MockServer) -> None:
        self._server = server
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            lines = head.split(b"\r\n")
            try:
                method, target, _version = lines[0].split(b" ", 2)
            except ValueError:
                self._bad(b"malformed request line")
                return
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            body_start = end + 4
            if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                decoded = _dechunk(buf, body_start)
                if decoded is None:
                    break  # wait for more
                body, consumed = decoded
            else:
                length = int(headers.get(b"content-length", b"0") or 0)
                if len(buf) - body_start < length:
                    break
                body = buf[body_start : body_start + length]
                consumed = body_start + length
            buf = buf[consumed:]
            close = headers.get(b"connection", b"").lower() == b"close"
            self._server.handle(self, method, target, headers, body, close)
            if self._transport is None or self._transport.is_closing():
                return
        self._buf = buf

    def send(self, head: bytes, chunks: list[bytes], close: bool) -> None:
        t = self._transport
        if t is None:
            return
        if not chunks:
            t.write(head)
        elif self._server.coalesce:
            t.write(head + b"".join(chunks))
        else:
            t.write(head)
            for c in chunks:  # one write per SSE event: separate TCP segments with TCP_NODELAY
                t.write(c)
        if close:
            t.close()

    def _bad(self, msg: bytes) -> None:
        if self._transport is not None:
            self._transport.write(http_response(400, msg, b"text/plain", close=True))
            self._transport.close()


def _dechunk(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            return None
        size = int(buf[pos:nl].split(b";", 1)[0], 16)
        start = nl + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", nl)
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 4
        if len(buf) < start + size + 2:
            return None
        parts.append(buf[start : start + size])
        pos = start + size + 2


class MockServer:
    def __init__(self, coalesce: bool = False, strict: bool = True) -> None:
        self.stats = Stats()
        self.responses = Responses()
        self.coalesce = coalesce
        self.strict = strict

    def handle(
        self,
        proto: MockProtocol,
        method: bytes,
        target: bytes,
        headers: dict[bytes, bytes],
        body: bytes,
        close: bool,
    ) -> None:
        path, _, query = target.partition(b"?")
        if method == b"POST" and path in (b"/v1/chat/completions", b"/v1/messages"):
            self._completion(proto, path.decode(), headers, body, close)
        elif method == b"GET" and path == b"/v1/models":
            out = _json.encode(
                {"object": "list", "data": [{"id": m, "object": "model"} for m in ("gpt-bench", "claude-bench")]}
            )
            proto.send(http_response(200, out, close=close), [], close)
        elif method == b"GET" and path == b"/health":
            proto.send(http_response(200, b'{"status":"ok"}', close=close), [], close)
        elif method == b"GET" and path == b"/stats":
            out = _json.encode({**self.stats.counts, "last_error": self.stats.last_error})
            if b"reset=1" in query:
                self.stats = Stats()
            proto.send(http_response(200, out, close=close), [], close)
        else:
            self.stats.error(f"unknown route {method.decode()} {target.decode()}")
            proto.send(http_response(404, b'{"error":"not found"}', close=close), [], close)

    def _completion(
        self, proto: MockProtocol, path: str, headers: dict[bytes, bytes], body: bytes, close: bool
    ) -> None:
        is_openai = path == OPENAI_PATH
        err = openai_error if is_openai else anthropic_error
        try:
            req = _decode.decode(body)
        except msgspec.DecodeError as e:
            self.stats.error(f"{path}: invalid JSON: {e}")
            proto.send(err(400, f"invalid JSON body: {e}", "invalid_request_error"), [], close)
            return
        if not isinstance(req, dict):
            self.stats.error(f"{path}: body is not an object")
            proto.send(err(400, "body must be a JSON object", "invalid_request_error"), [], close)
            return
        model = req.get("model")
        if self.strict:
            problem = _check(is_openai, headers, req)
            if problem is not None:
                status, message = problem
                self.stats.error(f"{path}: {message}")
                kind = "authentication_error" if status == 401 else "invalid_request_error"
                proto.send(err(status, message, kind), [], close)
                return
        stream = req.get("stream") is True
        include_usage = False
        if stream and is_openai:
            opts = req.get("stream_options")
            include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        self.stats.counts[path] += 1
        if stream:
            self.stats.counts["stream"] += 1
        head, chunks = self.responses.get(path, str(model), stream, include_usage)
        proto.send(head, chunks, close)


def _check(is_openai: bool, headers: dict[bytes, bytes], req: dict[str, Any]) -> tuple[int, str] | None:
    bearer = headers.get(b"authorization", b"")
    if is_openai:
        if bearer != b"Bearer " + API_KEY.encode():
            return 401, f"OpenAI upstream expects 'Authorization: Bearer {API_KEY}'"
    elif headers.get(b"x-api-key") != API_KEY.encode() and bearer != b"Bearer " + API_KEY.encode():
        return 401, f"Anthropic upstream expects 'x-api-key: {API_KEY}'"
    model = req.get("model")
    if not isinstance(model, str) or not model or "/" in model:
        return 404, f"model {model!r} not found (the gateway should strip its provider prefix)"
    if not isinstance(req.get("messages"), list):
        return 400, "messages: field required"
    if not is_openai and not isinstance(req.get("max_tokens"), int):
        return 400, "max_tokens: field required"
    return None


# ---------------------------------------------------------------------------------------------- main


async def serve(host: str, port: int, coalesce: bool, strict: bool) -> None:
    loop = asyncio.get_running_loop()
    server_state = MockServer(coalesce=coalesce, strict=strict)
    server = await loop.create_server(lambda: MockProtocol(server_state), host, port, reuse_address=True, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream listening on http://{host}:{port}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


def install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument(
        "--coalesce",
        action="store_true",
        help="write a whole stream in one write() instead of one write per SSE event",
    )
    p.add_argument("--lenient", action="store_true", help="skip auth/model/required-field checks")
    args = p.parse_args(argv)
    install_uvloop()
    asyncio.run(serve(args.host, args.port, args.coalesce, not args.lenient))


if __name__ == "__main__":
    main()
