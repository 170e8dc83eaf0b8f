"""OpenAI Responses dialect (`/v1/responses`, SSE streaming): request bodies and `response` objects
to and from `dragoman.canonical`. Input items live in `inputs`, output items and the `response`
object in `outputs`, tools in `tools`, streams in `stream`, same-dialect reading in `tally`, and
what the trip does with sealed reasoning in `sealed`.

Top-level parameters (canonical ⇄ Responses):

* `instructions` is the first system text (marked, so it is written back as `instructions` for a
  Responses upstream); from another dialect every system text is joined into `instructions`.
* `max_output_tokens` ⇄ `max_tokens`; `temperature`, `top_p`, `parallel_tool_calls` as they are.
* `reasoning.effort` ⇄ `Thinking.effort` (`none` disables it); `reasoning.summary` is kept in
  `extra` and decides how replies show reasoning. From another dialect, thinking asks for
  `summary: "auto"` (so the reasoning reaches the client) and `include: ["reasoning.encrypted_content"]`.
* `text.format` ⇄ `ResponseFormat` (`json_schema` keeps name, schema, strict, description);
  `text.verbosity` is kept in `extra`.
* `user` (else `safety_identifier`) ⇄ `Request.user`.
* `store`, `include`, `metadata`, `previous_response_id`, `prompt_cache_key`, `client_metadata`,
  `service_tier`, `truncation`, `stream_options` and anything newer are kept in
  `extra["responses"]` for a Responses upstream; keys starting with "_" there are codec hints.
  A request for a Responses upstream is sent with `store: false` unless its client said otherwise.
* Refused going to a Responses upstream: `n > 1`. Dropped (no Responses field): `stop`, `seed`,
  `top_k`, the penalties.
"""

from __future__ import annotations

import logging
from typing import Any

from dragoman.canonical import Reasoning, Request, Response, ResponseFormat, Text, Thinking, ToolCall
from dragoman.dialects.base import Codec, EncodeContext, Tally
from dragoman.dialects.openai import CODEC as OPENAI
from dragoman.dialects.openai.codec import reasoning_effort
from dragoman.dialects.openai.messages import opt_bool, opt_int, opt_number, opt_str, type_error
from dragoman.dialects.openai.stream import error_from_payload
from dragoman.dialects.responses.decoder import ResponsesStreamDecoder
from dragoman.dialects.responses.encoder import ResponsesStreamEncoder
from dragoman.dialects.responses.inputs import INSTRUCTIONS, decode_input, encode_input
from dragoman.dialects.responses.outputs import (
    ENCRYPTED,
    decode_output,
    output_items,
    response_id,
    response_object,
    shape_of,
)
from dragoman.dialects.responses.tally import END_MARKERS, ResponsesStreamTap, summarize
from dragoman.dialects.responses.tools import (
    HOSTED,
    ToolNames,
    decode_tool_choice,
    decode_tools,
    encode_tool_choice,
    encode_tools,
)
from dragoman.dialects.responses.wire import (
    NS,
    is_openai_encrypted,
    own,
    status_of,
    stop_from_status,
    usage_from_wire,
    usage_to_wire,
    want_dict,
    wrap,
)
from dragoman.dialects.tap import EndTap
from dragoman.errors import GatewayError, InvalidRequest, Unsupported, UpstreamError

log = logging.getLogger("dragoman.dialects.responses")

SUMMARY = "_reasoning_summary"  # extra hint: the client's reasoning.summary
TEXT_REST = "_text"  # extra hint: `text` without its format (verbosity...)
USER_KEY = "_user_key"  # extra hint: the client sent safety_identifier, not user
_REQ_KNOWN = frozenset(
    (
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "user",
        "safety_identifier",
        "stream",
    )
)
PLAIN_CONTEXT = EncodeContext()


def _instructions(raw: Any) -> list[Text]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [Text(raw, extra=wrap({INSTRUCTIONS: True}))]
    system, messages = decode_input(raw, ToolNames())
    texts = system + [p for m in messages for p in m.content if isinstance(p, Text)]
    return [Text(t.text, extra=wrap({INSTRUCTIONS: True})) for t in texts]


