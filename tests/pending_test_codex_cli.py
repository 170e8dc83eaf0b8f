"""PENDING until the Responses front (/v1/responses) is merged: then rename this file to
tests/test_codex_cli.py so that pytest collects it.

`dragoman codex exec` runs the real Codex CLI (tests/agent_clis.py) for one prompt through an
in-process gateway to a scripted Chat Completions upstream: the gateway translates Codex's Responses
request and the upstream's stream back."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FakeUpstream, Reply, Seen
from tests.test_agents import agent_env, dragoman, free_port

PROMPT = "Say hello to the gateway"


def chat_stream(text: str) -> list[bytes]:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}},
    ]
    framed = [
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "codex-fake", **chunk}
        for chunk in chunks
    ]
    return [f"data: {json.dumps(c)}\n\n".encode() for c in framed] + [b"data: [DONE]\n\n"]


async def test_codex_runs_one_prompt_through_the_gateway(upstream: FakeUpstream, tmp_path: Path):
    def answer(seen: Seen) -> Reply:
        if seen.path == "/v1/chat/completions":
            return Reply(body=chat_stream("Hello from the scripted upstream"), content_type="text/event-stream")
        return Reply(status=404, body=b'{"error":{"message":"no such path","type":"not_found"}}')

    upstream.default = answer
    cfg = tmp_path / "dragoman.toml"
    cfg.write_text(
        f"""
[server]
port = {free_port()}
default_provider = "up"

[providers.up]
dialect = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-up-secret-key"

[clients.codex]
model = "up/codex-fake"
home = "{tmp_path / "codex-home"}"
"""
    )
    code, out, err = await dragoman(
        "codex",
        "--config",
        str(cfg),
        "-c",
        "model_providers.dragoman.request_max_retries=0",
        "-c",
        "model_providers.dragoman.stream_max_retries=0",
        "exec",
        "--skip-git-repo-check",
        PROMPT,
        env=agent_env(tmp_path),
    )
    assert code == 0, err
    assert "Hello from the scripted upstream" in out
    calls = [s for s in upstream.seen if s.path == "/v1/chat/completions"]
    assert calls, [s.path for s in upstream.seen]
    body = calls[0].json
    assert body["model"] == "codex-fake" and body["stream"] is True
    assert PROMPT in json.dumps(body["messages"])
    assert calls[0].headers["Authorization"] == "Bearer sk-up-secret-key"
