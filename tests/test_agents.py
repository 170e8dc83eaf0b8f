"""`dragoman code` and `dragoman codex` run the real CLIs (installed by tests/agent_clis.py): one
prompt from Claude Code through the gateway to a scripted upstream, the running-gateway and
in-process cases, exit status and signals passed through, and the CODEX_HOME that Codex itself
loads (`codex doctor`). Codex conversations through /v1/responses: tests/test_codex_cli.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dragoman.cli.agents import CODEX_KEY_VAR, prepare_claude, split_argv
from dragoman.config import parse
from tests.agent_clis import bin_dir
from tests.conftest import FakeUpstream, GatewayFactory, Reply, Seen

PROMPT = "Say hello to the gateway"


def anthropic_stream(text: str) -> list[bytes]:
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-fake",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


def scripted(text: str) -> Any:
    """Every Messages call gets `text` back (streamed when asked); anything else is a 404."""

    def answer(seen: Seen) -> Reply:
        if seen.path == "/v1/messages" and seen.json.get("stream"):
            return Reply(body=anthropic_stream(text), content_type="text/event-stream")
        if seen.path == "/v1/messages":
            reply = {
                "id": "msg_fake2",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 2},
            }
            return Reply(body=json.dumps(reply).encode())
        return Reply(status=404, body=b'{"type":"error","error":{"type":"not_found_error","message":"no such path"}}')

    return answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, upstream: FakeUpstream, port: int, extra: str = "") -> Path:
    path = tmp_path / "dragoman.toml"
    path.write_text(
        f"""
[server]
port = {port}
default_provider = "up"
{extra}
[providers.up]
dialect = "anthropic"
base_url = "{upstream.url}"
api_key = "sk-up-secret-key"

[clients.claude-code]
model = "up/claude-fake"
haiku_model = "up/claude-fast"
subagent_model = "deepseek/deepseek-v4-pro"
env = {{ CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1" }}

[clients.codex]
model = "up/codex-fake"
home = "{tmp_path / "codex-home"}"
"""
    )
    return path


def agent_env(tmp_path: Path, path: str | None = None) -> dict[str, str]:
    """A home of its own (the agents write their state there) and nothing of the developer's keys."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_AUTH_TOKEN")) and k != "CODEX_HOME"}
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), XDG_DATA_HOME=str(home / "data"))
    env["PATH"] = path if path is not None else f"{bin_dir()}{os.pathsep}{os.environ['PATH']}"
    return env


async def dragoman(*args: str, env: dict[str, str], timeout: float = 180) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def prompts(upstream: FakeUpstream) -> list[Seen]:
    """The Messages requests that carried our prompt."""
    return [s for s in upstream.seen if s.path == "/v1/messages" and PROMPT in json.dumps(s.json.get("messages"))]


async def test_code_runs_claude_through_an_in_process_gateway(upstream: FakeUpstream, tmp_path: Path):
    upstream.default = scripted("Hello from the scripted upstream")
    cfg = write_config(tmp_path, upstream, free_port())
    code, out, err = await dragoman("code", "--config", str(cfg), "-p", PROMPT, env=agent_env(tmp_path))
    assert code == 0, err
    assert "Hello from the scripted upstream" in out
    assert "gateway for this session at http://127.0.0.1:" in err
    assert "clients.claude-code.subagent_model" in err and "DEEPSEEK_API_KEY" in err  # said before claude starts
    sent = prompts(upstream)
    assert sent, [s.path for s in upstream.seen]
    first = sent[0]
    assert first.json["model"] == "claude-fake"  # ANTHROPIC_MODEL from [clients.claude-code], routed to `up`
    assert first.headers["x-api-key"] == "sk-up-secret-key"  # the provider's key, not the agent's
    assert "dragoman" not in first.headers.get("Authorization", "")
    assert "claude-code" in first.headers.get("anthropic-beta", "")  # Claude Code's own betas passed on


async def test_code_uses_a_running_gateway_and_its_client_key(
    upstream: FakeUpstream, gateway: GatewayFactory, tmp_path: Path
):
    upstream.default = scripted("Answered by the running gateway")
    running = await gateway(
        {
            "server": {"default_provider": "up", "api_keys": ["sk-gw-client-key-1"]},
            "providers": {"up": {"dialect": "anthropic", "base_url": upstream.url, "api_key": "sk-up-secret-key"}},
        }
    )
    port = int(running.url.rsplit(":", 1)[1])
    cfg = write_config(tmp_path, upstream, port, extra='api_keys = ["sk-gw-client-key-1"]')
    code, out, err = await dragoman("code", "--config", str(cfg), "-p", PROMPT, env=agent_env(tmp_path))
    assert code == 0, err
    assert f"using the gateway at http://127.0.0.1:{port}" in err
    assert "Answered by the running gateway" in out
    sent = prompts(upstream)
    assert sent and sent[0].json["model"] == "claude-fake"
    assert all("sk-gw-client-key-1" not in json.dumps(s.headers) for s in upstream.seen)  # never forwarded


