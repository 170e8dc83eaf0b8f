"""What the dashboard tests share: a config with priced fake providers, a burst of real traffic
through the gateway (answers, upstream failures, a stream, an unroutable model, a model name full
of markup), and a config carrying `server.admin_key`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anthropic
import msgspec
import openai

from dragoman.config import Config, ConfigError, ServerConfig, parse
from tests.conftest import FakeUpstream, Reply, RunningGateway, providers_at

GATEWAY_KEY = "gk-dashboard-secret-1"
ADMIN_KEY = "adm-dashboard-secret-2"
MARKUP_MODEL = '<img src=x onerror="window.__xss=1">'  # a client-chosen name that must stay text
PRICES = {
    "up-openai/gpt-dash": {"input": 1.0, "output": 2.0},  # USD per million tokens
    "up-anthropic/claude-dash": {"input": 3.0, "output": 15.0},
}
OPENAI_COST = (1000 * 1.0 + 200 * 2.0) / 1e6
STREAM_COST = (50 * 1.0 + 5 * 2.0) / 1e6
ANTHROPIC_COST = (300 * 3.0 + 40 * 15.0) / 1e6


def config(upstream: FakeUpstream, **server: Any) -> dict[str, Any]:
    cfg = providers_at(upstream, server=server)
    cfg["prices"] = PRICES
    return cfg


def with_admin_key(cfg: dict[str, Any], admin: str = ADMIN_KEY) -> Config:
    """The config with `server.admin_key` set (a field the operations work adds to ServerConfig; until
    it is there, a subclass carries it, as the dashboard reads it with getattr)."""
    try:
        return parse({**cfg, "server": {**cfg["server"], "admin_key": admin}})
    except ConfigError:
        pass
    parsed = parse(cfg)

    class WithAdminKey(ServerConfig):
        admin_key: str | None = None

    parsed.server = WithAdminKey(**msgspec.structs.asdict(parsed.server), admin_key=admin)
    return parsed


def chat(model: str, prompt: int = 1000, completion: int = 200) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-dash",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
    ).encode()


def chat_stream(model: str) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None, usage: dict[str, int] | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": "chatcmpl-dash-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    return [
        chunk({"role": "assistant", "content": "o"}, None),
        chunk({"content": "k"}, None),
        chunk({}, "stop", {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}),
        b"data: [DONE]\n\n",
    ]


def message(model: str) -> bytes:
    return json.dumps(
        {
            "id": "msg_dash",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 300, "output_tokens": 40},
        }
    ).encode()


@dataclass
class Traffic:
    requests: int
    errors: int
    by_provider: dict[str | None, int]
    cost: float


async def make_traffic(gw: RunningGateway, upstream: FakeUpstream, key: str = "unused") -> Traffic:
    """Eight requests through the official SDKs, one after another (each takes the next queued reply)."""
    oai = openai.AsyncOpenAI(base_url=gw.openai_url, api_key=key, max_retries=0)
    ant = anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)
    hello = [{"role": "user", "content": "hello"}]
    upstream.reply(Reply(body=chat("gpt-dash")), Reply(body=chat("gpt-dash")))
    for _ in range(2):
        await oai.chat.completions.create(model="up-openai/gpt-dash", messages=hello)  # type: ignore[arg-type]
    upstream.reply(Reply(status=500, body=b'{"error":{"message":"upstream exploded","type":"server_error"}}'))
    try:
        await oai.chat.completions.create(model="up-openai/gpt-dash", messages=hello)  # type: ignore[arg-type]
    except openai.APIStatusError as exc:
        assert exc.status_code >= 500
    else:
        raise AssertionError("the failing upstream's answer went through")
    upstream.reply(Reply(body=chat_stream("gpt-dash"), content_type="text/event-stream"))
    stream = await oai.chat.completions.create(
        model="up-openai/gpt-dash",
        messages=hello,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    async for _ in stream:
        pass
    upstream.reply(Reply(body=chat("x", 10, 1)))
    await oai.chat.completions.create(model="up-openai/" + MARKUP_MODEL, messages=hello)  # type: ignore[arg-type]
    upstream.reply(Reply(body=message("claude-dash")))
    await ant.messages.create(model="up-anthropic/claude-dash", max_tokens=16, messages=hello)  # type: ignore[arg-type]
    upstream.reply(
        Reply(
            status=429,
            body=b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}',
            headers={"retry-after": "1"},
        )
    )
    try:
        await ant.messages.create(model="up-anthropic/claude-dash", max_tokens=16, messages=hello)  # type: ignore[arg-type]
    except anthropic.APIStatusError as exc:
        assert exc.status_code == 429
    else:
        raise AssertionError("the rate-limited answer went through")
    try:
        await oai.chat.completions.create(model="openai/gpt-4o", messages=hello)  # type: ignore[arg-type]
    except openai.APIStatusError as exc:
        assert 400 <= exc.status_code < 500
    else:
        raise AssertionError("an unroutable model was answered")
    return Traffic(
        requests=8,
        errors=3,
        by_provider={"up-openai": 5, "up-anthropic": 2, None: 1},
        cost=2 * OPENAI_COST + STREAM_COST + ANTHROPIC_COST,
    )
