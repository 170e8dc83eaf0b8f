"""OpenAI: the reference Chat Completions API, and the Responses API for the models served only there.

Quirks, all here:
- Reasoning models reject `max_tokens`; `max_completion_tokens` is accepted by every current
  model, so it is always what is sent.
- OpenAI has no `reasoning_content` on input messages: it is removed rather than risk a 400.
- The Codex models, the `-pro` reasoning models, deep research and computer use answer only on
  `/v1/responses` ("This model is only supported in v1/responses and not in v1/chat/completions"):
  their catalog entries say `dialect="responses"`, so every client reaches them through that API.
  Being reasoning models, they reject `temperature` and `top_p` ("Unsupported parameter"): dropped.
"""

from __future__ import annotations

from typing import Any

from dragoman.providers.base import Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import drop_params, turns

RESPONSES_ONLY = ModelInfo(reasoning=True, dialect="responses")

# Served only by the Responses API (OpenAI's model pages list no Chat Completions endpoint).
MODEL_INFO: dict[str, ModelInfo] = {
    name: RESPONSES_ONLY
    for name in (
        "gpt-5.3-codex",
        "gpt-5.2-codex",
        "gpt-5.1-codex-max",
        "gpt-5.1-codex",
        "gpt-5.1-codex-mini",
        "gpt-5-codex",
        "codex-mini-latest",
        "gpt-5.2-pro",
        "gpt-5-pro",
        "o3-pro",
        "o1-pro",
        "o3-deep-research",
        "o4-mini-deep-research",
    )
} | {"computer-use-preview": ModelInfo(dialect="responses")}


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
    model_info=MODEL_INFO,
    default_model="gpt-5.1",
    hooks=OpenAIHooks(),
)
