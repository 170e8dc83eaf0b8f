"""Reading a same-dialect Ollama reply without translating it: usage, stop reason and tool calls of a
/api/chat body (one partial decode), and of an NDJSON stream (byte scans per chunk; the `done` line,
which comes last, is decoded at the end)."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import Usage
from dragoman.dialects.base import Tally
from dragoman.dialects.ollama.wire import stop_reason_of
from dragoman.dialects.tap import ByteTap, lines_with

END_MARKERS = (b'"done":true', b'"done": true', b'"error"')
TOOL_MARKERS = (b'"function":', b'"function" :')


class _Message(msgspec.Struct):
    tool_calls: Any = None


class _Line(msgspec.Struct):
    done: Any = None
    done_reason: Any = None
    prompt_eval_count: Any = None
    eval_count: Any = None
    message: _Message | None = None
    error: Any = None


_line = msgspec.json.Decoder(_Line)


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _read(line: _Line, tally: Tally, calls: bool) -> None:
    if line.error is not None:
        tally.error = line.error if isinstance(line.error, str) else "upstream error"
        return
    if line.done is True:
        tally.ended = True
        tally.usage = Usage(input_tokens=_int(line.prompt_eval_count), output_tokens=_int(line.eval_count))
        tally.stop_reason = stop_reason_of(line.done_reason, calls)


def summarize(raw: bytes) -> Tally:
    """Raises msgspec.DecodeError when the body is not JSON (a 200 the client could not parse)."""
    try:
        line = _line.decode(raw)
    except msgspec.ValidationError:
        return Tally()
    calls = line.message.tool_calls if line.message is not None else None
    tally = Tally(tool_calls=len(calls) if isinstance(calls, list) else 0)
    _read(line, tally, bool(tally.tool_calls))
    tally.ended = False
    return tally


class OllamaStreamTap:
    __slots__ = ("_bytes", "feed")

    def __init__(self) -> None:
        self._bytes = ByteTap(END_MARKERS, TOOL_MARKERS)
        self.feed = self._bytes.feed  # one list append per chunk

    def ended(self) -> bool:
        return self._bytes.ended

    def finish(self) -> Tally:
        tally = Tally(tool_calls=self._bytes.counted)
        for raw in lines_with(self._bytes.tail(), *END_MARKERS):  # not the `"done":false` lines
            try:
                line = _line.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            _read(line, tally, bool(tally.tool_calls))
        tally.ended = tally.ended or self._bytes.ended
        return tally
