"""Responses streams: recorded OpenAI streams decoded into canonical events, every dialect's recorded
streams re-encoded in OpenAI's grammar and read back by the official SDK's stream helper, and the
reasoning of each provider surviving a Codex round trip sealed in `encrypted_content`."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import openai
import pytest

from dragoman import dialects
from dragoman.accumulate import Accumulator
from dragoman.canonical import (
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    PartStart,
    PartStop,
    Reasoning,
    Response,
    StreamError,
    Text,
    TextDelta,
    ToolCall,
    Usage,
)
from dragoman.dialects.base import EncodeContext
from dragoman.dialects.responses import open_sealed, unseal_passthrough
from dragoman.dialects.responses.outputs import decode_output
from dragoman.dialects.responses.wire import own, usage_from_wire
from dragoman.dialects.tap import TAIL
from dragoman.errors import UpstreamError
from dragoman.seal import AesGcmSealer
from tests.conftest import FakeUpstream, Reply
from tests.dialects import codex
from tests.recorded import cassette, raw

CODEC = dialects.get("responses")
FANTASY = "charmbracelet__fantasy/providertests/testdata/"
VERCEL = "vercel__ai/packages/openai/src/responses/__fixtures__/"
PYD = "pydantic__pydantic-ai/tests/models/cassettes/"
CC = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/"

RESP_STREAMS = [
    FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/simple_streaming.yaml",
    FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/tool_streaming.yaml",
    FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/multi_tool_streaming.yaml",
    FANTASY + "TestOpenAIResponsesWithSummaryThinking/openai-gpt-5/thinking-streaming.yaml",
    FANTASY + "TestOpenAIResponsesObjectGeneration/openai-gpt-5/simple_object_streaming.yaml",
    VERCEL + "openai-reasoning-encrypted-content.1.chunks.txt",
    VERCEL + "openai-web-search-tool.1.chunks.txt",
]
RESP_THINKING = RESP_STREAMS[3]
ANT_THINKING = FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking-streaming.yaml"
ANT_REDACTED = PYD + "test_anthropic/test_anthropic_model_thinking_part_redacted_stream.yaml"
ANT_INCOMPLETE = "anthropics__anthropic-sdk-python/tests/lib/streaming/fixtures/incomplete_partial_json_response.txt"
DEEPSEEK_TOOLS = CC + "deepseek_tools_streaming.txt"
KIMI_OPENROUTER = FANTASY + "TestOpenRouterCommon/kimi/tool_streaming.yaml"
KIMI_AVIAN = FANTASY + "TestOpenAICompatibleThinking/avian-kimi/thinking-streaming.yaml"
OPENROUTER_ERROR = PYD + "test_openrouter/test_openrouter_stream_error.yaml"
OPENAI_PARALLEL = "openai__openai-python/.inline-snapshot/external/f82268f2fefd5cfbc7eeb59c297688be2f6ca0849a6e4f17851b517310841d9b.bin"
OLLAMA_TOOLS = CC + "ollama_tools_streaming.txt"

# (dialect, fixture, interaction): every upstream kind a Responses client can be served from
SOURCES = [
    ("anthropic", ANT_THINKING, 0),
    ("anthropic", ANT_THINKING, 1),
    ("anthropic", ANT_REDACTED, 0),
    ("openai", DEEPSEEK_TOOLS, 0),
    ("openai", KIMI_OPENROUTER, 0),
    ("openai", KIMI_AVIAN, 0),
    ("openai", OPENAI_PARALLEL, 0),
    ("ollama", OLLAMA_TOOLS, 0),
    ("responses", RESP_THINKING, 0),
    ("responses", RESP_STREAMS[2], 1),
]
SEALER = AesGcmSealer(b"the deployment's secret")


def streams_of(path: str) -> list[bytes]:
    """Every recorded stream in a fixture (a vercel chunks file may hold several steps' streams)."""
    if path.endswith(".yaml"):
        return [it.body for it in cassette(path)]
    data = raw(path)
    if not path.endswith(".chunks.txt"):
        return [data]
    streams: list[bytes] = []
    for line in data.splitlines():  # one JSON payload per line
        if line.startswith(b'{"type":"response.created"') or not streams:
            streams.append(b"")
        if line.strip():
            streams[-1] += b"data: " + line + b"\n\n"
    return streams


def body_of(path: str, n: int = 0) -> bytes:
    return streams_of(path)[n]


def decode(dialect: str, data: bytes, piece: int | None = None) -> list[Event]:
    dec = dialects.get(dialect).stream_decoder()
    events: list[Event] = []
    step = piece or len(data) or 1
    for i in range(0, len(data), step):
        events += dec.feed(data[i : i + step])
    return events + dec.close()


def fold(events: list[Event]) -> tuple[Response, StreamError | None]:
    acc = Accumulator()
    for e in events:
        acc.feed(e)
    return acc.finish(), acc.error


def encode(events: list[Event], body: dict[str, Any], origin: str | None = "kimi") -> bytes:
    ctx = EncodeContext(request=body, sealer=SEALER, origin=origin)
    enc = CODEC.stream_encoder(context=ctx)
    return b"".join(enc.encode(e) for e in events)


def wire_events(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.decode().split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        ev = json.loads(lines[1][6:])
        assert ev["type"] == lines[0][7:]
        out.append(ev)
    return out


def check_grammar(events: list[dict[str, Any]]) -> None:
    """OpenAI's grammar, as the SDK and Codex rely on it."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    last = events[-1]["type"]
    assert last in ("response.completed", "response.incomplete", "response.failed")
    assert all(e["type"] not in ("response.created", "response.completed") for e in events[2:-1])
    rid = events[0]["response"]["id"]
    assert rid.startswith("resp_") and events[-1]["response"]["id"] == rid
    open_items: dict[int, str] = {}
    done: dict[int, dict[str, Any]] = {}
    for e in events[2:-1]:
        t = e["type"]
        if t == "response.output_item.added":
            assert e["output_index"] == len(open_items) + len(done) and not open_items  # one at a time
            open_items[e["output_index"]] = e["item"]["id"]
        elif t == "response.output_item.done":
            assert open_items.pop(e["output_index"]) == e["item"]["id"]
            done[e["output_index"]] = e["item"]
        else:
            assert e["output_index"] in open_items, t  # every delta belongs to an open item
            assert e["item_id"] == open_items[e["output_index"]]
    if last != "response.failed":
        assert not open_items
        assert events[-1]["response"]["output"] == [done[i] for i in sorted(done)]
        usage = events[-1]["response"]["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def sdk_stream(upstream: FakeUpstream, data: bytes) -> tuple[list[Any], Any]:
    upstream.reply(Reply(body=[data[i : i + 997] for i in range(0, len(data), 997)], content_type="text/event-stream"))
    async with (
        openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=0) as client,
        client.responses.stream(model="m", input="x") as stream,
    ):
        seen = [ev async for ev in stream]
        try:
            final = await stream.get_final_response()
        except RuntimeError:
            final = None
    return seen, final


# ---- decoding a Responses upstream --------------------------------------------------------------


@pytest.mark.parametrize("path", RESP_STREAMS)
def test_recorded_streams_decode_to_what_their_final_response_says(path: str) -> None:
    for data in streams_of(path):
        events = decode("responses", data)
        assert decode("responses", data, piece=7) == events  # bytes split anywhere
        got, error = fold(events)
        assert error is None and isinstance(events[0], MessageStart) and isinstance(events[-1], MessageStop)
        final = next(
            json.loads(line[6:])
            for line in data.decode().splitlines()[::-1]
            if line.startswith('data: {"type":"response.completed"')
        )["response"]
        want = decode_output(final["output"])
        done_blobs = {
            ev["item"]["id"]: ev["item"].get("encrypted_content")
            for ev in (json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: {"))
            if ev["type"] == "response.output_item.done"
        }
        assert [type(p) for p in got.content] == [type(p) for p in want]
        for a, b in zip(got.content, want, strict=True):
            if isinstance(a, ToolCall):
                assert a == b
            elif isinstance(a, Text) and isinstance(b, Text):
                # streamed annotations (url citations) have no canonical delta: text and item only
                assert (a.text, own(a.extra)["item_id"]) == (b.text, own(b.extra)["item_id"])
            elif isinstance(a, Reasoning) and isinstance(b, Reasoning):
                assert (a.text, a.extra) == (b.text, b.extra)
                # OpenAI encrypts anew each time it writes an item: the blob is the done item's
                assert a.signature == done_blobs.get((a.extra or {})["responses"]["id"])
            else:
                assert isinstance(a, Opaque) and isinstance(b, Opaque) and a.data["id"] == b.data["id"]
        assert got.usage == usage_from_wire(final["usage"])
        assert got.stop_reason == ("tool_use" if any(isinstance(p, ToolCall) for p in want) else "end_turn")
        assert got.id == final["id"]
        tap = CODEC.stream_tap()
        for j in range(0, len(data), 500):
            tap.feed(data[j : j + 500])
        tally = tap.finish()
        assert tally.ended and tally.error is None
        assert (tally.usage, tally.stop_reason) == (got.usage, got.stop_reason)
        assert tally.tool_calls == sum(isinstance(p, ToolCall) for p in got.content)


def test_reasoning_summary_parts_and_message_phases() -> None:
    got, _ = fold(decode("responses", body_of(RESP_THINKING, 0)))
    reasoning = got.content[0]
    assert isinstance(reasoning, Reasoning) and reasoning.signature is not None
    assert reasoning.signature.startswith("gAAAAA") and "\n\n" in reasoning.text
    phased, _ = fold(decode("responses", body_of(VERCEL + "openai-phase.1.chunks.txt")))  # trimmed recording
    texts = [p for p in phased.content if isinstance(p, Text)]
    assert [(t.extra or {})["responses"]["phase"] for t in texts] == ["commentary", "final_answer"]
    again = wire_events(encode(decode("responses", body_of(VERCEL + "openai-phase.1.chunks.txt")), {}))
    items = [e["item"] for e in again if e["type"] == "response.output_item.done"]
    assert [(i["type"], i.get("phase")) for i in items] == [("message", "commentary"), ("message", "final_answer")]


def test_errors_inside_and_cuts_of_a_responses_stream() -> None:
    events = decode("responses", body_of(VERCEL + "openai-error.1.chunks.txt"))
    assert isinstance(events[-1], StreamError)
    assert events[-1].status == 402 and "exceeded your current quota" in events[-1].message
    tap = CODEC.stream_tap()
    tap.feed(body_of(VERCEL + "openai-error.1.chunks.txt"))
    assert tap.finish().error == events[-1].message
    data = body_of(RESP_STREAMS[1], 0)
    cut = data[: data.index(b"event: response.completed")]
    events = decode("responses", cut)
    assert (
        isinstance(events[-1], StreamError)
        and events[-1].status == 502
        and "before response.completed" in events[-1].message
    )
    assert not CODEC.stream_tap().finish().ended
    garbage = decode("responses", cut[:200] + b"\n\ndata: {not json}\n\n")
    assert isinstance(garbage[-1], StreamError) and "not valid JSON" in garbage[-1].message


# ---- encoding for a Responses client ------------------------------------------------------------


@pytest.mark.parametrize(("dialect", "path", "n"), SOURCES)
async def test_every_upstream_reencodes_in_openais_grammar_for_the_sdk(
    upstream: FakeUpstream, dialect: str, path: str, n: int
) -> None:
    events = decode(dialect, body_of(path, n))
    want, error = fold(copy.deepcopy(events))
    assert error is None
    data = encode(events, codex.turn1())
    check_grammar(wire_events(data))
    seen, final = await sdk_stream(upstream, data)
    assert final is not None and final.status == "completed"
    assert seen[-1].type == "response.completed"
    reasoning = [p for p in want.content if isinstance(p, Reasoning)]
    calls = [p for p in want.content if isinstance(p, ToolCall)]
    texts = "".join(p.text for p in want.content if isinstance(p, Text))
    assert [o.type for o in final.output if o.type != "message"] == [
        "reasoning" if isinstance(p, Reasoning) else "function_call"
        for p in want.content
        if isinstance(p, Reasoning | ToolCall)
    ]
    assert [r.summary[0].text if r.summary else "" for r in final.output if r.type == "reasoning"] == [
        r.text for r in reasoning
    ]
    assert all(
        r.encrypted_content and r.encrypted_content.startswith("dgm1.") for r in final.output if r.type == "reasoning"
    )
    assert [(c.call_id, c.name, c.arguments) for c in final.output if c.type == "function_call"] == [
        (c.id, c.name, c.arguments or "{}") for c in calls
    ]
    assert final.output_text == texts
    assert final.usage.input_tokens == want.usage.prompt_tokens
    assert final.usage.output_tokens == want.usage.output_tokens
    assert final.usage.input_tokens_details.cached_tokens == want.usage.cache_read_tokens
    assert final.usage.output_tokens_details.reasoning_tokens == (want.usage.reasoning_tokens or 0)
    assert final.usage.total_tokens == want.usage.total_tokens
    deltas = [e.delta for e in seen if e.type == "response.function_call_arguments.delta"]
    assert "".join(deltas) == "".join(c.arguments or "{}" for c in calls)  # streamed, not just at the end


async def test_reasoning_is_raw_text_when_the_client_asked_no_summaries(upstream: FakeUpstream) -> None:
    events = decode("openai", body_of(DEEPSEEK_TOOLS))
    want, _ = fold(copy.deepcopy(events))
    body = {"model": "m", "input": "x"}  # no reasoning.summary, no include
    data = encode(events, body)
    wire = wire_events(data)
    check_grammar(wire)
    assert "response.reasoning_text.delta" in {e["type"] for e in wire}
    assert "response.reasoning_summary_text.delta" not in {e["type"] for e in wire}
    _, final = await sdk_stream(upstream, data)
    item = final.output[0]
    assert item.type == "reasoning" and item.summary == [] and item.encrypted_content is None
    assert item.content is not None and item.content[0].text == want.content[0].text  # type: ignore[union-attr]


async def test_max_tokens_ends_incomplete_with_the_partial_output(upstream: FakeUpstream) -> None:
    data = encode(decode("anthropic", body_of(ANT_INCOMPLETE)), {"model": "m", "input": "x"})
    wire = wire_events(data)
    check_grammar(wire)
    assert wire[-1]["type"] == "response.incomplete"
    assert wire[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    seen, final = await sdk_stream(upstream, data)
    assert final is None and seen[-1].type == "response.incomplete"
    assert [o.type for o in seen[-1].response.output] == ["message", "function_call"]


async def test_an_upstream_failure_mid_stream_is_response_failed(upstream: FakeUpstream) -> None:
    events = decode("openai", body_of(OPENROUTER_ERROR))
    assert isinstance(events[-1], StreamError)
    data = encode(events, codex.turn1())
    wire = wire_events(data)
    check_grammar(wire)
    failed = wire[-1]
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["message"] == events[-1].message
    done = [e["item"]["type"] for e in wire if e["type"] == "response.output_item.done"]
    assert done == ["reasoning"] and failed["response"]["output"][0]["type"] == "reasoning"
    anthropic = body_of(ANT_THINKING, 0)
    cut = decode("anthropic", anthropic[: anthropic.index(b'"input_json_delta"') + 60])  # cut inside the call
    assert isinstance(cut[-1], StreamError)
    cut_wire = wire_events(encode(cut, codex.turn1()))
    check_grammar(cut_wire)
    added = [e["item"]["type"] for e in cut_wire if e["type"] == "response.output_item.added"]
    done = [e["item"]["type"] for e in cut_wire if e["type"] == "response.output_item.done"]
    assert added == ["reasoning", "function_call"] and done == ["reasoning"]  # half a call never runs
    seen, final = await sdk_stream(upstream, data)
    assert final is None and seen[-1].type == "response.failed"
    assert seen[-1].response.error.message == events[-1].message
    enc = CODEC.stream_encoder(context=CODEC.reply_context({"model": "m"}))
    early = wire_events(enc.encode_error(UpstreamError("connection refused")))
    assert [e["type"] for e in early] == ["response.created", "response.in_progress", "response.failed"]
    assert early[-1]["response"]["error"] == {"code": "upstream_error", "message": "connection refused"}
    assert enc.encode(MessageStop()) == b""


def test_parts_with_no_responses_form_are_skipped() -> None:
    events: list[Event] = [
        MessageStart("m1", "model"),
        PartStart(0, Opaque("anthropic", {"type": "server_tool_use", "id": "x"})),
        PartStop(0),
        PartStart(1, Text("")),
        TextDelta(1, "hi"),
        TextDelta(7, "a delta for no part"),
        PartStop(1),
        MessageDelta("end_turn", usage=Usage(1, 1)),
        MessageStop(),
    ]
    wire = wire_events(encode(events, {}))
    check_grammar(wire)
    assert [i["type"] for i in wire[-1]["response"]["output"]] == ["message"]
    assert wire[-1]["response"]["output"][0]["content"][0]["text"] == "hi"


def test_a_tap_reads_usage_even_when_the_final_event_outgrows_its_tail() -> None:
    text = "lorem ipsum dolor " * (TAIL // 9)
    events: list[Event] = [
        MessageStart("m", "model"),
        PartStart(0, Text("")),
        TextDelta(0, text),
        PartStop(0),
        MessageDelta("max_tokens", usage=Usage(input_tokens=12, output_tokens=34000, cache_read_tokens=100)),
        MessageStop(),
    ]
    data = encode(events, {})
    assert len(data.rsplit(b"\n\n", 2)[-2]) > TAIL  # the final event alone is bigger than the tail
    tap = CODEC.stream_tap()
    for i in range(0, len(data), 4096):
        tap.feed(data[i : i + 4096])
    tally = tap.finish()
    assert tally.ended and tally.usage == Usage(12, 34000, 100, 0, 0) and tally.stop_reason == "max_tokens"


# ---- reasoning survives the round trip ----------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "path", "n", "origin"),
    [
        ("anthropic", ANT_THINKING, 0, "kimi"),  # thinking + signature
        ("anthropic", ANT_REDACTED, 0, "anthropic"),  # redacted thinking
        ("openai", DEEPSEEK_TOOLS, 0, "deepseek"),  # reasoning_content + parallel calls
        ("openai", KIMI_OPENROUTER, 0, "openrouter"),  # reasoning_details
        ("openai", KIMI_AVIAN, 0, "moonshot"),  # reasoning_content + details, text around the call
    ],
)
async def test_reasoning_comes_back_byte_for_byte_through_codex(
    upstream: FakeUpstream, dialect: str, path: str, n: int, origin: str
) -> None:
    events = decode(dialect, body_of(path, n))
    want, _ = fold(copy.deepcopy(events))
    first = codex.turn1()
    _, final = await sdk_stream(upstream, encode(events, first, origin))
    output = [item.model_dump(mode="json", exclude_none=True) for item in final.output]
    turn2 = json.loads(json.dumps(codex.turn2(first, output)))  # as Codex sends it over the wire
    req = CODEC.decode_request(turn2)
    assert open_sealed(req, SEALER) == 0
    got = [p for p in req.messages[2].content if isinstance(p, Reasoning)]
    expected = [p for p in want.content if isinstance(p, Reasoning)]
    assert [(p.text, p.signature, p.redacted, p.details) for p in got] == [
        (p.text, p.signature, p.redacted, p.details) for p in expected
    ]
    assert all(p.origin == origin for p in got)
    wire = dialects.get(dialect).encode_request(req)
    if dialect == "anthropic":
        blocks = [b for b in wire["messages"][1]["content"] if b["type"] in ("thinking", "redacted_thinking")]
        assert [b.get("signature") or b.get("data") for b in blocks] == [p.signature or p.redacted for p in expected]
        assert [b.get("thinking") for b in blocks if b["type"] == "thinking"] == [
            p.text for p in expected if not p.redacted
        ]
    else:
        assistant = next(m for m in wire["messages"] if m["role"] == "assistant")
        assert assistant["reasoning_content"] == "\n\n".join(p.text for p in expected)
        details = [d for p in expected for d in p.details or []]
        assert assistant.get("reasoning_details", []) == details
        calls = [p for p in want.content if isinstance(p, ToolCall)]
        assert [(c["id"], c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
            (c.id, c.arguments) for c in calls
        ]


async def test_a_tampered_or_foreign_blob_is_ignored_with_a_note(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    events = decode("anthropic", body_of(ANT_THINKING, 0))
    want, _ = fold(copy.deepcopy(events))
    first = codex.turn1()
    _, final = await sdk_stream(upstream, encode(events, first))
    output = [item.model_dump(mode="json", exclude_none=True) for item in final.output]
    blob = output[0]["encrypted_content"]
    output[0]["encrypted_content"] = blob[:40] + ("x" if blob[40] != "x" else "y") + blob[41:]
    req = CODEC.decode_request(codex.turn2(first, output))
    with caplog.at_level(logging.WARNING, logger="dragoman.dialects.responses"):
        assert open_sealed(req, SEALER) == 1
    assert "did not open" in caplog.text
    part = req.messages[2].content[0]
    assert isinstance(part, Reasoning) and part.signature is None and part.text == want.content[0].text  # type: ignore[union-attr]
    thinking = dialects.get("anthropic").encode_request(req)["messages"][1]["content"][0]
    assert thinking == {"type": "thinking", "thinking": part.text, "signature": ""}  # unsigned, as a chat client's
    output[0]["encrypted_content"] = blob
    foreign = CODEC.decode_request(codex.turn2(first, output))
    assert open_sealed(foreign, AesGcmSealer(b"another deployment")) == 1
    assert open_sealed(CODEC.decode_request(codex.turn2(first, output)), SEALER) == 0


async def test_openais_own_reasoning_goes_back_to_it_verbatim(upstream: FakeUpstream) -> None:
    events = decode("responses", body_of(RESP_THINKING, 0))
    want, _ = fold(copy.deepcopy(events))
    original = [p for p in want.content if isinstance(p, Reasoning)]
    first = codex.turn1("openai/gpt-5")
    _, final = await sdk_stream(upstream, encode(events, first, "openai"))
    output = [item.model_dump(mode="json", exclude_none=True) for item in final.output]
    turn2 = codex.turn2(first, output)
    req = CODEC.decode_request(copy.deepcopy(turn2))
    open_sealed(req, SEALER)
    body = CODEC.encode_request(req)
    sent = [i for i in body["input"] if i["type"] == "reasoning"]
    assert [i["encrypted_content"] for i in sent] == [p.signature for p in original]
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    # untranslated (Responses client, Responses upstream): the sealed items are unsealed in place
    assert unseal_passthrough(turn2, SEALER)
    items = [i for i in turn2["input"] if i.get("type") == "reasoning"]
    assert [i["encrypted_content"] for i in items] == [p.signature for p in original]
    assert not any("id" in i for i in items)  # the gateway's ids mean nothing to OpenAI
    assert not unseal_passthrough(turn2, SEALER)  # nothing left to change


async def test_passthrough_removes_reasoning_openai_cannot_take(upstream: FakeUpstream) -> None:
    events = decode("anthropic", body_of(ANT_THINKING, 0))
    first = codex.turn1("openai/gpt-5.3-codex")
    _, final = await sdk_stream(upstream, encode(events, first))
    output = [item.model_dump(mode="json", exclude_none=True) for item in final.output]
    turn2 = codex.turn2(first, output)
    before = [i.get("type") for i in turn2["input"]]
    assert unseal_passthrough(turn2, SEALER)
    after = [i.get("type") for i in turn2["input"]]
    assert before.count("reasoning") == 1 and after.count("reasoning") == 0
    assert len(after) == len(before) - 1
    assert not any("id" in i for i in turn2["input"])  # ids the gateway minted, unknown to OpenAI
    untouched = codex.turn1("openai/gpt-5.3-codex")
    assert not unseal_passthrough(untouched, SEALER) and untouched == codex.turn1("openai/gpt-5.3-codex")
