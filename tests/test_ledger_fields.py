"""Every field of a ledger record, filled where it applies: requests refused before routing, the
gateway key's name, aliases, routes with a fallback (each attempt's status and latency), router rules,
upstream errors (redacted), the client family, and the bodies — kept only with `log_bodies`, redacted
and bounded."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import ClientSession

from dragoman.server.fronts import BODY_LIMIT
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway
from tests.test_ledger_usage import MODELS, config, cost_of, ledger_record, pieces, settled, usage_of
from tests.usage_cases import CASES, SSE

CASE = {case.id: case for case in CASES}
HI = {"role": "user", "content": "hi"}
GATEWAY_KEYS = ["gk-first-0123456789", "gk-second-0123456789"]
UPSTREAM_SECRET = "sk-up-openai-secret"  # providers_at's key for up-openai


async def post(gw: RunningGateway, path: str, data: bytes, **headers: str) -> tuple[int, dict[str, Any], str]:
    async with ClientSession() as session, session.post(gw.url + path, data=data, headers=headers) as resp:
        return resp.status, json.loads(await resp.read()), resp.headers["x-dragoman-request-id"]


REFUSALS = [
    pytest.param(
        "/v1/chat/completions", b'{"model": "up-openai/m", "messages": [', {}, 400, "openai", None, id="bad-json"
    ),
    pytest.param("/v1/messages", b"[1, 2]", {}, 400, "anthropic", None, id="not-an-object"),
    pytest.param(
        "/v1/chat/completions",
        json.dumps({"model": "minimax/MiniMax-M2.7", "messages": [HI]}).encode(),
        {},
        None,
        "openai",
        "minimax/MiniMax-M2.7",
        id="provider-not-configured",
    ),
    pytest.param(
        "/v1/messages",
        json.dumps({"model": "up-anthropic/m", "max_tokens": 8, "messages": [HI]}).encode(),
        {"x-api-key": "gk-wrong-0123456789"},
        401,
        "anthropic",
        None,
        id="auth-failure",
    ),
    pytest.param(
        "/v1/chat/completions",
        json.dumps({"model": "up-openai/m", "messages": [{"role": "user", "content": "x" * 5000}]}).encode(),
        {"authorization": f"Bearer {GATEWAY_KEYS[0]}"},
        413,
        "openai",
        None,
        id="body-too-large",
    ),
]


@pytest.mark.parametrize(("path", "data", "headers", "status", "front", "model"), REFUSALS)
async def test_requests_refused_before_routing_are_recorded(
    path: str,
    data: bytes,
    headers: dict[str, str],
    status: int | None,
    front: str,
    model: str | None,
    upstream: FakeUpstream,
    gateway: GatewayFactory,
):
    gw = await gateway(config(upstream, api_keys=GATEWAY_KEYS, max_body_bytes=4096))
    if "x-api-key" not in headers and "authorization" not in headers:
        headers = {**headers, "authorization": f"Bearer {GATEWAY_KEYS[1]}"}
    got, body, request_id = await post(gw, path, data, **headers)
    assert got >= 400 and (status is None or got == status)
    record = await ledger_record(gw, request_id)
    assert (record["status"], record["end"], record["front"], record["model"]) == (got, "error", front, model)
    assert record["provider"] is None and record["attempts"] == [] and record["usage"] is None
    assert record["error_type"] and record["error"]
    message = body["error"]["message"]
    assert record["error"] == message  # what the client was told
    assert upstream.seen == []  # refused before any upstream
    assert "gk-" not in json.dumps(record).replace("gk-wrong", "")  # the keys themselves are never kept
    if status == 401:
        assert record["key_name"] is None
    else:
        assert record["key_name"] == (
            "api_keys[0]"
            if "authorization" in headers and GATEWAY_KEYS[0] in headers["authorization"]
            else "api_keys[1]"
        )


async def test_key_name_alias_client_and_the_answer(upstream: FakeUpstream, gateway: GatewayFactory):
    case = CASE["anthropic-cache-write-and-read"]
    upstream.reply(Reply(body=case.body()))
    cfg = config(upstream, api_keys=GATEWAY_KEYS)
    cfg["aliases"] = {"house-claude": f"up-anthropic/{MODELS['up-anthropic']}"}
    gw = await gateway(cfg)
    async with anthropic.AsyncAnthropic(
        base_url=gw.url,
        api_key=GATEWAY_KEYS[1],
        max_retries=0,
        default_headers={"user-agent": "claude-cli/2.0.31 (external, cli)"},
    ) as client:
        raw = await client.messages.with_raw_response.create(model="house-claude", max_tokens=64, messages=[HI])
    record = await ledger_record(gw, raw.headers["x-dragoman-request-id"])
    assert (record["model"], record["route"], record["provider"]) == ("house-claude", "house-claude", "up-anthropic")
    assert record["key_name"] == "api_keys[1]" and GATEWAY_KEYS[1] not in json.dumps(record)
    assert (record["client"], record["user_agent"]) == ("claude-code", "claude-cli/2.0.31 (external, cli)")
    assert usage_of(record) == case.want and record["cost_usd"] == pytest.approx(cost_of(case.want))
    assert record["method"] == "POST" and record["path"] == "/v1/messages" and record["instance"]


async def test_a_fallback_records_every_attempt_with_its_status_and_latency(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    case = CASE["openai-prompt-cache-read"]
    overloaded = Reply(status=529, body=b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    upstream.reply(overloaded, Reply(body=case.body()))
    cfg = config(upstream)
    cfg["routes"] = {
        "smart": {"targets": [f"up-anthropic/{MODELS['up-anthropic']}", f"up-openai/{MODELS['up-openai']}"]}
    }
    gw = await gateway(cfg)
    async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(model="smart", messages=[HI])
    record = await ledger_record(gw, raw.headers["x-dragoman-request-id"])
    assert record["route"] == "smart" and record["provider"] == "up-openai" and record["passthrough"] is True
    assert [(a["provider"], a["status"], a["error_type"]) for a in record["attempts"]] == [
        ("up-anthropic", 529, "overloaded_error"),
        ("up-openai", 200, None),
    ]
    assert all(a["latency_ms"] > 0 for a in record["attempts"])
    assert record["latency_ms"] >= sum(a["latency_ms"] for a in record["attempts"])
    assert usage_of(record) == case.want and record["status"] == 200 and record["end"] == "ok"


async def test_a_router_rule_is_recorded(upstream: FakeUpstream, gateway: GatewayFactory):
    case = CASE["openai-reasoning-stream"]
    upstream.reply(Reply(body=pieces(case.body()), content_type=SSE))
    gw = await gateway(
        config(upstream, default_provider="up-openai") | {"router": {"think": f"up-openai/{MODELS['up-openai']}"}}
    )
    async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="any-model", messages=[HI], reasoning_effort="high", stream=True
        )
        async for _ in await settled(raw.parse()):
            pass
    record = await ledger_record(gw, raw.headers["x-dragoman-request-id"])
    assert (record["model"], record["rule"], record["upstream_model"]) == ("any-model", "think", MODELS["up-openai"])
    assert usage_of(record) == case.want


async def test_an_upstream_error_is_recorded_redacted(upstream: FakeUpstream, gateway: GatewayFactory):
    echo = {"error": {"message": f"invalid key {UPSTREAM_SECRET} for this org", "type": "invalid_request_error"}}
    upstream.reply(Reply(status=400, body=json.dumps(echo).encode()))
    gw = await gateway(config(upstream))
    async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model=f"up-openai/{MODELS['up-openai']}", messages=[HI])
    record = await ledger_record(gw, err.value.response.headers["x-dragoman-request-id"])
    assert (record["status"], record["end"], record["error_type"]) == (400, "error", "invalid_request_error")
    assert "[redacted]" in record["error"] and UPSTREAM_SECRET not in json.dumps(record)
    assert [(a["provider"], a["status"]) for a in record["attempts"]] == [("up-openai", 400)]
    assert UPSTREAM_SECRET not in record["attempts"][0]["error"]
    assert record["provider"] is None or record["provider"] == "up-openai"


@pytest.mark.parametrize("stream", [False, True])
async def test_bodies_are_kept_with_log_bodies_redacted(stream: bool, upstream: FakeUpstream, gateway: GatewayFactory):
    case = CASE["openai-reasoning-stream" if stream else "openai-prompt-cache-read"]
    upstream.reply(Reply(body=pieces(case.body()) if stream else case.body(), content_type=case.content_type))
    gw = await gateway(config(upstream, log_bodies=True))
    prompt = f"my provider key is {UPSTREAM_SECRET}, and my own is sk-proj-abcdefghijklmnop"
    async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=f"up-openai/{MODELS['up-openai']}", messages=[{"role": "user", "content": prompt}], stream=stream
        )
        parsed = await settled(raw.parse())
        if stream:
            async for _ in parsed:
                pass
    record = await ledger_record(gw, raw.headers["x-dragoman-request-id"])
    sent = json.loads(record["request_body"])
    assert sent["messages"][0]["content"] == "my provider key is [redacted], and my own is [redacted]"
    assert UPSTREAM_SECRET not in json.dumps(record) and "abcdefghijklmnop" not in json.dumps(record)
    if stream:
        assert record["response_body"].startswith("data: {") and record["response_body"].rstrip().endswith("[DONE]")
    else:
        assert json.loads(record["response_body"]) == json.loads(case.body())


async def test_kept_bodies_are_bounded(upstream: FakeUpstream, gateway: GatewayFactory):
    case = CASE["openai-prompt-cache-read"]
    upstream.reply(Reply(body=case.body()))
    gw = await gateway(config(upstream, log_bodies=True))
    long = "y" * (3 * BODY_LIMIT)
    async with openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=f"up-openai/{MODELS['up-openai']}", messages=[{"role": "user", "content": long}]
        )
    record = await ledger_record(gw, raw.headers["x-dragoman-request-id"])
    kept = record["request_body"]
    assert (
        len(kept) < BODY_LIMIT + 100 and kept.endswith("bytes in all]") and str(len(raw.http_request.content)) in kept
    )


async def test_a_refused_request_keeps_its_body_and_the_error_sent(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(config(upstream, log_bodies=True))
    status, body, request_id = await post(gw, "/v1/chat/completions", b'{"model": ')
    record = await ledger_record(gw, request_id)
    assert status == 400 and record["request_body"] == '{"model": '
    assert json.loads(record["response_body"]) == body
