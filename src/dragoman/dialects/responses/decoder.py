"""A Responses upstream's SSE stream → canonical events.

One JSON decode per frame, dispatched on the payload's `type` (`event:` lines are not needed).
Items arrive one after another; each becomes canonical parts in order:

* `message`: every `content_part` (`output_text`, `refusal`) is a `Text` part, its deltas
  `TextDelta`s; the item id and `phase` ride in the part's `extra`.
* `reasoning`: one `Reasoning` part, opened when the item is added so its text streams at once:
  summary deltas (a blank line between summary parts) or, from servers that give it, raw
  `reasoning_text` deltas. The item's final `encrypted_content` arrives as a `SignatureDelta`.
* `function_call`: a `ToolCall` (id = `call_id`, verbatim) with `ArgumentsDelta` fragments.
  `custom_tool_call`: a `ToolCall` whose arguments are `{"input": "<the streamed input>"}`, built
  fragment by fragment.
* anything else (hosted tool calls): an `Opaque("responses")` part holding the finished item.

`response.completed` / `response.incomplete` end the message with its stop reason and usage;
`response.failed` and `error` events end it with a `StreamError`; a stream that stops before any of
them ends with one saying it was cut short.
"""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import (
    ArgumentsDelta,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    Part,
    PartStart,
    PartStop,
    Reasoning,
    ReasoningDelta,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    ToolCall,
)
from dragoman.dialects.openai.stream import error_from_payload, stream_error
from dragoman.dialects.responses.wire import NS, REFUSAL, stop_from_status, usage_from_wire, wrap
from dragoman.errors import UpstreamError, redact
from dragoman.transport.framing import SSEParser

_dec = msgspec.json.Decoder()
_enc = msgspec.json.Encoder()
_CUT = "upstream stream ended before response.completed"
_TEXT, _REASONING, _CALL, _CUSTOM = 1, 2, 3, 4


def _escaped(text: str) -> str:
    """`text` as the inside of a JSON string (a fragment of `{"input": "..."}`)."""
    return _enc.encode(text).decode()[1:-1]


def failure(payload: dict[str, Any]) -> StreamError:
    """A StreamError from an `error` event or a failed response's `error` (either shape)."""
    err = payload.get("error")
    err = err if isinstance(err, dict) else payload
    message = err.get("message")
    code = err.get("code") or err.get("type")
    found = error_from_payload(
        {
            "error": {
                "message": redact(message) if isinstance(message, str) and message else "upstream error",
                "code": code if isinstance(code, str) else None,
                "type": err.get("type") if isinstance(err.get("type"), str) else None,
                "param": err.get("param"),
            }
        }
    )
    return stream_error(found or UpstreamError("upstream stream error"))


