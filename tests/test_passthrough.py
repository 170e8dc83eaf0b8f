"""Same dialect means pass-through: the body goes upstream with only the model rewritten, and the
reply comes back byte for byte, streamed as it arrives."""

from __future__ import annotations

import asyncio
import json
import time

import anthropic
import openai
from aiohttp import ClientSession

from tests.conftest import FakeUpstream, GatewayFactory, Reply, providers_at
from tests.recorded import cassette, raw

OPENAI_TOOLS_STREAM = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/openai_tools_streaming.txt"
OPENAI_MULTI_TOOL = (
    "charmbracelet__fantasy/providertests/testdata/TestOpenAICommon/openai-gpt-4o/multi_tool_streaming.yaml"
)
OPENAI_TOOLS_JSON = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/openai_tools_no_streaming.txt"
ANTHROPIC_THINKING = (
    "charmbracelet__fantasy/providertests/testdata/TestAnthropicThinking/claude-sonnet-4/thinking-streaming.yaml"
)


async def test_openai_stream_passes_through_bytes_and_sdk_parses(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = cassette(OPENAI_MULTI_TOOL)[0].body
    upstream.reply(
        Reply(body=[recorded[i : i + 97] for i in range(0, len(recorded), 97)], content_type="text/event-stream")
    )
    gw = await gateway(providers_at(upstream))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="client-key")
    stream = await client.chat.completions.create(
        model="up-openai/gpt-4o",
        messages=[{"role": "user", "content": "weather?"}],
        stream=True,
        extra_body={"some_future_field": {"keep": True}},
    )
    names, args = {}, {}
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names[call.index] = call.function.name
                args[call.index] = args.get(call.index, "") + ((call.function and call.function.arguments) or "")
    assert names == {0: "add", 1: "multiply"}
    assert json.loads(args[0]) == {"a": 2, "b": 3} and json.loads(args[1]) == {"a": 2, "b": 3}
    sent = upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "gpt-4o"  # prefix stripped on the wire
    assert sent.json["some_future_field"] == {"keep": True}  # unknown fields survive
    assert sent.headers["Authorization"] == "Bearer sk-up-openai-secret"  # the provider's key, not the client's


async def test_openai_stream_bytes_are_identical(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = raw(OPENAI_TOOLS_STREAM)
    upstream.reply(Reply(body=[recorded], content_type="text/event-stream"))
    gw = await gateway(providers_at(upstream))
    async with (
        ClientSession() as s,
        s.post(
            gw.openai_url + "/chat/completions",
            json={
                "model": "up-openai/gpt-4o",
                "stream": True,
                "stream_options": {"include_usage": True},  # as when the stream was recorded
                "messages": [{"role": "user", "content": "x"}],
            },
            headers={"accept": "application/json"},  # streaming is decided by the body, never by Accept
        ) as r,
    ):
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert await r.read() == recorded


async def test_openai_unary_passes_through(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = raw(OPENAI_TOOLS_JSON)
    upstream.reply(Reply(body=recorded))
    gw = await gateway(providers_at(upstream))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k")
    resp = await client.chat.completions.create(model="up-openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.model_dump()["id"] == json.loads(recorded)["id"]


async def test_anthropic_stream_passes_through_with_signature_and_new_fields(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    first = cassette(ANTHROPIC_THINKING)[0]
    upstream.reply(
        Reply(body=[first.body[i : i + 61] for i in range(0, len(first.body), 61)], content_type="text/event-stream")
    )
    gw = await gateway(providers_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="client-key")
    async with client.messages.stream(
        model="up-anthropic/claude-sonnet-4",
        max_tokens=4096,
        messages=[{"role": "system", "content": "mid-conversation system"}, {"role": "user", "content": "weather?"}],  # type: ignore[misc,list-item]
        extra_body={"context_management": {"edits": []}, "output_config": {"effort": "high"}},
        extra_headers={"anthropic-beta": "context-management-2025-06-27,interleaved-thinking-2025-05-14"},
        extra_query={"beta": "true"},
    ) as stream:
        final = await stream.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds[0] == "thinking" and "tool_use" in kinds
    recorded_sig = "".join(
        json.loads(line[6:])["delta"]["signature"]
        for line in first.body.decode().splitlines()
        if line.startswith("data: ") and '"signature_delta"' in line
    )
    assert final.content[0].signature == recorded_sig  # type: ignore[union-attr]
    sent = upstream.last
    assert sent.path == "/v1/messages"
    body = sent.json
    assert body["model"] == "claude-sonnet-4"
    assert body["context_management"] == {"edits": []} and body["output_config"] == {"effort": "high"}
    assert body["messages"][0] == {"role": "system", "content": "mid-conversation system"}
    assert sent.headers["anthropic-beta"] == "context-management-2025-06-27,interleaved-thinking-2025-05-14"
    assert sent.headers["x-api-key"] == "sk-ant-up-secret"
    assert sent.headers["anthropic-version"] == "2023-06-01"


async def test_stream_is_forwarded_as_it_arrives(upstream: FakeUpstream, gateway: GatewayFactory):
    chunks = [
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"%d"},"finish_reason":null}]}\n\n'
        % i
        for i in range(3)
    ]
    chunks.append(b"data: [DONE]\n\n")
    upstream.reply(Reply(body=chunks, content_type="text/event-stream", delay=0.4))
    gw = await gateway(providers_at(upstream))
    async with (
        ClientSession() as s,
        s.post(
            gw.openai_url + "/chat/completions",
            json={"model": "up-openai/m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        ) as r,
    ):
        start = time.perf_counter()
        first = await r.content.readany()
        elapsed = time.perf_counter() - start
        assert b'"content":"0"' in first
        assert elapsed < 0.35  # the first chunk came before the upstream finished (~1.2 s)
        rest = await r.read()
        assert rest.endswith(b"data: [DONE]\n\n")


async def test_anthropic_unary_passes_through(upstream: FakeUpstream, gateway: GatewayFactory):
    second = cassette("charmbracelet__fantasy/providertests/testdata/TestAnthropicCommon/claude-sonnet-4/simple.yaml")[
        0
    ]
    upstream.reply(Reply(body=second.body))
    gw = await gateway(providers_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k")
    msg = await client.messages.create(
        model="up-anthropic/claude", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.id == json.loads(second.body)["id"]
    assert upstream.last.json["max_tokens"] == 100


async def test_concurrent_streams_do_not_mix(upstream: FakeUpstream, gateway: GatewayFactory):
    def answer(seen):  # echo the prompt back as the content
        word = seen.json["messages"][0]["content"]
        return Reply(
            body=[
                b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":"stop"}]}\n\n'
                % word.encode(),
                b"data: [DONE]\n\n",
            ],
            content_type="text/event-stream",
            delay=0.01,
        )

    upstream.default = answer
    gw = await gateway(providers_at(upstream))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k")

    async def one(i: int) -> str:
        stream = await client.chat.completions.create(
            model="up-openai/m", messages=[{"role": "user", "content": f"w{i}"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [f"w{i}" for i in range(20)]
