"""OpenAI Chat Completions streaming: SSE chunks ⇄ canonical events, plus the usage and stop-reason
mappings the non-streaming codec (`dragoman.dialects.openai`) shares.

Decoder rules worth knowing:

* Parts: `delta.reasoning_content` (DeepSeek, Moonshot, vLLM) or `delta.reasoning` (OpenRouter,
  Ollama /v1) open a Reasoning part, `delta.content` a Text part, `delta.refusal` a Text part marked
  `extra={"openai": {"type": "refusal"}}`; a change of kind closes the open part. Empty strings open
  nothing (DeepSeek's `reasoning_content:""` first delta, OpenRouter's `content:""` on every chunk).
* `delta.reasoning_details` fragments go out as `OpaqueDelta(dialect="openai",
  data={"reasoning_details": [...]})` on the Reasoning part, unchanged; `merge_reasoning_details`
  folds the fragments into the array a client replays (one entry per detail `type` + `index`).
* Tool calls are keyed by `index`. A call's first delta opens a ToolCall part (id kept verbatim);
  later `function.arguments` fragments become ArgumentsDelta at once. When a new call starts while
  the open one's arguments are not yet a complete JSON object, the new call (and its fragments) is
  queued and flushed as soon as the open call's JSON completes, or at the finish. Arguments that are
  still empty count as incomplete: a call that never sends arguments only delays the next one, while
  closing it early would lose fragments sent later. A fragment for a call already closed is dropped.
* Usage is read wherever it comes (top-level `usage` on any chunk, OpenAI's final `choices:[]` chunk,
  DeepSeek's finish chunk, Moonshot's `choices[0].usage`); later reports win field by field.
  `MessageDelta` + `MessageStop` go out at `[DONE]`, or at close when a finish_reason was seen.
* `{"error": {...}}`, `{"error": "text"}` or the Anthropic envelope `{"type":"error","error":{...}}`
  (OpenCode Zen) inside the stream end it with a StreamError. Choices other than index 0 (n>1)
  are ignored.

Encoder rules: SignatureDelta, redacted reasoning, Opaque parts and other dialects' OpaqueDeltas have
no Chat Completions form and produce no bytes; an `OpaqueDelta("openai", reasoning_details)` becomes
`delta.reasoning_details`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from dragoman.canonical import (
    ArgumentsDelta,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    OpaqueDelta,
    PartStart,
    PartStop,
    Reasoning,
    ReasoningDelta,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    ToolCall,
    Usage,
    merge_usage,
)
from dragoman.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamError,
    for_anthropic_type,
    for_upstream_status,
    redact,
)
from dragoman.transport.framing import SSEParser

NS = "openai"

_json = msgspec.json.Decoder()
_enc = msgspec.json.Encoder()

# ---- shared mappings ----------------------------------------------------------------------------

STOP_FROM_OPENAI: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

FINISH_FROM_STOP: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI error `type`/`code` names -> the HTTP status they come with.
_STATUS_BY_OPENAI_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "insufficient_quota": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "server_is_overloaded": 503,
    "timeout": 504,
}


def stop_from_openai(finish_reason: str | None) -> StopReason | None:
    if finish_reason is None:
        return None
    return STOP_FROM_OPENAI.get(finish_reason, "end_turn")


def finish_from_stop(stop: str | None) -> str:
    return FINISH_FROM_STOP.get(stop or "end_turn", "stop")


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def openai_usage(prompt: int, completion: int, cache_read: int, cache_write: int, reasoning: int | None) -> Usage:
    """OpenAI `prompt_tokens` includes cached input; canonical `input_tokens` does not. Cache reads
    are the first of `prompt_tokens_details.cached_tokens`, `cached_tokens` (Moonshot) and
    `prompt_cache_hit_tokens` (DeepSeek) that is set."""
    return Usage(
        input_tokens=max(prompt - cache_read - cache_write, 0),
        output_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def usage_from_openai(u: dict[str, Any]) -> Usage:
    """`openai_usage` of a report as decoded JSON, whatever its values are."""
    ptd = u.get("prompt_tokens_details")
    ptd = ptd if isinstance(ptd, dict) else {}
    cache_read = (
        _int(ptd.get("cached_tokens")) or _int(u.get("cached_tokens")) or _int(u.get("prompt_cache_hit_tokens"))
    )
    ctd = u.get("completion_tokens_details")
    reasoning = ctd.get("reasoning_tokens") if isinstance(ctd, dict) else None
    return openai_usage(
        _int(u.get("prompt_tokens")),
        _int(u.get("completion_tokens")),
        cache_read,
        _int(ptd.get("cache_write_tokens")),
        reasoning if isinstance(reasoning, int) and not isinstance(reasoning, bool) else None,
    )


def usage_to_openai(u: Usage) -> dict[str, Any]:
    details: dict[str, Any] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        details["cache_write_tokens"] = u.cache_write_tokens
    out: dict[str, Any] = {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": details,
    }
    if u.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return out


_CONCAT = ("text", "summary", "data", "signature")


def merge_reasoning_details(fragments: list[Any]) -> list[Any]:
    """Fold streamed `reasoning_details` fragments into the replayable array: fragments with the same
    `type` and `index` (or, without an index, consecutive fragments of the same type) are one detail
    (OpenRouter numbers a summary and the encrypted blob that follows it both index 0); their string
    fields text/summary/data/signature are concatenated, other fields keep the first value seen."""
    merged: list[dict[str, Any]] = []
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for frag in fragments:
        if not isinstance(frag, dict):
            continue
        index = frag.get("index")
        key = (frag.get("type"), index)
        cur = seen.get(key) if index is not None else None
        if cur is None and index is None and merged and merged[-1].get("type") == frag.get("type"):
            cur = merged[-1]
        if cur is None:
            cur = dict(frag)
            merged.append(cur)
            if index is not None:
                seen[key] = cur
            continue
        for k, v in frag.items():
            if k in _CONCAT and isinstance(v, str):
                prev = cur.get(k)
                cur[k] = prev + v if isinstance(prev, str) else v
            elif cur.get(k) is None:
                cur[k] = v
    return merged


def error_from_payload(obj: dict[str, Any]) -> GatewayError | None:
    """The error a payload carries, if any: the OpenAI envelope (`code` may be OpenRouter's HTTP
    status number), the Anthropic envelope (OpenCode Zen) or `{"error": "text"}`."""
    err = obj.get("error")
    if isinstance(err, dict):
        message = err.get("message")
        message = redact(message) if isinstance(message, str) and message else "upstream error"
        etype = err.get("type")
        if obj.get("type") == "error" and isinstance(etype, str):
            return for_anthropic_type(etype)(message)
        code = err.get("code")
        param = err.get("param") if isinstance(err.get("param"), str) else None
        status = _status_of(code, etype)
        cls = for_upstream_status(status)
        return cls(
            message,
            param=param,
            code=code if isinstance(code, str) else None,
            status=status if cls is InvalidRequest else None,
        )
    if isinstance(err, str) and err:
        return UpstreamError(redact(err))
    return None


def _status_of(code: Any, etype: Any) -> int:
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    for name in (code, etype):
        if isinstance(name, str) and name in _STATUS_BY_OPENAI_TYPE:
            return _STATUS_BY_OPENAI_TYPE[name]
    return 500


def stream_error(err: GatewayError) -> StreamError:
    return StreamError(status=err.status, error_type=err.anthropic_type, message=err.message)


# ---- decoder ------------------------------------------------------------------------------------

_QUEUED, _OPEN, _CLOSED = 0, 1, 2


class _Call:
    __slots__ = ("args", "id", "index", "name", "state")

    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.index = -1
        self.args: list[str] = []
        self.state = _QUEUED


def _complete(args: list[str]) -> bool:
    """Whether the arguments so far are a whole JSON object (one cannot grow into more JSON)."""
    text = "".join(args).strip()
    if not text.startswith("{") or not text.endswith("}"):
        return False
    try:
        return isinstance(_json.decode(text), dict)
    except msgspec.DecodeError:
        return False


class OpenAIStreamDecoder:
    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._next = 0
        self._open: int | None = None
        self._kind: str | None = None  # text | refusal | reasoning | tool
        self._call: _Call | None = None  # the open tool call
        self._calls: dict[int, _Call] = {}
        self._queue: list[_Call] = []
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._ended = False

    # -- public

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        if self._ended:
            return out
        try:
            frames = self._sse.feed(chunk)
        except UpstreamError as e:
            self._fail(out, stream_error(e))
            return out
        for frame in frames:
            self._frame(frame.event, frame.data, out)
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        if self._ended:
            return out
        for frame in self._sse.close():
            self._frame(frame.event, frame.data, out)
        if self._finish is not None:
            self._end(out)
        elif not self._ended:
            self._fail(out, StreamError(502, "api_error", "upstream stream ended before completion"))
        return out

    # -- frames

    def _frame(self, event: str | None, data: bytes, out: list[Event]) -> None:
        data = data.strip()
        if not data or self._ended:
            return
        if data == b"[DONE]":
            self._end(out)
            return
        try:
            obj = _json.decode(data)
        except msgspec.DecodeError:
            self._fail(out, StreamError(502, "api_error", "upstream sent a malformed stream chunk"))
            return
        if not isinstance(obj, dict):
            return
        err = error_from_payload(obj)
        if err is None and event == "error":
            err = UpstreamError("upstream stream error")
        if err is not None:
            self._fail(out, stream_error(err))
            return
        if not self._started:
            self._start_message(obj, out)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._add_usage(usage)
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            usage = choice.get("usage")  # Moonshot
            if isinstance(usage, dict):
                self._add_usage(usage)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self._finish = finish
                self._close_all(out)

    def _start_message(self, obj: dict[str, Any], out: list[Event]) -> None:
        self._started = True
        mid, model = obj.get("id"), obj.get("model")
        out.append(MessageStart(id=mid if isinstance(mid, str) else "", model=model if isinstance(model, str) else ""))

    def _add_usage(self, u: dict[str, Any]) -> None:
        new = usage_from_openai(u)
        self._usage = new if self._usage is None else merge_usage(self._usage, new)

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if not (isinstance(reasoning, str) and reasoning):
            reasoning = delta.get("reasoning")
            if not (isinstance(reasoning, str) and reasoning):
                reasoning = None
        details = delta.get("reasoning_details")
        if reasoning is not None or (isinstance(details, list) and details):
            idx = self._ensure("reasoning", out)
            if reasoning is not None:
                out.append(ReasoningDelta(idx, reasoning))
            if isinstance(details, list) and details:
                out.append(OpaqueDelta(idx, NS, {"reasoning_details": details}))
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(TextDelta(self._ensure("text", out), content))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out.append(TextDelta(self._ensure("refusal", out), refusal))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for tc in calls:
                if isinstance(tc, dict):
                    self._tool(tc, out)

    # -- parts

    def _ensure(self, kind: str, out: list[Event]) -> int:
        if self._kind == kind and self._open is not None:
            return self._open
        self._close_all(out)
        idx = self._next
        self._next += 1
        if kind == "reasoning":
            part: Text | Reasoning = Reasoning("")
        elif kind == "refusal":
            part = Text("", extra={NS: {"type": "refusal"}})
        else:
            part = Text("")
        out.append(PartStart(idx, part))
        self._open, self._kind = idx, kind
        return idx

    def _close_open(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(PartStop(self._open))
            if self._call is not None:
                self._call.state = _CLOSED
        self._open = self._kind = self._call = None

    def _close_all(self, out: list[Event]) -> None:
        self._close_open(out)
        while self._queue:
            self._start_call(self._queue.pop(0), out)
            self._close_open(out)

    def _start_call(self, call: _Call, out: list[Event]) -> None:
        idx = self._next
        self._next += 1
        call.index, call.state = idx, _OPEN
        out.append(PartStart(idx, ToolCall(id=call.id, name=call.name)))
        if call.args:
            out.append(ArgumentsDelta(idx, "".join(call.args)))
        self._open, self._kind, self._call = idx, "tool", call

    def _tool(self, tc: dict[str, Any], out: list[Event]) -> None:
        fn = tc.get("function")
        fn = fn if isinstance(fn, dict) else {}
        args = fn.get("arguments")
        if isinstance(args, dict | list):
            args = _enc.encode(args).decode()
        elif not isinstance(args, str):
            args = ""
        wi = tc.get("index")
        if not isinstance(wi, int) or isinstance(wi, bool):
            tid = tc.get("id")
            known = any(c.id == tid for c in self._calls.values())
            if isinstance(tid, str) and tid and not known:
                wi = max(self._calls, default=-1) + 1
            else:
                wi = max(self._calls, default=0)
        call = self._calls.get(wi)
        if call is None:
            tid, name = tc.get("id"), fn.get("name")
            call = _Call(
                tid if isinstance(tid, str) and tid else "call_" + uuid.uuid4().hex[:24],
                name if isinstance(name, str) else "",
            )
            self._calls[wi] = call
            if args:
                call.args.append(args)
            if self._call is not None and not _complete(self._call.args):
                self._queue.append(call)
            else:
                self._close_all(out)
                self._start_call(call, out)
            return
        if not args:
            return
        if call.state == _OPEN:
            call.args.append(args)
            out.append(ArgumentsDelta(call.index, args))
            if self._queue and _complete(call.args):
                self._close_open(out)
                self._flush_queue(out)
        elif call.state == _QUEUED:
            call.args.append(args)
        # a fragment for a call already closed has nowhere to go: dropped (see module doc)

    def _flush_queue(self, out: list[Event]) -> None:
        while self._queue:
            call = self._queue.pop(0)
            self._start_call(call, out)
            if self._queue and _complete(call.args):
                self._close_open(out)
                continue
            break

    # -- ends

    def _end(self, out: list[Event]) -> None:
        if self._ended:
            return
        if not self._started:
            self._started = True
            out.append(MessageStart(id="", model=""))
        self._close_all(out)
        stop = stop_from_openai(self._finish)
        if stop is None:
            stop = "tool_use" if self._calls else "end_turn"
        out.append(MessageDelta(stop_reason=stop, usage=self._usage))
        out.append(MessageStop())
        self._ended = True

    def _fail(self, out: list[Event], err: StreamError) -> None:
        out.append(err)
        self._ended = True


# ---- encoder ------------------------------------------------------------------------------------


class OpenAIStreamEncoder:
    def __init__(self, include_usage: bool = False) -> None:
        self._include_usage = include_usage
        self._id = ""
        self._model = ""
        self._created = 0
        self._kinds: dict[int, str] = {}
        self._tool_index: dict[int, int] = {}
        self._no_args: set[int] = set()  # tool parts that have sent no argument text yet
        self._usage = Usage()
        self._head = b""  # the bytes every content chunk of this stream starts with
        self._tail = b""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if finish is None:
            # the hot path: only the delta changes from chunk to chunk, so only it is encoded
            if not self._head:
                self._frame()
            return self._head + _enc.encode(delta) + self._tail
        return self._full_chunk(delta, finish)

    def _frame(self) -> None:
        head = _enc.encode(
            {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}
        )
        self._head = b"data: " + head[:-1] + b',"choices":[{"index":0,"delta":'
        self._tail = (
            b',"logprobs":null,"finish_reason":null}]' + (b',"usage":null' if self._include_usage else b"") + b"}\n\n"
        )

    def _full_chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        obj: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            obj["usage"] = None
        return b"data: " + _enc.encode(obj) + b"\n\n"

    def encode(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            if not event.text:
                return b""
            key = "refusal" if self._kinds.get(event.index) == "refusal" else "content"
            return self._chunk({key: event.text})
        if isinstance(event, ReasoningDelta):
            return self._chunk({"reasoning_content": event.text}) if event.text else b""
        if isinstance(event, ArgumentsDelta):
            k = self._tool_index.get(event.index)
            if k is None or not event.fragment:
                return b""
            self._no_args.discard(event.index)
            return self._chunk({"tool_calls": [{"index": k, "function": {"arguments": event.fragment}}]})
        if isinstance(event, PartStart):
            return self._part_start(event)
        if isinstance(event, OpaqueDelta):
            details = event.data.get("reasoning_details") if event.dialect == NS else None
            return self._chunk({"reasoning_details": details}) if isinstance(details, list) else b""
        if isinstance(event, MessageStart):
            self._id = event.id or "chatcmpl-" + uuid.uuid4().hex
            self._model = event.model
            self._created = int(time.time())
            self._head = b""
            if event.usage is not None:
                self._usage = merge_usage(self._usage, event.usage)
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, MessageDelta):
            if event.usage is not None:
                self._usage = event.usage  # the complete final report
            return self._chunk({}, finish_from_stop(event.stop_reason))
        if isinstance(event, MessageStop):
            tail = b""
            if self._include_usage:
                obj = {
                    "id": self._id,
                    "object": "chat.completion.chunk",
                    "created": self._created,
                    "model": self._model,
                    "choices": [],
                    "usage": usage_to_openai(self._usage),
                }
                tail = b"data: " + _enc.encode(obj) + b"\n\n"
            return tail + b"data: [DONE]\n\n"
        if isinstance(event, StreamError):
            cls = for_anthropic_type(event.error_type)
            return self.encode_error(cls(event.message, status=event.status))
        if isinstance(event, PartStop) and event.index in self._no_args:
            # a call without arguments still needs valid JSON for the client to parse
            self._no_args.discard(event.index)
            k = self._tool_index[event.index]
            return self._chunk({"tool_calls": [{"index": k, "function": {"arguments": "{}"}}]})
        return b""  # PartStop, SignatureDelta

    def _part_start(self, event: PartStart) -> bytes:
        part = event.part
        if isinstance(part, Text):
            extra = (part.extra or {}).get(NS) or {}
            kind = "refusal" if extra.get("type") == "refusal" else "text"
            self._kinds[event.index] = kind
            if part.text:
                return self._chunk({"refusal" if kind == "refusal" else "content": part.text})
            return b""
        if isinstance(part, Reasoning):
            self._kinds[event.index] = "reasoning"
            delta: dict[str, Any] = {}
            if part.text:
                delta["reasoning_content"] = part.text
            if part.details:
                delta["reasoning_details"] = part.details
            return self._chunk(delta) if delta else b""
        if isinstance(part, ToolCall):
            k = self._tool_index[event.index] = len(self._tool_index)
            self._kinds[event.index] = "tool"
            if not part.arguments:
                self._no_args.add(event.index)
            call = {
                "index": k,
                "id": part.id,
                "type": "function",
                "function": {"name": part.name, "arguments": part.arguments},
            }
            return self._chunk({"tool_calls": [call]})
        return b""  # Opaque / Image / ToolResult parts have no streamed Chat Completions form

    def encode_error(self, error: GatewayError) -> bytes:
        return b"data: " + _enc.encode(error.to_openai()) + b"\n\n"
