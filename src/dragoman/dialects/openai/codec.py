"""OpenAI Chat Completions dialect (`/v1/chat/completions`, SSE streaming). Messages and content parts
live in `openai_messages`, the stream state machines and usage/stop mappings in `openai_stream`.

Mapping rules (canonical ⇄ OpenAI) worth knowing, beyond the obvious field renames:

* Leading `system`/`developer` messages become `Request.system` (one Text per text; a developer
  message marks its Texts `extra={"openai": {"role": "developer"}}`, a `name` is kept there too);
  later ones stay in place as `Message(role="system")`. Encoding a request an OpenAI client wrote
  writes one system message per Text, so a system message made of several text parts comes back as
  several system messages. A request another dialect's client wrote gets one leading system message
  and its later system messages as `<system-reminder>` text in user turns (`openai/system.py`).
* Consecutive `role:"tool"` messages become one user Message of ToolResult parts; a user message right
  after them joins that Message (results first). Encoding reverses it: one `tool` message per result,
  then a user message with the remaining parts. OpenAI has no `is_error`: its text is prefixed with
  "[tool error] ". Images inside a tool result become a text placeholder (tool messages carry text).
* Assistant `reasoning_content` (or OpenRouter's `reasoning`) becomes a Reasoning part placed first,
  `reasoning_details` its `details`. Encoding writes `reasoning_content` (texts joined by a blank
  line; `reasoning` when the client used that key) and `reasoning_details` unchanged; an empty text
  is written as "" (DeepSeek/Moonshot replay) unless the part carries details. A Reasoning holding
  only `redacted` data has no OpenAI form and is dropped; signatures are dropped. `refusal` becomes a
  Text marked `extra={"openai": {"type": "refusal"}}`. Empty text next to tool calls is omitted.
* `input_audio`, `file` and unknown content parts become `Opaque("openai", part)`; another dialect's
  encoder refuses them. Anthropic-only blocks (documents, server tool blocks) and Anthropic server
  tools are refused here with `Unsupported`.
* `max_completion_tokens` (preferred) or `max_tokens` decode to `max_tokens`; encoding writes
  `max_tokens` (provider hooks rename it for reasoning models), or `max_completion_tokens` when that
  is what the client sent. `stop` is always written as a list; `stream:false` is omitted. `top_k` has
  no OpenAI field and is dropped. `reasoning_effort` ⇄ `Thinking.effort`; a budget alone maps to an
  effort (<=2048 low, <=8192 medium, <=24576 high, else xhigh); disabled thinking writes nothing
  (except an explicit effort "none").
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
from typing import Any

import msgspec

from dragoman.canonical import Request, Response, ResponseFormat, Thinking, ToolChoice, ToolSpec, Usage
from dragoman.dialects.base import Codec, EncodeContext, Tally
from dragoman.dialects.openai.messages import (
    assistant_message,
    assistant_parts,
    decode_messages,
    encode_messages,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    own_extra,
    type_error,
    without,
    wrap_extra,
)
from dragoman.dialects.openai.stream import (
    OpenAIStreamDecoder,
    OpenAIStreamEncoder,
    error_from_payload,
    finish_from_stop,
    merge_reasoning_details,
    stop_from_openai,
    usage_from_openai,
    usage_to_openai,
)
from dragoman.dialects.openai.tally import END_MARKERS, OpenAIStreamTap, check, strip_usage, summarize
from dragoman.dialects.tap import EndTap
from dragoman.errors import GatewayError, InvalidRequest, Unsupported, UpstreamError, for_upstream_status, redact

_json = msgspec.json.Decoder()
PLAIN_CONTEXT = EncodeContext()
USAGE_CONTEXT = EncodeContext(include_usage=True)

# Codec hints kept in Request.extra["openai"] (never sent): what a same-dialect trip restores.
RF_DESCRIPTION = "_json_schema_description"  # json_schema.description (no canonical field)
MAX_TOKENS_KEY = "_max_tokens_key"  # the client sent max_completion_tokens

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
_RESP_KNOWN = frozenset({"id", "object", "model", "choices", "usage"})


# ---- parameters ---------------------------------------------------------------------------------


def decode_tools(raw: Any) -> list[ToolSpec]:
    if not isinstance(raw, list):
        raise type_error("tools", "an array", raw)
    out: list[ToolSpec] = []
    for i, t in enumerate(raw):
        p = f"tools.{i}"
        if not isinstance(t, dict):
            raise type_error(p, "an object", t)
        ttype = t.get("type")
        if ttype != "function":
            raise Unsupported(
                f"'{ttype}' tools are not supported by the gateway; only function tools are.",
                param=f"{p}.type",
            )
        fn = t.get("function")
        if not isinstance(fn, dict):
            raise type_error(f"{p}.function", "an object", fn)
        name = fn.get("name")
        if not isinstance(name, str):
            raise type_error(f"{p}.function.name", "a string", name)
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise type_error(f"{p}.function.parameters", "an object", params)
        extra = without(t, ("type", "function"))
        fn_rest = without(fn, ("name", "description", "parameters", "strict"))
        if fn_rest:
            extra["function"] = fn_rest
        spec = ToolSpec(
            name=name,
            description=opt_str(fn, "description", f"{p}.function.description"),
            strict=opt_bool(fn, "strict", f"{p}.function.strict"),
            extra=wrap_extra(extra),
        )
        if params is not None:
            spec.parameters = params
        out.append(spec)
    return out


def decode_tool_choice(raw: Any) -> ToolChoice:
    if raw in ("auto", "none", "required"):
        return ToolChoice(mode=raw)
    if isinstance(raw, dict) and raw.get("type") == "function":
        fn = raw.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise type_error("tool_choice.function.name", "a string", name)
        return ToolChoice(mode="tool", name=name)
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        raise Unsupported(f"tool_choice of type '{raw['type']}' is not supported.", param="tool_choice.type")
    raise InvalidRequest(
        "Invalid value for 'tool_choice': expected 'auto', 'none', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
    )


def decode_response_format(raw: Any, extra: dict[str, Any]) -> ResponseFormat:
    if not isinstance(raw, dict):
        raise type_error("response_format", "an object", raw)
    rtype = raw.get("type")
    if rtype in ("text", "json_object"):
        return ResponseFormat(type=rtype)
    if rtype != "json_schema":
        raise InvalidRequest(f"Invalid value for 'response_format.type': {rtype!r}.", param="response_format.type")
    js = raw.get("json_schema")
    if not isinstance(js, dict):
        raise type_error("response_format.json_schema", "an object", js)
    schema = js.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise type_error("response_format.json_schema.schema", "an object", schema)
    desc = opt_str(js, "description", "response_format.json_schema.description")
    if desc is not None:
        extra[RF_DESCRIPTION] = desc
    return ResponseFormat(
        type="json_schema",
        schema=schema,
        name=opt_str(js, "name", "response_format.json_schema.name"),
        strict=opt_bool(js, "strict", "response_format.json_schema.strict"),
    )


def _effort_for_budget(budget: int) -> str:
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    if budget <= 24576:
        return "high"
    return "xhigh"


def reasoning_effort(t: Thinking) -> str | None:
    if t.enabled is False:
        return "none" if t.effort == "none" else None
    if t.effort:
        return t.effort
    if t.budget_tokens is not None:
        return _effort_for_budget(t.budget_tokens)
    return None


def encode_tool(t: ToolSpec) -> dict[str, Any]:
    own = own_extra(t.extra)
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


# ---- the codec ----------------------------------------------------------------------------------


class OpenAICodec:
    name = "openai"
    framing = "sse"
    path = "/chat/completions"
    stream_content_type = "text/event-stream; charset=utf-8"
    keeps_signed_reasoning = False

    def decode_request(self, body: dict[str, Any]) -> Request:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str):
            raise type_error("model", "a string", model)
        system, messages = decode_messages(body.get("messages"))
        extra = without(body, _REQ_KNOWN)
        req = Request(model=model, messages=messages, system=system)
        mct = opt_int(body, "max_completion_tokens")
        req.max_tokens = mct if mct is not None else opt_int(body, "max_tokens")
        if mct is not None and "max_tokens" not in body:
            extra[MAX_TOKENS_KEY] = "max_completion_tokens"
        req.temperature = opt_number(body, "temperature")
        req.top_p = opt_number(body, "top_p")
        req.presence_penalty = opt_number(body, "presence_penalty")
        req.frequency_penalty = opt_number(body, "frequency_penalty")
        req.n = opt_int(body, "n")
        req.seed = opt_int(body, "seed")
        stop = body.get("stop")
        if isinstance(stop, str):
            req.stop = [stop]
        elif isinstance(stop, list):
            for i, s in enumerate(stop):
                if not isinstance(s, str):
                    raise type_error(f"stop.{i}", "a string", s)
            req.stop = list(stop)
        elif stop is not None:
            raise type_error("stop", "a string or an array of strings", stop)
        if body.get("tools") is not None:
            req.tools = decode_tools(body["tools"])
        if body.get("tool_choice") is not None:
            req.tool_choice = decode_tool_choice(body["tool_choice"])
        req.parallel_tool_calls = opt_bool(body, "parallel_tool_calls")
        effort = opt_str(body, "reasoning_effort", "reasoning_effort")
        if effort is not None:
            req.thinking = Thinking(enabled=effort != "none", effort=effort)
        if body.get("response_format") is not None:
            req.response_format = decode_response_format(body["response_format"], extra)
        user = opt_str(body, "user", "user")
        sid = body.get("safety_identifier")
        req.user = user if user is not None else sid if isinstance(sid, str) else None
        req.stream = bool(opt_bool(body, "stream"))
        so = body.get("stream_options")
        if so is not None:
            if not isinstance(so, dict):
                raise type_error("stream_options", "an object", so)
            req.include_usage = bool(opt_bool(so, "include_usage", "stream_options.include_usage"))
            so_rest = without(so, ("include_usage",))
            if so_rest:
                extra["stream_options"] = so_rest
        req.extra = wrap_extra(extra)
        return req

    def encode_request(self, request: Request) -> dict[str, Any]:
        out: dict[str, Any] = {"model": request.model, "messages": encode_messages(request)}
        own = own_extra(request.extra)
        if request.max_tokens is not None:
            key = "max_completion_tokens" if own.get(MAX_TOKENS_KEY) == "max_completion_tokens" else "max_tokens"
            out[key] = request.max_tokens
        for key in ("temperature", "top_p", "n", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(request, key)
            if value is not None:
                out[key] = value
        if request.stop:
            out["stop"] = list(request.stop)
        if request.tools is not None:
            out["tools"] = [encode_tool(t) for t in request.tools]
        tc = request.tool_choice
        if tc is not None:
            out["tool_choice"] = (
                {"type": "function", "function": {"name": tc.name or ""}} if tc.mode == "tool" else tc.mode
            )
        if request.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = request.parallel_tool_calls
        effort = reasoning_effort(request.thinking) if request.thinking is not None else None
        if effort is not None:
            out["reasoning_effort"] = effort
        rf = request.response_format
        if rf is not None:
            if rf.type == "json_schema":
                js: dict[str, Any] = {"name": rf.name or "response"}
                if isinstance(own.get(RF_DESCRIPTION), str):
                    js["description"] = own[RF_DESCRIPTION]
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
                raise type_error("choices.0", "an object", choice)
            msg = choice.get("message")
            parts = assistant_parts(msg, "choices.0.message") if isinstance(msg, dict) else []
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
            extra=wrap_extra(without(body, _RESP_KNOWN)),
        )

    def encode_response(self, response: Response, context: EncodeContext | None = None) -> dict[str, Any]:
        own = own_extra(response.extra)
        created = own.get("created")
        body: dict[str, Any] = {
            "id": response.id or "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": created if isinstance(created, int) else int(time.time()),
            "model": response.model,
            "choices": [
                {
                    "index": 0,
                    "message": assistant_message(None, response.content, strict=False),
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

    def stream_encoder(
        self, *, include_usage: bool = False, context: EncodeContext | None = None
    ) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(include_usage or (context is not None and context.include_usage))

    def stream_tap(self, usage: bool = True) -> OpenAIStreamTap | EndTap:
        return OpenAIStreamTap() if usage else EndTap(END_MARKERS)

    def summarize(self, body: bytes, usage: bool = True) -> Tally:
        return summarize(body) if usage else check(body)

    def strip_stream_usage(self, lines: bytes) -> bytes:
        return strip_usage(lines)

    def check_body(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("messages"), list):
            raise InvalidRequest("`messages` is required and must be an array", param="messages")

    def default_max_tokens(self, body: dict[str, Any], tokens: int) -> None:
        pass  # optional in Chat Completions: the provider's own default applies

    def request_headers(self, stream: bool) -> dict[str, str]:
        return {"accept": "text/event-stream" if stream else "application/json"}

    def forward_headers(self) -> tuple[str, ...]:
        return ()

    def thinking_of(self, body: dict[str, Any]) -> Thinking | None:
        native = body.get("thinking")  # Moonshot's and DeepSeek's own toggle
        if isinstance(native, dict) and native.get("type") in ("enabled", "disabled"):
            return Thinking(enabled=native["type"] == "enabled")
        effort = body.get("reasoning_effort")
        if isinstance(effort, str):
            return Thinking(enabled=effort != "none", effort=effort)
        return None

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        opts = body.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage") is True:
            return False
        body["stream_options"] = {**opts, "include_usage": True} if isinstance(opts, dict) else {"include_usage": True}
        return True

    def reply_context(self, body: dict[str, Any]) -> EncodeContext:
        opts = body.get("stream_options")
        return USAGE_CONTEXT if isinstance(opts, dict) and opts.get("include_usage") is True else PLAIN_CONTEXT

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

    def merge_details(self, fragments: list[Any]) -> list[Any]:
        return merge_reasoning_details(fragments)


CODEC: Codec = OpenAICodec()
