"""Ollama's native `/api/chat` dialect (NDJSON streaming).

Mapping rules (canonical ⇄ Ollama) worth knowing, beyond the obvious field renames:

* `Request.system` becomes one leading `system` message (blocks joined by "\\n"); system messages
  inside `messages` stay in place. Several text parts of one message are joined by "\\n".
* Tool results become one `role:"tool"` message each, with `tool_name` (the result's name, else the
  name of the earlier call with that id) and `tool_call_id`. `is_error` has no Ollama form: the text is
  prefixed with "[tool error] ", and that prefix is read back as `is_error`.
* Reasoning parts become the assistant's `thinking` text. Signatures and redacted blocks have no Ollama
  form and are dropped.
* Images must be base64 (a `data:` URL is unpacked); an http(s) URL is refused with `Unsupported`.
  Ollama keeps images beside the text, so their position among text parts is not kept.
* Ollama has no `tool_choice`: "none" sends no tools, "required"/"tool" cannot be forced (dropped).
  `parallel_tool_calls`, `user`, `ToolSpec.strict` and the response format's name/strict are dropped.
* Tool calls carry arguments as objects; canonical keeps JSON text (compact, key order preserved).
  Calls without an `id` get "call_<hex>", flagged in `extra` so a same-dialect trip omits it again.
* `done_reason` stays "stop" after tool calls, so a reply with tool calls stops with `tool_use`.
* Fields with no canonical meaning (keep_alive, extra options, timings) live in `extra["ollama"]`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec

from dragoman import canonical as c
from dragoman.dialects.base import Codec, StreamDecoder, StreamEncoder
from dragoman.errors import (
    GatewayError,
    InvalidRequest,
    Unsupported,
    UpstreamError,
    for_upstream_status,
    redact,
)

NS = "ollama"
GEN = "generated_id"  # extra flag: the id was made up by this codec, Ollama never sent one
ERROR_PREFIX = "[tool error] "

_enc = msgspec.json.Encoder()
_REQ_KNOWN = frozenset({"model", "messages", "tools", "think", "format", "options", "stream"})
_MSG_KNOWN = frozenset({"role", "content", "thinking", "images", "tool_calls", "tool_name", "tool_call_id"})
_RESP_KNOWN = frozenset({"model", "message", "done", "done_reason", "prompt_eval_count", "eval_count"})
# options key -> Request field
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "num_predict": "max_tokens"}
_OPTIONS |= {k: k for k in ("stop", "seed", "presence_penalty", "frequency_penalty")}
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_SNIFF = (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"))
_KINDS: dict[str, tuple[type, ...]] = {"a string": (str,), "an integer": (int,), "a number": (int, float)}
_KINDS |= {"a boolean": (bool,), "an object": (dict,), "an array": (list,)}


# ---- small helpers ------------------------------------------------------------------------------


def _want(v: Any, what: str, param: str, exc: type[GatewayError] = InvalidRequest) -> Any:
    """`v` if it is `what` ("a string", "an object"...), else `exc` naming `param`."""
    if isinstance(v, _KINDS[what]) and (what == "a boolean" or not isinstance(v, bool)):
        return v
    if exc is InvalidRequest:
        raise InvalidRequest(f"'{param}' must be {what}", param=param)
    raise exc(f"upstream sent a malformed Ollama body: '{param}' must be {what}")


def _opt_list(d: dict[str, Any], key: str, param: str, exc: type[GatewayError] = InvalidRequest) -> list[Any]:
    v = d.get(key)
    return [] if v is None else _want(v, "an array", f"{param}{key}", exc)


def _gen_id() -> str:
    return "call_" + secrets.token_hex(6)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _ext(extra: dict[str, Any] | None) -> dict[str, Any]:
    """This dialect's slice of an `extra` dict."""
    mine = extra.get(NS) if extra else None
    return mine if isinstance(mine, dict) else {}


def _ns(fields: dict[str, Any]) -> dict[str, Any] | None:
    return {NS: fields} if fields else None


