"""MiniMax: Anthropic surface at api.minimax.io/anthropic (cn: api.minimaxi.com), Bearer auth.

Quirks, all here:
- Models MiniMax-M2.7 (default) and MiniMax-M2.7-highspeed; `max_tokens` 4096 by default.
- Assistant content is replayed exactly as received (thinking signed or not, text, tool_use, in
  order): pass-through keeps it, and remembered turns are re-attached for clients that drop them.
- A thinking `content_block_start` may lack `signature`; streams are re-encoded so strict clients
  always get one.
- "insufficient balance (1008)" arrives as HTTP 500: it becomes a billing error (402, not retried)
  that explains the two key types.
- The API ignores `top_k` and `stop_sequences` (documented in docs/providers.md).
"""

from __future__ import annotations

from typing import Any

from dragoman.errors import BillingError, GatewayError
from dragoman.providers.base import REASONING_REPLAY, Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import attach_anthropic, refuse_reasoning

BALANCE_HELP = (
    "MiniMax reports insufficient balance (1008). Keys starting sk-cp- belong to a Token Plan, which "
    "covers the base model (MiniMax-M2.7) only; keys starting sk-api- are billed per token and need a "
    "funded balance (MiniMax-M2.7-highspeed needs one). Upstream said: "
)


class MiniMaxHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        ctx = refuse_reasoning(provider, body, ctx)
        attach_anthropic(body, ctx.reasoning, provider.id)
        for name in ("top_k", "stop_sequences"):
            if name in body:
                ctx.log.debug("MiniMax ignores %s; sent anyway", name)

    def map_error(self, provider: Provider, status: int, error: GatewayError) -> GatewayError:
        text = error.message.lower()
        if "(1008)" in text or "insufficient balance" in text or "insufficient_balance" in text:
            return BillingError(BALANCE_HELP + error.message, headers={"x-should-retry": "false"})
        return error

    def rewrite_stream(self, provider: Provider) -> bool:
        return True


SPEC = ProviderSpec(
    id="minimax",
    title="MiniMax",
    dialect="anthropic",
    base_url="https://api.minimax.io/anthropic",
    regions={"global": "https://api.minimax.io/anthropic", "cn": "https://api.minimaxi.com/anthropic"},
    key_env="MINIMAX_API_KEY",
    auth="bearer",
    models=("MiniMax-M2.7", "MiniMax-M2.7-highspeed"),
    default_model="MiniMax-M2.7",
    # https://platform.minimax.io/docs/guides/quickstart (as catalogued by models.dev, anomalyco/models.dev@f3fc692)
    model_info={
        "MiniMax-M2.7": ModelInfo(context_window=204_800, max_output=131_072, reasoning=True),
        "MiniMax-M2.7-highspeed": ModelInfo(context_window=204_800, max_output=131_072, reasoning=True),
    },
    max_tokens_default=4096,
    capabilities=frozenset({REASONING_REPLAY}),
    hooks=MiniMaxHooks(),
)
