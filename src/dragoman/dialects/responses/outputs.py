"""Responses output items ⇄ canonical parts (the reply side), and the `response` object a reply is
presented in. Both the non-streaming codec and the stream encoder build their items here.

Reading a Responses upstream's `output` (`decode_output`): `output_text` and `refusal` parts become
`Text` (the item id and `phase` in `extra`), a `reasoning` item a `Reasoning` (summary text, else raw
content; `encrypted_content` as the `signature`), `function_call` and `custom_tool_call` a
`ToolCall` (a custom call's input as `{"input": ...}`), anything else (hosted tool calls) an
`Opaque("responses")` item.

Writing a reply (`ReplyShape`, `output_items`): what shapes it comes from the client's own body:
its tools (calls come back under the client's names and kinds), `reasoning.summary` (reasoning is
written as summary text when the client asked for summaries, as raw `reasoning_text` otherwise), and
`include: ["reasoning.encrypted_content"]` (each reasoning part is then sealed into
`encrypted_content`, stamped with the provider it came from).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from dragoman.canonical import Opaque, Part, Reasoning, Text, ToolCall
from dragoman.dialects.base import EncodeContext, Sealer
from dragoman.dialects.responses.tools import CUSTOM_KIND, ToolNames
from dragoman.dialects.responses.wire import NS, REFUSAL, is_refusal, new_id, own, wrap

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()
ENCRYPTED = "reasoning.encrypted_content"
SUMMARY_MODES = frozenset({"auto", "concise", "detailed"})


# ---- reading an upstream's output ---------------------------------------------------------------


def _item_texts(item: dict[str, Any]) -> str:
    texts = [s.get("text") for s in item.get("summary") or () if isinstance(s, dict)]
    if not any(texts):
        texts = [c.get("text") for c in item.get("content") or () if isinstance(c, dict)]
    return "\n\n".join(t for t in texts if isinstance(t, str))


def decode_output(output: Any) -> list[Part]:
    parts: list[Part] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        item_id = item.get("id") if isinstance(item.get("id"), str) else None
        if kind == "message":
            mark: dict[str, Any] = {"item_id": item_id} if item_id else {}
            if isinstance(item.get("phase"), str):
                mark["phase"] = item["phase"]
            for c in item.get("content") or ():
                if not isinstance(c, dict):
                    continue
                if c.get("type") == "refusal":
                    parts.append(Text(str(c.get("refusal") or ""), extra={**REFUSAL, **(wrap(dict(mark)) or {})}))
                elif isinstance(c.get("text"), str):
                    annotations = c.get("annotations")
                    extra = {**mark, "annotations": annotations} if annotations else mark
                    parts.append(Text(c["text"], extra=wrap(dict(extra))))
        elif kind == "reasoning":
            blob = item.get("encrypted_content")
            parts.append(
                Reasoning(
                    _item_texts(item),
                    signature=blob if isinstance(blob, str) and blob else None,
                    extra=wrap({"id": item_id} if item_id else {}),
                )
            )
        elif kind in ("function_call", "custom_tool_call"):
            extra = {"item_id": item_id} if item_id else {}
            if kind == "custom_tool_call":
                extra["_custom"] = True
                args = _enc.encode({"input": str(item.get("input") or "")}).decode()
            else:
                raw = item.get("arguments")
                args = raw if isinstance(raw, str) else ""
            parts.append(
                ToolCall(str(item.get("call_id") or item_id or ""), str(item.get("name") or ""), args, wrap(extra))
            )
        elif isinstance(kind, str):
            parts.append(Opaque(NS, item))
    return parts


# ---- writing a reply ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyShape:
    """What of the client's body shapes a reply, read once per reply."""

    request: dict[str, Any]
    names: ToolNames
    summaries: bool  # reasoning as summary text (asked) or as raw reasoning text
    seal: bool  # `include` asked for encrypted_content
    sealer: Sealer | None
    origin: str | None
    response_id: str | None

    def sealed(self, part: Reasoning) -> str | None:
        if not self.seal or self.sealer is None:
            return None
        if part.origin is None and self.origin is not None:
            part = Reasoning(part.text, part.signature, part.redacted, self.origin, part.details, part.extra)
        return self.sealer.seal([part])