def _merge(into: dict[str, Any], extra: Any, skip: tuple[str, ...] = ()) -> None:
    """Put back fields kept in `extra`, never overriding what the codec wrote."""
    if isinstance(extra, dict):
        for k, v in extra.items():
            if k not in skip:
                into.setdefault(k, v)


def _args_object(arguments: str, call_id: str, param: str | None) -> Any:
    """Canonical JSON-text arguments as Ollama's object. With no `param` (replies, streams), text that
    is not a JSON object passes as the text instead of failing."""
    if not arguments.strip():
        return {}
    try:
        obj = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        obj = None
    if isinstance(obj, dict) or param is None:
        return obj if isinstance(obj, dict) else arguments
    raise InvalidRequest(f"tool call '{call_id}' has arguments that are not a JSON object", param=param)


def _decode_tool_call(raw: Any, param: str, exc: type[GatewayError]) -> c.ToolCall:
    """`{id?, function:{index?, name, arguments}}` as a ToolCall; unknown fields go to extra."""
    call = _want(raw, "an object", param, exc)
    fn = _want(call.get("function"), "an object", f"{param}.function", exc)
    name = _want(fn.get("name"), "a string", f"{param}.function.name", exc)
    args = fn.get("arguments")
    if args is None or isinstance(args, str):
        arguments = args or ""
    else:
        arguments = _enc.encode(_want(args, "an object", f"{param}.function.arguments", exc)).decode()
    ext: dict[str, Any] = {k: v for k, v in call.items() if k not in ("id", "function")}
    fn_ext = {k: v for k, v in fn.items() if k not in ("name", "arguments")}
    if fn_ext:
        ext["function"] = fn_ext
    cid = call.get("id")
    if cid is None or cid == "":
        cid = _gen_id()
        ext[GEN] = True
    cid = _want(cid, "a string", f"{param}.id", exc)
    return c.ToolCall(id=cid, name=name, arguments=arguments, extra=_ns(ext))


def _encode_tool_call(tc: c.ToolCall, param: str | None) -> dict[str, Any]:
    ext = _ext(tc.extra)
    fn: dict[str, Any] = {"name": tc.name, "arguments": _args_object(tc.arguments, tc.id, param)}
    _merge(fn, ext.get("function"))
    out: dict[str, Any] = {"id": tc.id} if tc.id and not ext.get(GEN) else {}
    out["function"] = fn
    _merge(out, ext, ("function", GEN))
    return out


def _image_b64(img: c.Image, param: str) -> str:
    if img.data:
        return img.data
    if img.url:
        head, sep, payload = img.url.partition(",")
        if sep and head.startswith("data:") and head.endswith(";base64"):
            return payload
        raise Unsupported("image URLs are not supported by Ollama; send base64 data", param=param)
    raise InvalidRequest("image has neither data nor url", param=param)


def _decode_image(v: Any, param: str) -> c.Image:
    data: str = _want(v, "a string", param)
    return c.Image(media_type=next((m for pre, m in _SNIFF if data.startswith(pre)), None), data=data)


def _stop_reason(done_reason: Any, had_tool_calls: bool) -> c.StopReason:
    if done_reason == "length":
        return "max_tokens"
    return "tool_use" if had_tool_calls else "end_turn"


def _done_reason(stop: c.StopReason | None) -> str:
    return "length" if stop in ("max_tokens", "model_context_window_exceeded") else "stop"


def _usage(body: dict[str, Any], exc: type[GatewayError]) -> c.Usage:
    pin, pout = body.get("prompt_eval_count"), body.get("eval_count")
    return c.Usage(
        input_tokens=0 if pin is None else _want(pin, "an integer", "prompt_eval_count", exc),
        output_tokens=0 if pout is None else _want(pout, "an integer", "eval_count", exc),
    )


def _unsupported_opaque(part: c.Opaque, param: str) -> Unsupported:
    kind = part.data.get("type", "unknown")
    return Unsupported(f"{part.dialect} block '{kind}' cannot be sent to Ollama", param=param)


# ---- requests -----------------------------------------------------------------------------------


