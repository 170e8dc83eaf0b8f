"""Reading a same-dialect Responses reply without translating it: usage, stop reason and tool calls
of a `response` body (one partial decode), and of an event stream (byte scans per chunk; the final
`response.completed` / `.incomplete` / `.failed` event is read from the kept tail at the end).

The final event repeats the whole output, so it can outgrow the kept tail; its `usage` object comes
last, and is then read on its own from the tail's bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.dialects.base import Tally
from dragoman.dialects.responses.decoder import failure
from dragoman.dialects.responses.wire import stop_from_status, usage_from_wire
from dragoman.dialects.tap import ByteTap
from dragoman.transport.framing import SSEParser

END_MARKERS = (
    b'"response.completed"',
    b'"response.incomplete"',
    b'"response.failed"',
    b'"type":"error"',
    b'"type": "error"',
)
# one per call: the event that finishes its arguments (or a freeform tool's input)
TOOL_MARKERS = (b'"response.function_call_arguments.done"', b'"response.custom_tool_call_input.done"')
_CALL_TYPES = ("function_call", "custom_tool_call")
_FINAL = (b"response.completed", b"response.incomplete", b"response.failed")


class _Item(msgspec.Struct):
    type: Any = None


class _Body(msgspec.Struct):
    status: Any = None
    incomplete_details: Any = None
    usage: Any = None
    output: list[_Item] | None = None
    error: Any = None


_body = msgspec.json.Decoder(_Body)
_any = msgspec.json.Decoder()


def _message(err: Any) -> str:
    message = err.get("message") if isinstance(err, dict) else err
    return message if isinstance(message, str) and message else "upstream error"


def summarize(raw: bytes) -> Tally:
    """Raises msgspec.DecodeError when the body is not JSON (a 200 the client could not parse)."""
    try:
        body = _body.decode(raw)
    except msgspec.ValidationError:
        return Tally()
    if body.error is not None and (body.status == "failed" or body.output is None):
        return Tally(error=_message(body.error))
    calls = sum(1 for item in body.output or () if item.type in _CALL_TYPES)
    return Tally(
        usage=usage_from_wire(body.usage) if isinstance(body.usage, dict) else None,
        stop_reason=stop_from_status(body.status, body.incomplete_details, calls > 0),
        tool_calls=calls,
    )


def _usage_in(data: bytes) -> dict[str, Any] | None:
    """The last `"usage":{...}` object in raw bytes (its values hold no braces or strings)."""
    at = data.rfind(b'"usage":{')
    if at < 0:
        return None
    start = at + len(b'"usage":')
    depth = 0
    for end in range(start, len(data)):
        ch = data[end]
        if ch == 0x7B:
            depth += 1
        elif ch == 0x7D:
            depth -= 1
            if depth == 0:
                try:
                    found = _any.decode(data[start : end + 1])
                except msgspec.DecodeError:
                    return None
                return found if isinstance(found, dict) else None
    return None


_INCOMPLETE = b'"response.incomplete"'


class ResponsesStreamTap:
    __slots__ = ("_bytes", "feed")

    def __init__(self) -> None:
        # the final event's kind and reason are at its head, which a long event pushes out of the tail
        self._bytes = ByteTap(END_MARKERS, TOOL_MARKERS, note=_INCOMPLETE)
        self.feed = self._bytes.feed

    def ended(self) -> bool:
        return self._bytes.ended

    def finish(self) -> Tally:
        tally = Tally(ended=self._bytes.ended, tool_calls=self._bytes.counted)
        tail = self._bytes.tail()
        parser = SSEParser()
        frames = parser.feed(tail)
        frames.extend(parser.close())
        final: dict[str, Any] | None = None
        for frame in frames:
            data = frame.data
            if b'"error"' in data[:40] or any(kind in data[:64] for kind in _FINAL):
                try:
                    obj = _any.decode(data)
                except msgspec.DecodeError:
                    continue
                if isinstance(obj, dict):
                    final = obj
        if final is not None:
            kind = final.get("type")
            resp = final.get("response")
            resp = resp if isinstance(resp, dict) else {}
            if kind == "error" or kind == "response.failed":
                tally.error = failure(resp if kind == "response.failed" else final).message
            if isinstance(resp.get("usage"), dict):
                tally.usage = usage_from_wire(resp["usage"])
            output = resp.get("output")
            if isinstance(output, list):  # exact, where byte markers may straddle two chunks
                tally.tool_calls = sum(1 for i in output if isinstance(i, dict) and i.get("type") in _CALL_TYPES)
            if kind in ("response.completed", "response.incomplete"):
                tally.stop_reason = stop_from_status(
                    resp.get("status"), resp.get("incomplete_details"), tally.tool_calls > 0
                )
            return tally
        # the final event did not fit in the tail: its usage, and which event it was, from the bytes
        tail = self._bytes.raw_tail()
        usage = _usage_in(tail)
        if usage is not None:
            tally.usage = usage_from_wire(usage)
        incomplete = self._bytes.noted
        if incomplete is not None:
            tally.stop_reason = "refusal" if b'"content_filter"' in incomplete else "max_tokens"
        elif self._bytes.ended and tally.error is None:
            tally.stop_reason = "tool_use" if tally.tool_calls else "end_turn"
        return tally
