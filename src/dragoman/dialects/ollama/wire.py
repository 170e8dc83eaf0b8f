"""Ollama wire helpers shared by the codec and the stream state machines: type checks, tool calls,
stop reasons, usage and the error envelope."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec

from dragoman import canonical as c
from dragoman.errors import GatewayError, InvalidRequest, UpstreamError, for_upstream_status, redact

NS = "ollama"
GEN = "generated_id"  # extra flag: the id was made up by this codec, Ollama never sent one

enc = msgspec.json.Encoder()
_KINDS: dict[str, tuple[type, ...]] = {"a string": (str,), "an integer": (int,), "a number": (int, float)}
_KINDS |= {"a boolean": (bool,), "an object": (dict,), "an array": (list,)}


def want(v: Any, what: str, param: str, exc: type[GatewayError] = InvalidRequest) -> Any:
    """`v` if it is `what` ("a string", "an object"...), else `exc` naming `param`."""
    if isinstance(v, _KINDS[what]) and (what == "a boolean" or not isinstance(v, bool)):
        return v
    if exc is InvalidRequest:
        raise InvalidRequest(f"'{param}' must be {what}", param=param)
    raise exc(f"upstream sent a malformed Ollama body: '{param}' must be {what}")


def opt_list(d: dict[str, Any], key: str, param: str, exc: type[GatewayError] = InvalidRequest) -> list[Any]:
    v = d.get(key)
    return [] if v is None else want(v, "an array", f"{param}{key}", exc)


def gen_id() -> str:
    return "call_" + secrets.token_hex(6)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def own_extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    """This dialect's slice of an `extra` dict."""
    mine = extra.get(NS) if extra else None
    return mine if isinstance(mine, dict) else {}


def wrap_extra(fields: dict[str, Any]) -> dict[str, Any] | None:
    return {NS: fields} if fields else None


def merge_extra(into: dict[str, Any], extra: Any, skip: tuple[str, ...] = ()) -> None:
    """Put back fields kept in `extra`, never overriding what the codec wrote."""
    if isinstance(extra, dict):
        for k, v in extra.items():
            if k not in skip:
                into.setdefault(k, v)


def args_object(arguments: str, call_id: str, param: str | None) -> Any:
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


def decode_tool_call(raw: Any, param: str, exc: type[GatewayError]) -> c.ToolCall:
    """`{id?, function:{index?, name, arguments}}` as a ToolCall; unknown fields go to extra."""
    call = want(raw, "an object", param, exc)
    fn = want(call.get("function"), "an object", f"{param}.function", exc)
    name = want(fn.get("name"), "a string", f"{param}.function.name", exc)
    args = fn.get("arguments")
    if args is None or isinstance(args, str):
        arguments = args or ""
    else:
        arguments = enc.encode(want(args, "an object", f"{param}.function.arguments", exc)).decode()
    ext: dict[str, Any] = {k: v for k, v in call.items() if k not in ("id", "function")}
    fn_ext = {k: v for k, v in fn.items() if k not in ("name", "arguments")}
    if fn_ext:
        ext["function"] = fn_ext
    cid = call.get("id")
    if cid is None or cid == "":
        cid = gen_id()
        ext[GEN] = True
    cid = want(cid, "a string", f"{param}.id", exc)
    return c.ToolCall(id=cid, name=name, arguments=arguments, extra=wrap_extra(ext))


def encode_tool_call(tc: c.ToolCall, param: str | None) -> dict[str, Any]:
    ext = own_extra(tc.extra)
    fn: dict[str, Any] = {"name": tc.name, "arguments": args_object(tc.arguments, tc.id, param)}
    merge_extra(fn, ext.get("function"))
    out: dict[str, Any] = {"id": tc.id} if tc.id and not ext.get(GEN) else {}
    out["function"] = fn
    merge_extra(out, ext, ("function", GEN))
    return out


def stop_reason_of(done_reason: Any, had_tool_calls: bool) -> c.StopReason:
    if done_reason == "length":
        return "max_tokens"
    return "tool_use" if had_tool_calls else "end_turn"


def done_reason_of(stop: c.StopReason | None) -> str:
    return "length" if stop in ("max_tokens", "model_context_window_exceeded") else "stop"


def usage_of(body: dict[str, Any], exc: type[GatewayError]) -> c.Usage:
    pin, pout = body.get("prompt_eval_count"), body.get("eval_count")
    return c.Usage(
        input_tokens=0 if pin is None else want(pin, "an integer", "prompt_eval_count", exc),
        output_tokens=0 if pout is None else want(pout, "an integer", "eval_count", exc),
    )


def reply_parts(msg: dict[str, Any]) -> tuple[list[c.Part], list[c.ToolCall]]:
    """An Ollama reply message as parts: thinking, then text, then tool calls."""
    parts: list[c.Part] = []
    if msg.get("thinking"):
        parts.append(c.Reasoning(text=want(msg["thinking"], "a string", "message.thinking", UpstreamError)))
    if msg.get("content"):
        parts.append(c.Text(want(msg["content"], "a string", "message.content", UpstreamError)))
    calls = [
        decode_tool_call(rc, f"message.tool_calls[{k}]", UpstreamError)
        for k, rc in enumerate(opt_list(msg, "tool_calls", "message.", UpstreamError))
    ]
    return parts, calls


def error_from(status: int, obj: dict[str, Any]) -> GatewayError:
    """Ollama `{"error":"text"}`, OpenAI `{"error":{message,param}}` or Anthropic
    `{"type":"error","error":{type,message}}`, keeping the upstream's message (redacted)."""
    err = obj.get("error")
    param = None
    if isinstance(err, dict):
        message = err.get("message")
        if not (isinstance(message, str) and message):
            message = enc.encode(err).decode()
        param = err.get("param") if isinstance(err.get("param"), str) else None
    else:
        message = err if isinstance(err, str) else enc.encode(obj).decode()
    # an error line inside a 200 stream is the upstream failing, not the client
    return for_upstream_status(status if status >= 400 else 502)(redact(message), param=param)
