"""Canonical events → the SSE stream a Responses client expects, in OpenAI's grammar:

    response.created, response.in_progress
    per item:  response.output_item.added
               message:   (content_part.added, output_text.delta* | refusal.delta*,
                           output_text.done | refusal.done, content_part.done)+
               reasoning: [reasoning_summary_part.added, reasoning_summary_text.delta*,
                           reasoning_summary_text.done, reasoning_summary_part.done]
                          (or content_part / reasoning_text.* when the client asked no summaries)
               call:      function_call_arguments.delta*, function_call_arguments.done
                          (custom_tool_call_input.delta, .done for a freeform tool)
               response.output_item.done
    response.completed | response.incomplete (max tokens, content filter) | response.failed

Every event carries `type` and a `sequence_number` from 0; items get ids (`msg_`, `rs_`, `fc_`,
`ctc_`) and `output_index` in order of appearance; the lifecycle events carry one response id and
the `response` object echoing the client's parameters; the terminal one carries the full `output`
and `usage`. An item is done only once its part is complete, so a client that runs a tool as soon
as its item is done never sees half a call; a failure mid-stream leaves open items unfinished and
says `response.failed` with the error.

Deltas are spliced from bytes prepared when their item opens: only the delta text is encoded.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from dragoman import dialects
from dragoman.canonical import (
    ArgumentsDelta,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    OpaqueDelta,
    PartStart,
    PartStop,
    Reasoning,
    ReasoningDelta,
    SignatureDelta,
    StopReason,
    Text,
    TextDelta,
    ToolCall,
    Usage,
)
from dragoman.dialects.responses.outputs import (
    ReplyShape,
    call_item,
    custom_input,
    is_custom,
    message_item,
    reasoning_item,
    response_id,
    response_object,
    text_part,
)
from dragoman.dialects.responses.wire import NS, is_refusal, new_id, own, status_of, usage_to_wire
from dragoman.errors import GatewayError, for_anthropic_type

_enc = msgspec.json.Encoder()
_NONE, _TEXT, _REASONING, _CALL, _SKIP = 0, 1, 2, 3, 4


def _event_head(kind: str) -> bytes:
    return b"event: " + kind.encode() + b'\ndata: {"type":"' + kind.encode() + b'","sequence_number":'


_TEXT_DELTA = _event_head("response.output_text.delta")
_REFUSAL_DELTA = _event_head("response.refusal.delta")
_SUMMARY_DELTA = _event_head("response.reasoning_summary_text.delta")
_RAW_DELTA = _event_head("response.reasoning_text.delta")
_ARGS_DELTA = _event_head("response.function_call_arguments.delta")


class _Open:
    """The item being written and the part of it that is open."""

    __slots__ = (
        "args",
        "call",
        "content",
        "content_index",
        "custom",
        "details",
        "index",
        "item_id",
        "mid",
        "part",
        "phase",
        "refusal",
        "signature",
        "source_id",
        "started",
        "texts",
    )

    def __init__(self, item_id: str, index: int) -> None:
        self.item_id = item_id
        self.index = index  # output_index
        self.mid = b""  # the bytes between a delta's sequence number and its text
        self.texts: list[str] = []
        self.content: list[dict[str, Any]] = []  # a message's finished content parts
        self.content_index = -1
        self.refusal = False
        self.phase: Any = None
        self.source_id: Any = None  # the upstream item id a message's texts carried
        self.started = False  # reasoning: its summary part (or content part) was announced
        self.part: Reasoning | None = None
        self.signature: list[str] = []
        self.details: tuple[str, list[Any]] | None = None
        self.call: ToolCall | None = None
        self.custom = False
        self.args: list[str] = []


class ResponsesStreamEncoder:
    def __init__(self, shape: ReplyShape) -> None:
        self._shape = shape
        self._seq = 0
        self._rid = ""
        self._head: dict[str, Any] | None = None
        self._output: list[dict[str, Any]] = []  # finished items, by output_index
        self._next_index = 0
        self._message: _Open | None = None  # the open message item (may outlive its text part)
        self._item: _Open | None = None  # the open reasoning or call item
        self._kind = _NONE  # what the open canonical part is
        self._ci: int | None = None  # its canonical index
        self._stop: StopReason | None = None
        self._usage: Usage | None = None
        self._done = False

    # -- framing

    def _emit(self, kind: str, fields: dict[str, Any]) -> bytes:
        seq = self._seq
        self._seq += 1
        return _event_head(kind) + str(seq).encode() + b"," + _enc.encode(fields)[1:] + b"\n\n"

    def _delta(self, head: bytes, mid: bytes, text: str, tail: bytes = b"}\n\n") -> bytes:
        seq = self._seq
        self._seq += 1
        return head + str(seq).encode() + mid + _enc.encode(text) + tail

    def _start(self, rid: str, model: str) -> bytes:
        self._rid = response_id(self._shape, rid)
        self._head = response_object(self._shape, self._rid, model, "in_progress", int(time.time()))
        resp = _enc.encode(self._head)
        out = b""
        for kind in ("response.created", "response.in_progress"):
            seq = self._seq
            self._seq += 1
            out += _event_head(kind) + str(seq).encode() + b',"response":' + resp + b"}\n\n"
        return out

    def _ensure_started(self) -> bytes:
        return b"" if self._head is not None else self._start("", "")

    def _new_index(self) -> int:
        idx = self._next_index
        self._next_index += 1
        self._output.append({})
        return idx

    # -- message items

    def _open_text(self, part: Text) -> bytes:
        out = b""
        mine = own(part.extra)
        msg = self._message
        if msg is not None and mine.get("item_id") != msg.source_id:
            out += self._close_message()
            msg = None
        if msg is None:
            msg = self._message = _Open(new_id("msg"), self._new_index())
            msg.source_id, msg.phase = mine.get("item_id"), mine.get("phase")
            item = message_item(msg.item_id, [], "in_progress", msg.phase)
            out += self._emit("response.output_item.added", {"output_index": msg.index, "item": item})
        msg.content_index += 1
        msg.texts = []
        msg.refusal = is_refusal(part.extra)
        ids = {"item_id": msg.item_id, "output_index": msg.index, "content_index": msg.content_index}
        out += self._emit("response.content_part.added", {**ids, "part": text_part("", msg.refusal)})
        msg.mid = b',"item_id":"%s","output_index":%d,"content_index":%d,"delta":' % (
            msg.item_id.encode(),
            msg.index,
            msg.content_index,
        )
        if part.text:
            out += self._text(part.text)
        return out

    def _text(self, text: str) -> bytes:
        msg = self._message
        if msg is None or not text:
            return b""
        msg.texts.append(text)
        if msg.refusal:
            return self._delta(_REFUSAL_DELTA, msg.mid, text)
        return self._delta(_TEXT_DELTA, msg.mid, text, b',"logprobs":[]}\n\n')

    def _close_text(self) -> bytes:
        msg = self._message
        if msg is None:
            return b""
        text = "".join(msg.texts)
        ids = {"item_id": msg.item_id, "output_index": msg.index, "content_index": msg.content_index}
        if msg.refusal:
            out = self._emit("response.refusal.done", {**ids, "refusal": text})
        else:
            out = self._emit("response.output_text.done", {**ids, "text": text, "logprobs": []})
        part = text_part(text, msg.refusal)
        msg.content.append(part)
        return out + self._emit("response.content_part.done", {**ids, "part": part})

    def _close_message(self) -> bytes:
        msg = self._message
        if msg is None:
            return b""
        self._message = None
        item = message_item(msg.item_id, msg.content, "completed", msg.phase)
        self._output[msg.index] = item
        return self._emit("response.output_item.done", {"output_index": msg.index, "item": item})

    # -- reasoning items

    def _open_reasoning(self, part: Reasoning) -> bytes:
        out = self._close_message()
        r = self._item = _Open(new_id("rs"), self._new_index())
        r.part = part
        if part.signature:
            r.signature.append(part.signature)
        item: dict[str, Any] = {"id": r.item_id, "type": "reasoning", "summary": []}
        if not self._shape.summaries:
            item["content"] = []
        out += self._emit("response.output_item.added", {"output_index": r.index, "item": item})
        key = b"summary_index" if self._shape.summaries else b"content_index"
        r.mid = b',"item_id":"%s","output_index":%d,"%s":0,"delta":' % (r.item_id.encode(), r.index, key)
        if part.text:
            out += self._reasoning_text(part.text)
        return out

    def _reasoning_text(self, text: str) -> bytes:
        r = self._item
        if r is None or not text:
            return b""
        out = b""
        if not r.started:
            r.started = True
            if self._shape.summaries:
                ids = {"item_id": r.item_id, "output_index": r.index, "summary_index": 0}
                out += self._emit("response.reasoning_summary_part.added", {**ids, "part": _summary("")})
            else:
                ids = {"item_id": r.item_id, "output_index": r.index, "content_index": 0}
                out += self._emit("response.content_part.added", {**ids, "part": _raw("")})
        r.texts.append(text)
        return out + self._delta(_SUMMARY_DELTA if self._shape.summaries else _RAW_DELTA, r.mid, text)

    def _close_reasoning(self) -> bytes:
        r = self._item
        if r is None or r.part is None:
            return b""
        self._item = None
        text = "".join(r.texts)
        out = b""
        if r.started:
            if self._shape.summaries:
                ids = {"item_id": r.item_id, "output_index": r.index, "summary_index": 0}
                out += self._emit("response.reasoning_summary_text.done", {**ids, "text": text})
                out += self._emit("response.reasoning_summary_part.done", {**ids, "part": _summary(text)})
            else:
                ids = {"item_id": r.item_id, "output_index": r.index, "content_index": 0}
                out += self._emit("response.reasoning_text.done", {**ids, "text": text})
                out += self._emit("response.content_part.done", {**ids, "part": _raw(text)})
        base = r.part
        details = base.details
        if r.details is not None:
            dialect, fragments = r.details
            details = dialects.get(dialect).merge_details([*(details or []), *fragments])
        whole = Reasoning(text, "".join(r.signature) or None, base.redacted, base.origin, details, base.extra)
        item = reasoning_item(r.item_id, text, self._shape.summaries, self._shape.sealed(whole))
        self._output[r.index] = item
        return out + self._emit("response.output_item.done", {"output_index": r.index, "item": item})

    # -- call items

    def _open_call(self, call: ToolCall) -> bytes:
        out = self._close_message()
        custom = is_custom(call, self._shape.names)
        c = self._item = _Open(new_id("ctc" if custom else "fc"), self._new_index())
        c.call, c.custom = call, custom
        item = call_item(c.item_id, ToolCall(call.id, call.name, "", call.extra), self._shape.names, "in_progress")
        if custom:
            item["input"] = ""
        else:
            item["arguments"] = ""
        out += self._emit("response.output_item.added", {"output_index": c.index, "item": item})
        c.mid = b',"item_id":"%s","output_index":%d,"delta":' % (c.item_id.encode(), c.index)
        if call.arguments:
            out += self._arguments(call.arguments)
        return out

    def _arguments(self, fragment: str) -> bytes:
        c = self._item
        if c is None or c.call is None or not fragment:
            return b""
        c.args.append(fragment)
        return b"" if c.custom else self._delta(_ARGS_DELTA, c.mid, fragment)

    def _close_call(self) -> bytes:
        c = self._item
        if c is None or c.call is None:
            return b""
        self._item = None
        args = "".join(c.args)
        ids = {"item_id": c.item_id, "output_index": c.index}
        out = b""
        if c.custom:
            text = custom_input(args)
            if text:
                out += self._emit("response.custom_tool_call_input.delta", {**ids, "delta": text})
            out += self._emit("response.custom_tool_call_input.done", {**ids, "input": text})
        else:
            if not args:  # a call without arguments still needs JSON for the client to parse
                args = "{}"
                out += self._delta(_ARGS_DELTA, c.mid, args)
            name = self._shape.names.original(c.call.name)[1]
            out += self._emit("response.function_call_arguments.done", {**ids, "name": name, "arguments": args})
        call = ToolCall(c.call.id, c.call.name, args, c.call.extra)
        item = call_item(c.item_id, call, self._shape.names, "completed")
        self._output[c.index] = item
        return out + self._emit("response.output_item.done", {"output_index": c.index, "item": item})

    # -- parts

    def _close_part(self) -> bytes:
        kind, self._kind, self._ci = self._kind, _NONE, None
        if kind == _TEXT:
            return self._close_text()
        if kind == _REASONING:
            return self._close_reasoning()
        if kind == _CALL:
            return self._close_call()
        return b""

    def _part_start(self, event: PartStart) -> bytes:
        out = self._ensure_started() + self._close_part()
        part = event.part
        self._ci = event.index
        if isinstance(part, Text):
            self._kind = _TEXT
            return out + self._open_text(part)
        if isinstance(part, Reasoning):
            self._kind = _REASONING
            return out + self._open_reasoning(part)
        if isinstance(part, ToolCall):
            self._kind = _CALL
            return out + self._open_call(part)
        self._kind = _SKIP
        if isinstance(part, Opaque) and part.dialect == NS and isinstance(part.data.get("type"), str):
            out += self._close_message()
            idx = self._new_index()
            self._output[idx] = dict(part.data)
            out += self._emit("response.output_item.added", {"output_index": idx, "item": part.data})
            out += self._emit("response.output_item.done", {"output_index": idx, "item": part.data})
        return out  # images, tool results, other dialects' blocks: no place in a reply

    # -- protocol

    def encode(self, event: Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.index == self._ci and self._kind == _TEXT else b""
        if isinstance(event, ArgumentsDelta):
            return self._arguments(event.fragment) if event.index == self._ci and self._kind == _CALL else b""
        if isinstance(event, ReasoningDelta):
            ok = event.index == self._ci and self._kind == _REASONING
            return self._reasoning_text(event.text) if ok else b""
        if isinstance(event, SignatureDelta):
            if event.index == self._ci and self._kind == _REASONING and self._item is not None:
                self._item.signature.append(event.signature)
            return b""
        if isinstance(event, OpaqueDelta):
            item = self._item
            details = event.data.get("reasoning_details")
            if event.index == self._ci and self._kind == _REASONING and item is not None and isinstance(details, list):
                if item.details is None:
                    item.details = (event.dialect, [])
                item.details[1].extend(details)  # streamed OpenRouter details, folded at the end
            return b""
        if isinstance(event, PartStart):
            return self._part_start(event)
        if isinstance(event, PartStop):
            return self._close_part() if event.index == self._ci else b""
        if isinstance(event, MessageStart):
            if self._head is not None:
                return b""
            if event.usage is not None:
                self._usage = event.usage
            return self._start(event.id, event.model)
        if isinstance(event, MessageDelta):
            if event.stop_reason is not None:
                self._stop = event.stop_reason
            if event.usage is not None:
                self._usage = event.usage  # the complete final report
            return b""
        if isinstance(event, MessageStop):
            return self._finish()
        cls = for_anthropic_type(event.error_type)
        return self.encode_error(cls(event.message, status=event.status))

    def _finish(self) -> bytes:
        out = self._ensure_started() + self._close_part() + self._close_message()
        self._done = True
        status, incomplete = status_of(self._stop)
        assert self._head is not None
        resp = {
            **self._head,
            "status": status,
            "incomplete_details": incomplete,
            "output": [item for item in self._output if item],
            "usage": usage_to_wire(self._usage),
        }
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit(kind, {"response": resp})

    def encode_error(self, error: GatewayError) -> bytes:
        """`response.failed` with the error; items still open stay unfinished (never run)."""
        if self._done:
            return b""
        out = self._ensure_started()
        self._done = True
        assert self._head is not None
        code = error.code or error.openai_type
        resp = {
            **self._head,
            "status": "failed",
            "error": {"code": code, "message": error.message},
            "output": [item for item in self._output if item],
            "usage": usage_to_wire(self._usage) if self._usage is not None else None,
        }
        return out + self._emit("response.failed", {"response": resp})


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def _raw(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}
