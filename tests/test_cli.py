"""The `dragoman` command: serve (a real process), say (streams through the same HTTP path),
providers and models."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import openai
import pytest

from dragoman.cli.say import verbose_lines
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
    assert proc.stderr is not None
    warning = (await proc.stderr.read()).decode()
    assert "2 workers with the in-memory reasoning store" in warning and "redis://" in warning


async def test_serve_on_a_taken_port_says_so(tmp_path: Path, upstream: FakeUpstream):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = write_config(tmp_path, upstream, port)
        code, _out, err = await run("serve", "--config", str(cfg))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


async def test_serve_with_workers_and_redis_has_no_warning(upstream: FakeUpstream, tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, upstream, port)
    cfg.write_text(cfg.read_text().replace("[server]\n", '[server]\nreasoning_store = "redis://127.0.0.1:6379/0"\n'))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dragoman", "serve", "--config", str(cfg), "--workers", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert "listening" in (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.stderr is not None
    assert "reasoning store" not in (await proc.stderr.read()).decode()


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
async def test_serve_refuses_a_bad_worker_count(tmp_path: Path, upstream: FakeUpstream, workers: str):
    cfg = write_config(tmp_path, upstream)
    code, _out, err = await run("serve", "--config", str(cfg), "--workers", workers)
    assert code == 2 and "--workers" in err and "Traceback" not in err


async def test_output_closed_early_is_not_a_traceback(tmp_path: Path, upstream: FakeUpstream):
    """`dragoman providers | head -1`: the reader is gone before the table is written."""
    cfg = write_config(tmp_path, upstream)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: every write meets a closed pipe
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dragoman", "providers", "--config", str(cfg), stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    os.close(write_end)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert err.decode() == "" and proc.returncode == 141


async def test_say_refuses_an_empty_prompt(upstream: FakeUpstream, tmp_path: Path):
    cfg = write_config(tmp_path, upstream)
    for prompt in ("", "   "):
        code, _out, err = await run("say", "--config", str(cfg), "--model", "fake/m1", prompt)
        assert code == 2 and "prompt is empty" in err
    assert not upstream.seen


USAGE_CHUNKS = [
    *CHUNKS[:-1],
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}}\n\n',
    b"data: [DONE]\n\n",
]


async def test_say_verbose_asks_for_usage_and_prints_tokens(upstream: FakeUpstream, tmp_path: Path):
    upstream.reply(Reply(body=USAGE_CHUNKS, content_type="text/event-stream"))
    cfg = write_config(tmp_path, upstream)
    code, out, err = await run("say", "--config", str(cfg), "--model", "fake/m1", "--verbose", "hello")
    assert code == 0, err
    assert out.strip() == "Hello from upstream"  # the figures go to stderr only
    assert upstream.last.json["stream_options"] == {"include_usage": True}
    assert "tokens: 9 in (4 cached), 3 out" in err


def test_verbose_lines_print_what_the_trip_sent():
    headers = {"x-dragoman-provider": "kimi", "x-dragoman-attempts": "2", "x-dragoman-latency-ms": "812"}
    usage = {"prompt_tokens": 10, "completion_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 5}}
    assert verbose_lines(headers, usage) == [
        "provider kimi · attempts 2 · 812 ms",
        "tokens: 10 in, 7 out (5 reasoning)",
    ]
    assert verbose_lines({"x-dragoman-provider": "ollama"}, None) == ["provider ollama", "tokens: not reported"]
