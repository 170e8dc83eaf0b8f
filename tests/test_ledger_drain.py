"""Nothing is lost, nothing is doubled: a real `dragoman serve` takes 1,000 requests, then SIGTERM
while 50 streams are held open by the upstream; after a restart `dragoman logs --json --limit 2000`
holds every request once, the 50 marked as the drain ended them. The same with a PostgreSQL store
unreachable for the first half of the run (rows go to the journal) and back for the second (the
journal is replayed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import PG_HOST, FakeUpstream, Reply, Seen
from tests.ledger_helpers import TcpProxy
from tests.usage_cases import CASES, SSE

CASE = {case.id: case for case in CASES}
QUICK = CASE["openai-prompt-cache-read"]  # cached input: the ledger must split it out on every row
STREAM = CASE["openai-reasoning-stream"]
RUN, HELD = 1000, 50
HI = [{"role": "user", "content": "hi"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


QUICK_BODY, STREAM_BODY = QUICK.body(), STREAM.body()  # read once: a cassette is YAML, slow to parse


def answer(seen: Seen) -> Reply:
    body = seen.json
    if body["model"] == "hold":  # the first events, then nothing until the gateway lets go
        return Reply(body=[STREAM_BODY[: len(STREAM_BODY) // 3]], content_type=SSE, hang=True)
    if body.get("stream"):
        return Reply(body=[STREAM_BODY[i : i + 400] for i in range(0, len(STREAM_BODY), 400)], content_type=SSE)
    return Reply(body=QUICK_BODY)


class Served:
    """`dragoman serve` in a subprocess, its output in a file."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "DRAGOMAN_CONFIG"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dragoman", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"dragoman serve did not start:\n{self.log.read_text()}")
                await asyncio.sleep(0.05)

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.proc.wait, 60)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def write_config(path: Path, port: int, upstream: FakeUpstream, store: str) -> None:
    path.write_text(
        f"""
[server]
port = {port}
default_provider = "up-openai"
retries = 0
shutdown_grace = 0.5
usage_store = "{store}"
virtual_keys = false  # no gateway keys here: with them on, a store down from the start leaves the keys unknown and requests refused
log_level = "info"

[providers.up-openai]
dialect = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-up-openai-secret"
"""
    )


