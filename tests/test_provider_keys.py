"""A provider with several api_keys: requests are spread over them, a key answered 429 or 401 cools
down alone (the same request goes out at once with the next key, and later requests skip the
cooled one until its cooldown ends), and no key reaches a client. The tests compare the credential
the upstream saw with the configured ones by position, never printing a key."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import FakeUpstream, GatewayFactory, Reply, Seen
from tests.resil_helpers import FRONTS, ask, error, ok, quick, refused, sent_key

KEYS = {
    "openai": ["sk-openai-key-one-1111", "sk-openai-key-two-2222"],
    "anthropic": ["sk-ant-key-one-1111", "sk-ant-key-two-2222"],
}
PROVIDER = {"openai": "up-openai", "anthropic": "up-anthropic"}


def keyed(upstream: FakeUpstream, front: str, **provider: Any) -> dict[str, Any]:
    cfg = quick(upstream, retries=0)
    table = cfg["providers"][PROVIDER[front]]
    table.pop("api_key")
    table.update(api_keys=KEYS[front], **provider)
    return cfg


def which(upstream: FakeUpstream, front: str) -> list[int]:
    """The position of the key each request carried (-1: none of the configured ones)."""
    keys = KEYS[front]
    out = []
    for seen in upstream.seen:
        key = sent_key(seen.headers)
        out.append(keys.index(key) if key in keys else -1)
    return out


def by_key(front: str, refusals: dict[int, Reply], answer: Reply) -> Any:
    """An upstream that refuses the keys in `refusals` and answers the others."""

    def spec(seen: Seen) -> Reply:
        key = sent_key(seen.headers)
        for index, refusal in refusals.items():
            if key == KEYS[front][index]:
                return refusal
        return answer

    return spec


@pytest.mark.parametrize("front", FRONTS)
async def test_requests_are_spread_over_the_keys(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    upstream.default = ok(front, False)
    gw = await gateway(keyed(upstream, front))
    for _ in range(6):
        await ask(gw.url, front, False)
    assert which(upstream, front) == [0, 1, 0, 1, 0, 1]
    header = "x-api-key" if front == "anthropic" else "Authorization"
    assert all(header in seen.headers for seen in upstream.seen)


@pytest.mark.parametrize("status", [429, 401])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("front", FRONTS)
async def test_a_refused_key_cools_down_alone(
    upstream: FakeUpstream, gateway: GatewayFactory, front: str, stream: bool, status: int
):
    upstream.default = by_key(front, {0: error(front, status, "key refused")}, ok(front, stream, "with key two"))
    gw = await gateway(keyed(upstream, front))
    text, headers = await ask(gw.url, front, stream)
    # the same request, at once, with the other key (retries = 0: a key's refusal is no retry)
    assert text == "with key two" and headers["x-dragoman-attempts"] == "2"
    assert which(upstream, front) == [0, 1]
    for _ in range(4):
        assert (await ask(gw.url, front, stream))[0] == "with key two"
    assert which(upstream, front) == [0, 1, 1, 1, 1, 1]  # key one is cooling: never tried again
    assert gw.gateway.health.board.active()  # what the dashboard and metrics show


async def test_a_key_cools_for_the_upstreams_retry_after(upstream: FakeUpstream, gateway: GatewayFactory):
    refusals = [error("openai", 429, "slow", **{"retry-after": "0.3"})]

    def spec(seen: Seen) -> Reply:
        if sent_key(seen.headers) == KEYS["openai"][0] and refusals:
            return refusals.pop()
        return ok("openai", False)

    upstream.default = spec
    gw = await gateway(keyed(upstream, "openai", cooldown=600))
    await ask(gw.url, "openai", False)
    assert which(upstream, "openai") == [0, 1]
    await ask(gw.url, "openai", False)
    assert which(upstream, "openai")[-1] == 1  # key one still cooling
    await asyncio.sleep(0.4)  # its retry-after (not the provider's 600 s cooldown) is over
    await ask(gw.url, "openai", False)
    await ask(gw.url, "openai", False)
    assert sorted(which(upstream, "openai")[-2:]) == [0, 1]


@pytest.mark.parametrize("front", FRONTS)
async def test_every_key_refused_is_the_clients_error(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    upstream.default = error(front, 401, "invalid key")
    gw = await gateway(keyed(upstream, front))
    exc = await refused(gw.url, front, False)
    assert exc.status_code == 401
    assert which(upstream, front) == [0, 1]  # each key once, then the client has the answer


@pytest.mark.parametrize("front", FRONTS)
async def test_no_key_reaches_the_client(upstream: FakeUpstream, gateway: GatewayFactory, front: str):
    # a (careless) upstream that echoes the key it was sent
    def echo(seen: Seen) -> Reply:
        return error(front, 400, f"bad request made with {sent_key(seen.headers)}")

    upstream.default = echo
    gw = await gateway(keyed(upstream, front))
    for _ in range(2):  # once with each key
        exc = await refused(gw.url, front, False)
        text = json.dumps(exc.body) + str(exc) + json.dumps(dict(exc.response.headers))
        assert not any(key in text for key in KEYS[front])
        assert "[redacted]" in text
    assert which(upstream, front) == [0, 1]