class ResponsesStreamDecoder:
    __slots__ = (
        "_calls",
        "_done",
        "_item_text",
        "_kind",
        "_mark",
        "_next",
        "_open",
        "_sent",
        "_sse",
        "_started",
        "_summary_parts",
    )

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._done = False
        self._next = 0
        self._open: int | None = None  # canonical index of the open part
        self._kind = 0
        self._sent = False  # the open part has had text or arguments
        self._mark: dict[str, Any] = {}  # the open message item's id and phase
        self._summary_parts = 0
        self._calls = False
        self._item_text = False  # the open message item has opened a text part

    # -- protocol

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        if self._done:
            return out
        try:
            frames = self._sse.feed(chunk)
        except UpstreamError as e:
            self._fail(out, stream_error(e))
            return out
        for frame in frames:
            self._guarded(frame.data, out, False)
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        for frame in self._sse.close():
            self._guarded(frame.data, out, True)
        if not self._done:
            self._fail(out, StreamError(502, "api_error", _CUT))
        return out

    # -- frames

    def _guarded(self, data: bytes, out: list[Event], last: bool) -> None:
        data = data.strip()
        if self._done or not data or data == b"[DONE]":
            return
        try:
            ev = _dec.decode(data)
        except msgspec.DecodeError:
            if not last:  # a line cut by a dropped connection is reported by close()
                self._fail(out, StreamError(502, "api_error", "upstream sent a stream event that is not valid JSON"))
            return
        if not isinstance(ev, dict):
            return
        try:
            self._event(ev, out)
        except (TypeError, AttributeError, KeyError):  # valid JSON of the wrong shape
            self._fail(out, StreamError(502, "api_error", "upstream sent a malformed stream event"))

    def _event(self, ev: dict[str, Any], out: list[Event]) -> None:
        t = ev.get("type")
        if t == "response.output_text.delta" or t == "response.refusal.delta":
            if self._kind != _TEXT:
                self._open_text(out, t == "response.refusal.delta")
            delta = ev.get("delta")
            if isinstance(delta, str) and delta:
                self._sent = True
                out.append(TextDelta(self._index(), delta))
        elif t == "response.reasoning_summary_text.delta" or t == "response.reasoning_text.delta":
            delta = ev.get("delta")
            if self._kind == _REASONING and isinstance(delta, str) and delta:
                self._sent = True
                out.append(ReasoningDelta(self._index(), delta))
        elif t == "response.function_call_arguments.delta":
            delta = ev.get("delta")
            if self._kind == _CALL and isinstance(delta, str) and delta:
                self._sent = True
                out.append(ArgumentsDelta(self._index(), delta))
        elif t == "response.custom_tool_call_input.delta":
            delta = ev.get("delta")
            if self._kind == _CUSTOM and isinstance(delta, str) and delta:
                self._sent = True
                out.append(ArgumentsDelta(self._index(), _escaped(delta)))
        elif t == "response.output_item.added":
            self._item_added(ev.get("item"), out)
        elif t == "response.output_item.done":
            self._item_done(ev.get("item"), out)
        elif t == "response.content_part.added":
            part = ev.get("part")
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("output_text", "refusal"):
                self._open_text(out, kind == "refusal")
        elif t == "response.content_part.done":
            if self._kind == _TEXT:
                self._close(out)
        elif t == "response.reasoning_summary_part.added":
            if self._kind == _REASONING:
                self._summary_parts += 1
                if self._summary_parts > 1 and self._sent:
                    out.append(ReasoningDelta(self._index(), "\n\n"))
        elif t == "response.created":
            self._start(ev.get("response"), out)
        elif t in ("response.completed", "response.incomplete"):
            self._finish(ev.get("response"), out)
        elif t == "response.failed":
            resp = ev.get("response")
            self._fail(out, failure(resp if isinstance(resp, dict) else {}))
        elif t == "error":
            self._fail(out, failure(ev))
        # in_progress, *.done of texts and arguments, annotations, hosted tool progress: nothing new

    # -- parts

    def _index(self) -> int:
        return self._open if self._open is not None else -1

    def _begin(self, part: Part, kind: int, out: list[Event]) -> int:
        self._close(out)
        if not self._started:
            self._start(None, out)
        idx = self._next
        self._next += 1
        self._open, self._kind, self._sent = idx, kind, False
        out.append(PartStart(idx, part))
        return idx

    def _close(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(PartStop(self._open))
        self._open, self._kind, self._sent = None, 0, False

    def _open_text(self, out: list[Event], refusal: bool) -> None:
        self._item_text = True
        extra = wrap(dict(self._mark))
        if refusal:
            extra = {**REFUSAL, **(extra or {})}
        self._begin(Text("", extra=extra), _TEXT, out)

    def _item_added(self, item: Any, out: list[Event]) -> None:
        if not isinstance(item, dict):
            return
        kind = item.get("type")
        item_id = item.get("id") if isinstance(item.get("id"), str) else None
        if kind == "message":
            self._close(out)
            self._item_text = False
            self._mark = {"item_id": item_id} if item_id else {}
            if isinstance(item.get("phase"), str):
                self._mark["phase"] = item["phase"]
        elif kind == "reasoning":
            self._summary_parts = 0
            self._begin(Reasoning(extra=wrap({"id": item_id} if item_id else {})), _REASONING, out)
        elif kind in ("function_call", "custom_tool_call"):
            self._calls = True
            custom = kind == "custom_tool_call"
            extra: dict[str, Any] = {"item_id": item_id} if item_id else {}
            if custom:
                extra["_custom"] = True
            call = ToolCall(str(item.get("call_id") or item_id or ""), str(item.get("name") or ""), extra=wrap(extra))
            idx = self._begin(call, _CUSTOM if custom else _CALL, out)
            if custom:
                out.append(ArgumentsDelta(idx, '{"input":"'))
            elif isinstance(item.get("arguments"), str) and item["arguments"]:
                self._sent = True
                out.append(ArgumentsDelta(idx, item["arguments"]))

    def _item_done(self, item: Any, out: list[Event]) -> None:
        if not isinstance(item, dict):
            return
        kind = item.get("type")
        if kind == "message":
            if self._kind == _TEXT:
                self._close(out)
            if not self._item_text:
                self._replay_message(item, out)
            self._mark, self._item_text = {}, False
        elif kind == "reasoning" and self._kind == _REASONING:
            idx = self._index()
            if not self._sent:
                texts = [s.get("text") for s in item.get("summary") or () if isinstance(s, dict)]
                text = "\n\n".join(t for t in texts if isinstance(t, str) and t)
                if text:
                    out.append(ReasoningDelta(idx, text))
            blob = item.get("encrypted_content")
            if isinstance(blob, str) and blob:
                out.append(SignatureDelta(idx, blob))
            self._close(out)
        elif kind == "function_call" and self._kind == _CALL:
            if not self._sent and isinstance(item.get("arguments"), str) and item["arguments"]:
                out.append(ArgumentsDelta(self._index(), item["arguments"]))
            self._close(out)
        elif kind == "custom_tool_call" and self._kind == _CUSTOM:
            if not self._sent and isinstance(item.get("input"), str):
                out.append(ArgumentsDelta(self._index(), _escaped(item["input"])))
            out.append(ArgumentsDelta(self._index(), '"}'))
            self._close(out)
        elif kind not in ("message", "reasoning", "function_call", "custom_tool_call") and isinstance(kind, str):
            self._begin(Opaque(NS, item), 0, out)
            self._close(out)

    def _replay_message(self, item: dict[str, Any], out: list[Event]) -> None:
        """A message whose text came only in its done item (servers that skip the deltas)."""
        for c in item.get("content") or ():
            if not isinstance(c, dict):
                continue
            refusal = c.get("type") == "refusal"
            text = c.get("refusal") if refusal else c.get("text")
            if isinstance(text, str) and text:
                self._open_text(out, refusal)
                out.append(TextDelta(self._index(), text))
                self._close(out)

    # -- ends

    def _start(self, resp: Any, out: list[Event]) -> None:
        if self._started:
            return
        self._started = True
        resp = resp if isinstance(resp, dict) else {}
        rid, model = resp.get("id"), resp.get("model")
        out.append(MessageStart(id=rid if isinstance(rid, str) else "", model=model if isinstance(model, str) else ""))

    def _finish(self, resp: Any, out: list[Event]) -> None:
        resp = resp if isinstance(resp, dict) else {}
        if not self._started:
            self._start(resp, out)
        self._close(out)
        stop = stop_from_status(resp.get("status"), resp.get("incomplete_details"), self._calls)
        usage = resp.get("usage")
        out.append(MessageDelta(stop_reason=stop, usage=usage_from_wire(usage) if isinstance(usage, dict) else None))
        out.append(MessageStop())
        self._done = True

    def _fail(self, out: list[Event], err: StreamError) -> None:
        out.append(err)
        self._done = True
