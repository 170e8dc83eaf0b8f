"""Translation between dialects, end to end: real recorded provider traffic served by a fake upstream
in one dialect, consumed through the gateway by the official SDK of another.

Oracles, none of them the gateway's own code:
* expectations come from folding the *recorded* upstream bytes with the small reference folds here;
* what clients see is read by the official `openai` / `anthropic` SDKs and by strict grammar checkers
  over the raw bytes Dragoman writes (`check_anthropic_stream`, `check_openai_stream`);
* what the upstream receives is read from the fake upstream's record of the request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import ClientSession

from tests.conftest import FakeUpstream, GatewayFactory, Reply, providers_at
from tests.recorded import cassette, raw

FANTASY = "charmbracelet__fantasy/providertests/testdata/"
CC = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/"
PYD = "pydantic__pydantic-ai/tests/models/cassettes/"
VERCEL = "vercel__ai/packages/"
OAI_PY = "openai__openai-python/.inline-snapshot/external/"

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
CHAT = [{"role": "user", "content": "What's the weather in Florence, Italy?"}]

# Recordings: name -> (path, interaction index; None for a raw body file, CHUNKS for vercel's
# one-JSON-per-line Anthropic captures, replayed as `event:`/`data:` SSE)
CHUNKS = -1
ANTHROPIC_STREAMS: dict[str, tuple[str, int | None]] = {
    "fantasy-thinking-turn1": (FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking-streaming.yaml", 0),
    "fantasy-thinking-turn2": (FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking-streaming.yaml", 1),
    "fantasy-multi-tool-turn1": (FANTASY + "TestAnthropicCommon/claude-sonnet-4/multi_tool_streaming.yaml", 0),
    "fantasy-multi-tool-turn2": (FANTASY + "TestAnthropicCommon/claude-sonnet-4/multi_tool_streaming.yaml", 1),
    "pydantic-redacted-thinking": (PYD + "test_anthropic/test_anthropic_model_thinking_part_redacted_stream.yaml", 0),
    "codecompanion-tools": (CC + "anthropic_tools_streaming.txt", None),
    "pydantic-thinking-then-text": (PYD + "test_anthropic/test_anthropic_model_thinking_part_stream.yaml", 0),
    "vercel-clear-thinking": (VERCEL + "anthropic/src/__fixtures__/anthropic-clear-thinking.1.chunks.txt", CHUNKS),
    "vercel-web-search-citations": (
        VERCEL + "anthropic/src/__fixtures__/anthropic-web-search-tool.1.chunks.txt",
        CHUNKS,
    ),
    "vercel-input-tokens-in-message-delta": (
        VERCEL + "anthropic/src/__fixtures__/anthropic-message-delta-input-tokens.chunks.txt",
        CHUNKS,
    ),
}
ANTHROPIC_REPLIES: dict[str, tuple[str, int | None]] = {
    "fantasy-thinking-turn1": (FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking.yaml", 0),
    "fantasy-thinking-turn2": (FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking.yaml", 1),
    "fantasy-multi-tool-turn1": (FANTASY + "TestAnthropicCommon/claude-sonnet-4/multi_tool.yaml", 0),
    "fantasy-multi-tool-turn2": (FANTASY + "TestAnthropicCommon/claude-sonnet-4/multi_tool.yaml", 1),
    "pydantic-redacted-thinking": (PYD + "test_anthropic/test_anthropic_model_thinking_part_redacted.yaml", 0),
    "pydantic-cache-hit": (PYD + "test_anthropic/test_anthropic_cache_real_api.yaml", 1),
    "pydantic-thinking-text-tool": (PYD + "test_anthropic/test_anthropic_extended_thinking_with_tool_use.yaml", 0),
}
OPENAI_STREAMS: dict[str, tuple[str, int | None]] = {
    "fantasy-gpt4o-multi-tool": (FANTASY + "TestOpenAICommon/openai-gpt-4o/multi_tool_streaming.yaml", 0),
    "fantasy-gpt4o-multi-tool-turn2": (FANTASY + "TestOpenAICommon/openai-gpt-4o/multi_tool_streaming.yaml", 1),
    "fantasy-openrouter-kimi-tool": (FANTASY + "TestOpenRouterCommon/kimi/tool_streaming.yaml", 0),
    "fantasy-avian-kimi-thinking-turn1": (
        FANTASY + "TestOpenAICompatibleThinking/avian-kimi/thinking-streaming.yaml",
        0,
    ),
    "fantasy-avian-kimi-thinking-turn2": (
        FANTASY + "TestOpenAICompatibleThinking/avian-kimi/thinking-streaming.yaml",
        1,
    ),
    "codecompanion-deepseek-tools": (CC + "deepseek_tools_streaming.txt", None),
    "openai-python-length": (
        OAI_PY + "4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.bin",
        None,
    ),
}
OPENAI_REPLIES: dict[str, tuple[str, int | None]] = {
    "fantasy-gpt4o-multi-tool": (FANTASY + "TestOpenAICommon/openai-gpt-4o/multi_tool.yaml", 0),
    "fantasy-gpt4o-multi-tool-turn2": (FANTASY + "TestOpenAICommon/openai-gpt-4o/multi_tool.yaml", 1),
    "fantasy-openrouter-kimi-tool": (FANTASY + "TestOpenRouterCommon/kimi/tool.yaml", 0),
    "codecompanion-deepseek-tools": (CC + "deepseek_tools_no_streaming.txt", None),
    "vercel-deepseek-reasoner-tool": (VERCEL + "deepseek/src/chat/__fixtures__/deepseek-tool-call.json", None),
}
OLLAMA_STREAM = CC + "ollama_tools_streaming.txt"
OLLAMA_REPLY = CC + "ollama_tools_no_streaming.txt"


def body_of(rec: tuple[str, int | None]) -> bytes:
    path, i = rec
    if i == CHUNKS:
        lines = [ln for ln in raw(path).decode().splitlines() if ln.strip()]
        return "".join(f"event: {json.loads(ln)['type']}\ndata: {ln}\n\n" for ln in lines).encode()
    return raw(path) if i is None else cassette(path)[i].body


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def oai(gw_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw_url + "/v1", api_key="client-key", max_retries=0)


def ant(gw_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw_url, api_key="client-key", max_retries=0)


async def post_raw(url: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
    async with ClientSession() as s, s.post(url, json=body) as r:
        return r.status, r.headers.get("content-type", ""), await r.read()


# ---- the meaning of a reply, folded from wire payloads -------------------------------------------


@dataclass
class Meaning:
    """What a reply says, in Anthropic terms: texts, reasoning, tool calls, stop reason, usage."""

    text: str = ""
    reasoning: list[str] = field(default_factory=list)  # thinking texts (redacted blocks excluded)
    signatures: list[str] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (id, name, arguments object)
    stop: str | None = None
    input_tokens: int = 0  # uncached input
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read + self.cache_write


FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}
STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens", "content_filter": "refusal"}


def lenient_data_lines(body: bytes) -> list[dict[str, Any]]:
    """Every `data:` JSON payload of an SSE body, one per line (codecompanion stubs have no blank
    lines between events), skipping comments, `event:` lines and `[DONE]`."""
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data and data != "[DONE]":
                out.append(json.loads(data))
    return out


def fold_anthropic_events(events: list[dict[str, Any]]) -> Meaning:
    m = Meaning()
    blocks: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    usage: dict[str, Any] = {}
    for e in events:
        t = e["type"]
        if t == "message_start":
            usage.update(e["message"].get("usage") or {})
        elif t == "content_block_start":
            blocks[e["index"]] = dict(e["content_block"], _json="")
            order.append(e["index"])
        elif t == "content_block_delta":
            b, d = blocks[e["index"]], e["delta"]
            if d["type"] == "text_delta":
                b["text"] += d["text"]
            elif d["type"] == "thinking_delta":
                b["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                b["signature"] += d["signature"]
            elif d["type"] == "input_json_delta":
                b["_json"] += d["partial_json"]
        elif t == "message_delta":
            m.stop = e["delta"].get("stop_reason")
            usage.update({k: v for k, v in (e.get("usage") or {}).items() if v is not None})
    for i in order:
        b = blocks[i]
        if b["type"] == "tool_use":
            b["input"] = json.loads(b["_json"]) if b["_json"] else b["input"]
        fold_block(m, b)
    fold_usage(m, usage)
    return m


def fold_block(m: Meaning, b: dict[str, Any]) -> None:
    if b["type"] == "text":
        m.text += b["text"]
    elif b["type"] == "thinking":
        m.reasoning.append(b["thinking"])
        m.signatures.append(b["signature"])
    elif b["type"] == "redacted_thinking":
        m.redacted.append(b["data"])
    elif b["type"] == "tool_use":
        m.calls.append((b["id"], b["name"], b["input"]))


def fold_usage(m: Meaning, u: dict[str, Any]) -> None:
    m.input_tokens = u.get("input_tokens") or 0
    m.output_tokens = u.get("output_tokens") or 0
    m.cache_read = u.get("cache_read_input_tokens") or 0
    m.cache_write = u.get("cache_creation_input_tokens") or 0


def fold_anthropic_message(msg: dict[str, Any]) -> Meaning:
    m = Meaning(stop=msg["stop_reason"])
    for b in msg["content"]:
        fold_block(m, b)
    fold_usage(m, msg["usage"])
    return m


def fold_openai_chunks(chunks: list[dict[str, Any]]) -> Meaning:
    m = Meaning()
    reasoning = ""
    calls: dict[int, list[Any]] = {}
    usage: dict[str, Any] | None = None
    for c in chunks:
        if c.get("usage"):
            usage = c["usage"]
        for ch in c.get("choices") or []:
            d = ch.get("delta") or {}
            m.text += d.get("content") or ""
            reasoning += d.get("reasoning_content") or d.get("reasoning") or ""
            for tc in d.get("tool_calls") or []:
                entry = calls.setdefault(tc["index"], [None, None, ""])
                fn = tc.get("function") or {}
                entry[0] = entry[0] or tc.get("id")
                entry[1] = entry[1] or fn.get("name")
                entry[2] += fn.get("arguments") or ""
            if ch.get("finish_reason"):
                m.stop = STOP[ch["finish_reason"]]
    if reasoning:
        m.reasoning = [reasoning]
    m.calls = [(i, n, json.loads(a) if a else {}) for i, n, a in (calls[k] for k in sorted(calls))]
    if usage:
        fold_openai_usage(m, usage)
    return m


def fold_openai_usage(m: Meaning, u: dict[str, Any]) -> None:
    details = u.get("prompt_tokens_details") or {}
    m.cache_read = details.get("cached_tokens") or 0
    m.cache_write = details.get("cache_write_tokens") or 0
    m.input_tokens = u["prompt_tokens"] - m.cache_read - m.cache_write
    m.output_tokens = u["completion_tokens"]


def fold_openai_completion(body: dict[str, Any]) -> Meaning:
    choice = body["choices"][0]
    msg = choice["message"]
    m = Meaning(text=msg.get("content") or "", stop=STOP[choice["finish_reason"]])
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")  # DeepSeek / OpenRouter
    if reasoning:
        m.reasoning = [reasoning]
    m.calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in msg.get("tool_calls") or []
    ]
    fold_openai_usage(m, body["usage"])
    return m


def fold_ollama_lines(lines: list[dict[str, Any]]) -> Meaning:
    m = Meaning()
    thinking = ""
    for obj in lines:
        msg = obj.get("message") or {}
        m.text += msg.get("content") or ""
        thinking += msg.get("thinking") or ""
        for tc in msg.get("tool_calls") or []:
            m.calls.append((tc.get("id"), tc["function"]["name"], tc["function"]["arguments"]))
        if obj.get("done"):
            m.stop = "tool_use" if m.calls else {"length": "max_tokens"}.get(obj.get("done_reason"), "end_turn")
            m.input_tokens = obj.get("prompt_eval_count") or 0
            m.output_tokens = obj.get("eval_count") or 0
    if thinking:
        m.reasoning = [thinking]
    return m


def recorded_anthropic_stream(name: str) -> Meaning:
    return fold_anthropic_events(lenient_data_lines(body_of(ANTHROPIC_STREAMS[name])))


def recorded_openai_stream(name: str) -> Meaning:
    return fold_openai_chunks(lenient_data_lines(body_of(OPENAI_STREAMS[name])))


def recorded_ollama() -> Meaning:
    return fold_ollama_lines([json.loads(x) for x in raw(OLLAMA_STREAM).splitlines() if x.strip()])


# ---- grammar checkers over the raw bytes Dragoman writes ----------------------------------------

ANTHROPIC_STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"}
DELTAS_FOR = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}


def check_anthropic_stream(data: bytes) -> list[dict[str, Any]]:
    """Assert the exact grammar Anthropic clients (Claude Code) accept; return the event payloads.

    message_start, then per block content_block_start(i) delta(i)* content_block_stop(i) with
    i = 0, 1, 2 ..., one block open at a time, every thinking block closed by exactly one
    signature_delta right before its stop, one message_delta (stop_reason + usage), message_stop."""
    text = data.decode()
    assert text.endswith("\n\n"), "the stream must end with a complete event"
    events: list[dict[str, Any]] = []
    for frame in text[:-2].split("\n\n"):
        lines = frame.split("\n")
        assert len(lines) == 2, f"an event is exactly one event: line and one data: line, got {frame!r}"
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        payload = json.loads(lines[1][6:])
        assert payload["type"] == lines[0][7:], f"event name and payload type differ: {frame!r}"
        events.append(payload)
    names = [e["type"] for e in events]
    assert names[0] == "message_start", names[:3]
    assert names[-2:] == ["message_delta", "message_stop"], names[-3:]
    for once in ("message_start", "message_delta", "message_stop"):
        assert names.count(once) == 1, f"{once} appears {names.count(once)} times"
    start = events[0]["message"]
    assert start["type"] == "message" and start["role"] == "assistant" and start["content"] == []
    assert start["stop_reason"] is None and isinstance(start["usage"]["input_tokens"], int)
    open_index: int | None = None
    kind = ""
    next_index = 0
    partial = ""
    signatures = 0
    signed_last = False
    for e in events[1:-2]:
        t = e["type"]
        if t == "content_block_start":
            assert open_index is None, f"block {e['index']} opened while block {open_index} is open"
            assert e["index"] == next_index, f"block index {e['index']}, expected {next_index}"
            open_index, next_index = e["index"], next_index + 1
            block = e["content_block"]
            kind = block["type"]
            partial, signatures, signed_last = "", 0, False
            if kind == "text":
                assert block["text"] == ""
            elif kind == "thinking":
                assert block["thinking"] == "" and block["signature"] == ""
            elif kind == "tool_use":
                assert block["id"] and block["name"] and block["input"] == {}
        elif t == "content_block_delta":
            assert e["index"] == open_index, f"delta for block {e['index']} while {open_index} is open"
            d = e["delta"]
            assert d["type"] in DELTAS_FOR.get(kind, set()), f"{d['type']} inside a {kind} block"
            if kind == "thinking":
                assert not signed_last, "a thinking delta after the signature_delta"
                if d["type"] == "signature_delta":
                    signatures += 1
                    signed_last = True
            elif kind == "tool_use":
                partial += d["partial_json"]
        elif t == "content_block_stop":
            assert e["index"] == open_index, f"stop for block {e['index']} while {open_index} is open"
            if kind == "thinking":
                assert signatures == 1 and signed_last, "a thinking block must end with one signature_delta"
            if kind == "tool_use":
                assert isinstance(json.loads(partial) if partial else {}, dict), partial
            open_index = None
        else:
            raise AssertionError(f"unexpected event {t!r} between message_start and message_delta")
    assert open_index is None, f"block {open_index} never stopped"
    md = events[-2]
    assert md["delta"]["stop_reason"] in ANTHROPIC_STOP_REASONS, md
    assert isinstance(md["usage"]["output_tokens"], int), md
    return events


def check_openai_stream(data: bytes, include_usage: bool) -> list[dict[str, Any]]:
    """Assert the Chat Completions stream shape: a first chunk with the role, deltas, exactly one
    chunk with finish_reason (the last with choices), the usage chunk (`choices: []`) when asked for,
    then `data: [DONE]`. Returns the JSON chunks."""
    text = data.decode()
    assert text.endswith("\n\ndata: [DONE]\n\n"), text[-200:]
    frames = text[:-2].split("\n\n")
    assert frames[-1] == "data: [DONE]" and frames.count("data: [DONE]") == 1
    for f in frames:
        assert f.startswith("data: ") and "\n" not in f, f"not a single data: line: {f!r}"
    chunks = [json.loads(f[6:]) for f in frames[:-1]]
    for c in chunks:
        assert "error" not in c, c
        assert c["object"] == "chat.completion.chunk"
    assert len({(c["id"], c["model"], c["created"]) for c in chunks}) == 1, "id/model/created vary"
    if include_usage:
        *body, tail = chunks
        assert tail["choices"] == [] and isinstance(tail["usage"], dict), tail
        u = tail["usage"]
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        for c in body:
            assert "usage" in c and c["usage"] is None, "with include_usage every other chunk has usage: null"
    else:
        body = chunks
        for c in body:
            assert c.get("usage") is None, "usage reported without include_usage"
    for c in body:
        assert len(c["choices"]) == 1 and c["choices"][0]["index"] == 0, c
    first = body[0]["choices"][0]
    assert first["delta"].get("role") == "assistant" and first["finish_reason"] is None
    finishes = [i for i, c in enumerate(body) if c["choices"][0]["finish_reason"] is not None]
    assert finishes == [len(body) - 1], f"finish_reason on chunks {finishes} of {len(body)}"
    assert body[-1]["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls", "content_filter")
    seen: set[int] = set()
    for c in body:
        for tc in c["choices"][0]["delta"].get("tool_calls") or []:
            k = tc["index"]
            if k not in seen:
                assert k == len(seen), f"tool call index {k} after {sorted(seen)}"
                assert tc["id"] and tc["type"] == "function" and tc["function"]["name"], tc
                seen.add(k)
            else:
                assert "id" not in tc and "name" not in tc.get("function", {}), tc
    return chunks


# ---- assertions shared by the recorded-replay tests --------------------------------------------


def assert_openai_side(got: Meaning, want: Meaning) -> None:
    """An OpenAI client's view of an Anthropic (or Ollama) reply: thinking joins reasoning_content,
    redacted thinking has no form, ids verbatim, arguments JSON equal, usage in OpenAI terms."""
    assert got.text == want.text
    assert got.reasoning == (["".join(want.reasoning)] if "".join(want.reasoning) else [])
    assert got.calls == want.calls
    assert got.stop == want.stop
    assert got.prompt_tokens == want.prompt_tokens
    assert got.cache_read == want.cache_read
    assert got.output_tokens == want.output_tokens


def assert_anthropic_side(got: Meaning, want: Meaning) -> None:
    """An Anthropic client's view of an OpenAI-dialect reply: reasoning as one thinking block,
    tool_use input objects equal to the recorded arguments, usage split into uncached + cache_read."""
    assert got.text == want.text
    assert got.reasoning == want.reasoning
    assert got.calls == want.calls
    assert got.stop == want.stop
    assert (got.input_tokens, got.output_tokens, got.cache_read) == (
        want.input_tokens,
        want.output_tokens,
        want.cache_read,
    )


def meaning_of_openai_message(msg: Any, finish: str | None, usage: Any) -> Meaning:
    """From the OpenAI SDK's parsed objects (extra fields read through model_dump)."""
    dumped = msg.model_dump()
    m = Meaning(text=msg.content or "", stop=STOP[finish] if finish else None)
    if dumped.get("reasoning_content"):
        m.reasoning = [dumped["reasoning_content"]]
    m.calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]
    if usage is not None:
        fold_openai_usage(m, usage.model_dump())
    return m


