"""Upstream identities: what a provider option (`identity = "claude-code"`) makes the gateway send
so that endpoints admitting only coding agents accept it.

Claude Code's API requests carry `User-Agent: claude-cli/<version> (external, cli)`, `x-app: cli`,
an `anthropic-beta` list led by `claude-code-20250219`, and `X-Claude-Code-Session-Id`, a UUID made
once per process (captures of real Claude Code traffic: router-for-me/CLIProxyAPI#1621 and PR
#2540, griffinmartin/opencode-claude-auth#109, ex-machina-co/opencode-anthropic-auth#174,
tingly-dev/tingly-box#1735 for 2.1.258). The OAuth beta is left out: it belongs to subscription
tokens, not to API keys; a Claude Code client's own betas are merged in by the trip.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

CLAUDE_CODE_VERSION = "2.1.258"
# once per gateway start: made at import, before `serve --workers N` forks, so workers share it
SESSION_ID = str(uuid.uuid4())


@dataclass(frozen=True)
class Identity:
    user_agent: str
    headers: dict[str, str] = field(default_factory=dict)
    betas: tuple[str, ...] = ()


IDENTITIES: dict[str, Identity] = {
    "claude-code": Identity(
        user_agent=f"claude-cli/{CLAUDE_CODE_VERSION} (external, cli)",
        headers={"x-app": "cli", "x-claude-code-session-id": SESSION_ID},
        betas=("claude-code-20250219", "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"),
    ),
}
