"""Model routing: prefix, alias, declared names, `:cloud`, default, fall-through and refusals —
table-driven, then over HTTP."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from dragoman.config import parse
from dragoman.errors import InvalidRequest, ProviderNotConfigured
from dragoman.gateway import Gateway
from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion, providers_at

HI = {"role": "user", "content": "hi"}
OLLAMA_DONE = json.dumps(
    {"model": "m", "message": {"role": "assistant", "content": "ok"}, "done": True, "done_reason": "stop"}
).encode()
ANT_REPLY = json.dumps(
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


KEYS = ("KIMI_API_KEY", "OLLAMA_API_KEY", "OPENROUTER_API_KEY", "MOONSHOT_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch):
    for var in (*KEYS, "OPENCODE_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KIMI_API_KEY", "sk-kimi-test")
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-test")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENCODE_API_KEY", "sk-oc-test")
    cfg = parse(
        {
            "server": {"default_provider": "ollama"},
            "providers": {
                "my-vllm": {
                    "dialect": "openai",
                    "base_url": "http://127.0.0.1:8000/v1",
                    "models": ["qwen3-coder", "Qwen/Qwen3-Coder-30B"],
                },
                "old-vllm": {"dialect": "openai", "base_url": "http://127.0.0.1:8001/v1", "enabled": False},
                "deepseek": {"enabled": False},
            },
            "aliases": {"claude-sonnet-4-5": "kimi/kimi-for-coding", "fast": "openrouter/moonshotai/kimi-k2"},
        }
    )
    return Gateway.from_config(cfg).router


# The routing table of routing.py, row by row: what a name resolves to.
ROUTES = [
    # <provider-id>/<model>
    ("kimi/kimi-for-coding", "kimi", "kimi-for-coding"),
    ("kimi/k2p5", "kimi", "kimi-for-coding"),  # legacy alias normalised on the wire
    ("kimi/kimi-code", "kimi", "kimi-for-coding"),
    ("openrouter/anthropic/claude-sonnet-4", "openrouter", "anthropic/claude-sonnet-4"),
    ("ollama_cloud/gpt-oss:120b", "ollama_cloud", "gpt-oss:120b"),
    ("ollama/llama3.1", "ollama", "llama3.1"),
    ("my-vllm/qwen3-coder", "my-vllm", "qwen3-coder"),
    # [aliases]
    ("claude-sonnet-4-5", "kimi", "kimi-for-coding"),
    ("fast", "openrouter", "moonshotai/kimi-k2"),
    # a name exactly one configured provider declares
    ("claude-opus-4-7", "anthropic", "claude-opus-4-7"),  # only anthropic declares it
    ("kimi-for-coding", "kimi", "kimi-for-coding"),
    ("k2p5", "kimi", "kimi-for-coding"),  # a declared legacy alias
    ("kimi-k2.6", "opencode", "kimi-k2.6"),  # moonshot declares it too, but has no key
    ("qwen3-coder", "my-vllm", "qwen3-coder"),
    ("Qwen/Qwen3-Coder-30B", "my-vllm", "Qwen/Qwen3-Coder-30B"),  # a slash that is not a provider id
    ("claude-sonnet-4-6", "ollama", "claude-sonnet-4-6"),  # anthropic and opencode both declare it
    # <model><suffix>
    ("kimi-k2.6:cloud", "ollama_cloud", "kimi-k2.6"),
    # anything else: default_provider, unchanged (unknown prefixes fall through)
    ("llama3.1", "ollama", "llama3.1"),
    ("hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M", "ollama", "hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M"),
    ("library/llama3", "ollama", "library/llama3"),
    ("nosuch/model", "ollama", "nosuch/model"),
]

# Known providers that cannot take the request: an error naming them, never a fall-through.
REFUSED = [
    ("moonshot/kimi-k2.6", ProviderNotConfigured, ("'moonshot'", "MOONSHOT_API_KEY")),
    ("deepseek/deepseek-chat", ProviderNotConfigured, ("'deepseek'", "providers.deepseek.enabled")),
    ("old-vllm/qwen", ProviderNotConfigured, ("'old-vllm'", "providers.old-vllm.enabled")),
    ("", InvalidRequest, ("model",)),
]


@pytest.mark.parametrize(("model", "provider", "wire"), ROUTES)
def test_route_table(router, model: str, provider: str, wire: str):
    route = router.resolve(model)
    assert (route.provider.id, route.model) == (provider, wire)


@pytest.mark.parametrize(("model", "error", "words"), REFUSED)
def test_refused_routes_name_the_provider_and_the_fix(router, model: str, error: type, words: tuple[str, ...]):
    with pytest.raises(error) as err:
        router.resolve(model)
    assert all(w in err.value.message for w in words), err.value.message
    if error is ProviderNotConfigured:
        assert err.value.status == 400 and "Configured providers: " in err.value.message


@pytest.mark.parametrize("table", [{}, {"enabled": False}])
def test_a_cloud_suffix_whose_provider_is_off_is_refused(monkeypatch: pytest.MonkeyPatch, table: dict):
    for var in KEYS:
        monkeypatch.delenv(var, raising=False)
    gw = Gateway.from_config(parse({"providers": {"ollama_cloud": table}}))
    with pytest.raises(ProviderNotConfigured) as err:
        gw.router.resolve("kimi-k2.6:cloud")
    assert "'ollama_cloud'" in err.value.message
    assert ("OLLAMA_API_KEY" if not table else "providers.ollama_cloud.enabled") in err.value.message


async def test_unknown_prefixes_fall_through_to_the_default_provider_over_http(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = lambda seen: Reply(body=OLLAMA_DONE, content_type="application/x-ndjson")
    gw = await gateway(providers_at(upstream, server={"default_provider": "up-ollama"}))
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    await oai.chat.completions.create(model="hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M", messages=[HI])
    assert upstream.last.path == "/api/chat"
    assert upstream.last.json["model"] == "hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M"
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await ant.messages.create(model="library/llama3", max_tokens=5, messages=[HI])
    assert upstream.last.path == "/api/chat" and upstream.last.json["model"] == "library/llama3"


async def test_a_disabled_provider_is_refused_over_http_in_both_dialects(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    cfg = providers_at(upstream)
    cfg["providers"]["up-anthropic"]["enabled"] = False
    gw = await gateway(cfg)
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e1:
        await oai.chat.completions.create(model="up-anthropic/claude", messages=[HI])
    assert "providers.up-anthropic.enabled" in e1.value.body["message"]  # type: ignore[index]
    assert e1.value.body["code"] == "provider_not_configured"  # type: ignore[index]
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e2:
        await ant.messages.create(model="up-anthropic/claude", max_tokens=5, messages=[HI])
    assert e2.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "up-anthropic" in e2.value.body["error"]["message"]  # type: ignore[index]
    assert upstream.seen == []  # nothing was sent anywhere


async def test_a_bare_name_one_provider_declares_goes_there_over_http(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=ANT_REPLY)
    cfg = providers_at(upstream)
    cfg["providers"]["up-anthropic"]["models"] = ["claude-only-here"]
    gw = await gateway(cfg)
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await ant.messages.create(model="claude-only-here", max_tokens=5, messages=[HI])
    assert upstream.last.path == "/v1/messages" and upstream.last.json["model"] == "claude-only-here"
    assert upstream.last.headers["x-api-key"] == "sk-ant-up-secret"


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
