"""Request-signal routing (`[router]`): the signals read from each dialect's body, the rules that
pick a target from them (table-driven), and the whole path over HTTP with the official SDKs: the
target the upstream received and the `x-dragoman-rule` header the client got."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import ClientSession

from dragoman.config import ConfigError, parse
from dragoman.gateway import Gateway
from dragoman.signals import Signals, signals_of
from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion, providers_at

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
HI = {"role": "user", "content": "hi"}
LONG = "word " * 4000  # ~5,300 estimated tokens

# ---- signals -------------------------------------------------------------------------------------

SIGNALS: list[tuple[str, str, dict[str, Any], Signals]] = [
    ("plain anthropic", "anthropic", {"messages": [HI]}, Signals()),
    (
        "anthropic explicit budget",
        "anthropic",
        {"messages": [HI], "thinking": {"type": "enabled", "budget_tokens": 31999}},
        Signals(effort="xhigh"),
    ),
    (
        "anthropic small budget",
        "anthropic",
        {"messages": [HI], "thinking": {"type": "enabled", "budget_tokens": 1024}},
        Signals(effort="low"),
    ),
    (
        "adaptive thinking alone (Claude Code, every turn)",
        "anthropic",
        {"messages": [HI], "thinking": {"type": "adaptive", "budget_tokens": 0}},
        Signals(),
    ),
    (
        "adaptive with an effort",
        "anthropic",
        {"messages": [HI], "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
        Signals(effort="max"),
    ),
    ("thinking disabled", "anthropic", {"messages": [HI], "thinking": {"type": "disabled"}}, Signals()),
    ("openai effort", "openai", {"messages": [HI], "reasoning_effort": "high"}, Signals(effort="high")),
    ("openai effort none", "openai", {"messages": [HI], "reasoning_effort": "none"}, Signals()),
    ("ollama think", "ollama", {"messages": [HI], "think": True}, Signals(effort="high")),
    (
        "anthropic web search server tool",
        "anthropic",
        {"messages": [HI], "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]},
        Signals(web_search=True),
    ),
    (
        "a function tool named like search is not a search tool",
        "anthropic",
        {"messages": [HI], "tools": [{"name": "WebSearch", "input_schema": {"type": "object"}}]},
        Signals(),
    ),
    ("openai search options", "openai", {"messages": [HI], "web_search_options": {}}, Signals(web_search=True)),
    (
        "responses web search tool",
        "responses",
        {"input": "hi", "tools": [{"type": "web_search_preview"}]},
        Signals(web_search=True),
    ),
    (
        "anthropic image",
        "anthropic",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
                    ],
                }
            ]
        },
        Signals(image=True),
    ),
    (
        "anthropic image inside a tool result",
        "anthropic",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}],
                        }
                    ],
                }
            ]
        },
        Signals(image=True),
    ),
    (
        "openai image part",
        "openai",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
        Signals(image=True),
    ),
    ("ollama images", "ollama", {"messages": [{"role": "user", "content": "x", "images": [PNG]}]}, Signals(image=True)),
    (
        "responses input image",
        "responses",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
        Signals(image=True),
    ),
]


@pytest.mark.parametrize(("dialect", "body", "expected"), [s[1:] for s in SIGNALS], ids=[s[0] for s in SIGNALS])
def test_signals_of_each_dialect(dialect: str, body: dict[str, Any], expected: Signals):
    before = json.dumps(body, sort_keys=True)
    assert signals_of(dialect, body, count_tokens=False) == expected
    assert json.dumps(body, sort_keys=True) == before  # the client's body is only read


@pytest.mark.parametrize("dialect", ["anthropic", "openai", "responses"])
def test_token_estimate_grows_with_the_input(dialect: str):
    key = "input" if dialect == "responses" else "messages"
    small = signals_of(dialect, {key: [HI]}).tokens
    big = signals_of(dialect, {key: [{"role": "user", "content": LONG}] * 12}).tokens
    assert small is not None and big is not None
    assert small < 50 and 60_000 < big < 70_000  # 12 x 20,000 ASCII chars at ~3.8 characters a token


# ---- rules ---------------------------------------------------------------------------------------

RULES = {
    "default": "up-openai/default-model",
    "background": "up-openai/small-model",
    "think": "up-anthropic/thinker",
    "long_context": "up-openai/long-model",
    "web_search": "up-anthropic/searcher",
    "image": "up-openai/vision-model",
}


def offline(**extra: Any) -> dict[str, Any]:
    """providers_at's config, its providers at an address nothing is sent to (rules only)."""
    cfg = providers_at(FakeUpstream(), **extra)
    for table in cfg["providers"].values():
        table["base_url"] = "http://127.0.0.1:9/v1"
    return cfg


