"""Request bodies shaped like real OpenAI Codex CLI 0.171 traffic (see /work/shared/docs/responses-api.md):
turn 1 (two developer messages, two user messages, function + namespace + web_search tools), and a
builder for turn 2 (everything replayed, then the items the gateway streamed and the tool's output)."""

from __future__ import annotations

import copy
from typing import Any

BASE_PROMPT = "You are Codex, a coding agent based on GPT-5. " * 400  # the ~17 KB base prompt
PERMISSIONS = "<permissions instructions>Filesystem sandboxing: workspace-write.</permissions instructions>"
ENVIRONMENT = "<environment_context>\n  <cwd>/tmp/work</cwd>\n  <shell>bash</shell>\n</environment_context>"
PROMPT = "List the files in this directory, then tell me how many there are."

EXEC_COMMAND = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command in a PTY, returning output or a session ID for ongoing interaction.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {
            "cmd": {"type": "string", "description": "Shell command to execute."},
            "workdir": {"type": "string", "description": "Optional working directory."},
            "shell": {"type": "string"},
            "tty": {"type": "boolean"},
            "yield_time_ms": {"type": "number"},
            "max_output_tokens": {"type": "number"},
        },
        "required": ["cmd"],
        "additionalProperties": False,
    },
}
WRITE_STDIN = {
    "type": "function",
    "name": "write_stdin",
    "description": "Writes characters to an existing unified exec session.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"session_id": {"type": "number"}, "chars": {"type": "string"}},
        "required": ["session_id"],
        "additionalProperties": False,
    },
}
NAMESPACE = {
    "type": "namespace",
    "name": "mcp__fixture",
    "description": "Tools from fixture.",
    "tools": [
        {
            "type": "function",
            "name": "lookup_order",
            "description": "Look up an order",
            "strict": False,
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        }
    ],
}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}


def _message(role: str, text: str, n: int) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_0199a1f2-{n:04d}-7c3e-9d41-2b6f8e0c5a11",
        "role": role,
        "content": [{"type": "input_text", "text": text}],
    }


def turn1(model: str = "moonshot/kimi-k2.6") -> dict[str, Any]:
    return {
        "model": model,
        "input": [
            _message("developer", BASE_PROMPT, 1),
            _message("developer", PERMISSIONS, 2),
            _message("user", ENVIRONMENT, 3),
            _message("user", PROMPT, 4),
        ],
        "tools": [EXEC_COMMAND, WRITE_STDIN, NAMESPACE, WEB_SEARCH],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a1f2-5d3b-7c3e-9d41-2b6f8e0c5a11",
        "client_metadata": {"x-codex-turn-metadata": '{"turn":1}'},
        "stream": True,
    }


def replayed(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as Codex sends it back: exactly as received, minus what the SDK adds as null."""
    kept = {k: v for k, v in item.items() if v is not None}
    if kept.get("type") == "reasoning":
        kept.setdefault("content", None)
        kept.setdefault("encrypted_content", None)
    return kept


def turn2(first: dict[str, Any], output: list[dict[str, Any]], tool_output: str = "a.txt\nb.txt\n") -> dict[str, Any]:
    body = copy.deepcopy(first)
    body["input"] = [*body["input"], *(replayed(i) for i in output)]
    for item in output:
        if item.get("type") == "function_call":
            body["input"].append(
                {
                    "type": "function_call_output",
                    "id": "fco_" + item["call_id"][-8:],
                    "call_id": item["call_id"],
                    "output": tool_output,
                }
            )
    return body
