"""OpenAI: the reference Chat Completions API.

Quirks, all here:
- Reasoning models reject `max_tokens`; `max_completion_tokens` is accepted by every current
  model, so it is always what is sent.
- OpenAI has no `reasoning_content` on input messages: it is removed rather than risk a 400.
"""

from __future__ import annotations

from typing import Any

from dragoman.providers.base import Hooks, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import turns


class OpenAIHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
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
    hooks=OpenAIHooks(),
)
