"""Incremental framing for upstream byte streams: Server-Sent Events and NDJSON.

Both parsers take bytes split anywhere and return whole frames. The SSE parser is deliberately
tolerant of what real providers send: `:` comment lines (OpenRouter's `: OPENROUTER PROCESSING`),
`event:` lines present or absent, CRLF, and events with no blank line between them (each `data:` line
is one frame; no LLM provider splits a JSON payload over several `data:` lines).
"""

from __future__ import annotations

from typing import NamedTuple

from dragoman.errors import UpstreamError

MAX_LINE = 16 * 1024 * 1024  # a frame larger than this is an upstream fault, not a payload


class SSEFrame(NamedTuple):
    event: str | None
    data: bytes


_EVENT_NAMES = {
    name.encode(): name
    for name in (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    )
}


class SSEParser:
    __slots__ = ("_buf", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        if len(self._buf) > MAX_LINE:
            raise UpstreamError("upstream sent an SSE line longer than 16 MiB")
        frames: list[SSEFrame] = []
        event = self._event
        # one pass, inlined: this loop runs for every line of every translated stream
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                event = None
            elif line[:5] == b"data:":
                frames.append(SSEFrame(event, line[6:] if line[5:6] == b" " else line[5:]))
                event = None
            elif line[:6] == b"event:":
                name = line[6:].strip()
                event = _EVENT_NAMES.get(name) or name.decode("utf-8", "replace")
            # comments (":..."), id:, retry: and unknown fields are ignored
        self._event = event
        return frames

    def close(self) -> list[SSEFrame]:
        """Flush a last line that had no newline."""
        frames: list[SSEFrame] = []
        if self._buf:
            line, self._buf = self._buf.rstrip(b"\r"), b""
            self._line(line, frames)
        return frames

    def _line(self, line: bytes, frames: list[SSEFrame]) -> None:
        if not line:
            self._event = None
            return
        if line.startswith(b"data:"):
            data = line[5:]
            if data.startswith(b" "):
                data = data[1:]
            frames.append(SSEFrame(self._event, data))
            self._event = None
        elif line.startswith(b"event:"):
            self._event = line[6:].strip().decode("utf-8", "replace")
        # comments (":..."), id:, retry: and unknown fields are ignored


class NDJSONParser:
    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        if len(self._buf) > MAX_LINE:
            raise UpstreamError("upstream sent an NDJSON line longer than 16 MiB")
        return [ln for ln in (raw.strip() for raw in lines) if ln]

    def close(self) -> list[bytes]:
        rest, self._buf = self._buf.strip(), b""
        return [rest] if rest else []
