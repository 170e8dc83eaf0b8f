"""OpenCode Zen: opencode.ai/zen/v1, one key, a wire format per model family.

Quirks, all here:
- Chat Completions (`/chat/completions`) for Kimi, MiniMax, GLM, DeepSeek, Grok and the free
  models; Anthropic Messages (`/messages`, note: no `/v1`) for Claude and Qwen; the OpenAI
  Responses API (`/responses`) for the GPT family (gpt-5.x, codex); Gemini's own format is refused.
  The family table is data below; a model's catalog entry (`ModelInfo.dialect`) comes first, and
  config `formats = {"<model>" = "openai"|"anthropic"|"responses"}` overrides both per model.
- Errors use the Anthropic envelope even on the OpenAI endpoint (every codec parses both).
- The GPT family are reasoning models: `temperature` and `top_p` are dropped on `/responses`.
- Reasoning from Kimi/DeepSeek models follows the reasoning_content replay rule.
"""

from __future__ import annotations

from typing import Any

from dragoman.errors import Unsupported
from dragoman.providers.base import REASONING_REPLAY, Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import attach_anthropic, attach_openai, drop_params, refuse_reasoning

# model id prefix -> wire format (Zen's own catalog groups models this way)
FAMILIES: tuple[tuple[str, str], ...] = (
    ("claude-", "anthropic"),
    ("qwen", "anthropic"),
    ("gpt-", "responses"),
    ("codex", "responses"),
    ("gemini-", "google"),
)


SPOKEN = ("openai", "anthropic", "responses")
PATHS = {"anthropic": "/messages", "responses": "/responses", "openai": "/chat/completions"}


class OpenCodeHooks(Hooks):
    def dialect_for(self, provider: Provider, model: str) -> str:
        overrides = provider.options.get("formats") or {}
        found = overrides.get(model)
        if found is None:
            info = provider.info(model)
            found = info.dialect if info is not None and info.dialect is not None else None
        if found is None:
            found = next((fmt for prefix, fmt in FAMILIES if model.startswith(prefix)), "openai")
        if found not in SPOKEN:
            raise Unsupported(
                f"OpenCode Zen serves {model!r} in the {found} format, which Dragoman does not speak",
                param="model",
            )
        return str(found)

    def url_for(self, provider: Provider, dialect: str, model: str) -> str:
        return provider.base_url + PATHS.get(dialect, "/chat/completions")

    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        if ctx.upstream_dialect == "responses":
            # the GPT family are reasoning models: no sampling parameters; their reasoning
            # travels as encrypted_content, so nothing is re-attached
            drop_params(body, ("temperature", "top_p"), "Zen's Responses models reject sampling parameters", ctx.log)
            return
        ctx = refuse_reasoning(provider, body, ctx)
        if ctx.upstream_dialect == "anthropic":
            attach_anthropic(body, ctx.reasoning, provider.id)
        else:
            thinking = ctx.thinking is None or ctx.thinking.enabled is not False
            attach_openai(body, ctx.reasoning, fill_empty=thinking)


SPEC = ProviderSpec(
    id="opencode",
    title="OpenCode Zen",
    dialect="openai",
    base_url="https://opencode.ai/zen/v1",
    key_env="OPENCODE_API_KEY",
    models=("kimi-k2.6", "minimax-m2.7", "glm-4.7", "deepseek-v4-pro", "claude-sonnet-4-6", "qwen3.6-coder"),
    capabilities=frozenset({REASONING_REPLAY}),
    options={"formats": {}},
    # https://opencode.ai/docs/zen (as catalogued by models.dev, anomalyco/models.dev@f3fc692; qwen3.6-coder
    # is not catalogued there, so it stays unknown)
    model_info={
        "kimi-k2.6": ModelInfo(context_window=262_144, max_output=65_536, reasoning=True),
        "minimax-m2.7": ModelInfo(context_window=204_800, max_output=131_072, reasoning=True),
        "glm-4.7": ModelInfo(context_window=204_800, max_output=131_072, reasoning=True),
        "deepseek-v4-pro": ModelInfo(context_window=1_000_000, max_output=384_000, reasoning=True),
        "claude-sonnet-4-6": ModelInfo(context_window=1_000_000, max_output=64_000, reasoning=True),
    },
    dialect_option="formats",
    hooks=OpenCodeHooks(),
)
