"""Cooldowns: after `cooldown_after` consecutive failures a target is skipped while another of its
route is healthy; when `cooldown` seconds are over exactly one probe request goes to it (a success
makes it healthy again, a failure cools it again) while the others keep skipping it. Failures of
the request (a bad request, a prompt too long for the model) are not the upstream's and cool
nothing. (A cooldown one instance saw being honoured by another, through Redis, is proven in
test_instances.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import FakeUpstream, GatewayFactory, Reply
from tests.resil_helpers import FRONTS, ask, error, ok, refused
from tests.test_fallbacks import overflow_config, routed

COOLDOWN = 0.5


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


def cooling(first: str, other: str, dialect: str = "openai", after: int = 2) -> dict[str, Any]:
    cfg = routed(first, other, dialect)
    cfg["providers"]["a"].update(cooldown_after=after, cooldown=COOLDOWN)
    return cfg


async def until_over(gw: Any) -> None:
    """Until no cooldown is left on the gateway's board."""
    for _ in range(200):
        if not gw.gateway.health.board.active():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the cooldown never ended")


def slow(dialect: str, text: str, seconds: float = 0.4) -> Reply:
    """A whole answer that takes `seconds` to arrive (a probe still in flight)."""
    answer = ok(dialect, False, text).body
    assert isinstance(answer, bytes)
    return Reply(body=[answer[:10], answer[10:]], delay=seconds)


@pytest.mark.parametrize("front", FRONTS)
async def test_a_failing_target_is_skipped_then_probed_once(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory, front: str
):
    upstream.default = error(front, 503, "a is down")
    second.default = ok(front, False, "b")
    gw = await gateway(cooling(upstream.url, second.url, front))
    for _ in range(2):  # two consecutive failures: a cools down
        _, headers = await ask(gw.url, front, False, model="coder")
        assert headers["x-dragoman-attempts"] == "2"
    assert len(upstream.seen) == 2
    for _ in range(3):  # skipped while b is healthy: one attempt each
        _, headers = await ask(gw.url, front, False, model="coder")
        assert headers["x-dragoman-provider"] == "b" and headers["x-dragoman-attempts"] == "1"
    assert len(upstream.seen) == 2

    await until_over(gw)
    upstream.default = slow(front, "a is back")
    answers = await asyncio.gather(*(ask(gw.url, front, False, model="coder") for _ in range(5)))
    assert len(upstream.seen) == 3  # exactly one probe; the others went on skipping a
    assert sorted(text for text, _ in answers) == ["a is back"] + ["b"] * 4
    upstream.default = ok(front, False, "a")
    text, headers = await ask(gw.url, front, False, model="coder")  # healthy again: first in order
    assert text == "a" and headers["x-dragoman-provider"] == "a"
    assert len(upstream.seen) == 4 and len(second.seen) == 2 + 3 + 4


async def test_a_failed_probe_cools_the_target_again(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory
):
    upstream.default = error("openai", 502)
    second.default = ok("openai", False, "b")
    gw = await gateway(cooling(upstream.url, second.url, after=1))
    await ask(gw.url, "openai", False, model="coder")
    assert len(upstream.seen) == 1
    await until_over(gw)
    _, headers = await ask(gw.url, "openai", False, model="coder")  # the probe: fails, b answers
    assert headers["x-dragoman-attempts"] == "2" and len(upstream.seen) == 2
    for _ in range(3):
        await ask(gw.url, "openai", False, model="coder")
    assert len(upstream.seen) == 2  # cooled again at once (no need for cooldown_after failures)


async def test_the_only_target_is_tried_even_while_cooling(upstream: FakeUpstream, gateway: GatewayFactory):
    from tests.resil_helpers import quick

    cfg = quick(upstream, retries=0)
    cfg["providers"]["up-openai"].update(cooldown_after=1, cooldown=600)
    upstream.reply(error("openai", 503))
    upstream.default = ok("openai", False, "back")
    gw = await gateway(cfg)
    assert (await refused(gw.url, "openai", False)).status_code == 503
    assert gw.gateway.health.board.active()
    assert (await ask(gw.url, "openai", False))[0] == "back"  # nothing else to try: not refused unasked
    assert len(upstream.seen) == 2


async def test_a_bad_request_cools_nothing(upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory):
    upstream.default = error("openai", 400, "bad")
    second.default = ok("openai", False, "b")
    gw = await gateway(cooling(upstream.url, second.url, after=1))
    for _ in range(3):
        assert (await refused(gw.url, "openai", False, model="coder")).status_code == 400
    assert len(upstream.seen) == 3 and len(second.seen) == 0
    assert not gw.gateway.health.board.active()


async def test_a_prompt_too_long_cools_nothing(upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory):
    """A context-length error says the request is too long for that model, not that the upstream
    is failing: short requests must still go to it."""
    too_long = {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}
    upstream.reply(*(Reply(status=400, body=json.dumps(too_long).encode()) for _ in range(2)))
    upstream.default = ok("anthropic", False, "small")
    second.default = ok("anthropic", False, "big")
    cfg = overflow_config(upstream.url, second.url)
    cfg["providers"]["kimi"].update(cooldown_after=1, cooldown=600)
    gw = await gateway(cfg)
    for _ in range(2):
        assert (await ask(gw.url, "anthropic", False, model="coder"))[0] == "big"
    assert not gw.gateway.health.board.active()
    text, headers = await ask(gw.url, "anthropic", False, model="coder")
    assert text == "small" and headers["x-dragoman-provider"] == "kimi"
    assert len(upstream.seen) == 3 and len(second.seen) == 2


async def test_a_probe_answered_with_a_bad_request_ends_the_probe(
    upstream: FakeUpstream, second: FakeUpstream, gateway: GatewayFactory
):
    """The probe's request was the client's fault (a 400): the upstream answered, so the target is
    not left half-probed (skipped by everyone for the probe window)."""
    upstream.default = error("openai", 503)
    second.default = ok("openai", False, "b")
    gw = await gateway(cooling(upstream.url, second.url, after=1))
    await ask(gw.url, "openai", False, model="coder")
    await until_over(gw)
    upstream.reply(error("openai", 400, "bad"))
    upstream.default = ok("openai", False, "a")
    assert (await refused(gw.url, "openai", False, model="coder")).status_code == 400
    text, headers = await ask(gw.url, "openai", False, model="coder")
    assert text == "a" and headers["x-dragoman-provider"] == "a"
    assert len(upstream.seen) == 3
