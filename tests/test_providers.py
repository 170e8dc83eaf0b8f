"""Every built-in provider over real loopback HTTP: each built-in is pointed at the fake upstream by
config (a `base_url` override replaces its default), the official SDKs talk to the gateway, and each
test asserts what the upstream received (path, headers, body) and what the client got back. Each
provider quirk has a test that fails without it. Recorded provider streams are used where one exists;
where none does (Moonshot direct, MiniMax and Kimi For Coding's Anthropic surfaces) the streams follow
the shapes documented in shared/docs/wire-formats.md section 4, or reuse a real Anthropic recording.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import ClientSession

from dragoman.config import ConfigError
from dragoman.providers import BUILTIN_MODULES, catalog
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway, Seen
from tests.recorded import cassette, raw

# ---- recorded traffic ---------------------------------------------------------------------------

STUBS = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/"
FANTASY = "charmbracelet__fantasy/providertests/testdata/"
DEEPSEEK_TOOLS_STREAM = STUBS + "deepseek_tools_streaming.txt"
DEEPSEEK_TOOLS_JSON = STUBS + "deepseek_tools_no_streaming.txt"
OLLAMA_TOOLS_STREAM = STUBS + "ollama_tools_streaming.txt"
OLLAMA_TOOLS_JSON = STUBS + "ollama_tools_no_streaming.txt"
OPENROUTER_KIMI_TOOLS = FANTASY + "TestOpenRouterCommon/kimi/tool_streaming.yaml"
AVIAN_KIMI_THINKING = FANTASY + "TestOpenAICompatibleThinking/avian-kimi/thinking-streaming.yaml"
ANTHROPIC_THINKING = FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking-streaming.yaml"
PYDANTIC = "pydantic__pydantic-ai/tests/models/cassettes/"
OPENROUTER_STREAM_ERROR = PYDANTIC + "test_openrouter/test_openrouter_stream_error.yaml"

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
USER = {"role": "user", "content": "What's the weather in Florence, Italy?"}
OAI_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Get weather information for a location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}
ANT_TOOL = {
    "name": "weather",
    "description": "Get weather information for a location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def sse_lines(relpath: str) -> list[bytes]:
    """A codecompanion stub as SSE events: its recordings have no blank line between events."""
    return [line + b"\n\n" for line in raw(relpath).splitlines() if line.strip()]


def sse_data(body: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of an SSE body."""
    return [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: {")]


def anthropic_thinking_turn() -> tuple[bytes, dict[str, Any]]:
    """Claude's real thinking + tool_use stream and the assistant turn a client replayed after it."""
    first, second = cassette(ANTHROPIC_THINKING)[:2]
    assert second.request is not None
    return first.body, second.request["messages"][1]


# ---- wire builders ------------------------------------------------------------------------------


def oai_chunks(*chunks: dict[str, Any], done: bool = True) -> list[bytes]:
    out = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    return [*out, b"data: [DONE]\n\n"] if done else out


def oai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    choice.update(extra.pop("choice", {}))
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
        **extra,
    }


def oai_completion(message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
    ).encode()


OAI_OK = oai_completion({"content": "ok"})


def ant_events(*events: dict[str, Any]) -> list[bytes]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def ant_message(content: list[dict[str, Any]], stop: str = "end_turn", model: str = "m") -> bytes:
    return json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 2},
        }
    ).encode()


ANT_OK = ant_message([{"type": "text", "text": "ok"}])


def config(pid: str, upstream: FakeUpstream, path: str = "", key: str | None = "sk-test-key", **table: Any) -> dict:
    """A gateway config with the built-in `pid` pointed at the fake upstream, one attempt per request
    (these tests are about what one provider answer becomes)."""
    entry: dict[str, Any] = {"base_url": upstream.url + path, **table}
    if key is not None:
        entry["api_key"] = key
    return {"server": {"retries": 0}, "providers": {pid: entry}}


def oai(gw: RunningGateway, retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.openai_url, api_key="client-key", max_retries=retries)


def ant(gw: RunningGateway, retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="client-key", max_retries=retries)


def headers(seen: Seen) -> dict[str, str]:
    return {k.lower(): v for k, v in seen.headers.items()}


async def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with ClientSession() as s, s.post(url, json=body) as r:
        return r.status, await r.read()


async def collect(stream: Any) -> dict[str, Any]:
    """An OpenAI SDK stream folded: reasoning, content, tool calls by index, finish, usage."""
    out: dict[str, Any] = {"reasoning": "", "content": "", "calls": {}, "finish": None, "usage": None}
    async for chunk in stream:
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            out["reasoning"] += (delta.model_extra or {}).get("reasoning_content") or ""
            out["content"] += delta.content or ""
            for call in delta.tool_calls or []:
                entry = out["calls"].setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                if call.id:
                    entry["id"] = call.id
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
            out["finish"] = choice.finish_reason or out["finish"]
    return out