def logs(config: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "dragoman", "logs", "--json", "--limit", "2000", "--config", str(config)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    records: list[dict[str, Any]] = json.loads(out.stdout)
    return records


async def one(session: aiohttp.ClientSession, url: str, n: int) -> str:
    """Request number n: OpenAI or Anthropic front, streamed or not, through or translated."""
    stream = n % 3 == 1
    if n % 2:
        path, body = "/v1/chat/completions", {"model": "up-openai/gpt-rec", "messages": HI, "stream": stream}
    else:
        path, body = "/v1/messages", {"model": "up-openai/gpt-rec", "max_tokens": 64, "messages": HI, "stream": stream}
    async with session.post(url + path, json=body) as resp:
        await resp.read()
        assert resp.status == 200, await resp.text()
        return resp.headers["x-dragoman-request-id"]


async def run(session: aiohttp.ClientSession, url: str, count: int, start: int = 0) -> list[str]:
    gate = asyncio.Semaphore(24)

    async def limited(n: int) -> str:
        async with gate:
            return await one(session, url, n)

    return list(await asyncio.gather(*(limited(n) for n in range(start, start + count))))


async def hold(session: aiohttp.ClientSession, url: str, upstream: FakeUpstream) -> list[asyncio.Task[str]]:
    """HELD streams, each with its first bytes read; returns the tasks that read them to their end."""
    started: list[asyncio.Future[str]] = [asyncio.get_running_loop().create_future() for _ in range(HELD)]

    async def held(i: int) -> str:
        body = {"model": "up-openai/hold", "messages": HI, "stream": True}
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            request_id = resp.headers["x-dragoman-request-id"]
            await resp.content.readany()
            started[i].set_result(request_id)
            await resp.read()  # the drain ends it with an error event
            return request_id

    tasks = [asyncio.create_task(held(i)) for i in range(HELD)]
    await asyncio.wait_for(asyncio.gather(*started), 60)
    assert sum(1 for s in upstream.seen if s.json["model"] == "hold") == HELD
    return tasks


def check(records: list[dict[str, Any]], done: list[str], held: list[str]) -> None:
    ids = [r["request_id"] for r in records]
    assert len(ids) == len(set(ids)), "a request was recorded twice"
    assert sorted(ids) == sorted(done + held), "a request is missing from the ledger"
    by_id = {r["request_id"]: r for r in records}
    for request_id in held:
        record = by_id[request_id]
        assert (record["end"], record["stream"], record["status"]) == ("shutdown", True, 200), record
        assert record["error"] == "the gateway is shutting down"
    for request_id in done:
        record = by_id[request_id]
        assert record["end"] == "ok" and record["status"] == 200, record
        want = STREAM.want if record["stream"] else QUICK.want
        assert record["usage"] == {
            "input_tokens": want.input_tokens,
            "output_tokens": want.output_tokens,
            "cache_read_tokens": want.cache_read_tokens,
            "cache_write_tokens": want.cache_write_tokens,
            "reasoning_tokens": want.reasoning_tokens,
        }


async def scenario(
    tmp_path: Path, upstream: FakeUpstream, store: str, halfway: Callable[[], Awaitable[None]] | None = None
) -> tuple[list[dict[str, Any]], list[str], list[str], str]:
    upstream.default = answer
    port = free_port()
    config = tmp_path / "dragoman.toml"
    write_config(config, port, upstream, store)
    log = tmp_path / "serve.log"
    served = Served(config, port, log)
    url = f"http://127.0.0.1:{port}"
    await served.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=HELD + 30)) as session:
            done = await run(session, url, RUN // 2)
            if halfway is not None:
                await halfway()
            done += await run(session, url, RUN // 2, start=RUN // 2)
            if halfway is not None:  # the running gateway sees the store come back before the drain
                deadline = time.monotonic() + 45
                while "is back: replaying the journal" not in log.read_text():
                    assert time.monotonic() < deadline, log.read_text()
                    await asyncio.sleep(0.1)
            tasks = await hold(session, url, upstream)
            assert await served.stop() == 0, log.read_text()
            held = list(await asyncio.wait_for(asyncio.gather(*tasks), 30))
        await served.start()  # the restart: whatever the journal holds is replayed
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(records) < RUN + HELD and time.monotonic() < deadline:
            records = await asyncio.to_thread(logs, config)
            await asyncio.sleep(0.1)
        assert await served.stop() == 0, log.read_text()
        records = await asyncio.to_thread(logs, config)
    finally:
        served.kill()
    return records, done, held, log.read_text()


async def test_every_request_is_recorded_once_across_a_drain_and_restart(tmp_path: Path, upstream: FakeUpstream):
    records, done, held, _ = await scenario(tmp_path, upstream, f"sqlite://{tmp_path}/usage.db")
    check(records, done, held)


async def test_a_postgres_store_down_for_half_the_run_loses_and_doubles_nothing(
    tmp_path: Path, upstream: FakeUpstream, pg_url: str
):
    host, _, port = PG_HOST.partition(":")
    proxy = TcpProxy(host, int(port))
    proxy.port = free_port()  # nothing listens there yet: the store is unreachable from the start
    database = pg_url.rsplit("/", 1)[1]
    try:
        records, done, held, log = await scenario(
            tmp_path, upstream, f"postgresql://127.0.0.1:{proxy.port}/{database}", halfway=proxy.up
        )
    finally:
        await proxy.down()
    check(records, done, held)
    assert "unavailable" in log and "rows go to the journal" in log  # the first half went to the journal
    journal = Path(os.environ["DRAGOMAN_DATA_DIR"]) / "journal"
    assert not any(journal.rglob("seg-*")), "the journal was not emptied"
