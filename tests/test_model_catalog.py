"""The catalog's knowledge of models, and what it decides: reasoning controls go only to models that
take them (Claude Code asks for thinking on every turn; OpenAI rejects `reasoning_effort` for
gpt-4o), and Moonshot's validator gets typed tool schemas. Over HTTP with the official SDKs, plus
table tests of the schema repair."""

from __future__ import annotations

import copy
import json
from typing import Any

import anthropic
import openai
import pytest

from dragoman.providers import builtin_specs
from dragoman.providers.moonshot import typed_schema, typed_tools
from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion

HI = {"role": "user", "content": "hi"}
ANT_OK = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
).encode()
# listed models the providers' docs (as catalogued) do not describe: they keep today's behaviour
UNCATALOGUED = {("opencode", "qwen3.6-coder")}


# ---- the catalog ---------------------------------------------------------------------------------


def test_every_listed_model_of_a_builtin_is_described():
    for pid, spec in builtin_specs().items():
        # info for a model it does not list only says where that model is served (Responses-only ones)
        for model in set(spec.model_info) - set(spec.models):
            assert spec.model_info[model].dialect is not None, (pid, model)
        for model in spec.models:
            if (pid, model) in UNCATALOGUED:
                assert model not in spec.model_info
                continue
            info = spec.model_info[model]
            assert info.context_window and info.max_output and info.reasoning is not None, (pid, model)
            assert info.max_output <= info.context_window, (pid, model)


# ---- reasoning controls only where they are accepted ---------------------------------------------


def openai_at(upstream: FakeUpstream) -> dict[str, Any]:
    return {"providers": {"openai": {"base_url": upstream.url + "/v1", "api_key": "sk-openai-test"}}}


@pytest.mark.parametrize(
    ("model", "kept"),
    [("gpt-4o", False), ("gpt-4.1", False), ("o4-mini", True), ("gpt-5.1", True), ("gpt-9-unlisted", True)],
)
async def test_claude_codes_thinking_reaches_only_reasoning_openai_models(
    upstream: FakeUpstream, gateway: GatewayFactory, model: str, kept: bool
):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway(openai_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await client.messages.create(
        model=f"openai/{model}",
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 4000},
        messages=[HI],
    )
    body = upstream.last.json
    assert ("reasoning_effort" in body) is kept
    if kept:
        assert body["reasoning_effort"] == "medium"


@pytest.mark.parametrize(("model", "kept"), [("gpt-4o", False), ("o4-mini", True)])
async def test_an_openai_clients_own_effort_is_dropped_for_a_non_reasoning_model(
    upstream: FakeUpstream, gateway: GatewayFactory, model: str, kept: bool
):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway(openai_at(upstream))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    resp = await client.chat.completions.create(model=f"openai/{model}", messages=[HI], reasoning_effort="high")
    assert resp.choices[0].message.content == "ok"
    assert upstream.last.json.get("reasoning_effort") == ("high" if kept else None)