async def test_code_passes_claudes_exit_status_through(upstream: FakeUpstream, tmp_path: Path):
    upstream.default = Reply(
        status=400, body=b'{"type":"error","error":{"type":"invalid_request_error","message":"scripted refusal"}}'
    )
    cfg = write_config(tmp_path, upstream, free_port())
    code, out, err = await dragoman("code", "--config", str(cfg), "-p", PROMPT, env=agent_env(tmp_path))
    assert code == 1, (out, err)
    assert "scripted refusal" in out + err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_code_forwards_signals_to_claude(
    upstream: FakeUpstream, gateway: GatewayFactory, tmp_path: Path, sig: signal.Signals
):
    """The gateway runs here, so it outlives dragoman: only claude going away closes the stalled stream."""
    upstream.default = Reply(body=anthropic_stream("partial")[:3], content_type="text/event-stream", hang=True)
    running = await gateway(
        {"server": {"default_provider": "up"}, "providers": {"up": {"dialect": "anthropic", "base_url": upstream.url}}}
    )
    cfg = write_config(tmp_path, upstream, int(running.url.rsplit(":", 1)[1]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        "code",
        "--config",
        str(cfg),
        "-p",
        PROMPT,
        env=agent_env(tmp_path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, so that a failed run can be cleaned up whole
    )
    try:
        for _ in range(1200):  # until Claude Code's request is being answered
            if prompts(upstream):
                break
            await asyncio.sleep(0.1)
        assert prompts(upstream), "claude never reached the upstream"
        proc.send_signal(sig)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert "Traceback" not in err.decode()
        await asyncio.wait_for(upstream.closed_early.wait(), 30)  # claude itself got the signal and went away
    finally:
        if proc.returncode is None:  # a failed run must not leave claude behind
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def test_a_missing_cli_says_how_to_install_it(tmp_path: Path, upstream: FakeUpstream):
    cfg = write_config(tmp_path, upstream, free_port())
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    for command, package in (("code", "@anthropic-ai/claude-code"), ("codex", "@openai/codex")):
        code, _, err = await dragoman(command, "--config", str(cfg), "-p", "x", env=agent_env(tmp_path, str(empty)))
        assert code == 127
        assert f"npm install -g {package}" in err and "not installed" in err and "Traceback" not in err


async def test_codex_home_is_generated_and_loaded_by_codex(upstream: FakeUpstream, tmp_path: Path):
    """Codex's own `doctor` loads the generated config, finds the key variable, and probes the gateway."""
    cfg = write_config(tmp_path, upstream, free_port())
    _code, out, err = await dragoman("codex", "--config", str(cfg), "doctor", "--json", env=agent_env(tmp_path))
    home = tmp_path / "codex-home"
    written = tomllib.loads((home / "config.toml").read_text())
    provider = written["model_providers"]["dragoman"]
    assert written["model_provider"] == "dragoman" and written["model"] == "up/codex-fake"
    assert provider["wire_api"] == "responses" and provider["env_key"] == CODEX_KEY_VAR
    session = err.split("gateway for this session at ", 1)[1].split()[0]
    assert provider["base_url"] == session + "/v1"

    checks = json.loads(out)["checks"]
    assert checks["config.load"]["status"] == "ok"
    assert checks["config.load"]["details"]["CODEX_HOME"] == str(home)
    auth = checks["auth.credentials"]["details"]
    assert auth["provider auth env var"] == f"{CODEX_KEY_VAR} (present)"
    assert auth["model provider requires OpenAI auth"] == "false"
    assert session in json.dumps(checks["network.provider_reachability"]["details"])
    assert not upstream.seen  # a health check of the gateway, not a model call


async def test_codex_never_overwrites_a_config_it_did_not_write(upstream: FakeUpstream, tmp_path: Path):
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text('model = "mine"\n')
    cfg = write_config(tmp_path, upstream, free_port())
    code, _, err = await dragoman("codex", "--config", str(cfg), "doctor", env=agent_env(tmp_path))
    assert code == 2 and "clients.codex.home" in err and "not written by dragoman" in err
    assert (home / "config.toml").read_text() == 'model = "mine"\n'


def test_claude_environment_from_the_config(monkeypatch: pytest.MonkeyPatch):
    cfg = parse(
        {
            "clients": {
                "claude-code": {
                    "model": "kimi/kimi-for-coding",
                    "opus_model": "anthropic/claude-opus-4-7",
                    "sonnet_model": "deepseek/deepseek-v4-pro",
                    "haiku_model": "ollama/qwen3:8b",
                    "subagent_model": "moonshot/kimi-k2.6",
                    "env": {"API_TIMEOUT_MS": "600000"},
                }
            }
        }
    )
    env = {"ANTHROPIC_API_KEY": "sk-ant-users-own", "NO_PROXY": "example.com"}
    prepare_claude(cfg, "http://127.0.0.1:4123", "sk-gw", env)
    assert "ANTHROPIC_API_KEY" not in env  # it would be sent instead of the gateway's key
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4123" and env["ANTHROPIC_AUTH_TOKEN"] == "sk-gw"
    assert env["ANTHROPIC_MODEL"] == "kimi/kimi-for-coding"
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "anthropic/claude-opus-4-7"
    assert env["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "deepseek/deepseek-v4-pro"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "ollama/qwen3:8b"
    assert env["CLAUDE_CODE_SUBAGENT_MODEL"] == "moonshot/kimi-k2.6"
    assert env["API_TIMEOUT_MS"] == "600000" and env["DISABLE_TELEMETRY"] == "1"


@pytest.mark.parametrize(
    ("argv", "own", "rest"),
    [
        (["code", "-p", "hi"], ["code"], ["-p", "hi"]),
        (
            ["code", "--config", "x.toml", "-p", "hi", "--config", "y"],
            ["code", "--config", "x.toml"],
            ["-p", "hi", "--config", "y"],
        ),
        (["code", "--config=x.toml", "--", "--help"], ["code", "--config=x.toml"], ["--help"]),
        (["codex", "--help"], ["codex", "--help"], []),
        (["codex", "exec", "--help"], ["codex"], ["exec", "--help"]),
    ],
)
def test_only_leading_options_are_dragomans(argv: list[str], own: list[str], rest: list[str]):
    assert split_argv(argv) == (own, rest)
