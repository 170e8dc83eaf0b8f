"""OpenRouter: OpenAI surface at openrouter.ai/api/v1.

Quirks, all here:
- Attribution headers `HTTP-Referer` and `X-Title` (config `http_referer`, `x_title`).
- `: OPENROUTER PROCESSING` comment lines and an error chunk inside a 200 stream: handled by the
  SSE framing and the OpenAI codec (the error reaches the client as an error).
- `reasoning` is built from the client's thinking/effort: an effort or a max_tokens budget, never
  both (OpenRouter rejects the pair).
- `reasoning_details` are replayed unchanged on assistant messages (remembered ones too).
"""

from __future__ import annotations

from typing import Any

from dragoman.providers.base import REASONING_REPLAY, Hooks, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import attach_openai, refuse_reasoning


class OpenRouterHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        ctx = refuse_reasoning(provider, body, ctx)
        effort = body.pop("reasoning_effort", None)
        if not isinstance(body.get("reasoning"), dict):
            asked = ctx.thinking
            reasoning: dict[str, Any] | None = None
            if asked is not None:
                if asked.enabled is False:
                    reasoning = {"enabled": False}
                elif asked.effort:
                    reasoning = {"effort": asked.effort}
                elif asked.budget_tokens:
                    reasoning = {"max_tokens": asked.budget_tokens}
                elif asked.enabled:
                    reasoning = {"enabled": True}
            elif isinstance(effort, str):
                reasoning = {"effort": effort}
            if reasoning is not None:
                body["reasoning"] = reasoning
        attach_openai(body, ctx.reasoning, fill_empty=False, details=True)

    def url_for(self, provider: Provider, dialect: str, model: str) -> str:
        return provider.base_url + "/chat/completions"


SPEC = ProviderSpec(
    id="openrouter",
    title="OpenRouter",
    dialect="openai",
    base_url="https://openrouter.ai/api/v1",
    key_env="OPENROUTER_API_KEY",
    capabilities=frozenset({REASONING_REPLAY}),
    options={"http_referer": "https://github.com/dragoman-gateway/dragoman", "x_title": "Dragoman"},
    option_headers={"http_referer": "http-referer", "x_title": "x-title"},
    hooks=OpenRouterHooks(),
)
