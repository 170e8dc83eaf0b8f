"""Anthropic Messages codec: `/v1/messages` bodies and SSE streams to and from `dragoman.canonical`.

Every `extra` this codec writes is namespaced `{"anthropic": {...}}` and it reads only that namespace.
The stream state machines live in `anthropic_stream`.

Lossy or refused on the way out (`encode_request`), by rule:

* `n > 1` is refused (`Unsupported`); `seed`, `presence_penalty`, `frequency_penalty`, message
  `name` and other dialects' `Opaque` blocks are dropped. Empty reasoning (no text, signature or
  redacted data) is dropped; a message left empty is dropped.
* `system` messages anywhere in the conversation join the top-level `system` after the canonical
  system texts, so a mid-conversation system message loses its position (and its non-text parts).
  `system` is a string when it is one plain text, a list of text blocks otherwise.
* Consecutive same-role messages merge; `tool_result` blocks go first in their user turn; empty
  plain text blocks are dropped from a turn that has other blocks.
* `response_format` `json_object` becomes an instruction appended to `system`
  (`JSON_OBJECT_INSTRUCTION`); `json_schema` becomes `output_config.format` (name and strict are lost).
* Reasoning effort with no budget (OpenAI `reasoning_effort`) becomes `thinking.enabled` with
  `budget_tokens` from `EFFORT_BUDGET`; an explicit budget is raised to 1024 at least, and
  `max_tokens` is raised to `budget + 4096` when it does not exceed the budget.
* Server tools (kept in `extra.anthropic.server_tools`) are appended after the custom tools.
* `tool_choice` is left out when the request has no tools.
"""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import (
    Message,
    Request,
    Response,
    ResponseFormat,
    Text,
    Thinking,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolSpec,
)
from dragoman.dialects.anthropic.blocks import (
    bad_request,
    decode_content,
    decode_system,
    encode_block,
    opt_float,
    opt_int,
    plain_content,
    rest_of,
    text_block,
    want_dict,
    want_list,
    want_str,
    with_extra,
)
from dragoman.dialects.anthropic.stream import (
    AnthropicStreamDecoder,
    AnthropicStreamEncoder,
    anthropic_extra,
    stop_reason,
    usage_from_wire,
    usage_to_wire,
)
from dragoman.dialects.anthropic.tally import END_MARKERS, AnthropicStreamTap, check, summarize
from dragoman.dialects.base import Codec, EncodeContext, Tally
from dragoman.dialects.tap import EndTap
from dragoman.errors import GatewayError, InvalidRequest, Unsupported, for_upstream_status, redact

DEFAULT_MAX_TOKENS = 4096
MIN_BUDGET = 1024
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000, "max": 64000}
_EFFORTS = frozenset(("low", "medium", "high", "xhigh", "max"))  # output_config.effort values
_EMPTY_TEXT = {"type": "text", "text": ""}
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."

_dec = msgspec.json.Decoder()
_enc = msgspec.json.Encoder()

_KNOWN_TOP = frozenset(
    "model messages system max_tokens temperature top_p top_k stop_sequences tools tool_choice thinking "  # noqa: SIM905
    "output_config metadata stream".split()
)
_RESPONSE_KNOWN = frozenset("id type role model content stop_reason stop_sequence usage".split())  # noqa: SIM905
_USAGE_KNOWN = frozenset(
    ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
) | {"output_tokens_details"}


# ---- thinking -----------------------------------------------------------------------------------


def _decode_thinking(body: dict[str, Any], extra: dict[str, Any]) -> Thinking | None:
    oc = body.get("output_config")
    effort = oc.get("effort") if isinstance(oc, dict) else None
    if effort is not None:
        want_str(effort, "output_config.effort")
    raw = body.get("thinking")
    if raw is None:
        if effort is None:
            return None
        extra.setdefault("output_config", {})["effort"] = effort  # an effort-only request stays so
        return Thinking(effort=effort)
    th = want_dict(raw, "thinking")
    t = th.get("type")
    display = th.get("display")
    if display is not None:
        want_str(display, "thinking.display")
    if t == "enabled":
        budget = opt_int(th.get("budget_tokens"), "thinking.budget_tokens")
        return Thinking(enabled=True, budget_tokens=budget, effort=effort, display=display)
    if t == "adaptive":
        return Thinking(enabled=True, adaptive=True, effort=effort, display=display)
    if t == "disabled":
        return Thinking(enabled=False, effort=effort)
    raise bad_request("thinking.type must be one of enabled, adaptive, disabled", "thinking.type")


