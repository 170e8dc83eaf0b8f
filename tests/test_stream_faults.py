"""Faults inside a reply that already began, on the pass-through paths (same dialect, bytes as they
come): a stream cut in the middle of an SSE line or event leaves no partial event before the
gateway's error event (so the official SDKs raise a clean API error, never a JSON error, and never
end silently); a provider key an upstream echoes inside a mid-stream error event is redacted, also
when it is split across two writes; and a 200 whose body is not JSON is a 502 on every path, so the
client never gets a 200 it cannot parse. Every test counts the requests the upstream saw."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import openai
import pytest

from tests.conftest import FakeUpstream, GatewayFactory, Reply
from tests.ops_helpers import openai_reply
from tests.resil_helpers import (
    MODEL,
    SSE,
    USER,
    ant,
    anthropic_events,
    anthropic_message,
    oai,
    openai_events,
    quick,
    refused,
)

OPENAI_KEY, ANTHROPIC_KEY = "sk-up-openai-secret", "sk-ant-up-secret"  # providers_at's


def cut(events: list[bytes], keep: int, partial: bytes) -> list[bytes]:
    return [*events[:keep], partial]


# the middle of a data line; the middle of an event (its `event:` line out, its data not yet)
OPENAI_CUTS = {
    "mid-line": cut(openai_events("Hel"), 1, b'data: {"id":"c","object":"chat.comp'),
    "mid-event": cut(
        openai_events("Hel"),
        1,
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}\n',
    ),
}
ANTHROPIC_CUTS = {
    "mid-line": cut(anthropic_events("Hel"), 3, b'event: content_block_delta\ndata: {"type":"content_blo'),
    "mid-event": cut(anthropic_events("Hel"), 3, b"event: content_block_delta\n"),
}


async def raw_stream(url: str, front: str) -> bytes:
    if front == "openai":
        path, body = "/v1/chat/completions", {"model": MODEL[front], "messages": USER, "stream": True}
    else:
        path, body = "/v1/messages", {"model": MODEL[front], "max_tokens": 10, "messages": USER, "stream": True}
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as r:
        assert r.status == 200
        return await r.read()


# with no sink at all the pass-through tap only looks for the stream's end (usage is read for
# nobody): a cut stream must still end in an error event
SINKS = {"sinks": {}, "no sinks": {"usage_store": "off", "access_log": False, "metrics": False}}


def events(raw: bytes) -> list[list[str]]:
    """The stream's events, each a list of its lines (every event must end in a blank line)."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-200:]
    return [block.split("\n") for block in text[:-2].split("\n\n")]


@pytest.mark.parametrize("sinks", list(SINKS))
@pytest.mark.parametrize("how", ["abort", "eof"])
@pytest.mark.parametrize("where", list(OPENAI_CUTS))
async def test_openai_stream_cut_mid_event_ends_in_a_clean_error(
    upstream: FakeUpstream, gateway: GatewayFactory, where: str, how: str, sinks: str
):
    upstream.default = Reply(body=OPENAI_CUTS[where], content_type=SSE, abort=how == "abort")
    gw = await gateway(quick(upstream, **SINKS[sinks]))
    assert bool(gw.gateway.sinks) == (sinks == "sinks")
    raw = await raw_stream(gw.url, "openai")
    parsed = events(raw)
    for lines in parsed:  # each event whole and parseable: no partial line glued to the error
        for line in lines:
            assert line.startswith("data: ")
            json.loads(line[6:])
    assert "error" in json.loads(parsed[-1][-1][6:])
    assert len(upstream.seen) == 1  # a byte reached the client: never retried

    stream = await oai(gw.url).chat.completions.create(model=MODEL["openai"], messages=USER, stream=True)  # type: ignore[arg-type]
    got = ""
    with pytest.raises(openai.APIError) as err:
        async for chunk in stream:
            got += "".join(c.delta.content or "" for c in chunk.choices)
    assert got == "Hel" and "up-openai" in err.value.message
    assert len(upstream.seen) == 2


@pytest.mark.parametrize("sinks", list(SINKS))
@pytest.mark.parametrize("how", ["abort", "eof"])
@pytest.mark.parametrize("where", list(ANTHROPIC_CUTS))
async def test_anthropic_stream_cut_mid_event_ends_in_a_clean_error(
    upstream: FakeUpstream, gateway: GatewayFactory, where: str, how: str, sinks: str
):
    upstream.default = Reply(body=ANTHROPIC_CUTS[where], content_type=SSE, abort=how == "abort")
    gw = await gateway(quick(upstream, **SINKS[sinks]))
    assert bool(gw.gateway.sinks) == (sinks == "sinks")
    raw = await raw_stream(gw.url, "anthropic")
    parsed = events(raw)
    for lines in parsed:  # `event:` and `data:` lines, the data JSON: nothing half-written
        kinds = [line.split(":", 1)[0] for line in lines]
        assert kinds == ["event", "data"], lines
        json.loads(lines[1][6:])
    assert parsed[-1][0] == "event: error" and "message_stop" not in raw.decode()
    assert len(upstream.seen) == 1

    got = ""
    with pytest.raises(anthropic.APIStatusError) as err:
        async with ant(gw.url).messages.stream(model=MODEL["anthropic"], max_tokens=10, messages=USER) as s:  # type: ignore[arg-type]
            async for text in s.text_stream:
                got += text
    assert got == "Hel" and "up-anthropic" in str(err.value)
    assert len(upstream.seen) == 2


