"""Reasoning replay: put remembered reasoning back on assistant tool-call turns that lost it.

Providers that declare `reasoning_replay` get this step; it works on the upstream wire body, one
function per dialect, and never overwrites reasoning the client did send.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from dragoman.canonical import Reasoning
from dragoman.store.reasoning import Recall

if TYPE_CHECKING:
    from dragoman.providers.base import PrepareContext, Provider


def _recall(store: Recall, ids: list[str]) -> list[Reasoning] | None:
    for tid in ids:
        parts = store.recall(tid)
        if parts:
            return parts
    return None


def turns(body: dict[str, Any], role: str) -> Iterator[dict[str, Any]]:
    """The messages of one role in a wire body, skipping anything malformed (the upstream judges it)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for msg in messages:
            if isinstance(msg, dict) and msg.get("role") == role:
                yield msg


def tool_call_ids(body: dict[str, Any]) -> list[str]:
    """Every tool-call id in a wire body's assistant turns (OpenAI tool_calls, Anthropic tool_use)."""
    ids: list[str] = []
    for msg in turns(body, "assistant"):
        calls = msg.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                ids.append(call["id"])
        content = msg.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                    ids.append(block["id"])
    return ids


def block_types(content: Any) -> set[str]:
    """The block types in a wire message's content (a malformed `type` is the upstream's to judge)."""
    if not isinstance(content, list):
        return set()
    return {t for b in content if isinstance(b, dict) and isinstance(t := b.get("type"), str)}


def attach_openai(body: dict[str, Any], store: Recall, *, fill_empty: bool, details: bool = False) -> None:
    """`reasoning_content` on every assistant message with tool_calls: the remembered text, or ""
    when nothing is remembered and `fill_empty` (thinking on) says the provider insists.
    With `details`, OpenRouter's `reasoning_details` come back too, unchanged."""
    for msg in turns(body, "assistant"):
        calls = msg.get("tool_calls")
        if not calls or not isinstance(calls, list):
            continue
        ids = [str(c["id"]) for c in calls if isinstance(c, dict) and isinstance(c.get("id"), str)]
        if details and "reasoning_details" not in msg:
            found = _recall(store, ids)
            kept = [d for p in found or [] for d in p.details or []]
            if kept:
                msg["reasoning_details"] = kept
        if msg.get("reasoning_content") is not None:
            continue
        parts = _recall(store, ids)
        texts = [p.text for p in parts if p.redacted is None] if parts else []
        if texts:
            msg["reasoning_content"] = "".join(texts)
        elif fill_empty:
            msg["reasoning_content"] = ""


def attach_anthropic(body: dict[str, Any], store: Recall, origin: str) -> None:
    """The remembered thinking blocks, first in every assistant turn holding tool_use, when the
    client dropped them or kept only their text (an OpenAI client's `reasoning_content` comes back
    unsigned) and this provider minted them (signatures are only valid where made). Signed blocks
    the client did keep are never touched."""
    for msg in turns(body, "assistant"):
        content = msg.get("content")
        if "tool_use" not in block_types(content):
            continue
        assert isinstance(content, list)
        if any(_signed(b) for b in content):
            continue
        ids = [
            b["id"]
            for b in content
            if isinstance(b, dict) and b.get("type") == "tool_use" and isinstance(b.get("id"), str)
        ]
        parts = _recall(store, ids)
        if not parts or any(p.origin not in (None, origin) for p in parts):
            continue
        rest = [b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking")]
        msg["content"] = [to_anthropic_block(p) for p in parts] + rest


def _signed(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    kind = block.get("type")
    return kind == "redacted_thinking" or (kind == "thinking" and bool(block.get("signature")))


def to_anthropic_block(part: Reasoning) -> dict[str, Any]:
    if part.redacted is not None:
        return {"type": "redacted_thinking", "data": part.redacted}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}


def thinking_on(body: dict[str, Any]) -> bool:
    """Whether an Anthropic-dialect body asks for thinking."""
    t = body.get("thinking")
    return isinstance(t, dict) and t.get("type") in ("enabled", "adaptive")


def drop_params(body: dict[str, Any], names: tuple[str, ...], why: str, log: Any) -> None:
    """Remove sampling parameters a provider fixes; say so at debug level."""
    dropped = [n for n in names if n in body]
    for n in dropped:
        del body[n]
    if dropped:
        log.debug("dropped %s: %s", ", ".join(dropped), why)


# What asks a model to reason, in each dialect's wire body: OpenAI's effort, OpenRouter's object,
# Anthropic's, Moonshot's and DeepSeek's toggle, Ollama's `think`, and Anthropic's output effort.
REASONING_CONTROLS = ("reasoning_effort", "reasoning", "thinking", "think")


def refuse_reasoning(provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> PrepareContext:
    """For a model the catalog says takes no reasoning controls (`ModelInfo.reasoning` False),
    remove them from the wire body (a client asking for thinking on every turn, as Claude Code
    does, must not earn a 400) and return the context with nothing asked, so the provider's own
    rules add none. Unknown models keep everything."""
    model = body.get("model")
    if not isinstance(model, str) or not provider.reasoning_refused(model):
        return ctx
    dropped = [name for name in REASONING_CONTROLS if body.pop(name, None) is not None]
    config = body.get("output_config")
    if isinstance(config, dict) and "effort" in config:
        rest = {k: v for k, v in config.items() if k != "effort"}  # a copy: the client's stays whole
        if rest:
            body["output_config"] = rest
        else:
            del body["output_config"]
        dropped.append("output_config.effort")
    if dropped:
        ctx.log.debug("%s takes no reasoning controls: dropped %s", model, ", ".join(dropped))
    return replace(ctx, thinking=None)
