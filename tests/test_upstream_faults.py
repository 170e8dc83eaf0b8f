"""The gateway in front of a faulty upstream, with the official SDKs as clients: replies far past
the client's flow-control mark, a connection lost before the reply (sent once, never again
silently), the first-byte timeout, and the idle pool after a burst. Every test counts the requests
the upstream saw."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import anthropic
import openai
import pytest

from dragoman.transport.upstream import MAX_IDLE_PER_HOST
from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion, providers_at
from tests.rawserver import Peer, reply, settle
from tests.resil_helpers import anthropic_message

USER = [{"role": "user", "content": "hi"}]
LONG = "word " * (600 * 1024)  # a 3 MiB answer: a 64k-token reply is this size


def oai(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=60)


def ant(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=60)


@pytest.mark.parametrize("model", ["up-openai/m", "up-anthropic/m"])  # pass-through, translated
async def test_large_non_streaming_reply_arrives_whole(upstream: FakeUpstream, gateway: GatewayFactory, model: str):
    upstream.default = lambda seen: Reply(
        body=chat_completion(LONG) if seen.path.endswith("/chat/completions") else anthropic_message(LONG)
    )
    gw = await gateway(providers_at(upstream))
    out = await oai(gw.url).chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    assert out.choices[0].message.content == LONG
    assert len(upstream.seen) == 1


async def test_large_non_streaming_reply_to_anthropic_client(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=anthropic_message(LONG))
    gw = await gateway(providers_at(upstream))
    out = await ant(gw.url).messages.create(model="up-anthropic/m", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert out.content[0].text == LONG  # type: ignore[union-attr]
    assert len(upstream.seen) == 1


async def test_large_error_body_is_the_upstream_error(upstream: FakeUpstream, gateway: GatewayFactory):
    detail = "x" * (2 << 20)
    upstream.reply(
        Reply(status=400, body=json.dumps({"error": {"message": detail, "type": "invalid_request_error"}}).encode())
    )
    gw = await gateway(providers_at(upstream))
    with pytest.raises(openai.BadRequestError) as err:
        await oai(gw.url).chat.completions.create(model="up-openai/m", messages=USER)  # type: ignore[arg-type]
    assert err.value.status_code == 400 and detail in str(err.value.body)
    assert len(upstream.seen) == 1


async def test_large_count_tokens_reply(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=json.dumps({"input_tokens": 77, "pad": "y" * (2 << 20)}).encode()))
    cfg = providers_at(upstream)
    cfg["providers"]["anthropic"] = {"base_url": upstream.url, "api_key": "sk-ant-test"}
    gw = await gateway(cfg)
    result = await ant(gw.url).messages.count_tokens(model="anthropic/claude-sonnet-4-6", messages=USER)  # type: ignore[arg-type]
    assert result.input_tokens == 77  # the upstream's count, not the local estimate after a timeout
    assert len(upstream.seen) == 1


async def test_connection_lost_before_the_reply_is_not_sent_twice(serve, gateway: GatewayFactory):
    async def handle(peer: Peer) -> None:
        await peer.request()
        peer.write(reply(chat_completion("first"), headers="Content-Type: application/json\r\n"))
        await peer.request()  # the second arrives on the kept connection; the server drops it

    s = await serve(handle)
    gw = await gateway(providers_at(s))
    client = oai(gw.url)
    first = await client.chat.completions.create(model="up-openai/m", messages=USER)  # type: ignore[arg-type]
    assert first.choices[0].message.content == "first"
    with pytest.raises(openai.InternalServerError) as err:
        await client.chat.completions.create(model="up-openai/m", messages=USER)  # type: ignore[arg-type]
    assert err.value.status_code == 502
    assert "up-openai: upstream connection lost before the reply" in err.value.message
    assert len(s.requests) == 2 and len(s.peers) == 1  # the second POST went out once


@pytest.mark.parametrize("stream", [False, True])
async def test_first_byte_timeout(serve, gateway: GatewayFactory, stream: bool):
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.until_closed()  # accepts the request, never answers

    s = await serve(handle)
    cfg = providers_at(s)
    cfg["providers"]["up-anthropic"]["first_byte_timeout"] = 0.3
    gw = await gateway(cfg)
    with pytest.raises(anthropic.APIStatusError) as err:
        await ant(gw.url).messages.create(model="up-anthropic/m", max_tokens=5, messages=USER, stream=stream)  # type: ignore[arg-type]
    assert err.value.status_code == 504
    assert err.value.body == {
        "type": "error",
        "error": {
            "type": "timeout_error",
            "message": "up-anthropic: upstream timed out waiting for the reply (nothing within 0.3 s)",
        },
    }
    assert len(s.requests) == 1


async def test_idle_upstream_connections_after_a_burst_settle_at_the_bound(serve, gateway: GatewayFactory):
    everyone = asyncio.Event()
    burst = 200

    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            if len(s.requests) >= burst:
                everyone.set()
            await everyone.wait()  # all in flight at once: one upstream connection each
            peer.write(reply(chat_completion(), headers="Content-Type: application/json\r\n"))

    s = await serve(handle)
    gw = await gateway(providers_at(s))
    body = json.dumps({"model": "up-openai/m", "messages": USER})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> int:
            async with session.post(gw.url + "/v1/chat/completions", data=body) as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(one() for _ in range(burst)))
    assert statuses == [200] * burst and len(s.requests) == burst and len(set(s.peers)) == burst
    # what is left open is the idle pool's bound, on both ends
    assert await settle(lambda: s.open, MAX_IDLE_PER_HOST) == MAX_IDLE_PER_HOST
    assert gw.gateway.upstream.open == gw.gateway.upstream.idle == MAX_IDLE_PER_HOST
