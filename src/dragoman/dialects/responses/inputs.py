"""Responses `input` items ⇄ canonical messages (the request side of the dialect).

Decoding (`decode_input`), item by item:

* `message` (or the bare `{role, content}` form): leading `system`/`developer` messages become
  `Request.system` texts (the role and item id kept in `extra` for a Responses upstream); later ones
  stay in place as `Message(role="system")`. `input_text`/`output_text` parts become `Text`,
  `input_image` an `Image` (a `data:` URL split into base64 + media type), `refusal` a `Text` with
  the canonical refusal mark; `input_file`, `input_audio` and an image by `file_id` become
  `Opaque("responses")`, which other providers refuse by name.
* `reasoning`, `function_call`, `custom_tool_call` and assistant messages that follow one another
  form one assistant `Message`, in order. A reasoning item becomes a `Reasoning` whose text is its
  summary (or its raw content); `encrypted_content` is OpenAI's own (kept as the `signature`, the
  way it goes back to a Responses upstream), this gateway's sealed blob (kept in `extra` for
  `open_sealed`), or anything else (dropped with a note).
* `function_call_output` and `custom_tool_call_output` become `ToolResult`s at the start of one user
  `Message` (a user message right after them joins it); `output` is a string or parts.
* Calls keep their `call_id` verbatim; a namespaced call's name is flattened as its tool was.
* Items that only OpenAI can replay (hosted tool calls and their outputs, `item_reference`,
  `compaction`...) are dropped with a logged note.

Encoding (`encode_input`) writes the same items for a Responses upstream, without item ids (with
`store: false` an id OpenAI did not keep is "not found"; the encrypted content is self-contained).
Reasoning that is not OpenAI's own cannot go to OpenAI and is dropped.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from dragoman.canonical import Image, Message, Opaque, Part, Reasoning, Request, Text, ToolCall, ToolResult
from dragoman.dialects.openai.messages import type_error
from dragoman.dialects.responses.tools import ToolNames
from dragoman.dialects.responses.wire import (
    NS,
    REFUSAL,
    is_openai_encrypted,
    is_refusal,
    note_dropped,
    own,
    want_dict,
    want_list,
    want_str,
    wrap,
)
from dragoman.errors import InvalidRequest
from dragoman.seal import is_sealed

log = logging.getLogger("dragoman.dialects.responses")

SEALED = "_sealed"  # Reasoning.extra key: this gateway's blob, opened by `open_sealed`
INSTRUCTIONS = "_instructions"  # system Text extra key: it was the top-level `instructions`
TOOL_ERROR_PREFIX = "[tool error] "
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()
_CALLS = ("function_call", "custom_tool_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output")
_TEXTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")


# ---- decode -------------------------------------------------------------------------------------


def _image(part: dict[str, Any], p: str) -> Image | Opaque:
    url = part.get("image_url")
    if not isinstance(url, str):
        if part.get("file_id") is not None:
            return Opaque(NS, dict(part))
        raise type_error(f"{p}.image_url", "a string", url)
    detail = part.get("detail")
    detail = detail if isinstance(detail, str) and detail != "auto" else None
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if sep and header.endswith(";base64"):
            return Image(media_type=header[5:].split(";", 1)[0] or None, data=data, detail=detail)
    return Image(url=url, detail=detail)


def _parts(content: Any, p: str, item: dict[str, Any] | None = None) -> list[Part]:
    """A message's content. `item` (assistant messages) puts its id and phase on each Text."""
    mark: dict[str, Any] = {}
    if item is not None:
        if isinstance(item.get("id"), str):
            mark["item_id"] = item["id"]
        if isinstance(item.get("phase"), str):
            mark["phase"] = item["phase"]
    if isinstance(content, str):
        return [Text(content, extra=wrap(dict(mark)))]
    out: list[Part] = []
    for j, part in enumerate(want_list(content, f"{p}.content")):
        q = f"{p}.content.{j}"
        part = want_dict(part, q)
        kind = part.get("type")
        if kind in _TEXTS:
            text = want_str(part.get("text"), f"{q}.text")
            rest = {k: v for k, v in part.items() if k not in ("type", "text") and v not in ([], None)}
            out.append(Text(text, extra=wrap({**mark, **rest})))
        elif kind == "refusal":
            text = want_str(part.get("refusal"), f"{q}.refusal")
            out.append(Text(text, extra={**REFUSAL, **(wrap(dict(mark)) or {})}))
        elif kind == "input_image":
            out.append(_image(part, q))
        elif isinstance(kind, str):
            out.append(Opaque(NS, dict(part)))  # input_file, input_audio, anything newer
        else:
            raise type_error(f"{q}.type", "a string", kind)
    return out


