"""Folds a canonical event stream into a canonical Response.

Used wherever a stream must be seen whole: non-streaming replies served from a streaming upstream,
the reasoning memory, usage recording and `dragoman say`.
"""

from __future__ import annotations

from typing import Any

from dragoman import dialects
from dragoman.canonical import (
    ArgumentsDelta,
    Event,
    MessageDelta,
    MessageStart,
    Opaque,
    OpaqueDelta,
    PartStart,
    Reasoning,
    ReasoningDelta,
    Response,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    ToolCall,
    merge_usage,
)


class Accumulator:
    __slots__ = ("_args", "_details", "_sig", "_texts", "error", "response")

    def __init__(self) -> None:
        self.response = Response(id="", model="")
        self.error: StreamError | None = None
        self._texts: dict[int, list[str]] = {}
        self._args: dict[int, list[str]] = {}
        self._sig: dict[int, list[str]] = {}
        self._details: dict[int, tuple[str, list[Any]]] = {}

    def feed(self, event: Event) -> None:
        resp = self.response
        if isinstance(event, TextDelta | ReasoningDelta):
            self._texts.setdefault(event.index, []).append(event.text)
        elif isinstance(event, ArgumentsDelta):
            self._args.setdefault(event.index, []).append(event.fragment)
        elif isinstance(event, SignatureDelta):
            self._sig.setdefault(event.index, []).append(event.signature)
        elif isinstance(event, PartStart):
            while len(resp.content) < event.index:
                resp.content.append(Text(""))
            part = event.part
            # copy so the accumulated part is ours to finish
            if isinstance(part, Text):
                part = Text(part.text, extra=part.extra)
            elif isinstance(part, Reasoning):
                part = Reasoning(part.text, part.signature, part.redacted, part.origin, part.details, part.extra)
            elif isinstance(part, ToolCall):
                part = ToolCall(part.id, part.name, part.arguments, part.extra)
            if event.index < len(resp.content):
                resp.content[event.index] = part
            else:
                resp.content.append(part)
        elif isinstance(event, OpaqueDelta):
            # streamed reasoning details (OpenRouter's) must be replayed; their dialect knows how
            # fragments fold into the replayable list. Other opaque deltas only matter to a
            # same-dialect byte trip.
            details = event.data.get("reasoning_details")
            if isinstance(details, list):
                self._details.setdefault(event.index, (event.dialect, []))[1].extend(details)
        elif isinstance(event, MessageStart):
            resp.id = event.id
            resp.model = event.model
            if event.usage is not None:
                resp.usage = merge_usage(resp.usage, event.usage)
        elif isinstance(event, MessageDelta):
            if event.stop_reason is not None:
                resp.stop_reason = event.stop_reason
            if event.stop_sequence is not None:
                resp.stop_sequence = event.stop_sequence
            if event.usage is not None:
                resp.usage = event.usage  # a MessageDelta's usage is the complete final report
        elif isinstance(event, StreamError):
            self.error = event

    def finish(self) -> Response:
        content = self.response.content
        for i, part in enumerate(content):
            if isinstance(part, Text) and i in self._texts:
                part.text += "".join(self._texts[i])
            elif isinstance(part, Reasoning):
                if i in self._texts:
                    part.text += "".join(self._texts[i])
                if i in self._sig:
                    part.signature = (part.signature or "") + "".join(self._sig[i])
                if i in self._details:
                    dialect, fragments = self._details[i]
                    part.details = dialects.get(dialect).merge_details([*(part.details or []), *fragments])
            elif isinstance(part, ToolCall) and i in self._args:
                part.arguments += "".join(self._args[i])
            elif isinstance(part, Opaque):
                pass
        self._texts.clear()
        self._args.clear()
        self._sig.clear()
        self._details.clear()
        return self.response