def _encode_think(t: c.Thinking | None) -> bool | str | None:
    if t is None:
        return None
    if t.enabled is False or t.effort == "none":
        return False
    if t.effort in _EFFORT:
        return _EFFORT[t.effort or ""]
    if t.enabled or t.effort is not None or t.budget_tokens is not None or t.adaptive:
        return True
    return None


def _encode_format(rf: c.ResponseFormat | None) -> str | dict[str, Any] | None:
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_schema" and rf.schema is not None:
        return rf.schema
    return "json"


class _RequestEncoder:
    """Canonical messages to Ollama messages; remembers call names for tool results."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.out: list[dict[str, Any]] = []

    def message(self, msg: c.Message, param: str) -> None:
        texts: list[str] = []
        thinking: list[str] = []
        images: list[str] = []
        calls: list[dict[str, Any]] = []
        pending = False  # user/system text or images waiting to become a message
        assistant = msg.role == "assistant"
        for j, part in enumerate(msg.content):
            p = f"{param}.content[{j}]"
            if isinstance(part, c.Text):
                texts.append(part.text)
                pending = True
            elif isinstance(part, c.Image):
                images.append(_image_b64(part, p))
                pending = True
            elif isinstance(part, c.Reasoning) and assistant:
                if part.text:  # signatures and redacted blocks have no Ollama form: dropped
                    thinking.append(part.text)
            elif isinstance(part, c.ToolCall) and assistant:
                self.names[part.id] = part.name
                calls.append(_encode_tool_call(part, p))
            elif isinstance(part, c.ToolResult) and msg.role == "user":
                if pending:  # keep the order: text before a result goes out before it
                    self._plain(msg, texts, images)
                    texts, images, pending = [], [], False
                self.out.append(self._tool_result(part, p))
            elif isinstance(part, c.Opaque):
                raise _unsupported_opaque(part, p)
            else:
                raise InvalidRequest(f"a {msg.role} message cannot hold a {type(part).__name__}", param=p)
        if assistant:
            out = self._plain(msg, texts, images)
            if thinking:
                out["thinking"] = "\n".join(thinking)
            if calls:
                out["tool_calls"] = calls
        elif pending or not msg.content:
            self._plain(msg, texts, images)

    def _plain(self, msg: c.Message, texts: list[str], images: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"role": msg.role, "content": "\n".join(texts)}
        if images:
            out["images"] = images
        _merge(out, _ext(msg.extra))
        self.out.append(out)
        return out

    def _tool_result(self, tr: c.ToolResult, param: str) -> dict[str, Any]:
        texts = [p.text for p in tr.content if isinstance(p, c.Text)]
        images = [_image_b64(p, f"{param}.content[{k}]") for k, p in enumerate(tr.content) if isinstance(p, c.Image)]
        content = "\n".join(texts)
        out: dict[str, Any] = {"role": "tool", "content": ERROR_PREFIX + content if tr.is_error else content}
        if images:
            out["images"] = images
        name = tr.name or self.names.get(tr.tool_call_id)
        if name:
            out["tool_name"] = name
        ext = _ext(tr.extra)
        if tr.tool_call_id and not ext.get(GEN):
            out["tool_call_id"] = tr.tool_call_id
        _merge(out, ext, (GEN,))
        return out


def encode_request(req: c.Request) -> dict[str, Any]:
    if req.n is not None and req.n > 1:
        raise Unsupported("Ollama returns one choice; n > 1 is not supported", param="n")
    server_tools = ((req.extra or {}).get("anthropic") or {}).get("server_tools")
    if server_tools:
        kinds = ", ".join(sorted({str(t.get("type", t.get("name"))) for t in server_tools if isinstance(t, dict)}))
        raise Unsupported(f"Anthropic server tools ({kinds}) are not supported by Ollama", param="tools")
    enc = _RequestEncoder()
    if req.system:
        enc.out.append({"role": "system", "content": "\n".join(t.text for t in req.system)})
    for i, msg in enumerate(req.messages):
        enc.message(msg, f"messages[{i}]")
    body: dict[str, Any] = {"model": req.model, "messages": enc.out}
    # No tool_choice in Ollama: "none" sends no tools; "required"/"tool" cannot be forced (dropped).
    if req.tools and not (req.tool_choice is not None and req.tool_choice.mode == "none"):
        tools = []
        for t in req.tools:
            fn: dict[str, Any] = {"name": t.name}
            if t.description is not None:
                fn["description"] = t.description
            fn["parameters"] = t.parameters
            ext = _ext(t.extra)
            _merge(fn, ext.get("function"))
            tool: dict[str, Any] = {"type": "function", "function": fn}
            _merge(tool, ext, ("function",))
            tools.append(tool)
        body["tools"] = tools
    think = _encode_think(req.thinking)
    if think is not None:
        body["think"] = think
    fmt = _encode_format(req.response_format)
    if fmt is not None:
        body["format"] = fmt
    options = {wire: getattr(req, f) for wire, f in _OPTIONS.items() if getattr(req, f) is not None}
    extra = _ext(req.extra)
    _merge(options, extra.get("options"))
    if options:
        body["options"] = options
    body["stream"] = req.stream
    _merge(body, extra, ("options",))
    return body


def _decode_think(v: Any) -> c.Thinking:
    if isinstance(v, bool):
        return c.Thinking(enabled=v)
    if v in ("low", "medium", "high", "max"):
        return c.Thinking(enabled=True, effort=v)
    raise InvalidRequest('\'think\' must be true, false, "low", "medium", "high" or "max"', param="think")


def _decode_format(v: Any) -> c.ResponseFormat | None:
    if v == "":
        return None
    if v == "json":
        return c.ResponseFormat(type="json_object")
    if isinstance(v, dict):
        return c.ResponseFormat(type="json_schema", schema=v)
    raise InvalidRequest("'format' must be \"json\" or a JSON schema object", param="format")


class _RequestDecoder:
    def __init__(self) -> None:
        self.messages: list[c.Message] = []
        self.pending: list[c.ToolCall] = []  # calls not yet answered, for results without an id
        self.tool_group: c.Message | None = None  # consecutive tool messages share one user message

    def message(self, raw: Any, param: str) -> None:
        m = _want(raw, "an object", param)
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest("'role' must be one of system, user, assistant, tool", param=f"{param}.role")
        content = m.get("content")
        text: str = "" if content is None else _want(content, "a string", f"{param}.content")
        images = [_decode_image(v, f"{param}.images[{k}]") for k, v in enumerate(_opt_list(m, "images", f"{param}."))]
        ext = {k: v for k, v in m.items() if k not in _MSG_KNOWN}
        if role != "assistant" and m.get("thinking") is not None:
            ext["thinking"] = m["thinking"]
        if role == "tool":
            self._tool(m, text, images, ext, param)
            return
        self.tool_group = None
        parts: list[c.Part] = []
        if role == "assistant" and m.get("thinking"):
            parts.append(c.Reasoning(text=_want(m["thinking"], "a string", f"{param}.thinking")))
        _merge(ext, {k: m[k] for k in ("tool_name", "tool_call_id") if k in m})
        if text:
            parts.append(c.Text(text))
        parts.extend(images)
        if role == "assistant":
            for k, rc in enumerate(_opt_list(m, "tool_calls", f"{param}.")):
                tc = _decode_tool_call(rc, f"{param}.tool_calls[{k}]", InvalidRequest)
                parts.append(tc)
                self.pending.append(tc)
        elif m.get("tool_calls"):
            raise InvalidRequest("only assistant messages can carry tool_calls", param=f"{param}.tool_calls")
        self.messages.append(c.Message(role=role, content=parts, extra=_ns(ext)))

    def _tool(self, m: dict[str, Any], text: str, images: list[c.Image], ext: dict[str, Any], param: str) -> None:
        name = m.get("tool_name")
        name = None if name is None else _want(name, "a string", f"{param}.tool_name")
        cid = m.get("tool_call_id")
        if cid is not None and cid != "":
            cid = _want(cid, "a string", f"{param}.tool_call_id")
            call = next((tc for tc in self.pending if tc.id == cid), None)
        else:  # Ollama matches results by tool_name: take the oldest open call of that name
            call = next((tc for tc in self.pending if tc.name == name or name is None), None)
            cid = call.id if call is not None else _gen_id()
            ext[GEN] = True
        if call is not None:
            self.pending.remove(call)
        is_error = text.startswith(ERROR_PREFIX)
        if is_error:
            text = text[len(ERROR_PREFIX) :]
        body: list[c.Text | c.Image] = [c.Text(text)] if text else []
        body.extend(images)
        tr = c.ToolResult(tool_call_id=cid, content=body, is_error=is_error, name=name, extra=_ns(ext))
        if self.tool_group is None:
            self.tool_group = c.Message(role="user", content=[])
            self.messages.append(self.tool_group)
        self.tool_group.content.append(tr)


def decode_request(body: dict[str, Any]) -> c.Request:
    body = _want(body, "an object", "body")
    req = c.Request(model=_want(body.get("model"), "a string", "model"))
    dec = _RequestDecoder()
    for i, raw in enumerate(_opt_list(body, "messages", "")):
        dec.message(raw, f"messages[{i}]")
    req.messages = dec.messages
    if body.get("tools") is not None:
        req.tools = []
        for i, raw in enumerate(_want(body["tools"], "an array", "tools")):
            p = f"tools[{i}]"
            tool = _want(raw, "an object", p)
            fn = _want(tool.get("function"), "an object", f"{p}.function")
            spec = c.ToolSpec(name=_want(fn.get("name"), "a string", f"{p}.function.name"))
            if fn.get("description") is not None:
                spec.description = _want(fn["description"], "a string", f"{p}.function.description")
            if fn.get("parameters") is not None:
                spec.parameters = _want(fn["parameters"], "an object", f"{p}.function.parameters")
            ext: dict[str, Any] = {k: v for k, v in tool.items() if k not in ("type", "function")}
            fn_ext = {k: v for k, v in fn.items() if k not in ("name", "description", "parameters")}
            if fn_ext:
                ext["function"] = fn_ext
            spec.extra = _ns(ext)
            req.tools.append(spec)
    if body.get("think") is not None:
        req.thinking = _decode_think(body["think"])
    if body.get("format") is not None:
        req.response_format = _decode_format(body["format"])
    stream = body.get("stream")
    req.stream = True if stream is None else _want(stream, "a boolean", "stream")  # Ollama's default: true
    extra: dict[str, Any] = {k: v for k, v in body.items() if k not in _REQ_KNOWN}
    more: dict[str, Any] = {}
    for k, v in (_want(body["options"], "an object", "options") if body.get("options") is not None else {}).items():
        p = f"options.{k}"
        if k in ("top_k", "seed", "num_predict"):
            n = _want(v, "an integer", p)
            if k == "num_predict" and n < 0:  # -1 infinite, -2 fill the context: no canonical form
                more[k] = n
            else:
                setattr(req, _OPTIONS[k], n)
        elif k in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            setattr(req, k, _want(v, "a number", p))
        elif k == "stop":
            stops = [v] if isinstance(v, str) else _want(v, "an array", p)
            req.stop = [_want(s, "a string", f"{p}[{j}]") for j, s in enumerate(stops)]
        else:
            more[k] = v
    if more:
        extra["options"] = more
    req.extra = _ns(extra)
    return req


# ---- responses ----------------------------------------------------------------------------------


def _reply_parts(msg: dict[str, Any]) -> tuple[list[c.Part], list[c.ToolCall]]:
    """An Ollama reply message as parts: thinking, then text, then tool calls."""
    parts: list[c.Part] = []
    if msg.get("thinking"):
        parts.append(c.Reasoning(text=_want(msg["thinking"], "a string", "message.thinking", UpstreamError)))
    if msg.get("content"):
        parts.append(c.Text(_want(msg["content"], "a string", "message.content", UpstreamError)))
    calls = [
        _decode_tool_call(rc, f"message.tool_calls[{k}]", UpstreamError)
        for k, rc in enumerate(_opt_list(msg, "tool_calls", "message.", UpstreamError))
    ]
    return parts, calls


def decode_response(body: dict[str, Any]) -> c.Response:
    body = _want(body, "an object", "body", UpstreamError)
    if body.get("error") is not None:
        raise _error_from(502, body)
    parts, calls = _reply_parts(_want(body.get("message") or {}, "an object", "message", UpstreamError))
    done_reason = body.get("done_reason")
    extra = {k: v for k, v in body.items() if k not in _RESP_KNOWN}
    if done_reason not in (None, "stop", "length"):
        extra["done_reason"] = done_reason  # "load", "unload"
    return c.Response(
        id="ollama-" + secrets.token_hex(12),
        model=str(body.get("model") or ""),
        content=[*parts, *calls],
        stop_reason=_stop_reason(done_reason, bool(calls)),
        usage=_usage(body, UpstreamError),
        extra=_ns(extra),
    )


def encode_response(resp: c.Response) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(p.text for p in resp.content if isinstance(p, c.Text)),
    }
    thinking = "".join(p.text for p in resp.content if isinstance(p, c.Reasoning))
    if thinking:
        msg["thinking"] = thinking
    calls = [_encode_tool_call(p, None) for p in resp.content if isinstance(p, c.ToolCall)]
    if calls:
        msg["tool_calls"] = calls
    extra = dict(_ext(resp.extra))
    body: dict[str, Any] = {"model": resp.model, "created_at": extra.pop("created_at", None) or _now()}
    body["message"] = msg
    body["done_reason"] = extra.pop("done_reason", None) or _done_reason(resp.stop_reason)
    body["done"] = True
    body["prompt_eval_count"] = resp.usage.prompt_tokens  # Ollama has no cache: all input counts
    body["eval_count"] = resp.usage.output_tokens
    _merge(body, extra)
    return body


# ---- errors -------------------------------------------------------------------------------------


def _error_from(status: int, obj: dict[str, Any]) -> GatewayError:
    """Ollama `{"error":"text"}`, OpenAI `{"error":{message,param}}` or Anthropic
    `{"type":"error","error":{type,message}}`, keeping the upstream's message (redacted)."""
    err = obj.get("error")
    param = None
    if isinstance(err, dict):
        message = err.get("message")
        if not (isinstance(message, str) and message):
            message = _enc.encode(err).decode()
        param = err.get("param") if isinstance(err.get("param"), str) else None
    else:
        message = err if isinstance(err, str) else _enc.encode(obj).decode()
    # an error line inside a 200 stream is the upstream failing, not the client
    return for_upstream_status(status if status >= 400 else 502)(redact(message), param=param)


def decode_error(status: int, body: bytes) -> GatewayError:
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError:
        obj = None
    if isinstance(obj, dict) and obj:
        return _error_from(status, obj)
    text = body.decode("utf-8", "replace").strip()[:1000] or f"upstream returned HTTP {status}"
    return _error_from(status, {"error": text})


class OllamaCodec:
    name = "ollama"
    framing = "ndjson"
    decode_request = staticmethod(decode_request)
    encode_request = staticmethod(encode_request)
    decode_response = staticmethod(decode_response)
    encode_response = staticmethod(encode_response)
    decode_error = staticmethod(decode_error)

    def stream_decoder(self) -> StreamDecoder:
        from dragoman.dialects.ollama_stream import OllamaStreamDecoder

        return OllamaStreamDecoder()

    def stream_encoder(self, *, include_usage: bool = False) -> StreamEncoder:
        from dragoman.dialects.ollama_stream import OllamaStreamEncoder

        return OllamaStreamEncoder()  # Ollama always reports the counts on its done line

    def encode_error(self, error: GatewayError) -> dict[str, Any]:
        return {"error": error.message}


CODEC: Codec = OllamaCodec()