def _reasoning(item: dict[str, Any], p: str) -> Reasoning:
    texts = [s.get("text") for s in item.get("summary") or () if isinstance(s, dict)]
    if not any(texts):
        texts = [c.get("text") for c in item.get("content") or () if isinstance(c, dict)]
    extra: dict[str, Any] = {}
    if isinstance(item.get("id"), str):
        extra["id"] = item["id"]
    part = Reasoning("\n\n".join(t for t in texts if isinstance(t, str)))
    blob = item.get("encrypted_content")
    if isinstance(blob, str) and blob:
        if is_openai_encrypted(blob):
            part.signature = blob
        elif is_sealed(blob):
            extra[SEALED] = blob
        else:
            note_dropped("foreign encrypted_content", "neither this gateway's seal nor OpenAI's", log)
    elif blob is not None and not isinstance(blob, str):
        raise type_error(f"{p}.encrypted_content", "a string or null", blob)
    part.extra = wrap(extra)
    return part


def _call(item: dict[str, Any], p: str, names: ToolNames) -> ToolCall:
    call_id = want_str(item.get("call_id"), f"{p}.call_id")
    name = want_str(item.get("name"), f"{p}.name")
    namespace = item.get("namespace")
    flat = names.flat(namespace if isinstance(namespace, str) else None, name)
    extra: dict[str, Any] = {}
    if isinstance(item.get("id"), str):
        extra["item_id"] = item["id"]
    if item.get("type") == "custom_tool_call":
        text = want_str(item.get("input", ""), f"{p}.input")
        extra["_custom"] = True
        return ToolCall(call_id, flat, _enc.encode({"input": text}).decode(), extra=wrap(extra))
    args = item.get("arguments", "")
    if not isinstance(args, str):
        raise type_error(f"{p}.arguments", "a string (JSON text)", args)
    return ToolCall(call_id, flat, args, extra=wrap(extra))


def _result(item: dict[str, Any], p: str) -> ToolResult:
    call_id = want_str(item.get("call_id"), f"{p}.call_id")
    output = item.get("output")
    content: list[Text | Image] = []
    if isinstance(output, str):
        content.append(Text(output))
    elif isinstance(output, list):
        for part in _parts(output, f"{p}.output"):
            if isinstance(part, Text | Image):
                content.append(part)
            else:
                note_dropped("files in tool outputs", "only text and images reach other providers", log)
    elif isinstance(output, dict):
        content.append(Text(_enc.encode(output).decode()))
    elif output is not None:
        raise type_error(f"{p}.output", "a string or an array of content parts", output)
    extra = {"id": item["id"]} if isinstance(item.get("id"), str) else {}
    return ToolResult(call_id, content, extra=wrap(extra))


def decode_input(raw: Any, names: ToolNames) -> tuple[list[Text], list[Message]]:
    if isinstance(raw, str):
        return [], [Message("user", [Text(raw)])]
    system: list[Text] = []
    out: list[Message] = []
    run: str | None = None  # what the last Message is still collecting: "assistant" | "results"
    for i, item in enumerate(want_list(raw, "input")):
        p = f"input.{i}"
        item = want_dict(item, p)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                texts = [t for t in _parts(item.get("content"), p) if isinstance(t, Text)]
                mark = {"role": role} if role == "developer" else {}
                if isinstance(item.get("id"), str):
                    mark["id"] = item["id"]
                if not out:
                    system.extend(Text(t.text, extra=wrap({**own(t.extra), **mark})) for t in texts)
                else:
                    out.append(Message("system", list[Part](texts), extra=wrap(mark)))
                run = None
            elif role == "user":
                parts = _parts(item.get("content"), p)
                if run == "results":
                    out[-1].content.extend(parts)
                else:
                    extra = {"id": item["id"]} if isinstance(item.get("id"), str) else {}
                    out.append(Message("user", parts, extra=wrap(extra)))
                run = None
            elif role == "assistant":
                parts = _parts(item.get("content"), p, item)
                if run != "assistant":
                    out.append(Message("assistant", []))
                out[-1].content.extend(parts)
                run = "assistant"
            else:
                raise InvalidRequest(
                    f"Invalid value for '{p}.role': expected one of 'user', 'assistant', 'system' or "
                    f"'developer', got {role!r}.",
                    param=f"{p}.role",
                )
        elif kind == "reasoning" or kind in _CALLS:
            part: Part = _reasoning(item, p) if kind == "reasoning" else _call(item, p, names)
            if run != "assistant":
                out.append(Message("assistant", []))
            out[-1].content.append(part)
            run = "assistant"
        elif kind in _OUTPUTS:
            if run != "results":
                out.append(Message("user", []))
            out[-1].content.append(_result(item, p))
            run = "results"
        elif isinstance(kind, str):
            note_dropped(f"'{kind}' input items", "they replay only to OpenAI's Responses API", log)
        else:
            raise InvalidRequest(f"'{p}' needs a 'type' (or a 'role' for a message).", param=f"{p}.type")
    return system, out


# ---- encode -------------------------------------------------------------------------------------


