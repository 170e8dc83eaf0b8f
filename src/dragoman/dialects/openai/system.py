"""System prompts for OpenAI-dialect upstreams written by another dialect's client.

Many OpenAI-compatible servers honour one leading system message only: vLLM with the Qwen 3.5/3.6
chat templates answers 400 "System message must be at the beginning." (vllm-project/vllm#41114),
Gemma and Mistral templates want strictly alternating roles, MiniMax accepts one system message in
first position (MiniMax-AI/MiniMax-M2#27); OpenAI, DeepSeek and OpenRouter take several anywhere.
Moonshot documents a single leading system prompt. So, for the one shape every one of them takes:

* the system blocks, and system messages before the first turn, become one leading system
  message, their texts joined by a blank line, in order; Claude Code's billing-header block is
  left out (it changes on every request and would defeat the upstream's prefix cache);
* a system message later in the conversation keeps its text and its place as a
  `<system-reminder>` text in the adjacent user turn (the one before it, else the one after it,
  else a user turn of its own): the form Claude Code's own prompt tells models to read as system
  guidance, and one that keeps user/assistant alternation intact.

A request written by an OpenAI client keeps its system messages as they were (same-dialect trips
never come here, and a round trip stays exact).
"""

from __future__ import annotations

from dragoman.canonical import Message, Part, Request, Text
from dragoman.dialects.base import is_client_metadata

SEPARATOR = "\n\n"


def reminder(text: str) -> Text:
    return Text(f"<system-reminder>\n{text}\n</system-reminder>")


def fold_system(request: Request) -> tuple[str | None, list[Message]]:
    """The one leading system text (None when there is none) and the messages without system
    messages, later ones folded into user turns. The request itself is left as it was."""
    texts = [t.text for t in request.system if not is_client_metadata(t.text)]
    messages = request.messages
    start = 0
    while start < len(messages) and messages[start].role == "system":
        texts.extend(p.text for p in messages[start].content if isinstance(p, Text))
        start += 1
    out: list[Message] = []
    waiting: list[Part] = []  # reminders with no user turn before them yet
    for m in messages[start:]:
        if m.role == "system":
            reminders = [reminder(p.text) for p in m.content if isinstance(p, Text)]
            if out and out[-1].role == "user":
                last = out[-1]
                out[-1] = Message("user", [*last.content, *reminders], name=last.name, extra=last.extra)
            else:
                waiting.extend(reminders)
        elif m.role == "user" and waiting:
            out.append(Message("user", [*waiting, *m.content], name=m.name, extra=m.extra))
            waiting = []
        else:
            out.append(m)
    if waiting:
        out.append(Message("user", waiting))
    kept = [t for t in texts if t]
    return (SEPARATOR.join(kept) if kept else None), out
