"""Usage in the ledger equals what the provider reported, on every path.

Each recorded reply in `usage_cases.CASES` is replayed by a fake upstream and asked for by the
official OpenAI and Anthropic SDKs, so every upstream dialect (OpenAI, Anthropic, Ollama, Responses)
is reached from both client dialects: pass-through where they match, translated where they differ,
streamed and not, as the recording was. The ledger row (read back from the SQLite store) must hold
the recording's tokens normalised — uncached input, cache read, cache write, output, reasoning —,
the cost the price table's arithmetic gives, and the request's other fields.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import anthropic
import openai
import pytest

from dragoman.canonical import Usage
from dragoman.store import ledger
from dragoman.store.ledger.query import recent
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway, providers_at
from tests.usage_cases import CASES, Case, last_report

# distinct rates per kind of token, so a token billed as the wrong kind changes the cost
PRICE = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}
MODELS = {
    "up-openai": "gpt-rec",
    "up-anthropic": "claude-rec",
    "up-ollama": "llama-rec",
    "up-responses": "gpt-5-rec",
    "deepseek": "deepseek-chat",
    "openrouter": "moonshotai/kimi-k2.5",
    "moonshot": "kimi-k2.6",
}
HI = {"role": "user", "content": "Say hi"}


def config(upstream: FakeUpstream, **server: Any) -> dict[str, Any]:
    cfg = providers_at(upstream, server=server)
    cfg["providers"]["up-responses"] = {
        "dialect": "responses",
        "base_url": upstream.url + "/v1",
        "api_key": "sk-up-responses-secret",
    }
    for pid in ("deepseek", "openrouter", "moonshot"):
        cfg["providers"][pid] = {"base_url": upstream.url + "/v1", "api_key": f"sk-{pid}-secret-0000"}
    cfg["prices"] = {f"{pid}/{model}": PRICE for pid, model in MODELS.items()}
    return cfg


def cost_of(u: Usage) -> float:
    per_million = (
        u.input_tokens * PRICE["input"]
        + u.output_tokens * PRICE["output"]
        + u.cache_read_tokens * PRICE["cache_read"]
        + u.cache_write_tokens * PRICE["cache_write"]
    )
    return per_million / 1_000_000


def pieces(body: bytes, size: int = 700) -> list[bytes]:
    """The reply in several writes, so markers and events straddle reads."""
    return [body[i : i + size] for i in range(0, len(body), size)]


async def ledger_record(gw: RunningGateway, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The request's row, once the writer has stored it."""
    sink = ledger.find(gw.gateway)
    assert sink is not None
    db = await sink.database()
    deadline = time.monotonic() + timeout
    while True:
        for record in await recent(db, limit=500):
            if record["request_id"] == request_id:
                return record
        if time.monotonic() > deadline:
            raise AssertionError(f"request {request_id} never reached the ledger ({sink.stats()})")
        await asyncio.sleep(0.02)


def usage_of(record: dict[str, Any]) -> Usage:
    assert record["usage"] is not None, "no usage recorded"
    return Usage(**record["usage"])


async def ask_openai(gw: RunningGateway, case: Case, model: str, include_usage: bool) -> tuple[str, list[Any]]:
    """Returns the request id the client got, and what it parsed (the chunks, or the completion)."""
    async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="client-key", max_retries=0) as client:
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if case.stream and include_usage else {}
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=[HI], stream=case.stream, **extra
        )
        request_id = raw.headers["x-dragoman-request-id"]
        parsed = await settled(raw.parse())
        if case.stream:
            return request_id, [chunk async for chunk in parsed]  # type: ignore[union-attr]
        return request_id, [parsed]


async def ask_anthropic(gw: RunningGateway, case: Case, model: str) -> tuple[str, list[Any]]:
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key="client-key", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(
            model=model, max_tokens=1024, messages=[HI], stream=case.stream
        )
        request_id = raw.headers["x-dragoman-request-id"]
        parsed = await settled(raw.parse())
        if case.stream:
            return request_id, [event async for event in parsed]  # type: ignore[union-attr]
        return request_id, [parsed]


async def settled(value: Any) -> Any:
    """The SDKs' raw responses parse to a value, or (some streams) to an awaitable of one."""
    return await value if inspect.isawaitable(value) else value


