"""Every error leaves in the client's own envelope with a meaningful status; upstream failures map
to the right status; a failure after the stream began arrives as an error event; keys never leak."""

from __future__ import annotations

import asyncio
import json
import socket

import anthropic
import openai
import pytest
from aiohttp import ClientSession

from tests.conftest import FakeUpstream, GatewayFactory, Reply, providers_at

CHAT = [{"role": "user", "content": "hi"}]


def oai(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="client-key", max_retries=0)


def ant(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0)


async def post(url: str, path: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with ClientSession() as s, s.post(url + path, data=data, headers=headers or {}) as r:
        return r.status, json.loads(await r.read())


async def test_invalid_json_is_400_in_each_envelope(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    status, body = await post(gw.url, "/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error" and "JSON" in body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    status, body = await post(gw.url, "/v1/messages", b"[1,2]")
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    status, body = await post(gw.url, "/v1/messages", b"")
    assert status == 400 and "empty" in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"model": 5, "messages": []}, "model"),
        ("/v1/chat/completions", {"model": "up-openai/x", "messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"model": "up-openai/x", "messages": [], "stream": "yes"}, "stream"),
        ("/v1/messages", {"model": "up-anthropic/x", "max_tokens": 5}, "messages"),
        ("/v1/messages", {"messages": [], "max_tokens": 5}, "model"),
    ],
)
async def test_wrong_field_types_are_400_naming_the_field(
    upstream: FakeUpstream, gateway: GatewayFactory, path: str, body: dict, param: str
):
    gw = await gateway(providers_at(upstream))
    status, out = await post(gw.url, path, json.dumps(body).encode())
    assert status == 400
    err = out["error"]
    assert param in err["message"]
    assert upstream.seen == []


async def test_translated_request_with_bad_shape_is_400_not_500(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    bad = {"model": "up-anthropic/x", "messages": [{"role": "user", "content": 42}]}
    status, out = await post(gw.url, "/v1/chat/completions", json.dumps(bad).encode())
    assert status == 400 and out["error"]["type"] == "invalid_request_error"
    assert upstream.seen == []


async def test_body_over_limit_is_413(upstream: FakeUpstream, gateway: GatewayFactory):
    cfg = providers_at(upstream, server={"max_body_bytes": 1000})
    gw = await gateway(cfg)
    big = json.dumps({"model": "up-openai/x", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    status, out = await post(gw.url, "/v1/chat/completions", big)
    assert status == 413 and "1000" in out["error"]["message"]
    status, out = await post(gw.url, "/v1/messages", big)
    assert status == 413 and out["error"]["type"] == "request_too_large"


@pytest.mark.parametrize(
    ("up_status", "oai_exc", "ant_exc", "client_status"),
    [
        (401, openai.AuthenticationError, anthropic.AuthenticationError, 401),
        (403, openai.PermissionDeniedError, anthropic.PermissionDeniedError, 403),
        (404, openai.NotFoundError, anthropic.NotFoundError, 404),
        (429, openai.RateLimitError, anthropic.RateLimitError, 429),
        (500, openai.InternalServerError, anthropic.InternalServerError, 502),
        (503, openai.InternalServerError, anthropic.InternalServerError, 503),
    ],
)
async def test_upstream_status_maps_to_client(
    upstream: FakeUpstream, gateway: GatewayFactory, up_status, oai_exc, ant_exc, client_status
):
    def fail(seen):
        if seen.path.endswith("/messages"):
            body = {"type": "error", "error": {"type": "x_error", "message": f"upstream says {up_status}"}}
        else:
            body = {"error": {"message": f"upstream says {up_status}", "type": "x", "code": None}}
        return Reply(status=up_status, body=json.dumps(body).encode(), headers={"retry-after": "7"})

    upstream.default = fail
    gw = await gateway(providers_at(upstream))
    # same dialect and translated, both fronts
    for model in ("up-openai/m", "up-anthropic/m"):
        with pytest.raises(oai_exc) as e1:
            await oai(gw.url).chat.completions.create(model=model, messages=CHAT)
        assert e1.value.status_code == client_status and f"upstream says {up_status}" in e1.value.message
        with pytest.raises(ant_exc) as e2:
            await ant(gw.url).messages.create(model=model, max_tokens=5, messages=CHAT)
        assert e2.value.status_code == client_status and f"upstream says {up_status}" in e2.value.message
        if up_status == 429:
            assert e1.value.response.headers["retry-after"] == "7"
            assert e2.value.response.headers["retry-after"] == "7"


async def test_connection_refused_is_502(gateway: GatewayFactory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        gw = await gateway(
            {
                "server": {"default_provider": "dead"},
                "providers": {"dead": {"dialect": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}},
            }
        )
        with pytest.raises(openai.APIStatusError) as err:
            await oai(gw.url).chat.completions.create(model="dead/m", messages=CHAT)
        assert err.value.status_code == 502 and "unreachable" in err.value.message
        with pytest.raises(anthropic.APIStatusError) as err2:
            await ant(gw.url).messages.create(model="dead/m", max_tokens=5, messages=CHAT)
        assert err2.value.status_code == 502


async def test_upstream_timeout_is_504(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=[b""], hang=True))  # the head, then nothing: the first-byte timeout applies
    cfg = providers_at(upstream)
    cfg["providers"]["up-openai"]["first_byte_timeout"] = 0.5
    gw = await gateway(cfg)
    with pytest.raises(openai.APIStatusError) as err:
        await oai(gw.url).chat.completions.create(model="up-openai/m", messages=CHAT)
    assert err.value.status_code == 504 and err.value.body["type"] == "timeout"  # type: ignore[index]
    assert "up-openai: upstream timed out waiting for the reply" in err.value.message


OPENAI_PARTIAL = [
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n',
]
ANTHROPIC_PARTIAL = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}\n\n',
]


@pytest.mark.parametrize("how", ["abort", "clean-eof"])
@pytest.mark.parametrize("model", ["up-openai/m", "up-anthropic/m"])
async def test_midstream_failure_reaches_openai_client_as_error(
    upstream: FakeUpstream, gateway: GatewayFactory, how: str, model: str
):
    chunks = OPENAI_PARTIAL if model.startswith("up-openai") else ANTHROPIC_PARTIAL
    upstream.reply(Reply(body=chunks, content_type="text/event-stream", abort=how == "abort"))
    gw = await gateway(providers_at(upstream))
    stream = await oai(gw.url).chat.completions.create(model=model, messages=CHAT, stream=True)
    got = ""
    with pytest.raises(openai.APIError) as err:
        async for chunk in stream:
            got += "".join(c.delta.content or "" for c in chunk.choices)
    assert got == "Hel"
    assert "stream" in str(err.value.message) or "connection" in str(err.value.message)


@pytest.mark.parametrize("how", ["abort", "clean-eof"])
@pytest.mark.parametrize("model", ["up-openai/m", "up-anthropic/m"])
async def test_midstream_failure_reaches_anthropic_client_as_error_event(
    upstream: FakeUpstream, gateway: GatewayFactory, how: str, model: str
):
    chunks = OPENAI_PARTIAL if model.startswith("up-openai") else ANTHROPIC_PARTIAL
    upstream.reply(Reply(body=chunks, content_type="text/event-stream", abort=how == "abort"))
    gw = await gateway(providers_at(upstream))
    async with (
        ClientSession() as s,
        s.post(
            gw.url + "/v1/messages",
            json={"model": model, "max_tokens": 10, "stream": True, "messages": CHAT},
        ) as r,
    ):
        assert r.status == 200
        text = (await r.read()).decode()
    assert "event: error" in text
    assert text.rstrip().splitlines()[-1].startswith("data: ")
    last = json.loads(text.rstrip().splitlines()[-1][6:])
    assert last["type"] == "error" and last["error"]["type"] == "api_error"
    assert "message_stop" not in text  # never a silent clean end
    with pytest.raises(anthropic.APIStatusError):
        upstream.reply(Reply(body=chunks, content_type="text/event-stream", abort=how == "abort"))
        async with ant(gw.url).messages.stream(model=model, max_tokens=10, messages=CHAT) as stream:
            await stream.get_final_message()


async def test_upstream_error_event_inside_200_stream_is_forwarded(upstream: FakeUpstream, gateway: GatewayFactory):
    # OpenRouter's shape: an error chunk inside a 200 stream
    chunks = [OPENAI_PARTIAL[0], b'data: {"error":{"code":400,"message":"Provider returned error"}}\n\n']
    upstream.default = lambda seen: Reply(body=chunks, content_type="text/event-stream")
    gw = await gateway(providers_at(upstream))
    stream = await oai(gw.url).chat.completions.create(model="up-openai/m", messages=CHAT, stream=True)
    with pytest.raises(openai.APIError) as err:
        async for _ in stream:
            pass
    assert "Provider returned error" in err.value.message
    with pytest.raises(anthropic.APIStatusError) as err2:
        async with ant(gw.url).messages.stream(model="up-openai/m", max_tokens=10, messages=CHAT) as s:
            await s.get_final_message()
    assert "Provider returned error" in str(err2.value)


async def test_client_disconnect_cancels_upstream(upstream: FakeUpstream, gateway: GatewayFactory):
    chunks = [OPENAI_PARTIAL[0]] * 200
    upstream.reply(Reply(body=chunks, content_type="text/event-stream", delay=0.05))
    gw = await gateway(providers_at(upstream))
    async with ClientSession() as s:
        r = await s.post(
            gw.url + "/v1/chat/completions", json={"model": "up-openai/m", "stream": True, "messages": CHAT}
        )
        assert b"Hel" in await r.content.readany()
        r.close()  # the client goes away mid-stream
    await asyncio.wait_for(upstream.closed_early.wait(), timeout=3)


async def test_secrets_never_in_errors(upstream: FakeUpstream, gateway: GatewayFactory):
    leak = {"error": {"message": "bad key sk-up-openai-secret (Bearer sk-up-openai-secret)", "type": "auth"}}
    upstream.default = lambda seen: Reply(status=401, body=json.dumps(leak).encode())
    gw = await gateway(providers_at(upstream))
    status, body = await post(
        gw.url, "/v1/chat/completions", json.dumps({"model": "up-openai/m", "messages": CHAT}).encode()
    )
    assert status == 401
    assert "sk-up-openai-secret" not in json.dumps(body)
    assert "[redacted]" in body["error"]["message"]


async def test_unknown_endpoint_and_wrong_method(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    async with ClientSession() as s:
        async with s.get(gw.url + "/v1/nope") as r:
            assert r.status == 404 and "error" in await r.json()
        async with s.get(gw.url + "/v1/messages") as r:
            assert r.status == 405 and (await r.json())["type"] == "error"


async def test_secrets_never_in_logs(upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture):
    caplog.set_level("DEBUG")
    leak = {"error": {"message": "key sk-up-openai-secret is bad", "type": "auth"}}
    upstream.reply(
        Reply(status=401, body=json.dumps(leak).encode()),
        Reply(body=OPENAI_PARTIAL, content_type="text/event-stream", abort=True),
    )
    gw = await gateway(providers_at(upstream))
    await post(gw.url, "/v1/chat/completions", json.dumps({"model": "up-openai/m", "messages": CHAT}).encode())
    async with (
        ClientSession() as s,
        s.post(
            gw.url + "/v1/messages", json={"model": "up-openai/m", "max_tokens": 5, "stream": True, "messages": CHAT}
        ) as r,
    ):
        await r.read()
    assert caplog.records  # the gateway did log (debug lines, the failed stream)
    assert "sk-up-openai-secret" not in caplog.text
