"""DeepSeek: OpenAI surface at api.deepseek.com.

Quirks, all here:
- After a tool call, that assistant message's `reasoning_content` must come back in every later
  request ("" when none was captured; a missing key is a 400).
- Thinking is on by default: `thinking: {type}` from the client's thinking/effort; effort low/medium
  → high, xhigh → max; a disabled toggle drops `reasoning_effort` (the API rejects the pair).
- No `logprobs`/`top_logprobs` in thinking mode (rejected): dropped.
- Usage `prompt_cache_hit_tokens` counts as cached tokens (in the OpenAI codec).
- `deepseek-chat` (V4 Flash without thinking) gets no reasoning controls and no "" reasoning.
"""

from __future__ import annotations

from typing import Any

from dragoman.providers.base import REASONING_REPLAY, Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import attach_openai, drop_params, refuse_reasoning

EFFORT = {"minimal": "high", "low": "high", "medium": "high", "high": "high", "xhigh": "max", "max": "max"}


class DeepSeekHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        ctx = refuse_reasoning(provider, body, ctx)
        plain = provider.reasoning_refused(str(body.get("model")))  # deepseek-chat: never thinks
        asked = ctx.thinking
        if asked is not None and asked.enabled is not None:
            body["thinking"] = {"type": "enabled" if asked.enabled else "disabled"}
        disabled = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") == "disabled"
        thinking = not plain and not disabled
        effort = body.pop("reasoning_effort", None)
        if thinking and isinstance(effort, str) and effort in EFFORT:
            body["reasoning_effort"] = EFFORT[effort]
        if thinking:
            drop_params(body, ("logprobs", "top_logprobs"), "DeepSeek rejects logprobs in thinking mode", ctx.log)
        attach_openai(body, ctx.reasoning, fill_empty=not plain)


SPEC = ProviderSpec(
    id="deepseek",
    title="DeepSeek",
    dialect="openai",
    base_url="https://api.deepseek.com",
    key_env="DEEPSEEK_API_KEY",
    models=("deepseek-v4-pro", "deepseek-v4-flash", "deepseek-chat", "deepseek-reasoner"),
    default_model="deepseek-v4-flash",
    # https://api-docs.deepseek.com/quick_start/pricing (deepseek-chat is V4 Flash's non-thinking
    # mode, deepseek-reasoner its thinking mode; as catalogued by models.dev, anomalyco/models.dev@f3fc692)
    model_info={
        "deepseek-v4-pro": ModelInfo(context_window=1_000_000, max_output=384_000, reasoning=True),
        "deepseek-v4-flash": ModelInfo(context_window=1_000_000, max_output=384_000, reasoning=True),
        "deepseek-chat": ModelInfo(context_window=1_000_000, max_output=384_000, reasoning=False),
        "deepseek-reasoner": ModelInfo(context_window=1_000_000, max_output=384_000, reasoning=True),
    },
    capabilities=frozenset({REASONING_REPLAY}),
    hooks=DeepSeekHooks(),
)