def test_each_case_states_what_its_recording_reports():
    """The numbers the cases are built from are the recordings' own."""
    for case in CASES:
        report = last_report(case.body())
        assert {k: report.get(k) for k in case.reported} == case.reported, case.id


FRONTS = [
    pytest.param(case, front, include_usage, id=f"{case.id}-{front}{'' if include_usage else '-no-include-usage'}")
    for case in CASES
    for front in case.fronts
    for include_usage in ((True, False) if front == "openai" and case.stream else (True,))
]


@pytest.mark.parametrize(("case", "front", "include_usage"), FRONTS)
async def test_the_ledger_holds_the_providers_usage(
    case: Case, front: str, include_usage: bool, upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.reply(Reply(body=pieces(case.body()) if case.stream else case.body(), content_type=case.content_type))
    gw = await gateway(config(upstream))
    model = f"{case.provider}/{MODELS[case.provider]}"
    started = time.time()
    if front == "openai":
        request_id, got = await ask_openai(gw, case, model, include_usage)
    else:
        request_id, got = await ask_anthropic(gw, case, model)
    record = await ledger_record(gw, request_id)

    assert usage_of(record) == case.want
    assert record["cost_usd"] == pytest.approx(cost_of(case.want), rel=1e-9, abs=1e-12)
    passthrough = front == case.dialect and case.provider != "moonshot"  # Moonshot streams are re-encoded
    assert record["passthrough"] is passthrough
    assert (record["front"], record["model"], record["route"]) == (front, model, None)
    assert (record["provider"], record["upstream_model"], record["upstream_dialect"]) == (
        case.provider,
        MODELS[case.provider],
        case.dialect,
    )
    assert (record["stream"], record["status"], record["end"]) == (case.stream, 200, "ok")
    assert record["error"] is None and record["error_type"] is None
    assert (record["stop_reason"], record["tool_calls"]) == (case.stop, case.tools)
    assert record["client"] == f"{front}-python" and record["key_name"] is None
    assert [(a["provider"], a["model"], a["status"]) for a in record["attempts"]] == [
        (case.provider, MODELS[case.provider], 200)
    ]
    assert record["attempts"][0]["latency_ms"] > 0
    assert 0 < record["ttfb_ms"] <= record["latency_ms"]
    assert started - 1 <= record["time"] <= time.time()
    assert record["request_body"] is None and record["response_body"] is None  # log_bodies is off

    if front == "openai" and case.stream:
        reports = [chunk.usage for chunk in got if chunk.usage is not None]
        if include_usage and not (passthrough and case.choice_usage):
            assert reports, "the client asked for usage and got none"
            assert reports[-1].prompt_tokens == case.want.prompt_tokens
            assert reports[-1].completion_tokens == case.want.output_tokens
        else:
            # the gateway asked upstream for the usage it records; the client, which did not, sees none
            assert reports == [] and all(chunk.choices for chunk in got)
    sent = upstream.last.json
    if case.stream and case.dialect == "openai":
        assert sent["stream_options"] == {"include_usage": True}


async def test_pass_through_streams_are_not_decoded_chunk_by_chunk(
    upstream: FakeUpstream, gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
):
    """On a pass-through stream the dialect's stream decoder is never made: usage comes from the tap."""
    from dragoman.dialects.anthropic.codec import AnthropicCodec
    from dragoman.dialects.openai.codec import OpenAICodec

    made: list[str] = []
    for cls in (OpenAICodec, AnthropicCodec):
        original = cls.stream_decoder

        def counting(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            made.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "stream_decoder", counting)
    by_id = {case.id: case for case in CASES}
    gw = await gateway(config(upstream))
    for case, front in (
        (by_id["openai-reasoning-stream"], "openai"),
        (by_id["anthropic-cache-control-stream"], "anthropic"),
    ):
        upstream.reply(Reply(body=pieces(case.body()), content_type=SSE_TYPE))
        model = f"{case.provider}/{MODELS[case.provider]}"
        if front == "openai":
            request_id, _ = await ask_openai(gw, case, model, include_usage=False)
        else:
            request_id, _ = await ask_anthropic(gw, case, model)
        assert usage_of(await ledger_record(gw, request_id)) == case.want
    assert made == []


SSE_TYPE = "text/event-stream"
