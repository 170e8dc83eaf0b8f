"""POST /v1/messages/count_tokens: forwarded where the provider counts, estimated otherwise, and
always `{"input_tokens": n}` (never a 404)."""

from __future__ import annotations

import json

import anthropic
import pytest

from dragoman.tokens import estimate_anthropic
from tests.conftest import FakeUpstream, GatewayFactory, Reply, providers_at

MESSAGES = [{"role": "user", "content": "Explain the difference between a mutex and a semaphore. " * 20}]


async def test_forwarded_to_anthropic_provider_that_counts(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=b'{"input_tokens": 1234}'))
    cfg = providers_at(upstream)
    cfg["providers"]["anthropic"] = {"base_url": upstream.url, "api_key": "sk-ant-test"}
    gw = await gateway(cfg)
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k")
    result = await client.messages.count_tokens(model="anthropic/claude-sonnet-4-6", messages=MESSAGES)  # type: ignore[arg-type]
    assert result.input_tokens == 1234
    assert upstream.last.path == "/v1/messages/count_tokens"
    assert upstream.last.json["model"] == "claude-sonnet-4-6"
    assert upstream.last.headers["x-api-key"] == "sk-ant-test"


async def test_estimated_locally_for_providers_that_cannot_count(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k")
    for model in ("up-openai/gpt", "up-anthropic/claude", "up-ollama/llama"):
        result = await client.messages.count_tokens(model=model, messages=MESSAGES)  # type: ignore[arg-type]
        assert 200 < result.input_tokens < 400  # ~1,160 characters of English
    assert upstream.seen == []


async def test_falls_back_to_estimate_when_upstream_cannot(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(status=404, body=b'{"type":"error","error":{"type":"not_found_error","message":"no"}}'))
    cfg = providers_at(upstream)
    cfg["providers"]["anthropic"] = {"base_url": upstream.url, "api_key": "sk-ant-test"}
    gw = await gateway(cfg)
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k")
    result = await client.messages.count_tokens(model="anthropic/claude-sonnet-4-6", messages=MESSAGES)  # type: ignore[arg-type]
    assert result.input_tokens == estimate_anthropic({"messages": MESSAGES})


def test_estimate_grows_with_content_and_counts_tools_images_cjk():
    small = estimate_anthropic({"messages": [{"role": "user", "content": "hi"}]})
    tools = estimate_anthropic(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {
                    "name": "weather",
                    "input_schema": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "description": "the city name"}},
                    },
                }
            ],
        }
    )
    image = estimate_anthropic(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                    ],
                }
            ]
        }
    )
    cjk = estimate_anthropic({"messages": [{"role": "user", "content": "你好世界" * 50}]})
    assert small < tools and image >= 1600 and cjk >= 200


@pytest.mark.parametrize("body", [b"{}", b'{"model": "up-openai/x"}', b"nope"])
async def test_bad_count_tokens_request_is_400(upstream: FakeUpstream, gateway: GatewayFactory, body: bytes):
    from aiohttp import ClientSession

    gw = await gateway(providers_at(upstream))
    async with ClientSession() as s, s.post(gw.url + "/v1/messages/count_tokens", data=body) as r:
        assert r.status == 400
        assert json.loads(await r.read())["type"] == "error"
