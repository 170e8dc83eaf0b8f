"""The sinks' side of a finished trip: every outcome reaches every sink exactly once, after its reply,
whatever another sink does; outcomes handed over and not yet recorded are recorded at close."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from dragoman.trip.outcome import Outcome, Sinks
from tests.conftest import FakeUpstream, GatewayFactory, Reply, providers_at
from tests.ops_helpers import openai_reply


class Collect:
    def __init__(self, name: str = "collect") -> None:
        self.name = name
        self.seen: list[Outcome] = []
        self.closed_with = -1  # how many outcomes it had when it was closed

    def record(self, outcome: Outcome) -> None:
        self.seen.append(outcome)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.closed_with = len(self.seen)


class Broken(Collect):
    def record(self, outcome: Outcome) -> None:
        super().record(outcome)
        raise RuntimeError("this sink is broken")


class Batches(Collect):
    """Takes a step's outcomes in one call."""

    def __init__(self, name: str = "batches") -> None:
        super().__init__(name)
        self.batches: list[int] = []

    def record(self, outcome: Outcome) -> None:
        raise AssertionError("a sink with record_batch gets batches")

    def record_batch(self, outcomes: list[Outcome]) -> None:
        self.batches.append(len(outcomes))
        self.seen.extend(outcomes)


class BrokenBatches(Batches):
    def record_batch(self, outcomes: list[Outcome]) -> None:
        super().record_batch(outcomes)
        raise RuntimeError("this sink is broken")


def outcome(n: int) -> Outcome:
    return Outcome(request_id=f"req-{n}", time=time.time(), method="POST", path="/v1/chat/completions")


async def test_every_outcome_reaches_every_sink_once_though_one_sink_fails(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
):
    upstream.default = Reply(body=openai_reply())
    running = await gateway(providers_at(upstream, server={"usage_store": "off", "metrics": False}))
    sinks = running.gateway.sinks
    broken, kept, batched, broken_batches = Broken("broken"), Collect(), Batches(), BrokenBatches("broken batches")
    for sink in (broken, broken_batches, kept, batched):
        sinks.add(sink)
    body = {"model": "up-openai/m", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:

        async def one() -> str:
            async with http.post(running.url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                await resp.read()
                return resp.headers["x-dragoman-request-id"]

        with caplog.at_level(logging.ERROR, logger="dragoman.sinks"):
            ids = await asyncio.gather(*(one() for _ in range(40)))
            for _ in range(50):
                if len(kept.seen) >= 40:
                    break
                await asyncio.sleep(0.02)
    for sink in (kept, broken, batched, broken_batches):  # each once, none lost, none twice
        assert sorted(o.request_id for o in sink.seen) == sorted(ids), sink.name
    assert [o.request_id for o in batched.seen] == [o.request_id for o in kept.seen]  # the same order
    assert sum(batched.batches) == 40 and len(batched.batches) == len(broken_batches.batches)
    assert sinks.failures == 40 + 40  # every outcome a failing sink did not take is counted
    assert all(o.status == 200 and o.provider == "up-openai" for o in kept.seen)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("sink broken failed" in m for m in messages) == 40
    assert sum("sink broken batches failed" in m for m in messages) == len(broken_batches.batches)


async def test_outcomes_are_recorded_on_the_next_step_in_the_order_handed_over():
    kept = Collect()
    sinks = Sinks([kept])
    loop = asyncio.get_running_loop()
    for n in range(5):
        sinks.soon(outcome(n), loop)
    assert kept.seen == []  # not while the handler that finished them is still running
    await asyncio.sleep(0)
    assert [o.request_id for o in kept.seen] == [f"req-{n}" for n in range(5)]
    sinks.soon(outcome(5), loop)
    await asyncio.sleep(0)
    assert [o.request_id for o in kept.seen][-1] == "req-5" and len(kept.seen) == 6


async def test_close_records_what_was_handed_over_before_the_sinks_close():
    first, second = Collect("first"), Collect("second")
    sinks = Sinks([first, second])
    loop = asyncio.get_running_loop()
    for n in range(3):
        sinks.soon(outcome(n), loop)
    await sinks.close()  # before the loop took another step
    assert (first.closed_with, second.closed_with) == (3, 3)
    await asyncio.sleep(0)  # the step scheduled earlier finds nothing left to record
    assert (len(first.seen), len(second.seen)) == (3, 3)


def test_a_sink_added_later_makes_the_trip_keep_what_sinks_read():
    sinks = Sinks()
    assert not sinks.active
    sinks.add(Collect())
    assert sinks.active
