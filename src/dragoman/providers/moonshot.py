"""Moonshot (the Kimi API platform): OpenAI surface at api.moonshot.ai/v1 (cn: api.moonshot.cn/v1).

Quirks, all here:
- `reasoning_content` must be on every assistant tool-call message while thinking is on, or the API
  answers 400 "thinking is enabled but reasoning_content is missing in assistant tool call message
  at index N". Remembered reasoning is re-attached; "" only when nothing is remembered, and never
  with thinking off.
- Sampling the API pins: k2.5/k2.6 fix temperature, top_p, n and the penalties (dropped); the
  thinking models take temperature 1 and top_p 0.95.
- The thinking toggle is a top-level `thinking: {type}` (k2.5/k2.6 only; on by default), taken from
  the client's Anthropic `thinking` or `reasoning_effort`.
- With thinking on, `tool_choice` may only be auto/none.
- A trailing assistant message (an Anthropic prefill) becomes Moonshot's partial mode.
- Stream usage arrives in `choices[0].usage` with a top-level `cached_tokens`: streams are re-encoded
  so OpenAI clients find usage where the SDK looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dragoman.providers.base import REASONING_REPLAY, Hooks, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import attach_openai, drop_params

FIXED = ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty")


@dataclass(frozen=True)
class ModelRules:
    thinking: str  # "toggle" (on by default) | "always" | "never"
    fixed_sampling: bool = False
    pinned: tuple[tuple[str, float], ...] = ()


THINKING_PINNED = (("temperature", 1.0), ("top_p", 0.95))
MODELS: dict[str, ModelRules] = {
    "kimi-k2.6": ModelRules("toggle", fixed_sampling=True),
    "kimi-k2.5": ModelRules("toggle", fixed_sampling=True),
    "kimi-k2-thinking": ModelRules("always", pinned=THINKING_PINNED),
    "kimi-k2-thinking-turbo": ModelRules("always", pinned=THINKING_PINNED),
    "kimi-k2-turbo-preview": ModelRules("never"),
    "kimi-k2-0905-preview": ModelRules("never"),
    "kimi-k2-0711-preview": ModelRules("never"),
}
# newer ids (kimi-k2.7-code, kimi-k3...) behave like the current line until listed
DEFAULT_RULES = ModelRules("toggle", fixed_sampling=True)


class MoonshotHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        rules = MODELS.get(str(body.get("model")), DEFAULT_RULES)
        asked = ctx.thinking.enabled if ctx.thinking is not None else None
        body.pop("reasoning_effort", None)  # Moonshot's toggle is `thinking`, set below
        if rules.thinking == "toggle":
            native = body.get("thinking")
            if asked is not None:
                body["thinking"] = {"type": "enabled" if asked else "disabled"}
            elif not isinstance(native, dict):
                body.pop("thinking", None)
            thinking = body.get("thinking", {}).get("type", "enabled") != "disabled"
        else:
            body.pop("thinking", None)  # the thinking models always think; others never do
            thinking = rules.thinking == "always"

        if rules.fixed_sampling:
            drop_params(body, FIXED, f"{body.get('model')} fixes sampling", ctx.log)
        for name, value in rules.pinned:
            body[name] = value

        if thinking:
            choice = body.get("tool_choice")
            if choice is not None and choice not in ("auto", "none"):
                ctx.log.debug("tool_choice %r rewritten to auto: Moonshot allows only auto/none with thinking", choice)
                body["tool_choice"] = "auto"
        attach_openai(body, ctx.reasoning, fill_empty=thinking)

        messages = body.get("messages")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            if isinstance(last, dict) and last.get("role") == "assistant" and not last.get("tool_calls"):
                last["partial"] = True

    def rewrite_stream(self, provider: Provider) -> bool:
        return True


SPEC = ProviderSpec(
    id="moonshot",
    title="Moonshot",
    dialect="openai",
    base_url="https://api.moonshot.ai/v1",
    regions={"global": "https://api.moonshot.ai/v1", "cn": "https://api.moonshot.cn/v1"},
    key_env="MOONSHOT_API_KEY",
    models=tuple(MODELS),
    default_model="kimi-k2.6",
    capabilities=frozenset({REASONING_REPLAY}),
    hooks=MoonshotHooks(),
)
