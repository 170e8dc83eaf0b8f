"""The OpenAI Chat Completions codec against real recorded provider traffic and the official SDK."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from dragoman import errors
from dragoman.accumulate import Accumulator
from dragoman.canonical import (
    ArgumentsDelta,
    Event,
    Image,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    OpaqueDelta,
    PartStart,
    PartStop,
    Reasoning,
    ReasoningDelta,
    Request,
    Response,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ToolCall,
    ToolResult,
    Usage,
)
from dragoman.dialects.openai.codec import CODEC
from dragoman.dialects.openai.stream import merge_reasoning_details
from tests.conftest import FakeUpstream, Reply
from tests.recorded import cassette, raw

CC = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/"
FANTASY = "charmbracelet__fantasy/providertests/testdata/"
SNAP = "openai__openai-python/.inline-snapshot/external/"
PYD = "pydantic__pydantic-ai/tests/models/cassettes/"

OPENAI_TOOLS = CC + "openai_tools_streaming.txt"
DEEPSEEK_TOOLS = CC + "deepseek_tools_streaming.txt"
OPENROUTER_TOOLS = CC + "openrouter_tools_streaming.txt"
OPENROUTER_REASONING = CC + "openrouter_reasoning_streaming.txt"
GPT4O_MULTI = FANTASY + "TestOpenAICommon/openai-gpt-4o/multi_tool_streaming.yaml"
OR_KIMI_TOOL = FANTASY + "TestOpenRouterCommon/kimi/tool_streaming.yaml"
GROQ_KIMI_MULTI = FANTASY + "TestOpenAICompatibleCommon/groq-kimi-k2/multi_tool_streaming.yaml"
OR_ANTHROPIC_THINKING = FANTASY + "TestOpenRouterThinking/anthropic/thinking-streaming.yaml"
OR_STREAM_ERROR = PYD + "test_openrouter/test_openrouter_stream_error.yaml"
SNAP_PARALLEL = SNAP + "f82268f2fefd5cfbc7eeb59c297688be2f6ca0849a6e4f17851b517310841d9b.bin"
SNAP_REFUSAL = SNAP + "173417d553406f034f643e5db3f8d591fb691ebac56f5ae39a22cc7d455c5353.bin"
SNAP_LENGTH = SNAP + "4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.bin"
SNAP_TEXT = SNAP + "e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin"


def body_of(path: str, n: int = 0) -> bytes:
    return cassette(path)[n].body if path.endswith(".yaml") else raw(path)


def decode(body: bytes, pieces: list[bytes] | None = None) -> list[Event]:
    dec = CODEC.stream_decoder()
    events: list[Event] = []
    for piece in pieces if pieces is not None else [body]:
        events += dec.feed(piece)
    return events + dec.close()


def fold(events: list[Event]) -> tuple[Response, StreamError | None]:
    acc = Accumulator()
    for e in events:
        acc.feed(e)
    return acc.finish(), acc.error


def details_of(events: list[Event]) -> list[Any]:
    frags: list[Any] = []
    for e in events:
        if isinstance(e, OpaqueDelta) and e.dialect == "openai":
            frags += e.data["reasoning_details"]
    return merge_reasoning_details(frags)


def assert_grammar(events: list[Event]) -> None:
    """MessageStart, then parts 0,1,2... one open at a time with deltas only for the open one, then one
    MessageDelta and MessageStop; a StreamError may end it anywhere after the start."""
    assert isinstance(events[0], MessageStart)
    open_idx: int | None = None
    next_idx = 0
    state = "parts"
    for e in events[1:]:
        assert state != "done", f"event after the end: {e}"
        if isinstance(e, StreamError):
            state = "done"
        elif isinstance(e, PartStart):
            assert state == "parts" and open_idx is None and e.index == next_idx
            open_idx, next_idx = e.index, next_idx + 1
        elif isinstance(e, PartStop):
            assert e.index == open_idx
            open_idx = None
        elif isinstance(e, TextDelta | ReasoningDelta | ArgumentsDelta | OpaqueDelta | SignatureDelta):
            assert e.index == open_idx, f"delta for a part that is not open: {e}"
        elif isinstance(e, MessageDelta):
            assert state == "parts" and open_idx is None
            state = "delta"
        elif isinstance(e, MessageStop):
            assert state == "delta"
            state = "done"
        else:
            raise AssertionError(f"unexpected {e}")
    assert state == "done"


def sse(*payloads: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": choices,
        **top,
    }


# ---- replaying real recorded streams ------------------------------------------------------------


def test_openai_parallel_tool_calls_and_usage() -> None:
    events = decode(body_of(OPENAI_TOOLS))
    assert_grammar(events)
    resp, err = fold(events)
    assert err is None
    assert resp.id == "chatcmpl-BKTpxLzenMWda0yXQGBqvT7hIh2jN" and resp.model == "gpt-4o-2024-08-06"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in resp.content if isinstance(c, ToolCall)] == [
        ("call_RJU6xfk0OzQF3Gg9cOFS5RY7", "weather", {"location": "London", "units": "celsius"}),
        ("call_a9oyUMlFhnX8HvqzlfIx5Uek", "weather", {"location": "Paris", "units": "celsius"}),
    ]
    assert resp.stop_reason == "tool_use"
    assert resp.usage == Usage(input_tokens=479, output_tokens=53, reasoning_tokens=0)


def test_deepseek_reasoning_tools_and_cache_arithmetic() -> None:
    events = decode(body_of(DEEPSEEK_TOOLS))
    assert_grammar(events)
    resp, _ = fold(events)
    reasoning, call0, call1 = resp.content
    assert isinstance(reasoning, Reasoning)
    assert reasoning.text.startswith("The user wants to know the weather in London and Paris.")
    assert isinstance(call0, ToolCall) and isinstance(call1, ToolCall)
    assert (call0.id, call1.id) == ("call_00_xzVVyar4M7TXmqAvwt5lz3v2", "call_01_FiLq2fgCjbR43jdNrxI4OYGD")
    assert json.loads(call1.arguments) == {"location": "Paris, France", "units": "celsius"}
    # prompt_tokens 1366 includes 1024 cached: canonical input is the uncached 342
    assert resp.usage == Usage(input_tokens=342, output_tokens=138, cache_read_tokens=1024, reasoning_tokens=28)
    assert resp.usage.prompt_tokens == 1366
    assert resp.stop_reason == "tool_use"
    # the empty reasoning_content of the first delta and the empty content of the finish chunk open nothing
    assert sum(isinstance(e, PartStart) for e in events) == 3


def test_openrouter_comments_reasoning_details_and_tool_call() -> None:
    events = decode(body_of(OPENROUTER_TOOLS))
    assert_grammar(events)
    resp, _ = fold(events)
    reasoning, call = resp.content
    assert isinstance(reasoning, Reasoning) and isinstance(call, ToolCall)
    assert reasoning.text.startswith("**Locating file for user**\n\nI need to comply")
    details = details_of(events)
    assert [d["type"] for d in details] == ["reasoning.summary", "reasoning.encrypted"]
    assert details[0]["summary"] == reasoning.text  # the summary fragments fold into one entry
    assert details[1]["data"].startswith("gAAAA")
    assert call.id == "call_yqZoquE7i7crGNV4S4uZo902" and call.name == "read_file"
    assert json.loads(call.arguments)["start_line_number_base_zero"] == 0
    assert resp.usage == Usage(input_tokens=2817, output_tokens=91, reasoning_tokens=39)


def test_openrouter_reasoning_then_text() -> None:
    resp, _ = fold(decode(body_of(OPENROUTER_REASONING)))
    reasoning, text = resp.content
    assert isinstance(reasoning, Reasoning) and isinstance(text, Text)
    assert text.text == "Expressive language"
    assert resp.stop_reason == "end_turn" and resp.usage.reasoning_tokens == 136


def test_gpt4o_multi_tool_cassette() -> None:
    turn1 = decode(body_of(GPT4O_MULTI, 0))
    assert_grammar(turn1)
    resp, _ = fold(turn1)
    assert [(c.id, c.name, c.arguments) for c in resp.content if isinstance(c, ToolCall)] == [
        ("call_ehIWdjL1abZk1h8FWGLQ0Hie", "add", '{"a": 2, "b": 3}'),
        ("call_fBSgA47J5VeONggizTIvl7AH", "multiply", '{"a": 2, "b": 3}'),
    ]
    assert resp.usage == Usage(input_tokens=106, output_tokens=50, reasoning_tokens=0)
    resp2, _ = fold(decode(body_of(GPT4O_MULTI, 1)))
    assert resp2.content == [Text("The sum of 2 and 3 is 5, and the product is 6.")]
    assert resp2.stop_reason == "end_turn"


def test_openrouter_kimi_ids_verbatim_and_reasoning_details_replay() -> None:
    events = decode(body_of(OR_KIMI_TOOL, 0))
    assert_grammar(events)
    resp, _ = fold(events)
    reasoning, call = resp.content
    assert isinstance(reasoning, Reasoning) and isinstance(call, ToolCall)
    assert call.id == "functions.weather:0"  # Kimi's id, not rewritten
    assert json.loads(call.arguments) == {"location": "Florence,Italy"}
    assert reasoning.text.startswith(" The user is asking for the weather in Florence")
    details = details_of(events)
    assert details == [{"type": "reasoning.text", "text": reasoning.text, "format": "unknown", "index": 0}]
    # the client's next request replays reasoning_details + a role:tool message: it decodes and re-encodes
    req = cassette(OR_KIMI_TOOL)[1].request
    assert req is not None
    canon = CODEC.decode_request(req)
    assistant, results = canon.messages[1], canon.messages[2]
    assert (
        isinstance(assistant.content[0], Reasoning)
        and assistant.content[0].details == req["messages"][2]["reasoning_details"]
    )
    assert results.role == "user" and results.content == [ToolResult("functions.weather:0", [Text("40 C")])]
    assert CODEC.encode_request(canon) == req


def test_groq_kimi_whole_calls_in_one_delta() -> None:
    events = decode(body_of(GROQ_KIMI_MULTI, 0))
    assert_grammar(events)
    resp, _ = fold(events)
    text, add, mul = resp.content
    assert isinstance(text, Text) and text.text.startswith("I'll perform both")
    assert isinstance(add, ToolCall) and isinstance(mul, ToolCall)
    assert (add.id, add.arguments) == ("functions.add:0", '{"a":2,"b":3}')
    assert (mul.id, mul.arguments) == ("functions.multiply:1", '{"a":2,"b":3}')
    assert resp.usage == Usage(input_tokens=201, output_tokens=58)


def test_openrouter_mid_stream_error_after_200() -> None:
    events = decode(body_of(OR_STREAM_ERROR))
    assert_grammar(events)
    assert events[-1] == StreamError(status=400, error_type="invalid_request_error", message="Token limit reached")
    assert not any(isinstance(e, MessageStop) for e in events)
    resp, err = fold(events)
    assert err is not None and len(resp.content) == 1 and isinstance(resp.content[0], Reasoning)
    assert resp.content[0].text == "We need to respond to a greeting. The user"
    assert resp.content[0].details == details_of(events)  # the accumulator keeps reasoning_details


def test_openai_python_snapshots() -> None:
    resp, _ = fold(decode(body_of(SNAP_PARALLEL)))
    assert [c.name for c in resp.content if isinstance(c, ToolCall)] == ["GetWeatherArgs", "get_stock_price"]
    assert resp.usage.input_tokens == 149 and resp.usage.output_tokens == 60
    resp, _ = fold(decode(body_of(SNAP_REFUSAL)))
    assert resp.content == [Text("I'm sorry, I can't assist with that request.", extra={"openai": {"type": "refusal"}})]
    resp, _ = fold(decode(body_of(SNAP_LENGTH)))
    assert resp.stop_reason == "max_tokens" and resp.content == [Text('{"')]


def test_anthropic_via_openrouter_signature_stays_in_details() -> None:
    events = decode(body_of(OR_ANTHROPIC_THINKING))
    assert_grammar(events)
    details = details_of(events)
    assert len(details) == 1 and details[0]["format"] == "anthropic-claude-v1"
    assert details[0]["signature"].startswith("Eq0ECkgIDRABGAIq")
    resp, _ = fold(events)
    reasoning = resp.content[0]
    assert isinstance(reasoning, Reasoning) and details[0]["text"] == reasoning.text


# ---- synthetic edge cases -----------------------------------------------------------------------


def _call(i: int, id: str | None = None, name: str | None = None, args: str = "") -> dict[str, Any]:
    tc: dict[str, Any] = {"index": i, "function": {"arguments": args}}
    if id is not None:
        tc.update(id=id, type="function")
        tc["function"]["name"] = name
    return tc


def test_interleaved_parallel_calls_come_out_sequential() -> None:
    body = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [_call(0, "call_a", "add")]}),
        chunk({"tool_calls": [_call(1, "call_b", "mul")]}),
        chunk({"tool_calls": [_call(0, args='{"a": ')]}),
        chunk({"tool_calls": [_call(1, args='{"b": ')]}),
        chunk({"tool_calls": [_call(1, args="2")]}),
        chunk({"tool_calls": [_call(0, args="1}")]}),
        chunk({"tool_calls": [_call(1, args="}")]}),
        chunk({}, "tool_calls"),
    )
    events = decode(body)
    assert_grammar(events)
    parts = [e for e in events if not isinstance(e, MessageStart | MessageDelta | MessageStop)]
    assert parts == [
        PartStart(0, ToolCall("call_a", "add")),
        ArgumentsDelta(0, '{"a": '),
        ArgumentsDelta(0, "1}"),
        PartStop(0),
        PartStart(1, ToolCall("call_b", "mul")),
        ArgumentsDelta(1, '{"b": 2'),  # buffered while call_a was open
        ArgumentsDelta(1, "}"),
        PartStop(1),
    ]
    resp, _ = fold(events)
    assert [json.loads(c.arguments) for c in resp.content if isinstance(c, ToolCall)] == [{"a": 1}, {"b": 2}]


def test_queued_call_is_flushed_at_finish_and_empty_args_wait() -> None:
    body = sse(
        chunk({"tool_calls": [_call(0, "c0", "noargs")]}),
        chunk({"tool_calls": [_call(1, "c1", "f", '{"x"')]}),  # c0 has no arguments yet: c1 waits
        chunk({"tool_calls": [_call(1, args=": 1}")]}),
        chunk({}, "tool_calls"),
    )
    events = decode(body)
    assert_grammar(events)
    resp, _ = fold(events)
    assert [(c.id, c.arguments) for c in resp.content if isinstance(c, ToolCall)] == [
        ("c0", ""),
        ("c1", '{"x": 1}'),
    ]


def test_switching_kinds_closes_parts_and_usage_after_finish() -> None:
    body = sse(
        chunk({"role": "assistant", "reasoning_content": "think"}),
        chunk({"content": "answer"}),
        chunk({"reasoning_content": " more"}),
        chunk({}, "stop"),
        chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}),
    )
    events = decode(body)
    assert_grammar(events)
    resp, _ = fold(events)
    assert resp.content == [Reasoning("think"), Text("answer"), Reasoning(" more")]
    assert resp.usage == Usage(input_tokens=10, output_tokens=5)


def test_moonshot_usage_inside_choice_with_top_level_cached_tokens() -> None:
    finish = chunk({}, "stop")
    finish["choices"][0]["usage"] = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "cached_tokens": 64,
    }
    resp, _ = fold(decode(sse(chunk({"role": "assistant", "content": "hi"}), finish)))
    assert resp.usage == Usage(input_tokens=36, output_tokens=7, cache_read_tokens=64)


def test_cache_write_tokens_are_taken_out_of_input() -> None:
    u = {
        "prompt_tokens": 1000,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 300},
    }
    resp, _ = fold(decode(sse(chunk({"content": "x"}, "stop", usage=u))))
    assert resp.usage == Usage(input_tokens=500, output_tokens=10, cache_read_tokens=200, cache_write_tokens=300)
    assert resp.usage.prompt_tokens == 1000


def test_no_blank_lines_no_done_and_finish_without_done_ends_normally() -> None:
    body = b"".join(
        b"data: " + json.dumps(p).encode() + b"\n" for p in (chunk({"content": "a"}), chunk({"content": "b"}, "stop"))
    )
    events = decode(body)
    assert_grammar(events)
    assert fold(events)[0].content == [Text("ab")]


def test_truncated_stream_is_an_error() -> None:
    events = decode(sse(chunk({"content": "partial"}), done=False))
    assert_grammar(events)
    assert events[-1] == StreamError(502, "api_error", "upstream stream ended before completion")


def test_opencode_zen_anthropic_envelope_in_stream() -> None:
    err = {"type": "error", "error": {"type": "rate_limit_error", "message": "Weekly usage limit reached"}}
    events = decode(sse(chunk({"content": "x"}), err, done=False))
    assert events[-1] == StreamError(429, "rate_limit_error", "Weekly usage limit reached")


def test_openai_error_in_stream_redacts_keys() -> None:
    err = {"error": {"message": "bad key sk-abcdefghijklmnop", "type": "server_error", "code": None}}
    events = decode(sse(err, done=False))
    assert isinstance(events[-1], StreamError) and events[-1].status == 502
    assert "sk-abcdefghijklmnop" not in events[-1].message


# ---- hypothesis: any byte split decodes the same ------------------------------------------------

SPLIT_BODIES = [body_of(p) for p in (DEEPSEEK_TOOLS, OPENROUTER_TOOLS, OR_STREAM_ERROR, SNAP_PARALLEL, OR_KIMI_TOOL)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_byte_split_decodes_to_the_same_events(data: st.DataObject) -> None:
    body = data.draw(st.sampled_from(SPLIT_BODIES))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=40)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert decode(body, pieces) == decode(body)


# ---- encoder and the official SDK ---------------------------------------------------------------


def reencode(events: list[Event], include_usage: bool = True) -> bytes:
    enc = CODEC.stream_encoder(include_usage=include_usage)
    return b"".join(enc.encode(e) for e in events)


def test_encoder_chunk_shapes() -> None:
    events = decode(body_of(DEEPSEEK_TOOLS))
    wire = reencode(events)
    frames = [line[6:] for line in wire.split(b"\n\n") if line]
    assert frames[-1] == b"[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    first = chunks[0]
    assert first["object"] == "chat.completion.chunk" and first["usage"] is None
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    ]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    heads = [c for c in calls if "id" in c]
    assert [(h["index"], h["id"], h["type"]) for h in heads] == [
        (0, "call_00_xzVVyar4M7TXmqAvwt5lz3v2", "function"),
        (1, "call_01_FiLq2fgCjbR43jdNrxI4OYGD", "function"),
    ]
    finish = chunks[-2]
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "tool_calls"
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == {
        "prompt_tokens": 1366,
        "completion_tokens": 138,
        "total_tokens": 1504,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 28},
    }
    # without include_usage: no usage key and no usage chunk
    bare = reencode(events, include_usage=False)
    assert b'"usage"' not in bare and bare.endswith(b"data: [DONE]\n\n")


def test_encoder_has_no_wire_form_for_signatures_and_opaque() -> None:
    enc = CODEC.stream_encoder()
    enc.encode(MessageStart("msg_1", "claude"))
    assert enc.encode(PartStart(0, Reasoning("", redacted="abc"))) == b""
    assert enc.encode(SignatureDelta(0, "sig")) == b""
    assert enc.encode(PartStop(0)) == b""
    assert enc.encode(PartStart(1, Opaque("anthropic", {"type": "server_tool_use"}))) == b""
    assert enc.encode(OpaqueDelta(1, "anthropic", {"type": "citations_delta"})) == b""


def test_encoder_error_has_no_done() -> None:
    enc = CODEC.stream_encoder()
    out = enc.encode(StreamError(529, "overloaded_error", "busy"))
    assert out.startswith(b"data: {") and b"[DONE]" not in out
    assert json.loads(out[6:])["error"]["message"] == "busy"
    err = errors.RateLimited("slow down")
    assert json.loads(enc.encode_error(err)[6:]) == err.to_openai()


SDK_STREAMS = [OPENAI_TOOLS, DEEPSEEK_TOOLS, OPENROUTER_TOOLS, GPT4O_MULTI, OR_KIMI_TOOL, GROQ_KIMI_MULTI, SNAP_TEXT]


@pytest.mark.parametrize("path", SDK_STREAMS, ids=lambda p: p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1][:24])
async def test_sdk_consumes_reencoded_stream(upstream: FakeUpstream, path: str) -> None:
    events = decode(body_of(path))
    original, _ = fold(events)
    wire = reencode(events)
    pieces = [wire[i : i + 97] for i in range(0, len(wire), 97)]  # arbitrary network chunking
    upstream.reply(Reply(body=pieces, content_type="text/event-stream"))
    client = openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=0)
    async with client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True}
    ) as stream:
        final = await stream.get_final_completion()
    await client.close()
    msg = final.choices[0].message
    texts = "".join(p.text for p in original.content if isinstance(p, Text))
    assert (msg.content or "") == texts
    calls = [p for p in original.content if isinstance(p, ToolCall)]
    assert [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []] == [
        (c.id, c.name, c.arguments) for c in calls
    ]
    reasoning = "".join(p.text for p in original.content if isinstance(p, Reasoning))
    assert (msg.model_extra or {}).get("reasoning_content", "") == reasoning
    assert final.choices[0].finish_reason == ("tool_calls" if calls else "stop")
    assert final.usage is not None
    assert final.usage.prompt_tokens == original.usage.prompt_tokens
    assert final.usage.completion_tokens == original.usage.output_tokens
    assert final.id == original.id


async def test_sdk_raises_on_reencoded_error(upstream: FakeUpstream) -> None:
    wire = reencode(decode(body_of(OR_STREAM_ERROR)))
    upstream.reply(Reply(body=[wire], content_type="text/event-stream"))
    client = openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=0)
    stream = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError, match="Token limit reached"):
        async for _ in stream:
            pass
    await client.close()


async def test_sdk_parses_encoded_response(upstream: FakeUpstream) -> None:
    resp = Response(
        id="msg_1",
        model="kimi-k2.6",
        content=[
            Reasoning("thinking", signature="sig"),
            Text("Hello"),
            Text(" world"),
            ToolCall("functions.add:0", "add", '{"a":1}'),
            Opaque("anthropic", {"type": "web_search_tool_result"}),  # no OpenAI form: dropped
        ],
        stop_reason="tool_use",
        usage=Usage(input_tokens=10, output_tokens=5, cache_read_tokens=20, reasoning_tokens=3),
    )
    body = CODEC.encode_response(resp)
    upstream.reply(Reply(body=msgspec.json.encode(body)))
    client = openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=0)
    got = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    msg = got.choices[0].message
    assert msg.content == "Hello world" and (msg.model_extra or {})["reasoning_content"] == "thinking"
    assert msg.tool_calls is not None and msg.tool_calls[0].id == "functions.add:0"
    assert got.choices[0].finish_reason == "tool_calls"
    assert got.usage is not None and got.usage.prompt_tokens == 30 and got.usage.total_tokens == 35
    assert got.usage.prompt_tokens_details is not None and got.usage.prompt_tokens_details.cached_tokens == 20
    assert got.usage.completion_tokens_details is not None
    assert got.usage.completion_tokens_details.reasoning_tokens == 3


# ---- requests -----------------------------------------------------------------------------------


def _recorded_requests() -> list[tuple[str, dict[str, Any]]]:
    paths = [
        GPT4O_MULTI,
        OR_KIMI_TOOL,
        GROQ_KIMI_MULTI,
        OR_ANTHROPIC_THINKING,
        FANTASY + "TestOpenAICommon/openai-gpt-5/tool_streaming.yaml",
        FANTASY + "TestOpenRouterCommon/kimi/multi_tool.yaml",
        FANTASY + "TestOpenAICompatibleThinking/avian-kimi/thinking-streaming.yaml",
        PYD + "test_ollama/test_ollama_cloud_tool_output.yaml",
        PYD + "test_openrouter/test_openrouter_stream_error.yaml",
        "pydantic__pydantic-ai/tests/models/openrouter/cassettes/test_cache/"
        "test_openrouter_cache_messages_anthropic_real_api.yaml",
    ]
    out = []
    for p in paths:
        for i, it in enumerate(cassette(p)):
            if it.request is not None:
                out.append((f"{p.rsplit('/', 2)[-2]}/{p.rsplit('/', 1)[-1]}#{i}", it.request))
    return out


@pytest.mark.parametrize("req", [r for _, r in _recorded_requests()], ids=[n for n, _ in _recorded_requests()])
def test_recorded_requests_survive_a_round_trip(req: dict[str, Any]) -> None:
    back = CODEC.encode_request(CODEC.decode_request(req))
    expected = dict(req)
    if expected.get("stream") is False:  # stream:false and no stream are the same request
        del expected["stream"]
    assert back == expected


def test_decode_request_mapping() -> None:
    req = CODEC.decode_request(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "system", "content": [{"type": "text", "text": "Rule 2"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "hmm",
                    "tool_calls": [
                        {"id": "functions.add:0", "type": "function", "function": {"name": "add", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "functions.add:0", "content": "3"},
                {"role": "user", "content": "thanks"},
                {"role": "system", "content": "late rule"},
            ],
            "max_completion_tokens": 100,
            "max_tokens": 50,
            "stop": "END",
            "reasoning_effort": "none",
            "tool_choice": {"type": "function", "function": {"name": "add"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
            "safety_identifier": "u1",
            "stream": True,
            "stream_options": {"include_usage": True},
            "logit_bias": {"1": 2},
        }
    )
    assert req.system == [Text("Be brief.", extra={"openai": {"role": "developer"}}), Text("Rule 2")]
    user, assistant, results, late = req.messages
    assert user.content == [
        Text("look"),
        Image(media_type="image/png", data="AAAA", detail="low"),
        Image(url="https://x/y.png"),
        Opaque("openai", {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}),
    ]
    assert assistant.content == [Reasoning("hmm"), ToolCall("functions.add:0", "add", "{}")]
    assert results.content == [ToolResult("functions.add:0", [Text("3")]), Text("thanks")]
    assert late == Message("system", [Text("late rule")])
    assert req.max_tokens == 100 and req.stop == ["END"]
    assert req.thinking == Thinking(enabled=False, effort="none")
    assert req.tool_choice is not None and (req.tool_choice.mode, req.tool_choice.name) == ("tool", "add")
    assert req.response_format is not None and req.response_format.schema == {"type": "object"}
    assert req.user == "u1" and req.stream and req.include_usage
    assert req.extra == {"openai": {"logit_bias": {"1": 2}, "safety_identifier": "u1"}}


def test_encode_request_from_other_dialects() -> None:
    req = Request(
        model="kimi-k2.6",
        system=[Text("sys", extra={"anthropic": {"cache_control": {"type": "ephemeral"}}})],
        messages=[
            Message("user", [Text("hi"), Image(media_type="image/jpeg", data="QUJD")]),
            Message(
                "assistant",
                [
                    Reasoning("step 1", signature="sig", origin="anthropic"),
                    Reasoning("", redacted="opaque-bytes"),
                    Reasoning("step 2"),
                    ToolCall("toolu_1", "add", '{"a":1}'),
                    ToolCall("toolu_2", "mul", '{"a":2}'),
                ],
            ),
            Message(
                "user",
                [
                    ToolResult("toolu_1", [Text("2")]),
                    ToolResult("toolu_2", [Text("boom"), Image(media_type="image/png", data="AA")], is_error=True),
                    Text("and now?"),
                ],
            ),
        ],
        max_tokens=64,
        top_k=5,
        thinking=Thinking(enabled=True, budget_tokens=10000),
        stream=True,
        include_usage=True,
        user="user-1",
    )
    out = CODEC.encode_request(req)
    assert out["messages"] == [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
            ],
        },
        {
            "role": "assistant",
            "reasoning_content": "step 1\n\nstep 2",  # redacted block dropped, signature dropped
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "mul", "arguments": '{"a":2}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "2"},
        {
            "role": "tool",
            "tool_call_id": "toolu_2",
            "content": "[tool error] boom\n[image omitted: OpenAI tool messages carry text only]",
        },
        {"role": "user", "content": "and now?"},
    ]
    assert "content" not in out["messages"][2]  # no empty text next to tool calls
    assert out["max_tokens"] == 64 and "top_k" not in out
    assert out["reasoning_effort"] == "high"
    assert out["stream_options"] == {"include_usage": True} and out["user"] == "user-1"


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        (Thinking(enabled=True, budget_tokens=1024), "low"),
        (Thinking(enabled=True, budget_tokens=2048), "low"),
        (Thinking(enabled=True, budget_tokens=8192), "medium"),
        (Thinking(enabled=True, budget_tokens=24576), "high"),
        (Thinking(enabled=True, budget_tokens=32000), "xhigh"),
        (Thinking(adaptive=True, effort="max"), "max"),
        (Thinking(enabled=False), None),
        (Thinking(enabled=False, effort="none"), "none"),
        (Thinking(adaptive=True), None),
    ],
)
def test_thinking_to_reasoning_effort(thinking: Thinking, effort: str | None) -> None:
    out = CODEC.encode_request(Request(model="m", messages=[Message("user", [Text("x")])], thinking=thinking))
    assert out.get("reasoning_effort") == effort


def test_reasoning_details_replayed_unchanged_and_empty_reasoning_kept() -> None:
    details = [{"type": "reasoning.encrypted", "data": "xyz", "format": "openai-responses-v1", "index": 0}]
    out = CODEC.encode_request(
        Request(
            model="m",
            messages=[
                Message("user", [Text("q")]),
                Message("assistant", [Reasoning("", details=details), ToolCall("c1", "f", "{}")]),
                Message("user", [ToolResult("c1", [Text("ok")])]),
                Message("assistant", [Reasoning(""), ToolCall("c2", "f", "{}")]),
            ],
        )
    )
    first, second = out["messages"][1], out["messages"][3]
    assert first["reasoning_details"] == details and "reasoning_content" not in first
    assert second["reasoning_content"] == ""  # DeepSeek/Moonshot: "reasoned but empty" must be replayed


# ---- errors -------------------------------------------------------------------------------------


def _base(**over: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **over}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_base(messages="hi"), "messages"),
        (_base(messages=[]), "messages"),
        (_base(messages=[{"content": "x"}]), "messages.0.role"),
        (_base(messages=[{"role": "wizard", "content": "x"}]), "messages.0.role"),
        (_base(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
        (_base(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]), "messages.0.content.0.text"),
        (
            _base(
                messages=[
                    {"role": "user", "content": "x"},
                    {"role": "user", "content": "y"},
                    {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]},
                ]
            ),
            "messages.2.tool_calls.0.function.arguments",
        ),
        (_base(messages=[{"role": "assistant", "tool_calls": [{"id": 1}]}]), "messages.0.tool_calls.0.id"),
        (_base(messages=[{"role": "tool", "content": "x"}]), "messages.0.tool_call_id"),
        (_base(temperature="hot"), "temperature"),
        (_base(max_tokens=1.5), "max_tokens"),
        (_base(stop=[1]), "stop.0"),
        (_base(tools=[{"type": "function", "function": {}}]), "tools.0.function.name"),
        (_base(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (_base(model=3), "model"),
    ],
)
def test_wrong_types_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as exc:
        CODEC.decode_request(body)
    assert exc.value.param == param and not isinstance(exc.value, errors.Unsupported)
    assert exc.value.status == 400


def test_non_function_tools_are_unsupported() -> None:
    with pytest.raises(errors.Unsupported) as exc:
        CODEC.decode_request(_base(tools=[{"type": "custom", "custom": {"name": "grammar"}}]))
    assert exc.value.param == "tools.0.type" and "custom" in exc.value.message


def test_anthropic_server_tools_and_documents_are_unsupported() -> None:
    msgs = [Message("user", [Text("hi")])]
    with pytest.raises(errors.Unsupported, match="web_search_20250305"):
        CODEC.encode_request(
            Request(model="m", messages=msgs, extra={"anthropic": {"server_tools": [{"type": "web_search_20250305"}]}})
        )
    doc = Opaque("anthropic", {"type": "document", "source": {"type": "base64", "data": "JVBER"}})
    with pytest.raises(errors.Unsupported, match="document blocks are not supported by OpenAI-dialect providers"):
        CODEC.encode_request(Request(model="m", messages=[Message("user", [Text("read"), doc])]))
    server_block = Opaque("anthropic", {"type": "server_tool_use", "id": "srvtoolu_1"})
    with pytest.raises(errors.Unsupported, match="server_tool_use blocks"):
        CODEC.encode_request(Request(model="m", messages=[*msgs, Message("assistant", [server_block])]))


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (
            429,
            b'{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}',
            errors.RateLimited,
            "Rate limit reached",
        ),
        (
            429,
            b'{"type":"error","error":{"type":"GoUsageLimitError","message":"Weekly usage limit reached"}}',
            errors.RateLimited,
            "Weekly usage limit reached",
        ),
        (
            400,
            b'{"code":20015,"message":"thinking is enabled but reasoning_content is missing"}',
            errors.InvalidRequest,
            "thinking is enabled but reasoning_content is missing",
        ),
        (404, b'{"error":"model \\"x\\" not found"}', errors.NotFound, 'model "x" not found'),
        (500, b"upstream exploded", errors.UpstreamError, "upstream exploded"),
        (503, b"", errors.Overloaded, "upstream returned HTTP 503"),
        (
            401,
            b'{"error":{"message":"Incorrect API key provided: sk-proj-abcdefghijkl"}}',
            errors.AuthenticationFailed,
            "Incorrect API key provided: [redacted]",
        ),
    ],
)
def test_decode_error_envelopes(status: int, body: bytes, cls: type[errors.GatewayError], message: str) -> None:
    err = CODEC.decode_error(status, body)
    assert type(err) is cls and err.message == message


def test_decode_error_keeps_code_and_param_and_4xx_status() -> None:
    body = json.dumps(
        {
            "error": {
                "message": "Unsupported parameter",
                "type": "invalid_request_error",
                "param": "max_tokens",
                "code": "unsupported_parameter",
            }
        }
    ).encode()
    err = CODEC.decode_error(422, body)
    assert (err.status, err.param, err.code) == (422, "max_tokens", "unsupported_parameter")
    assert CODEC.encode_error(err) == err.to_openai()


def test_error_body_in_a_200_response_raises() -> None:
    with pytest.raises(errors.RateLimited):
        CODEC.decode_response({"error": {"message": "slow", "code": 429}})


# ---- hypothesis: requests and responses survive a trip ------------------------------------------

_text = st.text(max_size=20)
_ident = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
_json_leaf = st.none() | st.booleans() | st.integers(-1000, 1000) | _text
_json = st.recursive(
    _json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(_ident, c, max_size=3), max_leaves=6
)
_call_id = st.one_of(
    st.from_regex(r"call_[A-Za-z0-9]{8,24}", fullmatch=True),
    st.builds(lambda n, i: f"functions.{n}:{i}", _ident, st.integers(0, 9)),
)
_tool_call = st.builds(
    lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}},
    _call_id,
    _ident,
    st.dictionaries(_ident, _json_leaf, max_size=3),
)
_image = st.builds(
    lambda url, detail: {"type": "image_url", "image_url": {"url": url, **({"detail": detail} if detail else {})}},
    st.sampled_from(["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo=", "data:image/webp;base64,UklG"]),
    st.sampled_from([None, "low", "high", "auto"]),
)
_text_part = st.builds(lambda t: {"type": "text", "text": t}, _text)
_user_list = st.lists(_text_part | _image, min_size=2, max_size=4) | st.lists(_image, min_size=1, max_size=2)
_user = st.builds(lambda c: {"role": "user", "content": c}, _text | _user_list)


@st.composite
def _assistant(draw: st.DrawFn) -> dict[str, Any]:
    m: dict[str, Any] = {"role": "assistant"}
    calls = draw(st.lists(_tool_call, max_size=3))
    if calls:
        m["tool_calls"] = calls
        content = draw(st.none() | _text.filter(bool))
        if content is not None:
            m["content"] = content
    else:
        m["content"] = draw(_text)
    if draw(st.booleans()):
        m["reasoning_content"] = draw(_text)
    if draw(st.booleans()):
        m["reasoning_details"] = [{"type": "reasoning.text", "text": draw(_text), "format": "unknown", "index": 0}]
    return m


@st.composite
def _conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [
        {"role": r, "content": draw(_text)}
        for r in draw(st.lists(st.sampled_from(["system", "developer"]), max_size=2))
    ]
    msgs.append(draw(_user))
    for _ in range(draw(st.integers(0, 3))):
        a = draw(_assistant())
        msgs.append(a)
        for call in a.get("tool_calls", []):
            msgs.append({"role": "tool", "tool_call_id": call["id"], "content": draw(_text)})
        kind = draw(st.sampled_from(["user", "named-user", "system", "none"]))
        if kind == "user":
            msgs.append(draw(_user))
        elif kind == "named-user":
            msgs.append({**draw(_user), "name": draw(_ident)})
        elif kind == "system":
            msgs.append({"role": "system", "content": draw(_text)})
    return msgs


_tool_spec = st.builds(
    lambda n, d, s: {
        "type": "function",
        "function": {
            "name": n,
            **({"description": d} if d is not None else {}),
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
            **({"strict": s} if s is not None else {}),
        },
    },
    _ident,
    st.none() | _text,
    st.none() | st.booleans(),
)
_optional: dict[str, st.SearchStrategy[Any]] = {
    "max_tokens": st.integers(1, 100000),
    "temperature": st.floats(0, 2, allow_nan=False),
    "top_p": st.floats(0, 1, allow_nan=False),
    "n": st.integers(1, 4),
    "stop": st.lists(_text, min_size=1, max_size=4),
    "seed": st.integers(-(2**31), 2**31),
    "presence_penalty": st.floats(-2, 2, allow_nan=False),
    "frequency_penalty": st.floats(-2, 2, allow_nan=False),
    "tools": st.lists(_tool_spec, min_size=1, max_size=3),
    "tool_choice": st.sampled_from(["auto", "none", "required"])
    | st.builds(lambda n: {"type": "function", "function": {"name": n}}, _ident),
    "parallel_tool_calls": st.booleans(),
    "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max"]),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}])
    | st.builds(
        lambda n, s: {"type": "json_schema", "json_schema": {"name": n, "schema": {"type": "object"}, "strict": s}},
        _ident,
        st.booleans(),
    ),
    "user": _text,
    "metadata": st.dictionaries(_ident, _text, max_size=2),
    "logprobs": st.booleans(),
    "service_tier": st.sampled_from(["auto", "flex"]),
}


@st.composite
def _request(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(_ident), "messages": draw(_conversation())}
    for key in draw(st.lists(st.sampled_from(sorted(_optional)), unique=True)):
        body[key] = draw(_optional[key])
    if draw(st.booleans()):
        body["stream"] = True
        if draw(st.booleans()):
            body["stream_options"] = {"include_usage": True}
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_request())
def test_generated_requests_survive_decode_encode(body: dict[str, Any]) -> None:
    canon = CODEC.decode_request(body)
    assert CODEC.encode_request(canon) == body
    # and the canonical form is plain data (msgspec can carry it between components)
    assert msgspec.json.decode(msgspec.json.encode(canon), type=Request) == canon


@st.composite
def _response(draw: st.DrawFn) -> dict[str, Any]:
    calls = draw(st.lists(_tool_call, max_size=2))
    content = draw(st.none() | _text.filter(bool)) if calls else draw(st.none() | _text)
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if draw(st.booleans()):
        msg["reasoning_content"] = draw(_text)
    if calls:
        msg["tool_calls"] = calls
    prompt = draw(st.integers(0, 10**6))
    cached = draw(st.integers(0, prompt))
    completion = draw(st.integers(0, 10**5))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if draw(st.booleans()):
        usage["completion_tokens_details"] = {"reasoning_tokens": draw(st.integers(0, completion))}
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length", "content_filter"]))
    return {
        "id": "chatcmpl-" + draw(_ident),
        "object": "chat.completion",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(_ident),
        "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
        **({"system_fingerprint": "fp_x"} if draw(st.booleans()) else {}),
    }


@settings(max_examples=150, deadline=None)
@given(_response())
def test_generated_responses_survive_decode_encode(body: dict[str, Any]) -> None:
    back = CODEC.encode_response(CODEC.decode_response(body))
    assert back == body
    ChatCompletion.model_validate(back)


def test_response_mapping_details() -> None:
    body = {
        "id": "x",
        "model": "deepseek-v4",
        "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "function_call"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 2, "prompt_cache_hit_tokens": 30},
    }
    resp = CODEC.decode_response(body)
    assert resp.stop_reason == "tool_use" and resp.usage == Usage(
        input_tokens=20, output_tokens=2, cache_read_tokens=30
    )
    for stop, finish in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ]:
        resp.stop_reason = stop  # type: ignore[assignment]
        assert CODEC.encode_response(resp)["choices"][0]["finish_reason"] == finish


# ---- usage the gateway asked for on a client's behalf ------------------------------------------------


def test_strip_stream_usage_takes_out_only_the_reports_the_client_did_not_ask_for():
    from dragoman.dialects import get

    strip = get("openai").strip_stream_usage
    delta = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}\n\n'
    finish = (
        b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\n'
    )
    moonshot = (
        b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop",'
        b'"usage":{"prompt_tokens":9,"cached_tokens":4}}]}\n\n'
    )
    report = b'data: {"id":"c","choices": [],"usage": {"prompt_tokens":9,"completion_tokens":2}}\n\n'
    done = b": keep-alive\n\ndata: [DONE]\n\n"
    assert strip(delta + done) == delta + done  # nothing to take out: the very bytes
    got = strip(delta + finish + moonshot + report + done)
    events = [json.loads(line[6:]) for line in got.splitlines() if line.startswith(b"data: {")]
    assert [e["choices"][0]["finish_reason"] for e in events] == [None, "stop", "stop"]  # the report chunk went
    assert events[0]["usage"] is None  # "usage": null is not a report
    assert "usage" not in events[1] and "usage" not in events[2]["choices"][0]
    assert got.startswith(delta) and got.endswith(done)
