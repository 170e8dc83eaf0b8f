"""What each sink's `record()` costs per finished request, and what a gateway key costs before the
upstream call (lookup, limits), measured in-process without any I/O.

    .venv/bin/python bench/sink_cost.py [--n 100000]

The access log writes to /dev/null through the handler `dragoman serve` installs, so its number
includes formatting and the write; the ledger's is the append to its queue (the inserts happen on
its writer, off the request's path).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def per_call_us(fn: Any, n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    os.environ["DRAGOMAN_DATA_DIR"] = tempfile.mkdtemp(prefix="dragoman-sink-cost-")
    from dragoman.canonical import Usage
    from dragoman.config import parse
    from dragoman.gateway import Gateway
    from dragoman.observe import logs
    from dragoman.routing import Route, Target
    from dragoman.store.db import open_database
    from dragoman.store.keys.admin import create_key
    from dragoman.trip.outcome import Attempt, Outcome, new_request_id

    db = await open_database("sqlite")
    _, token = await create_key(db, "bench", rpm=10**9, tpm=10**12, budget_usd=10**9)
    await db.close()
    cfg = parse(
        {
            "server": {"default_provider": "m", "metrics": True, "access_log": True},
            "providers": {
                "m": {"dialect": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "x", "models": ["gpt"]}
            },
        }
    )
    logs.configure(cfg.server)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    gw = Gateway.from_config(cfg)
    await gw.start()
    outcome = Outcome(
        request_id=new_request_id(),
        time=time.time(),
        method="POST",
        path="/v1/chat/completions",
        front="openai",
        model="m/gpt",
        provider="m",
        upstream_model="gpt",
        upstream_dialect="openai",
        status=200,
        attempts=[Attempt(provider="m", model="gpt", status=200, latency_ms=3.0)],
        latency_ms=12.0,
        ttfb_ms=5.0,
        usage=Usage(input_tokens=120, output_tokens=30, cache_read_tokens=1000),
        cost_usd=0.0012,
        key_name="bench",
    )
    print(f"per call, {n:,} calls, Python {sys.version.split()[0]}")
    for sink in gw.sinks.sinks:
        print(f"  {sink.name:<12} record   {per_call_us(lambda s=sink: s.record(outcome), n):7.2f} us")
    print(f"  {'all sinks':<12} record   {per_call_us(lambda: gw.sinks.record(outcome), n):7.2f} us")

    assert gw.keys is not None and gw.limits is not None
    key = await gw.keys.lookup(token)
    assert key is not None
    target = Target(gw.providers["m"], "gpt")
    trip: Any = type("T", (), {"model": "m/gpt", "route": Route("m/gpt", (target,))})()

    async def lookup() -> None:
        await gw.keys.lookup(token)  # type: ignore[union-attr]

    async def admit() -> None:
        await gw.limits.admit(key, trip)  # type: ignore[union-attr]

    for name, coro in (("key lookup", lookup), ("key admit", admit)):
        for _ in range(1000):
            await coro()
        start = time.perf_counter()
        for _ in range(n):
            await coro()
        print(f"  {name:<21} {(time.perf_counter() - start) / n * 1e6:7.2f} us")
    await gw.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    asyncio.run(main(p.parse_args().n))