def _text_part(t: Text, role: str) -> dict[str, Any]:
    if is_refusal(t.extra):
        return {"type": "refusal", "refusal": t.text}
    d: dict[str, Any] = {"type": "output_text" if role == "assistant" else "input_text", "text": t.text}
    for k, v in own(t.extra).items():
        if k not in ("item_id", "phase", "role", "id") and not k.startswith("_"):
            d.setdefault(k, v)
    return d


def _image_part(img: Image) -> dict[str, Any]:
    url = img.url if img.data is None else f"data:{img.media_type or 'image/png'};base64,{img.data}"
    d: dict[str, Any] = {"type": "input_image", "image_url": url or ""}
    d["detail"] = img.detail or "auto"
    return d


def _content(parts: list[Part], role: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, Text):
            out.append(_text_part(p, role))
        elif isinstance(p, Image):
            out.append(_image_part(p))
        elif isinstance(p, Opaque) and p.dialect == NS:
            out.append(dict(p.data))
        elif isinstance(p, Opaque):
            raise InvalidRequest(
                f"{p.data.get('type', 'unknown')} content is not supported by Responses-dialect providers.",
                param="input",
            )
    return out


def _message(role: str, parts: list[Part]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": _content(parts, role)}


def _output(result: ToolResult, custom: bool) -> dict[str, Any]:
    if all(isinstance(c, Text) for c in result.content):
        output: Any = "\n".join(c.text for c in result.content if isinstance(c, Text))
        if result.is_error:
            output = TOOL_ERROR_PREFIX + output
    else:
        output = [_text_part(c, "user") if isinstance(c, Text) else _image_part(c) for c in result.content]
        if result.is_error:
            output.insert(0, {"type": "input_text", "text": TOOL_ERROR_PREFIX.strip()})
    kind = "custom_tool_call_output" if custom else "function_call_output"
    return {"type": kind, "call_id": result.tool_call_id, "output": output}


def _call_item(call: ToolCall, names: dict[str, tuple[str | None, str, bool]]) -> dict[str, Any]:
    namespace, name, custom = names.get(call.name, (None, call.name, False))
    if custom or own(call.extra).get("_custom"):
        try:
            args = _dec.decode(call.arguments) if call.arguments.strip() else {}
        except msgspec.DecodeError:
            args = call.arguments
        text = args.get("input") if isinstance(args, dict) else args
        item: dict[str, Any] = {"type": "custom_tool_call", "call_id": call.id, "name": name, "input": str(text or "")}
    else:
        item = {"type": "function_call", "call_id": call.id, "name": name, "arguments": call.arguments or "{}"}
    if namespace is not None:
        item["namespace"] = namespace
    return item


def _reasoning_item(part: Reasoning) -> dict[str, Any] | None:
    if not part.signature or not is_openai_encrypted(part.signature):
        return None  # another provider's reasoning: OpenAI can neither verify nor use it
    summary = [{"type": "summary_text", "text": part.text}] if part.text else []
    return {"type": "reasoning", "summary": summary, "encrypted_content": part.signature}


def encode_input(request: Request, names: dict[str, tuple[str | None, str, bool]]) -> tuple[str | None, list[Any]]:
    """`instructions` and `input` for a Responses upstream. `names` maps a flat tool name back to
    (namespace, name, custom) for tools that came from a Responses client."""
    items: list[Any] = []
    instructions: list[str] = []
    same = request.source == NS
    for t in request.system:
        mine = own(t.extra)
        if not same or mine.get(INSTRUCTIONS):
            instructions.append(t.text)
        else:
            items.append(_message(mine.get("role", "system"), [Text(t.text)]))
    custom_calls: set[str] = set()
    dropped = 0
    for m in request.messages:
        if m.role == "system":
            items.append(_message(own(m.extra).get("role", "system"), [p for p in m.content if isinstance(p, Text)]))
        elif m.role == "user":
            rest: list[Part] = []
            for p in m.content:
                if isinstance(p, ToolResult):
                    items.append(_output(p, p.tool_call_id in custom_calls))
                else:
                    rest.append(p)
            if rest:
                items.append(_message("user", rest))
        else:
            run: list[Part] = []
            for p in m.content:
                if isinstance(p, Text):
                    run.append(p)
                    continue
                if run:
                    items.append(_message("assistant", run))
                    run = []
                if isinstance(p, ToolCall):
                    item = _call_item(p, names)
                    if item["type"] == "custom_tool_call":
                        custom_calls.add(p.id)
                    items.append(item)
                elif isinstance(p, Reasoning):
                    reasoning = _reasoning_item(p)
                    if reasoning is None:
                        dropped += 1
                    else:
                        items.append(reasoning)
                elif isinstance(p, Opaque) and p.dialect == NS and isinstance(p.data.get("type"), str):
                    items.append(dict(p.data))  # an output item only a Responses upstream knows
            if run:
                items.append(_message("assistant", run))
    if dropped:
        note_dropped("reasoning made by another provider", "a Responses upstream takes back only its own", log)
    return ("\n\n".join(instructions) if instructions else None), items
