"""A local token estimate for `count_tokens` when the provider cannot count.

Claude Code calls count_tokens dozens of times at start-up and uses the answer to manage its
context, so the estimate must be cheap and err slightly high rather than low: about four ASCII
characters a token, one token per CJK character, small per-message and per-tool overheads, and
Anthropic's published ~1,600 tokens for an image of unknown size.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 12
BASE = 8

_json = msgspec.json.Encoder()


def text_tokens(text: str) -> float:
    if text.isascii():
        return len(text) / 3.8
    ascii_n = cjk = other = 0
    for ch in text:
        o = ord(ch)
        if o < 128:
            ascii_n += 1
        elif 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0x3040 <= o <= 0x30FF:
            cjk += 1
        else:
            other += 1
    return ascii_n / 3.8 + cjk * 1.0 + other * 0.6


def _content(content: Any) -> float:
    if isinstance(content, str):
        return text_tokens(content)
    total = 0.0
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                total += text_tokens(str(block.get("text", "")))
            elif kind == "image":
                total += IMAGE_TOKENS
            elif kind == "thinking":
                total += text_tokens(str(block.get("thinking", "")))
            elif kind == "tool_use":
                total += text_tokens(str(block.get("name", ""))) + text_tokens(
                    _json.encode(block.get("input", {})).decode()
                )
            elif kind == "tool_result":
                total += _content(block.get("content", ""))
            elif kind == "document":
                source = block.get("source") or {}
                data = source.get("data") if isinstance(source, dict) else None
                total += text_tokens(data) if isinstance(data, str) and source.get("type") == "text" else 1500
            else:
                total += text_tokens(_json.encode(block).decode())
    return total


def estimate_anthropic(body: dict[str, Any]) -> int:
    total = float(BASE)
    total += _content(body.get("system", ""))
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            total += MESSAGE_OVERHEAD + _content(msg.get("content", ""))
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            total += TOOL_OVERHEAD + text_tokens(_json.encode(tool).decode())
    return max(1, math.ceil(total))


# Part types that are an image whatever the dialect (Anthropic, OpenAI chat, OpenAI Responses).
IMAGE_PARTS = frozenset({"image", "image_url", "input_image"})
# Keys of OpenAI-shaped parts and items that hold text worth counting.
_TEXT_KEYS = ("text", "content", "arguments", "output", "reasoning_content", "thinking", "refusal")


def _openai_value(value: Any) -> float:
    if isinstance(value, str):
        return text_tokens(value)
    if isinstance(value, list):
        return sum(_openai_value(v) for v in value)
    if not isinstance(value, dict):
        return 0.0
    if value.get("type") in IMAGE_PARTS:
        return IMAGE_TOKENS
    total = 0.0
    seen = False
    for key in _TEXT_KEYS:
        if key in value:
            seen = True
            total += _openai_value(value[key])
    images = value.get("images")  # Ollama's base64 list on a message
    if isinstance(images, list):
        seen = True
        total += IMAGE_TOKENS * len(images)
    calls = value.get("tool_calls")
    if isinstance(calls, list):
        seen = True
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                total += text_tokens(str(fn.get("name", ""))) + _openai_value(fn.get("arguments", ""))
    if not seen:  # a part of a type not known here: its JSON, which errs high
        total += text_tokens(_json.encode(value).decode())
    return total


def estimate_openai(body: dict[str, Any]) -> int:
    """OpenAI-shaped bodies: Chat Completions `messages`, Ollama's `messages` + `images`, and the
    Responses API's `instructions` + `input` items."""
    total = float(BASE)
    for key in ("messages", "input"):
        items = body.get(key)
        if isinstance(items, str):
            total += text_tokens(items)
        elif isinstance(items, list):
            for item in items:
                total += MESSAGE_OVERHEAD + _openai_value(item)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        total += text_tokens(instructions)
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            total += TOOL_OVERHEAD + text_tokens(_json.encode(tool).decode())
    return max(1, math.ceil(total))


def estimate(dialect: str, body: dict[str, Any]) -> int:
    """A client body's input tokens, the same way count_tokens estimates an Anthropic body."""
    return estimate_anthropic(body) if dialect == "anthropic" else estimate_openai(body)
