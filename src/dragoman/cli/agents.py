"""`dragoman code` and `dragoman codex`: a coding agent started against the gateway in one command.

    dragoman code [claude args…]    Claude Code; ANTHROPIC_BASE_URL at the gateway, a key, and
                                    the model variables from [clients.claude-code]
    dragoman codex [codex args…]    Codex; a generated CODEX_HOME whose config.toml names the
                                    gateway's /v1/responses as its model provider ([clients.codex])

The gateway is the one already serving at server.host:server.port when its /health answers, else
one started inside this process for the session, on a free loopback port, logging to a file (the
agent owns the terminal). The agent's exit status is ours; signals sent to us reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from dragoman.cli.common import add_config, config_from
from dragoman.config import Config, ConfigError

if TYPE_CHECKING:
    from aiohttp import web

# `dragoman code --config x.toml -p "hi"`: only the options before the agent's own are ours
PASSTHROUGH = ("code", "codex")
OWN_OPTIONS = ("--config",)
DUMMY_KEY = "dragoman"  # agents insist on some key; without server.api_keys the gateway asks for none
CODEX_PROVIDER = "dragoman"
CODEX_KEY_VAR = "DRAGOMAN_API_KEY"
CODEX_MARK = "# Written by `dragoman codex`"  # a config.toml without it is the user's, never overwritten
# the signals a process manager or a user sends to us alone; the terminal's own go to the agent directly
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
FROM_TERMINAL = (signal.SIGINT, signal.SIGQUIT)

log = logging.getLogger("dragoman.cli.agents")


@dataclass(frozen=True)
class Agent:
    command: str  # the dragoman sub-command
    title: str
    package: str  # on npm
    prepare: Callable[[Config, str, str, dict[str, str]], None]  # (config, gateway URL, key, env)
    client_key: str  # its table under [clients]
    cli: str  # what its executable is called


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """`[command, own options…, agent args…]` as (what dragoman parses, what the agent gets).
    Our options come first; `--` ends them; the first other word starts the agent's."""
    own, i = argv[:1], 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in OWN_OPTIONS and i + 1 < len(argv):
            own += argv[i : i + 2]
            i += 2
        elif arg.partition("=")[0] in OWN_OPTIONS or (i == 1 and arg in ("-h", "--help")):
            own.append(arg)
            i += 1
        else:
            break
    return own, argv[i:]


def base_env(cfg: Config, url: str) -> dict[str, str]:
    """The agent's environment: ours, with the gateway's host kept away from any HTTP proxy."""
    env = dict(os.environ)
    host = url.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
    for name in ("NO_PROXY", "no_proxy"):
        have = [h for h in env.get(name, "").split(",") if h]
        env[name] = ",".join([*have, host] if host not in have else have)
    return env


def prepare_claude(cfg: Config, url: str, key: str, env: dict[str, str]) -> None:
    table = cfg.clients.claude_code
    # the user's own Anthropic key would be sent instead of the gateway's (x-api-key wins)
    env.pop("ANTHROPIC_API_KEY", None)
    env["ANTHROPIC_BASE_URL"] = url
    env["ANTHROPIC_AUTH_TOKEN"] = key
    env.setdefault("DISABLE_TELEMETRY", "1")
    env.setdefault("DISABLE_COST_WARNINGS", "1")  # the prices it shows are Anthropic's, not the gateway's
    for variable, model in (
        ("ANTHROPIC_MODEL", table.model),
        ("ANTHROPIC_DEFAULT_OPUS_MODEL", table.opus_model),
        ("ANTHROPIC_DEFAULT_SONNET_MODEL", table.sonnet_model),
        ("ANTHROPIC_DEFAULT_HAIKU_MODEL", table.haiku_model),
        ("CLAUDE_CODE_SUBAGENT_MODEL", table.subagent_model),
    ):
        if model:
            env[variable] = model
    env.update(table.env)


def codex_home(cfg: Config) -> Path:
    home = cfg.clients.codex.home
    if home:
        return Path(home).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("dragoman")) / "codex"


def codex_config(cfg: Config, url: str) -> str:
    """The config.toml of the generated CODEX_HOME: the gateway as a Responses provider."""
    table = cfg.clients.codex
    lines = [f"{CODEX_MARK} on every launch: set [clients.codex] in dragoman.toml instead of editing it."]
    lines.append(f"model_provider = {_toml(CODEX_PROVIDER)}")
    if table.model:
        lines.append(f"model = {_toml(table.model)}")
    if table.reasoning_effort:
        lines.append(f"model_reasoning_effort = {_toml(table.reasoning_effort)}")
    lines += [
        "",
        f"[model_providers.{CODEX_PROVIDER}]",
        'name = "Dragoman"',
        f"base_url = {_toml(url + '/v1')}",
        'wire_api = "responses"',
        f"env_key = {_toml(CODEX_KEY_VAR)}",
    ]
    return "\n".join(lines) + "\n"


def write_codex_home(cfg: Config, url: str) -> Path:
    home = codex_home(cfg)
    target = home / "config.toml"
    if target.is_file() and not target.read_text(errors="replace").startswith(CODEX_MARK):
        raise ConfigError(
            cfg.path,
            "clients.codex.home",
            f"{target} was not written by dragoman and is left alone; choose another folder",
        )
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.write_text(codex_config(cfg, url))
    return home


