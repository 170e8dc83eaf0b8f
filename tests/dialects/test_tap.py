"""The pass-through taps on streams longer than what they keep: counts, end markers and the head
survive the drops, whatever the chunking (markers split across chunks included)."""

from __future__ import annotations

import json
import random

import pytest

from dragoman.dialects.anthropic.tally import AnthropicStreamTap
from dragoman.dialects.base import Tally
from dragoman.dialects.openai.tally import OpenAIStreamTap
from dragoman.dialects.tap import KEEP, ByteTap


def _sse(obj: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(obj, separators=(",", ":")) + "\n\n").encode()


def _chunked(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, at = [], 0
    while at < len(data):
        n = rng.choice((1, 7, 64, 900, 5000))
        out.append(data[at : at + n])
        at += n
    return out


def openai_stream(calls: int, filler: int) -> bytes:
    parts = []
    for i in range(calls):
        parts.append(_sse({"choices": [{"index": 0, "delta": {"content": "x" * filler}, "finish_reason": None}]}))
        call = {"index": i, "id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": ""}}
        parts.append(_sse({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}))
    parts.append(_sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": None}))
    parts.append(_sse({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}}))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_openai_tap_counts_every_call_of_a_stream_far_longer_than_it_keeps(seed: int) -> None:
    data = openai_stream(calls=300, filler=2000)
    assert len(data) > 5 * KEEP
    tap = OpenAIStreamTap()
    for chunk in _chunked(data, seed):
        tap.feed(chunk)
    tally = tap.finish()
    assert tally.tool_calls == 300
    assert tally.ended
    assert tally.stop_reason == "tool_use"
    assert tally.usage is not None and (tally.usage.input_tokens, tally.usage.output_tokens) == (40, 9)


def test_openai_tap_without_an_end_is_not_ended() -> None:
    data = openai_stream(calls=100, filler=3000)
    cut = data.index(b'"finish_reason":"tool_calls"')
    tap = OpenAIStreamTap()
    for chunk in _chunked(data[:cut], 4):
        tap.feed(chunk)
    tally = tap.finish()
    assert not tally.ended and tally.usage is None and tally.tool_calls == 100


def test_anthropic_tap_keeps_message_start_from_the_head_of_a_long_stream() -> None:
    usage = {"input_tokens": 11, "cache_read_input_tokens": 5, "output_tokens": 1}
    parts = [_sse({"type": "message_start", "message": {"id": "m", "usage": usage}}, "message_start")]
    for i in range(50):
        block = {"type": "tool_use", "id": f"t{i}", "name": "f", "input": {}}
        parts.append(_sse({"type": "content_block_start", "index": i, "content_block": block}, "content_block_start"))
        delta = {"type": "input_json_delta", "partial_json": "y" * 4000}
        parts.append(_sse({"type": "content_block_delta", "index": i, "delta": delta}, "content_block_delta"))
    end = {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 77}}
    parts.append(_sse(end, "message_delta"))
    parts.append(_sse({"type": "message_stop"}, "message_stop"))
    data = b"".join(parts)
    assert len(data) > 2 * KEEP
    tap = AnthropicStreamTap()
    for chunk in _chunked(data, 5):
        tap.feed(chunk)
    tally = tap.finish()
    assert tally.tool_calls == 50 and tally.ended and tally.stop_reason == "tool_use"
    assert tally.usage is not None
    assert (tally.usage.input_tokens, tally.usage.cache_read_tokens, tally.usage.output_tokens) == (11, 5, 77)


def test_one_line_longer_than_what_is_kept_is_cut_and_its_tail_starts_after_it() -> None:
    tap = ByteTap((b"END",), (b"M",), note=b"NOTE")
    tap.feed(b"data: NOTE first\n")
    tap.feed(b"data: " + b"z" * (3 * KEEP))
    tap.feed(b"\ndata: M END\n")
    assert tap.tail() == b"data: M END\n"
    assert tap.whole() is None
    assert tap.counted == 1 and tap.ended
    assert tap.noted is not None and tap.noted.startswith(b"NOTE first")
    assert tap.head().startswith(b"data: NOTE first\n")


def _spaced(obj: dict) -> bytes:
    return ("data: " + json.dumps(obj) + "\n\n").encode()  # json.dumps' default style: `": "`


def _content(text: str, index: int = 0) -> dict:
    return {"choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}], "usage": None}


ENDINGS = {
    # (the events after some content, what the tap must read: usage fields, stop reason, error)
    "usage chunk": (
        [
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
            {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}},
        ],
        (30, 5, 0, None),
        "end_turn",
        None,
    ),
    "moonshot usage in the choice": (
        [
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "finish_reason": "length",
                        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "cached_tokens": 3},
                    }
                ]
            }
        ],
        (6, 4, 3, None),
        "max_tokens",
        None,
    ),
    "deepseek cache hit and reasoning": (
        [
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 50,
                    "completion_tokens": 7,
                    "prompt_cache_hit_tokens": 20,
                    "completion_tokens_details": {"reasoning_tokens": 3},
                },
            },
        ],
        (30, 7, 20, 3),
        "end_turn",
        None,
    ),
    "openai cached details": (
        [
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {
                "choices": [],
                "usage": {"prompt_tokens": 100, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 64}},
            },
        ],
        (36, 2, 64, None),
        "tool_use",
        None,
    ),
    "choice 1 finishes last": (
        [
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            _content("more", index=1),
            {"choices": [{"index": 1, "delta": {}, "finish_reason": "length"}]},
            {"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 8}},
        ],
        (8, 8, 0, None),
        "end_turn",
        None,
    ),
    "an error event at the end": (
        [{"error": {"message": "overloaded", "type": "server_error"}}],
        None,
        None,
        "overloaded",
    ),
    "a bool where a count goes": (
        [
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": True, "completion_tokens": 3}},
        ],
        (0, 3, 0, None),
        "end_turn",
        None,
    ),
}