def _encode_thinking(req: Request, body: dict[str, Any], extra: dict[str, Any]) -> None:
    th = req.thinking
    if th is None:
        return
    effort = th.effort
    native: str | None = None  # effort sent as output_config.effort
    out: dict[str, Any] | None = None
    budget: int | None = None
    if th.enabled is False or effort == "none":
        out = {"type": "disabled"}
        native = None if effort == "none" else effort
    elif th.adaptive:
        out = {"type": "adaptive"}
        native = effort
    elif th.budget_tokens is not None:
        budget = max(th.budget_tokens, MIN_BUDGET)
        native = effort
    elif effort is not None:
        oc = extra.get("output_config")
        if isinstance(oc, dict) and oc.get("effort") == effort:
            native = effort  # came from an Anthropic effort-only request
        else:
            budget = EFFORT_BUDGET.get(effort, EFFORT_BUDGET["medium"])
    elif th.enabled:
        budget = EFFORT_BUDGET["medium"]
    if budget is not None:
        out = {"type": "enabled", "budget_tokens": budget}
        if body["max_tokens"] <= budget:
            body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    if out is not None:
        if th.display is not None and out["type"] != "disabled":
            out["display"] = th.display
        body["thinking"] = out
    if native is not None:
        body.setdefault("output_config", {})["effort"] = native if native in _EFFORTS else "low"


