"""Shared pieces of the resilience tests (retries, fallbacks, keys, cooldowns, stream faults): the
SDK clients, minimal replies in each dialect, and a config whose policy waits next to nothing."""

from __future__ import annotations

import inspect
import json
import socket
from typing import Any

import anthropic
import openai

from tests.conftest import FakeUpstream, Reply, chat_completion, providers_at
from tests.rawserver import Server

USER = [{"role": "user", "content": "hi"}]
SSE = "text/event-stream"
FRONTS = ("openai", "anthropic")  # the client's SDK; each front's model is its own dialect upstream
MODEL = {"openai": "up-openai/m", "anthropic": "up-anthropic/m"}


def oai(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="client-key", max_retries=0, timeout=30)


def ant(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, timeout=30)


def anthropic_message(text: str = "ok") -> bytes:
    return json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 2},
        }
    ).encode()


def openai_events(text: str = "ok") -> list[bytes]:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return [
        b"data: "
        + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]}).encode()
        + b"\n\n",
        b"data: "
        + json.dumps({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode()
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]


def anthropic_events(text: str = "ok") -> list[bytes]:
    def event(kind: str, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    start = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": []}
    return [
        event(
            "message_start",
            {"message": {**start, "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}},
        ),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}),
        event("content_block_stop", {"index": 0}),
        event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        event("message_stop", {}),
    ]


def ok(dialect: str, stream: bool, text: str = "ok") -> Reply:
    """A successful answer in the upstream's `dialect`."""
    if stream:
        return Reply(body=openai_events(text) if dialect == "openai" else anthropic_events(text), content_type=SSE)
    return Reply(body=chat_completion(text) if dialect == "openai" else anthropic_message(text))


def error(dialect: str, status: int, message: str = "upstream trouble", **headers: str) -> Reply:
    """An error answer in the provider's own envelope."""
    if dialect == "openai":
        body: dict[str, Any] = {"error": {"message": message, "type": "server_error", "code": None}}
    else:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
    return Reply(status=status, body=json.dumps(body).encode(), headers=headers)


def quick(upstream: FakeUpstream | Server, retries: int = 2, **server: Any) -> dict[str, Any]:
    """`providers_at` with retries on and backoff of a few milliseconds."""
    cfg = providers_at(upstream)
    cfg["server"].update(retries=retries, retry_backoff=0.01, retry_backoff_max=0.02, retry_after_max=3, **server)
    return cfg


async def ask(url: str, front: str, stream: bool, model: str | None = None) -> tuple[str, dict[str, str]]:
    """One request through the SDK of `front`: the answer's text and the reply's headers."""
    model = model or MODEL[front]
    if front == "openai":
        client = oai(url)
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=USER, stream=stream)  # type: ignore[call-overload]
        parsed = await _parsed(raw)
        if stream:
            text = "".join([c.choices[0].delta.content or "" async for c in parsed if c.choices])
        else:
            text = parsed.choices[0].message.content or ""
        return text, dict(raw.headers)
    aclient = ant(url)
    araw = await aclient.messages.with_raw_response.create(model=model, max_tokens=10, messages=USER, stream=stream)  # type: ignore[call-overload]
    parsed = await _parsed(araw)
    if stream:
        text = "".join(
            [e.delta.text async for e in parsed if e.type == "content_block_delta" and e.delta.type == "text_delta"]
        )
    else:
        text = "".join(b.text for b in parsed.content if b.type == "text")
    return text, dict(araw.headers)


async def refused(
    url: str, front: str, stream: bool, model: str | None = None
) -> openai.APIStatusError | anthropic.APIStatusError:
    """The SDK error a request ends in (it must end in one)."""
    try:
        await ask(url, front, stream, model)
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        return exc
    raise AssertionError("the request succeeded")


async def _parsed(raw: Any) -> Any:
    out = raw.parse()  # the openai SDK's is sync, anthropic's a coroutine
    return await out if inspect.isawaitable(out) else out


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sent_key(headers: dict[str, str]) -> str:
    """The credential an upstream saw, Bearer or x-api-key (compare it, never print it)."""
    low = {k.lower(): v for k, v in headers.items()}
    if "x-api-key" in low:
        return low["x-api-key"]
    return low.get("authorization", "").removeprefix("Bearer ")
