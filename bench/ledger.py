"""What the usage ledger costs under load: Dragoman run once per store (``--ledger sqlite,postgres,off``)
in the same run, its throughput beside the ledger-off run, the CPU each request costs with and without
it, whether every request reached the store, and the writer's own CPU per row (``ledger_writer.py``).

This machine is shared, so runs minutes apart are not comparable: every variant is started at once
(each pinned to the system-under-test core, idle while another is measured), and each cell is
measured on each variant in turn, ``--ledger-rounds`` times with the order rotated; a variant's
figure is its median round. The PostgreSQL store is a scratch database made for the run on
``--postgres`` (an admin URL, trust auth) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import rawhttp
from measure import LoadGen, measure_cell, validate
from scenarios import SCENARIOS
from systems import BENCH, HOST, Mock, RssSampler, System, log, spawn, stop

STORES = ("sqlite", "postgres", "off")
GOAL = 0.9  # throughput with the ledger on, over off


def parse_stores(text: str) -> list[str]:
    stores = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in stores if s not in STORES]
    if bad or not stores or len(set(stores)) != len(stores):
        raise SystemExit(f"--ledger {text!r}: expected distinct stores from {', '.join(STORES)}")
    return stores


class ScratchPostgres:
    """A database of its own for the run, on the server the admin URL names."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"dragoman_bench_{os.getpid()}"
        base = admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    def _run(self, sql: str) -> None:
        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(self.admin_url, timeout=10)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(go())

    def create(self) -> str:
        self._run(f"CREATE DATABASE {self.name}")
        log(f"ledger: PostgreSQL store {self.url}")
        return self.url

    def drop(self) -> None:
        with suppress(Exception):
            self._run(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def ledger_rows(port: int, timeout: float = 20.0) -> int | None:
    """Requests the store holds (``GET /v1/usage``), once the writer has caught up (two equal reads)."""
    last: int | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            resp = rawhttp.get(HOST, port, "/v1/usage", timeout=5.0)
        except (OSError, rawhttp.HTTPError):
            return None
        if resp.status != 200:
            return None
        rows = int(json.loads(resp.body)["totals"]["requests"])
        if rows == last:
            return rows
        last = rows
        time.sleep(0.5)
    return last


def served(result: dict[str, Any]) -> int:
    """Requests the load generator saw completed against a system (warm-ups not counted)."""
    cells = (cell for per_conc in result.get("load", {}).values() for cell in per_conc.values())
    return sum(int(cell.get("requests", 0)) for cell in cells)


def cpu_us_per_request(cell: dict[str, Any] | None) -> float | None:
    if not cell or not cell.get("rps"):
        return None
    return float(cell["sut_cpu_pct"]) / 100.0 / float(cell["rps"]) * 1e6


def writer_cpu(rows: int, postgres: str | None) -> dict[str, dict[str, float]]:
    """``ledger_writer.py`` in a process of its own: record() and the writer's CPU per row, per store."""
    cmd = [sys.executable, str(BENCH / "ledger_writer.py"), "--rows", str(rows), "--json"]
    if postgres:
        cmd += ["--postgres", postgres]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"ledger: ledger_writer.py failed: {exc}")
        return {}
    result: dict[str, dict[str, float]] = json.loads(out.stdout)
    return result


def compare(
    systems: list[System], args: argparse.Namespace, mock: Mock, loadgen: LoadGen, log_dir: Path
) -> dict[str, Any]:
    """Every ledger variant up at once, each cell measured on each in turn (see the docstring)."""
    out: dict[str, Any] = {"rounds": args.ledger_rounds, "systems": {}, "errors": []}
    quick = copy.copy(args)
    quick.noise_retries, quick.quiet_wait, quick.warmup = 0, 0, min(args.warmup, 1.0)
    servers = {}
    try:
        for system in systems:
            servers[system.name] = srv = spawn(system.name, system.cmd, log_dir, system.env)
            srv.wait_ready(system.port, system.health, system.startup_timeout)
        for system in systems:
            bad = validate(system, mock)
            out["systems"][system.name] = {"label": system.label, "ledger": system.ledger, "load": {}}
            if bad:
                out["errors"].append(f"{system.name}: {len(bad)} scenario(s) returned wrong responses")
        samplers = {name: RssSampler(srv) for name, srv in servers.items()}
        for scn in SCENARIOS:
            for conc in args.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
                for rnd in range(args.ledger_rounds):
                    shift = rnd % len(systems)
                    for system in systems[shift:] + systems[:shift]:
                        r = measure_cell(
                            system, servers[system.name], scn, conc, quick, mock, loadgen, samplers[system.name]
                        )
                        runs[system.name].append(r)
                        if r["problems"]:
                            out["errors"].append(f"{system.name} {scn.label} c={conc}: {'; '.join(r['problems'])}")
                line = []
                for system in systems:
                    rounds = [
                        {
                            "rps": round(r["rps"], 1),
                            "cpu_us": cpu_us_per_request(r),
                            "foreign_cpu_pct": round(r["foreign_cpu_pct"], 1),
                            "requests": r["requests"],
                        }
                        for r in runs[system.name]
                    ]
                    cell = {
                        "rps": statistics.median(r["rps"] for r in rounds),
                        "cpu_us": statistics.median(r["cpu_us"] or 0.0 for r in rounds),
                        "requests": sum(r["requests"] for r in rounds),
                        "rounds": rounds,
                    }
                    out["systems"][system.name]["load"].setdefault(scn.key, {})[str(conc)] = cell
                    line.append(f"{system.ledger} {cell['rps']:,.0f}")
                log(f"  ledger {scn.label} c={conc}: " + ", ".join(line) + " req/s (median of rounds)")
        for sampler in samplers.values():
            sampler.close()
        for system in systems:
            if system.ledger != "off":
                out["systems"][system.name]["ledger_rows"] = ledger_rows(system.port)
    finally:
        for srv in servers.values():
            stop(srv)
    return out


