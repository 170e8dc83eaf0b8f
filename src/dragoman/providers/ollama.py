"""Ollama, local: the native /api/chat NDJSON API at localhost:11434, no key.

Quirks, all here:
- `think` follows the client's thinking/effort; when the client says nothing it is `false`
  (config `think_default`), so small local models answer directly instead of spending a short
  budget on reasoning.
- Tool calls arrive whole, with object arguments; `done_reason` stays "stop" after tool calls; token
  counts come from `prompt_eval_count`/`eval_count`; `format` comes from `response_format` (all in
  the Ollama codec).
"""

from __future__ import annotations

from typing import Any

from dragoman.providers.base import Hooks, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import refuse_reasoning


class OllamaHooks(Hooks):
    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        ctx = refuse_reasoning(provider, body, ctx)
        if "think" not in body and ctx.thinking is None:
            default = provider.options.get("think_default")
            if default is not None:
                body["think"] = default


SPEC = ProviderSpec(
    id="ollama",
    title="Ollama",
    dialect="ollama",
    base_url="http://localhost:11434",
    key_env=None,
    auth="none",
    options={"think_default": False},
    hooks=OllamaHooks(),
)
