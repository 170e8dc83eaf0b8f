"""Shared pieces of the Responses dialect: the `extra` namespace, usage and status mappings, ids,
and the small readers every module of the package uses. Validation helpers come from the Chat
Completions codec (same envelope, same messages)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from dragoman.canonical import StopReason, Usage
from dragoman.dialects.openai.messages import type_error

NS = "responses"
# The canonical refusal mark, the one every OpenAI-family encoder reads.
REFUSAL = {"openai": {"type": "refusal"}}

# Statuses of a finished response, by canonical stop reason.
INCOMPLETE_REASON: dict[str, str] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


def own(extra: dict[str, Any] | None) -> dict[str, Any]:
    """The `responses` namespace of a canonical `extra` (never another dialect's)."""
    if extra:
        mine = extra.get(NS)
        if isinstance(mine, dict):
            return mine
    return {}


def wrap(d: dict[str, Any]) -> dict[str, Any] | None:
    return {NS: d} if d else None


def is_refusal(extra: dict[str, Any] | None) -> bool:
    if not extra:
        return False
    for ns in ("openai", NS):
        mine = extra.get(ns)
        if isinstance(mine, dict) and mine.get("type") == "refusal":
            return True
    return False


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def want_list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise type_error(param, "an array", value)
    return value


def want_dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise type_error(param, "an object", value)
    return value


def want_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise type_error(param, "a string", value)
    return value


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def usage_from_wire(u: Any) -> Usage:
    """Responses `input_tokens` includes cached input; canonical `input_tokens` does not."""
    if not isinstance(u, dict):
        return Usage()
    details = u.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = _int(details.get("cached_tokens"))
    written = _int(details.get("cache_write_tokens"))
    out_details = u.get("output_tokens_details")
    reasoning = out_details.get("reasoning_tokens") if isinstance(out_details, dict) else None
    return Usage(
        input_tokens=max(_int(u.get("input_tokens")) - cached - written, 0),
        output_tokens=_int(u.get("output_tokens")),
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning if isinstance(reasoning, int) and not isinstance(reasoning, bool) else None,
    )


def usage_to_wire(u: Usage | None) -> dict[str, Any]:
    """Every field Codex and the SDK read, always present (a missing `total_tokens` fails a turn)."""
    u = u or Usage()
    details: dict[str, Any] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        details["cache_write_tokens"] = u.cache_write_tokens
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": details,
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens or 0},
        "total_tokens": u.total_tokens,
    }


def stop_from_status(status: Any, incomplete: Any, tool_calls: bool) -> StopReason:
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return "refusal" if reason == "content_filter" else "max_tokens"
    return "tool_use" if tool_calls else "end_turn"


def status_of(stop: str | None) -> tuple[str, dict[str, Any] | None]:
    """The `status` and `incomplete_details` a finished response carries for a stop reason."""
    reason = INCOMPLETE_REASON.get(stop or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def is_openai_encrypted(blob: str) -> bool:
    """Whether a blob is OpenAI's own `encrypted_content`: a Fernet token (version byte 0x80 and a
    timestamp, so base64 "gAAAAA"), the only kind a Responses upstream takes back. Claude's and
    Kimi's signatures and this gateway's sealed blobs never start so."""
    return blob.startswith("gAAAAA")


_noted: set[str] = set()


def note_dropped(what: str, why: str, log: logging.Logger) -> None:
    """Say once per process (at info) that something a client sent was dropped, then at debug."""
    level = logging.DEBUG if what in _noted else logging.INFO
    _noted.add(what)
    log.log(level, "dropped %s: %s", what, why)
