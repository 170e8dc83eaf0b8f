"""Built-in closed-loop load generator (aiohttp client), the fallback when wrk is not installed.

Much slower than wrk (it can itself be the bottleneck above ~2-3k req/s), so run.py only uses it for
``--smoke`` or when asked; numbers it produces are marked ``loadgen: python`` in the results.

Prints one JSON object with the same keys run.py reads from its wrk Lua ``done()`` hook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    lat_us: list[int],
    counts: dict[str, int],
) -> None:
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                data = await resp.read()
                counts["bytes"] += len(data)
                if resp.status >= 400:
                    counts["err_status"] += 1
        except (TimeoutError, aiohttp.ClientError):
            counts["err_read"] += 1
            continue
        counts["requests"] += 1
        lat_us.append(int((time.perf_counter() - t0) * 1e6))


async def run(url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float) -> dict[str, Any]:
    counts = {"requests": 0, "bytes": 0, "err_status": 0, "err_read": 0}
    lat: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        t0 = time.perf_counter()
        deadline = t0 + duration
        await asyncio.gather(*(_worker(session, url, body, headers, deadline, lat, counts) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    lat.sort()

    def pct(q: float) -> int:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0

    return {
        **counts,
        "duration_us": int(elapsed * 1e6),
        "err_connect": 0,
        "err_write": 0,
        "err_timeout": 0,
        "lat_p50": pct(0.50),
        "lat_p99": pct(0.99),
        "lat_mean": (sum(lat) / len(lat)) if lat else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="closed-loop HTTP POST load generator")
    p.add_argument("--url", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--headers", default="{}", help="JSON object of request headers")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=1.0)
    args = p.parse_args(argv)
    with open(args.body_file, "rb") as f:
        body = f.read()
    coro = run(args.url, body, json.loads(args.headers), args.concurrency, args.duration)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    print("WRKJSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