def prepare_codex(cfg: Config, url: str, key: str, env: dict[str, str]) -> None:
    env["CODEX_HOME"] = str(write_codex_home(cfg, url))
    env[CODEX_KEY_VAR] = key
    env.update(cfg.clients.codex.env)


def _toml(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


AGENTS = {
    "code": Agent("code", "Claude Code", "@anthropic-ai/claude-code", prepare_claude, "claude-code", "claude"),
    "codex": Agent("codex", "Codex", "@openai/codex", prepare_codex, "codex", "codex"),
}


def running_gateway(cfg: Config) -> str | None:
    """The URL of a gateway already serving at the configured address, if its /health answers."""
    host = cfg.server.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{cfg.server.port}"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our own address: never a proxy
        with opener.open(url + "/health", timeout=1.0) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return url if isinstance(body, dict) and body.get("status") == "ok" else None


class SessionGateway:
    """A gateway served from a thread of this process for as long as the agent runs."""

    def __init__(self, cfg: Config) -> None:
        from dragoman.gateway import Gateway

        self.gateway = Gateway.from_config(cfg)  # a bad config stops us before anything starts
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> SessionGateway:
        from dragoman.server.app import install_uvloop, start

        install_uvloop()
        loop = self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=loop.run_forever, name="dragoman-gateway", daemon=True)
        self.thread.start()
        self.runner, port = asyncio.run_coroutine_threadsafe(start(self.gateway, "127.0.0.1", 0), loop).result(60)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        loop = self.loop
        if loop is None:
            return
        if self.runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.runner.cleanup(), loop).result(30)
            except Exception as error:  # the agent is done; a slow shutdown must not hide its status
                log.warning("gateway shutdown: %s", error)
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join(10)
        loop.close()


def log_to_file(cfg: Config) -> Path:
    """The in-process gateway logs to a file: the agent's screen is not ours to write on."""
    from platformdirs import user_log_dir

    path = Path(user_log_dir("dragoman")) / "session.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("dragoman", "aiohttp", "asyncio"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("dragoman").setLevel(cfg.server.log_level.upper())
    return path


def check_models(agent: Agent, cfg: Config, session: SessionGateway) -> None:
    """Say now, not at the agent's first request, when a configured model cannot be routed."""
    from dragoman.errors import GatewayError

    table = getattr(cfg.clients, agent.client_key.replace("-", "_"))
    for name in table.__struct_fields__:
        model = getattr(table, name)
        if name.endswith("model") and isinstance(model, str):
            try:
                session.gateway.router.resolve(model)
            except GatewayError as exc:
                print(f"dragoman {agent.command}: clients.{agent.client_key}.{name}: {exc.message}", file=sys.stderr)


def launch(argv: list[str], env: dict[str, str]) -> int:
    """Run the agent to its end, forwarding the signals that reach us, and return its exit status."""
    proc = subprocess.Popen(argv, env=env)
    terminal = _terminal_foreground()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum in FROM_TERMINAL and terminal:
            return  # the terminal sent it to the agent too: a second copy would be a double Ctrl-C
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    previous: dict[signal.Signals, Any] = {}
    for sig in (*FORWARDED, *FROM_TERMINAL):
        previous[sig] = signal.signal(sig, forward)
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _terminal_foreground() -> bool:
    """True when our process group owns the terminal, so that Ctrl-C reaches the agent directly."""
    for stream in (sys.stdin, sys.stderr):
        try:
            return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError, AttributeError):
            continue
    return False


def run_agent(agent: Agent, args: argparse.Namespace) -> int:
    cfg = config_from(args)
    table = getattr(cfg.clients, agent.client_key.replace("-", "_"))
    command = shutil.which(table.command)
    if command is None:
        print(
            f"dragoman {agent.command}: {agent.title} is not installed (no `{table.command}` on PATH). "
            "Install it with\n"
            f"    npm install -g {agent.package}\n"
            f"or set [clients.{agent.client_key}] command to where it is.",
            file=sys.stderr,
        )
        return 127
    key = cfg.server.api_keys[0] if cfg.server.api_keys else DUMMY_KEY
    argv = [command, *args.passthrough]
    url = running_gateway(cfg)
    if url is not None:
        print(f"dragoman {agent.command}: using the gateway at {url}", file=sys.stderr)
        env = base_env(cfg, url)
        agent.prepare(cfg, url, key, env)
        return launch(argv, env)
    session_gateway = SessionGateway(cfg)
    logfile = log_to_file(cfg)
    with session_gateway as session:
        print(f"dragoman {agent.command}: gateway for this session at {session.url} (log: {logfile})", file=sys.stderr)
        check_models(agent, cfg, session)
        env = base_env(cfg, session.url)
        agent.prepare(cfg, session.url, key, env)
        return launch(argv, env)


def register(sub: argparse._SubParsersAction) -> None:
    for agent in AGENTS.values():
        cli = agent.cli
        p = sub.add_parser(
            agent.command,
            usage=f"dragoman {agent.command} [--config FILE] [--] [{cli} arguments…]",
            help=f"start {agent.title} against the gateway ([clients.{agent.client_key}])",
            description=f"Start {agent.title} against the gateway. Every argument after dragoman's own options "
            f"goes to {cli} unchanged (`--` ends dragoman's options).",
        )
        add_config(p)
        p.set_defaults(func=lambda args, agent=agent: run_agent(agent, args), passthrough=[])