def _text_format(raw: Any, extra: dict[str, Any]) -> ResponseFormat | None:
    text = want_dict(raw, "text")
    rest = {k: v for k, v in text.items() if k != "format"}
    if rest:
        extra[TEXT_REST] = rest
    fmt = text.get("format")
    if fmt is None:
        return None
    fmt = want_dict(fmt, "text.format")
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind)
    if kind != "json_schema":
        raise InvalidRequest(f"Invalid value for 'text.format.type': {kind!r}.", param="text.format.type")
    schema = fmt.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise type_error("text.format.schema", "an object", schema)
    desc = opt_str(fmt, "description", "text.format.description")
    if desc is not None:
        extra["_json_schema_description"] = desc
    return ResponseFormat(
        type="json_schema",
        schema=schema,
        name=opt_str(fmt, "name", "text.format.name"),
        strict=opt_bool(fmt, "strict", "text.format.strict"),
    )


def _thinking(raw: Any, extra: dict[str, Any]) -> Thinking | None:
    reasoning = want_dict(raw, "reasoning")
    summary = reasoning.get("summary", reasoning.get("generate_summary"))
    if isinstance(summary, str):
        extra[SUMMARY] = summary
    effort = opt_str(reasoning, "effort", "reasoning.effort")
    return Thinking(enabled=effort != "none", effort=effort) if effort is not None else None


def _wants_encrypted(request: Request) -> bool:
    th = request.thinking
    if th is not None and th.enabled is not False and (th.enabled or th.effort or th.budget_tokens):
        return True
    return any(
        isinstance(p, Reasoning) and p.signature and is_openai_encrypted(p.signature)
        for m in request.messages
        for p in m.content
    )


