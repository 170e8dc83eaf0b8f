"""Reading a same-dialect Anthropic reply without translating it: usage, stop reason and tool calls of
a message body (one partial decode), and of an event stream (byte scans per chunk; `message_start`
from the head, the last `message_delta` from the tail). Usage is what is billed (`billed_usage`)."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.dialects.anthropic.stream import billed_usage, stop_reason
from dragoman.dialects.base import Tally
from dragoman.dialects.tap import ByteTap, data_lines, first_data_line, last_lines

END_MARKERS = (b"message_stop", b"event: error", b'"type":"error"', b'"type": "error"')
TOOL_MARKERS = (b'"type":"tool_use"',)
TOOL_MARKERS_SPACED = (b'"type": "tool_use"',)


class _Block(msgspec.Struct):
    type: Any = None


class _Body(msgspec.Struct):
    type: Any = None
    usage: Any = None
    stop_reason: Any = None
    content: list[_Block] | None = None
    error: Any = None


_body = msgspec.json.Decoder(_Body)
_any = msgspec.json.Decoder()


class _Unread(msgspec.Struct):
    type: str | None = None
    error: None = None  # a body with an error is read in full


_unread = msgspec.json.Decoder(_Unread)


def check(raw: bytes) -> Tally:
    """`summarize` for when nobody reads usage: the body is JSON (msgspec.DecodeError otherwise),
    and an error (`type: error`, or an `error` field) is read in full; nothing else is picked out."""
    try:
        body = _unread.decode(raw)
    except msgspec.ValidationError:
        return summarize(raw)
    return summarize(raw) if body.type == "error" else Tally()


def summarize(raw: bytes) -> Tally:
    """Raises msgspec.DecodeError when the body is not JSON (a 200 the client could not parse)."""
    try:
        body = _body.decode(raw)
    except msgspec.ValidationError:
        return Tally()
    if body.type == "error" or (body.error is not None and body.content is None):
        err = body.error
        message = err.get("message") if isinstance(err, dict) else err
        return Tally(error=message if isinstance(message, str) else "upstream error")
    return Tally(
        usage=billed_usage(body.usage) if isinstance(body.usage, dict) else None,
        stop_reason=stop_reason(body.stop_reason),
        tool_calls=sum(1 for b in body.content or () if b.type == "tool_use"),
    )


def _events(data: bytes, *markers: bytes) -> list[Any]:
    return _decoded(data_lines(data, *markers))


def _decoded(payloads: list[bytes]) -> list[Any]:
    out = []
    for payload in payloads:
        try:
            obj = _any.decode(payload)
        except msgspec.DecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


class AnthropicStreamTap:
    __slots__ = ("_bytes", "feed")

    def __init__(self) -> None:
        self._bytes = ByteTap(END_MARKERS, TOOL_MARKERS, spaced=TOOL_MARKERS_SPACED)
        self.feed = self._bytes.feed  # one list append per chunk

    def ended(self) -> bool:
        return self._bytes.ended

    def finish(self) -> Tally:
        tally = Tally(ended=self._bytes.ended, tool_calls=self._bytes.counted)
        # as the stream decoder reads it: message_start's usage, then each field message_delta
        # reports (cumulative, so the last one counts) replaces it
        wire: dict[str, Any] | None = None
        start = first_data_line(self._bytes.head(), b"message_start")
        for obj in _decoded([start] if start is not None else []):
            if obj.get("type") == "message_start":
                msg = obj.get("message")
                if isinstance(msg, dict) and isinstance(msg.get("usage"), dict):
                    wire = dict(msg["usage"])
        tail = self._bytes.tail()
        end = last_lines(tail)
        if len(end) < len(tail) and b"message_delta" not in end and b'"error"' not in end:
            end = tail  # the last events did not hold the report: all of them
        for obj in _events(end, b"message_delta", b'"error"'):
            kind = obj.get("type")
            if kind == "message_delta":
                delta = obj.get("delta")
                if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                    tally.stop_reason = stop_reason(delta["stop_reason"])
                usage = obj.get("usage")
                if isinstance(usage, dict):
                    wire = {**(wire or {}), **{k: v for k, v in usage.items() if v is not None}}
            elif kind == "error":
                err = obj.get("error")
                message = err.get("message") if isinstance(err, dict) else None
                tally.error = message if isinstance(message, str) else "upstream stream error"
        tally.usage = billed_usage(wire) if wire is not None else None
        return tally