def tool_history(call_id: str, *, arguments: str = '{"location": "Florence"}', content: Any = None) -> list[dict]:
    """An OpenAI client's history after a tool call, without the reasoning (clients drop it)."""
    call = {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": arguments}}
    return [
        USER,
        {"role": "assistant", "content": content, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "40 C"},
    ]


def assistant_turns(seen: Seen) -> list[dict[str, Any]]:
    return [m for m in seen.json["messages"] if m["role"] == "assistant"]


# ==== kimi =======================================================================================


async def test_kimi_anthropic_surface_sends_user_agent_bearer_and_version(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.reply(Reply(body=ANT_OK))
    gw = await gateway(config("kimi", upstream, "/coding", key="sk-kimi-test"))
    msg = await ant(gw).messages.create(model="kimi/kimi-for-coding", max_tokens=100, messages=[USER])
    assert msg.content[0].text == "ok"  # type: ignore[union-attr]
    seen = upstream.last
    assert seen.path == "/coding/v1/messages"
    h = headers(seen)
    assert h["user-agent"] == "claude-code/0.1.0"  # the service admits known coding agents only
    assert h["authorization"] == "Bearer sk-kimi-test" and "x-api-key" not in h
    assert h["anthropic-version"] == "2023-06-01"
    assert seen.json["model"] == "kimi-for-coding" and seen.json["max_tokens"] == 100


@pytest.mark.parametrize("model", ["kimi/kimi-code", "kimi/k2p5", "kimi/"])
async def test_kimi_legacy_aliases_and_empty_name_go_out_as_kimi_for_coding(
    upstream: FakeUpstream, gateway: GatewayFactory, model: str
):
    upstream.reply(Reply(body=ANT_OK))
    gw = await gateway(config("kimi", upstream, "/coding"))
    await ant(gw).messages.create(model=model, max_tokens=10, messages=[USER])
    assert upstream.last.json["model"] == "kimi-for-coding"


async def test_kimi_max_tokens_defaults_to_8192_only_when_the_client_gives_none(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = Reply(body=ANT_OK)
    gw = await gateway(config("kimi", upstream, "/coding"))
    # translated: an OpenAI client without max_tokens (the Anthropic codec alone would say 4096)
    resp = await oai(gw).chat.completions.create(model="kimi/kimi-for-coding", messages=[USER])
    assert resp.choices[0].message.content == "ok"
    assert upstream.last.json["max_tokens"] == 8192
    # same dialect: an Anthropic body without max_tokens
    status, _ = await post(gw.url + "/v1/messages", {"model": "kimi/kimi-for-coding", "messages": [USER]})
    assert status == 200 and upstream.last.json["max_tokens"] == 8192
    # the client's own value wins
    await oai(gw).chat.completions.create(model="kimi/kimi-for-coding", messages=[USER], max_tokens=300)
    assert upstream.last.json["max_tokens"] == 300


async def test_kimi_user_agent_is_configurable(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=ANT_OK))
    gw = await gateway(config("kimi", upstream, "/coding", user_agent="KimiCLI/1.6"))
    await ant(gw).messages.create(model="kimi/kimi-for-coding", max_tokens=10, messages=[USER])
    assert headers(upstream.last)["user-agent"] == "KimiCLI/1.6"


KIMI_403 = json.dumps(
    {
        "error": {
            "message": "Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, "
            "Roo Code, Kilo Code, etc.",
            "type": "access_terminated_error",
        }
    }
).encode()


async def test_kimi_403_access_terminated_is_explained(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(status=403, body=KIMI_403)
    gw = await gateway(config("kimi", upstream, "/coding", user_agent="my-editor/2.0"))
    with pytest.raises(anthropic.PermissionDeniedError) as e1:
        await ant(gw).messages.create(model="kimi/kimi-for-coding", max_tokens=10, messages=[USER])
    with pytest.raises(openai.PermissionDeniedError) as e2:
        await oai(gw).chat.completions.create(model="kimi/kimi-for-coding", messages=[USER])
    for message in (e1.value.body["error"]["message"], e2.value.body["message"]):  # type: ignore[index]
        assert "access_terminated_error" in message
        assert "'my-editor/2.0'" in message  # what was sent
        assert "providers.kimi.user_agent" in message and "claude-code/0.1.0" in message  # how to fix it
        assert "only available for Coding Agents" in message  # the upstream's own words
    assert e1.value.body["error"]["type"] == "permission_error"  # type: ignore[index]


async def test_kimi_thinking_is_replayed_for_an_openai_client_that_dropped_it(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    stream, replayed_turn = anthropic_thinking_turn()
    upstream.reply(Reply(body=[stream], content_type=SSE), Reply(body=ANT_OK))
    gw = await gateway(config("kimi", upstream, "/coding"))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="kimi/kimi-for-coding", messages=[USER], tools=[OAI_TOOL], stream=True
        )
    )
    thinking, tool_use = replayed_turn["content"]
    assert got["reasoning"] == thinking["thinking"]
    assert got["calls"][0]["id"] == tool_use["id"] and got["finish"] == "tool_calls"

    # turn 2: the OpenAI client sends its history back without any reasoning
    history = tool_history(tool_use["id"], arguments=got["calls"][0]["arguments"])
    await oai(gw).chat.completions.create(model="kimi/kimi-for-coding", messages=history, tools=[OAI_TOOL])
    sent = assistant_turns(upstream.last)[0]["content"]
    # exactly the blocks a real client replayed to Claude after the same stream: signed thinking first
    assert sent == replayed_turn["content"]


async def test_kimi_thinking_in_an_anthropic_history_goes_upstream_exactly(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    _, replayed_turn = anthropic_thinking_turn()
    unsigned = {"type": "thinking", "thinking": "  spaced\n reasoning  "}  # Kimi may mint unsigned thinking
    turn = {"role": "assistant", "content": [unsigned, *replayed_turn["content"]]}
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": replayed_turn["content"][1]["id"], "content": "40 C"}],
    }
    upstream.reply(Reply(body=ANT_OK))
    gw = await gateway(config("kimi", upstream, "/coding"))
    await ant(gw).messages.create(
        model="kimi/kimi-for-coding",
        max_tokens=2000,
        messages=[USER, turn, result],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert upstream.last.json["messages"][1] == turn


async def test_kimi_tool_turn_without_thinking_gets_an_empty_block_only_with_thinking_on(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    turn = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "tool_unknown", "name": "weather", "input": {"location": "Florence"}}],
    }
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tool_unknown", "content": "40 C"}]}
    upstream.default = Reply(body=ANT_OK)
    gw = await gateway(config("kimi", upstream, "/coding"))
    await ant(gw).messages.create(
        model="kimi/kimi-for-coding",
        max_tokens=2000,
        messages=[USER, turn, result],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert upstream.last.json["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "", "signature": ""},
        *turn["content"],
    ]
    await ant(gw).messages.create(model="kimi/kimi-for-coding", max_tokens=2000, messages=[USER, turn, result])
    assert upstream.last.json["messages"][1] == turn
    # an OpenAI client asking for reasoning gets the same empty block
    await oai(gw).chat.completions.create(
        model="kimi/kimi-for-coding", messages=tool_history("tool_unknown"), reasoning_effort="high"
    )
    assert assistant_turns(upstream.last)[0]["content"][0] == {"type": "thinking", "thinking": "", "signature": ""}


async def test_kimi_openai_surface_option(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=OAI_OK)
    gw = await gateway(config("kimi", upstream, "/coding", key="sk-kimi-test", surface="openai"))
    resp = await oai(gw).chat.completions.create(
        model="kimi/k2p5", messages=tool_history("functions.weather:0", content=""), tools=[OAI_TOOL]
    )
    assert resp.choices[0].message.content == "ok"
    seen = upstream.last
    assert seen.path == "/coding/v1/chat/completions"
    h = headers(seen)
    assert h["user-agent"] == "claude-code/0.1.0" and h["authorization"] == "Bearer sk-kimi-test"
    assert "anthropic-version" not in h
    assert seen.json["model"] == "kimi-for-coding"
    call_turn = assistant_turns(seen)[0]
    assert call_turn["reasoning_content"] == ""  # thinking is on by default: the field must be there
    assert "content" not in call_turn  # "text content is empty" is a 400 on this surface
    # an Anthropic client is translated to the OpenAI surface too
    await ant(gw).messages.create(model="kimi/kimi-for-coding", max_tokens=10, messages=[USER])
    assert upstream.last.path == "/coding/v1/chat/completions" and upstream.last.json["max_tokens"] == 10


# ==== moonshot ===================================================================================


async def test_moonshot_path_auth_and_default_model(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("moonshot", upstream, "/v1", key="sk-moonshot-test"))
    resp = await oai(gw).chat.completions.create(model="moonshot/", messages=[USER])
    assert resp.choices[0].message.content == "ok"
    seen = upstream.last
    assert seen.path == "/v1/chat/completions"
    assert headers(seen)["authorization"] == "Bearer sk-moonshot-test"
    assert seen.json["model"] == "kimi-k2.6"


async def moonshot_turn_one(upstream: FakeUpstream, gw: RunningGateway) -> tuple[dict[str, Any], str]:
    """Kimi K2.5's real thinking + tool-call stream; returns what the client saw and the real replay."""
    first, second = cassette(AVIAN_KIMI_THINKING)[:2]
    assert second.request is not None
    upstream.reply(Reply(body=[first.body], content_type=SSE))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="moonshot/kimi-k2.5", messages=[USER], tools=[OAI_TOOL], stream=True
        )
    )
    return got, second.request["messages"][2]["reasoning_content"]