def paired(mine: dict[str, Any], off: dict[str, Any], key: str) -> float | None:
    """The median over rounds of mine/off, each round's two runs made back to back: noise that
    lasts longer than a round (another job on the machine) cancels out."""
    ratios = [a[key] / b[key] for a, b in zip(mine["rounds"], off["rounds"], strict=False) if a.get(key) and b.get(key)]
    return statistics.median(ratios) if ratios else None


def report(compared: dict[str, Any], writer: dict[str, Any], concurrency: list[int]) -> tuple[str, list[str]]:
    """The ledger table and the problems it shows (a ratio under the goal, rows missing)."""
    by_store = {res["ledger"]: res for res in compared["systems"].values()}
    present = [s for s in STORES if s in by_store]
    on = [s for s in present if s != "off"]
    problems: list[str] = list(compared.get("errors", []))
    header = ["ledger", "conc", *[f"{s} req/s" for s in present]]
    if "off" in present:
        header += [f"{s}/off req/s" for s in on] + [f"{s}/off CPU" for s in on]
    header += [f"{s} CPU us/req" for s in present]
    rows: list[list[str]] = []
    ratios: dict[str, list[float]] = {s: [] for s in on}
    cpu_ratios: dict[str, list[float]] = {s: [] for s in on}
    for scn in SCENARIOS:
        for conc in concurrency:
            cells = {s: by_store[s]["load"].get(scn.key, {}).get(str(conc)) for s in present}
            row = [f"  {scn.label}", str(conc)]
            row += [f"{c['rps']:,.0f}" if c else "-" for c in cells.values()]
            off = cells.get("off")
            if off is not None:
                for s in on:
                    mine = cells[s]
                    ratio = paired(mine, off, "rps") if mine else None
                    row.append(f"{ratio:.2f}x" if ratio is not None else "-")
                    if ratio is not None:
                        ratios[s].append(ratio)
                        if ratio < GOAL:
                            problems.append(f"{scn.label} c={conc}: {s} at {ratio:.2f}x of off (goal {GOAL}x)")
                for s in on:
                    mine = cells[s]
                    # CPU per request of off over on: the throughput ratio a saturated core would give
                    ratio = paired(off, mine, "cpu_us") if mine else None
                    row.append(f"{ratio:.2f}x" if ratio is not None else "-")
                    if ratio is not None:
                        cpu_ratios[s].append(ratio)
            row += [f"{c['cpu_us']:.0f}" if c else "-" for c in cells.values()]
            rows.append(row)
    lines = _columns(header, rows)
    for s in on:
        if ratios[s]:
            mean = statistics.geometric_mean(ratios[s])
            cpu = statistics.geometric_mean(cpu_ratios[s])
            lines.append(
                f"{s}/off: req/s geometric mean {mean:.2f}x (lowest {min(ratios[s]):.2f}x); "
                f"by CPU per request {cpu:.2f}x (lowest {min(cpu_ratios[s]):.2f}x)"
            )
        res = by_store[s]
        kept, done = res.get("ledger_rows"), served(res)
        lines.append(f"{s}: the store holds {kept if kept is not None else '?'} rows; {done:,} requests were measured")
        if kept is None or kept < done:
            problems.append(f"{s}: the store holds {kept} rows, fewer than the {done} requests measured")
    for store, r in writer.items():
        lines.append(
            f"writer ({store}, ledger_writer.py): record() {r['record_us']:.2f} us/row on the event loop, "
            f"writer CPU {r['writer_cpu_us']:.1f} us/row, {r['writer_rows_per_s']:,.0f} rows/s"
        )
    return "\n".join(lines), problems


def _columns(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return out
