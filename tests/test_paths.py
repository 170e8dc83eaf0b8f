"""Paths: every endpoint answers without /v1 too, a doubled /v1/v1 says what is wrong in the
client's own envelope, and a wrong method is a 405 naming the allowed ones."""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import pytest

from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion, providers_at

ANTHROPIC_REPLY = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi there"}],'
    b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}'
)


async def test_openai_sdk_without_v1_in_its_base_url(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=chat_completion("no v1 needed")))
    gw = await gateway(providers_at(upstream, aliases={"short-name": "up-openai/m"}))
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")  # posts to /chat/completions
    reply = await client.chat.completions.create(model="up-openai/m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "no v1 needed"
    assert upstream.last.path == "/v1/chat/completions" and upstream.last.json["model"] == "m"
    assert "short-name" in [m.id async for m in client.models.list()]  # /models


async def test_messages_and_count_tokens_without_v1(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    gw = await gateway(providers_at(upstream))
    async with aiohttp.ClientSession() as http:
        body = {"model": "up-anthropic/m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
        async with http.post(gw.url + "/messages", json=body, headers={"anthropic-version": "2023-06-01"}) as r:
            assert r.status == 200 and (await r.json())["content"][0]["text"] == "hi there"
        async with http.post(gw.url + "/messages/count_tokens", json=body) as r:
            assert r.status == 200 and (await r.json())["input_tokens"] > 0
    assert upstream.seen[0].path == "/v1/messages"


async def test_anthropic_base_url_ending_in_v1_is_explained(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as err:
        await client.messages.create(model="up-anthropic/m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"  # Anthropic's envelope
    message = body["error"]["message"]
    assert "/v1 twice" in message and f"Set it to {gw.url} " in message
    assert not upstream.seen


async def test_openai_base_url_with_v1_twice_is_explained(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(model="up-openai/m", messages=[{"role": "user", "content": "x"}])
    body = err.value.body
    assert isinstance(body, dict) and "/v1 twice" in body["message"] and f"{gw.url}/v1 for" in body["message"]
    assert err.value.response.json()["error"]["type"] == "not_found_error"  # OpenAI's envelope
    assert not upstream.seen


@pytest.mark.parametrize(
    ("method", "path", "allow", "envelope"),
    [
        ("GET", "/v1/chat/completions", "POST", "openai"),
        ("GET", "/chat/completions", "POST", "openai"),
        ("GET", "/v1/messages", "POST", "anthropic"),
        ("PUT", "/messages/count_tokens", "POST", "anthropic"),
        ("POST", "/v1/models", "GET, HEAD", "openai"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    gateway: GatewayFactory, upstream: FakeUpstream, method: str, path: str, allow: str, envelope: str
):
    gw = await gateway(providers_at(upstream))
    async with aiohttp.ClientSession() as http, http.request(method, gw.url + path) as r:
        assert r.status == 405 and r.headers["Allow"] == allow
        body = await r.json()
    error = body["error"]
    assert error["type"] == "invalid_request_error" and f"accepts {allow.replace(', ', ' or ')}" in error["message"]
    assert (body.get("type") == "error") is (envelope == "anthropic")


async def test_unknown_path_is_still_404(gateway: GatewayFactory, upstream: FakeUpstream):
    gw = await gateway(providers_at(upstream))
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/v2/whatever") as r:
        assert r.status == 404 and "Allow" not in r.headers
        assert (await r.json())["error"]["type"] == "not_found_error"