async def test_moonshot_reasoning_round_trip_reattaches_the_remembered_reasoning(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    gw = await gateway(config("moonshot", upstream, "/v1"))
    got, recorded_replay = await moonshot_turn_one(upstream, gw)
    assert got["reasoning"] == recorded_replay  # the client saw the reasoning stream
    assert got["calls"][0]["id"] == "functions.weather:0" and got["finish"] == "tool_calls"

    upstream.reply(Reply(body=OAI_OK))
    history = tool_history("functions.weather:0", arguments=got["calls"][0]["arguments"])
    await oai(gw).chat.completions.create(model="moonshot/kimi-k2.5", messages=history, tools=[OAI_TOOL])
    # the real reasoning, exactly what a client that kept it replayed in the recording
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == recorded_replay


async def test_moonshot_unknown_tool_id_gets_empty_reasoning_only_with_thinking_on(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = Reply(body=OAI_OK)
    gw = await gateway(config("moonshot", upstream, "/v1"))
    await moonshot_turn_one(upstream, gw)
    history = tool_history("functions.weather:7")  # nothing remembered for this id
    await oai(gw).chat.completions.create(model="moonshot/kimi-k2.6", messages=history)
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == ""
    await oai(gw).chat.completions.create(
        model="moonshot/kimi-k2.6", messages=history, extra_body={"thinking": {"type": "disabled"}}
    )
    assert "reasoning_content" not in assistant_turns(upstream.last)[0]
    await oai(gw).chat.completions.create(model="moonshot/kimi-k2.6", messages=history, reasoning_effort="none")
    assert "reasoning_content" not in assistant_turns(upstream.last)[0]
    await oai(gw).chat.completions.create(model="moonshot/kimi-k2-turbo-preview", messages=history)
    assert "reasoning_content" not in assistant_turns(upstream.last)[0]  # a model that never thinks


async def test_moonshot_never_overwrites_reasoning_the_client_sent(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=OAI_OK)
    gw = await gateway(config("moonshot", upstream, "/v1"))
    await moonshot_turn_one(upstream, gw)
    history = tool_history("functions.weather:0")
    history[1]["reasoning_content"] = "the client's own"
    await oai(gw).chat.completions.create(model="moonshot/kimi-k2.5", messages=history)
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == "the client's own"


SAMPLING = {"temperature": 0.2, "top_p": 0.5, "n": 1, "presence_penalty": 0.5, "frequency_penalty": 0.5}


@pytest.mark.parametrize("model", ["kimi-k2.6", "kimi-k2.5"])
async def test_moonshot_k2_5_and_k2_6_drop_the_sampling_they_fix(
    upstream: FakeUpstream, gateway: GatewayFactory, model: str
):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    await oai(gw).chat.completions.create(model=f"moonshot/{model}", messages=[USER], seed=3, **SAMPLING)
    body = upstream.last.json
    assert not set(SAMPLING) & set(body)
    assert body["seed"] == 3  # others untouched


@pytest.mark.parametrize("model", ["kimi-k2-thinking", "kimi-k2-thinking-turbo"])
async def test_moonshot_thinking_models_pin_temperature_and_top_p(
    upstream: FakeUpstream, gateway: GatewayFactory, model: str
):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    await oai(gw).chat.completions.create(
        model=f"moonshot/{model}",
        messages=tool_history("functions.weather:3"),
        temperature=0.2,
        top_p=0.5,
        reasoning_effort="none",
    )
    body = upstream.last.json
    assert body["temperature"] == 1.0 and body["top_p"] == 0.95
    assert "thinking" not in body and "reasoning_effort" not in body  # these always think: no toggle
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == ""


async def test_moonshot_older_models_keep_the_clients_sampling(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    await oai(gw).chat.completions.create(model="moonshot/kimi-k2-0905-preview", messages=[USER], **SAMPLING)
    body = upstream.last.json
    assert {k: body[k] for k in SAMPLING} == SAMPLING and "thinking" not in body


@pytest.mark.parametrize(
    ("front", "asked", "sent"),
    [
        ("anthropic", {"thinking": {"type": "disabled"}}, {"type": "disabled"}),
        ("anthropic", {"thinking": {"type": "enabled", "budget_tokens": 2048}}, {"type": "enabled"}),
        ("openai", {"reasoning_effort": "none"}, {"type": "disabled"}),
        ("openai", {"reasoning_effort": "high"}, {"type": "enabled"}),
        ("openai", {}, None),  # said nothing: Moonshot's default (on) applies
        ("anthropic", {}, None),
    ],
)
async def test_moonshot_thinking_toggle_follows_the_client(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, asked: dict, sent: dict | None
):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    if front == "openai":
        await oai(gw).chat.completions.create(model="moonshot/kimi-k2.6", messages=[USER], **asked)
    else:
        await ant(gw).messages.create(model="moonshot/kimi-k2.6", max_tokens=4096, messages=[USER], **asked)
    body = upstream.last.json
    assert body.get("thinking") == sent
    assert "reasoning_effort" not in body  # Moonshot's toggle is `thinking`


@pytest.mark.parametrize(
    ("choice", "thinking", "sent"),
    [
        ("required", None, "auto"),
        ({"type": "function", "function": {"name": "weather"}}, None, "auto"),
        ("none", None, "none"),
        ("required", {"type": "disabled"}, "required"),
    ],
)
async def test_moonshot_tool_choice_is_auto_or_none_with_thinking_on(
    upstream: FakeUpstream, gateway: GatewayFactory, choice: Any, thinking: dict | None, sent: Any
):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    extra = {"thinking": thinking} if thinking else {}
    await oai(gw).chat.completions.create(
        model="moonshot/kimi-k2.6", messages=[USER], tools=[OAI_TOOL], tool_choice=choice, extra_body=extra
    )
    assert upstream.last.json["tool_choice"] == sent


async def test_moonshot_trailing_assistant_prefill_becomes_partial_mode(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "JSON please"},
        {"role": "assistant", "content": "{"},
    ]
    await ant(gw).messages.create(model="moonshot/kimi-k2.6", max_tokens=100, messages=messages)  # type: ignore[arg-type]
    sent = upstream.last.json["messages"]
    assert sent[-1] == {"role": "assistant", "content": "{", "partial": True}
    assert "partial" not in sent[1]  # only the trailing one is a prefill


MOONSHOT_USAGE_STREAM = oai_chunks(
    oai_chunk({"role": "assistant", "content": "Hel"}),
    oai_chunk(
        {"content": "lo"},
        "stop",
        choice={"usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "cached_tokens": 60}},
    ),
)


async def test_moonshot_stream_usage_in_the_choice_reaches_the_openai_sdk(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.reply(Reply(body=MOONSHOT_USAGE_STREAM, content_type=SSE))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="moonshot/kimi-k2.6", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    assert got["content"] == "Hello" and got["finish"] == "stop"
    usage = got["usage"]
    assert usage is not None, "the SDK reads usage from the top-level usage chunk only"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 20, 120)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 60


async def test_moonshot_stream_usage_reaches_an_anthropic_client(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=MOONSHOT_USAGE_STREAM, content_type=SSE))
    gw = await gateway(config("moonshot", upstream, "/v1"))
    async with ant(gw).messages.stream(model="moonshot/kimi-k2.6", max_tokens=100, messages=[USER]) as stream:
        final = await stream.get_final_message()
    assert final.usage.input_tokens == 40 and final.usage.cache_read_input_tokens == 60
    assert final.usage.output_tokens == 20
    assert upstream.last.json["stream_options"] == {"include_usage": True}


# ==== minimax ====================================================================================


async def test_minimax_path_bearer_auth_and_defaults(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=ANT_OK))
    gw = await gateway(config("minimax", upstream, "/anthropic", key="sk-cp-test"))
    resp = await oai(gw).chat.completions.create(model="minimax/", messages=[USER])
    assert resp.choices[0].message.content == "ok"
    seen = upstream.last
    assert seen.path == "/anthropic/v1/messages"
    h = headers(seen)
    assert h["authorization"] == "Bearer sk-cp-test" and "x-api-key" not in h  # x-api-key fails on the cn host
    assert h["anthropic-version"] == "2023-06-01"
    assert seen.json["model"] == "MiniMax-M2.7" and seen.json["max_tokens"] == 4096
    # same dialect: only the provider's default can fill it in
    upstream.reply(Reply(body=ANT_OK))
    status, _ = await post(gw.url + "/v1/messages", {"model": "minimax/MiniMax-M2.7", "messages": [USER]})
    assert status == 200 and upstream.last.json["max_tokens"] == 4096


async def test_minimax_assistant_content_goes_back_exactly_as_received(upstream: FakeUpstream, gateway: GatewayFactory):
    turn = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "check the weather", "signature": "mm-sig-1"},
            {"type": "text", "text": "Let me look."},
            {"type": "thinking", "thinking": "unsigned, interleaved"},
            {"type": "tool_use", "id": "call_function_1", "name": "weather", "input": {"location": "Florence"}},
        ],
    }
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_function_1", "content": "40"}]}
    later = [
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "done", "signature": ""}, {"type": "text", "text": "40 C"}],
        },
        {"role": "user", "content": "thanks"},
    ]
    upstream.reply(Reply(body=ANT_OK))
    gw = await gateway(config("minimax", upstream, "/anthropic"))
    messages = [USER, turn, result, *later]
    await ant(gw).messages.create(
        model="minimax/MiniMax-M2.7-highspeed",
        max_tokens=2000,
        messages=messages,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    # unlike Claude, MiniMax keeps its unsigned thinking in completed turns: nothing dropped or moved
    assert upstream.last.json["messages"] == messages
    assert upstream.last.json["model"] == "MiniMax-M2.7-highspeed"


def minimax_stream(*, signature: bool) -> bytes:
    """Claude's real thinking stream in MiniMax's shape: the thinking content_block_start has no
    `signature` field (and with signature=False no signature_delta follows either)."""
    stream, _ = anthropic_thinking_turn()
    events = [
        e.replace(',"signature":""', "") if '"content_block_start"' in e else e
        for e in stream.decode().split("\n\n")
        if signature or '"signature_delta"' not in e
    ]
    out = "\n\n".join(events).encode()
    assert b'"signature":""' not in out
    return out


async def test_minimax_thinking_start_without_signature_still_gives_the_client_one(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    _, replayed_turn = anthropic_thinking_turn()
    upstream.reply(Reply(body=[minimax_stream(signature=True)], content_type=SSE))
    gw = await gateway(config("minimax", upstream, "/anthropic"))
    body = {
        "model": "minimax/MiniMax-M2.7",
        "max_tokens": 2000,
        "stream": True,
        "messages": [USER],
        "tools": [ANT_TOOL],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    status, out = await post(gw.url + "/v1/messages", body)
    assert status == 200
    starts = [e["content_block"] for e in sse_data(out) if e["type"] == "content_block_start"]
    assert starts[0] == {"type": "thinking", "thinking": "", "signature": ""}
    # the SDK builds the same thinking block Claude's own stream gives, signature included
    upstream.reply(Reply(body=[minimax_stream(signature=True)], content_type=SSE))
    async with ant(gw).messages.stream(
        model="minimax/MiniMax-M2.7",
        max_tokens=2000,
        messages=[USER],
        tools=[ANT_TOOL],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as s:
        final = await s.get_final_message()
    assert final.content[0].model_dump() == replayed_turn["content"][0]
    # with no signature at all the block still carries one (empty) for strict clients
    upstream.reply(Reply(body=[minimax_stream(signature=False)], content_type=SSE))
    status, out = await post(gw.url + "/v1/messages", body)
    sigs = [e["delta"]["signature"] for e in sse_data(out) if e.get("delta", {}).get("type") == "signature_delta"]
    assert sigs == [""]


async def test_minimax_thinking_is_reattached_for_an_openai_client(upstream: FakeUpstream, gateway: GatewayFactory):
    _, replayed_turn = anthropic_thinking_turn()
    upstream.reply(Reply(body=[minimax_stream(signature=True)], content_type=SSE), Reply(body=ANT_OK))
    gw = await gateway(config("minimax", upstream, "/anthropic"))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="minimax/MiniMax-M2.7", messages=[USER], tools=[OAI_TOOL], stream=True
        )
    )
    call = got["calls"][0]
    await oai(gw).chat.completions.create(
        model="minimax/MiniMax-M2.7", tools=[OAI_TOOL], messages=tool_history(call["id"], arguments=call["arguments"])
    )
    assert assistant_turns(upstream.last)[0]["content"] == replayed_turn["content"]


BALANCE_1008 = json.dumps(
    {
        "type": "error",
        "error": {"type": "api_error", "message": "insufficient balance (1008)"},
        "request_id": "05a3f0c1",
    }
).encode()


async def test_minimax_insufficient_balance_is_a_billing_error_never_retried(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = Reply(status=500, body=BALANCE_1008)  # MiniMax says 1008 with an HTTP 500
    gw = await gateway(config("minimax", upstream, "/anthropic", key="sk-api-test"))
    with pytest.raises(anthropic.PaymentRequiredError) as e1:
        await ant(gw, retries=2).messages.create(model="minimax/MiniMax-M2.7", max_tokens=10, messages=[USER])
    assert len(upstream.seen) == 1  # the SDK would retry a 5xx twice
    assert e1.value.status_code == 402 and e1.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    assert e1.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.APIStatusError) as e2:
        await oai(gw, retries=2).chat.completions.create(model="minimax/MiniMax-M2.7-highspeed", messages=[USER])
    assert len(upstream.seen) == 2
    assert e2.value.status_code == 402 and e2.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    for message in (e1.value.body["error"]["message"], e2.value.body["message"]):  # type: ignore[index]
        assert "sk-cp-" in message and "sk-api-" in message and "insufficient balance (1008)" in message
        assert "sk-api-test" not in message  # the key itself never leaks


# ==== deepseek ===================================================================================


async def test_deepseek_recorded_reasoning_round_trip(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=sse_lines(DEEPSEEK_TOOLS_STREAM), content_type=SSE))
    gw = await gateway(config("deepseek", upstream, key="sk-deepseek-test"))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="deepseek/deepseek-v4-flash", messages=[USER], tools=[OAI_TOOL], stream=True
        )
    )
    seen = upstream.last
    assert seen.path == "/chat/completions"  # the gateway appends it to https://api.deepseek.com
    assert headers(seen)["authorization"] == "Bearer sk-deepseek-test"
    recorded = (
        "The user wants to know the weather in London and Paris. I can call the weather tool for both "
        "locations in parallel since they're independent."
    )
    assert got["reasoning"] == recorded
    ids = [got["calls"][i]["id"] for i in (0, 1)]
    assert ids == ["call_00_xzVVyar4M7TXmqAvwt5lz3v2", "call_01_FiLq2fgCjbR43jdNrxI4OYGD"]

    upstream.default = Reply(body=OAI_OK)
    calls = [
        {
            "id": got["calls"][i]["id"],
            "type": "function",
            "function": {"name": "weather", "arguments": got["calls"][i]["arguments"]},
        }
        for i in (0, 1)
    ]
    history = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": ids[0], "content": "18 C"},
        {"role": "tool", "tool_call_id": ids[1], "content": "21 C"},
    ]
    await oai(gw).chat.completions.create(model="deepseek/deepseek-v4-flash", messages=history)
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == recorded
    # a tool turn the gateway never saw: "" (a missing key is a 400 at DeepSeek)
    await oai(gw).chat.completions.create(model="deepseek/deepseek-v4-flash", messages=tool_history("call_other"))
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == ""


