"""The Anthropic stream state machine in one place: upstream SSE bytes to canonical events
(`AnthropicStreamDecoder`) and canonical events to the SSE bytes Anthropic clients expect
(`AnthropicStreamEncoder`).

Decoder: one msgspec decode per SSE frame. It renumbers blocks 0, 1, 2 in arrival order, closes a
block the upstream left open (the SDK fixture `incomplete_partial_json_response.txt` has none) before
the next block or `message_delta`, and holds `message_delta` until `message_stop` so that several of
them (allowed by Anthropic) become the single canonical `MessageDelta`.

Encoder: writes exactly the grammar Claude Code accepts, whatever order it is fed:

    message_start
    ( content_block_start(i) content_block_delta(i)* [signature_delta(i)] content_block_stop(i) )*
    message_delta          # exactly one: stop_reason + usage
    message_stop

A delta never precedes its block start, one block is open at a time, indexes are contiguous (parts
another dialect owns are skipped and the rest renumbered), a thinking block always ends with one
`signature_delta` (its whole signature, or "" when none arrived), and `message_delta` is held and
merged until `MessageStop`, synthesised when absent (stop_reason `end_turn`, `tool_use` when a
tool_use block was sent).
"""

from __future__ import annotations

import uuid
from typing import Any, get_args

import msgspec

from dragoman.canonical import (
    ArgumentsDelta,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    OpaqueDelta,
    Part,
    PartStart,
    PartStop,
    Reasoning,
    ReasoningDelta,
    SignatureDelta,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    ToolCall,
    Usage,
)
from dragoman.errors import GatewayError, for_anthropic_type, redact
from dragoman.transport.framing import SSEFrame, SSEParser

_dec = msgspec.json.Decoder()
_enc = msgspec.json.Encoder()

STOP_REASONS: frozenset[str] = frozenset(get_args(StopReason))


def stop_reason(value: Any) -> StopReason | None:
    """A wire stop reason as canonical; an unknown (newer) value reads as `end_turn`."""
    if value is None:
        return None
    if isinstance(value, str) and value in STOP_REASONS:
        return value  # type: ignore[return-value]
    return "end_turn"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_wire(u: Any) -> Usage:
    """Anthropic `usage` (message, message_start or message_delta) as canonical; absent fields are 0.
    The counts as the client reads them: with compaction, those of the last iteration only."""
    if not isinstance(u, dict):
        return Usage()
    details = u.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return Usage(
        input_tokens=_int(u.get("input_tokens")),
        output_tokens=_int(u.get("output_tokens")),
        cache_read_tokens=_int(u.get("cache_read_input_tokens")),
        cache_write_tokens=_int(u.get("cache_creation_input_tokens")),
        reasoning_tokens=thinking if isinstance(thinking, int) else None,
    )


def billed_usage(u: Any) -> Usage:
    """What the request is billed for: with server-side compaction the top-level counts cover only
    the last sampling iteration while every iteration is billed, so `iterations` is summed."""
    usage = usage_from_wire(u)
    iterations = u.get("iterations") if isinstance(u, dict) else None
    if not (isinstance(iterations, list) and iterations and all(isinstance(i, dict) for i in iterations)):
        return usage
    parts = [usage_from_wire(i) for i in iterations]
    return Usage(
        input_tokens=sum(p.input_tokens for p in parts),
        output_tokens=sum(p.output_tokens for p in parts),
        cache_read_tokens=sum(p.cache_read_tokens for p in parts),
        cache_write_tokens=sum(p.cache_write_tokens for p in parts),
        reasoning_tokens=usage.reasoning_tokens,
    )


def usage_to_wire(u: Usage | None) -> dict[str, Any]:
    u = u or Usage()
    out: dict[str, Any] = {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": u.output_tokens,
    }
    if u.reasoning_tokens is not None:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return out


def anthropic_extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    """The `anthropic` namespace of a canonical `extra` dict (never another dialect's)."""
    if extra:
        mine = extra.get("anthropic")
        if isinstance(mine, dict):
            return mine
    return {}


def _rest(block: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any] | None:
    rest = {k: v for k, v in block.items() if k not in known and v is not None}
    return {"anthropic": rest} if rest else None


# ---- decoder ------------------------------------------------------------------------------------

_TEXT, _THINK, _TOOL, _OTHER, _SKIP, _WHOLE = 0, 1, 2, 3, 4, 5  # _WHOLE: complete at start


