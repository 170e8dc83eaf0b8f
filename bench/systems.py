"""The processes of the benchmark: the systems under test and the mock upstream.

Ports, CPU pinning, starting and stopping servers (each in its own process group), waiting for their
health check (start-up time), reading their process trees, RSS and CPU time from /proc, sampling the
peak RSS under load, the command lines and generated configs of bare / Dragoman / LiteLLM, and the
client for the mock's ``/stats`` counters.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rawhttp
from scenarios import API_KEY, SCENARIOS, Scenario

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

HOST = "127.0.0.1"
# Preferred ports; any that is taken (say, by a concurrent run) is swapped for a free one at start-up.
PORTS = {
    "mock": 9100,
    "dragoman": 4100,
    "dragoman-workers": 4101,
    "dragoman-off": 4102,
    "dragoman-ops": 4103,
    "dragoman-baseline": 4104,
    "bare": 4200,
    "litellm": 4300,
}
MIB = 1024 * 1024
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


# ---------------------------------------------------------------------------------------- processes


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


def stop_all() -> None:
    """Stop every server spawned and not yet stopped (the mock included)."""
    for s in list(_LIVE):
        stop(s)


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
    """A system under test. `scenarios()` are the ones it serves."""

    name: str  # key in results: bare | dragoman | dragoman-w4 | litellm
    label: str
    port: int
    health: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    passthrough_only: bool = False  # bare: forwards every request to the path it came on
    clients: tuple[str, ...] = ("openai", "anthropic", "responses")  # the client dialects it serves
    critical: bool = True  # failures here make the run fail
    startup_timeout: float = 60.0
    footprint: tuple[str, list[list[Any]], list[str]] | None = None  # (python, [[dist, extras]], extra dirs)
    ledger: str | None = None  # dragoman: the usage store it runs with (sqlite | postgres | off)
    api_key: str = API_KEY  # what its clients send (dragoman-ops: a gateway key made for the run)

    def scenarios(self) -> tuple[Scenario, ...]:
        return tuple(s for s in SCENARIOS if s.client in self.clients)


def dragoman_command(args: argparse.Namespace) -> list[str]:
    if args.dragoman_cmd:
        return shlex.split(args.dragoman_cmd)
    for cand in (ROOT / ".venv" / "bin" / "dragoman", Path(sys.executable).parent / "dragoman"):
        if cand.exists():
            return [str(cand)]
    found = shutil.which("dragoman")
    return [found] if found else [sys.executable, "-m", "dragoman"]


# The operations comparison (`--systems ops`): everything the operator can turn off, off; and all of it
# on, with the requests carrying a gateway key whose limits are checked on every request.
OPS_OFF = """\
usage_store = "off"
metrics = false
access_log = false
virtual_keys = false
"""
OPS_ON = """\
usage_store = "sqlite"
metrics = true
access_log = true
log_level = "warning"
virtual_keys = true
"""


def dragoman_config(port: int, server_extra: str = 'usage_store = "sqlite"\n') -> str:
    return f"""\
# generated by bench/run.py
[server]
host = "{HOST}"
port = {port}
default_provider = "mock-openai"
{server_extra}

[providers.mock-openai]
dialect = "openai"
base_url = "http://{HOST}:{PORTS["mock"]}/v1"
api_key = "{API_KEY}"
models = ["gpt-bench"]

[providers.mock-anthropic]
dialect = "anthropic"
base_url = "http://{HOST}:{PORTS["mock"]}"
api_key = "{API_KEY}"
models = ["claude-bench"]
"""


def make_gateway_key(dcmd: list[str], cfg: Path, env: dict[str, str]) -> str:
    """A gateway key with limits far above what the run sends: every request is checked, none refused."""
    cmd = [*dcmd, "keys", "create", "bench", "--config", str(cfg), "--rpm", "100000000", "--tpm", "100000000000"]
    cmd += ["--budget", "1000000"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"dragoman keys create failed:\n{out.stderr}")
    return out.stdout.strip()


def litellm_config() -> str:
    return f"""\