async def test_deepseek_chat_gets_no_thinking_toggle_but_v4_does(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway({"providers": {"deepseek": {"base_url": upstream.url, "api_key": "sk-ds"}}})
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    ask = {"max_tokens": 100, "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}
    await client.messages.create(model="deepseek/deepseek-chat", messages=[HI], **ask)  # type: ignore[arg-type]
    body = upstream.last.json
    assert "thinking" not in body and "reasoning_effort" not in body
    await client.messages.create(model="deepseek/deepseek-v4-pro", messages=[HI], **ask)  # type: ignore[arg-type]
    body = upstream.last.json
    assert body["thinking"] == {"type": "enabled"} and body["reasoning_effort"] == "high"


# ---- Moonshot's typed tool schemas ---------------------------------------------------------------

SCHEMAS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("bare string enum", {"enum": ["a", "b"]}, {"type": "string", "enum": ["a", "b"]}),
    ("integers", {"enum": [1, 2]}, {"type": "integer", "enum": [1, 2]}),
    ("integers and floats", {"enum": [1, 2.5]}, {"type": "number", "enum": [1, 2.5]}),
    ("a boolean const", {"const": True}, {"type": "boolean", "const": True}),
    ("a null const", {"const": None, "description": "d"}, {"type": "null", "const": None, "description": "d"}),
    (
        "mixed values: one branch per type",
        {"enum": ["a", 1, None], "description": "d"},
        {
            "description": "d",
            "anyOf": [
                {"type": "string", "enum": ["a"]},
                {"type": "integer", "enum": [1]},
                {"type": "null", "enum": [None]},
            ],
        },
    ),
    (
        "every depth",
        {
            "type": "object",
            "properties": {
                "mode": {"enum": ["fast", "slow"]},
                "tags": {"type": "array", "items": {"enum": ["x"]}},
                "either": {"anyOf": [{"const": 3}, {"type": "string"}]},
                "ref": {"$ref": "#/$defs/level"},
                "extra": {"type": "object", "additionalProperties": {"enum": [True, False]}},
            },
            "$defs": {"level": {"enum": ["low", "high"]}},
        },
        {
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["x"]}},
                "either": {"anyOf": [{"type": "integer", "const": 3}, {"type": "string"}]},
                "ref": {"$ref": "#/$defs/level"},
                "extra": {"type": "object", "additionalProperties": {"type": "boolean", "enum": [True, False]}},
            },
            "$defs": {"level": {"type": "string", "enum": ["low", "high"]}},
        },
    ),
    ("typed already", {"type": "string", "enum": ["a"]}, {"type": "string", "enum": ["a"]}),
    ("nothing to go on", {"description": "anything"}, {"description": "anything"}),
]


@pytest.mark.parametrize(("schema", "expected"), [s[1:] for s in SCHEMAS], ids=[s[0] for s in SCHEMAS])
def test_typed_schema(schema: dict[str, Any], expected: dict[str, Any]):
    before = copy.deepcopy(schema)
    assert typed_schema(schema) == expected
    assert schema == before  # never edited in place


def test_an_untouched_schema_is_the_same_object_and_the_clients_tools_stay_whole():
    fine = {"type": "object", "properties": {"x": {"type": "string"}}}
    assert typed_schema(fine) is fine
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": fine}},
        {
            "type": "function",
            "function": {"name": "b", "parameters": {"type": "object", "properties": {"m": {"enum": [1]}}}},
        },
    ]
    body = {"tools": tools}
    snapshot = copy.deepcopy(tools)
    typed_tools(body)
    assert tools == snapshot and body["tools"] is not tools  # a new list; the client's objects as they were
    assert body["tools"][0] is tools[0]  # unchanged tools are shared, not copied
    assert body["tools"][1]["function"]["parameters"]["properties"]["m"] == {"type": "integer", "enum": [1]}


LOOSE = {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}}}
TYPED = {"type": "object", "properties": {"unit": {"type": "string", "enum": ["c", "f"]}, "days": {"type": "integer"}}}


async def test_moonshot_gets_typed_schemas_from_both_clients(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway({"providers": {"moonshot": {"base_url": upstream.url + "/v1", "api_key": "sk-moon"}}})
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    await oai.chat.completions.create(
        model="moonshot/kimi-k2.6",
        messages=[HI],
        tools=[{"type": "function", "function": {"name": "weather", "parameters": LOOSE}}],
    )
    assert upstream.last.json["tools"][0]["function"]["parameters"] == TYPED
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await ant.messages.create(
        model="moonshot/kimi-k2.6", max_tokens=10, messages=[HI], tools=[{"name": "weather", "input_schema": LOOSE}]
    )
    assert upstream.last.json["tools"][0]["function"]["parameters"] == TYPED


async def test_kimi_for_coding_gets_typed_input_schemas(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=ANT_OK)
    gw = await gateway({"providers": {"kimi": {"base_url": upstream.url, "api_key": "sk-kimi"}}})
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await ant.messages.create(
        model="kimi/kimi-for-coding", max_tokens=10, messages=[HI], tools=[{"name": "weather", "input_schema": LOOSE}]
    )
    assert upstream.last.json["tools"][0]["input_schema"] == TYPED
