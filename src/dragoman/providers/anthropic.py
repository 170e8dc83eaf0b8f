"""Anthropic: the reference Messages API at api.anthropic.com, `x-api-key`,
`anthropic-version: 2023-06-01`, the client's `anthropic-beta` passed on (by the pipeline).

Quirk, here: Claude rejects a thinking block whose signature it did not mint. So another provider's
thinking, and unsigned thinking, are dropped from completed turns; in the active tool loop (the last
assistant turn, whose tool results are being sent back) a lost signature is a clear 400 rather than
Claude's confusing one. Remembered signed thinking is re-attached for clients that dropped it.
"""

from __future__ import annotations

from typing import Any

from dragoman.errors import InvalidRequest
from dragoman.providers.base import (
    COUNT_TOKENS,
    REASONING_REPLAY,
    SIGNATURE_AUTHORITY,
    Hooks,
    ModelInfo,
    PrepareContext,
    Provider,
    ProviderSpec,
)
from dragoman.providers.replay import attach_anthropic, refuse_reasoning, thinking_on

OMITTED = {"type": "text", "text": "[earlier reasoning omitted]"}


class AnthropicHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        ctx = refuse_reasoning(provider, body, ctx)
        attach_anthropic(body, ctx.reasoning, provider.id)
        messages = body.get("messages")
        if not isinstance(messages, list):
            return
        active = _active_turn(messages)
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") != "assistant" or not isinstance(msg.get("content"), list):
                continue
            foreign = _foreign_signatures(msg["content"], ctx, provider.id)
            kept = [b for b in msg["content"] if not _invalid(b, foreign)]
            if len(kept) == len(msg["content"]):
                continue
            if i == active and thinking_on(body):
                raise InvalidRequest(
                    f"messages.{i}: this assistant turn made the tool calls being answered, and its thinking "
                    "block is unsigned or was made by another provider. Claude requires the original signed "
                    "thinking here; resend the history with the thinking blocks as received, or start a new "
                    "turn with a user message.",
                    param=f"messages.{i}.content",
                )
            msg["content"] = kept or [dict(OMITTED)]


def _invalid(block: Any, foreign: set[str]) -> bool:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    return not signature or signature in foreign


def _foreign_signatures(content: list[Any], ctx: PrepareContext, origin: str) -> set[str]:
    """Signatures this gateway saw minted by another provider for these tool calls."""
    out: set[str] = set()
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("id"), str):
            for part in ctx.reasoning.recall(block["id"]) or []:
                if part.signature and part.origin not in (None, origin):
                    out.add(part.signature)
    return out


def _active_turn(messages: list[Any]) -> int:
    """Index of the assistant turn whose tool results close the conversation, or -1."""
    if len(messages) < 2:
        return -1
    last, prev = messages[-1], messages[-2]
    if not (isinstance(last, dict) and last.get("role") == "user" and isinstance(prev, dict)):
        return -1
    content = last.get("content")
    if (
        prev.get("role") == "assistant"
        and isinstance(content, list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    ):
        return len(messages) - 2
    return -1


SPEC = ProviderSpec(
    id="anthropic",
    title="Anthropic",
    dialect="anthropic",
    base_url="https://api.anthropic.com",
    key_env="ANTHROPIC_API_KEY",
    auth="x-api-key",
    models=("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"),
    default_model="claude-sonnet-4-6",
    # https://platform.claude.com/docs/en/models/<model>/overview (context window, max output)
    model_info={
        "claude-opus-4-7": ModelInfo(context_window=1_000_000, max_output=128_000, reasoning=True),
        "claude-sonnet-4-6": ModelInfo(context_window=1_000_000, max_output=128_000, reasoning=True),
        "claude-haiku-4-5": ModelInfo(context_window=200_000, max_output=64_000, reasoning=True),
    },
    max_tokens_default=8192,
    capabilities=frozenset({COUNT_TOKENS, REASONING_REPLAY, SIGNATURE_AUTHORITY}),
    hooks=AnthropicHooks(),
)