def shape_of(context: EncodeContext | None) -> ReplyShape:
    ctx = context or EncodeContext()
    body = ctx.request if isinstance(ctx.request, dict) else {}
    reasoning = body.get("reasoning")
    summary = reasoning.get("summary") if isinstance(reasoning, dict) else None
    include = body.get("include")
    return ReplyShape(
        request=body,
        names=ToolNames(body.get("tools")),
        summaries=summary in SUMMARY_MODES,
        seal=isinstance(include, list) and ENCRYPTED in include,
        sealer=ctx.sealer,
        origin=ctx.origin,
        response_id=ctx.response_id,
    )


def response_object(shape: ReplyShape, rid: str, model: str, status: str, created: int | None = None) -> dict[str, Any]:
    """The `response` object (no output, no usage yet), echoing what the client asked."""
    req = shape.request
    reasoning = req.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": created if created is not None else int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": req.get("max_tool_calls"),
        "model": model or req.get("model") or "",
        "output": [],
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": req.get("previous_response_id"),
        "prompt_cache_key": req.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": req.get("safety_identifier"),
        "service_tier": req.get("service_tier") or "default",
        "store": req.get("store", True),
        "temperature": req.get("temperature", 1.0),
        "text": req.get("text") or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p", 1.0),
        "truncation": req.get("truncation", "disabled"),
        "usage": None,
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
    }


def response_id(shape: ReplyShape, upstream_id: str) -> str:
    if shape.response_id:
        return shape.response_id
    return upstream_id if upstream_id.startswith("resp_") else new_id("resp")


def text_part(text: str, refusal: bool) -> dict[str, Any]:
    if refusal:
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(item_id: str, content: list[dict[str, Any]], status: str, phase: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}
    if isinstance(phase, str):
        item["phase"] = phase
    return item


def reasoning_item(item_id: str, text: str, summaries: bool, encrypted: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
    if text:
        if summaries:
            item["summary"] = [{"type": "summary_text", "text": text}]
        else:
            item["content"] = [{"type": "reasoning_text", "text": text}]
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def custom_input(arguments: str) -> str:
    """A freeform call's input back out of the `{"input": ...}` arguments it travelled as."""
    try:
        args = _dec.decode(arguments) if arguments.strip() else {}
    except msgspec.DecodeError:
        return arguments
    value = args.get("input") if isinstance(args, dict) else None
    return value if isinstance(value, str) else arguments


def call_item(item_id: str, call: ToolCall, names: ToolNames, status: str) -> dict[str, Any]:
    """A call under the client's own name (and namespace, and kind)."""
    namespace, name, kind = names.original(call.name)
    if kind == CUSTOM_KIND or own(call.extra).get("_custom"):
        item: dict[str, Any] = {
            "id": item_id,
            "type": "custom_tool_call",
            "status": status,
            "call_id": call.id,
            "name": name,
            "input": custom_input(call.arguments),
        }
    else:
        item = {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": call.arguments or "{}",
            "call_id": call.id,
            "name": name,
        }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def is_custom(call: ToolCall, names: ToolNames) -> bool:
    return names.original(call.name)[2] == CUSTOM_KIND or bool(own(call.extra).get("_custom"))


def _message_runs(parts: list[Part]) -> Iterator[tuple[str, list[Part]]]:
    """Parts grouped into output items: runs of Text (split where the item id changes) and singles."""
    run: list[Part] = []
    run_id: Any = None
    for p in parts:
        if isinstance(p, Text):
            pid = own(p.extra).get("item_id")
            if run and pid != run_id:
                yield "message", run
                run = []
            run_id = pid
            run.append(p)
            continue
        if run:
            yield "message", run
            run = []
        yield "single", [p]
    if run:
        yield "message", run


def output_items(parts: list[Part], shape: ReplyShape) -> list[dict[str, Any]]:
    """A whole reply's `output` (the non-streaming form)."""
    out: list[dict[str, Any]] = []
    for kind, run in _message_runs(parts):
        if kind == "message":
            content = [text_part(t.text, is_refusal(t.extra)) for t in run if isinstance(t, Text)]
            phase = own(run[0].extra).get("phase") if isinstance(run[0], Text) else None
            out.append(message_item(new_id("msg"), content, "completed", phase))
            continue
        p = run[0]
        if isinstance(p, Reasoning):
            out.append(reasoning_item(new_id("rs"), p.text, shape.summaries, shape.sealed(p)))
        elif isinstance(p, ToolCall):
            out.append(call_item(new_id("ctc" if is_custom(p, shape.names) else "fc"), p, shape.names, "completed"))
        elif isinstance(p, Opaque) and p.dialect == NS:
            out.append(dict(p.data))
    return out
