"""Reading a same-dialect OpenAI reply without translating it: usage, finish reason and tool calls of
a chat.completion body (one partial decode), and of a chunk stream (byte scans per chunk; the usage
and finish chunks, which come last, are decoded at the end)."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import Usage, merge_usage
from dragoman.dialects.base import Tally
from dragoman.dialects.openai.stream import error_from_payload, openai_usage, stop_from_openai, usage_from_openai
from dragoman.dialects.tap import ByteTap, data_lines, last_lines, styled

END_MARKERS = (b"[DONE]", b'"finish_reason":"', b'"finish_reason": "', b'"error"')
# a tool call's first delta names its type once; later fragments carry only arguments
TOOL_MARKERS = (b'"type":"function"',)
TOOL_MARKERS_SPACED = (b'"type": "function"',)


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


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _WireUsage(msgspec.Struct):
    """A usage report decoded typed (no dict, no per-field checks); one that does not fit (a bool,
    a float) is read the loose way, by `usage_from_openai`."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    prompt_cache_hit_tokens: int | None = None  # DeepSeek
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _ChunkChoice(msgspec.Struct):
    index: int = 0
    finish_reason: str | None = None
    usage: _WireUsage | None = None  # Moonshot


class _Chunk(msgspec.Struct):
    usage: _WireUsage | None = None
    choices: list[_ChunkChoice] | None = None
    error: Any = None


def _usage(u: _WireUsage) -> Usage:
    """`openai_usage` of a typed report."""
    details = u.prompt_tokens_details
    done = u.completion_tokens_details
    return openai_usage(
        u.prompt_tokens or 0,
        u.completion_tokens or 0,
        (details.cached_tokens if details else None) or u.cached_tokens or u.prompt_cache_hit_tokens or 0,
        (details.cache_write_tokens if details else None) or 0,
        done.reasoning_tokens if done is not None else None,
    )


_body = msgspec.json.Decoder(_Body)
_chunk = msgspec.json.Decoder(_Chunk)
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
# what the usual ending is searched for, per JSON style: a report, a set finish reason, an error
_COMPACT = (b'"usage":{', b'"finish_reason":"', b'"error"')
_SPACED = (b'"usage": {', b'"finish_reason": "', b'"error"')
# the tap's tool-call markers of a style -> the ending's markers of the same style
_STYLES: dict[tuple[bytes, ...] | None, tuple[bytes, ...]] = {TOOL_MARKERS: _COMPACT, TOOL_MARKERS_SPACED: _SPACED}


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


class _TypedChoice(msgspec.Struct):
    finish_reason: str | None = None
    message: _Message | None = None
    usage: _WireUsage | None = None


class _TypedBody(msgspec.Struct):
    usage: _WireUsage | None = None
    choices: list[_TypedChoice] | None = None
    error: None = None  # a body with an error is read the loose way


_typed_body = msgspec.json.Decoder(_TypedBody)


class _Unread(msgspec.Struct):
    error: None = None  # a body with an error is read in full


_unread = msgspec.json.Decoder(_Unread)


def check(raw: bytes) -> Tally:
    """`summarize` for when nobody reads usage: the body is JSON (msgspec.DecodeError otherwise),
    and an error envelope is read in full; nothing else is picked out."""
    try:
        _unread.decode(raw)
    except msgspec.ValidationError:
        return summarize(raw)
    return Tally()


def summarize(raw: bytes) -> Tally:
    """Raises msgspec.DecodeError when the body is not JSON (a 200 the client could not parse)."""
    try:
        typed = _typed_body.decode(raw)
    except msgspec.ValidationError:
        return _summarize_loosely(raw)
    tally = Tally(usage=_usage(typed.usage) if typed.usage is not None else None)
    if typed.choices:
        choice = typed.choices[0]
        if choice.usage is not None:
            tally.usage = _usage(choice.usage)
        if choice.finish_reason is not None:
            tally.stop_reason = stop_from_openai(choice.finish_reason)
        calls = choice.message.tool_calls if choice.message is not None else None
        tally.tool_calls = len(calls) if isinstance(calls, list) else 0
    return tally


def _summarize_loosely(raw: bytes) -> Tally:
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
        self._bytes = ByteTap(END_MARKERS, TOOL_MARKERS, spaced=TOOL_MARKERS_SPACED)
        self.feed = self._bytes.feed  # one list append per chunk

    def ended(self) -> bool:
        return self._bytes.ended

    def finish(self) -> Tally:
        tally = Tally(ended=self._bytes.ended, tool_calls=self._bytes.counted)
        tail = self._bytes.tail()
        end = last_lines(tail)
        if not self._last(end, tally, _STYLES.get(self._bytes.style)):  # not the usual ending: every line that may say
            tally.stop_reason = None
            tally.usage = self._read(tail, tally)
        return tally

    @staticmethod
    def _last(data: bytes, tally: Tally, markers: tuple[bytes, ...] | None = None) -> bool:
        """The usual ending, read from the back: the last usage report, the last set finish reason
        and an error, each found by one backward search (in the JSON style of the stream, when the
        tap did not read it already). False when a line does not decode as expected, or the finish
        is not choice 0's."""
        if markers is None:
            markers = styled(data, _COMPACT, _SPACED)
        starts: list[int] = []  # where the lines holding a marker start (line_at, inlined: per request)
        for marker in markers:
            at = data.rfind(marker)
            if at >= 0:
                start = data.rfind(b"\n", 0, at) + 1
                if start not in starts:
                    starts.append(start)
        if len(starts) > 1:
            starts.sort()
        for start in starts:
            if data[start : start + 5] != b"data:":
                return False
            end = data.find(b"\n", start)
            line = data[start + 5 : end if end >= 0 else len(data)]
            try:
                chunk = _chunk.decode(line)  # (the payload after "data:"; JSON skips the space and a CR)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return False
            if chunk.error is not None:
                return False  # the loose reading names the error
            if chunk.usage is not None:
                tally.usage = _usage(chunk.usage)
            for choice in chunk.choices or ():
                if choice.index == 0:
                    if choice.usage is not None:
                        tally.usage = _usage(choice.usage)
                    if choice.finish_reason:
                        tally.stop_reason = stop_from_openai(choice.finish_reason)
        return tally.stop_reason is not None

    @staticmethod
    def _read(data: bytes, tally: Tally) -> Usage | None:
        usage: Usage | None = None
        # every chunk may say `"usage":null` and `"finish_reason":null`: only the lines with a report,
        # an error or a set finish reason are decoded
        for line in data_lines(data, *USAGE_OBJECT, b'"error"', *_FINISH_MARKERS):
            try:
                obj = _any.decode(line)
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
        return usage
