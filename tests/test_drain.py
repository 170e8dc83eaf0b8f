"""SIGTERM on a real `dragoman serve` with streams the upstream has stalled (both fronts, passed
through and translated): new connections are refused at once, a request that finishes within
`shutdown_grace` gets its whole answer, the stalled streams are ended after the grace with a proper
error event each (the official SDKs raise a clean API error), and the process exits 0. A second
signal cuts the grace short. (test_ledger_drain.py proves what the ledger records of a drain.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.conftest import FakeUpstream, Reply, Seen
from tests.resil_helpers import SSE, USER, ant, anthropic_events, oai, ok, openai_events
from tests.test_ledger_drain import Served, free_port

# (front, model): pass-through and translated for each front
STREAMS = [
    ("openai", "up-openai/hold"),
    ("openai", "up-anthropic/hold"),
    ("anthropic", "up-anthropic/hold"),
    ("anthropic", "up-openai/hold"),
]


def answer(seen: Seen) -> Reply:
    body = seen.json
    openai_path = seen.path.endswith("/chat/completions")
    if body["model"] == "hold":  # the first event, then nothing until the gateway lets go
        first = openai_events("Hel")[:1] if openai_path else anthropic_events("Hel")[:3]
        return Reply(body=first, content_type=SSE, hang=True)
    reply = ok("openai" if openai_path else "anthropic", False, "finished in time")
    assert isinstance(reply.body, bytes)
    return Reply(body=[reply.body[:20], reply.body[20:]], delay=float(body["model"].split("-")[1]))


def config(path: Path, port: int, upstream: FakeUpstream, grace: float) -> Path:
    path.write_text(
        f"""
[server]
port = {port}
default_provider = "up-openai"
retries = 0
shutdown_grace = {grace}
usage_store = "off"
virtual_keys = false

[providers.up-openai]
dialect = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-up-openai-secret"

[providers.up-anthropic]
dialect = "anthropic"
base_url = "{upstream.url}"
api_key = "sk-ant-up-secret"
"""
    )
    return path


async def held(url: str, front: str, model: str, started: asyncio.Event) -> BaseException | str:
    """A stream the upstream stalls after its first event: how it ended for the SDK."""
    got = ""
    try:
        if front == "openai":
            stream = await oai(url).chat.completions.create(model=model, messages=USER, stream=True)  # type: ignore[arg-type]
            async for chunk in stream:
                got += "".join(c.delta.content or "" for c in chunk.choices)
                started.set()
        else:
            async with ant(url).messages.stream(model=model, max_tokens=10, messages=USER) as s:  # type: ignore[arg-type]
                async for text in s.text_stream:
                    got += text
                    started.set()
    except (openai.APIError, anthropic.APIError) as exc:
        assert got == "Hel"
        return exc
    return f"ended without an error after {got!r}"


async def start(tmp_path: Path, upstream: FakeUpstream, grace: float) -> tuple[Served, str]:
    upstream.default = answer
    port = free_port()
    served = Served(config(tmp_path / "dragoman.toml", port, upstream, grace), port, tmp_path / "serve.log")
    await served.start()
    return served, f"http://127.0.0.1:{port}"


async def open_streams(url: str) -> list[asyncio.Task[Any]]:
    tasks, flags = [], []
    for front, model in STREAMS:
        flag = asyncio.Event()
        tasks.append(asyncio.create_task(held(url, front, model, flag)))
        flags.append(flag)
    await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flags)), 30)  # every first event arrived
    return tasks


def assert_ended_cleanly(outcomes: list[Any]) -> None:
    for (front, model), outcome in zip(STREAMS, outcomes, strict=True):
        assert isinstance(outcome, openai.APIError | anthropic.APIError), (front, model, outcome)
        assert "shutting down" in str(outcome), (front, model, outcome)


async def test_sigterm_drains_within_the_grace_and_ends_stalled_streams(tmp_path: Path, upstream: FakeUpstream):
    served, url = await start(tmp_path, upstream, grace=2)
    try:
        streams = await open_streams(url)
        # a request that finishes well within the grace, still in flight at the signal
        finishing = asyncio.create_task(
            oai(url).chat.completions.create(model="up-openai/slow-0.8", messages=USER)  # type: ignore[arg-type]
        )
        while len(upstream.seen) < len(STREAMS) + 1:
            await asyncio.sleep(0.01)
        assert served.proc is not None
        sent = time.monotonic()
        served.proc.send_signal(15)
        await asyncio.sleep(0.3)
        with pytest.raises(aiohttp.ClientConnectionError):  # no longer listening
            async with aiohttp.ClientSession() as s, s.get(url + "/health"):
                pass
        code = await asyncio.to_thread(served.proc.wait, 60)
        took = time.monotonic() - sent
        served.proc = None
        assert code == 0
        assert (await finishing).choices[0].message.content == "finished in time"
        assert_ended_cleanly(await asyncio.gather(*streams))
        assert 1.9 <= took < 30, took  # it waited the grace for the stalled streams, and not forever
        assert "ending 4 request(s) still in flight" in served.log.read_text()
    finally:
        served.kill()


async def test_a_second_signal_cuts_the_grace_short(tmp_path: Path, upstream: FakeUpstream):
    served, url = await start(tmp_path, upstream, grace=600)
    try:
        streams = await open_streams(url)
        assert served.proc is not None
        served.proc.send_signal(15)
        await asyncio.sleep(0.5)
        assert served.proc.poll() is None  # draining: the streams are still held
        assert not any(t.done() for t in streams)
        sent = time.monotonic()
        served.proc.send_signal(15)
        code = await asyncio.to_thread(served.proc.wait, 60)
        served.proc = None
        assert code == 0 and time.monotonic() - sent < 30  # not the 600 s grace
        assert_ended_cleanly(await asyncio.gather(*streams))
    finally:
        served.kill()
