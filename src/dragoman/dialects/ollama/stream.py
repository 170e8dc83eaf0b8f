"""The Ollama native stream: NDJSON lines in, canonical events out (and back, for round trips).

Each line is a whole JSON object; thinking and content arrive as deltas, tool calls arrive whole in
one line, and the `done: true` line carries the stop reason and the token counts.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from dragoman import canonical as c
from dragoman.dialects.ollama.wire import (
    done_reason_of,
    enc,
    encode_tool_call,
    error_from,
    now_iso,
    reply_parts,
    stop_reason_of,
    usage_of,
    want,
)
from dragoman.errors import GatewayError, UpstreamError
from dragoman.transport.framing import NDJSONParser

# ---- streams ------------------------------------------------------------------------------------


class OllamaStreamDecoder:
    """Ollama NDJSON chunks to canonical events. Text and thinking arrive as deltas; each tool call
    arrives whole and becomes a complete part (start, one arguments delta, stop)."""

    __slots__ = ("_finished", "_index", "_open", "_parser", "_started", "_tool_calls")

    def __init__(self) -> None:
        self._parser = NDJSONParser()
        self._started = False
        self._finished = False  # done:true, an error line or a fault: nothing more is read
        self._open: str | None = None  # "text" | "reasoning" while such a part is open
        self._index = -1
        self._tool_calls = False

    def feed(self, chunk: bytes) -> list[c.Event]:
        out: list[c.Event] = []
        try:
            lines = self._parser.feed(chunk)
        except GatewayError as e:
            self._fail(out, e.message)
            return out
        for line in lines:
            self._line(line, out)
        return out

    def close(self) -> list[c.Event]:
        out: list[c.Event] = []
        for line in self._parser.close():
            self._line(line, out)
        self._fail(out, "upstream stream ended before done")
        return out

    def _fail(self, out: list[c.Event], message: str, status: int = 502, kind: str = "api_error") -> None:
        if not self._finished:
            self._finished = True
            out.append(c.StreamError(status=status, error_type=kind, message=message))

    def _line(self, line: bytes, out: list[c.Event]) -> None:
        if self._finished:
            return
        try:
            obj = msgspec.json.decode(line)
        except msgspec.DecodeError:
            return self._fail(out, "upstream sent a line that is not JSON: " + line[:200].decode("utf-8", "replace"))
        if not isinstance(obj, dict):
            return self._fail(out, "upstream sent an NDJSON line that is not an object")
        if obj.get("error") is not None:
            err = error_from(502, obj)
            return self._fail(out, err.message, err.status, err.anthropic_type)
        try:
            self._chunk(obj, out)
        except GatewayError as e:
            self._fail(out, e.message)

    def _part(self, kind: str, out: list[c.Event]) -> int:
        if self._open != kind:
            self._stop(out)
            self._index += 1
            self._open = kind
            out.append(c.PartStart(self._index, c.Text("") if kind == "text" else c.Reasoning()))
        return self._index

    def _stop(self, out: list[c.Event]) -> None:
        if self._open is not None:
            out.append(c.PartStop(self._index))
            self._open = None

    def _chunk(self, obj: dict[str, Any], out: list[c.Event]) -> None:
        if not self._started:
            self._started = True
            out.append(c.MessageStart(id="ollama-" + secrets.token_hex(12), model=str(obj.get("model") or "")))
        parts, calls = reply_parts(want(obj.get("message") or {}, "an object", "message", UpstreamError))
        for part in parts:
            if isinstance(part, c.Reasoning):
                out.append(c.ReasoningDelta(self._part("reasoning", out), part.text))
            elif isinstance(part, c.Text):
                out.append(c.TextDelta(self._part("text", out), part.text))
        for tc in calls:
            self._stop(out)
            self._index += 1
            self._tool_calls = True
            out.append(c.PartStart(self._index, c.ToolCall(tc.id, tc.name, "", tc.extra)))
            out.append(c.ArgumentsDelta(self._index, tc.arguments or "{}"))
            out.append(c.PartStop(self._index))
        if obj.get("done") is True:
            self._stop(out)
            stop = stop_reason_of(obj.get("done_reason"), self._tool_calls)
            out.append(c.MessageDelta(stop_reason=stop, usage=usage_of(obj, UpstreamError)))
            out.append(c.MessageStop())
            self._finished = True


class OllamaStreamEncoder:
    """Canonical events to Ollama NDJSON: text/thinking deltas as chunks, a tool call as one chunk
    when its part stops, and a final `done:true` line with the counts. Images, signatures and opaque
    blocks have no Ollama stream form and write nothing."""

    __slots__ = ("_calls", "_model", "_stop", "usage_of")

    def __init__(self) -> None:
        self._model = ""
        self._calls: dict[int, c.ToolCall] = {}
        self._stop: c.StopReason | None = None
        self.usage_of = c.Usage()

    def _line(self, done: bool = False, **message: Any) -> bytes:
        body: dict[str, Any] = {"model": self._model, "created_at": now_iso()}
        body["message"] = {"role": "assistant", "content": "", **message}
        if done:
            body["done_reason"] = done_reason_of(self._stop)
        body["done"] = done
        if done:
            body["prompt_eval_count"] = self.usage_of.prompt_tokens
            body["eval_count"] = self.usage_of.output_tokens
        return enc.encode(body) + b"\n"

    def encode(self, event: c.Event) -> bytes:
        if isinstance(event, c.TextDelta):
            return self._line(content=event.text) if event.text else b""
        if isinstance(event, c.ReasoningDelta):
            return self._line(thinking=event.text) if event.text else b""
        if isinstance(event, c.ArgumentsDelta):
            if event.index in self._calls:
                self._calls[event.index].arguments += event.fragment
        elif isinstance(event, c.PartStart):
            part = event.part
            if isinstance(part, c.ToolCall):
                self._calls[event.index] = c.ToolCall(part.id, part.name, part.arguments, part.extra)
            elif isinstance(part, c.Text) and part.text:
                return self._line(content=part.text)
            elif isinstance(part, c.Reasoning) and part.text:
                return self._line(thinking=part.text)
        elif isinstance(event, c.PartStop):
            call = self._calls.pop(event.index, None)
            if call is not None:
                return self._line(tool_calls=[encode_tool_call(call, None)])
        elif isinstance(event, c.MessageStart):
            self._model = event.model
            self.usage_of = event.usage or self.usage_of
        elif isinstance(event, c.MessageDelta):
            self._stop = event.stop_reason or self._stop
            self.usage_of = event.usage or self.usage_of
        elif isinstance(event, c.MessageStop):
            return self._line(done=True)
        elif isinstance(event, c.StreamError):
            return enc.encode({"error": event.message}) + b"\n"
        return b""

    def encode_error(self, error: GatewayError) -> bytes:
        return enc.encode({"error": error.message}) + b"\n"