# generated by bench/run.py
model_list:
  - model_name: mock-openai/gpt-bench
    litellm_params:
      model: openai/gpt-bench
      api_base: http://{HOST}:{PORTS["mock"]}/v1
      api_key: {API_KEY}
  - model_name: mock-anthropic/claude-bench
    litellm_params:
      model: anthropic/claude-bench
      api_base: http://{HOST}:{PORTS["mock"]}
      api_key: {API_KEY}
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
                clients=("openai", "anthropic"),  # the mock serves no /v1/responses to pass through to
                footprint=(py, [["aiohttp", []], ["msgspec", []], ["uvloop", []]], []),
            )
        )
    if "dragoman" in wanted:
        worker_counts = [1] + ([args.workers] if args.workers > 1 else [])
        for w in worker_counts:
            name, port = ("dragoman", PORTS["dragoman"]) if w == 1 else (f"dragoman-w{w}", PORTS["dragoman-workers"])
            label = "dragoman" if w == 1 else f"dragoman x{w}"
            systems.append(dragoman_system(args, tmp, cpus, name, label, port, args.ledger[0], w))
    if "ops" in wanted:
        dcmd = dragoman_command(args)
        for name, label, extra in (
            ("dragoman-off", "all off", OPS_OFF),
            ("dragoman-ops", "all on", OPS_ON),
        ):
            port = PORTS[name]
            cfg = tmp / f"{name}.toml"
            cfg.write_text(dragoman_config(port, extra))
            env = {"DRAGOMAN_DATA_DIR": str(tmp / f"data-{name}")}
            key = API_KEY
            if name == "dragoman-ops":
                key = make_gateway_key(dcmd, cfg, env)
            cmd = [*dcmd, "serve", "--config", str(cfg), "--host", HOST, "--port", str(port)]
            systems.append(
                System(
                    name,
                    f"dragoman {label}",
                    port,
                    "/health",
                    CpuLayout.prefix(cpus.sut_cpus(1)) + cmd,
                    env=env,
                    api_key=key,
                )
            )
    if getattr(args, "baseline_cmd", None):
        systems += baseline_pair(args, tmp, cpus, [s.name for s in systems])
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


def dragoman_system(
    args: argparse.Namespace, tmp: Path, cpus: CpuLayout, name: str, label: str, port: int, store: str, workers: int = 1
) -> System:
    """`dragoman serve` with its own config and data dir, the usage ledger in `store`."""
    dcmd = dragoman_command(args)
    dpy = dcmd[0] if dcmd[0].endswith(("python", "python3")) else sys.executable
    cfg = tmp / f"dragoman-{port}.toml"
    url = {"sqlite": "sqlite", "off": "off", "postgres": getattr(args, "ledger_postgres_url", "")}[store]
    cfg.write_text(dragoman_config(port, f'usage_store = "{url}"\n'))
    cmd = [*dcmd, "serve", "--config", str(cfg), "--host", HOST, "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    return System(
        name,
        label,
        port,
        "/health",
        CpuLayout.prefix(cpus.sut_cpus(workers)) + cmd,
        workers=workers,
        footprint=(dpy, [["dragoman", []]], [str(ROOT / "src" / "dragoman")]),
        env={"DRAGOMAN_DATA_DIR": str(tmp / f"data-{port}")},  # its ledger, not the user's
        ledger=store,
    )


def ledger_systems(args: argparse.Namespace, tmp: Path, cpus: CpuLayout) -> list[System]:
    """One dragoman per `--ledger` store, for the side-by-side ledger comparison."""
    return [
        dragoman_system(args, tmp, cpus, f"dragoman-ledger-{s}", f"dragoman ({s})", PORTS[f"dragoman-ledger-{s}"], s)
        for s in args.ledger
    ]


# --------------------------------------------------------------------------------------------- mock


class Mock:
    """Client for the running mock upstream's ``/stats`` counters (requests per upstream path, errors)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn = rawhttp.Connection(HOST, PORTS["mock"], timeout=5)

    def stats(self, reset: bool = False) -> dict[str, Any]:
        r = self.conn.request("GET", "/stats?reset=1" if reset else "/stats")
        stats: dict[str, Any] = json.loads(r.body)
        return stats

    def reset(self) -> None:
        self.stats(reset=True)


def baseline_pair(args: argparse.Namespace, tmp: Path, cpus: CpuLayout, have: list[str]) -> list[System]:
    """`--baseline-cmd`: an earlier Dragoman (e.g. a checkout of v0.1 in its own venv) beside this one
    with everything the operator can turn off, off (what the earlier one did not have), for the
    side-by-side comparison of the same scenarios. The earlier one gets the config it understood."""
    out: list[System] = []
    if "dragoman-off" not in have:
        port = PORTS["dragoman-off"]
        cfg = tmp / "dragoman-off.toml"
        cfg.write_text(dragoman_config(port, OPS_OFF))
        cmd = [*dragoman_command(args), "serve", "--config", str(cfg), "--host", HOST, "--port", str(port)]
        env = {"DRAGOMAN_DATA_DIR": str(tmp / "data-dragoman-off")}
        out.append(
            System(
                "dragoman-off", "dragoman all off", port, "/health", CpuLayout.prefix(cpus.sut_cpus(1)) + cmd, env=env
            )
        )
    port = PORTS["dragoman-baseline"]
    cfg = tmp / "dragoman-baseline.toml"
    cfg.write_text(dragoman_config(port, ""))
    cmd = [*shlex.split(args.baseline_cmd), "serve", "--config", str(cfg), "--host", HOST, "--port", str(port)]
    env = {"DRAGOMAN_DATA_DIR": str(tmp / "data-dragoman-baseline")}
    out.append(
        System(
            "dragoman-baseline",
            "dragoman baseline",
            port,
            "/health",
            CpuLayout.prefix(cpus.sut_cpus(1)) + cmd,
            env=env,
            clients=("openai", "anthropic"),  # the earlier one may not serve /v1/responses
        )
    )
    return out
