"""What the operations tests share: replies with usage, gateways as real processes, a Redis key
prefix of the test's own (removed afterwards), the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import REDIS_URL

REDIS = REDIS_URL
HI = [{"role": "user", "content": "hi"}]


def openai_reply(content: str = "ok", prompt: int = 10, completion: int = 5) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def to_toml(config: dict[str, Any]) -> str:
    """The small subset of TOML the tests' configs need (tables of scalars and lists)."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{json.dumps(k)}", v)

    for name, body in config.items():
        table(name, body)
    return "\n".join(lines) + "\n"


async def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


@dataclass
class Served:
    """A `dragoman serve` in its own process."""

    proc: asyncio.subprocess.Process
    port: int
    log_path: Path
    banner: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode or 0


async def serve(
    config_path: Path, port: int, *extra: str, env: dict[str, str] | None = None, timeout: float = 60
) -> Served:
    """Start `dragoman serve` and wait until /health answers (its stderr goes to a file)."""
    log_path = config_path.with_name(f"serve-{port}-{uuid.uuid4().hex[:6]}.log")
    log_file = open(log_path, "wb")  # noqa: SIM115 - the child keeps it
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        "serve",
        "--config",
        str(config_path),
        "--port",
        str(port),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=log_file,
        env={**os.environ, **(env or {})},
    )
    log_file.close()
    served = Served(proc, port, log_path)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    banner: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            break
        if not line:
            break
        banner.append(line.decode())
        if b"access log" in line:  # the banner's last line
            break
    served.banner = "".join(banner)
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(served.url + "/health") as resp:
                    if resp.status == 200:
                        return served
            await asyncio.sleep(0.05)
    await served.stop()
    raise AssertionError(f"dragoman serve on {port} did not come up:\n{served.banner}\n{served.log()}")