@pytest.fixture
def router() -> Any:
    return Gateway.from_config(parse(offline(router=RULES, aliases={"nick": "up-openai/nicked"}))).router


CHOICES: list[tuple[str, str, Signals, str, str | None]] = [
    # (case, requested name, signals, routed name, rule)
    ("nothing special", "claude-sonnet-4-6", Signals(tokens=100), RULES["default"], "default"),
    (
        "long context first",
        "claude-haiku-4-5",
        Signals(tokens=60_001, image=True),
        RULES["long_context"],
        "long_context",
    ),
    ("at the threshold is not long", "claude-sonnet-4-6", Signals(tokens=60_000), RULES["default"], "default"),
    ("image before background", "claude-haiku-4-5", Signals(image=True), RULES["image"], "image"),
    (
        "background: Claude Code's small model",
        "claude-haiku-4-5-20251001",
        Signals(),
        RULES["background"],
        "background",
    ),
    (
        "web search before think",
        "claude-opus-4-7",
        Signals(web_search=True, effort="max"),
        RULES["web_search"],
        "web_search",
    ),
    ("think at the default effort", "claude-opus-4-7", Signals(effort="high"), RULES["think"], "think"),
    ("below think_effort", "claude-opus-4-7", Signals(effort="medium"), RULES["default"], "default"),
    ("explicit provider name is never re-routed", "up-openai/x", Signals(image=True), "up-openai/x", None),
    ("an alias keeps its target under default", "nick", Signals(), "nick", None),
    ("an alias still follows a signal rule", "nick", Signals(image=True), RULES["image"], "image"),
]


@pytest.mark.parametrize(("model", "signals", "routed", "rule"), [c[1:] for c in CHOICES], ids=[c[0] for c in CHOICES])
def test_router_rules_table(router: Any, model: str, signals: Signals, routed: str, rule: str | None):
    assert router.choose(model, signals) == (routed, rule)


def test_no_router_table_changes_nothing():
    gw = Gateway.from_config(parse(offline()))
    body = {"messages": [{"role": "user", "content": LONG * 20}], "reasoning_effort": "max"}
    assert gw.router.choose_for("anything", "openai", body) == ("anything", None)


def test_only_some_rules_and_a_custom_threshold_and_effort():
    cfg = offline(
        router={
            "long_context": "up-openai/long",
            "think": "up-openai/thinker",
            "long_context_threshold": 1000,
            "think_effort": "xhigh",
            "background_models": ["tiny-*"],
        },
    )
    router = Gateway.from_config(parse(cfg)).router
    body = {"messages": [{"role": "user", "content": "x" * 4000}]}
    assert router.choose_for("m", "openai", body) == ("up-openai/long", "long_context")
    assert router.choose_for("m", "openai", {"messages": [HI], "reasoning_effort": "high"}) == ("m", None)
    assert router.choose_for("m", "openai", {"messages": [HI], "reasoning_effort": "xhigh"}) == (
        "up-openai/thinker",
        "think",
    )
    assert router.choose_for("tiny-1", "openai", {"messages": [HI]}) == ("tiny-1", None)  # no background target


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"fast": "x/y"}, "router.fast", "unknown key"),
        ({"default": 3}, "router.default", "model name"),
        ({"long_context_threshold": 0}, "router.long_context_threshold", "positive"),
        ({"long_context_threshold": "big"}, "router.long_context_threshold", "expected int"),
        ({"think_effort": "huge"}, "router.think_effort", "xhigh"),
        ({"background_models": "claude-*"}, "router.background_models", "list"),
    ],
)
def test_bad_router_tables_name_the_key(table: dict[str, Any], key: str, words: str):
    with pytest.raises(ConfigError) as err:
        parse({"router": table})
    assert err.value.key == key and words in err.value.problem


def test_a_rule_target_on_a_disabled_provider_is_a_config_error():
    cfg = offline(router={"background": "up-ollama/qwen"})
    cfg["providers"]["up-ollama"]["enabled"] = False
    with pytest.raises(ConfigError) as err:
        Gateway.from_config(parse(cfg))
    assert err.value.key == "router.background" and "disabled" in err.value.problem


