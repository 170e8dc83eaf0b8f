"""The results: the ``meta`` block of the JSON, the table, the JSON file and the summary printed after the table."""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from scenarios import SCENARIOS, Scenario
from systems import CpuLayout

SCN_BY_KEY = {s.key: s for s in SCENARIOS}


def meta(args: argparse.Namespace, cpus: CpuLayout, n_cores: int, loadgen_note: str) -> dict[str, Any]:
    """The ``meta`` block of the JSON: machine, pinning, load generator and run parameters."""
    model = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": model,
        "cores": n_cores,
        "sut_cores": cpus.sut,
        "load_core": cpus.load,
        "pinning": cpus.note or f"sut on core(s) {cpus.sut}, mock + load generator + harness on {cpus.load}",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadgen": loadgen_note,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "concurrency": args.concurrency,
        "ttft_requests": args.ttft_requests,
        "smoke": args.smoke,
        "scenarios": {s.key: s.label for s in SCENARIOS},
    }


def fmt_num(x: float | None, digits: int = 0) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:,.{digits}f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if not a or not b or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x"


def render_table(results: dict[str, Any], concurrency: list[int]) -> str:
    systems: dict[str, Any] = results["systems"]
    cols: list[str] = [n for n in ("bare", "dragoman") if n in systems]
    cols += sorted(n for n in systems if n.startswith("dragoman-w"))
    cols += [n for n in ("litellm",) if n in systems]
    header = ["", "conc", *[systems[c]["label"] for c in cols], "drag/bare", "drag/litellm"]
    rows: list[list[str]] = []

    def ratio_cells(get: Callable[[str], float | None]) -> list[str]:
        d = get("dragoman") if "dragoman" in systems else None
        return [
            fmt_ratio(d, get("bare") if "bare" in systems else None),
            fmt_ratio(d, get("litellm") if "litellm" in systems else None),
        ]

    rows.append(["req/s (higher is better)", "", *[""] * len(cols), "", ""])
    for scn in SCENARIOS:
        for conc in concurrency:

            def rps(name: str, scn: Scenario = scn, conc: int = conc) -> float | None:
                r = systems[name].get("load", {}).get(scn.key, {}).get(str(conc))
                return r["rps"] if r else None

            rows.append([f"  {scn.label}", str(conc), *[fmt_num(rps(c)) for c in cols], *ratio_cells(rps)])

    rows.append(["added TTFT over direct, p50 / p99 ms", "1", *[""] * len(cols), "", ""])
    for scn in SCENARIOS:

        def ttft(name: str, scn: Scenario = scn) -> str:
            t = systems[name].get("ttft", {}).get(scn.key)
            return f"{t['added_p50_ms']:.2f} / {t['added_p99_ms']:.2f}" if t else "-"

        def ttft50(name: str, scn: Scenario = scn) -> float | None:
            t = systems[name].get("ttft", {}).get(scn.key)
            return t["added_p50_ms"] if t else None

        rows.append([f"  {scn.label}", "", *[ttft(c) for c in cols], *ratio_cells(ttft50)])

    def simple(key: str, title: str, digits: int, scale: float = 1.0) -> None:
        def get(name: str) -> float | None:
            v = systems[name].get(key)
            return v * scale if isinstance(v, int | float) else None

        rows.append([title, "", *[fmt_num(get(c), digits) for c in cols], *ratio_cells(get)])

    simple("startup_s", "start-up to first 200 on health, s", 2)
    simple("rss_start_mib", "RSS idle after start-up, MiB", 1)
    simple("rss_idle_mib", "RSS idle after warm-up, MiB", 1)
    simple("rss_peak_mib", "RSS peak under load, MiB", 1)
    for c in cols:
        fp = systems[c].get("footprint")
        systems[c]["footprint_mb"] = fp["bytes"] / 1e6 if fp else None
    simple("footprint_mb", "install footprint (deps closure), MB", 1)

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(lines)


def responses_ratio(results: dict[str, Any]) -> str:
    """Dragoman's req/s on a translated Responses stream over a translated Chat Completions stream
    (OpenAI->Anthropic), per concurrency, measured in the same run ("" when either is missing)."""
    load = results.get("systems", {}).get("dragoman", {}).get("load", {})
    chat, responses = load.get("openai-anthropic-stream", {}), load.get("responses-anthropic-stream", {})
    cells = [
        f"c={conc} {responses[conc]['rps'] / chat[conc]['rps']:.2f}x"
        for conc in chat
        if conc in responses and chat[conc].get("rps") and responses[conc].get("rps")
    ]
    return ", ".join(cells)


def write_json(results: dict[str, Any], out_path: Path) -> None:
    out_path.write_text(json.dumps(results, indent=2, default=str))


def print_summary(results: dict[str, Any], table: str, args: argparse.Namespace, out_path: Path) -> None:
    """The header, the table and the notes under it (direct TTFT, mock CPU, noise), on stdout."""
    m = results["meta"]
    print()
    print(f"Dragoman benchmark — {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['time']}")
    print(f"{m['pinning']}; load: {m['loadgen']}; {args.duration:g}s per cell after {args.warmup:g}s warm-up")
    print()
    print(table)
    print()
    max_mock = max(
        (
            r.get("mock_cpu_pct", 0)
            for s in results["systems"].values()
            for c in s.get("load", {}).values()
            for r in c.values()
        ),
        default=0,
    )
    direct = ", ".join(
        f"{SCN_BY_KEY[k].label} {v['p50_ms']:.2f}/{v['p99_ms']:.2f}" for k, v in results.get("direct_ttft", {}).items()
    )
    print(f"direct-to-mock TTFT p50/p99 ms (the baseline subtracted above): {direct}")
    print(f"mock upstream peak CPU during load: {max_mock:.0f}% of its core (the SUT should be the bottleneck)")
    ratio = responses_ratio(results)
    if ratio:
        print(f"translated Responses stream / translated Chat Completions stream, dragoman req/s: {ratio}")
    cells = [r for s in results["systems"].values() for c in s.get("load", {}).values() for r in c.values()]
    noisy = [r["foreign_cpu_pct"] for r in cells if r.get("foreign_cpu_pct", 0) > 10]
    if noisy:
        print(
            f"WARNING: other processes on this machine used >10% of a core during {len(noisy)}/{len(cells)} "
            f"cells (max {max(noisy):.0f}%): those numbers are noisy; rerun on a quiet machine"
        )
    print(f"results: {out_path}")
