"""Routes with several targets, against fault-injecting upstreams on loopback: a fallback in order
on every failure class a retry takes (and not on a bad request), a context-length error falls to a
target whose model takes more, weighted spreads by its weights, least-busy prefers the idle target,
a cross-dialect fallback plans from the original body and never carries one provider's signature to
another, and when every target fails the client gets the last error in its own dialect, naming
what was tried. Every test counts the requests each upstream saw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import FakeUpstream, GatewayFactory, Reply
from tests.rawserver import Peer, Server
from tests.resil_helpers import FRONTS, SSE, USER, anthropic_events, ask, closed_port, error, ok, refused

SIGNATURE = "sig-minted-by-anthropic-EqQBCkYIAxgCIkD"


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


def base(url: str, dialect: str) -> str:
    return url + "/v1" if dialect == "openai" else url


def routed(
    first: str, second: str, dialect: str, *, strategy: str = "fallback", retries: int = 0, **route: Any
) -> dict[str, Any]:
    """Providers a (at `first`) and b (at `second`), both speaking `dialect`, behind route "coder"."""
    return {
        "server": {"default_provider": "a", "retries": retries, "retry_backoff": 0.01, "retry_backoff_max": 0.02},
        "providers": {
            "a": {"dialect": dialect, "base_url": base(first, dialect), "api_key": "sk-a-secret-key"},
            "b": {"dialect": dialect, "base_url": base(second, dialect), "api_key": "sk-b-secret-key"},
        },
        "routes": {"coder": {"targets": ["a/m1", "b/m2"], "strategy": strategy, **route}},
    }


async def failing(kind: str, dialect: str, serve: Any, fake: FakeUpstream) -> tuple[str, Any, dict[str, Any]]:
    """An upstream that fails in the way `kind` names: (its URL, what counts its requests, provider config)."""
    if kind == "refused":
        return f"http://127.0.0.1:{closed_port()}", None, {}
    if kind in ("reset", "first-byte"):

        async def handle(peer: Peer) -> None:
            if await peer.request() is not None and kind == "first-byte":
                await peer.until_closed()  # never answers

        s: Server = await serve(handle)
        return s.url, s.requests, {"first_byte_timeout": 0.3} if kind == "first-byte" else {}
    fake.default = error(dialect, int(kind), "primary down")
    return fake.url, fake.seen, {}


@pytest.mark.parametrize("kind", ["refused", "reset", "first-byte", "408", "429", "500", "503", "529"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("front", FRONTS)
async def test_falls_back_in_order_on_each_failure_class(
    upstream: FakeUpstream,
    second: FakeUpstream,
    gateway: GatewayFactory,
    serve: Any,
    front: str,
    stream: bool,
    kind: str,
):
    url, seen, extra = await failing(kind, front, serve, upstream)
    second.default = ok(front, stream, "from b")
    cfg = routed(url, second.url, front)
    cfg["providers"]["a"].update(extra)
    gw = await gateway(cfg)
    text, headers = await ask(gw.url, front, stream, model="coder")
    assert text == "from b"
    assert headers["x-dragoman-provider"] == "b" and headers["x-dragoman-attempts"] == "2"
    if seen is not None:
        assert len(seen) == 1
    assert len(second.seen) == 1 and second.last.json["model"] == "m2"


async def test_retries_on_the_target_then_falls_back(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = error("openai", 503)
    second.default = ok("openai", False, "from b")
    gw = await gateway(routed(upstream.url, second.url, "openai", retries=2))
    text, headers = await ask(gw.url, "openai", False, model="coder")
    assert text == "from b" and headers["x-dragoman-attempts"] == "4"
    assert len(upstream.seen) == 3 and len(second.seen) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
@pytest.mark.parametrize("front", FRONTS)
async def test_a_bad_request_does_not_fall_back(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory, front: str, status: int
):
    upstream.default = error(front, status, "your request is wrong")
    second.default = ok(front, False)
    gw = await gateway(routed(upstream.url, second.url, front, retries=2))
    exc = await refused(gw.url, front, False, model="coder")
    assert exc.status_code == status and "your request is wrong" in str(exc)
    assert exc.response.headers["x-dragoman-provider"] == "a"
    assert len(upstream.seen) == 1 and len(second.seen) == 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("front", FRONTS)
async def test_every_target_failing_is_the_last_error_naming_what_was_tried(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory, front: str, stream: bool
):
    upstream.default = error(front, 503, "a is down")
    second.default = error(front, 502, "b is down too")
    gw = await gateway(routed(upstream.url, second.url, front))
    exc = await refused(gw.url, front, stream, model="coder")
    assert exc.status_code == 502
    body = exc.body if isinstance(exc.body, dict) else {}
    if front == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "api_error"
        message = body["error"]["message"]
    else:
        message = body["message"]  # the openai SDK's body is the "error" object
    assert message == "b is down too (every target failed: a/m1, b/m2; 2 attempts)"
    assert exc.response.headers["x-dragoman-provider"] == "b" and exc.response.headers["x-dragoman-attempts"] == "2"
    assert len(upstream.seen) == 1 and len(second.seen) == 1


def overflow_config(small: str, big: str) -> dict[str, Any]:
    # built-in providers whose catalog knows each model's context window: kimi-for-coding 262,144,
    # claude-haiku-4-5 200,000, claude-sonnet-4-6 1,000,000
    return {
        "server": {"default_provider": "anthropic", "retries": 2, "retry_backoff": 0.01},
        "providers": {
            "kimi": {"base_url": small, "api_key": "sk-kimi-secret-key"},
            "anthropic": {"base_url": big, "api_key": "sk-ant-secret-key"},
        },
        "routes": {
            "coder": {"targets": ["kimi/kimi-for-coding", "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-6"]}
        },
    }


@pytest.mark.parametrize("front", FRONTS)
async def test_a_context_length_error_falls_to_a_target_that_takes_more(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory, front: str
):
    too_long = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 300000 tokens > 262144 maximum"},
    }
    upstream.default = Reply(status=400, body=json.dumps(too_long).encode())
    second.default = ok("anthropic", False, "big enough")
    gw = await gateway(overflow_config(upstream.url, second.url))
    text, headers = await ask(gw.url, front, False, model="coder")
    assert text == "big enough" and headers["x-dragoman-provider"] == "anthropic"
    assert len(upstream.seen) == 1  # no retry: a longer wait does not make the prompt shorter
    # haiku (200k) takes less than kimi-for-coding (262k): skipped, sonnet (1M) answers
    assert [s.json["model"] for s in second.seen] == ["claude-sonnet-4-6"]
    assert headers["x-dragoman-attempts"] == "2"


async def test_weighted_spreads_by_the_weights(upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory):
    upstream.default = ok("openai", False, "a")
    second.default = ok("openai", False, "b")
    gw = await gateway(routed(upstream.url, second.url, "openai", strategy="weighted", weights=[3, 1]))
    sem = asyncio.Semaphore(16)

    async def one() -> str:
        async with sem:
            return (await ask(gw.url, "openai", False, model="coder"))[0]

    answers = await asyncio.gather(*(one() for _ in range(200)))
    a = answers.count("a")
    assert a + answers.count("b") == 200
    assert 120 <= a <= 180, a  # 150 expected; the bound is ~4 standard deviations wide
    assert len(upstream.seen) == a and len(second.seen) == 200 - a  # one attempt each


async def test_weighted_falls_back_to_the_other_target(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = error("openai", 503)
    second.default = ok("openai", False, "b")
    gw = await gateway(routed(upstream.url, second.url, "openai", strategy="weighted", weights=[1, 0]))
    text, headers = await ask(gw.url, "openai", False, model="coder")
    assert text == "b" and headers["x-dragoman-attempts"] == "2"


async def test_least_busy_prefers_the_idle_target(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory
):
    held = Reply(body=anthropic_events("held")[:2], content_type=SSE, hang=True)
    upstream.reply(held)
    upstream.default = second.default = ok("anthropic", False, "quick")
    gw = await gateway(routed(upstream.url, second.url, "anthropic", strategy="least-busy"))
    body = {"model": "coder", "max_tokens": 5, "messages": USER, "stream": True}
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/messages", json=body) as r:
        assert r.headers["x-dragoman-provider"] == "a"  # a tie: the configured order
        await r.content.readuntil(b"\n\n")  # a is now busy with this stream
        for _ in range(3):
            _, headers = await ask(gw.url, "anthropic", False, model="coder")
            assert headers["x-dragoman-provider"] == "b"
    assert len(upstream.seen) == 1 and len(second.seen) == 3


THINKING_TURN = [
    {"role": "user", "content": "what is 2+2?"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "simple arithmetic", "signature": SIGNATURE},
            {"type": "text", "text": "4"},
        ],
    },
    {"role": "user", "content": "and 3+3?"},
]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_cross_dialect_fallback_plans_from_the_original_and_drops_the_signature(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory, stream: bool
):
    upstream.default = error("anthropic", 529, "overloaded")
    second.default = ok("openai", stream, "six")
    cfg: dict[str, Any] = {
        "server": {"default_provider": "ant", "retries": 0},
        "providers": {
            "ant": {"dialect": "anthropic", "base_url": upstream.url, "api_key": "sk-ant-secret-key"},
            "oai": {"dialect": "openai", "base_url": second.url + "/v1", "api_key": "sk-oai-secret-key"},
        },
        "routes": {"coder": {"targets": ["ant/claude-x", "oai/gpt-x"]}},
    }
    gw = await gateway(cfg)
    body = {
        "model": "coder",
        "max_tokens": 50,
        "messages": THINKING_TURN,
        "stream": stream,
        "metadata": {"user_id": "u1"},
    }
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/messages", json=body) as r:
        assert r.status == 200 and r.headers["x-dragoman-provider"] == "oai"
        assert r.headers["x-dragoman-attempts"] == "2"
        got = await r.read()
    assert b"six" in got
    # the same-dialect target was sent the client's body as it is, signature included
    [first] = upstream.seen
    assert first.json["model"] == "claude-x" and SIGNATURE in first.body.decode()
    # the OpenAI target: planned from the original body, in its own dialect, no signature anywhere
    [other] = second.seen
    wire = other.json
    assert other.path == "/v1/chat/completions" and wire["model"] == "gpt-x"
    assert SIGNATURE not in other.body.decode() and "signature" not in other.body.decode()
    assert [m["role"] for m in wire["messages"]] == ["user", "assistant", "user"]
    assert ("metadata" not in wire and "max_tokens" not in wire) or wire.get("max_tokens") == 50
    assert (
        "sk-ant-secret-key" not in other.body.decode() and other.headers["Authorization"] == "Bearer sk-oai-secret-key"
    )


async def test_an_openai_fallback_to_anthropic_plans_from_the_original(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = error("openai", 500)
    second.default = ok("anthropic", True, "translated")
    cfg: dict[str, Any] = {
        "server": {"default_provider": "oai", "retries": 0},
        "providers": {
            "oai": {"dialect": "openai", "base_url": upstream.url + "/v1", "api_key": "sk-oai-secret-key"},
            "ant": {
                "dialect": "anthropic",
                "base_url": second.url,
                "api_key": "sk-ant-secret-key",
                "max_tokens_default": 64,
            },
        },
        "routes": {"coder": {"targets": ["oai/gpt-x", "ant/claude-x"]}},
    }
    gw = await gateway(cfg)
    text, headers = await ask(gw.url, "openai", True, model="coder")
    assert text == "translated" and headers["x-dragoman-provider"] == "ant"
    assert upstream.last.json["model"] == "gpt-x"
    wire = second.last.json
    assert second.last.path == "/v1/messages" and wire["model"] == "claude-x"
    assert (
        wire["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}] or wire["messages"] == USER
    )
    assert "stream_options" not in wire  # the first target's own additions stayed with it
