"""Hostile or broken client input is a clear 4xx in the client's own envelope, never a 500 and never
a request upstream: bodies that lie about their encoding, JSON nested past any sane depth, block
types that are not strings, undecodable header bytes, model names of a megabyte. Large bodies are
decoded off the event loop."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any

import aiohttp
import pytest

from dragoman.routing import CACHE_BYTES, CACHE_ENTRIES, MAX_MODEL_NAME
from dragoman.server import body as body_mod
from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion, providers_at

USER = [{"role": "user", "content": "hi"}]
FRONTS = [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")]


async def post(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), auto_decompress=False) as s,
        s.post(url, data=data, headers={"content-type": "application/json", **(headers or {})}) as r,
    ):
        raw = await r.read()
        return r.status, json.loads(raw) if raw else None


def request(path: str, model: str = "up-openai/m", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": USER, **extra}
    if path == "/v1/messages":
        body.setdefault("max_tokens", 5)
    return body


def message_of(error: Any, envelope: str) -> str:
    """The error's message, checking it is in the envelope the client speaks."""
    if envelope == "anthropic":
        assert error["type"] == "error" and set(error["error"]) == {"type", "message"}, error
        return str(error["error"]["message"])
    assert set(error["error"]) == {"message", "type", "param", "code"}, error
    return str(error["error"]["message"])


# --- content encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "envelope"), FRONTS)
async def test_gzip_header_on_a_plain_body_is_400(upstream: FakeUpstream, gateway: GatewayFactory, path, envelope):
    gw = await gateway(providers_at(upstream))
    status, error = await post(gw.url + path, json.dumps(request(path)).encode(), {"content-encoding": "gzip"})
    assert status == 400 and "not valid gzip" in message_of(error, envelope)
    assert upstream.seen == []


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_compressed_body_is_accepted(upstream: FakeUpstream, gateway: GatewayFactory, coding: str):
    upstream.default = Reply(body=chat_completion("fine"))
    gw = await gateway(providers_at(upstream))
    plain = json.dumps(request("/v1/chat/completions", messages=[{"role": "user", "content": "z" * 50_000}])).encode()
    packed = gzip.compress(plain) if coding == "gzip" else zlib.compress(plain)
    status, reply = await post(gw.url + "/v1/chat/completions", packed, {"content-encoding": coding})
    assert status == 200 and reply["choices"][0]["message"]["content"] == "fine"
    assert len(upstream.seen) == 1 and upstream.last.json["messages"][0]["content"] == "z" * 50_000


async def test_truncated_unknown_and_oversized_encodings(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream, server={"max_body_bytes": 1 << 20}))
    url = gw.url + "/v1/messages"
    packed = gzip.compress(json.dumps(request("/v1/messages")).encode())
    status, error = await post(url, packed[:-12], {"content-encoding": "gzip"})
    assert status == 400 and "truncated" in message_of(error, "anthropic")
    status, error = await post(url, b"\x00" * 10, {"content-encoding": "br"})
    assert status == 415 and "not supported" in message_of(error, "anthropic")
    bomb = gzip.compress(b" " * (8 << 20))  # 8 MiB of spaces in ~8 KiB: the limit counts what it inflates to
    status, error = await post(url, bomb, {"content-encoding": "gzip"})
    assert status == 413 and "once decompressed" in message_of(error, "anthropic")
    assert upstream.seen == []


# --- nesting ---------------------------------------------------------------------------------------


def nested(path: str, depth: int, pad: int = 0) -> bytes:
    deep = "[" * depth + "]" * depth
    tail = f', "pad": "{"p" * pad}"' if pad else ""
    head = json.dumps(request(path))[:-1]
    return f'{head}, "metadata": {{"deep": {deep}}}{tail}}}'.encode()


@pytest.mark.parametrize(("path", "envelope"), FRONTS)
async def test_deeply_nested_json_is_400(upstream: FakeUpstream, gateway: GatewayFactory, path, envelope):
    gw = await gateway(providers_at(upstream))
    for depth in (1000, 5000, 100_000):
        for pad in (0, 2 * body_mod.DECODE_INLINE_MAX):  # decoded on the loop, and in a worker thread
            status, error = await post(gw.url + path, nested(path, depth, pad))
            assert status == 400, (depth, pad, error)
            assert "nests JSON" in message_of(error, envelope)
    assert upstream.seen == []


async def test_no_depth_near_the_limit_is_a_500(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=chat_completion())
    gw = await gateway(providers_at(upstream))
    for depth in range(900, 1001, 4):
        for path, envelope in FRONTS:
            status, reply = await post(gw.url + path, nested(path, depth))
            assert status in (200, 400), (depth, path, reply)
            if status == 400:
                assert "nests JSON" in message_of(reply, envelope)


# --- large bodies ----------------------------------------------------------------------------------


async def test_large_bodies_are_decoded_off_the_loop():
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}] * 200_000}).encode()
    assert len(raw) > body_mod.DECODE_INLINE_MAX
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    body = await body_mod.parse_json(raw)
    during = ticks - before
    small = await body_mod.parse_json(b'{"model": "m"}')
    task.cancel()
    assert len(body["messages"]) == 200_000 and small == {"model": "m"}
    assert during > 0  # the loop ran other work while the body was decoded


