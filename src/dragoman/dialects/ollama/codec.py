"""Ollama's native `/api/chat` dialect (NDJSON streaming).

Mapping rules (canonical ⇄ Ollama) worth knowing, beyond the obvious field renames:

* `Request.system` becomes one leading `system` message (blocks joined by "\\n", Claude Code's
  billing-header block left out: it changes every request and defeats the prefix cache); system
  messages inside `messages` stay in place. Several text parts of one message are joined by "\\n".
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
from typing import Any

import msgspec

from dragoman import canonical as c
from dragoman.dialects.base import Codec, EncodeContext, StreamDecoder, StreamEncoder, Tally, is_client_metadata
from dragoman.dialects.ollama.stream import OllamaStreamDecoder, OllamaStreamEncoder
from dragoman.dialects.ollama.tally import END_MARKERS, OllamaStreamTap, summarize
from dragoman.dialects.ollama.wire import (
    GEN,
    decode_tool_call,
    done_reason_of,
    encode_tool_call,
    error_from,
    gen_id,
    merge_extra,
    now_iso,
    opt_list,
    own_extra,
    reply_parts,
    stop_reason_of,
    usage_of,
    want,
    wrap_extra,
)
from dragoman.dialects.tap import EndTap
from dragoman.errors import (
    GatewayError,
    InvalidRequest,
    Unsupported,
    UpstreamError,
)

ERROR_PREFIX = "[tool error] "

_REQ_KNOWN = frozenset({"model", "messages", "tools", "think", "format", "options", "stream"})
_MSG_KNOWN = frozenset({"role", "content", "thinking", "images", "tool_calls", "tool_name", "tool_call_id"})
_RESP_KNOWN = frozenset({"model", "message", "done", "done_reason", "prompt_eval_count", "eval_count"})
# options key -> Request field
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "num_predict": "max_tokens"}
_OPTIONS |= {k: k for k in ("stop", "seed", "presence_penalty", "frequency_penalty")}
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_SNIFF = (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"))


# ---- small helpers ------------------------------------------------------------------------------


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
    data: str = want(v, "a string", param)
    return c.Image(media_type=next((m for pre, m in _SNIFF if data.startswith(pre)), None), data=data)


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
                calls.append(encode_tool_call(part, p))
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
        merge_extra(out, own_extra(msg.extra))
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
        ext = own_extra(tr.extra)
        if tr.tool_call_id and not ext.get(GEN):
            out["tool_call_id"] = tr.tool_call_id
        merge_extra(out, ext, (GEN,))
        return out


def encode_request(req: c.Request) -> dict[str, Any]:
    if req.n is not None and req.n > 1:
        raise Unsupported("Ollama returns one choice; n > 1 is not supported", param="n")
    server_tools = ((req.extra or {}).get("anthropic") or {}).get("server_tools")
    if server_tools:
        kinds = ", ".join(sorted({str(t.get("type", t.get("name"))) for t in server_tools if isinstance(t, dict)}))
        raise Unsupported(f"Anthropic server tools ({kinds}) are not supported by Ollama", param="tools")
    enc = _RequestEncoder()
    system = [t.text for t in req.system if not is_client_metadata(t.text)]
    if system:
        enc.out.append({"role": "system", "content": "\n".join(system)})
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
            ext = own_extra(t.extra)
            merge_extra(fn, ext.get("function"))
            tool: dict[str, Any] = {"type": "function", "function": fn}
            merge_extra(tool, ext, ("function",))
            tools.append(tool)
        body["tools"] = tools
    think = _encode_think(req.thinking)
    if think is not None:
        body["think"] = think
    fmt = _encode_format(req.response_format)
    if fmt is not None:
        body["format"] = fmt
    options = {wire: getattr(req, f) for wire, f in _OPTIONS.items() if getattr(req, f) is not None}
    extra = own_extra(req.extra)
    merge_extra(options, extra.get("options"))
    if options:
        body["options"] = options
    body["stream"] = req.stream
    merge_extra(body, extra, ("options",))
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
        m = want(raw, "an object", param)
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest("'role' must be one of system, user, assistant, tool", param=f"{param}.role")
        content = m.get("content")
        text: str = "" if content is None else want(content, "a string", f"{param}.content")
        images = [_decode_image(v, f"{param}.images[{k}]") for k, v in enumerate(opt_list(m, "images", f"{param}."))]
        ext = {k: v for k, v in m.items() if k not in _MSG_KNOWN}
        if role != "assistant" and m.get("thinking") is not None:
            ext["thinking"] = m["thinking"]
        if role == "tool":
            self._tool(m, text, images, ext, param)
            return
        self.tool_group = None
        parts: list[c.Part] = []
        if role == "assistant" and m.get("thinking"):
            parts.append(c.Reasoning(text=want(m["thinking"], "a string", f"{param}.thinking")))
        merge_extra(ext, {k: m[k] for k in ("tool_name", "tool_call_id") if k in m})
        if text:
            parts.append(c.Text(text))
        parts.extend(images)
        if role == "assistant":
            for k, rc in enumerate(opt_list(m, "tool_calls", f"{param}.")):
                tc = decode_tool_call(rc, f"{param}.tool_calls[{k}]", InvalidRequest)
                parts.append(tc)
                self.pending.append(tc)
        elif m.get("tool_calls"):
            raise InvalidRequest("only assistant messages can carry tool_calls", param=f"{param}.tool_calls")
        self.messages.append(c.Message(role=role, content=parts, extra=wrap_extra(ext)))

    def _tool(self, m: dict[str, Any], text: str, images: list[c.Image], ext: dict[str, Any], param: str) -> None:
        name = m.get("tool_name")
        name = None if name is None else want(name, "a string", f"{param}.tool_name")
        cid = m.get("tool_call_id")
        if cid is not None and cid != "":
            cid = want(cid, "a string", f"{param}.tool_call_id")
            call = next((tc for tc in self.pending if tc.id == cid), None)
        else:  # Ollama matches results by tool_name: take the oldest open call of that name
            call = next((tc for tc in self.pending if tc.name == name or name is None), None)
            cid = call.id if call is not None else gen_id()
            ext[GEN] = True
        if call is not None:
            self.pending.remove(call)
        is_error = text.startswith(ERROR_PREFIX)
        if is_error:
            text = text[len(ERROR_PREFIX) :]
        body: list[c.Text | c.Image] = [c.Text(text)] if text else []
        body.extend(images)
        tr = c.ToolResult(tool_call_id=cid, content=body, is_error=is_error, name=name, extra=wrap_extra(ext))
        if self.tool_group is None:
            self.tool_group = c.Message(role="user", content=[])
            self.messages.append(self.tool_group)
        self.tool_group.content.append(tr)


def decode_request(body: dict[str, Any]) -> c.Request:
    body = want(body, "an object", "body")
    req = c.Request(model=want(body.get("model"), "a string", "model"))
    dec = _RequestDecoder()
    for i, raw in enumerate(opt_list(body, "messages", "")):
        dec.message(raw, f"messages[{i}]")
    req.messages = dec.messages
    if body.get("tools") is not None:
        req.tools = []
        for i, raw in enumerate(want(body["tools"], "an array", "tools")):
            p = f"tools[{i}]"
            tool = want(raw, "an object", p)
            fn = want(tool.get("function"), "an object", f"{p}.function")
            spec = c.ToolSpec(name=want(fn.get("name"), "a string", f"{p}.function.name"))
            if fn.get("description") is not None:
                spec.description = want(fn["description"], "a string", f"{p}.function.description")
            if fn.get("parameters") is not None:
                spec.parameters = want(fn["parameters"], "an object", f"{p}.function.parameters")
            ext: dict[str, Any] = {k: v for k, v in tool.items() if k not in ("type", "function")}
            fn_ext = {k: v for k, v in fn.items() if k not in ("name", "description", "parameters")}
            if fn_ext:
                ext["function"] = fn_ext
            spec.extra = wrap_extra(ext)
            req.tools.append(spec)
    if body.get("think") is not None:
        req.thinking = _decode_think(body["think"])
    if body.get("format") is not None:
        req.response_format = _decode_format(body["format"])
    stream = body.get("stream")
    req.stream = True if stream is None else want(stream, "a boolean", "stream")  # Ollama's default: true
    extra: dict[str, Any] = {k: v for k, v in body.items() if k not in _REQ_KNOWN}
    more: dict[str, Any] = {}
    for k, v in (want(body["options"], "an object", "options") if body.get("options") is not None else {}).items():
        p = f"options.{k}"
        if k in ("top_k", "seed", "num_predict"):
            n = want(v, "an integer", p)
            if k == "num_predict" and n < 0:  # -1 infinite, -2 fill the context: no canonical form
                more[k] = n
            else:
                setattr(req, _OPTIONS[k], n)
        elif k in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            setattr(req, k, want(v, "a number", p))
        elif k == "stop":
            stops = [v] if isinstance(v, str) else want(v, "an array", p)
            req.stop = [want(s, "a string", f"{p}[{j}]") for j, s in enumerate(stops)]
        else:
            more[k] = v
    if more:
        extra["options"] = more
    req.extra = wrap_extra(extra)
    return req


# ---- responses ----------------------------------------------------------------------------------


def decode_response(body: dict[str, Any]) -> c.Response:
    body = want(body, "an object", "body", UpstreamError)
    if body.get("error") is not None:
        raise error_from(502, body)
    parts, calls = reply_parts(want(body.get("message") or {}, "an object", "message", UpstreamError))
    done_reason = body.get("done_reason")
    extra = {k: v for k, v in body.items() if k not in _RESP_KNOWN}
    if done_reason not in (None, "stop", "length"):
        extra["done_reason"] = done_reason  # "load", "unload"
    return c.Response(
        id="ollama-" + secrets.token_hex(12),
        model=str(body.get("model") or ""),
        content=[*parts, *calls],
        stop_reason=stop_reason_of(done_reason, bool(calls)),
        usage=usage_of(body, UpstreamError),
        extra=wrap_extra(extra),
    )


def encode_response(resp: c.Response) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(p.text for p in resp.content if isinstance(p, c.Text)),
    }
    thinking = "".join(p.text for p in resp.content if isinstance(p, c.Reasoning))
    if thinking:
        msg["thinking"] = thinking
    calls = [encode_tool_call(p, None) for p in resp.content if isinstance(p, c.ToolCall)]
    if calls:
        msg["tool_calls"] = calls
    extra = dict(own_extra(resp.extra))
    body: dict[str, Any] = {"model": resp.model, "created_at": extra.pop("created_at", None) or now_iso()}
    body["message"] = msg
    body["done_reason"] = extra.pop("done_reason", None) or done_reason_of(resp.stop_reason)
    body["done"] = True
    body["prompt_eval_count"] = resp.usage.prompt_tokens  # Ollama has no cache: all input counts
    body["eval_count"] = resp.usage.output_tokens
    merge_extra(body, extra)
    return body


# ---- errors -------------------------------------------------------------------------------------


def decode_error(status: int, body: bytes) -> GatewayError:
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError:
        obj = None
    if isinstance(obj, dict) and obj:
        return error_from(status, obj)
    text = body.decode("utf-8", "replace").strip()[:1000] or f"upstream returned HTTP {status}"
    return error_from(status, {"error": text})


PLAIN_CONTEXT = EncodeContext()


class OllamaCodec:
    name = "ollama"
    framing = "ndjson"
    path = "/api/chat"
    stream_content_type = "application/x-ndjson"
    keeps_signed_reasoning = False
    decode_request = staticmethod(decode_request)
    encode_request = staticmethod(encode_request)
    decode_response = staticmethod(decode_response)

    def encode_response(self, response: c.Response, context: EncodeContext | None = None) -> dict[str, Any]:
        return encode_response(response)

    decode_error = staticmethod(decode_error)

    def stream_decoder(self) -> StreamDecoder:
        return OllamaStreamDecoder()

    def stream_encoder(self, *, include_usage: bool = False, context: EncodeContext | None = None) -> StreamEncoder:
        return OllamaStreamEncoder()  # Ollama always reports the counts on its done line

    def encode_error(self, error: GatewayError) -> dict[str, Any]:
        return {"error": error.message}

    def stream_tap(self, usage: bool = True) -> OllamaStreamTap | EndTap:
        return OllamaStreamTap() if usage else EndTap(END_MARKERS)

    def summarize(self, body: bytes, usage: bool = True) -> Tally:
        return summarize(body)

    def strip_stream_usage(self, lines: bytes) -> bytes:
        return lines  # `ask_stream_usage` never asks: every stream reports usage

    def check_body(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("messages"), list):
            raise InvalidRequest("`messages` is required and must be an array", param="messages")

    def default_max_tokens(self, body: dict[str, Any], tokens: int) -> None:
        pass  # num_predict is optional

    def request_headers(self, stream: bool) -> dict[str, str]:
        return {"accept": "application/x-ndjson" if stream else "application/json"}

    def forward_headers(self) -> tuple[str, ...]:
        return ()

    def thinking_of(self, body: dict[str, Any]) -> c.Thinking | None:
        think = body.get("think")
        if isinstance(think, bool):
            return c.Thinking(enabled=think)
        if isinstance(think, str):
            return c.Thinking(enabled=True, effort=think)
        return None

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False  # the done line always carries the counts

    def reply_context(self, body: dict[str, Any]) -> EncodeContext:
        return PLAIN_CONTEXT

    def merge_details(self, fragments: list[Any]) -> list[Any]:
        return fragments  # this dialect streams no reasoning details


CODEC: Codec = OllamaCodec()