@pytest.mark.parametrize("front", ["openai", "anthropic"])
async def test_a_whole_stream_with_no_sink_passes_through_as_sent(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str
):
    sent = openai_events("Hello") if front == "openai" else anthropic_events("Hello")
    upstream.default = Reply(body=sent, content_type=SSE)
    gw = await gateway(quick(upstream, **SINKS["no sinks"]))
    assert not gw.gateway.sinks
    assert await raw_stream(gw.url, front) == b"".join(sent)  # its end seen: no error event added
    assert len(upstream.seen) == 1


def split(data: bytes, secret: str) -> list[bytes]:
    """`data` in two writes, the cut inside `secret`."""
    at = data.index(secret.encode()) + len(secret) // 2
    return [data[:at], data[at:]]


@pytest.mark.parametrize("whole", [True, False])
async def test_a_key_echoed_in_an_openai_error_event_is_redacted(
    upstream: FakeUpstream, gateway: GatewayFactory, whole: bool
):
    bad = b'data: {"error":{"message":"upstream failed for key %s","type":"server_error"}}\n\n' % OPENAI_KEY.encode()
    upstream.default = Reply(
        body=[openai_events("Hel")[0], *([bad] if whole else split(bad, OPENAI_KEY))], content_type=SSE
    )
    gw = await gateway(quick(upstream))
    raw = await raw_stream(gw.url, "openai")
    assert OPENAI_KEY.encode() not in raw and OPENAI_KEY[:8].encode() not in raw.split(b"Hel", 1)[1]
    assert b"[redacted]" in raw
    stream = await oai(gw.url).chat.completions.create(model=MODEL["openai"], messages=USER, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIError) as err:
        async for _ in stream:
            pass
    assert OPENAI_KEY not in err.value.message and "[redacted]" in err.value.message


@pytest.mark.parametrize("whole", [True, False])
async def test_a_key_echoed_in_an_anthropic_error_event_is_redacted(
    upstream: FakeUpstream, gateway: GatewayFactory, whole: bool
):
    bad = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"key %s is overloaded"}}\n\n'
        % (ANTHROPIC_KEY.encode())
    )
    head = anthropic_events("Hel")[:3]
    upstream.default = Reply(body=[*head, *([bad] if whole else split(bad, ANTHROPIC_KEY))], content_type=SSE)
    gw = await gateway(quick(upstream))
    raw = await raw_stream(gw.url, "anthropic")
    assert ANTHROPIC_KEY.encode() not in raw and b"[redacted]" in raw
    with pytest.raises(anthropic.APIStatusError) as err:
        async with ant(gw.url).messages.stream(model=MODEL["anthropic"], max_tokens=10, messages=USER) as s:  # type: ignore[arg-type]
            await s.get_final_message()
    assert ANTHROPIC_KEY not in str(err.value) and "[redacted]" in str(err.value)


NOT_JSON = {
    "html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "truncated": b'{"id":"x","object":"chat.completion","choices":[{"index":0,"mess',
    "empty": b"",
}


@pytest.mark.parametrize("body", list(NOT_JSON))
@pytest.mark.parametrize(
    ("front", "model"),
    [
        ("openai", "up-openai/m"),  # same dialect: bytes passed through
        ("anthropic", "up-anthropic/m"),
        ("openai", "up-anthropic/m"),  # translated
        ("anthropic", "up-openai/m"),
    ],
)
@pytest.mark.parametrize("sinks", list(SINKS))
async def test_a_200_that_is_not_json_is_502_on_every_path(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, model: str, body: str, sinks: str
):
    upstream.default = Reply(body=NOT_JSON[body], content_type="text/html" if body == "html" else "application/json")
    gw = await gateway(quick(upstream, retries=0, **SINKS[sinks]))
    exc = await refused(gw.url, front, False, model=model)
    assert exc.status_code == 502
    assert "not JSON" in str(exc) or "not a JSON object" in str(exc)
    assert len(upstream.seen) == 1


ERROR_200 = {
    "openai": {"error": {"message": "the model is overloaded right now", "type": "server_error"}},
    "anthropic": {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "the model is overloaded right now"},
    },
}


@pytest.mark.parametrize("sinks", list(SINKS))
@pytest.mark.parametrize("front", ["openai", "anthropic"])
async def test_an_error_envelope_in_a_same_dialect_200_is_a_502_naming_it(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, sinks: str
):
    # with no sink the body is not read for usage, but an error in it is still read
    upstream.default = Reply(body=json.dumps(ERROR_200[front]).encode())
    gw = await gateway(quick(upstream, retries=0, **SINKS[sinks]))
    exc = await refused(gw.url, front, False)
    assert exc.status_code == 502 and "overloaded right now" in str(exc)
    assert len(upstream.seen) == 1


@pytest.mark.parametrize("front", ["openai", "anthropic"])
async def test_a_same_dialect_answer_with_no_sink_passes_as_sent(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str
):
    answer = openai_reply() if front == "openai" else anthropic_message()
    upstream.default = Reply(body=answer)
    gw = await gateway(quick(upstream, retries=0, **SINKS["no sinks"]))
    path, body = ("/v1/chat/completions", {"model": MODEL[front], "messages": USER})
    if front == "anthropic":
        path, body = "/v1/messages", {"model": MODEL[front], "max_tokens": 10, "messages": USER}
    async with aiohttp.ClientSession() as s, s.post(gw.url + path, json=body) as r:
        assert r.status == 200 and await r.read() == answer
        assert r.headers["x-dragoman-attempts"] == "1"
    assert len(upstream.seen) == 1