# ---- over HTTP -----------------------------------------------------------------------------------

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


def reply_for(seen: Any) -> Reply:
    if seen.path.endswith("/messages"):
        return Reply(body=ANT_OK)
    return Reply(body=chat_completion())


async def test_claude_code_requests_are_routed_by_what_they_are(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = reply_for
    gw = await gateway(providers_at(upstream, router=RULES))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)

    async def send(**kwargs: Any) -> tuple[str | None, str, str]:
        raw = await client.messages.with_raw_response.create(max_tokens=64, **kwargs)
        return raw.headers.get("x-dragoman-rule"), upstream.last.path, upstream.last.json["model"]

    # the small-model request Claude Code makes for a title
    assert await send(model="claude-haiku-4-5", messages=[HI]) == ("background", "/v1/chat/completions", "small-model")
    assert await send(model="claude-sonnet-4-6", messages=[HI]) == ("default", "/v1/chat/completions", "default-model")
    raw = await client.messages.with_raw_response.create(
        model="claude-opus-4-7", max_tokens=16000, thinking={"type": "enabled", "budget_tokens": 12000}, messages=[HI]
    )
    assert raw.headers["x-dragoman-rule"] == "think" and upstream.last.json["model"] == "thinker"
    # adaptive thinking, which Claude Code sends on every turn, is not a reason to re-route
    raw = await client.messages.with_raw_response.create(
        model="claude-opus-4-7", max_tokens=64, thinking={"type": "adaptive"}, messages=[HI]
    )
    assert raw.headers["x-dragoman-rule"] == "default"
    search = [{"type": "web_search_20250305", "name": "web_search"}]
    assert await send(model="claude-sonnet-4-6", messages=[HI], tools=search) == (
        "web_search",
        "/v1/messages",
        "searcher",
    )
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    picture = [{"role": "user", "content": [image, {"type": "text", "text": "what is this?"}]}]
    assert await send(model="claude-sonnet-4-6", messages=picture) == ("image", "/v1/chat/completions", "vision-model")
    long = [{"role": "user", "content": LONG * 12}]
    assert await send(model="claude-haiku-4-5", messages=long) == ("long_context", "/v1/chat/completions", "long-model")
    # an explicit provider/model is the client's choice: no rule, no header
    assert await send(model="up-anthropic/mine", messages=[HI]) == (None, "/v1/messages", "mine")


async def test_openai_clients_are_routed_too_and_streams_carry_the_header(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = reply_for
    gw = await gateway(providers_at(upstream, router=RULES))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(model="gpt-x", messages=[HI], reasoning_effort="high")
    assert raw.headers["x-dragoman-rule"] == "think"
    assert upstream.last.path == "/v1/messages" and upstream.last.json["model"] == "thinker"
    upstream.default = lambda seen: Reply(
        body=[
            b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
            b'"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n',
            b"data: [DONE]\n\n",
        ],
        content_type="text/event-stream",
    )
    async with ClientSession() as s:
        body = {"model": "gpt-x", "stream": True, "messages": [HI]}
        async with s.post(gw.openai_url + "/chat/completions", json=body) as r:
            assert r.status == 200 and r.headers["x-dragoman-rule"] == "default"
            assert b"[DONE]" in await r.read()
    assert upstream.last.json["model"] == "default-model"


async def test_count_tokens_counts_where_the_rules_send_the_request(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=b'{"input_tokens": 42}')
    cfg = providers_at(upstream, router={"background": "anthropic/claude-sonnet-4-6"})
    cfg["providers"]["anthropic"] = {"base_url": upstream.url, "api_key": "sk-ant-test"}
    gw = await gateway(cfg)
    count = {"messages": [HI]}
    async with ClientSession() as s:
        # no rule fires for this name: it goes to the default (an OpenAI custom provider), counted locally
        async with s.post(gw.url + "/v1/messages/count_tokens", json={"model": "some-model", **count}) as r:
            assert (await r.json())["input_tokens"] != 42
        assert upstream.seen == []
        # background requests go to Anthropic, which counts: forwarded there
        async with s.post(gw.url + "/v1/messages/count_tokens", json={"model": "claude-haiku-4-5", **count}) as r:
            assert (await r.json()) == {"input_tokens": 42}
    assert upstream.last.path == "/v1/messages/count_tokens" and upstream.last.json["model"] == "claude-sonnet-4-6"
