"""The real Codex CLI (npm `@openai/codex`, tests/agent_clis.py) through the gateway.

`dragoman codex exec` runs the real Codex CLI (tests/agent_clis.py) for one prompt through an
in-process gateway to a scripted Chat Completions upstream: the gateway translates Codex's Responses
request and the upstream's stream back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


# ---- a multi-turn shell-tool task: Codex runs the tool the model asks for, then replays the turn ----

MARK = "dragoman-ran-this"
SHELL_PROMPT = "Run a shell command that prints a marker, then tell me what it printed."


def _turn(seen: Seen) -> int:
    """1 for Codex's first request, 2 once it carries the tool's output."""
    return 2 if MARK + "\n" in seen.body.decode() or b"tool_result" in seen.body or b'"role":"tool"' in seen.body else 1


def _codex_config(tmp_path: Path, provider: str, base_url: str, model: str) -> Path:
    cfg = tmp_path / "dragoman.toml"
    cfg.write_text(
        f"""
[server]
port = {free_port()}
retries = 0

[providers.{provider}]
base_url = "{base_url}"
api_key = "sk-up-secret-key"

[clients.codex]
model = "{model}"
home = "{tmp_path / "codex-home"}"
"""
    )
    return cfg


async def _run_codex(cfg: Path, tmp_path: Path) -> tuple[int, str, str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return await dragoman(
        "codex",
        "--config",
        str(cfg),
        "-c",
        "model_providers.dragoman.request_max_retries=0",
        "-c",
        "model_providers.dragoman.stream_max_retries=0",
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",  # the command is an echo in a temp dir
        "--cd",
        str(work),
        SHELL_PROMPT,
        env=agent_env(tmp_path),
    )


async def test_codex_runs_a_shell_tool_through_a_moonshot_like_chat_upstream(upstream: FakeUpstream, tmp_path: Path):
    """Turn 1 streams reasoning_content and a tool call in pieces; Codex runs it and replays the
    turn; Moonshot gets its reasoning_content back on the assistant tool-call message."""
    from tests.responses_helpers import REASONING, chat_text_stream, sse

    args = json.dumps({"cmd": f"echo {MARK}"})

    def answer(seen: Seen) -> Reply:
        if seen.path != "/v1/chat/completions":
            return Reply(status=404, body=b'{"error":{"message":"no such path","type":"not_found"}}')
        if _turn(seen) == 2:
            return Reply(body=chat_text_stream(f"The command printed {MARK}."), content_type="text/event-stream")
        call = {"index": 0, "id": "exec_command:0", "type": "function", "function": {"name": "exec_command"}}
        chunks: list[dict[str, Any]] = [
            {"role": "assistant", "reasoning_content": REASONING[:15]},
            {"reasoning_content": REASONING[15:]},
            {"tool_calls": [{**call, "function": {"name": "exec_command", "arguments": ""}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": args[:9]}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": args[9:]}}]},
        ]
        events = [
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "kimi-k2.6",
                "choices": [{"index": 0, "delta": d, "finish_reason": None}],
            }
            for d in chunks
        ]
        events.append(
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "kimi-k2.6",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 900, "completion_tokens": 30, "total_tokens": 930},
            }
        )
        return Reply(body=sse(events, done=True), content_type="text/event-stream")

    upstream.default = answer
    cfg = _codex_config(tmp_path, "moonshot", upstream.url + "/v1", "moonshot/kimi-k2.6")
    code, out, err = await _run_codex(cfg, tmp_path)
    assert code == 0, err[-3000:]
    assert f"The command printed {MARK}." in out
    calls = [s for s in upstream.seen if s.path == "/v1/chat/completions"]
    assert [_turn(s) for s in calls] == [1, 2], [s.body[:200] for s in calls]
    turn2 = calls[1].json
    assistant = next(m for m in turn2["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    assert assistant["reasoning_content"] == REASONING
    assert assistant["tool_calls"][0]["id"] == "exec_command:0"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == json.loads(args)
    tool = next(m for m in turn2["messages"] if m["role"] == "tool")
    assert tool["tool_call_id"] == "exec_command:0" and MARK in json.dumps(tool["content"])


async def test_codex_runs_a_shell_tool_through_a_kimi_like_anthropic_upstream(upstream: FakeUpstream, tmp_path: Path):
    """Turn 1 streams signed thinking and tool_use; on turn 2 Kimi gets the thinking block back byte
    for byte, signature included, from the sealed blob Codex carried."""
    from tests.responses_helpers import REASONING, SIGNATURE, anthropic_text_stream, named_sse

    def answer(seen: Seen) -> Reply:
        if seen.path != "/coding/v1/messages":
            return Reply(status=404, body=b'{"type":"error","error":{"type":"not_found_error","message":"no"}}')
        if _turn(seen) == 2:
            return Reply(body=anthropic_text_stream(f"The command printed {MARK}."), content_type="text/event-stream")
        args = json.dumps({"cmd": f"echo {MARK}"})
        start = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "kimi-for-coding",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 900, "output_tokens": 1},
        }
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": REASONING}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": SIGNATURE}},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_01", "name": "exec_command", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": args[:9]},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": args[9:]},
            },
            {"type": "content_block_stop", "index": 1},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
            {"type": "message_stop"},
        ]
        return Reply(body=named_sse(events), content_type="text/event-stream")

    upstream.default = answer
    cfg = _codex_config(tmp_path, "kimi", upstream.url + "/coding", "kimi/kimi-for-coding")
    code, out, err = await _run_codex(cfg, tmp_path)
    assert code == 0, err[-3000:]
    assert f"The command printed {MARK}." in out
    calls = [s for s in upstream.seen if s.path == "/coding/v1/messages"]
    assert [_turn(s) for s in calls] == [1, 2], [s.body[:200] for s in calls]
    turn2 = calls[1].json
    assistant = next(m for m in turn2["messages"] if m["role"] == "assistant")
    assert assistant["content"][0] == {"type": "thinking", "thinking": REASONING, "signature": SIGNATURE}
    assert assistant["content"][1]["type"] == "tool_use" and assistant["content"][1]["id"] == "toolu_01"
    result = next(
        b
        for m in turn2["messages"]
        if m["role"] == "user"
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    )
    assert result["tool_use_id"] == "toolu_01" and MARK in json.dumps(result["content"])