class ResponsesCodec:
    name = NS
    framing = "sse"
    path = "/responses"
    stream_content_type = "text/event-stream; charset=utf-8"
    # reasoning comes back sealed only when the client asks for it (include): remember it anyway
    keeps_signed_reasoning = False

    # -- requests --

    def decode_request(self, body: dict[str, Any]) -> Request:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str):
            raise type_error("model", "a string", model)
        names = ToolNames(body.get("tools"))
        extra = {k: v for k, v in body.items() if k not in _REQ_KNOWN}
        system, messages = decode_input(body.get("input", []), names)
        req = Request(model=model, messages=messages, system=_instructions(body.get("instructions")) + system)
        req.source = NS
        req.max_tokens = opt_int(body, "max_output_tokens")
        req.temperature = opt_number(body, "temperature")
        req.top_p = opt_number(body, "top_p")
        if body.get("tools") is not None:
            req.tools = decode_tools(body["tools"], names, extra) or None
        if body.get("tool_choice") is not None and req.tools:
            req.tool_choice, allowed = decode_tool_choice(body["tool_choice"], names)
            if allowed is not None:
                req.tools = [t for t in req.tools if t.name in allowed] or None
        req.parallel_tool_calls = opt_bool(body, "parallel_tool_calls")
        if body.get("reasoning") is not None:
            req.thinking = _thinking(body["reasoning"], extra)
        if body.get("text") is not None:
            req.response_format = _text_format(body["text"], extra)
        user = opt_str(body, "user", "user")
        sid = opt_str(body, "safety_identifier", "safety_identifier")
        req.user = user if user is not None else sid
        if user is None and sid is not None:
            extra[USER_KEY] = "safety_identifier"
        req.stream = bool(opt_bool(body, "stream"))
        req.extra = wrap(extra)
        return req

    def encode_request(self, request: Request) -> dict[str, Any]:
        mine = own(request.extra) if request.source == NS else {}
        if request.n is not None and request.n > 1:
            raise Unsupported("n > 1 is not supported by Responses-dialect providers.", param="n")
        names: dict[str, tuple[str | None, str, bool]] = {}
        for spec in request.tools or ():
            spec_own = own(spec.extra)
            if spec_own:
                namespace = spec_own.get("_namespace")
                names[spec.name] = (
                    namespace if isinstance(namespace, str) else None,
                    str(spec_own.get("_name", spec.name)),
                    isinstance(spec_own.get("_custom"), dict),
                )
        instructions, items = encode_input(request, names)
        out: dict[str, Any] = {"model": request.model, "input": items}
        if instructions is not None:
            out["instructions"] = instructions
        if request.max_tokens is not None:
            out["max_output_tokens"] = request.max_tokens
        for key in ("temperature", "top_p", "parallel_tool_calls"):
            value = getattr(request, key)
            if value is not None:
                out[key] = value
        dropped = [k for k in ("stop", "seed", "top_k", "presence_penalty", "frequency_penalty") if getattr(request, k)]
        if dropped:
            log.debug("dropped %s: no Responses API field", ", ".join(dropped))
        hosted = mine.get(HOSTED)
        if request.tools or hosted:
            out["tools"] = encode_tools(request.tools or [], hosted)
            if request.tool_choice is not None:
                out["tool_choice"] = encode_tool_choice(request.tool_choice, request.tools)
        th = request.thinking
        effort = reasoning_effort(th) if th is not None else None
        summary = mine.get(SUMMARY)
        if summary is None and request.source != NS and th is not None and th.enabled is not False:
            summary = None if th.display == "omitted" else "auto"
        if effort is not None or summary is not None:
            out["reasoning"] = {k: v for k, v in (("effort", effort), ("summary", summary)) if v is not None}
        text = dict(mine.get(TEXT_REST) or {})
        rf = request.response_format
        if rf is not None:
            fmt: dict[str, Any] = {"type": rf.type}
            if rf.type == "json_schema":
                fmt["name"] = rf.name or "response"
                if isinstance(mine.get("_json_schema_description"), str):
                    fmt["description"] = mine["_json_schema_description"]
                if rf.schema is not None:
                    fmt["schema"] = rf.schema
                if rf.strict is not None:
                    fmt["strict"] = rf.strict
            text["format"] = fmt
        if text:
            out["text"] = text
        if request.user is not None:
            out[mine.get(USER_KEY, "user")] = request.user
        if request.stream:
            out["stream"] = True
        out["store"] = mine.get("store", False)
        if "include" not in mine and _wants_encrypted(request):
            out["include"] = [ENCRYPTED]
        for k, v in mine.items():
            if not k.startswith("_"):
                out.setdefault(k, v)
        return out

    # -- replies --

    def decode_response(self, body: dict[str, Any]) -> Response:
        if not isinstance(body, dict):
            raise UpstreamError("upstream sent a response that is not a JSON object")
        err = body.get("error")
        if isinstance(err, dict) and (body.get("status") == "failed" or "output" not in body):
            raise error_from_payload({"error": err}) or UpstreamError("upstream response failed")
        parts = decode_output(body.get("output"))
        rid, model = body.get("id"), body.get("model")
        return Response(
            id=rid if isinstance(rid, str) else "",
            model=model if isinstance(model, str) else "",
            content=parts,
            stop_reason=stop_from_status(
                body.get("status"), body.get("incomplete_details"), any(isinstance(p, ToolCall) for p in parts)
            ),
            usage=usage_from_wire(body.get("usage")),
        )

    def encode_response(self, response: Response, context: EncodeContext | None = None) -> dict[str, Any]:
        shape = shape_of(context)
        status, incomplete = status_of(response.stop_reason)
        obj = response_object(shape, response_id(shape, response.id), response.model, status)
        obj["output"] = output_items(response.content, shape)
        obj["incomplete_details"] = incomplete
        obj["usage"] = usage_to_wire(response.usage)
        return obj

    def stream_decoder(self) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()

    def stream_encoder(
        self, *, include_usage: bool = False, context: EncodeContext | None = None
    ) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(shape_of(context))

    def stream_tap(self, usage: bool = True) -> ResponsesStreamTap | EndTap:
        return ResponsesStreamTap() if usage else EndTap(END_MARKERS)

    def summarize(self, body: bytes, usage: bool = True) -> Tally:
        return summarize(body)

    def strip_stream_usage(self, lines: bytes) -> bytes:
        return lines  # `ask_stream_usage` never asks: every stream reports usage

    # -- the rest of the protocol --

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        return OPENAI.decode_error(status, body)  # the same envelopes

    def encode_error(self, error: GatewayError) -> dict[str, Any]:
        return error.to_openai()

    def merge_details(self, fragments: list[Any]) -> list[Any]:
        return list(fragments)

    def check_body(self, body: dict[str, Any]) -> None:
        value = body.get("input")
        if value is None and not isinstance(body.get("previous_response_id"), str):
            raise InvalidRequest("`input` is required: a string or an array of input items", param="input")
        if value is not None and not isinstance(value, str | list):
            raise InvalidRequest("`input` must be a string or an array of input items", param="input")

    def default_max_tokens(self, body: dict[str, Any], tokens: int) -> None:
        pass  # max_output_tokens is optional

    def request_headers(self, stream: bool) -> dict[str, str]:
        return {"accept": "text/event-stream" if stream else "application/json"}

    def forward_headers(self) -> tuple[str, ...]:
        return ()

    def thinking_of(self, body: dict[str, Any]) -> Thinking | None:
        reasoning = body.get("reasoning")
        effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
        return Thinking(enabled=effort != "none", effort=effort) if isinstance(effort, str) else None

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False  # every Responses stream ends with its usage

    def reply_context(self, body: dict[str, Any]) -> EncodeContext:
        return EncodeContext(request=body) if isinstance(body, dict) else PLAIN_CONTEXT


CODEC: Codec = ResponsesCodec()