async def test_29_mib_body_while_health_checks_answer(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(body=chat_completion("big one"))
    gw = await gateway(providers_at(upstream))
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi!"} for i in range(900_000)]
    raw = json.dumps({"model": "up-openai/m", "messages": messages}, separators=(",", ":")).encode()
    assert 29 << 20 < len(raw) < 32 << 20
    health: list[int] = []
    done = asyncio.Event()

    async def poll() -> None:
        async with aiohttp.ClientSession() as s:
            while not done.is_set():
                async with s.get(gw.url + "/health") as r:
                    health.append(r.status)
                await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll())
    try:
        status, reply = await post(gw.url + "/v1/chat/completions", raw)
    finally:
        done.set()
        await poller
    assert status == 200 and reply["choices"][0]["message"]["content"] == "big one"
    assert len(upstream.seen) == 1 and len(upstream.last.json["messages"]) == 900_000
    assert health and set(health) == {200}


# --- content blocks and headers --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [["text"], {"kind": "text"}, 7, True])
async def test_content_block_type_that_is_not_a_string(upstream: FakeUpstream, gateway: GatewayFactory, bad: Any):
    anthropic_400 = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad block"}}
    upstream.default = Reply(status=400, body=json.dumps(anthropic_400).encode())
    cfg = providers_at(upstream)
    cfg["providers"]["kimi"] = {"base_url": upstream.url, "api_key": "sk-kimi-test"}  # replays reasoning
    gw = await gateway(cfg)
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": bad, "text": "x"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    # translated: the codec names the field
    status, error = await post(gw.url + "/v1/messages", json.dumps(request("/v1/messages", messages=history)).encode())
    assert status == 400 and message_of(error, "anthropic").startswith("messages.1.content.0.type must be a string")
    assert upstream.seen == []
    # same dialect: forwarded untouched, once, and the upstream's verdict comes back
    body = request("/v1/messages", "kimi/kimi-for-coding", messages=history)
    status, error = await post(gw.url + "/v1/messages", json.dumps(body).encode())
    assert status == 400 and message_of(error, "anthropic") == "bad block"
    assert len(upstream.seen) == 1


async def raw_post(url: str, path: str, head: bytes, body: bytes) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n%s"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), head, len(body), body)
    )
    got = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    status_line, _, rest = got.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("value", [b"caf\xe9", b"caf\xc3\xa9"])  # control bytes: aiohttp refuses the head
async def test_anthropic_beta_that_is_not_ascii_is_400(upstream: FakeUpstream, gateway: GatewayFactory, value: bytes):
    cfg = providers_at(upstream)
    cfg["providers"]["anthropic"] = {"base_url": upstream.url, "api_key": "sk-ant-test"}
    gw = await gateway(cfg)
    for path, model in (("/v1/messages", "up-anthropic/m"), ("/v1/messages/count_tokens", "anthropic/claude-x")):
        body = json.dumps(request("/v1/messages", model)).encode()
        status, error = await raw_post(gw.url, path, b"anthropic-beta: " + value + b"\r\n", body)
        assert status == 400 and message_of(error, "anthropic") == "header anthropic-beta must be printable ASCII"
    assert upstream.seen == []


async def test_undecodable_client_key_is_401(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream, server={"api_keys": ["sk-gateway-key"]}))
    body = json.dumps(request("/v1/chat/completions")).encode()
    status, error = await raw_post(gw.url, "/v1/chat/completions", b"Authorization: Bearer k\xff\xfe\r\n", body)
    assert status == 401 and "gateway key" in message_of(error, "openai")
    assert upstream.seen == []


# --- model names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "envelope"), FRONTS)
async def test_huge_model_names_are_400_and_never_cached(
    upstream: FakeUpstream, gateway: GatewayFactory, path, envelope
):
    upstream.default = Reply(body=chat_completion())
    running = await gateway(providers_at(upstream))
    router = running.gateway.router
    for i in range(20):
        model = f"up-openai/{i}-" + "m" * (1 << 20)
        status, error = await post(running.url + path, json.dumps(request(path, model)).encode())
        assert status == 400 and f"at most {MAX_MODEL_NAME}" in message_of(error, envelope)
        assert model[:100] not in json.dumps(error)  # the name is not echoed back
    assert router.cached == (0, 0) and upstream.seen == []
    longest = "up-openai/" + "m" * (MAX_MODEL_NAME - 10)
    status, _ = await post(running.url + path, json.dumps(request(path, longest)).encode())
    assert status == 200 and upstream.last.json["model"] == "m" * (MAX_MODEL_NAME - 10)


async def test_router_cache_is_bounded_in_bytes(gateway: GatewayFactory, upstream: FakeUpstream):
    running = await gateway(providers_at(upstream))
    router = running.gateway.router
    for i in range(3 * CACHE_ENTRIES):
        router.resolve(f"up-openai/{i:06d}-" + "n" * (MAX_MODEL_NAME - 20))
        entries, size = router.cached
        assert entries <= CACHE_ENTRIES and size <= CACHE_BYTES
    assert router.resolve("up-openai/again").model == "again" and router.cached[0] >= 1
