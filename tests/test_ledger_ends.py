"""Streams that do not end well are recorded with what was seen, and say how they ended: the client
left (`client_gone`), or the upstream broke or sent an error event (`broken`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import openai
import pytest

from dragoman.canonical import Usage
from dragoman.store import ledger
from dragoman.store.ledger.query import recent
from tests.conftest import FakeUpstream, GatewayFactory, Reply
from tests.recorded import cassette
from tests.test_ledger_usage import MODELS, config, cost_of, ledger_record, pieces, usage_of
from tests.usage_cases import CASES, PYDANTIC, SSE, anthropic_usage

CASE = {case.id: case for case in CASES}
COMPACTION = CASE["anthropic-cache-read-compaction-stream"]  # message_start reports cache reads
OPENAI_STREAM = CASE["openai-reasoning-stream"]
MINIMAX_ERROR = PYDANTIC + "cassettes/test_openrouter/test_openrouter_stream_error.yaml"


def before_the_end(body: bytes) -> bytes:
    """An Anthropic stream up to its message_delta: everything but the final usage and the end."""
    return body[: body.index(b"event: message_delta")]


def start_usage(body: bytes) -> Usage:
    """What the stream's message_start reported."""
    line = next(line for line in body.split(b"\n") if line.startswith(b'data: {"type":"message_start"'))
    u = json.loads(line[len(b"data: ") :])["message"]["usage"]
    return anthropic_usage(
        u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"]
    )


async def request_id_of(stream: Any) -> str:
    return str(stream.response.headers["x-dragoman-request-id"])


@pytest.mark.parametrize("front", ["anthropic", "openai"])
async def test_a_stream_the_client_left_is_recorded_with_the_usage_seen(
    front: str, upstream: FakeUpstream, gateway: GatewayFactory
):
    body = COMPACTION.body()
    upstream.reply(Reply(body=pieces(before_the_end(body), 300), content_type=SSE, hang=True))
    gw = await gateway(config(upstream))
    model = f"up-anthropic/{MODELS['up-anthropic']}"
    if front == "anthropic":
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0) as client:
            stream = await client.messages.create(
                model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            request_id = await request_id_of(stream)
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    break  # the answer started: leave
            await stream.close()
    else:
        async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as oai:
            chunks = await oai.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            request_id = await request_id_of(chunks)
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            await chunks.close()
    await asyncio.wait_for(upstream.closed_early.wait(), 30)  # the gateway let go of the upstream too
    record = await ledger_record(gw, request_id)
    assert record["end"] == "client_gone" and record["stream"] is True
    assert record["passthrough"] is (front == "anthropic")
    seen = start_usage(body)
    assert seen.cache_read_tokens == 55096  # cache reads are billed even when the answer was cut short
    assert usage_of(record) == seen
    assert record["cost_usd"] == pytest.approx(cost_of(seen))
    assert record["ttfb_ms"] is not None and record["provider"] == "up-anthropic"


@pytest.mark.parametrize("front", ["anthropic", "openai"])
async def test_an_upstream_that_breaks_mid_stream_is_recorded_as_broken(
    front: str, upstream: FakeUpstream, gateway: GatewayFactory
):
    body = COMPACTION.body()
    upstream.reply(Reply(body=pieces(before_the_end(body), 300), content_type=SSE, abort=True))
    gw = await gateway(config(upstream))
    model = f"up-anthropic/{MODELS['up-anthropic']}"
    if front == "anthropic":
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0) as client:
            stream = await client.messages.create(
                model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            request_id = await request_id_of(stream)
            with pytest.raises(anthropic.APIStatusError):
                async for _ in stream:
                    pass
    else:
        async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as oai:
            chunks = await oai.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            request_id = await request_id_of(chunks)
            with pytest.raises(openai.APIError):
                async for _ in chunks:
                    pass
    record = await ledger_record(gw, request_id)
    assert (record["end"], record["status"]) == ("broken", 200)
    assert record["error_type"] == "api_error" and "up-anthropic" in record["error"]
    assert usage_of(record) == start_usage(body)


async def test_an_openai_stream_cut_before_its_usage_has_none(upstream: FakeUpstream, gateway: GatewayFactory):
    body = OPENAI_STREAM.body()
    upstream.reply(Reply(body=[body[: len(body) // 2]], content_type=SSE, abort=True))
    gw = await gateway(config(upstream))
    async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as oai:
        chunks = await oai.chat.completions.create(
            model=f"up-openai/{MODELS['up-openai']}", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        request_id = await request_id_of(chunks)
        with pytest.raises(openai.APIError):
            async for _ in chunks:
                pass
    record = await ledger_record(gw, request_id)
    assert record["end"] == "broken" and record["passthrough"] is True
    assert record["usage"] is None and record["cost_usd"] is None  # nothing reported: nothing made up


@pytest.mark.parametrize("front", ["openai", "anthropic"])
async def test_an_error_event_inside_the_stream_is_recorded_as_broken(
    front: str, upstream: FakeUpstream, gateway: GatewayFactory
):
    """OpenRouter's MiniMax stream that ends in an error chunk (recorded)."""
    body = cassette(MINIMAX_ERROR)[0].body
    upstream.reply(Reply(body=pieces(body), content_type=SSE))
    gw = await gateway(config(upstream))
    model = f"openrouter/{MODELS['openrouter']}"
    if front == "openai":
        async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as oai:
            chunks = await oai.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            request_id = await request_id_of(chunks)
            with pytest.raises(openai.APIError):
                async for _ in chunks:
                    pass
    else:
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0) as client:
            stream = await client.messages.create(
                model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            request_id = await request_id_of(stream)
            with pytest.raises(anthropic.APIStatusError):
                async for _ in stream:
                    pass
    record = await ledger_record(gw, request_id)
    assert record["end"] == "broken" and record["status"] == 200
    assert record["error_type"] and record["error"]
    assert record["passthrough"] is (front == "openai")


async def test_a_client_that_leaves_before_the_answer_is_recorded_with_the_attempt(gateway: GatewayFactory):
    """An upstream that takes the request and never answers; the client gives up first."""
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        received.set()
        await asyncio.sleep(3600)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = {
            "server": {"default_provider": "slow", "retries": 0},
            "providers": {
                "slow": {"dialect": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-slow-0000"}
            },
        }
        gw = await gateway(cfg)
        async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0, timeout=1.0) as oai:
            with pytest.raises(openai.APITimeoutError):
                await oai.chat.completions.create(model="slow/m", messages=[{"role": "user", "content": "hi"}])
        assert received.is_set()
        sink = ledger.find(gw.gateway)
        assert sink is not None
        db = await sink.database()
        await eventually_rows(db, 1)
        (record,) = await recent(db, limit=10)
    finally:
        server.close()
    assert (record["end"], record["status"], record["provider"], record["upstream_model"]) == (
        "client_gone",
        499,
        "slow",
        "m",
    )
    (attempt,) = record["attempts"]
    assert attempt["provider"] == "slow" and attempt["status"] is None and attempt["latency_ms"] > 0
    assert record["usage"] is None and record["ttfb_ms"] is None


async def eventually_rows(db: Any, n: int, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(await recent(db, limit=n + 10)) < n:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"fewer than {n} rows in the ledger")
        await asyncio.sleep(0.02)
