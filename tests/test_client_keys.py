"""Client keys (`auth = "client"`) and upstream identities (`identity = "claude-code"`), over real
HTTP with the official SDKs: which key the upstream received in which header, that a gateway key is
never forwarded, that a missing key is a 401 in the client's dialect, that the key shows in no log
or error, and the headers Claude Code's identity sends."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import ClientSession

from dragoman.config import ConfigError, parse
from dragoman.credentials import client_key, matches_any, presented_keys
from dragoman.gateway import Gateway
from dragoman.providers.identity import CLAUDE_CODE_VERSION, SESSION_ID
from tests.conftest import FakeUpstream, GatewayFactory, Reply, Seen, chat_completion, providers_at

HI = {"role": "user", "content": "hi"}
USER_KEY = "sk-user-own-key-1234567890"
ANT_OK = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
).encode()


def reply_for(seen: Seen) -> Reply:
    return Reply(body=ANT_OK) if "/messages" in seen.path else Reply(body=chat_completion())


def lower(seen: Seen) -> dict[str, str]:
    return {k.lower(): v for k, v in seen.headers.items()}


def client_auth_config(upstream: FakeUpstream, **server: Any) -> dict[str, Any]:
    cfg = providers_at(upstream, server=server)
    for table in cfg["providers"].values():
        table.pop("api_key", None)
        table["auth"] = "client"
    return cfg


# ---- which key goes where ------------------------------------------------------------------------


def test_presented_keys_and_the_client_key():
    headers = {"x-api-key": "a", "authorization": "Bearer b"}
    assert presented_keys(headers) == ["a", "b"]
    assert presented_keys({"authorization": "Basic zzz"}) == []
    assert client_key(headers) == "a"
    assert client_key(headers, matches_any(["a"])) == "b"  # a gateway key is never the client's own
    assert client_key({"x-api-key": "a"}, matches_any(["a"])) is None


async def test_an_openai_bearer_key_becomes_the_anthropic_providers_x_api_key(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = reply_for
    gw = await gateway(client_auth_config(upstream))
    await openai.AsyncOpenAI(base_url=gw.openai_url, api_key=USER_KEY, max_retries=0).chat.completions.create(
        model="up-anthropic/claude", messages=[HI]
    )
    h = lower(upstream.last)
    assert upstream.last.path == "/v1/messages"
    assert h["x-api-key"] == USER_KEY and "authorization" not in h


async def test_an_anthropic_x_api_key_becomes_a_bearer_for_an_openai_provider(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = reply_for
    gw = await gateway(client_auth_config(upstream))
    await anthropic.AsyncAnthropic(base_url=gw.url, api_key=USER_KEY, max_retries=0).messages.create(
        model="up-openai/gpt", max_tokens=5, messages=[HI]
    )
    h = lower(upstream.last)
    assert h["authorization"] == f"Bearer {USER_KEY}" and "x-api-key" not in h
    # Claude Code's ANTHROPIC_AUTH_TOKEN arrives as a Bearer token, ANTHROPIC_API_KEY as x-api-key
    await anthropic.AsyncAnthropic(base_url=gw.url, auth_token=USER_KEY, max_retries=0).messages.create(
        model="up-anthropic/claude", max_tokens=5, messages=[HI]
    )
    assert lower(upstream.last)["x-api-key"] == USER_KEY
    async with ClientSession() as s:
        body = {"model": "up-openai/gpt", "max_tokens": 5, "messages": [HI]}
        headers = {"x-api-key": USER_KEY, "anthropic-version": "2023-06-01"}
        async with s.post(gw.url + "/v1/messages", json=body, headers=headers) as r:
            assert r.status == 200
    assert lower(upstream.last)["authorization"] == f"Bearer {USER_KEY}"


async def test_a_configured_key_is_ignored_and_the_builtin_needs_none(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    gw = await gateway({"providers": {"anthropic": {"base_url": upstream.url, "auth": "client"}}})
    assert gw.gateway.providers["anthropic"].available  # no ANTHROPIC_API_KEY needed
    await anthropic.AsyncAnthropic(base_url=gw.url, api_key=USER_KEY, max_retries=0).messages.create(
        model="anthropic/claude-sonnet-4-6", max_tokens=5, messages=[HI]
    )
    assert lower(upstream.last)["x-api-key"] == USER_KEY


async def test_no_client_key_is_a_401_in_the_clients_dialect(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(client_auth_config(upstream))
    async with ClientSession() as s:
        async with s.post(gw.openai_url + "/chat/completions", json={"model": "up-anthropic/c", "messages": [HI]}) as r:
            body = await r.json()
            assert r.status == 401 and body["error"]["type"] == "authentication_error"
            assert 'auth = "client"' in body["error"]["message"]
        ant = {"model": "up-openai/g", "max_tokens": 5, "messages": [HI]}
        async with s.post(gw.url + "/v1/messages", json=ant, headers={"anthropic-version": "2023-06-01"}) as r:
            body = await r.json()
            assert r.status == 401 and body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert upstream.seen == []


async def test_with_gateway_keys_only_the_other_header_is_forwarded(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    gw = await gateway(client_auth_config(upstream, api_keys=["gw-key-1"]))
    # only the gateway key: admitted, but nothing to forward
    with pytest.raises(anthropic.AuthenticationError) as err:
        await anthropic.AsyncAnthropic(base_url=gw.url, api_key="gw-key-1", max_retries=0).messages.create(
            model="up-anthropic/c", max_tokens=5, messages=[HI]
        )
    assert "gateway key" in err.value.message and upstream.seen == []
    # the gateway key as Bearer, the user's own as x-api-key (and the other way round)
    oai = openai.AsyncOpenAI(
        base_url=gw.openai_url, api_key="gw-key-1", default_headers={"x-api-key": USER_KEY}, max_retries=0
    )
    await oai.chat.completions.create(model="up-openai/g", messages=[HI])
    assert lower(upstream.last)["authorization"] == f"Bearer {USER_KEY}"
    raw = {"authorization": "Bearer gw-key-1", "x-api-key": USER_KEY, "anthropic-version": "2023-06-01"}
    async with ClientSession() as s:
        body = {"model": "up-anthropic/c", "max_tokens": 5, "messages": [HI]}
        async with s.post(gw.url + "/v1/messages", json=body, headers=raw) as r:
            assert r.status == 200
    assert lower(upstream.last)["x-api-key"] == USER_KEY
    raw = {"authorization": f"Bearer {USER_KEY}", "x-api-key": "gw-key-1", "anthropic-version": "2023-06-01"}
    async with ClientSession() as s, s.post(gw.url + "/v1/messages", json=body, headers=raw) as r:
        assert r.status == 200
    assert lower(upstream.last)["x-api-key"] == USER_KEY
    assert all("gw-key-1" not in json.dumps(seen.headers) for seen in upstream.seen)
    # no gateway key at all: refused before anything else
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(base_url=gw.openai_url, api_key=USER_KEY, max_retries=0).chat.completions.create(
            model="up-openai/g", messages=[HI]
        )


async def test_the_client_key_is_never_logged_nor_echoed(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    echo = json.dumps({"error": {"message": f"key {USER_KEY} is not allowed here", "type": "invalid_request_error"}})
    upstream.reply(Reply(status=403, body=echo.encode()))
    gw = await gateway(client_auth_config(upstream))
    with pytest.raises(openai.PermissionDeniedError) as err:
        await openai.AsyncOpenAI(base_url=gw.openai_url, api_key=USER_KEY, max_retries=0).chat.completions.create(
            model="up-openai/g", messages=[HI]
        )
    assert USER_KEY not in json.dumps(err.value.body) and "[redacted]" in err.value.message
    assert USER_KEY not in caplog.text


async def test_count_tokens_forwards_the_client_key(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=b'{"input_tokens": 7}')
    gw = await gateway({"providers": {"anthropic": {"base_url": upstream.url, "auth": "client"}}})
    count = await anthropic.AsyncAnthropic(base_url=gw.url, api_key=USER_KEY).messages.count_tokens(
        model="anthropic/claude-sonnet-4-6", messages=[HI]
    )
    assert count.input_tokens == 7 and lower(upstream.last)["x-api-key"] == USER_KEY


def test_auth_must_be_key_or_client():
    with pytest.raises(ConfigError) as err:
        Gateway.from_config(parse({"providers": {"anthropic": {"auth": "bearer"}}}))
    assert err.value.key == "providers.anthropic.auth"


# ---- Claude Code's identity ----------------------------------------------------------------------


async def test_claude_code_identity_headers_and_betas(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    gw = await gateway(
        {"providers": {"anthropic": {"base_url": upstream.url, "api_key": "sk-ant-x", "identity": "claude-code"}}}
    )
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await ant.messages.create(
        model="anthropic/claude-sonnet-4-6",
        max_tokens=5,
        messages=[HI],
        extra_headers={"anthropic-beta": "context-1m-2025-08-07,claude-code-20250219"},
    )
    first = lower(upstream.last)
    assert first["user-agent"] == f"claude-cli/{CLAUDE_CODE_VERSION} (external, cli)"
    assert first["x-app"] == "cli"
    assert uuid.UUID(first["x-claude-code-session-id"]) and first["x-claude-code-session-id"] == SESSION_ID
    # the client's betas first, then the identity's, each once
    assert first["anthropic-beta"].split(",") == [
        "context-1m-2025-08-07",
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "fine-grained-tool-streaming-2025-05-14",
    ]
    # an OpenAI client gets the same identity upstream; the session id stays for the gateway's life
    await openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0).chat.completions.create(
        model="anthropic/claude-sonnet-4-6", messages=[HI]
    )
    second = lower(upstream.last)
    assert second["x-claude-code-session-id"] == first["x-claude-code-session-id"]
    assert second["anthropic-beta"].startswith("claude-code-20250219,")
    assert second["x-api-key"] == "sk-ant-x"


async def test_kimi_keeps_its_user_agent_unless_given_the_identity(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    plain = await gateway({"providers": {"kimi": {"base_url": upstream.url, "api_key": "sk-kimi"}}})
    await anthropic.AsyncAnthropic(base_url=plain.url, api_key="k").messages.create(
        model="kimi/kimi-for-coding", max_tokens=5, messages=[HI]
    )
    h = lower(upstream.last)
    assert h["user-agent"] == "claude-code/0.1.0" and "x-app" not in h and "x-claude-code-session-id" not in h
    table = {"base_url": upstream.url, "api_key": "sk-kimi", "identity": "claude-code"}
    mimic = await gateway({"providers": {"kimi": table}})
    await anthropic.AsyncAnthropic(base_url=mimic.url, api_key="k").messages.create(
        model="kimi/kimi-for-coding", max_tokens=5, messages=[HI]
    )
    h = lower(upstream.last)
    assert re.fullmatch(r"claude-cli/[\d.]+ \(external, cli\)", h["user-agent"]) and h["x-app"] == "cli"
    assert h["authorization"] == "Bearer sk-kimi"  # Kimi's own header style stays
    explicit = await gateway({"providers": {"kimi": dict(table, user_agent="my-agent/1")}})
    await anthropic.AsyncAnthropic(base_url=explicit.url, api_key="k").messages.create(
        model="kimi/kimi-for-coding", max_tokens=5, messages=[HI]
    )
    assert lower(upstream.last)["user-agent"] == "my-agent/1"


async def test_configured_betas_merge_with_the_clients(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    cfg = providers_at(upstream)
    cfg["providers"]["up-anthropic"]["headers"] = {"anthropic-beta": "extended-cache-ttl-2025-04-11"}
    gw = await gateway(cfg)
    await anthropic.AsyncAnthropic(base_url=gw.url, api_key="k").messages.create(
        model="up-anthropic/c", max_tokens=5, messages=[HI], extra_headers={"anthropic-beta": "a-beta"}
    )
    assert lower(upstream.last)["anthropic-beta"] == "a-beta,extended-cache-ttl-2025-04-11"


@pytest.mark.parametrize(
    ("pid", "table", "words"),
    [
        ("openai", {"identity": "claude-code"}, "Anthropic dialect"),
        ("kimi", {"identity": "claude-code", "surface": "openai"}, "Anthropic dialect"),
        ("anthropic", {"identity": "codex"}, "claude-code"),
    ],
)
def test_identity_is_for_anthropic_dialect_providers_only(pid: str, table: dict[str, Any], words: str):
    with pytest.raises(ConfigError) as err:
        Gateway.from_config(parse({"providers": {pid: table}}))
    assert err.value.key == f"providers.{pid}.identity" and words in err.value.problem
