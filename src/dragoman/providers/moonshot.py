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
- Tool schemas must be "Moonshot flavored JSON schema": a property without `type` is a 400 ("At
  path 'properties.x': type is not defined", earendil-works/pi#4138 and #5822), also for a bare
  `enum` or `const`. The type is filled from the values, at every depth, on copies (`typed_tools`;
  Kimi For Coding shares the validator and uses it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dragoman.providers.base import REASONING_REPLAY, Hooks, ModelInfo, PrepareContext, Provider, ProviderSpec
from dragoman.providers.replay import attach_openai, drop_params, refuse_reasoning

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
        ctx = refuse_reasoning(provider, body, ctx)
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

        typed_tools(body)

    def rewrite_stream(self, provider: Provider) -> bool:
        return True


# JSON Schema keywords whose values are schemas: by name, as lists, as maps of names to schemas.
SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
# a node with one of these takes its type from elsewhere: it needs none of its own
TYPED_ELSEWHERE = ("type", "$ref", "anyOf", "oneOf", "allOf")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def typed_schema(schema: Any) -> Any:
    """`schema` with a `type` on every node that lists its values (`enum`, `const`) but names no
    type; the same object when nothing changed, copies of only what changed otherwise."""
    if not isinstance(schema, dict):
        return schema
    changes: dict[str, Any] = {}
    for key in SUBSCHEMA:
        sub = schema.get(key)
        if isinstance(sub, dict) and (new := typed_schema(sub)) is not sub:
            changes[key] = new
    for key in SUBSCHEMA_LISTS:
        subs = schema.get(key)
        if isinstance(subs, list):
            news = [typed_schema(s) for s in subs]
            if any(n is not s for n, s in zip(news, subs, strict=True)):
                changes[key] = news
    for key in SUBSCHEMA_MAPS:
        subs = schema.get(key)
        if isinstance(subs, dict):
            newm = {name: typed_schema(s) for name, s in subs.items()}
            if any(newm[name] is not s for name, s in subs.items()):
                changes[key] = newm
    if not any(k in schema for k in TYPED_ELSEWHERE):
        values = (
            schema["enum"] if isinstance(schema.get("enum"), list) else [schema["const"]] if "const" in schema else []
        )
        kinds = list(dict.fromkeys(json_type(v) for v in values))
        if set(kinds) == {"integer", "number"}:
            kinds = ["number"]
        if len(kinds) == 1:
            changes["type"] = kinds[0]
        elif kinds:  # mixed values: one branch per type, which the validator accepts
            rest = {k: v for k, v in schema.items() if k not in ("enum", "const")}
            branches = [{"type": k, "enum": [v for v in values if json_type(v) == k]} for k in kinds]
            return {**rest, **changes, "anyOf": branches}
    return {**schema, **changes} if changes else schema


def typed_tools(body: dict[str, Any]) -> None:
    """Give `body` a tools list whose schemas are typed (OpenAI `function.parameters` and Anthropic
    `input_schema` alike); the client's tool objects are never edited."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return
    out: list[Any] = []
    changed = False
    for tool in tools:
        new = tool
        if isinstance(tool, dict):
            fn = tool.get("function")
            if isinstance(fn, dict) and (params := typed_schema(fn.get("parameters"))) is not fn.get("parameters"):
                new = {**tool, "function": {**fn, "parameters": params}}
            elif (schema := typed_schema(tool.get("input_schema"))) is not tool.get("input_schema"):
                new = {**tool, "input_schema": schema}
        changed = changed or new is not tool
        out.append(new)
    if changed:
        body["tools"] = out


SPEC = ProviderSpec(
    id="moonshot",
    title="Moonshot",
    dialect="openai",
    base_url="https://api.moonshot.ai/v1",
    regions={"global": "https://api.moonshot.ai/v1", "cn": "https://api.moonshot.cn/v1"},
    key_env="MOONSHOT_API_KEY",
    models=tuple(MODELS),
    default_model="kimi-k2.6",
    # https://platform.moonshot.ai/docs/api/chat (as catalogued by models.dev, anomalyco/models.dev@f3fc692)
    model_info={
        "kimi-k2.6": ModelInfo(context_window=262_144, max_output=262_144, reasoning=True),
        "kimi-k2.5": ModelInfo(context_window=262_144, max_output=262_144, reasoning=True),
        "kimi-k2-thinking": ModelInfo(context_window=262_144, max_output=262_144, reasoning=True),
        "kimi-k2-thinking-turbo": ModelInfo(context_window=262_144, max_output=262_144, reasoning=True),
        "kimi-k2-turbo-preview": ModelInfo(context_window=262_144, max_output=262_144, reasoning=False),
        "kimi-k2-0905-preview": ModelInfo(context_window=262_144, max_output=262_144, reasoning=False),
        "kimi-k2-0711-preview": ModelInfo(context_window=131_072, max_output=16_384, reasoning=False),
    },
    capabilities=frozenset({REASONING_REPLAY}),
    hooks=MoonshotHooks(),
)