@pytest.mark.parametrize("style", ["compact", "spaced"])
@pytest.mark.parametrize("name", list(ENDINGS))
@pytest.mark.parametrize("filler", [1, 40])
def test_openai_tap_reads_every_kind_of_ending_in_either_json_style(name: str, style: str, filler: int) -> None:
    """The usual ending is read from the back; anything else falls back to every line: the result
    is the same either way."""
    events, usage, stop, error = ENDINGS[name]
    frame = (lambda o: _sse(o)) if style == "compact" else _spaced
    data = b"".join(frame(_content("word " * 20)) for _ in range(filler))
    data += b"".join(frame(e) for e in events) + b"data: [DONE]\n\n"
    tap = OpenAIStreamTap()
    for chunk in _chunked(data, filler):
        tap.feed(chunk)
    tally = tap.finish()
    got = tally.usage
    assert (
        None if got is None else (got.input_tokens, got.output_tokens, got.cache_read_tokens, got.reasoning_tokens)
    ) == usage
    assert tally.stop_reason == stop
    assert tally.error == error
    assert tally.ended


@pytest.mark.parametrize("style", ["compact", "spaced"])
def test_tool_calls_are_counted_in_the_json_style_of_the_stream(style: str) -> None:
    """Only the stream's own style is searched for; a stream in either style counts every call."""
    frame = (lambda o: _sse(o)) if style == "compact" else _spaced
    parts = [frame(_content("looking"))]
    for i in range(5):
        call = {"index": i, "id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": ""}}
        parts.append(frame({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}))
        parts.append(
            frame({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": "{}"}}]}}]})
        )
    parts.append(frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    parts.append(b"data: [DONE]\n\n")
    tap = OpenAIStreamTap()
    for chunk in _chunked(b"".join(parts), 5):
        tap.feed(chunk)
    assert tap.finish().tool_calls == 5

    dump = (lambda o: json.dumps(o, separators=(",", ":"))) if style == "compact" else json.dumps
    events = [("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 3}}})]
    for i in range(3):
        block = {"type": "tool_use", "id": f"t{i}", "name": "f", "input": {}}
        events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": block}))
    events.append(("message_stop", {"type": "message_stop"}))
    anthropic = AnthropicStreamTap()
    anthropic.feed(b"".join(f"event: {e}\ndata: {dump(o)}\n\n".encode() for e, o in events))
    assert anthropic.finish().tool_calls == 3


ANTHROPIC_ENDINGS: dict[str, list[tuple[str, dict]]] = {
    "the usual": [
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
        ),
    ],
    "two deltas, the first with a field the last lacks": [
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 4, "input_tokens": 30}}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 8}},
        ),
    ],
    "a null in the delta's usage": [
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5, "x": None}},
        ),
    ],
    "compaction iterations": [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {
                    "output_tokens": 3,
                    "iterations": [{"input_tokens": 10, "output_tokens": 2}, {"input_tokens": 20, "output_tokens": 3}],
                },
            },
        ),
    ],
    "an error after the delta": [
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
        ),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ],
    "no delta at all": [],
}


@pytest.mark.parametrize("events", ["named", "data only", "crlf"])
@pytest.mark.parametrize("style", ["compact", "spaced"])
@pytest.mark.parametrize("name", list(ANTHROPIC_ENDINGS))
def test_anthropic_tap_reads_the_usual_ending_as_it_reads_every_line(
    name: str, style: str, events: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual stream is read with two searches and two typed decodes; the result is the one the
    full reading of every event gives, on whatever the ending is."""
    dump = (lambda o: json.dumps(o, separators=(",", ":"))) if style == "compact" else json.dumps
    nl = "\r\n" if events == "crlf" else "\n"

    def frame(kind: str, obj: dict) -> bytes:
        head = "" if events == "data only" else f"event: {kind}{nl}"
        return f"{head}data: {dump(obj)}{nl}{nl}".encode()

    usage = {"input_tokens": 12, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2, "output_tokens": 1}
    parts = [frame("message_start", {"type": "message_start", "message": {"id": "m", "content": [], "usage": usage}})]
    parts += [frame("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"text": "hi"}})] * 3
    parts += [frame(kind, obj) for kind, obj in ANTHROPIC_ENDINGS[name]]
    parts.append(frame("message_stop", {"type": "message_stop"}))
    data = b"".join(parts)

    def read() -> tuple[object, ...]:
        tap = AnthropicStreamTap()
        for chunk in _chunked(data, 3):
            tap.feed(chunk)
        t = tap.finish()
        return (t.ended, t.stop_reason, t.error, t.tool_calls, t.usage)

    usual: list[bool] = []
    original = AnthropicStreamTap._usual

    def recorded(self: AnthropicStreamTap, tally: Tally) -> bool:
        usual.append(original(self, tally))
        return usual[-1]

    monkeypatch.setattr(AnthropicStreamTap, "_usual", recorded)
    quick = read()
    # the usual endings take the quick reading (so the comparison below compares two readings)
    assert usual == [name in ("the usual", "a null in the delta's usage", "compaction iterations")]
    monkeypatch.setattr(AnthropicStreamTap, "_usual", lambda self, tally: False)
    assert quick == read()
    assert quick[4] is not None  # message_start's usage, at least
