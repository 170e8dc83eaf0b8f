"""Random, half-plausible request bodies through both fronts to every kind of provider (pass-through,
translated, reasoning replay with something remembered): whatever a client sends, the answer is
a success or a 4xx in its own envelope, never a 500."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragoman.canonical import Reasoning
from dragoman.config import parse
from dragoman.gateway import Gateway
from dragoman.server.app import start
from tests.conftest import FakeUpstream, Reply, Seen, chat_completion

T = TypeVar("T")
BUILTIN = ("anthropic", "openai", "kimi", "moonshot", "minimax", "deepseek", "openrouter", "opencode", "ollama_cloud")
MODELS = [
    "up-openai/m",
    "up-anthropic/m",
    "up-ollama/m",
    *(f"{p}/m" for p in BUILTIN),
    "kimi/kimi-for-coding",
    "opencode/claude-sonnet-4-6",
    "opencode/gpt-5",
]
ANTHROPIC_OK = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
).encode()
OLLAMA_OK = json.dumps(
    {"model": "m", "message": {"role": "assistant", "content": "ok"}, "done": True, "done_reason": "stop"}
).encode()


def answer(seen: Seen) -> Reply:
    if seen.path.endswith("/messages"):
        return Reply(body=ANTHROPIC_OK)
    if seen.path.endswith("/api/chat"):
        return Reply(body=OLLAMA_OK)
    return Reply(body=chat_completion())


class Background:
    """An event loop in a thread, so that hypothesis can drive it from a plain test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[int, FakeUpstream]]:
    bg = Background()
    fake = FakeUpstream()
    bg.run(fake.start())
    fake.default = answer
    providers: dict[str, Any] = {
        "up-openai": {"dialect": "openai", "base_url": fake.url + "/v1", "api_key": "sk-a"},
        "up-anthropic": {"dialect": "anthropic", "base_url": fake.url, "api_key": "sk-b"},
        "up-ollama": {"dialect": "ollama", "base_url": fake.url},
        **{p: {"api_key": "sk-c", "base_url": fake.url} for p in BUILTIN},
    }
    gw = Gateway.from_config(parse({"server": {"default_provider": "up-openai"}, "providers": providers}))

    async def boot() -> tuple[Any, int]:
        for tid in ("t1", "t2"):
            await gw.reasoning.remember([tid], [Reasoning("thought", signature="sig", origin="kimi")])
        return await start(gw, "127.0.0.1", 0)

    runner, port = bg.run(boot())
    yield port, fake
    bg.run(runner.cleanup())
    bg.run(fake.stop())
    bg.stop()


scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(-1, 2, allow_nan=False),
    st.sampled_from(["", "text", "image", "tool_use", "tool_result", "thinking", "function", "user", "assistant"]),
    st.sampled_from(["system", "tool", "image_url", "auto", "none", "required", "enabled", "base64", "t1", "f"]),
)
field = st.sampled_from(
    [
        "type",
        "text",
        "role",
        "content",
        "tool_calls",
        "id",
        "name",
        "input",
        "arguments",
        "function",
        "tool_use_id",
        "is_error",
        "source",
        "media_type",
        "data",
        "url",
        "image_url",
        "thinking",
        "signature",
        "reasoning_content",
        "cache_control",
        "tool_call_id",
        "images",
        "parameters",
        "input_schema",
        "budget_tokens",
        "effort",
        "format",
        "schema",
        "detail",
        "reasoning_details",
    ]
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(field, inner, max_size=4)),
    max_leaves=10,
)


def either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right shape, sometimes anything."""
    return st.one_of(good, good, value)


block = st.fixed_dictionaries(
    {
        "type": either(
            st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "image_url", "document"])
        )
    },
    optional={
        "text": either(st.just("x")),
        "id": either(st.sampled_from(["t1", "t2"])),
        "name": either(st.just("f")),
        "input": value,
        "content": value,
        "tool_use_id": either(st.just("t1")),
        "source": value,
        "thinking": value,
        "signature": value,
        "image_url": value,
    },
)
call = st.fixed_dictionaries(
    {
        "id": either(st.sampled_from(["t1", "t2"])),
        "type": either(st.just("function")),
        "function": either(st.fixed_dictionaries({"name": either(st.just("f")), "arguments": either(st.just("{}"))})),
    }
)
message = st.fixed_dictionaries(
    {
        "role": either(st.sampled_from(["user", "assistant", "system", "tool", "developer"])),
        "content": st.one_of(
            st.just("hi"),
            st.lists(either(block), max_size=3),
            # a tool-call turn, so that reasoning replay looks at the blocks around it
            st.lists(either(block), max_size=2).map(
                lambda bs: [*bs, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]
            ),
            value,
        ),
    },
    optional={
        "tool_calls": either(st.lists(either(call), max_size=2)),
        "tool_call_id": value,
        "reasoning_content": value,
    },
)
top = st.sampled_from(
    [
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "stop_sequences",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "metadata",
        "stream_options",
        "response_format",
        "reasoning_effort",
        "n",
        "seed",
        "max_completion_tokens",
        "think",
        "options",
        "format",
    ]
)
bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS), "messages": st.lists(either(message), max_size=4)}
).flatmap(lambda base: st.dictionaries(top, value, max_size=3).map(lambda extra: {**extra, **base}))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(front=st.sampled_from(["/v1/chat/completions", "/v1/messages"]), body=bodies)
def test_random_bodies_never_500(served: tuple[int, FakeUpstream], front: str, body: dict[str, Any]) -> None:
    port, _ = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", front, json.dumps(body), {"content-type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status < 500, (resp.status, data)
    if resp.status >= 400:
        if front == "/v1/messages":
            assert data["type"] == "error" and isinstance(data["error"]["message"], str)
        else:
            assert isinstance(data["error"]["message"], str)