def _start_part(cb: dict[str, Any]) -> tuple[Part, int]:
    t = cb.get("type")
    if t == "text":
        return Text(cb.get("text") or "", extra=_rest(cb, ("type", "text"))), _TEXT
    if t == "thinking":
        return Reasoning(cb.get("thinking") or "", signature=cb.get("signature") or None), _THINK
    if t == "redacted_thinking":
        return Reasoning(redacted=cb.get("data") or ""), _OTHER
    if t == "tool_use":
        extra = _rest(cb, ("type", "id", "name", "input"))
        return ToolCall(cb.get("id") or "", cb.get("name") or "", "", extra=extra), _TOOL
    return Opaque("anthropic", cb), _OTHER


_UPSTREAM_CUT = "upstream stream ended before message_stop"


class AnthropicStreamDecoder:
    __slots__ = ("_delta", "_done", "_kinds", "_next", "_open", "_parser", "_started", "_wire_usage")

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._kinds: dict[Any, tuple[int, int]] = {}  # wire index -> (canonical index, kind)
        self._open: Any = None  # wire index of the open block
        self._next = 0
        self._delta: MessageDelta | None = None
        self._started = False
        # usage as reported so far, in wire form: message_delta repeats or corrects some fields
        # (a later 0 is a real 0), so reports are overlaid key by key, not summed or max'ed
        self._wire_usage: dict[str, Any] = {}
        self._done = False

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        for frame in self._parser.feed(chunk):
            if not self._done:
                self._guarded(frame, out, False)
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        for frame in self._parser.close():
            if not self._done:
                self._guarded(frame, out, True)
        if not self._done:
            self._done = True
            out.append(StreamError(502, "api_error", _UPSTREAM_CUT))
        return out

    def _close_open(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(PartStop(self._kinds[self._open][0]))
            self._open = None

    def _guarded(self, frame: SSEFrame, out: list[Event], last: bool) -> None:
        try:
            self._frame(frame, out, last)
        except (TypeError, AttributeError, KeyError):  # valid JSON of the wrong shape
            self._done = True
            out.append(StreamError(502, "api_error", "upstream sent a malformed stream event"))

    def _frame(self, frame: SSEFrame, out: list[Event], last: bool) -> None:
        data = frame.data
        if not data or data == b"[DONE]":
            return
        try:
            ev = _dec.decode(data)
        except msgspec.DecodeError:
            if last:
                return  # the connection dropped mid-line: close() reports the cut
            self._done = True
            out.append(StreamError(502, "api_error", "upstream sent a stream event that is not valid JSON"))
            return
        if not isinstance(ev, dict):
            return
        t = ev.get("type")
        if t == "content_block_delta":
            entry = self._kinds.get(ev.get("index"))
            d = ev.get("delta")
            if entry is None or not isinstance(d, dict):
                return  # a delta for a block that never started: nothing to attach it to
            ci, kind = entry
            dt = d.get("type")
            if kind == _OTHER:
                out.append(OpaqueDelta(ci, "anthropic", d))
            elif dt == "text_delta":
                out.append(TextDelta(ci, d.get("text") or ""))
            elif dt == "input_json_delta":
                out.append(ArgumentsDelta(ci, d.get("partial_json") or ""))
            elif dt == "thinking_delta":
                out.append(ReasoningDelta(ci, d.get("thinking") or ""))
            elif dt == "signature_delta":
                out.append(SignatureDelta(ci, d.get("signature") or ""))
            else:  # citations_delta, compaction_delta, anything newer
                out.append(OpaqueDelta(ci, "anthropic", d))
        elif t == "content_block_start":
            if not self._started:
                self._started = True
                out.append(MessageStart("", ""))
            self._close_open(out)
            cb = ev.get("content_block")
            part, kind = _start_part(cb if isinstance(cb, dict) else {})
            ci = self._next
            self._next += 1
            idx = ev.get("index")
            self._kinds[idx] = (ci, kind)
            self._open = idx
            out.append(PartStart(ci, part))
            if kind == _TOOL:
                inp = cb.get("input") if isinstance(cb, dict) else None
                if isinstance(inp, dict) and inp:
                    out.append(ArgumentsDelta(ci, _enc.encode(inp).decode()))
        elif t == "content_block_stop":
            if ev.get("index") == self._open:
                self._close_open(out)
        elif t == "message_start":
            if self._started:
                return
            self._started = True
            msg = ev.get("message")
            msg = msg if isinstance(msg, dict) else {}
            usage = msg.get("usage")
            if isinstance(usage, dict):
                self._wire_usage.update(usage)
            out.append(
                MessageStart(
                    msg.get("id") or "",
                    msg.get("model") or "",
                    usage_from_wire(usage) if isinstance(usage, dict) else None,
                )
            )
        elif t == "message_delta":
            self._close_open(out)
            d = ev.get("delta")
            d = d if isinstance(d, dict) else {}
            held = self._delta or MessageDelta()
            sr = stop_reason(d.get("stop_reason"))
            if sr is not None:
                held.stop_reason = sr
            if d.get("stop_sequence") is not None:
                held.stop_sequence = d["stop_sequence"]
            usage = ev.get("usage")
            if isinstance(usage, dict):
                self._wire_usage.update({k: v for k, v in usage.items() if v is not None})
                held.usage = usage_from_wire(self._wire_usage)
            self._delta = held
        elif t == "message_stop":
            self._close_open(out)
            out.append(self._delta or MessageDelta())
            out.append(MessageStop())
            self._done = True
        elif t == "error" or frame.event == "error":
            err = ev.get("error")
            err = err if isinstance(err, dict) else {}
            etype = err.get("type")
            etype = etype if isinstance(etype, str) and etype else "api_error"
            message = err.get("message")
            message = redact(message) if isinstance(message, str) else "upstream stream error"
            out.append(StreamError(for_anthropic_type(etype).status, etype, message))
            self._done = True
        # ping and unknown event types are skipped


# ---- encoder ------------------------------------------------------------------------------------

_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_DELTA = b',"delta":{"type":"text_delta","text":'
_THINK_DELTA = b',"delta":{"type":"thinking_delta","thinking":'
_JSON_DELTA = b',"delta":{"type":"input_json_delta","partial_json":'
_SIG_DELTA = b',"delta":{"type":"signature_delta","signature":'
_DELTA_TAIL = b"}}\n\n"


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _enc.encode(payload) + b"\n\n"


def error_event(error_type: str, message: str) -> bytes:
    return sse("error", {"type": "error", "error": {"type": error_type, "message": message}})


class AnthropicStreamEncoder:
    __slots__ = (
        "_delta",
        "_done",
        "_max_ci",
        "_open_ci",
        "_open_kind",
        "_sig",
        "_start_usage",
        "_started",
        "_tool_seen",
        "_wire",
        "_wire_next",
    )

    def __init__(self, *, include_usage: bool = False) -> None:
        # Anthropic streams always carry usage; `include_usage` has no wire meaning here.
        self._started = False
        self._done = False
        self._open_ci: int | None = None
        self._open_kind = _SKIP
        self._wire = b"0"  # wire index of the open block, ready to splice
        self._wire_next = 0
        self._max_ci = -1
        self._sig: list[str] = []
        self._tool_seen = False
        self._start_usage: Usage | None = None
        self._delta: MessageDelta | None = None

    # -- helpers --

    def _message_start(self, mid: str, model: str, usage: Usage | None) -> bytes:
        self._started = True
        self._start_usage = usage
        message: dict[str, Any] = {
            "id": mid or "msg_" + uuid.uuid4().hex,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_to_wire(usage),
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def _ensure_started(self) -> bytes:
        return b"" if self._started else self._message_start("", "", None)

    def _delta_bytes(self, head: bytes, value: str) -> bytes:
        return _DELTA_HEAD + self._wire + head + _enc.encode(value) + _DELTA_TAIL

    def _close(self) -> bytes:
        if self._open_ci is None:
            return b""
        kind = self._open_kind
        self._open_ci = None
        if kind == _SKIP:
            return b""
        out = b""
        if kind == _THINK:
            out = self._delta_bytes(_SIG_DELTA, "".join(self._sig))
            self._sig = []
        stop = {"type": "content_block_stop", "index": self._wire_next - 1}
        return out + sse("content_block_stop", stop)

    def _start(self, ci: int, part: Part) -> bytes:
        out = self._ensure_started() + self._close()
        self._open_ci = ci
        if ci > self._max_ci:
            self._max_ci = ci
        tail = ""
        block: dict[str, Any]
        if isinstance(part, Text):
            kind = _TEXT
            block = {"type": "text", "text": ""}
            for k, v in anthropic_extra(part.extra).items():
                block.setdefault(k, v)
            if part.text:
                tail = part.text
        elif isinstance(part, Reasoning):
            if part.redacted is not None:
                kind = _WHOLE
                block = {"type": "redacted_thinking", "data": part.redacted}
            else:
                kind = _THINK
                block = {"type": "thinking", "thinking": "", "signature": ""}
                self._sig = [part.signature] if part.signature else []
                if part.text:
                    tail = part.text
        elif isinstance(part, ToolCall):
            kind = _TOOL
            self._tool_seen = True
            block = {"type": "tool_use", "id": part.id, "name": part.name, "input": {}}
            for k, v in anthropic_extra(part.extra).items():
                block.setdefault(k, v)
            if part.arguments:
                tail = part.arguments
        elif isinstance(part, Opaque) and part.dialect == "anthropic":
            kind = _OTHER
            block = part.data
        else:  # another dialect's block, an image or a tool result: no place in an Anthropic reply
            self._open_kind = _SKIP
            return out
        self._open_kind = kind
        wire = self._wire_next
        self._wire_next += 1
        self._wire = str(wire).encode()
        out += sse("content_block_start", {"type": "content_block_start", "index": wire, "content_block": block})
        if tail:
            head = _TEXT_DELTA if kind == _TEXT else _THINK_DELTA if kind == _THINK else _JSON_DELTA
            out += self._delta_bytes(head, tail)
        return out

    def _implicit(self, ci: int, part: Part) -> bytes:
        """A delta for a part that never started: start it when it is new, drop it when late."""
        if ci > self._max_ci:
            return self._start(ci, part)
        return b""

    # -- protocol --

    def encode(self, event: Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, TextDelta):
            if event.index != self._open_ci or self._open_kind != _TEXT:
                pre = self._implicit(event.index, Text(""))
                if not pre:
                    return b""
                return pre + self._delta_bytes(_TEXT_DELTA, event.text)
            return self._delta_bytes(_TEXT_DELTA, event.text)
        if isinstance(event, ReasoningDelta):
            if event.index != self._open_ci or self._open_kind != _THINK:
                pre = self._implicit(event.index, Reasoning())
                if not pre:
                    return b""
                return pre + self._delta_bytes(_THINK_DELTA, event.text)
            return self._delta_bytes(_THINK_DELTA, event.text)
        if isinstance(event, ArgumentsDelta):
            if event.index == self._open_ci and self._open_kind == _TOOL:
                return self._delta_bytes(_JSON_DELTA, event.fragment)
            return b""  # a tool_use block cannot start without its id and name
        if isinstance(event, SignatureDelta):
            pre = b""
            if event.index != self._open_ci or self._open_kind != _THINK:
                pre = self._implicit(event.index, Reasoning())
                if not pre:
                    return b""
            self._sig.append(event.signature)
            return pre
        if isinstance(event, PartStart):
            return self._start(event.index, event.part)
        if isinstance(event, PartStop):
            return self._close() if event.index == self._open_ci else b""
        if isinstance(event, OpaqueDelta):
            # an Anthropic-only delta fits an Anthropic-only block, or a text block (citations_delta)
            if event.index == self._open_ci and self._open_kind in (_OTHER, _TEXT) and event.dialect == "anthropic":
                payload = {"type": "content_block_delta", "index": self._wire_next - 1, "delta": event.data}
                return sse("content_block_delta", payload)
            return b""
        if isinstance(event, MessageStart):
            if self._started:
                return b""
            return self._message_start(event.id, event.model, event.usage)
        if isinstance(event, MessageDelta):
            out = self._ensure_started() + self._close()
            held = self._delta
            if held is None:
                self._delta = MessageDelta(event.stop_reason, event.stop_sequence, event.usage)
            else:
                if event.stop_reason is not None:
                    held.stop_reason = event.stop_reason
                if event.stop_sequence is not None:
                    held.stop_sequence = event.stop_sequence
                if event.usage is not None:
                    held.usage = event.usage  # a MessageDelta's usage is the complete final report
            return out
        if isinstance(event, MessageStop):
            out = self._ensure_started() + self._close()
            self._done = True
            held = self._delta or MessageDelta()
            usage = held.usage if held.usage is not None else (self._start_usage or Usage())
            reason = held.stop_reason or ("tool_use" if self._tool_seen else "end_turn")
            wire_usage = usage_to_wire(usage)
            delta_usage = {"output_tokens": wire_usage.pop("output_tokens"), **wire_usage}
            payload = {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": held.stop_sequence},
                "usage": delta_usage,
            }
            return out + sse("message_delta", payload) + sse("message_stop", {"type": "message_stop"})
        self._done = True  # StreamError
        return error_event(event.error_type, event.message)

    def encode_error(self, error: GatewayError) -> bytes:
        self._done = True
        return error_event(error.anthropic_type, error.message)
