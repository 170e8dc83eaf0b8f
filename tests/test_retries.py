"""Retries on one target, against a fault-injecting upstream on loopback, through both fronts'
official SDKs, streamed and not: which failures are retried (connection refused, reset before the
head, first-byte timeout, 408/429/5xx/529) and which are not (400/401/403/404), the upstream's hints
(retry-after in seconds or as an HTTP date, retry-after-ms, x-should-retry), the capped backoff, and
never a retry once a byte reached the client. Every test counts the requests the upstream saw."""

from __future__ import annotations

import email.utils
import itertools
import time

import anthropic
import openai
import pytest

from dragoman.config import parse
from dragoman.trip.policy import backoff
from tests.conftest import FakeUpstream, GatewayFactory, Reply, Seen
from tests.rawserver import Peer, reply, settle
from tests.resil_helpers import (
    FRONTS,
    MODEL,
    SSE,
    USER,
    anthropic_events,
    ask,
    closed_port,
    error,
    ok,
    openai_events,
    quick,
    refused,
)

RETRIED = (408, 429, 500, 502, 503, 504, 529)


def stamped(upstream: FakeUpstream, *replies: Reply) -> list[float]:
    """Queue `replies`; the returned list gets the arrival time of each request."""
    times: list[float] = []

    def at(r: Reply):  # type: ignore[no-untyped-def]
        def spec(seen: Seen) -> Reply:
            times.append(time.monotonic())
            return r

        return spec

    upstream.reply(*(at(r) for r in replies))
    return times


@pytest.mark.parametrize("status", RETRIED)
@pytest.mark.parametrize("front", FRONTS)
async def test_retryable_statuses_are_retried_until_an_answer(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, status: int
):
    upstream.reply(error(front, status), error(front, status), ok(front, False, "third time"))
    gw = await gateway(quick(upstream, retries=2))
    text, headers = await ask(gw.url, front, stream=False)
    assert text == "third time"
    assert len(upstream.seen) == 3
    assert headers["x-dragoman-attempts"] == "3" and headers["x-dragoman-provider"] == MODEL[front].split("/")[0]


@pytest.mark.parametrize("status", [429, 503, 529])
@pytest.mark.parametrize("front", FRONTS)
async def test_streams_are_retried_before_the_first_byte(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, status: int
):
    upstream.reply(error(front, status), ok(front, True, "streamed"))
    gw = await gateway(quick(upstream, retries=2))
    text, headers = await ask(gw.url, front, stream=True)
    assert text == "streamed"
    assert len(upstream.seen) == 2 and headers["x-dragoman-attempts"] == "2"


