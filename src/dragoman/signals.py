"""What a request is, read cheaply from the client's body for the `[router]` rules: how many input
tokens it holds (estimated, only when a rule needs it), the reasoning effort it asks, whether it
carries a web-search tool or an image. Pure: the body is only read.

It runs on every request a rule may re-route, so it does no full decode: one walk over the
messages for images and, when asked, the token estimate of `tokens.py`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from dragoman import dialects, tokens
from dragoman.config import EFFORTS

# An explicit thinking budget counts as the effort of its band (the OpenAI codec's bands).
BUDGET_BANDS = ((2048, "low"), (8192, "medium"), (24576, "high"))
# A toggle turned on with nothing else said (Ollama's think=true, Moonshot's thinking.enabled).
TOGGLE_EFFORT = "high"


@dataclass(frozen=True, slots=True)
class Signals:
    tokens: int | None = None  # estimated input tokens; None when no rule asked for them
    effort: str | None = None  # the reasoning effort asked (one of config.EFFORTS); None: none asked
    web_search: bool = False
    image: bool = False


NO_SIGNALS = Signals()


def needs_tokens(rules: Collection[str]) -> bool:
    return "long_context" in rules


def signals_of(dialect: str, body: dict[str, Any], *, count_tokens: bool = True) -> Signals:
    return Signals(
        tokens=estimate(dialect, body) if count_tokens else None,
        effort=effort_of(dialect, body),
        web_search=has_web_search(body),
        image=has_image(body),
    )


def estimate(dialect: str, body: dict[str, Any]) -> int:
    return tokens.estimate(dialect, body)


def effort_of(dialect: str, body: dict[str, Any]) -> str | None:
    """The reasoning effort a body asks, or None when it asks none (disabled, not said, or
    adaptive thinking left to the model)."""
    try:
        thinking = dialects.get(dialect).thinking_of(body)
    except KeyError:  # a dialect without a codec here says nothing about reasoning
        return None
    if thinking is None or thinking.enabled is not True:
        return None
    if thinking.effort:
        return thinking.effort if thinking.effort in EFFORTS else None
    if thinking.budget_tokens:
        return next((name for limit, name in BUDGET_BANDS if thinking.budget_tokens <= limit), "xhigh")
    return None if thinking.adaptive else TOGGLE_EFFORT


def has_web_search(body: dict[str, Any]) -> bool:
    if body.get("web_search_options") is not None:  # OpenAI's search models
        return True
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            kind = tool.get("type")
            if isinstance(kind, str) and kind.startswith("web_search"):
                return True
    return False


def has_image(body: dict[str, Any]) -> bool:
    for key in ("messages", "input"):
        items = body.get(key)
        if isinstance(items, list) and any(_holds_image(item) for item in items):
            return True
    return False


def _holds_image(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    if item.get("images"):  # Ollama
        return True
    content = item.get("content")
    if not isinstance(content, list):
        return False
    for part in content:
        if isinstance(part, dict):
            kind = part.get("type")
            if kind in tokens.IMAGE_PARTS:
                return True
            if kind == "tool_result" and _holds_image(part):
                return True
    return False