async def test_deepseek_prompt_cache_hit_tokens_count_as_cached(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = json.loads(raw(DEEPSEEK_TOOLS_JSON))
    del recorded["usage"]["prompt_tokens_details"]  # leave DeepSeek's own field as the only source
    upstream.reply(Reply(body=json.dumps(recorded).encode()))
    gw = await gateway(config("deepseek", upstream))
    msg = await ant(gw).messages.create(
        model="deepseek/deepseek-chat", max_tokens=100, messages=[USER], tools=[ANT_TOOL]
    )  # type: ignore[list-item]
    assert [b.type for b in msg.content] == ["tool_use", "tool_use"] and msg.stop_reason == "tool_use"
    assert msg.content[1].input == {"location": "Paris", "units": "celsius"}  # type: ignore[union-attr]
    assert msg.usage.cache_read_input_tokens == 384 and msg.usage.input_tokens == 180
    assert msg.usage.output_tokens == 49


async def test_deepseek_recorded_stream_usage_for_an_anthropic_client(upstream: FakeUpstream, gateway: GatewayFactory):
    lines = sse_lines(DEEPSEEK_TOOLS_STREAM)
    last = json.loads(lines[-2][6:])
    del last["usage"]["prompt_tokens_details"]
    lines[-2] = b"data: " + json.dumps(last).encode() + b"\n\n"
    upstream.reply(Reply(body=lines, content_type=SSE))
    gw = await gateway(config("deepseek", upstream))
    async with ant(gw).messages.stream(
        model="deepseek/deepseek-v4-flash", max_tokens=1000, messages=[USER], tools=[ANT_TOOL]
    ) as stream:  # type: ignore[list-item]
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use", "tool_use"]
    assert final.usage.cache_read_input_tokens == 1024 and final.usage.input_tokens == 342


async def test_deepseek_drops_logprobs_in_thinking_mode_only(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=OAI_OK)
    gw = await gateway(config("deepseek", upstream))
    await oai(gw).chat.completions.create(
        model="deepseek/deepseek-v4-pro", messages=[USER], logprobs=True, top_logprobs=3
    )
    assert "logprobs" not in upstream.last.json and "top_logprobs" not in upstream.last.json
    await oai(gw).chat.completions.create(
        model="deepseek/deepseek-v4-pro",
        messages=[USER],
        logprobs=True,
        top_logprobs=3,
        extra_body={"thinking": {"type": "disabled"}},
    )
    assert upstream.last.json["logprobs"] is True and upstream.last.json["top_logprobs"] == 3


@pytest.mark.parametrize(
    ("asked", "thinking", "effort"),
    [
        ({"reasoning_effort": "low"}, {"type": "enabled"}, "high"),
        ({"reasoning_effort": "medium"}, {"type": "enabled"}, "high"),
        ({"reasoning_effort": "xhigh"}, {"type": "enabled"}, "max"),
        ({"reasoning_effort": "none"}, {"type": "disabled"}, None),
        ({"extra_body": {"thinking": {"type": "disabled"}, "reasoning_effort": "high"}}, {"type": "disabled"}, None),
    ],
)
async def test_deepseek_thinking_and_effort_from_the_client(
    upstream: FakeUpstream, gateway: GatewayFactory, asked: dict, thinking: dict, effort: str | None
):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("deepseek", upstream))
    await oai(gw).chat.completions.create(model="deepseek/deepseek-v4-pro", messages=[USER], **asked)
    body = upstream.last.json
    assert body["thinking"] == thinking and body.get("reasoning_effort") == effort


# ==== openrouter =================================================================================


async def test_openrouter_attribution_headers_default_and_configured(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=OAI_OK)
    gw = await gateway(config("openrouter", upstream, "/api/v1", key="sk-or-test"))
    await oai(gw).chat.completions.create(model="openrouter/moonshotai/kimi-k2.5", messages=[USER])
    seen = upstream.last
    assert seen.path == "/api/v1/chat/completions" and seen.json["model"] == "moonshotai/kimi-k2.5"
    h = headers(seen)
    assert h["authorization"] == "Bearer sk-or-test"
    assert h["http-referer"] == "https://github.com/dragoman-gateway/dragoman" and h["x-title"] == "Dragoman"
    gw2 = await gateway(
        config("openrouter", upstream, "/api/v1", http_referer="https://example.org/app", x_title="My App")
    )
    await oai(gw2).chat.completions.create(model="openrouter/moonshotai/kimi-k2.5", messages=[USER])
    h = headers(upstream.last)
    assert h["http-referer"] == "https://example.org/app" and h["x-title"] == "My App"


