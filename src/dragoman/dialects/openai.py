"""OpenAI Chat Completions dialect (`/v1/chat/completions`, SSE streaming).

Mapping rules (canonical ⇄ OpenAI) worth knowing, beyond the obvious field renames:

* Leading `system`/`developer` messages become `Request.system` (one Text per text; a developer
  message marks its Texts `extra={"openai": {"role": "developer"}}`, a `name` is kept there too);
  later ones stay in place as `Message(role="system")`. Encoding writes one system message per Text,
  so a system message made of several text parts comes back as several system messages.
* Consecutive `role:"tool"` messages become one user Message of ToolResult parts; a user message right
  after them joins that Message (results first). Encoding reverses it: one `tool` message per result,
  then a user message with the remaining parts. OpenAI has no `is_error`: its text is prefixed with
  "[tool error] ". Images inside a tool result become a text placeholder (tool messages carry text).
* Assistant `reasoning_content` (or OpenRouter's `reasoning`) becomes a Reasoning part placed first,
  `reasoning_details` its `details`. Encoding writes `reasoning_content` (texts joined by a blank
  line) and `reasoning_details` unchanged; a Reasoning holding only `redacted` data has no OpenAI form
  and is dropped, and signatures are dropped. `refusal` becomes a Text marked
  `extra={"openai": {"type": "refusal"}}`.
* `input_audio`, `file` and unknown content parts become `Opaque("openai", part)`; another dialect's
  encoder refuses them. Anthropic-only blocks (documents, server tool blocks) and Anthropic server
  tools are refused here with `Unsupported`.
* `max_completion_tokens` (preferred) or `max_tokens` decode to `max_tokens`; encoding writes
  `max_tokens` (provider hooks rename it for reasoning models). `stop` is always written as a list.
  `top_k` has no OpenAI field and is dropped. `reasoning_effort` ⇄ `Thinking.effort`; a budget alone
  maps to an effort (<=2048 low, <=8192 medium, <=24576 high, else xhigh); disabled thinking writes
  nothing (except an explicit effort "none").
* `user` (else `safety_identifier`) becomes `Request.user`. Other top-level fields are kept in
  `Request.extra["openai"]` and merged back; keys starting with "_" there are codec hints, never sent.
* A response keeps only choice 0 (n>1 loses the others). Usage: `prompt_tokens` includes cached
  input; canonical `input_tokens` = prompt_tokens - cache_read - cache_write, where cache_read is
  `prompt_tokens_details.cached_tokens`, Moonshot's top-level `cached_tokens` or DeepSeek's
  `prompt_cache_hit_tokens`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from dragoman.canonical import (
    Image,
    Message,
    Opaque,
    Part,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    Text,
    Thinking,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolSpec,
    Usage,
)
from dragoman.dialects.openai_stream import (
    NS,
    OpenAIStreamDecoder,
    OpenAIStreamEncoder,
    error_from_payload,
    finish_from_stop,
    stop_from_openai,
    usage_from_openai,
    usage_to_openai,
)
from dragoman.errors import (
    GatewayError,
    InvalidRequest,
    Unsupported,
    UpstreamError,
    for_upstream_status,
    redact,
)

TOOL_ERROR_PREFIX = "[tool error] "
IMAGE_PLACEHOLDER = "[image omitted: OpenAI tool messages carry text only]"
# Codec hints kept in the "openai" extra namespace (never sent): what a same-dialect trip restores.
_RF_DESCRIPTION = "_json_schema_description"  # json_schema.description (no canonical field)
_MAX_TOKENS_KEY = "_max_tokens_key"  # the client sent max_completion_tokens
_REASONING_KEY = "_reasoning_key"  # the assistant message used `reasoning`, not `reasoning_content`

_json = msgspec.json.Decoder()

_REQ_KNOWN = frozenset(
    {
        "model",
        "messages",
        "max_completion_tokens",
        "max_tokens",
        "temperature",
        "top_p",
        "n",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "response_format",
        "user",
        "stream",
        "stream_options",
    }
)
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
_RESP_KNOWN = frozenset({"id", "object", "model", "choices", "usage"})


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


def _bad(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.", param=param
    )


def _opt_number(body: dict[str, Any], key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _bad(key, "a number", v)
    return float(v)


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(key, "an integer", v)
    return v


def _opt_bool(body: dict[str, Any], key: str, param: str | None = None) -> bool | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise _bad(param or key, "a boolean", v)
    return v


def _opt_str(body: dict[str, Any], key: str, param: str) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _bad(param, "a string", v)
    return v


def _rest(d: dict[str, Any], known: frozenset[str] | tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in known}


def _ns(extra: dict[str, Any] | None) -> dict[str, Any]:
    if not extra:
        return {}
    own = extra.get(NS)
    return own if isinstance(own, dict) else {}


def _wrap(d: dict[str, Any]) -> dict[str, Any] | None:
    return {NS: d} if d else None


def _merge_extra(target: dict[str, Any], extra: dict[str, Any] | None) -> None:
    for k, v in _ns(extra).items():
        if not k.startswith("_"):
            target.setdefault(k, v)


# ---- request: decode ----------------------------------------------------------------------------


def _image(part: dict[str, Any], param: str) -> Image:
    iu = part.get("image_url")
    if isinstance(iu, str):
        iu = {"url": iu}
    if not isinstance(iu, dict) or not isinstance(iu.get("url"), str):
        raise _bad(f"{param}.image_url.url", "a string", iu.get("url") if isinstance(iu, dict) else iu)
    url: str = iu["url"]
    detail = _opt_str(iu, "detail", f"{param}.image_url.detail")
    extra = _wrap(_rest(part, ("type", "image_url")))
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if sep and header.endswith(";base64"):
            media_type = header[5:].split(";", 1)[0] or None
            return Image(media_type=media_type, data=data, detail=detail, extra=extra)
    return Image(url=url, detail=detail, extra=extra)


def _text_part(part: dict[str, Any], param: str, key: str = "text") -> Text:
    text = part.get(key)
    if not isinstance(text, str):
        raise _bad(f"{param}.{key}", "a string", text)
    return Text(text, extra=_wrap(_rest(part, ("type", key))))


def _part_type(part: Any, param: str) -> str:
    if not isinstance(part, dict):
        raise _bad(param, "an object", part)
    ptype = part.get("type")
    if not isinstance(ptype, str):
        raise _bad(f"{param}.type", "a string", ptype)
    return ptype


def _text_content(content: Any, param: str, allow_images: bool = False) -> list[Text | Image]:
    """String or an array of text parts (images too where allowed, for tool results)."""
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise _bad(param, "a string or an array of text parts", content)
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
        raise _bad(param, "a string or an array of content parts", content)
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
        raise _bad(param, "an array", raw)
    out: list[ToolCall] = []
    for j, tc in enumerate(raw):
        p = f"{param}.{j}"
        if not isinstance(tc, dict):
            raise _bad(p, "an object", tc)
        ttype = tc.get("type", "function")
        if ttype != "function":
            raise Unsupported(f"'{ttype}' tool calls are not supported by the gateway.", param=f"{p}.type")
        tid = tc.get("id")
        if not isinstance(tid, str):
            raise _bad(f"{p}.id", "a string", tid)
        fn = tc.get("function")
        if not isinstance(fn, dict):
            raise _bad(f"{p}.function", "an object", fn)
        name = fn.get("name")
        if not isinstance(name, str):
            raise _bad(f"{p}.function.name", "a string", name)
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            raise _bad(f"{p}.function.arguments", "a string (JSON text)", args)
        extra = _rest(tc, ("id", "type", "function"))
        fn_rest = _rest(fn, ("name", "arguments"))
        if fn_rest:
            extra["function"] = fn_rest
        out.append(ToolCall(id=tid, name=name, arguments=args, extra=_wrap(extra)))
    return out


def _assistant_parts(m: dict[str, Any], param: str) -> list[Part]:
    parts: list[Part] = []
    rc = m.get("reasoning_content")
    if rc is not None and not isinstance(rc, str):
        raise _bad(f"{param}.reasoning_content", "a string", rc)
    r = m.get("reasoning")
    reasoning = rc if rc is not None else r if isinstance(r, str) else None
    details = m.get("reasoning_details")
    if details is not None and not isinstance(details, list):
        raise _bad(f"{param}.reasoning_details", "an array", details)
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
                texts.append(Text(t.text, extra={NS: {**_ns(t.extra), "type": "refusal"}}))
            else:
                texts.append(Opaque(NS, dict(part)))
    elif content is not None:
        raise _bad(f"{param}.content", "a string, an array of content parts or null", content)
    refusal = _opt_str(m, "refusal", f"{param}.refusal")
    if refusal is not None:
        texts.append(Text(refusal, extra={NS: {"type": "refusal"}}))
    calls = _tool_calls(m["tool_calls"], f"{param}.tool_calls") if m.get("tool_calls") is not None else []
    if (parts or calls) and texts == [Text("")]:
        texts = []  # "" next to tool calls: empty text parts are rejected by some providers
    return parts + texts + calls


def _decode_messages(raw: Any) -> tuple[list[Text], list[Message]]:
    if not isinstance(raw, list):
        raise _bad("messages", "an array", raw)
    if not raw:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    system: list[Text] = []
    out: list[Message] = []
    leading = True
    after_results = False
    for i, m in enumerate(raw):
        p = f"messages.{i}"
        if not isinstance(m, dict):
            raise _bad(p, "an object", m)
        role = m.get("role")
        name = _opt_str(m, "name", f"{p}.name")
        if role in ("system", "developer"):
            mark: dict[str, Any] = {"role": "developer"} if role == "developer" else {}
            if name is not None:
                mark["name"] = name
            texts = [t for t in _text_content(m.get("content"), f"{p}.content") if isinstance(t, Text)]
            if leading:
                system.extend(Text(t.text, extra=_wrap({**_ns(t.extra), **mark})) for t in texts)
            else:
                rest = _rest(m, ("role", "content", "name"))
                if role == "developer":
                    rest["role"] = "developer"
                out.append(Message("system", list[Part](texts), name=name, extra=_wrap(rest)))
            after_results = False
            continue
        leading = False
        if role == "tool":
            tcid = m.get("tool_call_id")
            if not isinstance(tcid, str):
                raise _bad(f"{p}.tool_call_id", "a string", tcid)
            content = m.get("content")
            result = ToolResult(
                tool_call_id=tcid,
                content=[] if content is None else _text_content(content, f"{p}.content", allow_images=True),
                name=name,
                extra=_wrap(_rest(m, ("role", "content", "name", "tool_call_id"))),
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
            rest = _rest(m, ("role", "content", "name"))
            if after_results and name is None and not rest:
                out[-1].content.extend(parts)
            else:
                out.append(Message("user", parts, name=name, extra=_wrap(rest)))
            after_results = False
        elif role == "assistant":
            rest = _rest(m, _ASSISTANT_KNOWN)
            if m.get("reasoning_content") is None and isinstance(m.get("reasoning"), str):
                rest[_REASONING_KEY] = "reasoning"
            out.append(Message("assistant", _assistant_parts(m, p), name=name, extra=_wrap(rest)))
            after_results = False
        else:
            raise InvalidRequest(
                f"Invalid value for '{p}.role': expected one of 'system', 'developer', 'user', 'assistant' "
                f"or 'tool', got {role!r}.",
                param=f"{p}.role",
            )
    return system, out


def _decode_tools(raw: Any) -> list[ToolSpec]:
    if not isinstance(raw, list):
        raise _bad("tools", "an array", raw)
    out: list[ToolSpec] = []
    for i, t in enumerate(raw):
        p = f"tools.{i}"
        if not isinstance(t, dict):
            raise _bad(p, "an object", t)
        ttype = t.get("type")
        if ttype != "function":
            raise Unsupported(
                f"'{ttype}' tools are not supported by the gateway; only function tools are.",
                param=f"{p}.type",
            )
        fn = t.get("function")
        if not isinstance(fn, dict):
            raise _bad(f"{p}.function", "an object", fn)
        name = fn.get("name")
        if not isinstance(name, str):
            raise _bad(f"{p}.function.name", "a string", name)
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise _bad(f"{p}.function.parameters", "an object", params)
        extra = _rest(t, ("type", "function"))
        fn_rest = _rest(fn, ("name", "description", "parameters", "strict"))
        if fn_rest:
            extra["function"] = fn_rest
        spec = ToolSpec(
            name=name,
            description=_opt_str(fn, "description", f"{p}.function.description"),
            strict=_opt_bool(fn, "strict", f"{p}.function.strict"),
            extra=_wrap(extra),
        )
        if params is not None:
            spec.parameters = params
        out.append(spec)
    return out


def _decode_tool_choice(raw: Any) -> ToolChoice:
    if raw in ("auto", "none", "required"):
        return ToolChoice(mode=raw)
    if isinstance(raw, dict) and raw.get("type") == "function":
        fn = raw.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise _bad("tool_choice.function.name", "a string", name)
        return ToolChoice(mode="tool", name=name)
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        raise Unsupported(f"tool_choice of type '{raw['type']}' is not supported.", param="tool_choice.type")
    raise InvalidRequest(
        "Invalid value for 'tool_choice': expected 'auto', 'none', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
    )


def _decode_response_format(raw: Any, extra: dict[str, Any]) -> ResponseFormat:
    if not isinstance(raw, dict):
        raise _bad("response_format", "an object", raw)
    rtype = raw.get("type")
    if rtype in ("text", "json_object"):
        return ResponseFormat(type=rtype)
    if rtype != "json_schema":
        raise InvalidRequest(f"Invalid value for 'response_format.type': {rtype!r}.", param="response_format.type")
    js = raw.get("json_schema")
    if not isinstance(js, dict):
        raise _bad("response_format.json_schema", "an object", js)
    schema = js.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise _bad("response_format.json_schema.schema", "an object", schema)
    desc = _opt_str(js, "description", "response_format.json_schema.description")
    if desc is not None:
        extra[_RF_DESCRIPTION] = desc
    return ResponseFormat(
        type="json_schema",
        schema=schema,
        name=_opt_str(js, "name", "response_format.json_schema.name"),
        strict=_opt_bool(js, "strict", "response_format.json_schema.strict"),
    )


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
    if len(parts) == 1 and isinstance(parts[0], Text) and not _ns(parts[0].extra):
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
    own = _ns(t.extra)
    part_extra = _rest(own, ("role", "name"))
    text = Text(t.text, extra=_wrap(part_extra))
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
    own = _ns(c.extra)
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


def _assistant_message(m: Message | None, parts: list[Part], strict: bool) -> dict[str, Any]:
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
            if _ns(p.extra).get("type") == "refusal":
                refusals.append(p.text)
            else:
                content.append(p)
        elif isinstance(p, ToolCall):
            calls.append(_call_dict(p))
        elif isinstance(p, Opaque) and p.dialect == NS:
            content.append(p)
        elif strict:
            raise _refuse(p, "assistant")
    msg: dict[str, Any] = {"role": "assistant"}
    if not strict:
        msg["content"] = "".join(p.text for p in content if isinstance(p, Text)) if content else None
    elif content:
        msg["content"] = _content(content, "assistant")
    elif not calls and not refusals:
        msg["content"] = ""
    if reasoning:
        key = "reasoning" if m is not None and _ns(m.extra).get(_REASONING_KEY) == "reasoning" else "reasoning_content"
        msg[key] = "\n\n".join(reasoning)
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


def _effort_for_budget(budget: int) -> str:
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    if budget <= 24576:
        return "high"
    return "xhigh"


def _reasoning_effort(t: Thinking) -> str | None:
    if t.enabled is False:
        return "none" if t.effort == "none" else None
    if t.effort:
        return t.effort
    if t.budget_tokens is not None:
        return _effort_for_budget(t.budget_tokens)
    return None


def _check_foreign(request: Request) -> None:
    anthropic = (request.extra or {}).get("anthropic")
    tools = anthropic.get("server_tools") if isinstance(anthropic, dict) else None
    if tools:
        names = ", ".join(str(t.get("type", t.get("name", "?"))) if isinstance(t, dict) else "?" for t in tools)
        raise Unsupported(
            f"Anthropic server tools ({names}) are not supported by OpenAI-dialect providers.", param="tools"
        )


# ---- the codec ----------------------------------------------------------------------------------


class OpenAICodec:
    name = "openai"
    framing = "sse"

    def decode_request(self, body: dict[str, Any]) -> Request:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str):
            raise _bad("model", "a string", model)
        system, messages = _decode_messages(body.get("messages"))
        extra = _rest(body, _REQ_KNOWN)
        req = Request(model=model, messages=messages, system=system)
        mct = _opt_int(body, "max_completion_tokens")
        req.max_tokens = mct if mct is not None else _opt_int(body, "max_tokens")
        if mct is not None and "max_tokens" not in body:
            extra[_MAX_TOKENS_KEY] = "max_completion_tokens"
        req.temperature = _opt_number(body, "temperature")
        req.top_p = _opt_number(body, "top_p")
        req.presence_penalty = _opt_number(body, "presence_penalty")
        req.frequency_penalty = _opt_number(body, "frequency_penalty")
        req.n = _opt_int(body, "n")
        req.seed = _opt_int(body, "seed")
        stop = body.get("stop")
        if isinstance(stop, str):
            req.stop = [stop]
        elif isinstance(stop, list):
            for i, s in enumerate(stop):
                if not isinstance(s, str):
                    raise _bad(f"stop.{i}", "a string", s)
            req.stop = list(stop)
        elif stop is not None:
            raise _bad("stop", "a string or an array of strings", stop)
        if body.get("tools") is not None:
            req.tools = _decode_tools(body["tools"])
        if body.get("tool_choice") is not None:
            req.tool_choice = _decode_tool_choice(body["tool_choice"])
        req.parallel_tool_calls = _opt_bool(body, "parallel_tool_calls")
        effort = _opt_str(body, "reasoning_effort", "reasoning_effort")
        if effort is not None:
            req.thinking = Thinking(enabled=effort != "none", effort=effort)
        if body.get("response_format") is not None:
            req.response_format = _decode_response_format(body["response_format"], extra)
        user = _opt_str(body, "user", "user")
        sid = body.get("safety_identifier")
        req.user = user if user is not None else sid if isinstance(sid, str) else None
        req.stream = bool(_opt_bool(body, "stream"))
        so = body.get("stream_options")
        if so is not None:
            if not isinstance(so, dict):
                raise _bad("stream_options", "an object", so)
            req.include_usage = bool(_opt_bool(so, "include_usage", "stream_options.include_usage"))
            so_rest = _rest(so, ("include_usage",))
            if so_rest:
                extra["stream_options"] = so_rest
        req.extra = _wrap(extra)
        return req

    def encode_request(self, request: Request) -> dict[str, Any]:
        _check_foreign(request)
        messages: list[dict[str, Any]] = [_encode_system_text(t) for t in request.system]
        for m in request.messages:
            if m.role == "system":
                texts = [p for p in m.content if isinstance(p, Text)]
                if len(texts) != len(m.content):
                    raise _refuse(next(p for p in m.content if not isinstance(p, Text)), "system")
                own = _ns(m.extra)
                role = "developer" if own.get("role") == "developer" else "system"
                rest = {k: v for k, v in own.items() if k != "role"}
                messages.append(_system_message(texts, role, m.name, _wrap(rest)))
            elif m.role == "user":
                messages.extend(_encode_user(m))
            else:
                messages.append(_assistant_message(m, m.content, strict=True))
        out: dict[str, Any] = {"model": request.model, "messages": messages}
        own = _ns(request.extra)
        if request.max_tokens is not None:
            key = "max_completion_tokens" if own.get(_MAX_TOKENS_KEY) == "max_completion_tokens" else "max_tokens"
            out[key] = request.max_tokens
        for key in ("temperature", "top_p", "n", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(request, key)
            if value is not None:
                out[key] = value
        if request.stop is not None:
            out["stop"] = list(request.stop)
        if request.tools is not None:
            out["tools"] = [self._tool(t) for t in request.tools]
        tc = request.tool_choice
        if tc is not None:
            out["tool_choice"] = (
                {"type": "function", "function": {"name": tc.name or ""}} if tc.mode == "tool" else tc.mode
            )
        if request.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = request.parallel_tool_calls
        effort = _reasoning_effort(request.thinking) if request.thinking is not None else None
        if effort is not None:
            out["reasoning_effort"] = effort
        rf = request.response_format
        if rf is not None:
            if rf.type == "json_schema":
                js: dict[str, Any] = {"name": rf.name or "response"}
                if isinstance(own.get(_RF_DESCRIPTION), str):
                    js["description"] = own[_RF_DESCRIPTION]
                if rf.schema is not None:
                    js["schema"] = rf.schema
                if rf.strict is not None:
                    js["strict"] = rf.strict
                out["response_format"] = {"type": "json_schema", "json_schema": js}
            else:
                out["response_format"] = {"type": rf.type}
        if request.user is not None and own.get("safety_identifier") != request.user:
            out["user"] = request.user
        if request.stream:
            out["stream"] = True
            if request.include_usage:
                out["stream_options"] = {"include_usage": True}
        so_rest = own.get("stream_options")
        if isinstance(so_rest, dict) and request.stream:
            out["stream_options"] = {**so_rest, **out.get("stream_options", {})}
        for k, v in own.items():
            if not k.startswith("_") and k != "stream_options":
                out.setdefault(k, v)
        return out

    @staticmethod
    def _tool(t: ToolSpec) -> dict[str, Any]:
        own = _ns(t.extra)
        fn: dict[str, Any] = {"name": t.name}
        if t.description is not None:
            fn["description"] = t.description
        fn["parameters"] = t.parameters
        if t.strict is not None:
            fn["strict"] = t.strict
        fn_rest = own.get("function")
        if isinstance(fn_rest, dict):
            for k, v in fn_rest.items():
                fn.setdefault(k, v)
        d: dict[str, Any] = {"type": "function", "function": fn}
        for k, v in own.items():
            if k != "function" and not k.startswith("_"):
                d.setdefault(k, v)
        return d

    def decode_response(self, body: dict[str, Any]) -> Response:
        err = error_from_payload(body) if isinstance(body, dict) else None
        if err is not None:
            raise err
        if not isinstance(body, dict):
            raise UpstreamError("upstream sent a chat.completion that is not a JSON object")
        try:
            choices = body.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices else {}
            if not isinstance(choice, dict):
                raise _bad("choices.0", "an object", choice)
            msg = choice.get("message")
            parts = _assistant_parts(msg, "choices.0.message") if isinstance(msg, dict) else []
        except InvalidRequest as e:
            raise UpstreamError(f"upstream sent a malformed chat.completion: {e.message}") from e
        finish = choice.get("finish_reason")
        usage = body.get("usage")
        rid, model = body.get("id"), body.get("model")
        return Response(
            id=rid if isinstance(rid, str) else "",
            model=model if isinstance(model, str) else "",
            content=parts,
            stop_reason=stop_from_openai(finish if isinstance(finish, str) else None),
            usage=usage_from_openai(usage) if isinstance(usage, dict) else Usage(),
            extra=_wrap(_rest(body, _RESP_KNOWN)),
        )

    def encode_response(self, response: Response) -> dict[str, Any]:
        own = _ns(response.extra)
        created = own.get("created")
        body: dict[str, Any] = {
            "id": response.id or "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": created if isinstance(created, int) else int(time.time()),
            "model": response.model,
            "choices": [
                {
                    "index": 0,
                    "message": _assistant_message(None, response.content, strict=False),
                    "finish_reason": finish_from_stop(response.stop_reason),
                    "logprobs": None,
                }
            ],
            "usage": usage_to_openai(response.usage),
        }
        for k, v in own.items():
            if not k.startswith("_"):
                body.setdefault(k, v)
        return body

    def stream_decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def stream_encoder(self, *, include_usage: bool = False) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(include_usage)

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        cls = for_upstream_status(status)
        keep_status = status if cls is InvalidRequest and 400 <= status < 500 else None
        try:
            obj: Any = _json.decode(body) if body.strip() else None
        except msgspec.DecodeError:
            obj = None
        if isinstance(obj, dict):
            err = obj.get("error")
            if isinstance(err, dict):
                message = err.get("message")
                param, code = err.get("param"), err.get("code")
                return cls(
                    redact(message) if isinstance(message, str) and message else f"upstream returned HTTP {status}",
                    param=param if isinstance(param, str) else None,
                    code=code if isinstance(code, str) else None,
                    status=keep_status,
                )
            for key in ("error", "message", "detail"):
                text = obj.get(key)
                if isinstance(text, str) and text:
                    code = obj.get("code")
                    return cls(redact(text), code=code if isinstance(code, str) else None, status=keep_status)
        text = body.decode("utf-8", "replace").strip()[:2000]
        return cls(redact(text) if text else f"upstream returned HTTP {status}", status=keep_status)

    def encode_error(self, error: GatewayError) -> dict[str, Any]:
        return error.to_openai()


CODEC = OpenAICodec()
