"""Dragoman benchmark: one command, one table.

    .venv/bin/python bench/run.py                 # full run (~10-15 min with LiteLLM)
    .venv/bin/python bench/run.py --smoke         # ~35 s proof that every piece works (CI)

Starts a zero-latency mock upstream (pinned to the load core with the load generator), then, one at a
time and each pinned to its own core with one worker: the bare aiohttp pass-through (the practical
limit), Dragoman (``dragoman serve``) and LiteLLM (when its separate venv is present). For each it
measures start-up time, resident memory idle and under load, added time-to-first-byte over talking to
the mock directly, and req/s per scenario and concurrency with wrk (or a built-in aiohttp load
generator when wrk is unavailable). Every scenario's response is checked for the right shape and
content first, and the mock counts which upstream dialect each request really reached. Prints one
table and writes everything to ``--out`` as JSON. Exit status is non-zero when anything about the bare
proxy or Dragoman failed (LiteLLM problems are reported as warnings).

This file holds the options and the order of things; the work is done by ``systems.py`` (ports, pinning,
starting and stopping the servers, start-up time, RSS), ``measure.py`` (response checks, TTFT, load with
wrk or ``loadgen.py``, noise, footprint, profile) and ``report.py`` (the table and the JSON).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, whatever the working directory

import faults
import ops
import rawhttp
from ledger import ScratchPostgres, compare, ledger_rows, parse_stores, writer_cpu
from ledger import report as ledger_report
from measure import (
    ForeignCpu,
    LoadGen,
    choose_loadgen,
    footprint,
    measure_cell,
    measure_ttfb,
    profile,
    validate,
)
from report import meta, print_summary, render_table, write_json
from scenarios import SCENARIOS
from systems import (
    BENCH,
    HOST,
    MIB,
    PORTS,
    ROOT,
    CpuLayout,
    Mock,
    RssSampler,
    System,
    build_systems,
    ledger_systems,
    log,
    pick_ports,
    rss_bytes,
    spawn,
    stop,
    stop_all,
)


def bench_system(
    system: System,
    args: argparse.Namespace,
    mock: Mock,
    loadgen: LoadGen,
    direct_ttfb: dict[str, dict[str, Any]],
    log_dir: Path,
) -> dict[str, Any]:
    """Start ``system``, check it, measure it (start-up, RSS, TTFT, load, optional profile), stop it."""
    res: dict[str, Any] = {"label": system.label, "cmd": system.cmd, "workers": system.workers, "errors": []}
    if rawhttp.port_open(HOST, system.port):
        res["errors"].append(f"port {system.port} already in use: a stale server? not starting {system.name}")
        return res
    srv = spawn(system.name, system.cmd, log_dir, system.env)
    sampler: RssSampler | None = None
    try:
        try:
            res["startup_s"] = srv.wait_ready(system.port, system.health, system.startup_timeout)
        except RuntimeError as e:
            res["errors"].append(f"start-up failed: {e}")
            log(f"{system.name}: start-up failed:\n{e}")
            return res
        log(f"{system.name}: healthy after {res['startup_s']:.2f}s (pid {srv.pid})")
        time.sleep(0.5)
        res["rss_start_mib"] = rss_bytes(srv.tree()) / MIB

        res["validation"] = validate(system, mock)
        if res["validation"]:
            res["errors"].append(f"{len(res['validation'])} scenario(s) returned wrong responses")

        res["ttft"] = {}
        for scn in system.scenarios():
            t = measure_ttfb(
                system.port,
                scn.path,
                scn.body(),
                scn.headers(system.api_key),
                args.ttft_requests,
                args.noise_retries,
                args.quiet_wait,
            )
            d = direct_ttfb[scn.key]
            t["added_p50_ms"] = t["p50_ms"] - d["p50_ms"]
            t["added_p99_ms"] = t["p99_ms"] - d["p99_ms"]
            res["ttft"][scn.key] = t
            if t["errors"]:
                res["errors"].append(f"TTFT {scn.key}: {t['errors']} failed request(s)")
        time.sleep(0.3)
        res["rss_idle_mib"] = rss_bytes(srv.tree()) / MIB

        sampler = RssSampler(srv)
        res["load"] = {}
        for scn in system.scenarios():
            for conc in args.concurrency:
                if not srv.alive():
                    res["errors"].append(f"{system.name} died during load:\n{srv.log_tail()}")
                    return res
                r = measure_cell(system, srv, scn, conc, args, mock, loadgen, sampler)
                problems = r["problems"]
                res["load"].setdefault(scn.key, {})[str(conc)] = r
                log(
                    f"  {system.name} {scn.label} c={conc}: {r['rps']:,.0f} req/s, p50 {r['lat_p50'] / 1e3:.2f} ms, "
                    f"sut cpu {r['sut_cpu_pct']:.0f}%, mock cpu {r['mock_cpu_pct']:.0f}%, "
                    f"other processes {r['foreign_cpu_pct']:.0f}%"
                    + (f"  PROBLEMS: {'; '.join(problems)}" if problems else "")
                )
                if problems:
                    res["errors"].append(f"load {scn.key} c={conc}: {'; '.join(problems)}")
        res["rss_peak_mib"] = sampler.peak / MIB
        if system.ledger not in (None, "off"):
            res["ledger_rows"] = ledger_rows(system.port)
        if args.profile and system.name == "dragoman":
            res["profile"] = profile(srv, system, loadgen, args, log_dir)
    finally:
        if sampler is not None:
            sampler.close()
        if not srv.alive() and "startup_s" in res:
            res["errors"].append(f"{system.name} exited with {srv.proc.returncode}:\n{srv.log_tail()}")
        stop(srv)
    if system.footprint and not args.smoke:
        py, roots, extra = system.footprint
        res["footprint"] = footprint(py, roots, extra)
    return res


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Dragoman benchmark (see bench/README.md)")
    p.add_argument("--duration", type=float, help="seconds of load per cell (default 10; smoke 1)")
    p.add_argument("--warmup", type=float, help="seconds of unmeasured load first (default 2; smoke 0)")
    p.add_argument("--concurrency", help="comma-separated connection counts (default 1,32; smoke 1,4)")
    p.add_argument("--ttft-requests", type=int, help="sequential requests per TTFT sample (default 300; smoke 20)")
    p.add_argument("--smoke", action="store_true", help="short run proving every piece works (CI)")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even when installed")
    p.add_argument("--litellm-python", help="interpreter with litellm[proxy] (default bench/.venv-litellm)")
    p.add_argument(
        "--systems",
        default="bare,dragoman,ops,litellm",
        help="subset to run (default all; ops: dragoman with ledger, metrics, access log and keys off, then on)",
    )
    p.add_argument("--workers", type=int, default=1, help="also run dragoman with N workers (scaling row)")
    p.add_argument("--dragoman-cmd", help="command that runs dragoman (default .venv/bin/dragoman)")
    p.add_argument(
        "--baseline-cmd",
        help="command that runs an earlier dragoman (its own checkout and venv): compared, interleaved, with "
        "this one with the ledger, metrics, access log and keys off (the earlier one had none of them)",
    )
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument(
        "--noise-retries",
        type=int,
        help="re-measure a cell up to N times while other processes use >10%% CPU (default 2; smoke 0)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each measurement wait up to S seconds for other processes to go quiet (default 30; smoke 0)",
    )
    p.add_argument(
        "--ledger",
        default="sqlite",
        help="usage stores to run dragoman with, once each, e.g. sqlite,postgres,off (default sqlite); "
        "with more than one, a table sets each beside the ledger-off run",
    )
    p.add_argument("--ledger-rounds", type=int, help="rounds per cell in the ledger comparison (default 3; smoke 1)")
    p.add_argument(
        "--postgres",
        default="postgresql://127.0.0.1:5432/test",
        help="admin URL of the PostgreSQL server for --ledger postgres (a scratch database is made on it)",
    )
    p.add_argument(
        "--ops-rounds", type=int, help="interleaved rounds per cell of the ops comparison (default 3; smoke 1)"
    )
    p.add_argument("--profile", action="store_true", help="py-spy record dragoman under stream load")
    p.add_argument(
        "--faults",
        action="store_true",
        help="only the load-and-fault run (bench/faults.py: 1,000 paced streams, a 3-minute soak, 200 "
        "disconnects; ~6 min); --smoke runs a miniature of it after the rest",
    )
    p.add_argument("--out", help="JSON results path (default bench/results/latest.json; smoke: smoke.json)")
    args = p.parse_args(argv)
    defaults: dict[str, Any] = (
        {
            "duration": 1.0,
            "warmup": 0.0,
            "concurrency": "1,4",
            "ttft_requests": 20,
            "noise_retries": 0,
            "quiet_wait": 0,
            "ledger_rounds": 1,
            "ops_rounds": 1,
        }
        if args.smoke
        else {
            "duration": 10.0,
            "warmup": 2.0,
            "concurrency": "1,32",
            "ttft_requests": 300,
            "noise_retries": 2,
            "quiet_wait": 30,
            "ledger_rounds": 3,
            "ops_rounds": 3,
        }
    )
    name = "smoke.json" if args.smoke else "faults.json" if args.faults else "latest.json"
    defaults["out"] = str(BENCH / "results" / name)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c]
    args.ledger = parse_stores(args.ledger)
    return args


def ensure_deps() -> None:
    """The mock and the bare proxy run on this interpreter: re-exec under the project venv if it lacks
    aiohttp/msgspec (e.g. `python bench/run.py` with a system python in CI)."""
    try:
        import aiohttp  # noqa: F401
        import msgspec  # noqa: F401
    except ImportError as e:
        venv_py = ROOT / ".venv" / "bin" / "python"
        if venv_py.exists() and Path(sys.prefix).resolve() != venv_py.parent.parent.resolve():
            log(f"{e.name} missing from {sys.executable}: re-running under {venv_py}")
            os.execv(str(venv_py), [str(venv_py), str(Path(__file__).resolve()), *sys.argv[1:]])
        raise SystemExit(f"bench/run.py needs aiohttp and msgspec (Dragoman's own dependencies): {e}") from e


def main(argv: list[str] | None = None) -> int:
    ensure_deps()
    args = parse_args(argv)
    cpus = CpuLayout.detect()
    n_cores = len(os.sched_getaffinity(0))
    if cpus.load:
        os.sched_setaffinity(0, set(cpus.load))  # the harness itself stays off the SUT core
    loadgen_kind, loadgen_note = choose_loadgen(args.loadgen, args.smoke)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    log_dir = out_path.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dragoman-bench-"))
    results: dict[str, Any] = {"meta": meta(args, cpus, n_cores, loadgen_note), "systems": {}, "failures": []}
    results["meta"]["ledger"] = args.ledger
    if len(args.ledger) > 1:
        for i, store in enumerate(args.ledger):
            PORTS[f"dragoman-ledger-{store}"] = 4110 + i
    pick_ports()
    if args.faults and not args.smoke:
        signal.signal(signal.SIGTERM, _interrupt)
        return run_faults(args, cpus, log_dir, tmp, out_path, results)
    scratch = ScratchPostgres(args.postgres) if "postgres" in args.ledger else None
    if scratch is not None:
        args.ledger_postgres_url = scratch.create()
    systems = build_systems(args, tmp, cpus)
    log(f"systems: {', '.join(s.name for s in systems)}; load generator: {loadgen_note}; logs in {log_dir}")
    quiet = ForeignCpu()
    time.sleep(1.0)
    results["meta"]["foreign_cpu_at_start_pct"] = busy = quiet.pct()
    if busy > 20:
        log(f"WARNING: other processes are using {busy:.0f}% of a core: the numbers will be noisy")

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        mock_cmd = [
            *CpuLayout.prefix(cpus.load),
            sys.executable,
            str(BENCH / "mock_upstream.py"),
            "--port",
            str(PORTS["mock"]),
        ]
        mock_srv = spawn("mock", mock_cmd, log_dir)
        mock_srv.wait_ready(PORTS["mock"], "/health", 30)
        mock = Mock(mock_srv)

        results["direct_ttft"] = {}
        for scn in SCENARIOS:
            results["direct_ttft"][scn.key] = measure_ttfb(
                PORTS["mock"],
                scn.direct_path(),
                scn.direct_body(),
                scn.direct_headers(),
                args.ttft_requests,
                args.noise_retries,
                args.quiet_wait,
            )
        loadgen = LoadGen(loadgen_kind, cpus, tmp)
        pair = [s for s in systems if s.name in ("dragoman-off", "dragoman-ops")]
        baseline = [s for s in systems if s.name == "dragoman-baseline"]
        for system in systems:
            if system in pair or system in baseline:
                continue
            log(f"=== {system.label}")
            res = bench_system(system, args, mock, loadgen, results["direct_ttft"], log_dir)
            results["systems"][system.name] = res
            for e in res["errors"]:
                results["failures"].append({"system": system.name, "critical": system.critical, "error": e})
        if len(args.ledger) > 1 and "dragoman" in args.systems:
            log(f"=== the usage ledger: {', '.join(args.ledger)}, side by side, {args.ledger_rounds} round(s) per cell")
            results["ledger"] = compare(ledger_systems(args, tmp, cpus), args, mock, loadgen, log_dir)
        if len(pair) == 2:
            log("=== ops: all off vs all on, interleaved")
            results["ops"] = ops.compare(pair[0], pair[1], args, mock, loadgen, log_dir)
            for e in results["ops"]["errors"]:
                results["failures"].append({"system": "ops", "critical": True, "error": e})
        if baseline:
            now = next(s for s in systems if s.name == "dragoman-off")
            log("=== the earlier dragoman (--baseline-cmd) vs this one, all off, interleaved")
            results["baseline"] = ops.compare(baseline[0], now, args, mock, loadgen, log_dir, title="baseline")
            for e in results["baseline"]["errors"]:
                results["failures"].append({"system": "baseline", "critical": True, "error": e})
        if args.smoke:
            log("=== load and faults (miniature)")
            results["faults"] = faults.run(args, cpus, log_dir, tmp, smoke=True)
            for e in results["faults"]["failures"]:
                results["failures"].append({"system": "faults", "critical": True, "error": e})
        mock_stats_final = mock.stats()
        results["mock_final_stats"] = mock_stats_final
        stop_all()
        if any(store != "off" for store in args.ledger) and "dragoman" in args.systems:
            log("ledger: the writer's own CPU per row (bench/ledger_writer.py)")
            rows = 5_000 if args.smoke else 50_000
            results["ledger_writer"] = writer_cpu(rows, scratch.url if scratch is not None else None)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        if scratch is not None:
            scratch.drop()

    table = render_table(results, args.concurrency)
    if "ops" in results:
        table += "\n\n" + ops.render(results["ops"], args.concurrency)
    if "baseline" in results:
        table += "\n\n" + ops.render(
            results["baseline"], args.concurrency, "earlier dragoman vs now (all off)", ("then", "now")
        )
    results["table"] = table
    if "ledger" in results:
        results["ledger_table"], below = ledger_report(
            results["ledger"], results.get("ledger_writer") or {}, args.concurrency
        )
        results["failures"] += [{"system": "ledger", "critical": False, "error": e} for e in below]
    write_json(results, out_path)
    print_summary(results, table, args, out_path)
    if "faults" in results:
        print(f"\nload and faults\n{faults.render(results['faults'])}")
    if "ledger_table" in results:
        print(f"\nthe usage ledger, per store (same run; goal: on/off >= 0.9x)\n{results['ledger_table']}")
    critical = [f for f in results["failures"] if f["critical"]]
    for f in results["failures"]:
        print(f"{'FAIL' if f['critical'] else 'WARN'} [{f['system']}] {f['error']}", file=sys.stderr)
    if critical:
        print(f"\n{len(critical)} failure(s); details in {out_path} ('failures', and 'validation' per system)")
        return 1
    if args.smoke:
        print("smoke: OK")
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_faults(
    args: argparse.Namespace, cpus: CpuLayout, log_dir: Path, tmp: Path, out_path: Path, results: dict[str, Any]
) -> int:
    """`--faults`: the load-and-fault run alone."""
    try:
        results["faults"] = faults.run(args, cpus, log_dir, tmp, smoke=False)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(results, out_path)
    print(faults.render(results["faults"]))
    print(f"\nresults in {out_path}")
    for e in results["faults"]["failures"]:
        print(f"FAIL [faults] {e}", file=sys.stderr)
    return 1 if results["faults"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
