"""Reading a same-dialect OpenAI reply without translating it: usage, finish reason and tool calls of
a chat.completion body (one partial decode), and of a chunk stream (byte scans per chunk; the usage
and finish chunks, which come last, are decoded at the end)."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import Usage, merge_usage
from dragoman.dialects.base import Tally
from dragoman.dialects.openai.stream import error_from_payload, stop_from_openai, usage_from_openai
from dragoman.dialects.tap import ByteTap, data_lines

END_MARKERS = (b"[DONE]", b'"finish_reason":"', b'"finish_reason": "', b'"error"')
# a tool call's first delta names its type once; later fragments carry only arguments
TOOL_MARKERS = (b'"type":"function"', b'"type": "function"')


class _Message(msgspec.Struct):
    tool_calls: Any = None


class _Choice(msgspec.Struct):
    finish_reason: Any = None
    message: _Message | None = None
    usage: Any = None  # Moonshot


class _Body(msgspec.Struct):
    usage: Any = None
    choices: list[_Choice] | None = None
    error: Any = None


_body = msgspec.json.Decoder(_Body)
_any = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()
USAGE_OBJECT = (b'"usage":{', b'"usage": {')  # a report (chunks without one say `"usage":null`, or nothing)
EMPTY_CHOICES = (b'"choices":[]', b'"choices": []')


def strip_usage(lines: bytes) -> bytes:
    """Whole SSE lines without the usage reports the gateway asked for on a client's behalf: the
    `choices: []` usage chunk goes; a chunk that carries usage beside its choices (DeepSeek,
    OpenRouter, Moonshot's `choices[0].usage`) loses only its usage. Other lines are left as sent."""
    if not any(marker in lines for marker in USAGE_OBJECT):
        return lines
    out = []
    for line in lines.splitlines(keepends=True):
        if line.startswith(b"data:") and any(marker in line for marker in USAGE_OBJECT):
            if any(marker in line for marker in EMPTY_CHOICES):
                continue
            line = _without_usage(line)
        out.append(line)
    return b"".join(out)


_FINISH_MARKERS = (b'"finish_reason":"', b'"finish_reason": "')  # set, not null


def _without_usage(line: bytes) -> bytes:
    payload = line[len(b"data:") :]
    try:
        chunk = _any.decode(payload)
    except msgspec.DecodeError:
        return line
    if not isinstance(chunk, dict):
        return line
    chunk.pop("usage", None)
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict):
            choice.pop("usage", None)
    end = line[len(line.rstrip(b"\r\n")) :]
    return b"data: " + _encode.encode(chunk) + end


def summarize(raw: bytes) -> Tally:
    """Raises msgspec.DecodeError when the body is not JSON (a 200 the client could not parse)."""
    try:
        body = _body.decode(raw)
    except msgspec.ValidationError:
        return Tally()  # JSON, but not shaped like a chat.completion: nothing to read
    tally = Tally()
    if isinstance(body.usage, dict):
        tally.usage = usage_from_openai(body.usage)
    choice = body.choices[0] if body.choices else None
    if choice is not None:
        if isinstance(choice.usage, dict):
            tally.usage = usage_from_openai(choice.usage)
        if isinstance(choice.finish_reason, str):
            tally.stop_reason = stop_from_openai(choice.finish_reason)
        calls = choice.message.tool_calls if choice.message is not None else None
        tally.tool_calls = len(calls) if isinstance(calls, list) else 0
    elif body.error is not None:
        err = error_from_payload({"error": body.error})
        tally.error = err.message if err is not None else "upstream error"
    return tally


class OpenAIStreamTap:
    __slots__ = ("_bytes", "feed")

    def __init__(self) -> None:
        self._bytes = ByteTap(END_MARKERS, TOOL_MARKERS)
        self.feed = self._bytes.feed  # one list append per chunk

    def finish(self) -> Tally:
        tally = Tally(ended=self._bytes.ended, tool_calls=self._bytes.counted)
        usage: Usage | None = None
        # every chunk may say `"usage":null` and `"finish_reason":null`: only the lines with a report,
        # an error or a set finish reason are decoded
        for data in data_lines(self._bytes.tail(), *USAGE_OBJECT, b'"error"', *_FINISH_MARKERS):
            try:
                obj = _any.decode(data)
            except msgspec.DecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            err = error_from_payload(obj)
            if err is not None:
                tally.error = err.message
                continue
            reports = [obj.get("usage")]
            for choice in obj.get("choices") or ():
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    reports.append(choice.get("usage"))
                    finish = choice.get("finish_reason")
                    if isinstance(finish, str) and finish:
                        tally.stop_reason = stop_from_openai(finish)
            for report in reports:
                if isinstance(report, dict):
                    new = usage_from_openai(report)
                    usage = new if usage is None else merge_usage(usage, new)
        tally.usage = usage
        return tally
