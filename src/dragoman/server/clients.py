"""Which client sent a request, from its User-Agent: a short family name for the ledger and metrics."""

from __future__ import annotations

import functools

# (prefix of the lower-cased User-Agent, family), the first match wins
FAMILIES: tuple[tuple[str, str], ...] = (
    ("claude-cli", "claude-code"),
    ("claude-code", "claude-code"),
    ("codex_exec", "codex"),
    ("codex_cli", "codex"),
    ("codex", "codex"),
    ("openai/python", "openai-python"),
    ("asyncopenai/python", "openai-python"),
    ("openai/js", "openai-node"),
    ("anthropic/python", "anthropic-python"),
    ("asyncanthropic/python", "anthropic-python"),
    ("anthropic/js", "anthropic-node"),
    ("opencode", "opencode"),
    ("kimi", "kimi-cli"),
    ("dragoman", "dragoman"),
    ("curl/", "curl"),
    ("python-httpx", "httpx"),
    ("python-requests", "requests"),
    ("python/", "python"),
    ("aiohttp", "aiohttp"),
    ("node", "node"),
)


@functools.lru_cache(maxsize=512)
def family(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    low = user_agent.lower()
    for prefix, name in FAMILIES:
        if low.startswith(prefix):
            return name
    return "other"