async def test_openrouter_recorded_stream_with_comment_lines_reaches_both_clients(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    first = cassette(OPENROUTER_KIMI_TOOLS)[0]
    assert first.body.startswith(b": OPENROUTER PROCESSING")
    upstream.default = Reply(body=[first.body], content_type=SSE)
    gw = await gateway(config("openrouter", upstream, "/api/v1"))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="openrouter/moonshotai/kimi-k2.5", messages=[USER], tools=[OAI_TOOL], stream=True
        )
    )
    assert got["calls"][0]["id"] == "functions.weather:0" and got["finish"] == "tool_calls"
    assert json.loads(got["calls"][0]["arguments"]) == {"location": "Florence,Italy"}
    # translated for an Anthropic client: the comments are the gateway's to skip
    async with ant(gw).messages.stream(
        model="openrouter/moonshotai/kimi-k2.5", max_tokens=4000, messages=[USER], tools=[ANT_TOOL]
    ) as stream:  # type: ignore[list-item]
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    assert final.content[0].thinking.startswith(" The user is asking")  # type: ignore[union-attr]
    assert final.content[1].input == {"location": "Florence,Italy"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 87


async def test_openrouter_client_reasoning_details_go_back_unchanged(upstream: FakeUpstream, gateway: GatewayFactory):
    second = cassette(OPENROUTER_KIMI_TOOLS)[1]
    assert second.request is not None
    upstream.reply(Reply(body=[second.body], content_type=SSE))
    gw = await gateway(config("openrouter", upstream, "/api/v1"))
    recorded = second.request["messages"]  # the real replay request, reasoning_details included
    got = await collect(
        await oai(gw).chat.completions.create(
            model="openrouter/moonshotai/kimi-k2.5", messages=recorded, tools=[OAI_TOOL], stream=True
        )
    )
    assert "40" in got["content"]
    assert upstream.last.json["messages"] == recorded


def merged_details(body: bytes) -> list[dict[str, Any]]:
    """reasoning_details fragments of a recorded stream, folded by index as a client replays them."""
    merged: dict[int, dict[str, Any]] = {}
    for chunk in sse_data(body):
        for choice in chunk.get("choices") or []:
            for frag in choice["delta"].get("reasoning_details") or []:
                entry = merged.setdefault(frag["index"], dict(frag, text=""))
                entry["text"] += frag.get("text") or ""
    return list(merged.values())


async def test_openrouter_remembered_reasoning_details_are_reattached(upstream: FakeUpstream, gateway: GatewayFactory):
    first = cassette(OPENROUTER_KIMI_TOOLS)[0]
    upstream.reply(Reply(body=[first.body], content_type=SSE), Reply(body=OAI_OK))
    gw = await gateway(config("openrouter", upstream, "/api/v1"))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="openrouter/moonshotai/kimi-k2.5", messages=[USER], tools=[OAI_TOOL], stream=True
        )
    )
    call = got["calls"][0]
    await oai(gw).chat.completions.create(
        model="openrouter/moonshotai/kimi-k2.5",
        tools=[OAI_TOOL],
        messages=tool_history(call["id"], arguments=call["arguments"]),
    )
    assert assistant_turns(upstream.last)[0].get("reasoning_details") == merged_details(first.body)


async def test_openrouter_error_chunk_inside_a_200_stream_reaches_the_client(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    recorded = cassette(OPENROUTER_STREAM_ERROR)[0]
    upstream.default = Reply(body=[recorded.body], content_type=SSE)
    gw = await gateway(config("openrouter", upstream, "/api/v1"))
    stream = await oai(gw).chat.completions.create(
        model="openrouter/minimax/minimax-m2:free", messages=[USER], max_completion_tokens=10, stream=True
    )
    with pytest.raises(openai.APIError) as e1:
        async for _ in stream:
            pass
    assert e1.value.message == "Token limit reached"
    status, out = await post(
        gw.url + "/v1/messages",
        {"model": "openrouter/minimax/minimax-m2:free", "max_tokens": 10, "stream": True, "messages": [USER]},
    )
    events = sse_data(out)
    assert status == 200 and events[-1]["type"] == "error"
    assert events[-1]["error"]["message"] == "Token limit reached"
    assert not any(e["type"] == "message_stop" for e in events)


@pytest.mark.parametrize(
    ("front", "asked", "reasoning"),
    [
        ("anthropic", {"thinking": {"type": "enabled", "budget_tokens": 2000}}, {"max_tokens": 2000}),
        (
            "anthropic",
            {
                "thinking": {"type": "enabled", "budget_tokens": 2000},
                "extra_body": {"output_config": {"effort": "high"}},
            },
            {"effort": "high"},
        ),
        ("anthropic", {"thinking": {"type": "disabled"}}, {"enabled": False}),
        ("openai", {"reasoning_effort": "low"}, {"effort": "low"}),
        (
            "openai",
            {"extra_body": {"reasoning": {"max_tokens": 512, "exclude": True}}},
            {"max_tokens": 512, "exclude": True},
        ),  # the client's own object is left alone
        ("openai", {}, None),
    ],
)
async def test_openrouter_reasoning_is_an_effort_or_a_budget_never_both(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, asked: dict, reasoning: dict | None
):
    upstream.reply(Reply(body=OAI_OK))
    gw = await gateway(config("openrouter", upstream, "/api/v1"))
    if front == "openai":
        await oai(gw).chat.completions.create(model="openrouter/deepseek/deepseek-v4", messages=[USER], **asked)
    else:
        await ant(gw).messages.create(
            model="openrouter/deepseek/deepseek-v4", max_tokens=8000, messages=[USER], **asked
        )
    body = upstream.last.json
    assert body.get("reasoning") == reasoning
    assert "reasoning_effort" not in body


# ==== opencode ===================================================================================


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("kimi-k2.6", "/zen/v1/chat/completions"),
        ("minimax-m2.7", "/zen/v1/chat/completions"),
        ("glm-4.7", "/zen/v1/chat/completions"),
        ("deepseek-v4-pro", "/zen/v1/chat/completions"),
        ("claude-sonnet-4-6", "/zen/v1/messages"),
        ("qwen3.6-coder", "/zen/v1/messages"),
    ],
)
async def test_opencode_speaks_each_model_familys_format(
    upstream: FakeUpstream, gateway: GatewayFactory, model: str, path: str
):
    upstream.default = lambda seen: Reply(body=ANT_OK if seen.path.endswith("/messages") else OAI_OK)
    gw = await gateway(config("opencode", upstream, "/zen/v1", key="sk-zen-test"))
    resp = await oai(gw).chat.completions.create(model=f"opencode/{model}", messages=[USER])
    msg = await ant(gw).messages.create(model=f"opencode/{model}", max_tokens=10, messages=[USER])
    assert resp.choices[0].message.content == "ok" and msg.content[0].text == "ok"  # type: ignore[union-attr]
    assert [s.path for s in upstream.seen] == [path, path]
    for seen in upstream.seen:
        assert seen.json["model"] == model
        assert headers(seen)["authorization"] == "Bearer sk-zen-test"
        assert ("anthropic-version" in headers(seen)) == path.endswith("/messages")


async def test_opencode_formats_option_overrides_the_family_table(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=ANT_OK if seen.path.endswith("/messages") else OAI_OK)
    gw = await gateway(
        config("opencode", upstream, "/zen/v1", formats={"gpt-5.1-chat": "openai", "minimax-m2.7": "anthropic"})
    )
    await oai(gw).chat.completions.create(model="opencode/gpt-5.1-chat", messages=[USER])
    await oai(gw).chat.completions.create(model="opencode/minimax-m2.7", messages=[USER])
    assert [s.path for s in upstream.seen] == ["/zen/v1/chat/completions", "/zen/v1/messages"]


ZEN_LIMIT = {"type": "error", "error": {"type": "GoUsageLimitError", "message": "Weekly usage limit reached"}}


async def test_opencode_anthropic_error_envelope_on_the_openai_endpoint(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.reply(Reply(status=429, body=json.dumps(ZEN_LIMIT).encode(), headers={"retry-after": "30"}))
    gw = await gateway(config("opencode", upstream, "/zen/v1"))
    with pytest.raises(openai.RateLimitError) as e1:
        await oai(gw).chat.completions.create(model="opencode/kimi-k2.6", messages=[USER])
    assert upstream.last.path == "/zen/v1/chat/completions"
    assert e1.value.body["message"] == "Weekly usage limit reached"  # type: ignore[index]
    assert e1.value.response.headers["retry-after"] == "30"
    # the same envelope inside a 200 stream, translated for an Anthropic client
    upstream.reply(Reply(body=[b"data: " + json.dumps(ZEN_LIMIT).encode() + b"\n\n"], content_type=SSE))
    status, out = await post(
        gw.url + "/v1/messages", {"model": "opencode/kimi-k2.6", "max_tokens": 10, "stream": True, "messages": [USER]}
    )
    assert status == 200 and sse_data(out)[-1]["error"]["message"] == "Weekly usage limit reached"


# ==== ollama =====================================================================================


async def test_ollama_recorded_native_tool_stream_for_an_openai_client(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=[raw(OLLAMA_TOOLS_STREAM)], content_type=NDJSON))
    gw = await gateway(config("ollama", upstream, key=None))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="ollama/llama3.1",
            messages=[USER],
            tools=[OAI_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    seen = upstream.last
    assert seen.path == "/api/chat" and "authorization" not in headers(seen)
    assert seen.json["model"] == "llama3.1" and seen.json["stream"] is True
    assert seen.json["think"] is False  # the client said nothing: small local models answer directly
    args = [json.loads(got["calls"][i]["arguments"]) for i in (0, 1)]
    assert args == [{"location": "London, UK", "units": "celsius"}, {"location": "Paris, FR", "units": "fahrenheit"}]
    assert got["finish"] == "tool_calls"  # done_reason stays "stop" after tool calls
    assert (got["usage"].prompt_tokens, got["usage"].completion_tokens) == (577, 90)


async def test_ollama_recorded_reply_for_an_anthropic_client(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=raw(OLLAMA_TOOLS_JSON)))
    gw = await gateway(config("ollama", upstream, key=None))
    msg = await ant(gw).messages.create(model="ollama/llama3.1", max_tokens=100, messages=[USER], tools=[ANT_TOOL])  # type: ignore[list-item]
    assert [b.input for b in msg.content] == [  # type: ignore[union-attr]
        {"location": "London, UK", "units": "celsius"},
        {"location": "Paris, FR", "units": "fahrenheit"},
    ]
    assert msg.stop_reason == "tool_use" and (msg.usage.input_tokens, msg.usage.output_tokens) == (577, 90)
    body = upstream.last.json
    assert body["stream"] is False and body["options"]["num_predict"] == 100
    assert body["tools"][0]["function"]["parameters"] == ANT_TOOL["input_schema"]


