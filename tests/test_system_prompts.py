"""Claude Code's system prompt on its way to OpenAI-dialect (and Ollama) upstreams, over HTTP with the
Anthropic SDK: one leading system message with the blocks in order and without the per-request
billing header, and later system messages kept, in place, as `<system-reminder>` text in user turns
(no `system` message after the first: many OpenAI-compatible servers refuse one)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
from aiohttp import ClientSession

from tests.conftest import FakeUpstream, GatewayFactory, Reply, chat_completion, providers_at

BILLING = "x-anthropic-billing-header: cc_version=2.1.258.a1b; cc_entrypoint=cli; cch=3f9e1;"
IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
PROMPT = "You are an interactive CLI tool that helps users with software engineering tasks."
TOOL = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}}
OLLAMA_DONE = json.dumps(
    {"model": "m", "message": {"role": "assistant", "content": "ok"}, "done": True, "done_reason": "stop"}
).encode()


def claude_code_request(billing: str = BILLING) -> dict[str, Any]:
    """The shape Claude Code sends: several system blocks, the first its billing header, and
    `role: "system"` messages inside the conversation."""
    return {
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": billing},
            {"type": "text", "text": IDENTITY, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [TOOL],
        "messages": [
            {"role": "user", "content": "list the files"},
            {"role": "system", "content": "The user switched to plan mode."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}]},
            {"role": "assistant", "content": "There is one file."},
            {"role": "system", "content": [{"type": "text", "text": "Context is running low."}]},
        ],
    }


def reminder(text: str) -> str:
    return f"<system-reminder>\n{text}\n</system-reminder>"


def texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [p["text"] for p in content if p.get("type") == "text"]


async def test_claude_code_system_prompt_reaches_an_openai_upstream_as_one_leading_message(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway(providers_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await client.messages.create(model="up-openai/qwen3.6-27b", **claude_code_request())
    msgs = upstream.last.json["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert msgs[0]["content"] == f"{IDENTITY}\n\n{PROMPT}"
    assert BILLING not in upstream.last.body.decode()  # changes every request: it would defeat prefix caching
    # the first reminder follows the user's words in that user turn; the tool results keep their place
    assert texts(msgs[1]["content"]) == ["list the files", reminder("The user switched to plan mode.")]
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a.py"}
    # a system message after an assistant turn, last: a user turn of its own, at the end
    assert texts(msgs[5]["content"]) == [reminder("Context is running low.")]


async def test_a_system_message_before_any_turn_joins_the_leading_one(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway(providers_at(upstream))
    body = {
        "model": "up-openai/m",
        "max_tokens": 10,
        "system": "Be brief.",
        "messages": [
            {"role": "system", "content": "Use metric units."},
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Weather?"},
        ],
    }
    headers = {"anthropic-version": "2023-06-01"}
    async with ClientSession() as s, s.post(gw.url + "/v1/messages", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
    msgs = upstream.last.json["messages"]
    assert [m["role"] for m in msgs] == ["system", "assistant", "user"]
    assert msgs[0]["content"] == "Be brief.\n\nUse metric units."
    # no user turn before it: it leads the next one
    assert texts(msgs[2]["content"]) == [reminder("Answer in French."), "Weather?"]


async def test_the_same_folding_on_a_streamed_request_to_a_moonshot_like_upstream(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}],
    }
    sse = [b"data: " + json.dumps(chunk).encode() + b"\n\n", b"data: [DONE]\n\n"]
    upstream.default = lambda seen: Reply(body=sse, content_type="text/event-stream")
    gw = await gateway({"providers": {"moonshot": {"base_url": upstream.url + "/v1", "api_key": "sk-moon"}}})
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    async with client.messages.stream(model="moonshot/kimi-k2.6", **claude_code_request()) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == "ok"  # type: ignore[union-attr]
    msgs = upstream.last.json["messages"]
    assert [m["role"] for m in msgs].count("system") == 1 and msgs[0]["role"] == "system"
    assert msgs[0]["content"] == f"{IDENTITY}\n\n{PROMPT}"


async def test_ollama_gets_no_billing_header(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=OLLAMA_DONE)
    gw = await gateway(providers_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await client.messages.create(model="up-ollama/qwen3", **claude_code_request())
    msgs = upstream.last.json["messages"]
    assert msgs[0] == {"role": "system", "content": f"{IDENTITY}\n{PROMPT}"}
    assert "x-anthropic-billing-header" not in upstream.last.body.decode()


async def test_an_anthropic_upstream_still_gets_every_block(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(
        body=json.dumps(
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
    )
    gw = await gateway(providers_at(upstream))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
    await client.messages.create(model="up-anthropic/claude", **claude_code_request())
    assert [b["text"] for b in upstream.last.json["system"]] == [BILLING, IDENTITY, PROMPT]


async def test_an_openai_clients_system_messages_are_its_own(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = lambda seen: Reply(body=chat_completion())
    gw = await gateway(providers_at(upstream))
    messages: list[Any] = [
        {"role": "system", "content": "one"},
        {"role": "system", "content": "two"},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "three"},
    ]
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="k", max_retries=0)
    await client.chat.completions.create(model="up-openai/m", messages=messages)
    assert upstream.last.json["messages"] == messages  # the same dialect: untouched
