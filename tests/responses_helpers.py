"""Scripted upstream replies for the Responses front's tests: a Moonshot-like Chat Completions stream
(reasoning_content, then a tool call streamed in pieces), a Kimi/Claude-like Messages stream
(thinking with its signature, then tool_use), an Ollama NDJSON stream (thinking, tool call), and the
same answers as bodies."""

from __future__ import annotations

import json
from typing import Any

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
REASONING = "The user wants the files listed; I will run ls."
SIGNATURE = "EqQBCkYIBxgCKkBsig+/=naturE" * 4  # an opaque signature, kept byte for byte
CALL_ARGS = '{"cmd": "ls -1"}'
ANSWER = "There are 3 files."


def sse(events: list[dict[str, Any]], done: bool = False) -> list[bytes]:
    out = [f"data: {json.dumps(e)}\n\n".encode() for e in events]
    return out + ([b"data: [DONE]\n\n"] if done else [])


def named_sse(events: list[dict[str, Any]]) -> list[bytes]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def _chunk(delta: dict[str, Any], finish: str | None = None, **rest: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "kimi-k2.6",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **rest,
    }


def chat_tool_stream(call_id: str = "exec_command:0") -> list[bytes]:
    """Moonshot-like: reasoning_content deltas, then a tool call whose arguments come in pieces."""
    return sse(
        [
            _chunk({"role": "assistant", "content": None, "reasoning_content": REASONING[:20]}),
            _chunk({"reasoning_content": REASONING[20:]}),
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "exec_command", "arguments": ""},
                        }
                    ]
                }
            ),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": CALL_ARGS[:8]}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": CALL_ARGS[8:]}}]}),
            _chunk({}, "tool_calls"),
            {**_chunk({}), "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62}},
        ],
        done=True,
    )


def chat_text_stream(text: str = ANSWER, finish: str = "stop") -> list[bytes]:
    return sse(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"content": text}),
            _chunk({}, finish),
            {**_chunk({}), "choices": [], "usage": {"prompt_tokens": 70, "completion_tokens": 6, "total_tokens": 76}},
        ],
        done=True,
    )


def chat_tool_body(call_id: str = "exec_command:0") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "kimi-k2.6",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": REASONING,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": "exec_command", "arguments": CALL_ARGS},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
        }
    ).encode()


def chat_text_body(text: str = ANSWER) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 1,
            "model": "kimi-k2.6",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 70, "completion_tokens": 6, "total_tokens": 76},
        }
    ).encode()


def anthropic_tool_stream(tool_id: str = "toolu_01") -> list[bytes]:
    """Kimi/Claude-like: a signed thinking block, then tool_use with its input streamed."""
    return named_sse(
        [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": "kimi-for-coding",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 50, "output_tokens": 1},
                },
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": REASONING}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": SIGNATURE}},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": tool_id, "name": "exec_command", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": CALL_ARGS[:8]},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": CALL_ARGS[8:]},
            },
            {"type": "content_block_stop", "index": 1},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
            {"type": "message_stop"},
        ]
    )


def anthropic_text_stream(text: str = ANSWER, stop: str = "end_turn") -> list[bytes]:
    return named_sse(
        [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_02",
                    "type": "message",
                    "role": "assistant",
                    "model": "kimi-for-coding",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 70, "output_tokens": 1},
                },
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 6}},
            {"type": "message_stop"},
        ]
    )


def ollama_tool_stream() -> list[bytes]:
    lines = [
        {
            "model": "qwen3",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "", "thinking": REASONING},
            "done": False,
        },
        {
            "model": "qwen3",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "exec_command", "arguments": json.loads(CALL_ARGS)}}],
            },
            "done": False,
        },
        {
            "model": "qwen3",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 50,
            "eval_count": 12,
        },
    ]
    return [json.dumps(line).encode() + b"\n" for line in lines]


def ollama_text_stream(text: str = ANSWER) -> list[bytes]:
    lines = [
        {
            "model": "qwen3",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": False,
        },
        {
            "model": "qwen3",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 70,
            "eval_count": 6,
        },
    ]
    return [json.dumps(line).encode() + b"\n" for line in lines]


EXEC_TOOL = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a shell command.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
}


def anthropic_text_body(text: str = ANSWER) -> bytes:
    return json.dumps(
        {
            "id": "msg_02",
            "type": "message",
            "role": "assistant",
            "model": "kimi-for-coding",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 70, "output_tokens": 6},
        }
    ).encode()


def ollama_text_body(text: str = ANSWER) -> bytes:
    return json.dumps(
        {
            "model": "qwen3",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 70,
            "eval_count": 6,
        }
    ).encode()
