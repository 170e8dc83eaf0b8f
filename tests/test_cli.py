"""The `dragoman` command: serve (a real process), say (streams through the same HTTP path),
providers and models."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import openai

from tests.conftest import FakeUpstream, Reply, chat_completion

CHUNKS = [
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello from "},"finish_reason":null}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"upstream"},"finish_reason":"stop"}]}\n\n',
    b"data: [DONE]\n\n",
]


def write_config(tmp_path: Path, upstream: FakeUpstream, port: int = 0) -> Path:
    path = tmp_path / "dragoman.toml"
    path.write_text(
        f"""
[server]
port = {port}
default_provider = "fake"
[providers.fake]
dialect = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-fake-secret-key"
models = ["m1", "m2"]
"""
    )
    return path


async def run(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dragoman", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_say_streams_the_answer(upstream: FakeUpstream, tmp_path: Path):
    upstream.reply(Reply(body=CHUNKS, content_type="text/event-stream"))
    cfg = write_config(tmp_path, upstream)
    code, out, err = await run("say", "--config", str(cfg), "--model", "fake/m1", "hello", "there")
    assert code == 0, err
    assert out.strip() == "Hello from upstream"
    sent = upstream.last
    assert sent.path == "/v1/chat/completions" and sent.json["model"] == "m1" and sent.json["stream"] is True
    assert sent.json["messages"][-1] == {"role": "user", "content": "hello there"}


async def test_say_reports_errors(upstream: FakeUpstream, tmp_path: Path):
    upstream.reply(Reply(status=401, body=b'{"error":{"message":"bad key","type":"auth"}}'))
    cfg = write_config(tmp_path, upstream)
    code, _out, err = await run("say", "--config", str(cfg), "--model", "fake/m1", "hi")
    assert code == 1 and "401" in err and "bad key" in err


async def test_providers_and_models_commands(upstream: FakeUpstream, tmp_path: Path):
    cfg = write_config(tmp_path, upstream)
    code, out, _ = await run("providers", "--config", str(cfg))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["id", "dialect", "base_url", "key"]
    ids = {line.split()[0] for line in lines[1:]}
    assert {
        "anthropic",
        "openai",
        "kimi",
        "moonshot",
        "minimax",
        "deepseek",
        "openrouter",
        "opencode",
        "ollama",
        "ollama_cloud",
        "fake",
    } <= ids
    assert "sk-fake-secret-key" not in out
    code, out, _ = await run("models", "--config", str(cfg))
    assert code == 0 and {"fake/m1", "fake/m2"} <= set(out.split())


async def test_serve_runs_a_real_gateway(upstream: FakeUpstream, tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, upstream, port)
    upstream.reply(Reply(body=CHUNKS, content_type="text/event-stream"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        "serve",
        "--config",
        str(cfg),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert f"127.0.0.1:{port}" in line.decode()
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
        stream = await client.chat.completions.create(
            model="fake/m1", messages=[{"role": "user", "content": "x"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Hello from upstream"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0  # SIGTERM is a clean shutdown


async def test_serve_with_workers_shares_the_port(upstream: FakeUpstream, tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, upstream, port)
    upstream.default = lambda seen: Reply(body=chat_completion())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        "serve",
        "--config",
        str(cfg),
        "--workers",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 20)
        await asyncio.sleep(0.5)  # let the second worker bind
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        results = await asyncio.gather(
            *(
                client.chat.completions.create(model="fake/m1", messages=[{"role": "user", "content": "x"}])
                for _ in range(10)
            )
        )
        assert all(r.choices[0].message.content == "ok" for r in results)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_serve_on_a_taken_port_says_so(tmp_path: Path, upstream: FakeUpstream):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = write_config(tmp_path, upstream, port)
        code, _out, err = await run("serve", "--config", str(cfg))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
