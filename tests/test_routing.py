"""Model routing: prefix, alias, `:cloud`, default, unknown — table-driven, then over HTTP."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from dragoman.config import parse
from dragoman.errors import InvalidRequest, ProviderNotConfigured, UnknownProvider
from dragoman.gateway import Gateway
from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion, providers_at


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch):
    for var in ("KIMI_API_KEY", "OLLAMA_API_KEY", "OPENROUTER_API_KEY", "MOONSHOT_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KIMI_API_KEY", "sk-kimi-test")
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-test")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    cfg = parse(
        {
            "server": {"default_provider": "ollama"},
            "providers": {
                "my-vllm": {"dialect": "openai", "base_url": "http://127.0.0.1:8000/v1", "models": ["qwen3-coder"]}
            },
            "aliases": {"claude-sonnet-4-5": "kimi/kimi-for-coding", "fast": "openrouter/moonshotai/kimi-k2"},
        }
    )
    return Gateway.from_config(cfg).router


@pytest.mark.parametrize(
    ("model", "provider", "wire"),
    [
        ("kimi/kimi-for-coding", "kimi", "kimi-for-coding"),
        ("kimi/k2p5", "kimi", "kimi-for-coding"),  # legacy alias normalised on the wire
        ("kimi/kimi-code", "kimi", "kimi-for-coding"),
        ("claude-sonnet-4-5", "kimi", "kimi-for-coding"),  # [aliases]
        ("fast", "openrouter", "moonshotai/kimi-k2"),
        ("openrouter/anthropic/claude-sonnet-4", "openrouter", "anthropic/claude-sonnet-4"),
        ("kimi-k2.6:cloud", "ollama_cloud", "kimi-k2.6"),
        ("ollama_cloud/gpt-oss:120b", "ollama_cloud", "gpt-oss:120b"),
        ("ollama/llama3.1", "ollama", "llama3.1"),
        ("llama3.1", "ollama", "llama3.1"),  # default provider
        ("my-vllm/qwen3-coder", "my-vllm", "qwen3-coder"),
    ],
)
def test_route_table(router, model: str, provider: str, wire: str):
    route = router.resolve(model)
    assert (route.provider.id, route.model) == (provider, wire)


def test_unknown_prefix_is_not_found_and_lists_configured(router):
    with pytest.raises(UnknownProvider) as err:
        router.resolve("nosuch/model")
    assert err.value.status == 404
    assert "nosuch" in err.value.message and "kimi" in err.value.message and "ollama" in err.value.message


def test_provider_without_key_is_refused_not_rerouted(router):
    with pytest.raises(ProviderNotConfigured) as err:
        router.resolve("moonshot/kimi-k2.6")
    assert "MOONSHOT_API_KEY" in err.value.message
    assert err.value.status == 400


def test_empty_model_is_a_400(router):
    with pytest.raises(InvalidRequest):
        router.resolve("")


async def test_unknown_prefix_over_http_in_both_dialects(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    with pytest.raises(openai.NotFoundError) as e1:
        await oai.chat.completions.create(model="nosuch/x", messages=[{"role": "user", "content": "hi"}])
    assert "up-openai" in e1.value.message and e1.value.body["code"] == "model_not_found"  # type: ignore[index]
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as e2:
        await ant.messages.create(model="nosuch/x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e2.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert upstream.seen == []  # nothing was sent anywhere


async def test_missing_model_is_400_in_client_dialect(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        await oai.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["param"] == "model"  # type: ignore[index]


async def test_bare_name_goes_to_default_provider(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=chat_completion()))
    gw = await gateway(providers_at(upstream))
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k")
    resp = await oai.chat.completions.create(model="plain-model", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "ok"
    assert upstream.last.json["model"] == "plain-model"


async def test_models_and_providers_endpoints(upstream: FakeUpstream, gateway: GatewayFactory):
    cfg = providers_at(upstream)
    cfg["providers"]["up-openai"]["models"] = ["gpt-a", "gpt-b"]
    cfg["aliases"] = {"nick": "up-openai/gpt-a"}
    gw = await gateway(cfg)
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k")
    ids = [m.id async for m in oai.models.list()]
    assert {"up-openai/gpt-a", "up-openai/gpt-b", "nick"} <= set(ids)
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k")
    page = await ant.models.list()
    assert {"up-openai/gpt-a", "nick"} <= {m.id for m in page.data}
    assert page.first_id == page.data[0].id and page.has_more is False
    from aiohttp import ClientSession

    async with ClientSession() as s:
        async with s.get(gw.url + "/v1/providers") as r:
            rows = {p["id"]: p for p in (await r.json())["data"]}
        async with s.get(gw.url + "/health") as r:
            assert (await r.json()) == {"status": "ok"}
    assert rows["up-openai"]["dialect"] == "openai" and rows["up-openai"]["key_configured"] is True
    assert rows["kimi"]["key_configured"] is False and rows["kimi"]["base_url"] == "https://api.kimi.com/coding"
    assert "sk-up-openai-secret" not in json.dumps(rows)  # keys are never shown


async def test_gateway_keys_guard_every_endpoint_but_health(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway(providers_at(upstream, server={"api_keys": ["gw-key-1"]}))
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(base_url=gw.openai_url, api_key="wrong", max_retries=0).chat.completions.create(
            model="up-openai/m", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.AuthenticationError):
        await anthropic.AsyncAnthropic(base_url=gw.url, api_key="wrong", max_retries=0).messages.create(
            model="up-openai/m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(base_url=gw.openai_url, api_key="wrong", max_retries=0).models.list()
    assert upstream.seen == []
    ok = await openai.AsyncOpenAI(base_url=gw.openai_url, api_key="gw-key-1").chat.completions.create(
        model="up-openai/m", messages=[{"role": "user", "content": "hi"}]
    )
    assert ok.choices[0].message.content == "ok"
    # Claude Code sends its key as x-api-key; the gateway key is not forwarded upstream
    msg = await anthropic.AsyncAnthropic(base_url=gw.url, api_key="gw-key-1").messages.create(
        model="up-openai/m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].text == "ok"  # type: ignore[union-attr]
    assert upstream.last.headers["Authorization"] == "Bearer sk-up-openai-secret"
    from aiohttp import ClientSession

    async with ClientSession() as s, s.get(gw.url + "/health") as r:
        assert r.status == 200
