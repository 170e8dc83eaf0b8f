"""Kimi For Coding: api.kimi.com/coding, an Anthropic surface (and an OpenAI one, `surface =
"openai"`), for coding agents only.

Quirks, all here:
- The service admits only clients whose User-Agent it knows; others get 403
  `access_terminated_error`. Dragoman sends `claude-code/0.1.0` (config `user_agent`) and explains
  the 403 when it still happens.
- Model `kimi-for-coding`; the legacy ids `kimi-code` and `k2p5` are sent as `kimi-for-coding`.
- `max_tokens` 8192 when the client gives none.
- Assistant turns holding tool_use carry their thinking block(s) exactly as received; remembered
  ones are re-attached for clients that dropped them, and with thinking on a turn with none gets an
  empty one (else: "thinking is enabled but reasoning_content is missing").
- On the OpenAI surface: the Moonshot reasoning_content rule, and no empty text content on
  assistant tool-call messages ("text content is empty").
- Claude Code's `tool_reference` blocks inside tool results (tool search) are unknown to Kimi
  ("unsupported content type"): they become a text line naming the tool.
- The current model always thinks and rejects `thinking: {type: "disabled"}` (Claude Code subagents
  send it): the field is left out and the model decides.
- Tool schemas go through Moonshot's validator: untyped `enum`/`const` properties get their type
  (`moonshot.typed_tools`), on both surfaces.
"""

from __future__ import annotations

from typing import Any

from dragoman.errors import GatewayError, PermissionDenied
from dragoman.providers.base import REASONING_REPLAY, Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.moonshot import typed_tools
from dragoman.providers.replay import (
    attach_anthropic,
    attach_openai,
    block_types,
    refuse_reasoning,
    thinking_on,
    turns,
)


class KimiHooks(Hooks):
    def dialect_for(self, provider: Provider, model: str) -> str:
        return "openai" if provider.options.get("surface") == "openai" else "anthropic"

    def url_for(self, provider: Provider, dialect: str, model: str) -> str:
        if dialect == "openai":
            return provider.base_url + "/v1/chat/completions"
        return provider.base_url + "/v1/messages"

    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        ctx = refuse_reasoning(provider, body, ctx)
        typed_tools(body)
        if ctx.upstream_dialect == "openai":
            thinking = ctx.thinking is None or ctx.thinking.enabled is not False
            attach_openai(body, ctx.reasoning, fill_empty=thinking)
            for msg in turns(body, "assistant"):
                if msg.get("tool_calls"):
                    content = msg.get("content")
                    if content == "" or (isinstance(content, list) and all(_empty_text(b) for b in content)):
                        msg.pop("content", None)
            return
        attach_anthropic(body, ctx.reasoning, provider.id)
        toggle = body.get("thinking")
        if isinstance(toggle, dict) and toggle.get("type") == "disabled":
            del body["thinking"]
        _flatten_tool_references(body)
        if thinking_on(body):
            for msg in turns(body, "assistant"):
                types = block_types(msg.get("content"))
                if "tool_use" in types and not types & {"thinking", "redacted_thinking"}:
                    msg["content"] = [{"type": "thinking", "thinking": "", "signature": ""}, *msg["content"]]

    def map_error(self, provider: Provider, status: int, error: GatewayError) -> GatewayError:
        if status == 403 and ("access_terminated" in error.message or "Coding Agents" in error.message):
            agent = provider.headers.get("user-agent", "(none)")
            return PermissionDenied(
                "Kimi For Coding refused the request (access_terminated_error): it admits only known coding "
                f"agents by User-Agent, and Dragoman sent {agent!r}. Set providers.kimi.user_agent to an "
                f"accepted agent (e.g. 'claude-code/0.1.0'). Upstream said: {error.message}"
            )
        return error


def _flatten_tool_references(body: dict[str, Any]) -> None:
    for msg in turns(body, "user"):
        if not isinstance(msg.get("content"), list):
            continue
        for block in msg["content"]:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            inner = block.get("content")
            if isinstance(inner, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_reference" for b in inner
            ):
                block["content"] = [
                    {"type": "text", "text": f"[tool available: {b.get('tool_name', '?')}]"}
                    if isinstance(b, dict) and b.get("type") == "tool_reference"
                    else b
                    for b in inner
                ]


def _empty_text(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and not block.get("text")


SPEC = ProviderSpec(
    id="kimi",
    title="Kimi For Coding",
    dialect="anthropic",
    base_url="https://api.kimi.com/coding",
    key_env="KIMI_API_KEY",
    auth="bearer",
    models=("kimi-for-coding",),
    default_model="kimi-for-coding",
    # https://www.kimi.com/code/docs/en/third-party-tools/other-coding-agents.html (K2.6 behind the
    # kimi-for-coding name; limits as catalogued by models.dev, anomalyco/models.dev@f3fc692)
    model_info={"kimi-for-coding": ModelInfo(context_window=262_144, max_output=32_768, reasoning=True)},
    aliases={"kimi-code": "kimi-for-coding", "k2p5": "kimi-for-coding"},
    max_tokens_default=8192,
    capabilities=frozenset({REASONING_REPLAY}),
    options={"user_agent": "claude-code/0.1.0", "surface": "anthropic"},
    option_choices={"surface": ("anthropic", "openai")},
    dialect_option="surface",
    hooks=KimiHooks(),
)
