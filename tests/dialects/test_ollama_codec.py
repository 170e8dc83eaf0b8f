"""The Ollama native /api/chat codec, against codecompanion's real recorded NDJSON and hand-built
bodies in the native shape."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragoman import canonical as c
from dragoman.accumulate import Accumulator
from dragoman.dialects.ollama.codec import CODEC
from dragoman.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    Overloaded,
    RateLimited,
    Unsupported,
    UpstreamError,
)
from tests.recorded import raw

STUBS = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/"
STREAM = raw(STUBS + "ollama_tools_streaming.txt")
REPLY = raw(STUBS + "ollama_tools_no_streaming.txt")

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _line(**body: Any) -> bytes:
    return json.dumps(body).encode() + b"\n"


def _chunk(model: str = "qwen3:8b", done: bool = False, **message: Any) -> bytes:
    return _line(
        model=model,
        created_at="2025-06-01T10:00:00Z",
        message={"role": "assistant", "content": "", **message},
        done=done,
    )


THINKING_STREAM = (
    _chunk(thinking="Let me ")
    + _chunk(thinking="think.")
    + _chunk(content="The answer")
    + _chunk(content=" is 4.")
    + _line(
        model="qwen3:8b",
        created_at="2025-06-01T10:00:01Z",
        message={"role": "assistant", "content": ""},
        done=True,
        done_reason="stop",
        prompt_eval_count=12,
        eval_count=34,
    )
)


def decode_stream(data: bytes, cuts: list[int] | None = None) -> list[c.Event]:
    dec = CODEC.stream_decoder()
    events: list[c.Event] = []
    bounds = [0, *sorted(cuts or []), len(data)]
    for a, b in itertools.pairwise(bounds):
        events += dec.feed(data[a:b])
    return events + dec.close()


def accumulate(events: list[c.Event]) -> tuple[c.Response, c.StreamError | None]:
    acc = Accumulator()
    for e in events:
        acc.feed(e)
    return acc.finish(), acc.error


def check_grammar(events: list[c.Event]) -> None:
    """MessageStart (PartStart deltas* PartStop)* MessageDelta MessageStop, indices 0,1,2..."""
    assert isinstance(events[0], c.MessageStart)
    open_index: int | None = None
    next_index = 0
    for e in events[1:-2]:
        if isinstance(e, c.PartStart):
            assert open_index is None and e.index == next_index
            open_index, next_index = e.index, next_index + 1
        elif isinstance(e, c.PartStop):
            assert e.index == open_index
            open_index = None
        else:
            assert isinstance(e, c.TextDelta | c.ReasoningDelta | c.ArgumentsDelta)
            assert e.index == open_index
    assert open_index is None
    assert isinstance(events[-2], c.MessageDelta) and isinstance(events[-1], c.MessageStop)


def strip_ids(events: list[c.Event]) -> list[Any]:
    """Events as builtins with the random message and call ids blanked."""
    out = []
    for e in events:
        d = msgspec.to_builtins(e)
        if isinstance(e, c.MessageStart):
            d["id"] = ""
        if isinstance(e, c.PartStart) and isinstance(e.part, c.ToolCall):
            d["part"]["id"] = ""
        out.append(d)
    return out


def strip_call_ids(parts: list[c.Part]) -> list[Any]:
    return [{**msgspec.to_builtins(p), "id": ""} if isinstance(p, c.ToolCall) else p for p in parts]


# ---- real recordings ----------------------------------------------------------------------------


def test_recorded_stream_tool_calls() -> None:
    events = decode_stream(STREAM)
    check_grammar(events)
    assert [type(e).__name__ for e in events] == [
        "MessageStart",
        *["PartStart", "ArgumentsDelta", "PartStop"] * 2,
        "MessageDelta",
        "MessageStop",
    ]
    resp, err = accumulate(events)
    assert err is None
    assert resp.model == "llama3.1:latest" and resp.id.startswith("ollama-")
    calls = [p for p in resp.content if isinstance(p, c.ToolCall)]
    assert [(t.name, t.arguments) for t in calls] == [
        ("weather", '{"location":"London, UK","units":"celsius"}'),
        ("weather", '{"location":"Paris, FR","units":"fahrenheit"}'),
    ]
    assert calls[0].id != calls[1].id and all(t.id.startswith("call_") for t in calls)
    assert resp.stop_reason == "tool_use"  # Ollama says "stop" even after tool calls
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (577, 90)
    assert calls[1].extra == {"ollama": {"function": {"index": 1}, "generated_id": True}}


def test_recorded_reply_tool_calls() -> None:
    resp = CODEC.decode_response(json.loads(REPLY))
    assert resp.model == "llama3.1:latest" and resp.id.startswith("ollama-")
    assert [(p.name, p.arguments) for p in resp.content if isinstance(p, c.ToolCall)] == [
        ("weather", '{"location":"London, UK","units":"celsius"}'),
        ("weather", '{"location":"Paris, FR","units":"fahrenheit"}'),
    ]
    assert len(resp.content) == 2  # empty content makes no Text part
    assert resp.stop_reason == "tool_use"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (577, 90)
    assert resp.extra is not None and resp.extra["ollama"]["total_duration"] == 8816526041


def test_recorded_reply_round_trip() -> None:
    body = json.loads(REPLY)
    assert CODEC.encode_response(CODEC.decode_response(body)) == body


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_byte_split_decodes_the_same(data: st.DataObject) -> None:
    for stream in (STREAM, THINKING_STREAM):
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
        assert strip_ids(decode_stream(stream, cuts)) == strip_ids(decode_stream(stream))


# ---- streams built by hand ----------------------------------------------------------------------


def test_thinking_stream() -> None:
    events = decode_stream(THINKING_STREAM)
    check_grammar(events)
    assert isinstance(events[1], c.PartStart) and isinstance(events[1].part, c.Reasoning)
    starts = [e for e in events if isinstance(e, c.PartStart)]
    assert [type(e.part) for e in starts] == [c.Reasoning, c.Text]
    resp, err = accumulate(events)
    assert err is None
    assert resp.content == [c.Reasoning(text="Let me think."), c.Text("The answer is 4.")]
    assert resp.stop_reason == "end_turn"
    assert resp.usage == c.Usage(input_tokens=12, output_tokens=34)


def test_length_stop_and_content_then_tool_call() -> None:
    call = {"id": "call_x1", "function": {"name": "f", "arguments": {"b": 1, "a": [2]}}}
    data = (
        _chunk(content="Calling")
        + _chunk(tool_calls=[call])
        + _chunk(content="more")
        + _line(model="m", message={"role": "assistant", "content": ""}, done=True, done_reason="length")
    )
    events = decode_stream(data)
    check_grammar(events)
    resp, _ = accumulate(events)
    assert resp.content == [c.Text("Calling"), c.ToolCall("call_x1", "f", '{"b":1,"a":[2]}'), c.Text("more")]
    assert resp.stop_reason == "max_tokens"


def test_mid_stream_error_line() -> None:
    data = _chunk(content="Hel") + b'{"error":"model runner has unexpectedly stopped"}\n' + _chunk(content="x")
    events = decode_stream(data)
    assert isinstance(events[0], c.MessageStart)
    assert events[-1] == c.StreamError(502, "api_error", "model runner has unexpectedly stopped")
    assert sum(isinstance(e, c.StreamError) for e in events) == 1
    assert not any(isinstance(e, c.MessageStop) for e in events)


def test_error_as_first_line() -> None:
    events = decode_stream(b'{"error":"model \\"nope\\" not found"}\n')
    assert events == [c.StreamError(502, "api_error", 'model "nope" not found')]


@pytest.mark.parametrize("cut", [0, 1, 100, len(THINKING_STREAM) - 30, len(THINKING_STREAM) - 2])
def test_truncated_stream(cut: int) -> None:
    events = decode_stream(THINKING_STREAM[:cut])
    assert isinstance(events[-1], c.StreamError) and events[-1].status == 502
    assert not any(isinstance(e, c.MessageStop) for e in events)


def test_unterminated_last_line_still_counts() -> None:
    events = decode_stream(THINKING_STREAM.rstrip(b"\n"))
    assert isinstance(events[-1], c.MessageStop)


def test_garbage_line() -> None:
    events = decode_stream(_chunk(content="a") + b"<html>bad gateway</html>\n")
    assert isinstance(events[-1], c.StreamError) and "not JSON" in events[-1].message


# ---- stream encoder -----------------------------------------------------------------------------


def test_stream_encoder_round_trip() -> None:
    events = decode_stream(THINKING_STREAM)
    call_events = decode_stream(STREAM)[1:-2]
    for e in call_events:  # append the two tool calls after the text part
        if isinstance(e, c.PartStart | c.PartStop | c.ArgumentsDelta):
            e.index += 2
    events = events[:-2] + call_events + events[-2:]
    enc = CODEC.stream_encoder()
    wire = b"".join(enc.encode(e) for e in events)
    lines = [json.loads(x) for x in wire.splitlines()]
    assert all(ln["model"] == "qwen3:8b" for ln in lines)
    assert lines[0]["message"]["thinking"] == "Let me "
    assert lines[-2]["message"]["tool_calls"][0]["function"] == {
        "index": 1,
        "name": "weather",
        "arguments": {"location": "Paris, FR", "units": "fahrenheit"},
    }
    assert "id" not in lines[-2]["message"]["tool_calls"][0]  # it was made up, not Ollama's
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (12, 34)
    again, err = accumulate(decode_stream(wire))
    first, _ = accumulate(events)
    assert err is None and again.stop_reason == "tool_use" and again.usage == first.usage
    assert strip_call_ids(again.content) == strip_call_ids(first.content)
    assert len(again.content) == 4


def test_stream_encoder_errors() -> None:
    enc = CODEC.stream_encoder()
    assert enc.encode(c.StreamError(529, "overloaded_error", "busy")) == b'{"error":"busy"}\n'
    assert enc.encode_error(Overloaded("try later")) == b'{"error":"try later"}\n'
    assert enc.encode(c.SignatureDelta(0, "sig")) == b""


# ---- requests -----------------------------------------------------------------------------------

NATIVE_REQUEST: dict[str, Any] = {
    "model": "qwen3:8b",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is in this picture, and the weather?", "images": [PNG]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "I should call the tool.",
            "tool_calls": [
                {"id": "call_1", "function": {"name": "weather", "arguments": {"city": "Paris", "a": 1}}},
                {"function": {"index": 1, "name": "clock", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "18C", "tool_name": "weather", "tool_call_id": "call_1"},
        {"role": "tool", "content": "[tool error] no clock", "tool_name": "clock"},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "think": "high",
    "format": {"type": "object", "properties": {"answer": {"type": "string"}}},
    "options": {"temperature": 0.2, "top_k": 40, "num_predict": 100, "stop": ["END"], "num_ctx": 8192},
    "stream": False,
    "keep_alive": "5m",
}


def test_request_decode() -> None:
    req = CODEC.decode_request(json.loads(json.dumps(NATIVE_REQUEST)))
    assert req.model == "qwen3:8b" and req.stream is False
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "user", "user"]
    assert req.messages[1].content == [
        c.Text("What is in this picture, and the weather?"),
        c.Image(media_type="image/png", data=PNG),
    ]
    assistant = req.messages[2].content
    assert assistant[0] == c.Reasoning(text="I should call the tool.")
    assert isinstance(assistant[1], c.ToolCall) and assistant[1].arguments == '{"city":"Paris","a":1}'
    assert isinstance(assistant[2], c.ToolCall) and assistant[2].arguments == "{}"
    results = req.messages[3].content
    assert [type(r) for r in results] == [c.ToolResult, c.ToolResult]
    assert isinstance(results[0], c.ToolResult) and results[0].tool_call_id == "call_1"
    assert isinstance(results[1], c.ToolResult)
    assert results[1].tool_call_id == assistant[2].id and results[1].is_error
    assert results[1].content == [c.Text("no clock")]
    assert req.thinking == c.Thinking(enabled=True, effort="high")
    assert req.response_format is not None and req.response_format.type == "json_schema"
    assert (req.temperature, req.top_k, req.max_tokens, req.stop) == (0.2, 40, 100, ["END"])
    assert req.extra == {"ollama": {"keep_alive": "5m", "options": {"num_ctx": 8192}}}


def test_request_round_trip() -> None:
    body = json.loads(json.dumps(NATIVE_REQUEST))
    assert CODEC.encode_request(CODEC.decode_request(body)) == NATIVE_REQUEST


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [], "think": False, "format": "json", "stream": True},
        {"model": "m", "messages": [{"role": "user", "content": "hi", "x_custom": 1}], "stream": True},
        {"model": "m", "messages": [], "options": {"num_predict": -1, "seed": 7}, "stream": False},
    ],
)
def test_small_request_round_trips(body: dict[str, Any]) -> None:
    assert CODEC.encode_request(CODEC.decode_request(body)) == body


def test_stream_defaults_to_true() -> None:
    assert CODEC.decode_request({"model": "m", "messages": []}).stream is True


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": "m", "messages": {}}, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x", "images": [1]}]},
            "messages[0].images[0]",
        ),
        (
            {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": 3}}]}]},
            "messages[0].tool_calls[0].function.name",
        ),
        (
            {"model": "m", "tools": [{"function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        ({"model": "m", "options": {"temperature": "hot"}}, "options.temperature"),
        ({"model": "m", "options": {"top_k": 1.5}}, "options.top_k"),
        ({"model": "m", "options": {"seed": True}}, "options.seed"),
        ({"model": "m", "think": "extreme"}, "think"),
        ({"model": "m", "format": "xml"}, "format"),
        ({"model": "m", "stream": "yes"}, "stream"),
        ({"model": "m", "options": 0}, "options"),
    ],
)
def test_request_decode_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        CODEC.decode_request(body)
    assert info.value.param == param


# ---- canonical -> Ollama ------------------------------------------------------------------------


def conversation() -> c.Request:
    return c.Request(
        model="llama3.1",
        system=[c.Text("You are helpful.")],
        messages=[
            c.Message("user", [c.Text("Look:"), c.Image(media_type="image/png", data=PNG)]),
            c.Message(
                "assistant",
                [
                    c.Reasoning(text="thinking hard", signature="sig=="),
                    c.Reasoning(redacted="opaque-bytes"),
                    c.Text("Let me check."),
                    c.ToolCall("toolu_1", "weather", '{"z":1,"a":"b"}'),
                    c.ToolCall("toolu_2", "noargs", ""),
                ],
            ),
            c.Message(
                "user",
                [
                    c.ToolResult("toolu_1", [c.Text("sunny")]),
                    c.ToolResult("toolu_2", [c.Text("boom")], is_error=True, name="renamed"),
                    c.Text("And tomorrow?"),
                ],
            ),
        ],
        tools=[c.ToolSpec("weather", "Get weather", {"type": "object"}, strict=True)],
        temperature=0.5,
        top_p=0.9,
        max_tokens=256,
        seed=1,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        stop=["\n\n"],
        stream=True,
        extra={"ollama": {"keep_alive": -1, "options": {"num_ctx": 4096}}, "openai": {"store": True}},
    )


def test_encode_request_conversation() -> None:
    body = CODEC.encode_request(conversation())
    assert body["messages"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Look:", "images": [PNG]},
        {
            "role": "assistant",
            "content": "Let me check.",
            "thinking": "thinking hard",
            "tool_calls": [
                {"id": "toolu_1", "function": {"name": "weather", "arguments": {"z": 1, "a": "b"}}},
                {"id": "toolu_2", "function": {"name": "noargs", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "sunny", "tool_name": "weather", "tool_call_id": "toolu_1"},
        {"role": "tool", "content": "[tool error] boom", "tool_name": "renamed", "tool_call_id": "toolu_2"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert list(body["messages"][2]["tool_calls"][0]["function"]["arguments"]) == ["z", "a"]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Get weather", "parameters": {"type": "object"}},
        }
    ]
    assert body["options"] == {
        "temperature": 0.5,
        "top_p": 0.9,
        "num_predict": 256,
        "stop": ["\n\n"],
        "seed": 1,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "num_ctx": 4096,
    }
    assert body["stream"] is True and body["keep_alive"] == -1
    assert "store" not in body and "think" not in body and "format" not in body
    msgspec.json.encode(body)  # plain JSON all the way down


def test_encode_request_minimal() -> None:
    body = CODEC.encode_request(c.Request(model="m", messages=[c.Message("user", [c.Text("hi")])]))
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}


@pytest.mark.parametrize(
    ("thinking", "think"),
    [
        (None, None),
        (c.Thinking(), None),
        (c.Thinking(enabled=False), False),
        (c.Thinking(enabled=False, effort="high"), False),
        (c.Thinking(effort="none"), False),
        (c.Thinking(effort="minimal"), "low"),
        (c.Thinking(effort="low"), "low"),
        (c.Thinking(effort="medium"), "medium"),
        (c.Thinking(enabled=True, effort="high"), "high"),
        (c.Thinking(effort="xhigh"), "high"),
        (c.Thinking(effort="max"), "high"),
        (c.Thinking(enabled=True), True),
        (c.Thinking(budget_tokens=2048), True),
        (c.Thinking(adaptive=True), True),
    ],
)
def test_think_mapping(thinking: c.Thinking | None, think: bool | str | None) -> None:
    body = CODEC.encode_request(c.Request(model="m", thinking=thinking))
    assert body.get("think", None) == think and ("think" in body) == (think is not None)


@pytest.mark.parametrize(
    ("fmt", "wire"),
    [
        (c.ResponseFormat("text"), None),
        (c.ResponseFormat("json_object"), "json"),
        (
            c.ResponseFormat("json_schema", schema={"type": "object"}, name="x", strict=True),
            {"type": "object"},
        ),
        (c.ResponseFormat("json_schema"), "json"),
    ],
)
def test_format_mapping(fmt: c.ResponseFormat, wire: Any) -> None:
    assert CODEC.encode_request(c.Request(model="m", response_format=fmt)).get("format") == wire


def test_image_url_refused_data_url_unpacked() -> None:
    url = c.Request(model="m", messages=[c.Message("user", [c.Text("x"), c.Image(url="https://e.x/a.png")])])
    with pytest.raises(Unsupported) as info:
        CODEC.encode_request(url)
    assert info.value.param == "messages[0].content[1]" and "base64" in info.value.message
    data_url = c.Request(model="m", messages=[c.Message("user", [c.Image(url=f"data:image/png;base64,{PNG}")])])
    assert CODEC.encode_request(data_url)["messages"][0]["images"] == [PNG]


def test_tool_choice() -> None:
    req = conversation()
    req.tool_choice = c.ToolChoice("none")
    assert "tools" not in CODEC.encode_request(req)
    req.tool_choice = c.ToolChoice("tool", name="weather")
    assert len(CODEC.encode_request(req)["tools"]) == 1  # kept; forcing is not expressible


def test_refusals() -> None:
    with pytest.raises(Unsupported) as info:
        CODEC.encode_request(c.Request(model="m", n=2))
    assert info.value.param == "n"
    assert "n" not in CODEC.encode_request(c.Request(model="m", n=1))
    opaque = c.Opaque("anthropic", {"type": "server_tool_use", "id": "srv_1"})
    with pytest.raises(Unsupported) as info:
        CODEC.encode_request(c.Request(model="m", messages=[c.Message("assistant", [opaque])]))
    assert "server_tool_use" in info.value.message and info.value.param == "messages[0].content[0]"
    bad = c.Message("assistant", [c.ToolCall("call_9", "f", '{"a":')])
    with pytest.raises(InvalidRequest) as info:
        CODEC.encode_request(c.Request(model="m", messages=[bad]))
    assert "call_9" in info.value.message
    with pytest.raises(InvalidRequest):
        CODEC.encode_request(c.Request(model="m", messages=[c.Message("assistant", [c.ToolResult("x")])]))


def test_canonical_round_trip_through_ollama() -> None:
    req = conversation()
    req.system = []
    req.extra = None
    req.tools = [c.ToolSpec("weather", "Get weather", {"type": "object"})]
    assistant = req.messages[1].content
    del assistant[:2]  # reasoning with signatures cannot survive
    assistant.insert(0, c.Reasoning(text="thinking hard"))
    assistant[-1] = c.ToolCall("toolu_2", "noargs", "{}")  # "" goes out as {} and comes back as "{}"
    again = CODEC.decode_request(CODEC.encode_request(req))
    assert again.messages[0] == req.messages[0]
    assert again.messages[1] == req.messages[1]
    results = again.messages[2].content
    assert [(r.tool_call_id, r.is_error, r.content) for r in results if isinstance(r, c.ToolResult)] == [
        ("toolu_1", False, [c.Text("sunny")]),
        ("toolu_2", True, [c.Text("boom")]),
    ]
    assert again.messages[3] == c.Message("user", [c.Text("And tomorrow?")])
    assert again.tools == req.tools and again.temperature == 0.5 and again.max_tokens == 256


# ---- responses ----------------------------------------------------------------------------------


def test_response_with_thinking_and_ids() -> None:
    body = {
        "model": "qwen3:8b",
        "created_at": "2025-06-01T10:00:00Z",
        "message": {
            "role": "assistant",
            "content": "Done.",
            "thinking": "hmm",
            "tool_calls": [{"id": "call_abc", "function": {"name": "f", "arguments": {"x": [1, 2]}}}],
        },
        "done_reason": "stop",
        "done": True,
        "prompt_eval_count": 5,
        "eval_count": 6,
    }
    resp = CODEC.decode_response(body)
    assert resp.content == [
        c.Reasoning(text="hmm"),
        c.Text("Done."),
        c.ToolCall("call_abc", "f", '{"x":[1,2]}'),
    ]
    assert resp.stop_reason == "tool_use"
    assert CODEC.encode_response(resp) == body
    assert CODEC.decode_response({**body, "message": {"role": "assistant", "content": "x"}}).stop_reason == ("end_turn")
    assert CODEC.decode_response({**body, "done_reason": "length"}).stop_reason == "max_tokens"


def test_encode_response_counts_all_input() -> None:
    resp = c.Response(
        id="msg_1",
        model="m",
        content=[c.Text("hi")],
        stop_reason="max_tokens",
        usage=c.Usage(input_tokens=10, cache_read_tokens=90, output_tokens=3),
    )
    body = CODEC.encode_response(resp)
    assert (body["prompt_eval_count"], body["eval_count"], body["done_reason"]) == (100, 3, "length")
    assert body["message"] == {"role": "assistant", "content": "hi"}


def test_response_error_body() -> None:
    with pytest.raises(UpstreamError):
        CODEC.decode_response({"error": "boom"})
    with pytest.raises(UpstreamError):
        CODEC.decode_response({"model": "m", "message": {"content": 5}, "done": True})


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (404, b'{"error":"model \\"llama9\\" not found, try pulling it first"}', NotFound, "not found"),
        (429, b'{"error":{"message":"slow down","type":"rate_limit_error"}}', RateLimited, "slow down"),
        (
            401,
            b'{"type":"error","error":{"type":"authentication_error","message":"bad key"}}',
            AuthenticationFailed,
            "bad key",
        ),
        (502, b"<html>Bad Gateway</html>", UpstreamError, "Bad Gateway"),
        (503, b"", Overloaded, "HTTP 503"),
        (400, b'{"error":"invalid sk-abcdefghijklmnop"}', InvalidRequest, "[redacted]"),
    ],
)
def test_decode_error(status: int, body: bytes, cls: type[Exception], message: str) -> None:
    err = CODEC.decode_error(status, body)
    assert type(err) is cls and message in err.message
    assert "abcdefghijklmnop" not in err.message


def test_error_in_a_200_body_is_an_upstream_failure() -> None:
    err = CODEC.decode_error(200, b'{"error":"out of memory"}')
    assert type(err) is UpstreamError and err.message == "out of memory" and err.status == 502


def test_encode_error() -> None:
    assert CODEC.encode_error(NotFound("no such model")) == {"error": "no such model"}
    assert CODEC.name == "ollama" and CODEC.framing == "ndjson"
