"""The `responses` upstream dialect over real loopback HTTP: OpenAI's Responses-only models, OpenCode
Zen's GPT family and custom Responses providers, reached by Chat Completions and Messages clients
(the official SDKs), with recorded OpenAI Responses replies. Each test asserts what the upstream got."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai

from dragoman.providers.base import Hooks, ModelInfo, Provider, ProviderSpec
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway
from tests.recorded import cassette

FANTASY = "charmbracelet__fantasy/providertests/testdata/"
SIMPLE_STREAM = FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/simple_streaming.yaml"
TOOL_STREAM = FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/tool_streaming.yaml"
THINKING_STREAM = FANTASY + "TestOpenAIResponsesWithSummaryThinking/openai-gpt-5/thinking-streaming.yaml"
SSE = "text/event-stream"
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


def config(pid: str, upstream: FakeUpstream, path: str, **table: Any) -> dict[str, Any]:
    return {"providers": {pid: {"base_url": upstream.url + path, "api_key": "sk-up-key-1234", **table}}}


def oai(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.openai_url, api_key="client-key", max_retries=0)


def ant(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="client-key", max_retries=0)


def streamed_text(body: bytes) -> str:
    events = (json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: {"))
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def chunks(body: bytes) -> list[bytes]:
    return [body[i : i + 1500] for i in range(0, len(body), 1500)]


def test_model_info_says_which_models_speak_responses() -> None:
    spec = ProviderSpec(
        id="p",
        title="p",
        dialect="openai",
        base_url="http://x",
        model_info={"only-responses": ModelInfo(dialect="responses"), "plain": ModelInfo(context_window=8)},
    )
    provider = Provider(spec, "http://x", None, {}, {}, [], None, "openai")
    assert Hooks().dialect_for(provider, "only-responses") == "responses"
    assert Hooks().dialect_for(provider, "plain") == "openai"
    assert Hooks().dialect_for(provider, "unknown") == "openai"
    assert Hooks().url_for(provider, "responses", "only-responses") == "http://x/responses"


async def test_openais_responses_only_models_are_reached_on_v1_responses(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    recorded = cassette(SIMPLE_STREAM)[0].body
    upstream.reply(Reply(body=chunks(recorded), content_type=SSE))
    gw = await gateway(config("openai", upstream, "/v1"))
    async with oai(gw) as client:
        stream = await client.chat.completions.create(
            model="openai/gpt-5.3-codex",
            messages=[USER],
            stream=True,
            stream_options={"include_usage": True},
            temperature=0.3,  # a reasoning model rejects it: dropped
        )
        got = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text == streamed_text(recorded)
    final = json.loads(recorded.decode().rsplit("data: ", 1)[1])["response"]["usage"]
    assert got[-1].usage is not None and got[-1].usage.prompt_tokens == final["input_tokens"]
    assert got[-1].usage.total_tokens == final["total_tokens"]
    seen = upstream.last
    assert seen.path == "/v1/responses" and seen.headers["Authorization"] == "Bearer sk-up-key-1234"
    body = seen.json
    assert body["model"] == "gpt-5.3-codex" and body["store"] is False and "messages" not in body
    assert "temperature" not in body
    assert body["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": USER["content"]}]}
    ]
    upstream.reply(Reply(body=b"data: [DONE]\n\n", content_type=SSE))
    async with oai(gw) as client:
        async for _ in await client.chat.completions.create(model="openai/gpt-5.1", messages=[USER], stream=True):
            pass
    assert upstream.last.path == "/v1/chat/completions"  # a model served on both stays on chat


async def test_opencode_zen_serves_its_gpt_family_through_responses(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    first, _ = cassette(TOOL_STREAM)
    upstream.reply(Reply(body=chunks(first.body), content_type=SSE))
    gw = await gateway(config("opencode", upstream, "/zen/v1"))
    async with oai(gw) as client:
        stream = await client.chat.completions.create(
            model="opencode/gpt-5.1",
            messages=[USER],
            tools=[OAI_TOOL],
            stream=True,  # type: ignore[list-item]
        )
        calls: dict[int, dict[str, str]] = {}
        finish = None
        async for chunk in stream:
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or ():
                    entry = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                    entry["id"] += tc.id or ""
                    entry["name"] += (tc.function.name or "") if tc.function else ""
                    entry["args"] += (tc.function.arguments or "") if tc.function else ""
                finish = choice.finish_reason or finish
    recorded = [json.loads(line[6:]) for line in first.body.decode().splitlines() if line.startswith("data: {")]
    done = next(
        e["item"] for e in recorded if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"
    )
    assert list(calls.values()) == [{"id": done["call_id"], "name": "weather", "args": done["arguments"]}]
    assert finish == "tool_calls"
    seen = upstream.last
    assert seen.path == "/zen/v1/responses" and seen.json["stream"] is True
    tool = seen.json["tools"][0]
    assert (tool["type"], tool["name"], tool["strict"]) == ("function", "weather", False)


async def test_claude_code_keeps_openais_reasoning_across_turns(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    """A Messages client gets OpenAI's encrypted reasoning as the thinking block's signature, and
    replaying that block sends the encrypted content back byte for byte: no state in the gateway."""
    first = cassette(THINKING_STREAM)[0]
    upstream.reply(Reply(body=chunks(first.body), content_type=SSE))
    gw = await gateway(config("opencode", upstream, "/zen/v1"))
    async with ant(gw) as client:
        async with client.messages.stream(
            model="opencode/gpt-5",
            max_tokens=4000,
            thinking={"type": "enabled", "budget_tokens": 2048},
            tools=[ANT_TOOL],  # type: ignore[list-item]
            messages=[USER],  # type: ignore[list-item]
        ) as stream:
            message = await stream.get_final_message()
        recorded = [json.loads(line[6:]) for line in first.body.decode().splitlines() if line.startswith("data: {")]
        blob = next(
            e["item"]["encrypted_content"]
            for e in recorded
            if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"
        )
        thinking, call = message.content[0], message.content[-1]
        assert thinking.type == "thinking" and thinking.signature == blob and thinking.thinking
        assert call.type == "tool_use" and call.input == {"location": "Florence, Italy"}
        sent = upstream.last.json
        assert sent["include"] == ["reasoning.encrypted_content"] and sent["reasoning"]["summary"] == "auto"
        upstream.reply(Reply(body=chunks(cassette(SIMPLE_STREAM)[0].body), content_type=SSE))
        async with client.messages.stream(
            model="opencode/gpt-5",
            max_tokens=4000,
            thinking={"type": "enabled", "budget_tokens": 2048},
            tools=[ANT_TOOL],  # type: ignore[list-item]
            messages=[
                USER,  # type: ignore[list-item]
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},  # type: ignore[misc]
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "40 C"}]},
            ],
        ) as again:
            await again.get_final_message()
    items = upstream.last.json["input"]
    assert [i["type"] for i in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert items[1]["encrypted_content"] == blob and items[1]["summary"][0]["text"] == thinking.thinking
    assert items[2]["call_id"] == call.id and items[3] == {
        "type": "function_call_output",
        "call_id": call.id,
        "output": "40 C",
    }


async def test_a_custom_provider_can_speak_responses(upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    recorded = cassette(SIMPLE_STREAM)[0].body
    upstream.reply(Reply(body=chunks(recorded), content_type=SSE))
    cfg = {
        "providers": {
            "gpt": {"dialect": "responses", "base_url": upstream.url + "/api/v1", "api_key": "sk-custom-1234"}
        }
    }
    gw = await gateway(cfg)
    async with (
        ant(gw) as client,
        client.messages.stream(model="gpt/gpt-5", max_tokens=100, messages=[USER]) as s,  # type: ignore[list-item]
    ):
        text = "".join([t async for t in s.text_stream])
    assert text == streamed_text(recorded) and upstream.last.path == "/api/v1/responses"
    assert upstream.last.json["max_output_tokens"] == 100
