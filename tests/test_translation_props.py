"""Properties of translation (hypothesis), with example counts kept modest so the suite stays fast:

* a recorded upstream stream split at arbitrary byte boundaries (inside multi-byte characters too)
  gives the client the same result, through the codecs and through the running gateway;
* a generated OpenAI conversation sent to an Anthropic upstream arrives with its meaning intact
  (system, turns, texts, tool calls and their arguments, tool results, tools), and the same for a
  generated Anthropic conversation sent to an OpenAI upstream.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import ClientSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragoman import dialects
from tests.conftest import FakeUpstream, GatewayFactory, Reply, providers_at
from tests.recorded import raw
from tests.test_translation import (
    ANTHROPIC_REPLIES,
    ANTHROPIC_STREAMS,
    NDJSON,
    OLLAMA_STREAM,
    OPENAI_REPLIES,
    OPENAI_STREAMS,
    SSE,
    Meaning,
    body_of,
    check_anthropic_stream,
    check_openai_stream,
    fold_anthropic_events,
    fold_openai_chunks,
)

# (upstream dialect, recording name, bytes)
RECORDED: list[tuple[str, str, bytes]] = [
    *(("anthropic", n, body_of(r)) for n, r in ANTHROPIC_STREAMS.items()),
    *(("openai", n, body_of(r)) for n, r in OPENAI_STREAMS.items()),
    ("ollama", "codecompanion-ollama-tools", raw(OLLAMA_STREAM)),
]
CLIENTS = {"anthropic": "openai", "openai": "anthropic", "ollama": "openai"}


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % len(data) for c in cuts} - {0})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def client_meaning(client: str, data: bytes) -> Meaning:
    if client == "openai":
        return fold_openai_chunks(check_openai_stream(data, include_usage=True))
    return fold_anthropic_events(check_anthropic_stream(data))


def comparable(m: Meaning, upstream: str) -> Meaning:
    if upstream == "ollama":  # Ollama sends no call ids: the gateway makes fresh ones each time
        m.calls = [("<generated>", n, a) for _, n, a in m.calls]
    return m


def translate(upstream: str, client: str, chunks: list[bytes]) -> bytes:
    decoder = dialects.get(upstream).stream_decoder()
    encoder = dialects.get(client).stream_encoder(include_usage=True)
    out = [encoder.encode(e) for chunk in chunks for e in decoder.feed(chunk)]
    out += [encoder.encode(e) for e in decoder.close()]
    return b"".join(out)


WHOLE = {
    name: comparable(client_meaning(CLIENTS[up], translate(up, CLIENTS[up], [data])), up) for up, name, data in RECORDED
}


@pytest.mark.parametrize(("upstream", "name", "data"), RECORDED, ids=[n for _, n, _ in RECORDED])
@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=10**6), max_size=40))
def test_any_byte_split_translates_the_same_at_codec_level(upstream: str, name: str, data: bytes, cuts: list[int]):
    client = CLIENTS[upstream]
    got = comparable(client_meaning(client, translate(upstream, client, split(data, cuts))), upstream)
    assert got == WHOLE[name]


def test_whole_translations_are_not_empty():
    """The reference the split property compares against says something real."""
    assert WHOLE["fantasy-thinking-turn1"].calls[0][0] == "toolu_01Js4AMfx5qpTLhwTusnvT68"
    assert WHOLE["codecompanion-deepseek-tools"].reasoning and len(WHOLE["codecompanion-deepseek-tools"].calls) == 2
    assert [a for _, _, a in WHOLE["codecompanion-ollama-tools"].calls][1] == {
        "location": "Paris, FR",
        "units": "fahrenheit",
    }


GATEWAY_CASES = [
    ("anthropic", "fantasy-thinking-turn1"),
    ("anthropic", "codecompanion-tools"),
    ("openai", "codecompanion-deepseek-tools"),
    ("openai", "fantasy-openrouter-kimi-tool"),
]


@pytest.mark.parametrize(("upstream_dialect", "name"), GATEWAY_CASES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=60))
async def test_any_byte_split_translates_the_same_through_the_gateway(
    upstream: FakeUpstream, gateway: GatewayFactory, upstream_dialect: str, name: str, cuts: list[int]
):
    data = next(d for u, n, d in RECORDED if n == name)
    client = CLIENTS[upstream_dialect]
    gw = await gateway(providers_at(upstream))
    upstream.reply(Reply(body=split(data, cuts), content_type=NDJSON if upstream_dialect == "ollama" else SSE))
    if client == "openai":
        url = gw.openai_url + "/chat/completions"
        body: dict[str, Any] = {
            "model": f"up-{upstream_dialect}/m",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    else:
        url = gw.url + "/v1/messages"
        body = {"model": f"up-{upstream_dialect}/m", "stream": True, "max_tokens": 100}
    body["messages"] = [{"role": "user", "content": "hi"}]
    async with ClientSession() as s, s.post(url, json=body) as r:
        assert r.status == 200
        data_out = await r.read()
    assert comparable(client_meaning(client, data_out), upstream_dialect) == WHOLE[name]


# ---- generated conversations keep their meaning across the gateway ----------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_name = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_scalar = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6)
_json = st.recursive(
    _scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=6
)
_args = st.dictionaries(st.text(min_size=1, max_size=5), _json, max_size=3)
_schema = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(_name, st.just({"type": "string"}), max_size=2)}
)


@st.composite
def openai_requests(draw: st.DrawFn) -> dict[str, Any]:
    tools = draw(
        st.lists(st.tuples(_name, st.none() | _text, _schema), min_size=1, max_size=3, unique_by=lambda t: t[0])
    )
    messages: list[dict[str, Any]] = [
        {"role": draw(st.sampled_from(["system", "developer"])), "content": t}
        for t in draw(st.lists(_text, max_size=2))
    ]
    counter = 0
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(_text)})
        if draw(st.booleans()):
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                counter += 1
                calls.append(
                    {
                        "id": f"call_{counter}",
                        "type": "function",
                        "function": {"name": draw(st.sampled_from(tools))[0], "arguments": json.dumps(draw(_args))},
                    }
                )
            said = draw(st.none() | _text)
            messages.append({"role": "assistant", "content": said, "tool_calls": calls})
            messages.extend({"role": "tool", "tool_call_id": c["id"], "content": draw(_text)} for c in calls)
            if draw(st.booleans()):
                messages.append({"role": "user", "content": draw(_text)})
        messages.append({"role": "assistant", "content": draw(_text)})
    messages.append({"role": "user", "content": draw(_text)})
    fn = [
        {"type": "function", "function": {"name": n, "parameters": p, **({"description": d} if d else {})}}
        for n, d, p in tools
    ]
    return {"messages": messages, "tools": fn}


Turn = tuple[str, list[tuple[Any, ...]]]


def merge_turns(turns: list[Turn]) -> list[Turn]:
    out: list[Turn] = []
    for role, items in turns:
        if out and out[-1][0] == role:
            out[-1][1].extend(items)
        else:
            out.append((role, list(items)))
    # tool results lead their user turn (stable otherwise)
    return [(r, sorted(items, key=lambda it: it[0] != "result")) for r, items in out]


def meaning_of_openai_request(body: dict[str, Any]) -> tuple[list[str], list[Turn], list[tuple[Any, ...]]]:
    system: list[str] = []
    turns: list[Turn] = []
    for m in body["messages"]:
        role = m["role"]
        if role in ("system", "developer"):
            system.append(m["content"])
        elif role == "tool":
            turns.append(("user", [("result", m["tool_call_id"], m["content"])]))
        elif role == "user":
            turns.append(("user", [("text", m["content"])]))
        else:
            items: list[tuple[Any, ...]] = [("text", m["content"])] if m.get("content") else []
            items += [
                ("call", c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in m.get("tool_calls") or []
            ]
            turns.append(("assistant", items))
    tools = [
        (t["function"]["name"], t["function"].get("description"), t["function"]["parameters"])
        for t in body.get("tools") or []
    ]
    return system, merge_turns(turns), tools


def meaning_of_anthropic_request(body: dict[str, Any]) -> tuple[list[str], list[Turn], list[tuple[Any, ...]]]:
    sys_field = body.get("system") or []
    system = [sys_field] if isinstance(sys_field, str) else [b["text"] for b in sys_field]
    turns: list[Turn] = []
    for m in body["messages"]:
        if m["role"] == "system":
            system.append(m["content"] if isinstance(m["content"], str) else "".join(b["text"] for b in m["content"]))
            continue
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        items: list[tuple[Any, ...]] = []
        for b in blocks:
            if b["type"] == "text":
                items.append(("text", b["text"]))
            elif b["type"] == "tool_use":
                items.append(("call", b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                c = b.get("content", "")
                items.append(("result", b["tool_use_id"], c if isinstance(c, str) else "".join(x["text"] for x in c)))
            else:
                items.append((b["type"],))
        turns.append((m["role"], items))
    tools = [(t["name"], t.get("description"), t["input_schema"]) for t in body.get("tools") or []]
    return system, merge_turns(turns), tools


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=openai_requests())
async def test_generated_openai_request_keeps_its_meaning_at_an_anthropic_upstream(
    upstream: FakeUpstream, gateway: GatewayFactory, request: dict[str, Any]
):
    gw = await gateway(providers_at(upstream))
    upstream.reply(Reply(body=body_of(ANTHROPIC_REPLIES["fantasy-multi-tool-turn2"])))
    async with (
        ClientSession() as s,
        s.post(gw.openai_url + "/chat/completions", json={"model": "up-anthropic/claude", **request}) as r,
    ):
        assert r.status == 200, await r.text()
    sent = upstream.last.json
    assert meaning_of_anthropic_request(sent) == meaning_of_openai_request(request)
    assert sent["max_tokens"] > 0


def anthropic_of(openai_request: dict[str, Any]) -> dict[str, Any]:
    """The same conversation written by an Anthropic client (test-side, independent of the codecs)."""
    system = [m["content"] for m in openai_request["messages"] if m["role"] in ("system", "developer")]
    messages: list[dict[str, Any]] = []
    for m in openai_request["messages"]:
        if m["role"] in ("system", "developer"):
            continue
        if m["role"] == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}
            if messages and messages[-1]["role"] == "user":
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
            continue
        blocks = [{"type": "text", "text": m["content"]}] if m.get("content") else []
        blocks += [
            {
                "type": "tool_use",
                "id": c["id"],
                "name": c["function"]["name"],
                "input": json.loads(c["function"]["arguments"]),
            }
            for c in m.get("tool_calls") or []
        ]
        if messages and messages[-1]["role"] == m["role"]:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": m["role"], "content": blocks})
    tools = [
        {
            "name": t["function"]["name"],
            "input_schema": t["function"]["parameters"],
            **({"description": t["function"]["description"]} if "description" in t["function"] else {}),
        }
        for t in openai_request["tools"]
    ]
    body: dict[str, Any] = {"max_tokens": 256, "messages": messages, "tools": tools}
    if system:
        body["system"] = [{"type": "text", "text": t} for t in system]
    return body


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=openai_requests())
async def test_generated_anthropic_request_keeps_its_meaning_at_an_openai_upstream(
    upstream: FakeUpstream, gateway: GatewayFactory, request: dict[str, Any]
):
    body = anthropic_of(request)
    gw = await gateway(providers_at(upstream))
    upstream.reply(Reply(body=body_of(OPENAI_REPLIES["fantasy-gpt4o-multi-tool-turn2"])))
    async with ClientSession() as s, s.post(gw.url + "/v1/messages", json={"model": "up-openai/m", **body}) as r:
        assert r.status == 200, await r.text()
    sent = upstream.last.json
    system, turns, tools = meaning_of_anthropic_request(body)
    # the system blocks arrive as one leading system message, joined in order (docs/translation.md)
    joined = "\n\n".join(t for t in system if t)
    assert meaning_of_openai_request(sent) == ([joined] if joined else [], turns, tools)
    assert sent["max_tokens"] == 256