@pytest.mark.parametrize(
    ("front", "asked", "think"),
    [
        ("openai", {"reasoning_effort": "high"}, "high"),
        ("openai", {"reasoning_effort": "none"}, False),
        ("anthropic", {"thinking": {"type": "enabled", "budget_tokens": 2048}}, True),
        ("anthropic", {"thinking": {"type": "disabled"}}, False),
        ("anthropic", {}, False),
    ],
)
async def test_ollama_think_follows_the_client(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, asked: dict, think: Any
):
    upstream.reply(Reply(body=raw(OLLAMA_TOOLS_JSON)))
    gw = await gateway(config("ollama", upstream, key=None))
    if front == "openai":
        await oai(gw).chat.completions.create(model="ollama/qwen3", messages=[USER], **asked)
    else:
        await ant(gw).messages.create(model="ollama/qwen3", max_tokens=4096, messages=[USER], **asked)
    assert upstream.last.json["think"] == think


async def test_ollama_think_default_is_configurable(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=raw(OLLAMA_TOOLS_JSON)))
    gw = await gateway(config("ollama", upstream, key=None, think_default=True))
    await oai(gw).chat.completions.create(model="ollama/qwen3", messages=[USER])
    assert upstream.last.json["think"] is True


def ollama_line(message: dict[str, Any], done: bool = False, **extra: Any) -> bytes:
    body = {
        "model": "qwen3",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "", **message},
        "done": done,
        **extra,
    }
    return json.dumps(body).encode() + b"\n"


OLLAMA_THINKING = [
    ollama_line({"thinking": "Short "}),
    ollama_line({"thinking": "answer."}),
    ollama_line({"content": "Hi"}),
    ollama_line({}, done=True, done_reason="length", prompt_eval_count=12, eval_count=3),
]


async def test_ollama_thinking_reaches_both_clients(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=OLLAMA_THINKING, content_type=NDJSON)
    gw = await gateway(config("ollama", upstream, key=None))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="ollama/qwen3", messages=[USER], stream=True, reasoning_effort="low"
        )
    )
    assert (got["reasoning"], got["content"], got["finish"]) == ("Short answer.", "Hi", "length")
    async with ant(gw).messages.stream(model="ollama/qwen3", max_tokens=100, messages=[USER]) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"] and final.stop_reason == "max_tokens"
    assert final.content[0].thinking == "Short answer."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("response_format", "fmt"),
    [
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object", "properties": {}}}},
            {"type": "object", "properties": {}},
        ),
    ],
)
async def test_ollama_format_comes_from_response_format(
    upstream: FakeUpstream, gateway: GatewayFactory, response_format: dict, fmt: Any
):
    upstream.reply(Reply(body=raw(OLLAMA_TOOLS_JSON)))
    gw = await gateway(config("ollama", upstream, key=None))
    await oai(gw).chat.completions.create(model="ollama/qwen3", messages=[USER], response_format=response_format)  # type: ignore[arg-type]
    assert upstream.last.json["format"] == fmt