def _reconcile_thinking(body: dict[str, Any]) -> None:
    """Anthropic rejects thinking combined with a forced tool, a temperature other than 1, top_k,
    or top_p below 0.95. A client of another dialect cannot know that: a forced tool is a hard
    requirement and wins over thinking; the sampling values give way to thinking."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        del body["thinking"]
        oc = body.get("output_config")
        if isinstance(oc, dict):
            oc.pop("effort", None)
            if not oc:
                del body["output_config"]
        return
    if body.get("temperature") not in (None, 1, 1.0):
        del body["temperature"]
    body.pop("top_k", None)
    top_p = body.get("top_p")
    if isinstance(top_p, int | float) and top_p < 0.95:
        body["top_p"] = 0.95


# ---- the codec ----------------------------------------------------------------------------------


ANTHROPIC_VERSION = "2023-06-01"
PLAIN_CONTEXT = EncodeContext()


class AnthropicCodec:
    name = "anthropic"
    framing = "sse"
    path = "/v1/messages"
    stream_content_type = "text/event-stream; charset=utf-8"
    keeps_signed_reasoning = True

    # -- requests --

    def decode_request(self, body: dict[str, Any]) -> Request:
        body = want_dict(body, "body")
        extra: dict[str, Any] = {k: v for k, v in body.items() if k not in _KNOWN_TOP}
        messages: list[Message] = []
        for i, m in enumerate(want_list(body.get("messages"), "messages")):
            path = f"messages.{i}"
            m = want_dict(m, path)
            role = m.get("role")
            if role not in ("user", "assistant", "system"):
                raise bad_request(f"{path}.role must be user, assistant or system", path + ".role")
            mextra = rest_of(m, ("role", "content"))
            messages.append(Message(role, decode_content(m.get("content"), path + ".content"), extra=mextra))

        stop = body.get("stop_sequences")
        if stop is not None:
            stop = [want_str(s, f"stop_sequences.{j}") for j, s in enumerate(want_list(stop, "stop_sequences"))]

        tools: list[ToolSpec] | None = None
        server: list[dict[str, Any]] = []
        if body.get("tools") is not None:
            tools = []
            for j, t in enumerate(want_list(body["tools"], "tools")):
                path = f"tools.{j}"
                t = want_dict(t, path)
                if t.get("type") not in (None, "custom"):
                    server.append(t)
                    continue
                desc = t.get("description")
                strict = t.get("strict")
                tools.append(
                    ToolSpec(
                        want_str(t.get("name"), path + ".name"),
                        None if desc is None else want_str(desc, path + ".description"),
                        want_dict(t.get("input_schema"), path + ".input_schema"),
                        strict if isinstance(strict, bool) else None,
                        rest_of(t, ("name", "description", "input_schema", "strict")),
                    )
                )
        if server:
            extra["server_tools"] = server

        tool_choice: ToolChoice | None = None
        parallel: bool | None = None
        if body.get("tool_choice") is not None:
            tc = want_dict(body["tool_choice"], "tool_choice")
            t = tc.get("type")
            if t == "auto" or t == "none":
                tool_choice = ToolChoice(t)
            elif t == "any":
                tool_choice = ToolChoice("required")
            elif t == "tool":
                tool_choice = ToolChoice("tool", want_str(tc.get("name"), "tool_choice.name"))
            else:
                raise bad_request("tool_choice.type must be auto, any, tool or none", "tool_choice.type")
            dp = tc.get("disable_parallel_tool_use")
            if dp is not None:
                if not isinstance(dp, bool):
                    raise bad_request("tool_choice.disable_parallel_tool_use must be a boolean", "tool_choice")
                parallel = not dp

        rf: ResponseFormat | None = None
        oc = body.get("output_config")
        if oc is not None:
            oc_rest = {k: v for k, v in want_dict(oc, "output_config").items() if k not in ("effort", "format")}
            fmt = oc.get("format")
            if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
                rf = ResponseFormat("json_schema", schema=want_dict(fmt.get("schema"), "output_config.format.schema"))
            elif fmt is not None:
                oc_rest["format"] = fmt
            if oc_rest:
                extra["output_config"] = oc_rest
        thinking = _decode_thinking(body, extra)

        user: str | None = None
        meta = body.get("metadata")
        if meta is not None:
            meta = want_dict(meta, "metadata")
            uid = meta.get("user_id")
            user = None if uid is None else want_str(uid, "metadata.user_id")
            meta_rest = {k: v for k, v in meta.items() if k != "user_id"}
            if meta_rest:
                extra["metadata"] = meta_rest

        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise bad_request("stream must be a boolean", "stream")
        return Request(
            model=want_str(body.get("model"), "model"),
            messages=messages,
            system=decode_system(body.get("system")),
            max_tokens=opt_int(body.get("max_tokens"), "max_tokens"),
            temperature=opt_float(body.get("temperature"), "temperature"),
            top_p=opt_float(body.get("top_p"), "top_p"),
            top_k=opt_int(body.get("top_k"), "top_k"),
            stop=stop,
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=parallel,
            thinking=thinking,
            response_format=rf,
            user=user,
            stream=bool(stream),
            extra={"anthropic": extra} if extra else None,
            source="anthropic",
        )

    def encode_request(self, request: Request) -> dict[str, Any]:
        req = request
        if req.n is not None and req.n > 1:
            raise Unsupported("n > 1 is not supported by Anthropic-dialect providers", param="n")
        extra = anthropic_extra(req.extra)
        max_tokens = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {"model": req.model, "max_tokens": max_tokens}

        system = list(req.system)
        turns: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]] = []
        for i, m in enumerate(req.messages):
            if m.role == "system":
                system.extend(p for p in m.content if isinstance(p, Text))
                continue
            results: list[dict[str, Any]] = []
            others: list[dict[str, Any]] = []
            for j, part in enumerate(m.content):
                block = encode_block(part, f"messages.{i}.content.{j}", request=True)
                if block is not None:
                    (results if isinstance(part, ToolResult) else others).append(block)
            if not results and not others:
                continue
            mextra = anthropic_extra(m.extra)
            if turns and turns[-1][0] == m.role:
                turns[-1][1].extend(results)
                turns[-1][2].extend(others)
                for k, v in mextra.items():
                    turns[-1][3].setdefault(k, v)
            else:
                turns.append((m.role, results, others, dict(mextra)))
        messages: list[dict[str, Any]] = []
        for role, results, others, mextra in turns:
            blocks = results + others
            if len(blocks) > 1:  # Anthropic refuses empty text blocks (OpenAI tool-call turns carry one)
                blocks = [b for b in blocks if b != _EMPTY_TEXT] or blocks[:1]
            msg = {"role": role, "content": plain_content(blocks)}
            for k, v in mextra.items():
                msg.setdefault(k, v)
            messages.append(msg)

        rf = req.response_format
        if rf is not None and rf.type == "json_object":
            system.append(Text(JSON_OBJECT_INSTRUCTION))
        if system:
            blocks = [text_block(t) for t in system]
            body["system"] = plain_content(blocks)
        body["messages"] = messages

        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.top_k is not None:
            body["top_k"] = req.top_k
        if req.stop:
            body["stop_sequences"] = list(req.stop)

        tools: list[dict[str, Any]] = []
        for spec in req.tools or ():
            tool: dict[str, Any] = {"name": spec.name}
            if spec.description is not None:
                tool["description"] = spec.description
            tool["input_schema"] = spec.parameters
            if spec.strict is not None:
                tool["strict"] = spec.strict
            tools.append(with_extra(tool, spec.extra))
        server = extra.get("server_tools")
        if isinstance(server, list):
            tools.extend(server)
        if tools:
            body["tools"] = tools
            tc = req.tool_choice
            choice: dict[str, Any] | None = None
            if tc is not None:
                if tc.mode == "tool":
                    if not tc.name:
                        raise bad_request("tool_choice names no tool", "tool_choice.name")
                    choice = {"type": "tool", "name": tc.name}
                else:
                    choice = {"type": {"required": "any"}.get(tc.mode, tc.mode)}
            if req.parallel_tool_calls is not None and (choice is None or choice["type"] != "none"):
                if choice is None and req.parallel_tool_calls is False:
                    choice = {"type": "auto"}
                if choice is not None:
                    choice["disable_parallel_tool_use"] = not req.parallel_tool_calls
            if choice is not None:
                body["tool_choice"] = choice

        _encode_thinking(req, body, extra)
        if req.source != "anthropic":
            _reconcile_thinking(body)  # only for clients of another dialect: an Anthropic body is the client's own
        if rf is not None and rf.type == "json_schema":
            fmt = {"type": "json_schema", "schema": rf.schema or {"type": "object"}}
            body.setdefault("output_config", {})["format"] = fmt
        if req.user is not None:
            body["metadata"] = {"user_id": req.user}
        if req.stream:
            body["stream"] = True

        for k, v in extra.items():
            if k == "server_tools":
                continue
            mine = body.get(k)
            if mine is None:
                body[k] = v
            elif isinstance(mine, dict) and isinstance(v, dict):
                body[k] = {**v, **mine}  # what the canonical request says wins
        return body

    # -- responses --

    def decode_response(self, body: dict[str, Any]) -> Response:
        body = want_dict(body, "body")
        content = decode_content(body.get("content") or [], "content")
        extra = {k: v for k, v in body.items() if k not in _RESPONSE_KNOWN}
        usage = body.get("usage")
        if isinstance(usage, dict):
            usage_rest = {k: v for k, v in usage.items() if k not in _USAGE_KNOWN}
            if usage_rest:
                extra["usage"] = usage_rest
        seq = body.get("stop_sequence")
        return Response(
            id=body.get("id") or "",
            model=body.get("model") or "",
            content=content,
            stop_reason=stop_reason(body.get("stop_reason")),
            stop_sequence=seq if isinstance(seq, str) else None,
            usage=usage_from_wire(usage),
            extra={"anthropic": extra} if extra else None,
        )

    def encode_response(self, response: Response, context: EncodeContext | None = None) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for part in response.content:
            if isinstance(part, ToolResult):
                continue  # not an assistant block
            if isinstance(part, ToolCall):
                try:
                    block = encode_block(part, "content")
                except InvalidRequest:  # an upstream cut the JSON short (max_tokens)
                    block = with_extra({"type": "tool_use", "id": part.id, "name": part.name, "input": {}}, part.extra)
            else:
                block = encode_block(part, "content")
            if block is not None:
                content.append(block)
        extra = anthropic_extra(response.extra)
        usage = usage_to_wire(response.usage)
        extra_usage = extra.get("usage")
        if isinstance(extra_usage, dict):
            usage = {**extra_usage, **usage}
        body: dict[str, Any] = {
            "id": response.id,
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": content,
            "stop_reason": response.stop_reason,
            "stop_sequence": response.stop_sequence,
            "usage": usage,
        }
        for k, v in extra.items():
            body.setdefault(k, v)
        return body

    # -- streams --

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def stream_encoder(
        self, *, include_usage: bool = False, context: EncodeContext | None = None
    ) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(include_usage=include_usage)

    def stream_tap(self, usage: bool = True) -> AnthropicStreamTap | EndTap:
        return AnthropicStreamTap() if usage else EndTap(END_MARKERS)

    def summarize(self, body: bytes, usage: bool = True) -> Tally:
        return summarize(body) if usage else check(body)

    def strip_stream_usage(self, lines: bytes) -> bytes:
        return lines  # `ask_stream_usage` never asks: every stream reports usage

    # -- what the trip asks of the dialect --

    def check_body(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("messages"), list):
            raise InvalidRequest("`messages` is required and must be an array", param="messages")

    def default_max_tokens(self, body: dict[str, Any], tokens: int) -> None:
        if "max_tokens" not in body:
            body["max_tokens"] = tokens  # required by the Messages API

    def request_headers(self, stream: bool) -> dict[str, str]:
        return {"accept": "text/event-stream" if stream else "application/json", "anthropic-version": ANTHROPIC_VERSION}

    def forward_headers(self) -> tuple[str, ...]:
        return ("anthropic-beta",)

    def thinking_of(self, body: dict[str, Any]) -> Thinking | None:
        t = body.get("thinking")
        if not isinstance(t, dict):
            return None
        kind = t.get("type")
        if kind == "disabled":
            return Thinking(enabled=False)
        if kind not in ("enabled", "adaptive"):
            return None
        budget = t.get("budget_tokens")
        oc = body.get("output_config")
        effort = oc.get("effort") if isinstance(oc, dict) else None
        return Thinking(
            enabled=True,
            budget_tokens=budget if isinstance(budget, int) else None,
            adaptive=kind == "adaptive",
            effort=effort if isinstance(effort, str) else None,
        )

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False  # every Anthropic stream reports usage

    def reply_context(self, body: dict[str, Any]) -> EncodeContext:
        return PLAIN_CONTEXT

    # -- errors --

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        cls = for_upstream_status(status)
        message = ""
        try:
            doc = _dec.decode(body) if body else None
        except msgspec.DecodeError:
            doc = None
            message = body.decode("utf-8", "replace").strip()[:2000]
        if isinstance(doc, dict):
            err = doc.get("error")
            if isinstance(err, dict):
                m = err.get("message")
                message = m if isinstance(m, str) else ""
                if not message and isinstance(err.get("type"), str):
                    message = err["type"]
            elif isinstance(err, str):
                message = err
            elif isinstance(doc.get("message"), str):
                message = doc["message"]
        if not message:
            message = f"upstream returned HTTP {status}"
        return cls(redact(message))

    def encode_error(self, error: GatewayError) -> dict[str, Any]:
        return error.to_anthropic()

    def merge_details(self, fragments: list[Any]) -> list[Any]:
        return fragments  # this dialect streams no reasoning details


CODEC: Codec = AnthropicCodec()
