"""How much the `[router]` rules cost a request: `Router.choose_for` on Claude Code-sized bodies.

Run: ``.venv/bin/python bench/signals.py``. Prints microseconds per call for a typical agent turn
(a 15 KB system prompt, 20 tools, 40 messages) and for a ~200,000-token one, with and without the
long_context rule (the only one that estimates tokens), and with no `[router]` table at all.
"""

from __future__ import annotations

import time
from typing import Any

from dragoman import tokens
from dragoman.config import parse
from dragoman.gateway import Gateway

TOOL = {
    "name": "Bash",
    "description": "Run a shell command. " * 40,
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string", "description": "the cmd " * 10}, "timeout": {"type": "number"}},
        "required": ["command"],
    },
}


def turn(messages: int, text: str) -> dict[str, Any]:
    history: list[dict[str, Any]] = []
    for i in range(messages // 2):
        history.append({"role": "user", "content": [{"type": "text", "text": text}]})
        history.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "let me look", "signature": "sig" * 40},
                    {"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {"command": "ls -la"}},
                ],
            }
        )
    history.append({"role": "user", "content": "go on"})
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code. " * 700}],
        "tools": [dict(TOOL, name=f"Tool{i}") for i in range(20)],
        "thinking": {"type": "adaptive"},
        "messages": history,
    }


def per_call(gw: Gateway, body: dict[str, Any], n: int) -> float:
    choose = gw.router.choose_for
    start = time.perf_counter()
    for _ in range(n):
        choose("claude-sonnet-4-6", "anthropic", body)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    providers = {"up": {"dialect": "anthropic", "base_url": "http://127.0.0.1:9"}}
    all_rules = {
        "default": "up/a",
        "background": "up/b",
        "think": "up/c",
        "long_context": "up/d",
        "web_search": "up/e",
        "image": "up/f",
    }
    no_tokens = {k: v for k, v in all_rules.items() if k != "long_context"}
    gateways = {
        "no [router]": Gateway.from_config(parse({"server": {"default_provider": "up"}, "providers": providers})),
        "rules, no long_context": Gateway.from_config(
            parse({"server": {"default_provider": "up"}, "providers": providers, "router": no_tokens})
        ),
        "all rules": Gateway.from_config(
            parse({"server": {"default_provider": "up"}, "providers": providers, "router": all_rules})
        ),
    }
    bodies = [(turn(40, "please fix the failing test " * 80), 2000), (turn(80, "please fix it " * 1400), 200)]
    for body, n in bodies:
        label = f"{len(body['messages'])} messages, ~{tokens.estimate('anthropic', body) // 1000}k tokens"
        for name, gw in gateways.items():
            print(f"{label:28} {name:24} {per_call(gw, body, n):9.1f} us/call")


if __name__ == "__main__":
    main()