def meaning_of_anthropic_message(msg: anthropic.types.Message) -> Meaning:
    return fold_anthropic_message(msg.model_dump())


# ---- Anthropic upstream -> OpenAI clients ---------------------------------------------------------


@pytest.mark.parametrize("name", list(ANTHROPIC_STREAMS))
async def test_anthropic_stream_to_openai_raw_bytes(upstream: FakeUpstream, gateway: GatewayFactory, name: str):
    recorded = body_of(ANTHROPIC_STREAMS[name])
    upstream.reply(Reply(body=pieces(recorded, 113), content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, ctype, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {
            "model": "up-anthropic/claude-sonnet-4",
            "messages": CHAT,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200 and ctype.startswith(SSE)
    chunks = check_openai_stream(data, include_usage=True)
    want = recorded_anthropic_stream(name)
    assert_openai_side(fold_openai_chunks(chunks), want)
    sent = upstream.last
    assert sent.path == "/v1/messages" and sent.json["stream"] is True
    assert sent.json["model"] == "claude-sonnet-4"


@pytest.mark.parametrize("name", list(ANTHROPIC_STREAMS))
async def test_anthropic_stream_to_openai_sdk_accumulator(upstream: FakeUpstream, gateway: GatewayFactory, name: str):
    upstream.reply(Reply(body=pieces(body_of(ANTHROPIC_STREAMS[name]), 257), content_type=SSE))
    gw = await gateway(providers_at(upstream))
    async with oai(gw.url).chat.completions.stream(
        model="up-anthropic/claude-sonnet-4",
        messages=CHAT,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    got = meaning_of_openai_message(choice.message, choice.finish_reason, final.usage)
    assert_openai_side(got, recorded_anthropic_stream(name))


@pytest.mark.parametrize("name", list(ANTHROPIC_STREAMS))
async def test_anthropic_stream_to_openai_sdk_chunks(upstream: FakeUpstream, gateway: GatewayFactory, name: str):
    upstream.reply(Reply(body=[body_of(ANTHROPIC_STREAMS[name])], content_type=SSE))
    gw = await gateway(providers_at(upstream))
    stream = await oai(gw.url).chat.completions.create(
        model="up-anthropic/claude-sonnet-4",
        messages=CHAT,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    got = Meaning()
    reasoning = ""
    args: dict[int, list[Any]] = {}
    usage = None
    async for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        got.text += delta.content or ""
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        for tc in delta.tool_calls or []:
            entry = args.setdefault(tc.index, [tc.id, tc.function and tc.function.name, ""])
            entry[2] += (tc.function and tc.function.arguments) or ""
        if choice.finish_reason:
            got.stop = STOP[choice.finish_reason]
    got.reasoning = [reasoning] if reasoning else []
    got.calls = [(i, n, json.loads(a)) for i, n, a in (args[k] for k in sorted(args))]
    assert usage is not None
    fold_openai_usage(got, usage.model_dump())
    assert_openai_side(got, recorded_anthropic_stream(name))


@pytest.mark.parametrize("name", list(ANTHROPIC_REPLIES))
async def test_anthropic_reply_to_openai_sdk(upstream: FakeUpstream, gateway: GatewayFactory, name: str):
    recorded = body_of(ANTHROPIC_REPLIES[name])
    upstream.reply(Reply(body=recorded))
    gw = await gateway(providers_at(upstream))
    resp = await oai(gw.url).chat.completions.create(model="up-anthropic/claude-sonnet-4", messages=CHAT)  # type: ignore[arg-type]
    choice = resp.choices[0]
    got = meaning_of_openai_message(choice.message, choice.finish_reason, resp.usage)
    want = fold_anthropic_message(json.loads(recorded))
    assert_openai_side(got, want)
    assert resp.usage is not None and resp.usage.total_tokens == want.prompt_tokens + want.output_tokens
    assert upstream.last.json.get("stream") in (None, False)


async def test_recorded_values_the_anthropic_replays_must_reproduce(upstream: FakeUpstream, gateway: GatewayFactory):
    """Pinned literal values from the recordings, so the folds above cannot silently agree on nothing."""
    thinking = recorded_anthropic_stream("fantasy-thinking-turn1")
    assert thinking.calls == [("toolu_01Js4AMfx5qpTLhwTusnvT68", "weather", {"location": "Florence, Italy"})]
    assert thinking.reasoning[0].startswith("The user is asking for weather information for Florence")
    assert (thinking.input_tokens, thinking.output_tokens, thinking.stop) == (424, 119, "tool_use")
    multi = recorded_anthropic_stream("codecompanion-tools")
    assert [c[0] for c in multi.calls] == ["toolu_01QRThyzKt6NibK3m1DjUTkE", "toolu_015A1zQUwKw1YE3CYvRRUdXZ"]
    assert multi.calls[1][2] == {"location": "Paris, France", "units": "celsius"}
    assert len(recorded_anthropic_stream("pydantic-redacted-thinking").redacted) == 2
    late = recorded_anthropic_stream("vercel-input-tokens-in-message-delta")
    assert (late.text, late.input_tokens, late.output_tokens) == ("pong", 61, 2)  # message_start said 43

    # and the translation of the cache-hit reply, literally: 3 uncached + 1111 read + 418 written
    upstream.reply(Reply(body=body_of(ANTHROPIC_REPLIES["pydantic-cache-hit"])))
    gw = await gateway(providers_at(upstream))
    resp = await oai(gw.url).chat.completions.create(model="up-anthropic/claude-sonnet-4-5", messages=CHAT)  # type: ignore[arg-type]
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 1532 and resp.usage.completion_tokens == 33
    assert resp.usage.prompt_tokens_details is not None and resp.usage.prompt_tokens_details.cached_tokens == 1111
    assert resp.choices[0].finish_reason == "stop"


async def test_message_delta_usage_replaces_message_start_usage(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = cassette(PYD + "test_anthropic/test_anthropic_compaction_usage_with_cache_streaming.yaml")[0].body
    want = fold_anthropic_events(lenient_data_lines(recorded))
    assert (want.input_tokens, want.cache_read, want.output_tokens) == (181, 0, 8)  # last value seen wins
    upstream.reply(Reply(body=[recorded], content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {
            "model": "up-anthropic/claude-sonnet-4-6",
            "messages": CHAT,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200
    usage = check_openai_stream(data, include_usage=True)[-1]["usage"]
    assert (usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"]) == (181, 0)
    assert usage["completion_tokens"] == 8


async def test_anthropic_stream_without_include_usage_has_no_usage_chunk(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    upstream.reply(Reply(body=[body_of(ANTHROPIC_STREAMS["fantasy-multi-tool-turn1"])], content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {"model": "up-anthropic/claude-sonnet-4", "messages": CHAT, "stream": True},
    )
    assert status == 200
    chunks = check_openai_stream(data, include_usage=False)
    got = fold_openai_chunks(chunks)
    assert [c[1] for c in got.calls] == ["add", "multiply"]
    assert got.stop == "tool_use"


# ---- OpenAI-dialect upstream -> Anthropic clients -------------------------------------------------


@pytest.mark.parametrize("name", list(OPENAI_STREAMS))
async def test_openai_stream_to_anthropic_raw_bytes(upstream: FakeUpstream, gateway: GatewayFactory, name: str):
    recorded = body_of(OPENAI_STREAMS[name])
    upstream.reply(Reply(body=pieces(recorded, 89), content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, ctype, data = await post_raw(
        gw.url + "/v1/messages",
        {"model": "up-openai/gpt-4o", "max_tokens": 1024, "messages": CHAT, "stream": True},
    )
    assert status == 200 and ctype.startswith(SSE)
    events = check_anthropic_stream(data)
    got = fold_anthropic_events(events)
    assert_anthropic_side(got, recorded_openai_stream(name))
    assert all(s == "" for s in got.signatures)  # no signature upstream; an empty signature_delta
    sent = upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["model"] == "gpt-4o" and sent.json["max_tokens"] == 1024


@pytest.mark.parametrize("name", list(OPENAI_STREAMS))
async def test_openai_stream_to_anthropic_sdk(upstream: FakeUpstream, gateway: GatewayFactory, name: str):
    upstream.reply(Reply(body=pieces(body_of(OPENAI_STREAMS[name]), 331), content_type=SSE))
    gw = await gateway(providers_at(upstream))
    async with ant(gw.url).messages.stream(
        model="up-openai/gpt-4o",
        max_tokens=1024,
        messages=CHAT,  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_message()
    assert_anthropic_side(meaning_of_anthropic_message(final), recorded_openai_stream(name))
    for block in final.content:
        if block.type == "tool_use":
            assert isinstance(block.input, dict)


@pytest.mark.parametrize("name", list(OPENAI_REPLIES))
async def test_openai_reply_to_anthropic_sdk(upstream: FakeUpstream, gateway: GatewayFactory, name: str):
    recorded = body_of(OPENAI_REPLIES[name])
    upstream.reply(Reply(body=recorded))
    gw = await gateway(providers_at(upstream))
    msg = await ant(gw.url).messages.create(model="up-openai/gpt-4o", max_tokens=1024, messages=CHAT)  # type: ignore[arg-type]
    want = fold_openai_completion(json.loads(recorded))
    assert_anthropic_side(meaning_of_anthropic_message(msg), want)
    assert msg.type == "message" and msg.role == "assistant"


def test_recorded_values_the_openai_replays_must_reproduce():
    kimi = recorded_openai_stream("fantasy-openrouter-kimi-tool")
    assert kimi.calls == [("functions.weather:0", "weather", {"location": "Florence,Italy"})]
    assert kimi.reasoning[0].startswith(" The user is asking for the weather in Florence, Italy.")
    assert (kimi.input_tokens, kimi.output_tokens, kimi.stop) == (69, 87, "tool_use")
    avian = recorded_openai_stream("fantasy-avian-kimi-thinking-turn1")
    assert (avian.input_tokens, avian.cache_read, avian.output_tokens) == (12, 64, 47)
    deepseek = recorded_openai_stream("codecompanion-deepseek-tools")
    assert [c[0] for c in deepseek.calls] == ["call_00_xzVVyar4M7TXmqAvwt5lz3v2", "call_01_FiLq2fgCjbR43jdNrxI4OYGD"]
    assert (deepseek.input_tokens, deepseek.cache_read, deepseek.output_tokens) == (342, 1024, 138)
    assert recorded_openai_stream("openai-python-length").stop == "max_tokens"


# ---- Ollama native upstream -> both fronts --------------------------------------------------------


def assert_ollama_calls(calls: list[tuple[str, str, Any]]) -> None:
    want = recorded_ollama()
    assert [(n, a) for _, n, a in calls] == [(n, a) for _, n, a in want.calls]
    assert [a for _, _, a in calls] == [
        {"location": "London, UK", "units": "celsius"},
        {"location": "Paris, FR", "units": "fahrenheit"},
    ]
    ids = [i for i, _, _ in calls]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids), ids


async def test_ollama_stream_to_openai(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = raw(OLLAMA_STREAM)
    upstream.reply(Reply(body=pieces(recorded, 50), content_type=NDJSON))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {
            "model": "up-ollama/llama3.1:latest",
            "messages": CHAT,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200
    got = fold_openai_chunks(check_openai_stream(data, include_usage=True))
    assert_ollama_calls(got.calls)
    assert got.stop == "tool_use"  # Ollama says done_reason "stop" after tool calls
    assert (got.prompt_tokens, got.output_tokens) == (577, 90)
    sent = upstream.last
    assert sent.path == "/api/chat" and sent.json["stream"] is True and sent.json["model"] == "llama3.1:latest"

    upstream.reply(Reply(body=[recorded], content_type=NDJSON))
    async with oai(gw.url).chat.completions.stream(
        model="up-ollama/llama3.1:latest",
        messages=CHAT,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_completion()
    sdk = meaning_of_openai_message(final.choices[0].message, final.choices[0].finish_reason, final.usage)
    assert_ollama_calls(sdk.calls)
    assert sdk.stop == "tool_use" and sdk.prompt_tokens == 577 and sdk.output_tokens == 90


async def test_ollama_stream_to_anthropic(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = raw(OLLAMA_STREAM)
    upstream.reply(Reply(body=pieces(recorded, 64), content_type=NDJSON))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.url + "/v1/messages",
        {"model": "up-ollama/llama3.1:latest", "max_tokens": 512, "messages": CHAT, "stream": True},
    )
    assert status == 200
    got = fold_anthropic_events(check_anthropic_stream(data))
    assert_ollama_calls(got.calls)
    assert (got.stop, got.input_tokens, got.output_tokens) == ("tool_use", 577, 90)

    upstream.reply(Reply(body=[recorded], content_type=NDJSON))
    async with ant(gw.url).messages.stream(
        model="up-ollama/llama3.1:latest",
        max_tokens=512,
        messages=CHAT,  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_message()
    sdk = meaning_of_anthropic_message(final)
    assert_ollama_calls(sdk.calls)
    assert (sdk.stop, sdk.input_tokens, sdk.output_tokens) == ("tool_use", 577, 90)
    assert upstream.last.json["options"]["num_predict"] == 512


async def test_ollama_reply_to_both_fronts(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = raw(OLLAMA_REPLY)
    gw = await gateway(providers_at(upstream))
    upstream.reply(Reply(body=recorded))
    resp = await oai(gw.url).chat.completions.create(model="up-ollama/llama3.1:latest", messages=CHAT)  # type: ignore[arg-type]
    got = meaning_of_openai_message(resp.choices[0].message, resp.choices[0].finish_reason, resp.usage)
    assert_ollama_calls(got.calls)
    assert (got.stop, got.prompt_tokens, got.output_tokens) == ("tool_use", 577, 90)
    assert upstream.last.json["stream"] is False

    upstream.reply(Reply(body=recorded))
    msg = await ant(gw.url).messages.create(model="up-ollama/llama3.1:latest", max_tokens=100, messages=CHAT)  # type: ignore[arg-type]
    got = meaning_of_anthropic_message(msg)
    assert_ollama_calls(got.calls)
    assert (got.stop, got.input_tokens, got.output_tokens) == ("tool_use", 577, 90)
    assert upstream.last.json["stream"] is False


# ---- request translation on the wire ----------------------------------------------------------------

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "the city"}},
    "required": ["location"],
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
ANSWER_SCHEMA = {"type": "object", "properties": {"warmer": {"type": "string"}}, "required": ["warmer"]}
ANTHROPIC_REPLY = body_of(ANTHROPIC_REPLIES["fantasy-multi-tool-turn2"])
OPENAI_REPLY = body_of(OPENAI_REPLIES["fantasy-gpt4o-multi-tool-turn2"])


def openai_conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Use metric units."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures, and how warm is it there?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"location": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"location":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18 C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "25 C"},
        {"role": "user", "content": "Which is warmer?"},
    ]


OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "weather", "description": "Get the weather", "parameters": WEATHER_SCHEMA},
    }
]


async def test_openai_request_to_anthropic_wire(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    gw = await gateway(providers_at(upstream))
    await oai(gw.url).chat.completions.create(
        model="up-anthropic/claude-sonnet-4",
        messages=openai_conversation(),  # type: ignore[arg-type]
        tools=OPENAI_TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=False,
        stop=["END", "STOP"],
        max_completion_tokens=1000,
        user="user-42",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True},
        },
    )
    sent = upstream.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-up-secret" and sent.headers["anthropic-version"] == "2023-06-01"
    body = sent.json
    assert body["model"] == "claude-sonnet-4"
    assert body["system"] == [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Use metric units."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    first, call, results = (m["content"] for m in body["messages"])
    assert first == [
        {"type": "text", "text": "What is in these pictures, and how warm is it there?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert call == [
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "weather", "input": {"location": "Rome"}},
    ]
    # tool_result blocks first in the next user turn, then the user's text
    assert results[:2] == [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "18 C"},
        {"type": "tool_result", "tool_use_id": "call_b", "content": "25 C"},
    ]
    assert results[2:] == [{"type": "text", "text": "Which is warmer?"}]
    assert body["tools"] == [{"name": "weather", "description": "Get the weather", "input_schema": WEATHER_SCHEMA}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["stop_sequences"] == ["END", "STOP"]
    assert body["max_tokens"] == 1000
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}
    assert body["metadata"] == {"user_id": "user-42"}
    for leaked in ("stop", "user", "response_format", "parallel_tool_calls", "max_completion_tokens", "n"):
        assert leaked not in body


async def test_openai_request_to_anthropic_named_tool_reasoning_and_default_max_tokens(
    upstream: FakeUpstream, gateway: GatewayFactory
):
    gw = await gateway(providers_at(upstream))
    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    await oai(gw.url).chat.completions.create(
        model="up-anthropic/claude-sonnet-4",
        messages=[{"role": "user", "content": "weather?"}],
        tools=OPENAI_TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "weather"}},
    )
    body = upstream.last.json
    assert body["tool_choice"] == {"type": "tool", "name": "weather"}
    assert body["max_tokens"] == 4096  # Anthropic requires max_tokens; the client sent none

    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    await oai(gw.url).chat.completions.create(
        model="up-anthropic/claude-sonnet-4",
        messages=[{"role": "user", "content": "think hard"}],
        reasoning_effort="high",
        max_completion_tokens=2000,
    )
    body = upstream.last.json
    assert body["thinking"]["type"] == "enabled"
    budget = body["thinking"]["budget_tokens"]
    assert budget >= 1024 and body["max_tokens"] > budget  # Anthropic rejects budget >= max_tokens

    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    await oai(gw.url).chat.completions.create(
        model="up-anthropic/claude-sonnet-4", messages=[{"role": "user", "content": "x"}], reasoning_effort="low"
    )
    body = upstream.last.json
    assert body["thinking"]["type"] == "enabled" and body["max_tokens"] > body["thinking"]["budget_tokens"] >= 1024


async def test_provider_max_tokens_default_fills_a_missing_max_tokens(upstream: FakeUpstream, gateway: GatewayFactory):
    cfg = providers_at(upstream)
    cfg["providers"]["up-anthropic"]["max_tokens_default"] = 1234
    gw = await gateway(cfg)
    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    await oai(gw.url).chat.completions.create(model="up-anthropic/claude-sonnet-4", messages=CHAT)  # type: ignore[arg-type]
    assert upstream.last.json["max_tokens"] == 1234
    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    await oai(gw.url).chat.completions.create(
        model="up-anthropic/claude-sonnet-4",
        messages=CHAT,
        max_tokens=77,  # type: ignore[arg-type]
    )
    assert upstream.last.json["max_tokens"] == 77


async def test_recorded_openai_tool_round_trip_request_to_anthropic(upstream: FakeUpstream, gateway: GatewayFactory):
    """The second request fantasy's client really sent to OpenAI (tool calls + role:"tool" results)."""
    recorded = cassette(FANTASY + "TestOpenAICommon/openai-gpt-4o/multi_tool_streaming.yaml")[1].request
    assert recorded is not None
    request = dict(recorded, model="up-anthropic/claude-sonnet-4")
    upstream.reply(Reply(body=[body_of(ANTHROPIC_STREAMS["fantasy-multi-tool-turn2"])], content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(gw.openai_url + "/chat/completions", request)
    assert status == 200
    check_openai_stream(data, include_usage=bool((recorded.get("stream_options") or {}).get("include_usage")))
    body = upstream.last.json
    calls = [tc for m in recorded["messages"] if m["role"] == "assistant" for tc in m.get("tool_calls") or []]
    results = [m for m in recorded["messages"] if m["role"] == "tool"]
    assert len(calls) == 2 and len(results) == 2
    wire_uses = [
        b
        for m in body["messages"]
        if m["role"] == "assistant" and isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    assert [(b["id"], b["name"], b["input"]) for b in wire_uses] == [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
    ]
    follow = body["messages"][body["messages"].index(next(m for m in body["messages"] if m["role"] == "assistant")) + 1]
    assert follow["role"] == "user"
    assert [(b["tool_use_id"], b["content"]) for b in follow["content"][:2]] == [
        (r["tool_call_id"], r["content"]) for r in results
    ]
    system = [m for m in recorded["messages"] if m["role"] == "system"]
    assert [m["content"] for m in system] == [
        "You are a helpful assistant. Always use both add and multiply at the same time."
    ]
    assert body["system"] == system[0]["content"]
    assert body["max_tokens"] == recorded["max_tokens"] == 4000
    assert body["tool_choice"] == {"type": "auto"}
    assert [t["name"] for t in body["tools"]] == ["add", "multiply"]
    assert body["tools"][0]["input_schema"] == recorded["tools"][0]["function"]["parameters"]


ANTHROPIC_TOOLS = [{"name": "weather", "description": "Get the weather", "input_schema": WEATHER_SCHEMA}]


def anthropic_conversation() -> dict[str, Any]:
    return {
        "max_tokens": 8192,
        "system": [
            {"type": "text", "text": "You are a helpful assistant"},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "system", "content": "mid-conversation system"},  # as Claude Code sends it
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Florence? See the map."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should call weather twice.", "signature": "EtYDCkYICxgCKkAV=="},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"location": "Florence"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"location": "Atlantis"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "40 C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "unknown city"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "metadata": {"user_id": "user-42"},
    }


async def test_anthropic_request_to_openai_wire(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=OPENAI_REPLY))
    gw = await gateway(providers_at(upstream))
    req = anthropic_conversation()
    await ant(gw.url).messages.create(model="up-openai/gpt-4o", **req)
    sent = upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-up-openai-secret"
    body = sent.json
    assert body["model"] == "gpt-4o"
    msgs = body["messages"]
    # one leading system message: many OpenAI-compatible servers take no other (docs/translation.md)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert msgs[0]["content"] == "You are a helpful assistant\n\nBe brief.\n\nmid-conversation system"
    assert msgs[1]["content"] == [
        {"type": "text", "text": "Weather in Florence? See the map."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    assistant = msgs[2]
    assert assistant["content"] == "Let me check."
    assert assistant["reasoning_content"] == "I should call weather twice."
    assert assistant["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"location":"Florence"}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": '{"location":"Atlantis"}'}},
    ]
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "40 C"}
    assert msgs[4]["tool_call_id"] == "toolu_2" and "unknown city" in msgs[4]["content"]
    assert msgs[4]["content"] != "unknown city"  # is_error has no OpenAI field: it must show in the text
    assert msgs[5] == {"role": "user", "content": "And tomorrow?"}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Get the weather", "parameters": WEATHER_SCHEMA},
        }
    ]
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert body["stop"] == ["END"]
    assert body["reasoning_effort"] == "medium"  # budget 4000: the documented budget -> effort bands
    assert body["user"] == "user-42"
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 8192
    for leaked in ("system", "stop_sequences", "thinking", "metadata", "signature"):
        assert leaked not in body
    assert "EtYDCkYICxgCKkAV" not in sent.body.decode()  # an Anthropic signature means nothing elsewhere


async def test_anthropic_request_to_openai_stream_asks_for_usage(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=[body_of(OPENAI_STREAMS["fantasy-gpt4o-multi-tool-turn2"])], content_type=SSE))
    gw = await gateway(providers_at(upstream))
    req = anthropic_conversation()
    req["output_config"] = {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}
    status, _, data = await post_raw(gw.url + "/v1/messages", {"model": "up-openai/gpt-4o", "stream": True, **req})
    assert status == 200
    check_anthropic_stream(data)
    body = upstream.last.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == ANSWER_SCHEMA


async def test_recorded_anthropic_thinking_replay_request_to_openai(upstream: FakeUpstream, gateway: GatewayFactory):
    """The second request fantasy's client really sent to Anthropic: thinking + signature, tool_use,
    tool_result. The reasoning text must ride on the assistant message as reasoning_content."""
    interaction = cassette(FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking-streaming.yaml")[1]
    recorded = interaction.request
    assert recorded is not None
    upstream.reply(Reply(body=[body_of(OPENAI_STREAMS["fantasy-avian-kimi-thinking-turn2"])], content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(gw.url + "/v1/messages", dict(recorded, model="up-openai/kimi-k2"))
    assert status == 200
    got = fold_anthropic_events(check_anthropic_stream(data))
    assert got.text == recorded_openai_stream("fantasy-avian-kimi-thinking-turn2").text
    body = upstream.last.json
    assistant = next(m for m in body["messages"] if m["role"] == "assistant")
    thinking = next(
        b for m in recorded["messages"] if m["role"] == "assistant" for b in m["content"] if b["type"] == "thinking"
    )
    use = next(
        b for m in recorded["messages"] if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"
    )
    assert assistant["reasoning_content"] == thinking["thinking"]
    assert [(c["id"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]] == [
        (use["id"], use["input"])
    ]
    tool_msgs = [m for m in body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == [use["id"]]
    assert body["messages"][0] == {"role": "system", "content": recorded["system"][0]["text"]}
    assert thinking["signature"] not in upstream.last.body.decode()


async def test_anthropic_request_to_ollama_wire(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=raw(OLLAMA_REPLY)))
    gw = await gateway(providers_at(upstream))
    req = anthropic_conversation()
    req["output_config"] = {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}
    await ant(gw.url).messages.create(model="up-ollama/llama3.1:latest", **req)
    sent = upstream.last
    assert sent.path == "/api/chat"
    body = sent.json
    assert body["model"] == "llama3.1:latest" and body["stream"] is False
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["system", "system", "user", "assistant", "tool", "tool", "user"]
    assert "You are a helpful assistant" in msgs[0]["content"] and "Be brief." in msgs[0]["content"]
    assert msgs[1]["content"] == "mid-conversation system"
    assert msgs[2]["content"] == "Weather in Florence? See the map." and msgs[2]["images"] == [PNG]
    assistant = msgs[3]
    assert assistant["content"] == "Let me check." and assistant["thinking"] == "I should call weather twice."
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
        ("weather", {"location": "Florence"}),
        ("weather", {"location": "Atlantis"}),
    ]
    assert msgs[4]["content"] == "40 C" and msgs[4]["tool_name"] == "weather"
    assert msgs[5]["tool_name"] == "weather" and "unknown city" in msgs[5]["content"]
    assert msgs[6]["content"] == "And tomorrow?"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Get the weather", "parameters": WEATHER_SCHEMA},
        }
    ]
    assert body["think"] is True
    assert body["options"]["num_predict"] == 8192 and body["options"]["stop"] == ["END"]
    assert body["format"] == ANSWER_SCHEMA
    assert "EtYDCkYICxgCKkAV" not in sent.body.decode()


async def test_openai_request_to_ollama_wire(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=raw(OLLAMA_REPLY)))
    gw = await gateway(providers_at(upstream))
    conversation = [m for m in openai_conversation() if m["role"] != "user" or isinstance(m["content"], str)]
    conversation.insert(
        2,
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
    )
    await oai(gw.url).chat.completions.create(
        model="up-ollama/llama3.1:latest",
        messages=conversation,
        tools=OPENAI_TOOLS,  # type: ignore[arg-type]
        max_tokens=300,
        temperature=0.2,
        seed=7,
        response_format={"type": "json_object"},
        reasoning_effort="low",
    )
    body = upstream.last.json
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert msgs[1]["images"] == [PNG]
    assert [c["function"]["arguments"] for c in msgs[2]["tool_calls"]] == [{"location": "Paris"}, {"location": "Rome"}]
    assert [(m["tool_name"], m["content"]) for m in msgs[3:5]] == [("weather", "18 C"), ("weather", "25 C")]
    assert body["options"] == {"num_predict": 300, "temperature": 0.2, "seed": 7}
    assert body["format"] == "json" and body["think"] == "low"


# ---- what cannot be expressed is refused, in the client's envelope, before anything goes upstream --


async def test_n_greater_than_one_to_anthropic_is_400(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw.url).chat.completions.create(model="up-anthropic/claude-sonnet-4", messages=CHAT, n=2)  # type: ignore[arg-type]
    err = e.value.body
    assert isinstance(err, dict)
    assert err["type"] == "invalid_request_error" and err["param"] == "n"
    assert re.search(r"\bn\b", err["message"]), err["message"]
    assert upstream.seen == []


async def test_anthropic_server_tool_to_openai_is_400(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(providers_at(upstream))
    with pytest.raises(anthropic.BadRequestError) as e:
        await ant(gw.url).messages.create(
            model="up-openai/gpt-4o",
            max_tokens=100,
            messages=CHAT,  # type: ignore[arg-type]
            tools=[{"type": "web_search_20250305", "name": "web_search"}, *ANTHROPIC_TOOLS],  # type: ignore[list-item]
        )
    body = e.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "web_search" in body["error"]["message"]
    assert upstream.seen == []


@pytest.mark.parametrize("front", ["openai", "anthropic"])
async def test_image_url_to_ollama_is_400(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    gw = await gateway(providers_at(upstream))
    url = "https://example.com/cat.jpg"
    if front == "openai":
        content: Any = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": url}}]
        status, _, data = await post_raw(
            gw.openai_url + "/chat/completions",
            {"model": "up-ollama/llava", "messages": [{"role": "user", "content": content}]},
        )
        err = json.loads(data)["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    else:
        content = [{"type": "text", "text": "what is it?"}, {"type": "image", "source": {"type": "url", "url": url}}]
        status, _, data = await post_raw(
            gw.url + "/v1/messages",
            {"model": "up-ollama/llava", "max_tokens": 10, "messages": [{"role": "user", "content": content}]},
        )
        doc = json.loads(data)
        assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
        err = doc["error"]
    assert status == 400
    assert "url" in err["message"].lower() and "ollama" in err["message"].lower()
    assert upstream.seen == []


# ---- edges of the recorded streams ----------------------------------------------------------------

NO_ARG_TOOL = (VERCEL + "anthropic/src/__fixtures__/anthropic-tool-no-args.chunks.txt", CHUNKS)
CUT_TOOL_INPUT = "anthropics__anthropic-sdk-python/tests/lib/streaming/fixtures/incomplete_partial_json_response.txt"


async def test_no_arg_tool_stream_to_openai_has_arguments_object(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=[body_of(NO_ARG_TOOL)], content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {"model": "up-anthropic/claude-sonnet-4-5", "messages": CHAT, "stream": True},
    )
    assert status == 200
    chunks = check_openai_stream(data, include_usage=False)
    args = "".join(
        tc["function"].get("arguments") or "" for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert json.loads(args) == {}


async def test_no_arg_tool_reply_to_openai_has_arguments_object(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=raw(VERCEL + "anthropic/src/__fixtures__/anthropic-tool-no-args.json")))
    gw = await gateway(providers_at(upstream))
    resp = await oai(gw.url).chat.completions.create(model="up-anthropic/claude-3-opus", messages=CHAT)  # type: ignore[arg-type]
    calls = resp.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_01LRmxn9vGM1d2DZSDBowdZ1", "updateIssueList", "{}")
    ]
    assert resp.choices[0].finish_reason == "tool_calls"


async def test_tool_input_cut_at_max_tokens_reaches_openai_as_length(upstream: FakeUpstream, gateway: GatewayFactory):
    recorded = raw(CUT_TOOL_INPUT)
    upstream.reply(Reply(body=pieces(recorded, 100), content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {
            "model": "up-anthropic/claude-3-7-sonnet",
            "messages": CHAT,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200
    chunks = check_openai_stream(data, include_usage=True)
    events = lenient_data_lines(recorded)
    want_args = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    want_text = "".join(
        e["delta"]["text"] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] == next(
        e["content_block"]["id"]
        for e in events
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
    )
    assert "".join(tc["function"].get("arguments") or "" for tc in calls) == want_args
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == want_text
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    obj = {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def call_delta(index: int, args: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    tc: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        tc.update(id=id, type="function")
        tc["function"]["name"] = name
    return {"tool_calls": [tc]}


async def test_interleaved_parallel_tool_call_deltas_to_anthropic(upstream: FakeUpstream, gateway: GatewayFactory):
    """Two calls whose argument fragments alternate (index 0, 1, 0, 1): one block open at a time."""
    stream = [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"reasoning_content": "two cities"}),
        openai_chunk(call_delta(0, '{"location": "Lon', "call_0", "weather")),
        openai_chunk(call_delta(1, '{"location"', "call_1", "weather")),
        openai_chunk(call_delta(0, 'don"}')),
        openai_chunk(call_delta(1, ': "Paris"}')),
        openai_chunk({}, "tool_calls", usage={"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}),
        b"data: [DONE]\n\n",
    ]
    upstream.reply(Reply(body=stream, content_type=SSE))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.url + "/v1/messages", {"model": "up-openai/m", "max_tokens": 64, "messages": CHAT, "stream": True}
    )
    assert status == 200
    got = fold_anthropic_events(check_anthropic_stream(data))
    assert got.reasoning == ["two cities"]
    assert got.calls == [("call_0", "weather", {"location": "London"}), ("call_1", "weather", {"location": "Paris"})]
    assert (got.stop, got.input_tokens, got.output_tokens) == ("tool_use", 30, 9)


async def test_ollama_thinking_stream_to_anthropic_gets_a_signature(upstream: FakeUpstream, gateway: GatewayFactory):
    lines = [
        {"message": {"role": "assistant", "content": "", "thinking": "Let me "}, "done": False},
        {"message": {"role": "assistant", "content": "", "thinking": "think."}, "done": False},
        {"message": {"role": "assistant", "content": "Hi"}, "done": False},
        {"message": {"role": "assistant", "content": "!"}, "done": False},
        {
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 12,
            "eval_count": 7,
        },
    ]
    body = b"".join(
        json.dumps({"model": "qwen3", "created_at": "2025-01-01T00:00:00Z", **x}).encode() + b"\n" for x in lines
    )
    upstream.reply(Reply(body=pieces(body, 40), content_type=NDJSON))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.url + "/v1/messages", {"model": "up-ollama/qwen3", "max_tokens": 7, "messages": CHAT, "stream": True}
    )
    assert status == 200
    got = fold_anthropic_events(check_anthropic_stream(data))
    assert (got.reasoning, got.text, got.stop) == (["Let me think."], "Hi!", "max_tokens")
    assert (got.input_tokens, got.output_tokens) == (12, 7)

    upstream.reply(Reply(body=[body], content_type=NDJSON))
    status, _, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {"model": "up-ollama/qwen3", "messages": CHAT, "stream": True, "stream_options": {"include_usage": True}},
    )
    got = fold_openai_chunks(check_openai_stream(data, include_usage=True))
    assert (got.reasoning, got.text, got.stop, got.prompt_tokens, got.output_tokens) == (
        ["Let me think."],
        "Hi!",
        "max_tokens",
        12,
        7,
    )


# ---- more that cannot be expressed --------------------------------------------------------------


async def test_anthropic_server_tool_to_ollama_is_400(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(Reply(body=raw(OLLAMA_REPLY)))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.url + "/v1/messages",
        {
            "model": "up-ollama/llama3.1",
            "max_tokens": 50,
            "messages": CHAT,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        },
    )
    assert status == 400 and "web_search" in json.loads(data)["error"]["message"]
    assert upstream.seen == []


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQ=", "filename": "a.pdf"}},
    ],
    ids=["input_audio", "file"],
)
async def test_openai_only_parts_to_anthropic_are_400(upstream: FakeUpstream, gateway: GatewayFactory, part: dict):
    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    gw = await gateway(providers_at(upstream))
    status, _, data = await post_raw(
        gw.openai_url + "/chat/completions",
        {"model": "up-anthropic/claude-sonnet-4", "messages": [{"role": "user", "content": [part]}]},
    )
    assert status == 400 and part["type"] in json.loads(data)["error"]["message"]
    assert upstream.seen == []


@pytest.mark.parametrize(
    "extra",
    [
        {"tool_choice": "required", "tools": OPENAI_TOOLS},
        {"tool_choice": {"type": "function", "function": {"name": "weather"}}, "tools": OPENAI_TOOLS},
        {"temperature": 0.2},
    ],
    ids=["required", "named-tool", "temperature"],
)
async def test_reasoning_effort_never_yields_a_body_anthropic_rejects(
    upstream: FakeUpstream, gateway: GatewayFactory, extra: dict
):
    upstream.reply(Reply(body=ANTHROPIC_REPLY))
    gw = await gateway(providers_at(upstream))
    status, _, _ = await post_raw(
        gw.openai_url + "/chat/completions",
        {"model": "up-anthropic/claude-sonnet-4", "messages": CHAT, "reasoning_effort": "medium", **extra},
    )
    if status == 400:  # refusing is acceptable; then nothing goes upstream
        assert upstream.seen == []
        return
    body = upstream.last.json
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        assert (body.get("tool_choice") or {"type": "auto"})["type"] in ("auto", "none")
        assert body.get("temperature", 1) == 1
