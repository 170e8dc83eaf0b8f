"""OpenAI: the reference Chat Completions API.

Quirks, all here:
- Reasoning models reject `max_tokens`; `max_completion_tokens` is accepted by every current
  model, so it is always what is sent.
- OpenAI has no `reasoning_content` on input messages: it is removed rather than risk a 400.
- Non-reasoning models (gpt-4.1, gpt-4o) reject `reasoning_effort`: reasoning controls go only to
  models the catalog below says reason (Claude Code asks for thinking on every turn).
"""

from __future__ import annotations

from typing import Any

from dragoman.providers.base import Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import refuse_reasoning, turns


class OpenAIHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        ctx = refuse_reasoning(provider, body, ctx)
        if "max_tokens" in body:
            value = body.pop("max_tokens")
            body.setdefault("max_completion_tokens", value)
        for msg in turns(body, "assistant"):
            msg.pop("reasoning_content", None)


SPEC = ProviderSpec(
    id="openai",
    title="OpenAI",
    dialect="openai",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    models=("gpt-5.1", "gpt-5-mini", "gpt-4.1", "gpt-4o", "o4-mini"),
    default_model="gpt-5.1",
    # https://platform.openai.com/docs/models (as catalogued by models.dev, anomalyco/models.dev@f3fc692)
    model_info={
        "gpt-5.1": ModelInfo(context_window=400_000, max_output=128_000, reasoning=True),
        "gpt-5-mini": ModelInfo(context_window=400_000, max_output=128_000, reasoning=True),
        "gpt-4.1": ModelInfo(context_window=1_047_576, max_output=32_768, reasoning=False),
        "gpt-4o": ModelInfo(context_window=128_000, max_output=16_384, reasoning=False),
        "o4-mini": ModelInfo(context_window=200_000, max_output=100_000, reasoning=True),
    },
    hooks=OpenAIHooks(),
)
