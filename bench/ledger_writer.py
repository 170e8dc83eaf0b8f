"""CPU the usage ledger costs per request: `record()` on the event loop, and the writer (row
conversion, batching, the insert's client side) per row, for SQLite and PostgreSQL.

    .venv/bin/python bench/ledger_writer.py [--rows 50000] [--postgres postgresql://127.0.0.1:5432/test]

CPU time (`time.process_time`, all threads of this process) rather than wall time, so another load
on the machine changes it little. The PostgreSQL server's own CPU is not counted. A throwaway data
dir and table are used; nothing is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dragoman.canonical import Usage
from dragoman.store.db import open_database
from dragoman.store.ledger import Ledger
from dragoman.trip.outcome import Attempt, Outcome, new_request_id


def outcomes(n: int) -> list[Outcome]:
    now = time.time()
    return [
        Outcome(
            request_id=new_request_id(),
            time=now,
            method="POST",
            path="/v1/messages",
            front="anthropic",
            model="claude-sonnet-4-6",
            route="anthropic/claude-sonnet-4-6",
            provider="anthropic",
            upstream_model="claude-sonnet-4-6",
            upstream_dialect="anthropic",
            passthrough=True,
            stream=True,
            status=200,
            attempts=[Attempt(provider="anthropic", model="claude-sonnet-4-6", status=200, latency_ms=120.0)],
            latency_ms=900.0,
            ttfb_ms=130.0,
            usage=Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=8000, cache_write_tokens=500),
            cost_usd=0.0123,
            key_name="team-a",
            client="claude-code",
            user_agent="claude-cli/2.0.1 (external, cli)",
            stop_reason="end_turn",
            tool_calls=1,
            instance="bench:1",
        )
        for _ in range(n)
    ]


async def measure(url: str, rows: int, journal: Path) -> dict[str, float]:
    records = outcomes(rows)
    sink = Ledger(url, journal_dir=journal, queue_max=rows + 1)
    await sink.start()
    await asyncio.sleep(0.5)  # the store opened and migrated before the clock starts

    cpu = time.process_time()
    for o in records:
        sink.record(o)
    record_cpu = time.process_time() - cpu

    cpu = time.process_time()
    wall = time.perf_counter()
    while sink.stats()["written"] < rows:
        await asyncio.sleep(0.005)
    writer_cpu = time.process_time() - cpu
    writer_wall = time.perf_counter() - wall
    await sink.close()
    assert sink.stats()["journaled"] == 0 and sink.stats()["dropped"] == 0, sink.stats()

    db = await open_database(url)
    try:
        await db.execute("DROP TABLE usage_records")
        await db.execute("DELETE FROM dragoman_migrations WHERE store = 'ledger'")
    finally:
        await db.close()
    return {
        "record_us": record_cpu / rows * 1e6,
        "writer_cpu_us": writer_cpu / rows * 1e6,
        "writer_rows_per_s": rows / writer_wall,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure too (a scratch database)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DRAGOMAN_DATA_DIR"] = tmp
        stores = {"sqlite": f"sqlite://{tmp}/usage.db"}
        if args.postgres:
            stores["postgres"] = args.postgres
        results = {name: await measure(url, args.rows, Path(tmp) / f"journal-{name}") for name, url in stores.items()}
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'store':10} {'record() us/row':>16} {'writer CPU us/row':>18} {'writer rows/s':>14}")
    for name, r in results.items():
        print(f"{name:10} {r['record_us']:16.2f} {r['writer_cpu_us']:18.1f} {r['writer_rows_per_s']:14,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
