"""OpenAI: the reference Chat Completions API, and the Responses API for the models only it serves.

Quirks, all here:
- Reasoning models reject `max_tokens`; `max_completion_tokens` is accepted by every current
  model, so it is always what is sent.
- OpenAI has no `reasoning_content` on input messages: it is removed rather than risk a 400.
- Non-reasoning models (gpt-4.1, gpt-4o) reject `reasoning_effort`: reasoning controls go only to
  models the catalog below says reason (Claude Code asks for thinking on every turn).
- The Codex models, the `-pro` reasoning models, deep research and computer use answer only on
  `/v1/responses` ("This model is only supported in v1/responses and not in v1/chat/completions"):
  their catalog entries say `dialect="responses"`, so every client reaches them through that API.
  Being reasoning models, they reject `temperature` and `top_p` ("Unsupported parameter"): dropped.
"""

from __future__ import annotations

from typing import Any

from dragoman.providers.base import Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import drop_params, refuse_reasoning, turns

RESPONSES_ONLY = ModelInfo(reasoning=True, dialect="responses")
# the GPT-5 Codex line shares GPT-5's window (400k tokens, 128k out)
CODEX = ModelInfo(context_window=400_000, max_output=128_000, reasoning=True, dialect="responses")

# https://platform.openai.com/docs/models (as catalogued by models.dev, anomalyco/models.dev@f3fc692)
CHAT_MODELS: dict[str, ModelInfo] = {
    "gpt-5.1": ModelInfo(context_window=400_000, max_output=128_000, reasoning=True),
    "gpt-5-mini": ModelInfo(context_window=400_000, max_output=128_000, reasoning=True),
    "gpt-4.1": ModelInfo(context_window=1_047_576, max_output=32_768, reasoning=False),
    "gpt-4o": ModelInfo(context_window=128_000, max_output=16_384, reasoning=False),
    "o4-mini": ModelInfo(context_window=200_000, max_output=100_000, reasoning=True),
}
# Served only by the Responses API (OpenAI's model pages list no Chat Completions endpoint).
MODEL_INFO: dict[str, ModelInfo] = (
    CHAT_MODELS
    | {
        name: CODEX
        for name in ("gpt-5.3-codex", "gpt-5.2-codex", "gpt-5.1-codex-max", "gpt-5.1-codex", "gpt-5.1-codex-mini")
    }
    | {
        name: RESPONSES_ONLY
        for name in (
            "gpt-5-codex",
            "codex-mini-latest",
            "gpt-5.2-pro",
            "gpt-5-pro",
            "o3-pro",
            "o1-pro",
            "o3-deep-research",
            "o4-mini-deep-research",
        )
    }
    | {"computer-use-preview": ModelInfo(dialect="responses")}
)

SAMPLING = ("temperature", "top_p")


class OpenAIHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        if ctx.upstream_dialect == "responses":
            info = provider.info(str(body.get("model")))
            if info is not None and info.reasoning:
                drop_params(body, SAMPLING, "reasoning models reject sampling parameters", ctx.log)
            return
        if ctx.upstream_dialect != "openai":
            return
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
    models=("gpt-5.1", "gpt-5-mini", "gpt-4.1", "gpt-4o", "o4-mini", "gpt-5.3-codex"),
    default_model="gpt-5.1",
    model_info=MODEL_INFO,
    hooks=OpenAIHooks(),
)
