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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import rawhttp  # noqa: E402
from scenarios import SCENARIOS, Scenario, check_response  # noqa: E402

SCN_BY_KEY = {s.key: s for s in SCENARIOS}

HOST = "127.0.0.1"
# Preferred ports; any that is taken (say, by a concurrent run) is swapped for a free one at start-up.
PORTS = {"mock": 9100, "dragoman": 4100, "dragoman-workers": 4101, "bare": 4200, "litellm": 4300}
MIB = 1024 * 1024
NOISE_PCT = 10.0  # CPU used by other processes (% of a core) above which a measurement is repeated
PAGE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ /proc helpers


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, []))
    return out


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rfind(b")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def busy_ticks() -> int:
    """CPU ticks spent busy on the whole machine (all cores) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4]  # minus idle and iowait


def own_ticks() -> int:
    """Ticks of this harness and everything it started, live or already reaped."""
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rfind(b")") + 2 :].split()
    return cpu_ticks(process_tree(os.getpid())) + int(fields[13]) + int(fields[14])  # + cutime, cstime


def wait_quiet(max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) for a 0.5 s window in which other processes use <= NOISE_PCT; returns
    the foreign CPU of the last window."""
    deadline = time.monotonic() + max_wait
    while True:
        f = ForeignCpu()
        time.sleep(0.5)
        pct = f.pct()
        if pct <= NOISE_PCT or time.monotonic() >= deadline:
            return pct


class ForeignCpu:
    """Measures CPU used by processes this harness did not start (other work on the machine = noise)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.busy0 = busy_ticks()
        self.own0 = own_ticks()

    def pct(self) -> float:
        """Percent of one core used by foreign processes since construction."""
        wall = time.perf_counter() - self.t0
        foreign = (busy_ticks() - self.busy0) - (own_ticks() - self.own0)
        return max(0.0, 100.0 * foreign / CLK_TCK / wall) if wall > 0 else 0.0


# ----------------------------------------------------------------------------------------- processes


def pick_ports() -> None:
    """Keep each preferred port that is free; replace taken ones with free ephemeral ports."""
    held: list[socket.socket] = []
    try:
        for name, port in PORTS.items():
            s = socket.socket()
            try:
                s.bind((HOST, port))
            except OSError:
                s.close()
                s = socket.socket()
                s.bind((HOST, 0))
                PORTS[name] = s.getsockname()[1]
                log(f"port {port} ({name}) is taken, using {PORTS[name]}")
            held.append(s)
    finally:
        for s in held:
            s.close()


@dataclass
class CpuLayout:
    sut: list[int] | None  # cores for the system under test (first one for single-worker runs)
    load: list[int] | None  # core for mock upstream + load generator + this script
    note: str = ""

    @classmethod
    def detect(cls) -> CpuLayout:
        cpus = sorted(os.sched_getaffinity(0))
        if not shutil.which("taskset"):
            return cls(None, None, "taskset not found: nothing pinned")
        if len(cpus) < 2:
            return cls(None, None, "one core: nothing pinned, numbers are indicative only")
        return cls([cpus[0], *cpus[2:]], [cpus[1]])

    def sut_cpus(self, workers: int) -> list[int] | None:
        if self.sut is None:
            return None
        if workers <= len(self.sut):
            return self.sut[:workers]
        return sorted(self.sut + (self.load or []))  # oversubscribed: shares the load core

    @staticmethod
    def prefix(cpus: list[int] | None) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []


class Server:
    """A spawned server in its own session (process group), so it and its workers stop together."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, port: int, path: str, timeout: float) -> float:
        """Seconds from spawn to the first 200 on ``path``; raises RuntimeError on exit or timeout."""
        deadline = self.t_spawn + timeout
        while time.perf_counter() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with suppress(OSError, rawhttp.HTTPError):
                if rawhttp.get(HOST, port, path, timeout=1.0).status == 200:
                    return time.perf_counter() - self.t_spawn
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not healthy on :{port}{path} after {timeout:.0f}s:\n{self.log_tail()}")

    def tree(self) -> list[int]:
        return process_tree(self.pid) if self.alive() else []

    def log_tail(self, n: int = 25) -> str:
        with suppress(OSError):
            self._log.flush()
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        return ""

    def stop(self) -> None:
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        else:  # leader gone: reap any workers left in its group
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        self._log.close()


_LIVE: list[Server] = []


def spawn(name: str, cmd: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Server:
    log(f"starting {name}: {shlex.join(cmd)}")
    s = Server(name, cmd, log_dir / f"{name}.log", env)
    _LIVE.append(s)
    return s


def stop(s: Server) -> None:
    s.stop()
    if s in _LIVE:
        _LIVE.remove(s)


class RssSampler:
    """Samples the RSS of a process tree every 100 ms while active; keeps the peak."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0
        self._active = threading.Event()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        pids: list[int] = []
        last_tree = 0.0
        while not self._quit.is_set():
            if self._active.wait(0.1):
                now = time.monotonic()
                if now - last_tree > 1.0 or not pids:
                    pids, last_tree = self.server.tree(), now
                self.peak = max(self.peak, rss_bytes(pids))
                time.sleep(0.1)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        self._active.set()
        try:
            yield
        finally:
            self._active.clear()

    def close(self) -> None:
        self._quit.set()
        self._active.set()
        self._thread.join(2)


# ------------------------------------------------------------------------------------------ systems


@dataclass
class System:
    name: str  # key in results: bare | dragoman | dragoman-w4 | litellm
    label: str
    port: int
    health: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    passthrough_only: bool = False  # bare: forwards every request to the path it came on
    critical: bool = True  # failures here make the run fail
    startup_timeout: float = 60.0
    footprint: tuple[str, list[list[Any]], list[str]] | None = None  # (python, [[dist, extras]], extra dirs)


def dragoman_command(args: argparse.Namespace) -> list[str]:
    if args.dragoman_cmd:
        return shlex.split(args.dragoman_cmd)
    for cand in (ROOT / ".venv" / "bin" / "dragoman", Path(sys.executable).parent / "dragoman"):
        if cand.exists():
            return [str(cand)]
    found = shutil.which("dragoman")
    return [found] if found else [sys.executable, "-m", "dragoman"]


def dragoman_config(port: int) -> str:
    return f"""\
# generated by bench/run.py
[server]
host = "{HOST}"
port = {port}
default_provider = "mock-openai"

[providers.mock-openai]
dialect = "openai"
base_url = "http://{HOST}:{PORTS["mock"]}/v1"
api_key = "bench"
models = ["gpt-bench"]

[providers.mock-anthropic]
dialect = "anthropic"
base_url = "http://{HOST}:{PORTS["mock"]}"
api_key = "bench"
models = ["claude-bench"]
"""


def litellm_config() -> str:
    return f"""\
# generated by bench/run.py
model_list:
  - model_name: mock-openai/gpt-bench
    litellm_params:
      model: openai/gpt-bench
      api_base: http://{HOST}:{PORTS["mock"]}/v1
      api_key: bench
  - model_name: mock-anthropic/claude-bench
    litellm_params:
      model: anthropic/claude-bench
      api_base: http://{HOST}:{PORTS["mock"]}
      api_key: bench
litellm_settings:
  drop_params: true
  # route /v1/messages for OpenAI models to chat/completions (the default is the Responses API)
  use_chat_completions_url_for_anthropic_messages: true
general_settings:
  # no auth, like the other systems under test; LiteLLM refuses to start keyless otherwise
  dangerously_permit_weak_or_unset_master_key: true
"""


def find_litellm_python(args: argparse.Namespace) -> str | None:
    if args.no_litellm or (args.smoke and not args.litellm_python):
        return None
    cands = [args.litellm_python] if args.litellm_python else []
    cands += [str(BENCH / ".venv-litellm" / "bin" / "python"), sys.executable]
    for py in cands:
        if not py or not Path(py).exists():
            continue
        ok = subprocess.run(
            [py, "-c", "import importlib.util,sys; sys.exit(importlib.util.find_spec('litellm') is None)"],
            capture_output=True,
        )
        if ok.returncode == 0:
            return str(py)
    return None


def build_systems(args: argparse.Namespace, tmp: Path, cpus: CpuLayout) -> list[System]:
    wanted = set(args.systems.split(","))
    systems: list[System] = []
    py = sys.executable
    if "bare" in wanted:
        cmd = [py, str(BENCH / "bare_proxy.py"), "--port", str(PORTS["bare"])]
        cmd += ["--upstream", f"http://{HOST}:{PORTS['mock']}"]
        systems.append(
            System(
                "bare",
                "bare aiohttp",
                PORTS["bare"],
                "/health",
                CpuLayout.prefix(cpus.sut_cpus(1)) + cmd,
                passthrough_only=True,
                footprint=(py, [["aiohttp", []], ["msgspec", []], ["uvloop", []]], []),
            )
        )
    if "dragoman" in wanted:
        dcmd = dragoman_command(args)
        worker_counts = [1] + ([args.workers] if args.workers > 1 else [])
        for w in worker_counts:
            port = PORTS["dragoman"] if w == 1 else PORTS["dragoman-workers"]
            cfg = tmp / f"dragoman-{port}.toml"
            cfg.write_text(dragoman_config(port))
            cmd = [*dcmd, "serve", "--config", str(cfg), "--host", HOST, "--port", str(port)]
            if w > 1:
                cmd += ["--workers", str(w)]
            dpy = dcmd[0] if dcmd[0].endswith(("python", "python3")) else py
            systems.append(
                System(
                    "dragoman" if w == 1 else f"dragoman-w{w}",
                    "dragoman" if w == 1 else f"dragoman x{w}",
                    port,
                    "/health",
                    CpuLayout.prefix(cpus.sut_cpus(w)) + cmd,
                    workers=w,
                    footprint=(dpy, [["dragoman", []]], [str(ROOT / "src" / "dragoman")]),
                )
            )
    if "litellm" in wanted:
        lpy = find_litellm_python(args)
        if lpy is None:
            if not args.no_litellm and not args.smoke:
                log("LiteLLM not importable (create bench/.venv-litellm, see bench/README.md): skipped")
        else:
            cfg = tmp / "litellm.yaml"
            cfg.write_text(litellm_config())
            cmd = [lpy, "-m", "litellm.proxy.proxy_cli", "--config", str(cfg), "--host", HOST]
            cmd += ["--port", str(PORTS["litellm"]), "--num_workers", "1"]
            systems.append(
                System(
                    "litellm",
                    "litellm",
                    PORTS["litellm"],
                    "/health/liveliness",
                    CpuLayout.prefix(cpus.sut_cpus(1)) + cmd,
                    env={
                        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                        "LITELLM_LOG": "ERROR",
                        "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True",
                    },
                    critical=False,
                    startup_timeout=120.0,
                    footprint=(lpy, [["litellm", ["proxy"]]], []),
                )
            )
    return systems


# ------------------------------------------------------------------------------------ load generation


LUA_TEMPLATE = """\
-- generated by bench/run.py
wrk.method = "POST"
wrk.path = "{path}"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_p50":%d,"lat_p99":%d,"lat_mean":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


class LoadGen:
    def __init__(self, kind: str, cpus: CpuLayout, tmp: Path) -> None:
        self.kind = kind  # "wrk" | "python"
        self.prefix = CpuLayout.prefix(cpus.load)
        self.tmp = tmp

    def run(self, port: int, scn: Scenario, concurrency: int, duration: float) -> dict[str, Any]:
        body = scn.body().decode()
        if self.kind == "wrk":
            script = self.tmp / f"{scn.key}.lua"
            headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in scn.headers().items())
            script.write_text(LUA_TEMPLATE.format(path=scn.path, body=body, headers=headers))
            cmd = [*self.prefix, "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s"]
            cmd += ["--timeout", "10s", "-s", str(script), f"http://{HOST}:{port}{scn.path}"]
        else:
            body_file = self.tmp / f"{scn.key}.json"
            body_file.write_text(body)
            cmd = [*self.prefix, sys.executable, str(BENCH / "loadgen.py"), "--url", f"http://{HOST}:{port}{scn.path}"]
            cmd += ["--body-file", str(body_file), "--headers", json.dumps(scn.headers())]
            cmd += ["--concurrency", str(concurrency), "--duration", str(duration)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        for line in out.stdout.splitlines():
            if line.startswith("WRKJSON "):
                r: dict[str, Any] = json.loads(line[8:])
                r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
                r["errors"] = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
                return r
        raise RuntimeError(f"{self.kind} produced no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


def choose_loadgen(pref: str, smoke: bool) -> tuple[str, str]:
    """Returns (kind, note)."""
    if pref == "python":
        return "python", "built-in aiohttp load generator (--loadgen python)"
    if shutil.which("wrk"):
        return "wrk", _wrk_version()
    can_apt = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if can_apt:
        log("wrk not found: installing it with apt-get (root)")
        ok = subprocess.run(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk",
            shell=True,
            capture_output=True,
            timeout=600,
        )
        if ok.returncode == 0 and shutil.which("wrk"):
            return "wrk", _wrk_version()
        log(f"apt-get install wrk failed: {ok.stderr.decode(errors='replace')[-500:]}")
    if pref == "wrk":
        raise SystemExit("wrk is required (--loadgen wrk) but not installed and not installable")
    note = "built-in aiohttp load generator (wrk unavailable): req/s are a lower bound"
    if not smoke:
        log(f"WARNING: {note}")
    return "python", note


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    words = (out.stdout + out.stderr).split()
    return f"wrk {words[1]}" if len(words) > 1 and words[0] == "wrk" else "wrk"


# ----------------------------------------------------------------------------------------- measuring


class Mock:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn = rawhttp.Connection(HOST, PORTS["mock"], timeout=5)

    def stats(self, reset: bool = False) -> dict[str, Any]:
        r = self.conn.request("GET", "/stats?reset=1" if reset else "/stats")
        stats: dict[str, Any] = json.loads(r.body)
        return stats

    def reset(self) -> None:
        self.stats(reset=True)


def expected_upstream(system: System, scn: Scenario) -> str:
    return scn.path if system.passthrough_only else scn.direct_path()


def check_upstream(system: System, scn: Scenario, st: dict[str, Any], at_least: int) -> list[str]:
    """Problems with what the mock saw for ``at_least`` requests of ``scn`` through ``system``."""
    want = expected_upstream(system, scn)
    other = "/v1/messages" if want == "/v1/chat/completions" else "/v1/chat/completions"
    p: list[str] = []
    if st.get("errors"):
        p.append(f"mock rejected {st['errors']} upstream request(s); last: {st.get('last_error')}")
    if st.get(want, 0) < at_least:
        p.append(f"mock saw {st.get(want, 0)} request(s) on {want}, expected >= {at_least}")
    if st.get(other, 0):
        p.append(f"mock saw {st[other]} request(s) on {other}, expected none (wrong upstream dialect)")
    return p


def validate(system: System, mock: Mock) -> list[dict[str, Any]]:
    """One request per scenario through ``system``; returns a failure record per bad one."""
    failures: list[dict[str, Any]] = []
    with rawhttp.Connection(HOST, system.port, timeout=30) as conn:
        for scn in SCENARIOS:
            mock.reset()
            try:
                r = conn.request("POST", scn.path, scn.body(), scn.headers())
                problems = check_response(scn, r.status, r.header("content-type"), r.body)
                resp = {"status": r.status, "headers": r.headers, "body": r.text(4000)}
            except (OSError, rawhttp.HTTPError) as e:
                problems, resp = [f"request failed: {type(e).__name__}: {e}"], {}
            st = mock.stats()
            problems += check_upstream(system, scn, st, 1)
            if problems:
                failures.append(
                    {
                        "scenario": scn.key,
                        "request": {
                            "method": "POST",
                            "path": scn.path,
                            "headers": scn.headers(),
                            "body": scn.body().decode(),
                        },
                        "response": resp,
                        "mock_stats": st,
                        "problems": problems,
                    }
                )
                log(f"  {system.name} {scn.label}: FAIL: {'; '.join(problems)}")
            else:
                log(f"  {system.name} {scn.label}: ok")
    return failures


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def measure_ttfb(
    port: int, path: str, body: bytes, headers: dict[str, str], n: int, retries: int = 0, quiet_wait: float = 0
) -> dict[str, Any]:
    """Sequential time-to-first-body-byte; re-measured up to ``retries`` times while the machine is busy."""
    best: dict[str, Any] | None = None
    for _ in range(1 + retries):
        if quiet_wait > 0:
            wait_quiet(quiet_wait)
        foreign = ForeignCpu()
        r = _measure_ttfb_once(port, path, body, headers, n)
        r["foreign_cpu_pct"] = foreign.pct()
        if best is None or r["foreign_cpu_pct"] < best["foreign_cpu_pct"]:
            best = r
        if r["errors"] or r["foreign_cpu_pct"] <= NOISE_PCT:
            return r
    assert best is not None
    return best


def _measure_ttfb_once(port: int, path: str, body: bytes, headers: dict[str, str], n: int) -> dict[str, Any]:
    samples: list[float] = []
    errors = 0
    with rawhttp.Connection(HOST, port, timeout=30) as conn:
        for i in range(n + max(5, n // 10)):  # first ones are warm-up
            try:
                r = conn.request("POST", path, body, headers)
            except (OSError, rawhttp.HTTPError):
                errors += 1
                continue
            if r.status != 200:
                errors += 1
            elif i >= max(5, n // 10):
                samples.append(r.ttfb_s)
    return {
        "n": len(samples),
        "errors": errors,
        "p50_ms": percentile(samples, 0.50) * 1e3,
        "p99_ms": percentile(samples, 0.99) * 1e3,
    }


def footprint(python: str, roots: list[list[Any]], extra_dirs: list[str]) -> dict[str, Any] | None:
    """Bytes on disk of the installed distributions a system needs (closure of its requirements)."""
    script = r"""
import json, os, re, sys
import importlib.metadata as md
try:
    from packaging.requirements import Requirement
except ImportError:
    Requirement = None
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
seen = {}
stack = [(n, frozenset(e)) for n, e in json.loads(sys.argv[1])]
while stack:
    name, extras = stack.pop()
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    key = norm(dist.metadata["Name"])
    if key in seen and extras <= seen[key][1]:
        continue
    seen[key] = (dist, extras | (seen[key][1] if key in seen else frozenset()))
    for req in dist.requires or []:
        if Requirement is not None:
            r = Requirement(req)
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras | {""}):
                stack.append((r.name, frozenset(r.extras)))
        else:
            m = re.match(r"\s*([A-Za-z0-9_.\-]+)", req)
            ex = re.search(r"extra\s*==\s*['\"]([^'\"]+)", req)
            if m and (ex is None or ex.group(1) in extras):
                stack.append((m.group(1), frozenset()))
total = files = 0
for dist, _ in seen.values():
    for f in dist.files or []:
        try:
            total += os.path.getsize(dist.locate_file(f)); files += 1
        except OSError:
            pass
for d in sys.argv[2:]:
    for root, _, names in os.walk(d):
        for n in names:
            total += os.path.getsize(os.path.join(root, n)); files += 1
print(json.dumps({"distributions": len(seen), "files": files, "bytes": total,
                  "names": sorted(seen)}))
"""
    try:
        out = subprocess.run(
            [python, "-c", script, json.dumps(roots), *extra_dirs], capture_output=True, text=True, timeout=120
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def measure_cell(
    system: System,
    srv: Server,
    scn: Scenario,
    conc: int,
    args: argparse.Namespace,
    mock: Mock,
    loadgen: LoadGen,
    sampler: RssSampler,
) -> dict[str, Any]:
    """One (scenario, concurrency) load run; repeated up to --noise-retries times while the machine is busy."""
    best: dict[str, Any] | None = None
    for attempt in range(1 + args.noise_retries):
        if args.quiet_wait > 0:
            wait_quiet(args.quiet_wait)
        if args.warmup > 0:
            loadgen.run(system.port, scn, conc, args.warmup)
        mock.reset()
        pids = srv.tree()
        mock_pids = [mock.server.pid]
        c0, m0, t0 = cpu_ticks(pids), cpu_ticks(mock_pids), time.perf_counter()
        foreign = ForeignCpu()
        with sampler.sampling():
            r = loadgen.run(system.port, scn, conc, args.duration)
        wall = time.perf_counter() - t0
        r["foreign_cpu_pct"] = foreign.pct()
        r["sut_cpu_pct"] = 100.0 * (cpu_ticks(pids) - c0) / CLK_TCK / wall
        r["mock_cpu_pct"] = 100.0 * (cpu_ticks(mock_pids) - m0) / CLK_TCK / wall
        r["attempt"] = attempt + 1
        st = mock.stats()
        r["mock_stats"] = st
        problems = check_upstream(system, scn, st, r["requests"])
        if r["errors"]:
            problems.append(
                f"load generator saw errors: status={r['err_status']} read={r['err_read']} "
                f"connect={r['err_connect']} write={r['err_write']} timeout={r['err_timeout']}"
            )
        if r["requests"] == 0:
            problems.append("no request completed")
        r["problems"] = problems
        if problems:
            return r
        if best is None or r["foreign_cpu_pct"] < best["foreign_cpu_pct"]:
            best = r
        if r["foreign_cpu_pct"] <= NOISE_PCT:
            break
        if attempt < args.noise_retries:
            log(
                f"  {system.name} {scn.label} c={conc}: other processes used {r['foreign_cpu_pct']:.0f}% CPU, "
                "measuring again"
            )
            time.sleep(1.0)
    assert best is not None
    return best


def bench_system(
    system: System,
    args: argparse.Namespace,
    mock: Mock,
    loadgen: LoadGen,
    direct_ttfb: dict[str, dict[str, Any]],
    log_dir: Path,
) -> dict[str, Any]:
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
        for scn in SCENARIOS:
            t = measure_ttfb(
                system.port,
                scn.path,
                scn.body(),
                scn.headers(),
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
        for scn in SCENARIOS:
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


def profile(srv: Server, system: System, loadgen: LoadGen, args: argparse.Namespace, log_dir: Path) -> dict[str, str]:
    """py-spy of the server under the translated OpenAI->Anthropic stream load (when py-spy exists)."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        log("py-spy not installed: no profile (pip install py-spy)")
        return {}
    out: dict[str, str] = {}
    for key in ("openai-anthropic-stream", "openai-openai-stream"):
        scn = next(s for s in SCENARIOS if s.key == key)
        dur = max(5, int(args.duration))
        svg = log_dir / f"pyspy-{system.name}-{key}.svg"
        raw = log_dir / f"pyspy-{system.name}-{key}.txt"
        rec = subprocess.Popen(
            [pyspy, "record", "-p", str(srv.pid), "-d", str(dur), "-r", "200", "-o", str(svg), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rec_raw = subprocess.Popen(
            [
                pyspy,
                "record",
                "-p",
                str(srv.pid),
                "-d",
                str(dur),
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        loadgen.run(system.port, scn, max(args.concurrency), dur + 1)
        rec.wait(30)
        rec_raw.wait(30)
        out[key] = str(svg)
        log(f"py-spy profile of {system.name} under {scn.label}: {svg} (collapsed stacks: {raw})")
    return out


# -------------------------------------------------------------------------------------------- report


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


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Dragoman benchmark (see bench/README.md)")
    p.add_argument("--duration", type=float, help="seconds of load per cell (default 10; smoke 1)")
    p.add_argument("--warmup", type=float, help="seconds of unmeasured load first (default 2; smoke 0)")
    p.add_argument("--concurrency", help="comma-separated connection counts (default 1,32; smoke 1,4)")
    p.add_argument("--ttft-requests", type=int, help="sequential requests per TTFT sample (default 300; smoke 20)")
    p.add_argument("--smoke", action="store_true", help="short run proving every piece works (CI)")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even when installed")
    p.add_argument("--litellm-python", help="interpreter with litellm[proxy] (default bench/.venv-litellm)")
    p.add_argument("--systems", default="bare,dragoman,litellm", help="subset to run (default all)")
    p.add_argument("--workers", type=int, default=1, help="also run dragoman with N workers (scaling row)")
    p.add_argument("--dragoman-cmd", help="command that runs dragoman (default .venv/bin/dragoman)")
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
    p.add_argument("--profile", action="store_true", help="py-spy record dragoman under stream load")
    p.add_argument("--out", help="JSON results path (default bench/results/latest.json; smoke: smoke.json)")
    args = p.parse_args(argv)
    defaults: dict[str, Any] = (
        {"duration": 1.0, "warmup": 0.0, "concurrency": "1,4", "ttft_requests": 20, "noise_retries": 0, "quiet_wait": 0}
        if args.smoke
        else {
            "duration": 10.0,
            "warmup": 2.0,
            "concurrency": "1,32",
            "ttft_requests": 300,
            "noise_retries": 2,
            "quiet_wait": 30,
        }
    )
    defaults["out"] = str(BENCH / "results" / ("smoke.json" if args.smoke else "latest.json"))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c]
    return args


def meta(args: argparse.Namespace, cpus: CpuLayout, n_cores: int, loadgen_note: str) -> dict[str, Any]:
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
    pick_ports()
    systems = build_systems(args, tmp, cpus)
    log(f"systems: {', '.join(s.name for s in systems)}; load generator: {loadgen_note}; logs in {log_dir}")
    quiet = ForeignCpu()
    time.sleep(1.0)
    results["meta"]["foreign_cpu_at_start_pct"] = busy = quiet.pct()
    if busy > 20:
        log(f"WARNING: other processes are using {busy:.0f}% of a core: the numbers will be noisy")

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
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
        for system in systems:
            log(f"=== {system.label}")
            res = bench_system(system, args, mock, loadgen, results["direct_ttft"], log_dir)
            results["systems"][system.name] = res
            for e in res["errors"]:
                results["failures"].append({"system": system.name, "critical": system.critical, "error": e})
        mock_stats_final = mock.stats()
        results["mock_final_stats"] = mock_stats_final
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for s in list(_LIVE):
            stop(s)
        shutil.rmtree(tmp, ignore_errors=True)

    table = render_table(results, args.concurrency)
    results["table"] = table
    out_path.write_text(json.dumps(results, indent=2, default=str))
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
    cells = [r for s in results["systems"].values() for c in s.get("load", {}).values() for r in c.values()]
    noisy = [r["foreign_cpu_pct"] for r in cells if r.get("foreign_cpu_pct", 0) > 10]
    if noisy:
        print(
            f"WARNING: other processes on this machine used >10% of a core during {len(noisy)}/{len(cells)} "
            f"cells (max {max(noisy):.0f}%): those numbers are noisy; rerun on a quiet machine"
        )
    print(f"results: {out_path}")
    critical = [f for f in results["failures"] if f["critical"]]
    for f in results["failures"]:
        print(f"{'FAIL' if f['critical'] else 'WARN'} [{f['system']}] {f['error']}", file=sys.stderr)
    if critical:
        print(f"\n{len(critical)} failure(s); details in {out_path} ('failures', and 'validation' per system)")
        return 1
    if args.smoke:
        print("smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
