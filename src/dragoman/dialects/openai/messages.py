"""OpenAI Chat Completions messages and content parts ⇄ canonical (the request side of
`dragoman.dialects.openai`, whose docstring lists the mapping rules). Wrong shapes raise
`InvalidRequest` naming the path ("messages.2.tool_calls.0.function.arguments")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dragoman.canonical import (
    Image,
    Message,
    Opaque,
    Part,
    Reasoning,
    Request,
    Text,
    ToolCall,
    ToolResult,
)
from dragoman.dialects.openai.stream import NS
from dragoman.dialects.openai.system import fold_system
from dragoman.errors import InvalidRequest, Unsupported

TOOL_ERROR_PREFIX = "[tool error] "
IMAGE_PLACEHOLDER = "[image omitted: OpenAI tool messages carry text only]"
# Codec hint kept in the "openai" extra namespace (never sent): what a same-dialect trip restores.
_REASONING_KEY = "_reasoning_key"  # `reasoning` was used, or an empty text sat beside reasoning_details

_ASSISTANT_KNOWN = frozenset(
    {
        "role",
        "content",
        "name",
        "reasoning_content",
        "reasoning",
        "reasoning_details",
        "tool_calls",
        "refusal",
    }
)


# ---- validation helpers -------------------------------------------------------------------------


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def type_error(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.", param=param
    )


def opt_number(body: dict[str, Any], key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise type_error(key, "a number", v)
    return float(v)


def opt_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise type_error(key, "an integer", v)
    return v


def opt_bool(body: dict[str, Any], key: str, param: str | None = None) -> bool | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise type_error(param or key, "a boolean", v)
    return v


def opt_str(body: dict[str, Any], key: str, param: str) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise type_error(param, "a string", v)
    return v


def without(d: dict[str, Any], known: frozenset[str] | tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in known}


def own_extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    if not extra:
        return {}
    own = extra.get(NS)
    return own if isinstance(own, dict) else {}


def wrap_extra(d: dict[str, Any]) -> dict[str, Any] | None:
    return {NS: d} if d else None


def _merge_extra(target: dict[str, Any], extra: dict[str, Any] | None) -> None:
    for k, v in own_extra(extra).items():
        if not k.startswith("_"):
            target.setdefault(k, v)


# ---- request: decode ----------------------------------------------------------------------------


def _image(part: dict[str, Any], param: str) -> Image:
    iu = part.get("image_url")
    if isinstance(iu, str):
        iu = {"url": iu}
    if not isinstance(iu, dict) or not isinstance(iu.get("url"), str):
        raise type_error(f"{param}.image_url.url", "a string", iu.get("url") if isinstance(iu, dict) else iu)
    url: str = iu["url"]
    detail = opt_str(iu, "detail", f"{param}.image_url.detail")
    extra = wrap_extra(without(part, ("type", "image_url")))
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if sep and header.endswith(";base64"):
            media_type = header[5:].split(";", 1)[0] or None
            return Image(media_type=media_type, data=data, detail=detail, extra=extra)
    return Image(url=url, detail=detail, extra=extra)


def _text_part(part: dict[str, Any], param: str, key: str = "text") -> Text:
    text = part.get(key)
    if not isinstance(text, str):
        raise type_error(f"{param}.{key}", "a string", text)
    return Text(text, extra=wrap_extra(without(part, ("type", key))))


def _part_type(part: Any, param: str) -> str:
    if not isinstance(part, dict):
        raise type_error(param, "an object", part)
    ptype = part.get("type")
    if not isinstance(ptype, str):
        raise type_error(f"{param}.type", "a string", ptype)
    return ptype


def _text_content(content: Any, param: str, allow_images: bool = False) -> list[Text | Image]:
    """String or an array of text parts (images too where allowed, for tool results)."""
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise type_error(param, "a string or an array of text parts", content)
    out: list[Text | Image] = []
    for j, part in enumerate(content):
        p = f"{param}.{j}"
        ptype = _part_type(part, p)
        if ptype == "text":
            out.append(_text_part(part, p))
        elif ptype == "image_url" and allow_images:
            out.append(_image(part, p))
        else:
            raise InvalidRequest(f"'{p}.type' must be 'text' here, got '{ptype}'.", param=f"{p}.type")
    return out


def _user_content(content: Any, param: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise type_error(param, "a string or an array of content parts", content)
    out: list[Part] = []
    for j, part in enumerate(content):
        p = f"{param}.{j}"
        ptype = _part_type(part, p)
        if ptype == "text":
            out.append(_text_part(part, p))
        elif ptype == "image_url":
            out.append(_image(part, p))
        else:  # input_audio, file, anything newer: only an OpenAI upstream can carry it
            out.append(Opaque(NS, dict(part)))
    return out


def _tool_calls(raw: Any, param: str) -> list[ToolCall]:
    if not isinstance(raw, list):
        raise type_error(param, "an array", raw)
    out: list[ToolCall] = []
    for j, tc in enumerate(raw):
        p = f"{param}.{j}"
        if not isinstance(tc, dict):
            raise type_error(p, "an object", tc)
        ttype = tc.get("type", "function")
        if ttype != "function":
            raise Unsupported(f"'{ttype}' tool calls are not supported by the gateway.", param=f"{p}.type")
        tid = tc.get("id")
        if not isinstance(tid, str):
            raise type_error(f"{p}.id", "a string", tid)
        fn = tc.get("function")
        if not isinstance(fn, dict):
            raise type_error(f"{p}.function", "an object", fn)
        name = fn.get("name")
        if not isinstance(name, str):
            raise type_error(f"{p}.function.name", "a string", name)
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            raise type_error(f"{p}.function.arguments", "a string (JSON text)", args)
        extra = without(tc, ("id", "type", "function"))
        fn_rest = without(fn, ("name", "arguments"))
        if fn_rest:
            extra["function"] = fn_rest
        out.append(ToolCall(id=tid, name=name, arguments=args, extra=wrap_extra(extra)))
    return out


def assistant_parts(m: dict[str, Any], param: str) -> list[Part]:
    parts: list[Part] = []
    rc = m.get("reasoning_content")
    if rc is not None and not isinstance(rc, str):
        raise type_error(f"{param}.reasoning_content", "a string", rc)
    r = m.get("reasoning")
    reasoning = rc if rc is not None else r if isinstance(r, str) else None
    details = m.get("reasoning_details")
    if details is not None and not isinstance(details, list):
        raise type_error(f"{param}.reasoning_details", "an array", details)
    if reasoning is not None or details:
        parts.append(Reasoning(reasoning or "", details=details or None))
    content = m.get("content")
    texts: list[Part] = []
    if isinstance(content, str):
        texts.append(Text(content))
    elif isinstance(content, list):
        for j, part in enumerate(content):
            p = f"{param}.content.{j}"
            ptype = _part_type(part, p)
            if ptype == "text":
                texts.append(_text_part(part, p))
            elif ptype == "refusal":
                t = _text_part(part, p, "refusal")
                texts.append(Text(t.text, extra={NS: {**own_extra(t.extra), "type": "refusal"}}))
            else:
                texts.append(Opaque(NS, dict(part)))
    elif content is not None:
        raise type_error(f"{param}.content", "a string, an array of content parts or null", content)
    refusal = opt_str(m, "refusal", f"{param}.refusal")
    if refusal is not None:
        texts.append(Text(refusal, extra={NS: {"type": "refusal"}}))
    calls = _tool_calls(m["tool_calls"], f"{param}.tool_calls") if m.get("tool_calls") is not None else []
    if calls and texts == [Text("")]:
        texts = []  # "" next to tool calls: empty text parts are rejected by some providers
    return parts + texts + calls


def decode_messages(raw: Any) -> tuple[list[Text], list[Message]]:
    if not isinstance(raw, list):
        raise type_error("messages", "an array", raw)
    if not raw:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    system: list[Text] = []
    out: list[Message] = []
    leading = True
    after_results = False
    for i, m in enumerate(raw):
        p = f"messages.{i}"
        if not isinstance(m, dict):
            raise type_error(p, "an object", m)
        role = m.get("role")
        name = opt_str(m, "name", f"{p}.name")
        if role in ("system", "developer"):
            mark: dict[str, Any] = {"role": "developer"} if role == "developer" else {}
            if name is not None:
                mark["name"] = name
            texts = [t for t in _text_content(m.get("content"), f"{p}.content") if isinstance(t, Text)]
            if leading:
                system.extend(Text(t.text, extra=wrap_extra({**own_extra(t.extra), **mark})) for t in texts)
            else:
                rest = without(m, ("role", "content", "name"))
                if role == "developer":
                    rest["role"] = "developer"
                out.append(Message("system", list[Part](texts), name=name, extra=wrap_extra(rest)))
            after_results = False
            continue
        leading = False
        if role == "tool":
            tcid = m.get("tool_call_id")
            if not isinstance(tcid, str):
                raise type_error(f"{p}.tool_call_id", "a string", tcid)
            content = m.get("content")
            result = ToolResult(
                tool_call_id=tcid,
                content=[] if content is None else _text_content(content, f"{p}.content", allow_images=True),
                name=name,
                extra=wrap_extra(without(m, ("role", "content", "name", "tool_call_id"))),
            )
            if after_results:
                out[-1].content.append(result)
            else:
                out.append(Message("user", [result]))
            after_results = True
        elif role == "user":
            if "content" not in m:
                raise InvalidRequest(f"Missing required parameter: '{p}.content'.", param=f"{p}.content")
            parts = _user_content(m.get("content"), f"{p}.content")
            rest = without(m, ("role", "content", "name"))
            if after_results and name is None and not rest:
                out[-1].content.extend(parts)
            else:
                out.append(Message("user", parts, name=name, extra=wrap_extra(rest)))
            after_results = False
        elif role == "assistant":
            rest = without(m, _ASSISTANT_KNOWN)
            rc, r = m.get("reasoning_content"), m.get("reasoning")
            if rc is None and isinstance(r, str):
                rest[_REASONING_KEY] = "reasoning"
            elif rc == "" and m.get("reasoning_details"):
                rest[_REASONING_KEY] = "reasoning_content"
            out.append(Message("assistant", assistant_parts(m, p), name=name, extra=wrap_extra(rest)))
            after_results = False
        else:
            raise InvalidRequest(
                f"Invalid value for '{p}.role': expected one of 'system', 'developer', 'user', 'assistant' "
                f"or 'tool', got {role!r}.",
                param=f"{p}.role",
            )
    return system, out


# ---- request: encode ----------------------------------------------------------------------------


def _refuse(part: Part, where: str) -> Unsupported:
    if isinstance(part, Opaque):
        btype = part.data.get("type", "unknown")
        return Unsupported(f"{btype} blocks are not supported by OpenAI-dialect providers.")
    kind = type(part).__name__.lower()
    return Unsupported(f"{kind} parts in {where} messages are not supported by OpenAI-dialect providers.")


def _text_dict(t: Text) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "text", "text": t.text}
    _merge_extra(d, t.extra)
    return d


def _image_dict(img: Image) -> dict[str, Any]:
    url = img.url if img.data is None else f"data:{img.media_type or 'application/octet-stream'};base64,{img.data}"
    iu: dict[str, Any] = {"url": url or ""}
    if img.detail is not None:
        iu["detail"] = img.detail
    d: dict[str, Any] = {"type": "image_url", "image_url": iu}
    _merge_extra(d, img.extra)
    return d


def _content(parts: Sequence[Part], where: str) -> str | list[dict[str, Any]]:
    """A single plain text becomes a string; anything else an array of parts."""
    if len(parts) == 1 and isinstance(parts[0], Text) and not own_extra(parts[0].extra):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, Text):
            out.append(_text_dict(p))
        elif isinstance(p, Image) and where == "user":
            out.append(_image_dict(p))
        elif isinstance(p, Opaque) and p.dialect == NS:
            out.append(dict(p.data))
        else:
            raise _refuse(p, where)
    return out


def _system_message(texts: list[Text], role: str, name: str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": role, "content": _content(texts, "system")}
    if name is not None:
        msg["name"] = name
    _merge_extra(msg, extra)
    return msg


def _encode_system_text(t: Text) -> dict[str, Any]:
    own = own_extra(t.extra)
    part_extra = without(own, ("role", "name"))
    text = Text(t.text, extra=wrap_extra(part_extra))
    return _system_message([text], "developer" if own.get("role") == "developer" else "system", own.get("name"), None)


def _tool_message(r: ToolResult) -> dict[str, Any]:
    texts = [c.text if isinstance(c, Text) else IMAGE_PLACEHOLDER for c in r.content]
    content = "\n".join(texts)
    if r.is_error:
        content = TOOL_ERROR_PREFIX + content
    msg: dict[str, Any] = {"role": "tool", "tool_call_id": r.tool_call_id, "content": content}
    _merge_extra(msg, r.extra)
    return msg


def _encode_user(m: Message) -> list[dict[str, Any]]:
    out = [_tool_message(p) for p in m.content if isinstance(p, ToolResult)]
    rest = [p for p in m.content if not isinstance(p, ToolResult)]
    if rest or not out:
        msg: dict[str, Any] = {"role": "user", "content": _content(rest, "user") if rest else ""}
        if m.name is not None:
            msg["name"] = m.name
        _merge_extra(msg, m.extra)
        out.append(msg)
    return out


def _call_dict(c: ToolCall) -> dict[str, Any]:
    own = own_extra(c.extra)
    fn: dict[str, Any] = {"name": c.name, "arguments": c.arguments}
    fn_rest = own.get("function")
    if isinstance(fn_rest, dict):
        for k, v in fn_rest.items():
            fn.setdefault(k, v)
    d: dict[str, Any] = {"id": c.id, "type": "function", "function": fn}
    for k, v in own.items():
        if k != "function" and not k.startswith("_"):
            d.setdefault(k, v)
    return d


def assistant_message(m: Message | None, parts: list[Part], strict: bool) -> dict[str, Any]:
    """`strict` (requests) refuses what has no OpenAI form; a response drops it instead."""
    reasoning: list[str] = []
    details: list[Any] = []
    content: list[Part] = []
    refusals: list[str] = []
    calls: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, Reasoning):
            if p.text or not (p.redacted or p.details):
                reasoning.append(p.text)
            if p.details:
                details.extend(p.details)
        elif isinstance(p, Text):
            if own_extra(p.extra).get("type") == "refusal":
                refusals.append(p.text)
            else:
                content.append(p)
        elif isinstance(p, ToolCall):
            calls.append(_call_dict(p))
        elif isinstance(p, Opaque) and p.dialect == NS:
            content.append(p)
        elif strict:
            raise _refuse(p, "assistant")
    if calls:  # Kimi and others reject empty text next to tool calls: omit it
        content = [p for p in content if not (isinstance(p, Text) and not p.text and not p.extra)]
    msg: dict[str, Any] = {"role": "assistant"}
    if not strict:
        msg["content"] = "".join(p.text for p in content if isinstance(p, Text)) if content else None
    elif content:
        msg["content"] = _content(content, "assistant")
    elif not calls and not refusals:
        msg["content"] = ""
    hint = own_extra(m.extra).get(_REASONING_KEY) if m is not None else None
    if reasoning or (hint and any(isinstance(p, Reasoning) for p in parts)):
        msg[hint if hint in ("reasoning", "reasoning_content") else "reasoning_content"] = "\n\n".join(reasoning)
    if details:
        msg["reasoning_details"] = details
    if calls:
        msg["tool_calls"] = calls
    if refusals:
        msg["refusal"] = "".join(refusals)
    if m is not None:
        if m.name is not None:
            msg["name"] = m.name
        _merge_extra(msg, m.extra)
    return msg


def _check_foreign(request: Request) -> None:
    anthropic = (request.extra or {}).get("anthropic")
    tools = anthropic.get("server_tools") if isinstance(anthropic, dict) else None
    if tools:
        names = ", ".join(str(t.get("type", t.get("name", "?"))) if isinstance(t, dict) else "?" for t in tools)
        raise Unsupported(
            f"Anthropic server tools ({names}) are not supported by OpenAI-dialect providers.", param="tools"
        )


def encode_messages(request: Request) -> list[dict[str, Any]]:
    _check_foreign(request)
    if request.source in (None, NS):  # written by an OpenAI client (or by no dialect): as it was
        messages: list[dict[str, Any]] = [_encode_system_text(t) for t in request.system]
        conversation = request.messages
    else:  # another dialect's client: one leading system message (see openai/system.py)
        system, conversation = fold_system(request)
        messages = [{"role": "system", "content": system}] if system is not None else []
    for m in conversation:
        if m.role == "system":
            texts = [p for p in m.content if isinstance(p, Text)]
            if len(texts) != len(m.content):
                raise _refuse(next(p for p in m.content if not isinstance(p, Text)), "system")
            own = own_extra(m.extra)
            role = "developer" if own.get("role") == "developer" else "system"
            rest = {k: v for k, v in own.items() if k != "role"}
            messages.append(_system_message(texts, role, m.name, wrap_extra(rest)))
        elif m.role == "user":
            messages.extend(_encode_user(m))
        else:
            messages.append(assistant_message(m, m.content, strict=True))
    return messages