async def test_ollama_cloud_bearer_key_and_cloud_suffix(
    upstream: FakeUpstream, gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-cloud-key")
    upstream.default = Reply(body=raw(OLLAMA_TOOLS_JSON))
    gw = await gateway(config("ollama_cloud", upstream, key=None))
    await oai(gw).chat.completions.create(model="gpt-oss:120b:cloud", messages=[USER])
    seen = upstream.last
    assert seen.path == "/api/chat" and seen.json["model"] == "gpt-oss:120b"
    assert headers(seen)["authorization"] == "Bearer ollama-cloud-key"
    assert seen.json["think"] is False
    await ant(gw).messages.create(model="ollama_cloud/kimi-k2.6", max_tokens=10, messages=[USER])
    assert upstream.last.json["model"] == "kimi-k2.6"


async def test_ollama_cloud_without_a_key_names_the_variable(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(config("ollama_cloud", upstream, key=None))
    with pytest.raises(openai.BadRequestError) as err:
        await oai(gw).chat.completions.create(model="gpt-oss:120b:cloud", messages=[USER])
    assert "OLLAMA_API_KEY" in err.value.body["message"] and upstream.seen == []  # type: ignore[index]


# ==== anthropic ==================================================================================


async def test_anthropic_headers_and_beta_passed_on(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=ANT_OK)
    gw = await gateway(config("anthropic", upstream, key="sk-ant-test"))
    await ant(gw).messages.create(
        model="anthropic/claude-sonnet-4-6",
        max_tokens=10,
        messages=[USER],
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    seen = upstream.last
    h = headers(seen)
    assert seen.path == "/v1/messages"
    assert h["x-api-key"] == "sk-ant-test" and "authorization" not in h
    assert h["anthropic-version"] == "2023-06-01" and h["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    # an OpenAI client: same auth, no beta, the provider's max_tokens default
    await oai(gw).chat.completions.create(model="anthropic/", messages=[USER])
    h = headers(upstream.last)
    assert h["x-api-key"] == "sk-ant-test" and "anthropic-beta" not in h
    assert upstream.last.json["model"] == "claude-sonnet-4-6" and upstream.last.json["max_tokens"] == 8192


async def test_anthropic_own_signed_thinking_is_replayed_untouched(upstream: FakeUpstream, gateway: GatewayFactory):
    second = cassette(ANTHROPIC_THINKING)[1]
    assert second.request is not None
    upstream.reply(Reply(body=[second.body], content_type=SSE))
    gw = await gateway(config("anthropic", upstream))
    request = dict(second.request, model="anthropic/claude-sonnet-4", stream=True)
    status, out = await post(gw.url + "/v1/messages", request)
    assert status == 200 and out == second.body
    assert upstream.last.json["messages"] == second.request["messages"]


def completed_history(turn: dict[str, Any], tool_id: str) -> list[dict[str, Any]]:
    """`turn` made a tool call that was answered, then the conversation moved on."""
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "40 C"}]}
    return [
        USER,
        turn,
        result,
        {"role": "assistant", "content": [{"type": "text", "text": "40 C there."}]},
        {"role": "user", "content": "And tomorrow?"},
    ]


async def minimax_signed_turn(upstream: FakeUpstream, gw: RunningGateway) -> dict[str, Any]:
    """A MiniMax turn with signed thinking, served to an OpenAI client (so the gateway remembers it),
    as an Anthropic client holding the same conversation would replay it."""
    stream = ant_events(
        {
            "type": "message_start",
            "message": {
                "id": "msg_mm",
                "type": "message",
                "role": "assistant",
                "model": "MiniMax-M2.7",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 9, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Call it."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "mm-sig-9"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "call_function_9", "name": "weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location": "Florence"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    )
    upstream.reply(Reply(body=stream, content_type=SSE))
    got = await collect(
        await oai(gw).chat.completions.create(
            model="minimax/MiniMax-M2.7", messages=[USER], tools=[OAI_TOOL], stream=True
        )
    )
    assert got["reasoning"] == "Call it." and got["calls"][0]["id"] == "call_function_9"
    return {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Call it.", "signature": "mm-sig-9"},
            {"type": "tool_use", "id": "call_function_9", "name": "weather", "input": {"location": "Florence"}},
        ],
    }


async def test_anthropic_drops_foreign_and_unsigned_thinking_from_completed_turns(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    cfg = config("anthropic", upstream)
    cfg["providers"].update(config("minimax", upstream, "/anthropic")["providers"])
    gw = await gateway(cfg)
    foreign = await minimax_signed_turn(upstream, gw)
    claude = {"type": "thinking", "thinking": "mine", "signature": "claude-sig"}
    unsigned = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "from a local model"}, {"type": "text", "text": "Hello."}],
    }
    only_thinking = {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": ""}]}
    messages = [
        {"role": "user", "content": "hi"},
        unsigned,
        {"role": "user", "content": "go"},
        only_thinking,
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": [claude, {"type": "text", "text": "ok"}]},
        *completed_history(foreign, "call_function_9"),
    ]
    upstream.reply(Reply(body=ANT_OK))
    await ant(gw).messages.create(
        model="anthropic/claude-sonnet-4-6",
        max_tokens=2000,
        messages=messages,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    sent = upstream.last.json["messages"]
    assert upstream.last.path == "/v1/messages" and headers(upstream.last)["x-api-key"] == "sk-test-key"
    assert sent[1]["content"] == [{"type": "text", "text": "Hello."}]  # unsigned: dropped
    assert sent[3]["content"] == [{"type": "text", "text": "[earlier reasoning omitted]"}]  # never left empty
    assert sent[5]["content"][0] == claude  # Claude's own signature: kept
    assert sent[7]["content"] == [foreign["content"][1]]  # MiniMax's signature: dropped, tool_use kept
    assert len(sent) == len(messages)


async def test_anthropic_active_tool_loop_that_lost_its_signature_is_a_clear_400(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    cfg = config("anthropic", upstream)
    cfg["providers"].update(config("minimax", upstream, "/anthropic")["providers"])
    gw = await gateway(cfg)
    foreign = await minimax_signed_turn(upstream, gw)
    unsigned = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "lost its signature"}, foreign["content"][1]],
    }
    seen_before = len(upstream.seen)
    for turn in (foreign, unsigned):
        active = completed_history(turn, "call_function_9")[:3]  # the tool result closes the conversation
        with pytest.raises(anthropic.BadRequestError) as err:
            await ant(gw).messages.create(
                model="anthropic/claude-sonnet-4-6",
                max_tokens=2000,
                messages=active,
                thinking={"type": "enabled", "budget_tokens": 1024},
            )
        message = err.value.body["error"]["message"]  # type: ignore[index]
        assert message.startswith("messages.1:") and "signed thinking" in message
    assert len(upstream.seen) == seen_before  # nothing was sent to Claude
    # with thinking off, Claude needs no signature: the block is dropped and the request goes out
    upstream.reply(Reply(body=ANT_OK))
    await ant(gw).messages.create(
        model="anthropic/claude-sonnet-4-6", max_tokens=100, messages=completed_history(unsigned, "call_function_9")[:3]
    )
    assert upstream.last.json["messages"][1]["content"] == [foreign["content"][1]]


async def test_anthropic_client_switching_from_minimax_to_claude_loses_the_foreign_signature(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    cfg = config("anthropic", upstream)
    cfg["providers"].update(config("minimax", upstream, "/anthropic")["providers"])
    gw = await gateway(cfg)
    stream = minimax_stream(signature=True)
    upstream.reply(Reply(body=[stream], content_type=SSE), Reply(body=ANT_OK))
    async with ant(gw).messages.stream(
        model="minimax/MiniMax-M2.7",
        max_tokens=2000,
        messages=[USER],
        tools=[ANT_TOOL],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as s:
        final = await s.get_final_message()
    turn = {"role": "assistant", "content": [b.model_dump() for b in final.content]}
    tool_id = turn["content"][1]["id"]
    await ant(gw).messages.create(
        model="anthropic/claude-sonnet-4-6",
        max_tokens=2000,
        messages=completed_history(turn, tool_id),  # type: ignore[arg-type]
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert upstream.last.json["messages"][1]["content"] == [turn["content"][1]]


async def test_anthropic_count_tokens_is_forwarded_where_the_provider_counts(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.reply(Reply(body=b'{"input_tokens": 42}'))
    cfg = config("anthropic", upstream, key="sk-ant-test")
    cfg["providers"].update(config("kimi", upstream, "/coding")["providers"])
    gw = await gateway(cfg)
    counted = await ant(gw).messages.count_tokens(model="anthropic/claude-sonnet-4-6", messages=[USER])
    assert counted.input_tokens == 42
    assert upstream.last.path == "/v1/messages/count_tokens" and upstream.last.json["model"] == "claude-sonnet-4-6"
    assert headers(upstream.last)["x-api-key"] == "sk-ant-test"
    estimated = await ant(gw).messages.count_tokens(model="kimi/kimi-for-coding", messages=[USER])
    assert estimated.input_tokens > 0 and len(upstream.seen) == 1  # Kimi has no counting endpoint


# ==== openai =====================================================================================


async def test_openai_sends_max_completion_tokens_and_no_reasoning_content(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = Reply(body=OAI_OK)
    gw = await gateway(config("openai", upstream, "/v1", key="sk-openai-test"))
    history = tool_history("call_1")
    history[1]["reasoning_content"] = "from another provider"
    await oai(gw).chat.completions.create(model="openai/o4-mini", messages=history, max_tokens=300)
    seen = upstream.last
    assert seen.path == "/v1/chat/completions" and headers(seen)["authorization"] == "Bearer sk-openai-test"
    assert seen.json["max_completion_tokens"] == 300 and "max_tokens" not in seen.json
    assert "reasoning_content" not in assistant_turns(seen)[0]
    await ant(gw).messages.create(model="openai/", max_tokens=200, messages=[USER])
    assert upstream.last.json["max_completion_tokens"] == 200 and "max_tokens" not in upstream.last.json
    assert upstream.last.json["model"] == "gpt-5.1"


# ==== regions, listing, CLI ======================================================================


async def test_regions_switch_the_base_url_and_show_in_the_providers_endpoint(gateway: GatewayFactory):
    gw = await gateway(
        {
            "providers": {
                "moonshot": {"region": "cn", "api_key": "sk-m"},
                "minimax": {"region": "cn"},
                "deepseek": {"api_key": "sk-d"},
            }
        }
    )
    async with ClientSession() as s, s.get(gw.url + "/v1/providers") as r:
        rows = {p["id"]: p for p in (await r.json())["data"]}
    assert rows["moonshot"]["base_url"] == "https://api.moonshot.cn/v1" and rows["moonshot"]["key_configured"]
    assert rows["minimax"]["base_url"] == "https://api.minimaxi.com/anthropic"
    assert not rows["minimax"]["key_configured"] and not rows["minimax"]["available"]
    assert rows["deepseek"]["base_url"] == "https://api.deepseek.com"
    assert rows["kimi"]["aliases"] == {"kimi-code": "kimi-for-coding", "k2p5": "kimi-for-coding"}
    assert rows["ollama"]["available"] and not rows["ollama"]["key_configured"]
    assert set(BUILTIN_MODULES) <= set(rows)
    gw2 = await gateway({"providers": {"moonshot": {"region": "global"}, "minimax": {"region": "global"}}})
    rows2 = {p.id: p for p in gw2.gateway.providers.values()}
    assert rows2["moonshot"].base_url == "https://api.moonshot.ai/v1"
    assert rows2["minimax"].base_url == "https://api.minimax.io/anthropic"


async def test_unknown_region_is_a_config_error(gateway: GatewayFactory):
    with pytest.raises(ConfigError) as err:
        await gateway({"providers": {"moonshot": {"region": "eu"}}})
    assert "providers.moonshot.region" in str(err.value) and "cn" in str(err.value)


def clean_env(**extra: str) -> dict[str, str]:
    keys = ("_API_KEY", "DRAGOMAN_CONFIG")
    env = {k: v for k, v in os.environ.items() if not k.endswith(keys)}
    env.update(extra)
    return env


def dragoman_cmd() -> list[str]:
    script = Path(sys.executable).with_name("dragoman")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dragoman"]


def test_cli_providers_lists_every_provider(tmp_path: Path):
    toml = tmp_path / "dragoman.toml"
    toml.write_text(
        textwrap.dedent("""
        [providers.moonshot]
        region = "cn"
        api_key = "sk-moonshot-secret"

        [providers.minimax]
        region = "cn"

        [providers.my-vllm]
        dialect = "openai"
        base_url = "http://127.0.0.1:8000/v1"
        models = ["qwen3-coder"]
    """)
    )
    out = subprocess.run(
        [*dragoman_cmd(), "providers", "--config", str(toml)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=60,
        check=True,
    ).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split() == ["id", "dialect", "base_url", "key", "models"]
    assert set(BUILTIN_MODULES) | {"my-vllm"} == set(rows)
    assert rows["moonshot"][1:4] == ["openai", "https://api.moonshot.cn/v1", "yes"]
    assert rows["minimax"][1:4] == ["anthropic", "https://api.minimaxi.com/anthropic", "no"]
    assert rows["kimi"][1:3] == ["anthropic", "https://api.kimi.com/coding"]
    assert rows["ollama"][2:5] == ["http://localhost:11434", "not", "needed"]
    assert rows["ollama_cloud"][2] == "https://ollama.com" and rows["opencode"][2] == "https://opencode.ai/zen/v1"
    assert rows["my-vllm"][1:3] == ["openai", "http://127.0.0.1:8000/v1"]
    assert "sk-moonshot-secret" not in out


# ==== adding a provider ==========================================================================


async def test_custom_provider_from_config(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=ANT_OK if seen.path.endswith("/messages") else OAI_OK)
    gw = await gateway(
        {
            "server": {"default_provider": "my-vllm"},
            "providers": {
                "my-vllm": {
                    "dialect": "openai",
                    "base_url": upstream.url + "/v1",
                    "api_key": "vllm-key",
                    "models": ["qwen3-coder"],
                    "headers": {"X-Team": "core"},
                },
                "my-claude-proxy": {
                    "dialect": "anthropic",
                    "base_url": upstream.url + "/proxy",
                    "api_key": "proxy-key",
                },
            },
        }
    )
    resp = await oai(gw).chat.completions.create(model="qwen3-coder", messages=[USER])
    assert resp.choices[0].message.content == "ok"
    seen = upstream.last
    assert seen.path == "/v1/chat/completions" and seen.json["model"] == "qwen3-coder"
    assert headers(seen)["authorization"] == "Bearer vllm-key" and headers(seen)["x-team"] == "core"
    await oai(gw).chat.completions.create(model="my-claude-proxy/claude-x", messages=[USER])
    seen = upstream.last
    assert seen.path == "/proxy/v1/messages" and seen.json["model"] == "claude-x"
    assert headers(seen)["x-api-key"] == "proxy-key" and headers(seen)["anthropic-version"] == "2023-06-01"
    assert seen.json["max_tokens"] == 4096  # no provider default: the Anthropic codec's


PLUGIN = '''
"""A third-party provider: a ProviderSpec row plus a Hooks subclass, shipped as its own package."""
from dragoman.providers.base import Hooks, ProviderSpec


class AcmeHooks(Hooks):
    def url_for(self, provider, dialect, model):
        return provider.base_url + "/acme/v2/chat"

    def prepare(self, provider, body, ctx):
        body["tenant"] = provider.options["tenant"]
        body.pop("temperature", None)


SPEC = ProviderSpec(
    id="acme", title="Acme AI", dialect="openai", base_url="https://api.acme.example", key_env="ACME_API_KEY",
    models=("acme-large",), default_model="acme-large", aliases={"acme-old": "acme-large"},
    options={"tenant": "public"}, headers={"X-Acme-Client": "dragoman"}, hooks=AcmeHooks(),
)


def broken():
    raise RuntimeError("this plugin is broken")
'''


@pytest.fixture
def acme_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real installed distribution on sys.path with a `dragoman.providers` entry point."""
    (tmp_path / "acme_dragoman.py").write_text(PLUGIN)
    info = tmp_path / "acme_dragoman-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-dragoman\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[dragoman.providers]\nacme = acme_dragoman:SPEC\nbroken = acme_dragoman:broken\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_dragoman", None)


async def test_plugin_provider_from_an_entry_point(
    acme_plugin: Path, upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.ERROR, logger="dragoman.providers"):
        specs = catalog()
    assert specs["acme"].title == "Acme AI" and set(BUILTIN_MODULES) <= set(specs)
    assert "broken" not in specs and "this plugin is broken" in caplog.text  # logged, not fatal
    upstream.default = Reply(body=OAI_OK)
    gw = await gateway(config("acme", upstream, key="acme-key", tenant="team-7"))
    resp = await oai(gw).chat.completions.create(model="acme/acme-old", messages=[USER], temperature=0.3)
    assert resp.choices[0].message.content == "ok"
    seen = upstream.last
    assert seen.path == "/acme/v2/chat"
    assert seen.json["model"] == "acme-large" and seen.json["tenant"] == "team-7" and "temperature" not in seen.json
    h = headers(seen)
    assert h["authorization"] == "Bearer acme-key" and h["x-acme-client"] == "dragoman"
    await ant(gw).messages.create(model="acme/", max_tokens=10, messages=[USER])
    assert upstream.last.json["model"] == "acme-large" and upstream.last.path == "/acme/v2/chat"


def test_plugin_provider_is_listed_by_the_cli(acme_plugin: Path, tmp_path: Path):
    toml = tmp_path / "dragoman.toml"
    toml.write_text('[providers.acme]\napi_key = "acme-key"\n')
    env = clean_env(PYTHONPATH=str(acme_plugin))
    out = subprocess.run(
        [*dragoman_cmd(), "providers", "--config", str(toml)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    ).stdout
    row = next(line.split() for line in out.splitlines() if line.startswith("acme "))
    assert row == ["acme", "openai", "https://api.acme.example", "yes", "acme-large"]


def test_every_builtin_spec_is_a_row_of_data():
    specs = catalog()
    for pid in BUILTIN_MODULES:
        spec = specs[pid]
        assert spec.id == pid and spec.dialect in ("openai", "anthropic", "ollama")
        assert spec.base_url.startswith(("http://", "https://")) and not spec.base_url.endswith("/")
        assert spec.default_model is None or spec.default_model in spec.models
        assert all(target in spec.models for target in spec.aliases.values())
    assert dict(specs["moonshot"].regions) == {
        "global": "https://api.moonshot.ai/v1",
        "cn": "https://api.moonshot.cn/v1",
    }


async def test_kimi_gets_no_tool_reference_blocks_and_no_disabled_thinking(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    # Claude Code's tool search puts tool_reference blocks in tool results, and its subagents send
    # thinking disabled: Kimi answers 400 to both
    upstream.reply(Reply(body=ANT_OK))
    gw = await gateway(config("kimi", upstream, "/coding"))
    history = [
        USER,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"q": "x"}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [
                        {"type": "tool_reference", "tool_name": "mcp__git__log"},
                        {"type": "text", "text": "found"},
                    ],
                }
            ],
        },
    ]
    status, _ = await post(
        gw.url + "/v1/messages",
        {"model": "kimi/kimi-for-coding", "max_tokens": 50, "thinking": {"type": "disabled"}, "messages": history},
    )
    assert status == 200
    sent = upstream.last.json
    assert "thinking" not in sent
    assert sent["messages"][2]["content"][0]["content"] == [
        {"type": "text", "text": "[tool available: mcp__git__log]"},
        {"type": "text", "text": "found"},
    ]


async def test_reasoning_memory_shared_through_redis_between_workers(upstream: FakeUpstream, gateway: GatewayFactory):
    # two gateways on one Redis stand for two workers (or two instances): the turn that made the
    # tool call is served by one, the next turn by the other
    import uuid

    import redis.asyncio as redis

    db = "redis://127.0.0.1:6379/15"
    cfg = config("moonshot", upstream, "/v1")
    cfg["server"] = {"reasoning_store": db, "reasoning_ttl": 120}
    first, second = await gateway(cfg), await gateway(cfg)
    got, recorded_replay = await moonshot_turn_one(upstream, first)
    call_id = got["calls"][0]["id"]
    client = redis.Redis.from_url(db)
    try:
        ttl = await client.ttl("dragoman:reasoning:" + call_id)
        assert 0 < ttl <= 120
    finally:
        await client.aclose()

    upstream.reply(Reply(body=OAI_OK))
    history = tool_history(call_id, arguments=got["calls"][0]["arguments"])
    await oai(second).chat.completions.create(model="moonshot/kimi-k2.5", messages=history, tools=[OAI_TOOL])
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == recorded_replay
    # and an id nobody saw still falls back to "" with thinking on
    upstream.reply(Reply(body=OAI_OK))
    await oai(second).chat.completions.create(
        model="moonshot/kimi-k2.5", messages=tool_history(f"functions.none:{uuid.uuid4().hex}")
    )
    assert assistant_turns(upstream.last)[0]["reasoning_content"] == ""


async def test_claude_gets_its_signed_thinking_back_when_an_openai_client_kept_only_the_text(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    # an OpenAI client that keeps `reasoning_content` sends the thinking back unsigned; in the active
    # tool loop Claude needs the signed block, which the gateway remembered from turn one
    stream, replayed_turn = anthropic_thinking_turn()
    upstream.reply(Reply(body=[stream], content_type=SSE), Reply(body=ANT_OK))
    gw = await gateway(config("anthropic", upstream))
    first = await oai(gw).chat.completions.create(
        model="anthropic/claude-sonnet-4-6", messages=[USER], reasoning_effort="low", stream=True, tools=[OAI_TOOL]
    )
    text, calls = "", {}
    async for chunk in first:
        for choice in chunk.choices:
            text += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
                entry["name"] += (call.function and call.function.name) or ""
                entry["arguments"] += (call.function and call.function.arguments) or ""
    call = calls[0]
    history = [
        USER,
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": text,  # kept by the client, but it cannot keep the signature
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    resp = await oai(gw).chat.completions.create(
        model="anthropic/claude-sonnet-4-6", messages=history, reasoning_effort="low", tools=[OAI_TOOL]
    )
    assert resp.choices[0].message.content == "ok"  # no 400 for a lost signature
    sent = upstream.last.json["messages"][1]["content"]
    assert sent[0] == replayed_turn["content"][0]  # byte-exact: the block Claude minted, signature and all
    assert [b["type"] for b in sent] == ["thinking", "tool_use"]
