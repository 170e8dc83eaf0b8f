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


class _StartMessage(msgspec.Struct):
    usage: Any = None


class _Start(msgspec.Struct):  # message_start, its usage alone (the rest is skipped, not built)
    type: Any = None
    message: _StartMessage | None = None


class _Delta(msgspec.Struct):  # message_delta
    type: Any = None
    delta: Any = None
    usage: Any = None


_start = msgspec.json.Decoder(_Start)
_delta = msgspec.json.Decoder(_Delta)


def _payload_at(data: bytes, at: int) -> bytes | None:
    """The payload of the SSE `data:` line holding byte `at` (None for another kind of line)."""
    start = data.rfind(b"\n", 0, at) + 1
    if data[start : start + 5] != b"data:":
        return None
    end = data.find(b"\n", at)
    return data[start + 5 : end if end >= 0 else len(data)]  # (JSON skips the space and a CR)


class AnthropicStreamTap:
    __slots__ = ("_bytes", "feed")

    def __init__(self) -> None:
        self._bytes = ByteTap(END_MARKERS, TOOL_MARKERS, spaced=TOOL_MARKERS_SPACED)
        self.feed = self._bytes.feed  # one list append per chunk

    def ended(self) -> bool:
        return self._bytes.ended

    def finish(self) -> Tally:
        tally = Tally(ended=self._bytes.ended, tool_calls=self._bytes.counted)
        if self._usual(tally):
            return tally
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

    def _usual(self, tally: Tally) -> bool:
        """The usual stream read with two searches and two typed decodes: message_start in the head,
        one message_delta in the last lines, no error. False (nothing set): read it all, as above."""
        end = last_lines(self._bytes.tail())
        at = end.rfind(b"message_delta")
        if at < 0 or b'"error"' in end:
            return False
        # one message_delta event: before its data, only its own `event:` line names it
        before = end.rfind(b"message_delta", 0, at)
        if before >= 0 and (end[before - 7 : before] != b"event: " or end.rfind(b"message_delta", 0, before) >= 0):
            return False
        head = self._bytes.head()
        begin = head.find(b"message_start")
        if begin >= 0 and head[begin - 7 : begin] == b"event: ":  # the event's name: its data follows
            begin = head.find(b"message_start", begin + 13)
        last, first = _payload_at(end, at), _payload_at(head, begin) if begin >= 0 else None
        if last is None or (begin >= 0 and first is None):
            return False
        try:
            delta = _delta.decode(last)
            start = _start.decode(first) if first is not None else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        if delta.type != "message_delta" or (start is not None and start.type != "message_start"):
            return False
        wire: dict[str, Any] | None = None
        if start is not None and start.message is not None and isinstance(start.message.usage, dict):
            wire = start.message.usage
        if isinstance(delta.delta, dict) and delta.delta.get("stop_reason") is not None:
            tally.stop_reason = stop_reason(delta.delta["stop_reason"])
        if isinstance(delta.usage, dict):
            wire = {**(wire or {}), **{k: v for k, v in delta.usage.items() if v is not None}}
        tally.usage = billed_usage(wire) if wire is not None else None
        return True