@pytest.mark.parametrize("front", FRONTS)
async def test_retries_run_out_into_the_last_error(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    upstream.default = error(front, 503, "still down")
    gw = await gateway(quick(upstream, retries=2))
    exc = await refused(gw.url, front, stream=False)
    assert exc.status_code == 503
    assert len(upstream.seen) == 3
    assert "still down" in str(exc) and "(3 attempts)" in str(exc)
    assert exc.response.headers["x-dragoman-attempts"] == "3"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("front", FRONTS)
async def test_client_errors_are_not_retried(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, stream: bool, status: int
):
    upstream.default = error(front, status, "no")
    gw = await gateway(quick(upstream, retries=2))
    exc = await refused(gw.url, front, stream)
    assert exc.status_code == status
    assert len(upstream.seen) == 1


@pytest.mark.parametrize("front", FRONTS)
async def test_connection_refused_is_retried_then_502(gateway: GatewayFactory, front: str):
    port = closed_port()
    cfg = quick(FakeUpstream(), retries=2)
    cfg["providers"]["up-openai"]["base_url"] = f"http://127.0.0.1:{port}/v1"
    cfg["providers"]["up-anthropic"]["base_url"] = f"http://127.0.0.1:{port}"
    cfg["providers"]["up-ollama"]["base_url"] = f"http://127.0.0.1:{port}"
    gw = await gateway(cfg)
    exc = await refused(gw.url, front, stream=False)
    assert exc.status_code == 502
    assert exc.response.headers["x-dragoman-attempts"] == "3"  # nobody listens: the attempts are the count
    assert exc.response.headers["x-dragoman-provider"] == MODEL[front].split("/")[0]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("front", FRONTS)
async def test_reset_before_the_head_is_retried_on_a_new_connection(
    serve, gateway: GatewayFactory, front: str, stream: bool
):
    body = ok(front, stream, "after the reset")
    payload = b"".join(body.body) if isinstance(body.body, list) else body.body

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        if len(peer.server.requests) == 1:
            return  # read the request, drop the connection before any byte of a reply
        peer.write(reply(payload, headers=f"Content-Type: {body.content_type}\r\n"))
        await peer.until_closed()

    s = await serve(handle)
    gw = await gateway(quick(s, retries=2))
    text, headers = await ask(gw.url, front, stream)
    assert text == "after the reset"
    assert len(s.requests) == 2 and len(s.peers) == 2  # the policy's retry, on a fresh connection
    assert headers["x-dragoman-attempts"] == "2"


async def test_reset_on_a_reused_connection_is_sent_again_only_as_the_policys_retry(serve, gateway: GatewayFactory):
    """The transport never re-sends on its own (test_upstream_faults proves it with retries off):
    with retries = 1 the lost POST goes out exactly twice, the second time as the policy's retry."""
    answer = ok("openai", False, "fine").body
    assert isinstance(answer, bytes)

    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            if len(peer.server.requests) == 2:
                return  # the second request, on the kept connection: dropped before its reply
            peer.write(reply(answer, headers="Content-Type: application/json\r\n"))

    s = await serve(handle)
    gw = await gateway(quick(s, retries=1))
    assert (await ask(gw.url, "openai", False))[0] == "fine"
    text, headers = await ask(gw.url, "openai", False)
    assert text == "fine" and headers["x-dragoman-attempts"] == "2"
    assert len(s.requests) == 3  # 1 + the lost one + its one retry


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("front", FRONTS)
async def test_first_byte_timeout_is_retried(serve, gateway: GatewayFactory, front: str, stream: bool):
    body = ok(front, stream, "eventually")
    payload = b"".join(body.body) if isinstance(body.body, list) else body.body

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        if len(peer.server.requests) == 1:
            await peer.until_closed()  # takes the request, never answers
            return
        peer.write(reply(payload, headers=f"Content-Type: {body.content_type}\r\n"))
        await peer.until_closed()

    s = await serve(handle)
    cfg = quick(s, retries=1)
    for provider in cfg["providers"].values():
        provider["first_byte_timeout"] = 0.3
    gw = await gateway(cfg)
    text, headers = await ask(gw.url, front, stream)
    assert text == "eventually"
    assert len(s.requests) == 2 and headers["x-dragoman-attempts"] == "2"
    assert await settle(lambda: s.open, 1) == 1  # the timed-out connection was closed


@pytest.mark.parametrize("front", FRONTS)
async def test_retry_after_seconds_is_waited(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    times = stamped(upstream, error(front, 429, **{"retry-after": "1"}), ok(front, False))
    gw = await gateway(quick(upstream, retries=1))
    assert (await ask(gw.url, front, False))[0] == "ok"
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95  # the backoff alone would be 10-20 ms


async def test_retry_after_as_an_http_date_is_waited(upstream: FakeUpstream, gateway: GatewayFactory):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s from now
    times = stamped(upstream, error("openai", 503, **{"retry-after": when}), ok("openai", False))
    gw = await gateway(quick(upstream, retries=1))
    assert (await ask(gw.url, "openai", False))[0] == "ok"
    assert times[1] - times[0] >= 0.9


@pytest.mark.parametrize("front", FRONTS)
async def test_retry_after_ms_wins_over_retry_after(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    # retry-after: 30 alone is above retry_after_max (3 s) and would go back to the client
    hints = {"retry-after-ms": "400", "retry-after": "30"}
    times = stamped(upstream, error(front, 429, **hints), ok(front, False))
    gw = await gateway(quick(upstream, retries=1))
    assert (await ask(gw.url, front, False))[0] == "ok"
    assert times[1] - times[0] >= 0.38


async def test_a_retry_after_that_is_not_a_number_or_a_date_is_ignored(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(error("openai", 503, **{"retry-after": "soon"}), ok("openai", False, "fine"))
    gw = await gateway(quick(upstream, retries=1))
    text, headers = await ask(gw.url, "openai", False)
    assert text == "fine" and len(upstream.seen) == 2 and headers["x-dragoman-attempts"] == "2"


@pytest.mark.parametrize("front", FRONTS)
async def test_retry_after_above_the_max_goes_back_to_the_client(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str
):
    upstream.default = error(front, 429, "slow down", **{"retry-after": "60"})
    gw = await gateway(quick(upstream, retries=2))  # retry_after_max = 3
    exc = await refused(gw.url, front, stream=False)
    assert exc.status_code == 429 and len(upstream.seen) == 1
    assert exc.response.headers["retry-after"] == "60"  # the client's own SDK can wait it out


@pytest.mark.parametrize("front", FRONTS)
async def test_x_should_retry_false_is_not_retried(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    upstream.default = error(front, 503, "do not", **{"x-should-retry": "false"})
    gw = await gateway(quick(upstream, retries=2))
    exc = await refused(gw.url, front, stream=False)
    assert exc.status_code == 503 and len(upstream.seen) == 1
    assert exc.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("front", FRONTS)
async def test_x_should_retry_true_retries_a_status_that_is_not_retried(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str
):
    upstream.reply(error(front, 409, "busy", **{"x-should-retry": "true"}), ok(front, False, "now"))
    gw = await gateway(quick(upstream, retries=2))
    assert (await ask(gw.url, front, False))[0] == "now"
    assert len(upstream.seen) == 2


def test_backoff_doubles_with_jitter_up_to_its_cap():
    server = parse({"server": {"retry_backoff": 0.5, "retry_backoff_max": 2, "retry_after_max": 10}}).server
    for retry, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 2.0), (10, 2.0)]:
        waits = [backoff(server, retry, None) for _ in range(200)]
        assert all(w is not None and cap / 2 <= w <= cap for w in waits), (retry, min(waits), max(waits))  # type: ignore[operator]
        assert len(set(waits)) > 100  # jitter: no two clients in lockstep
    assert backoff(server, 0, 7.0) == 7.0  # the upstream's word
    assert backoff(server, 0, 11.0) is None  # more than the gateway waits


async def test_the_capped_backoff_is_what_the_retries_wait(upstream: FakeUpstream, gateway: GatewayFactory):
    times = stamped(upstream, *(error("openai", 503) for _ in range(3)), ok("openai", False))
    cfg = quick(upstream, retries=3)
    cfg["server"].update(retry_backoff=0.2, retry_backoff_max=0.3)
    gw = await gateway(cfg)
    assert (await ask(gw.url, "openai", False))[0] == "ok"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.095 and gaps[1] >= 0.145 and gaps[2] >= 0.145  # half the cap at least: 0.2, 0.3, 0.3


@pytest.mark.parametrize("front", FRONTS)
async def test_no_retry_once_a_byte_reached_the_client(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    first = (openai_events("Hel") if front == "openai" else anthropic_events("Hel"))[:-2]
    upstream.default = Reply(body=first, content_type=SSE, abort=True)
    gw = await gateway(quick(upstream, retries=2))
    got = ""
    if front == "openai":
        stream = await openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0).chat.completions.create(
            model=MODEL[front],
            messages=USER,  # type: ignore[arg-type]
            stream=True,
        )
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                got += "".join(c.delta.content or "" for c in chunk.choices)
    else:
        client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.APIStatusError):
            async with client.messages.stream(model=MODEL[front], max_tokens=10, messages=USER) as s:  # type: ignore[arg-type]
                async for text in s.text_stream:
                    got += text
    assert got == "Hel"
    assert len(upstream.seen) == 1
