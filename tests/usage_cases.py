"""Recorded provider replies that report usage, with the numbers each one reports, for the ledger's
end-to-end usage tests (`test_ledger_usage.py`).

Every case is a real recording under tests/fixtures (see its README) except `moonshot-choice-usage`,
which moves the usage report of a real Kimi stream (fantasy, OpenRouter) to where Moonshot's own API
puts it — inside `choices[0]`, with `cached_tokens` at the top of the usage object — because no native
Moonshot recording could be obtained (fixtures README, "Not obtained").

`reported` is what the recording says in its own dialect's terms; `Case.want` is that normalised to
the ledger's convention (input is uncached input), written out per dialect right here so the
arithmetic the ledger must do is visible next to the recorded numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dragoman.canonical import Usage
from tests.recorded import cassette, raw

FANTASY = "charmbracelet__fantasy/providertests/testdata/"
PYDANTIC = "pydantic__pydantic-ai/tests/models/"
CODECOMPANION = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/"
VERCEL = "vercel__ai/packages/"

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
JSON = "application/json"


def openai_usage(
    prompt: int, completion: int, cached: int = 0, written: int = 0, reasoning: int | None = None
) -> Usage:
    """OpenAI's `prompt_tokens` counts cached (and cache-written) input too."""
    return Usage(
        input_tokens=prompt - cached - written,
        output_tokens=completion,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


def anthropic_usage(input: int, output: int, cache_read: int = 0, cache_write: int = 0) -> Usage:
    """Anthropic's `input_tokens` already excludes cache reads and writes; it reports no reasoning split."""
    return Usage(input_tokens=input, output_tokens=output, cache_read_tokens=cache_read, cache_write_tokens=cache_write)


def responses_usage(input: int, output: int, cached: int = 0, reasoning: int | None = None) -> Usage:
    """Responses' `input_tokens` counts cached input too, like Chat Completions."""
    return Usage(
        input_tokens=input - cached, output_tokens=output, cache_read_tokens=cached, reasoning_tokens=reasoning
    )


def ollama_usage(prompt_eval: int, eval: int) -> Usage:
    return Usage(input_tokens=prompt_eval, output_tokens=eval)


@dataclass(frozen=True)
class Case:
    id: str
    provider: str  # the provider id the test config points at the fake upstream
    dialect: str  # the upstream's
    stream: bool
    load: Callable[[], bytes]  # the reply body, as the provider sent it
    content_type: str
    reported: dict[str, int]  # numbers as the recording states them (checked against it)
    want: Usage
    stop: str
    tools: int = 0
    fronts: tuple[str, ...] = ("openai", "anthropic")  # the client dialects that can meet this reply
    choice_usage: bool = False  # usage inside choices[0] (Moonshot), where the OpenAI SDK does not look

    def body(self) -> bytes:
        return self.load()


def _cassette(path: str, index: int = 0) -> Callable[[], bytes]:
    return lambda: cassette(path)[index].body


def _raw(path: str) -> Callable[[], bytes]:
    return lambda: raw(path)


def _openai_lines(path: str) -> Callable[[], bytes]:
    """Vercel's chunks-per-line files: one `data:` payload per line, `[DONE]` dropped."""
    return lambda: b"".join(b"data: " + line + b"\n\n" for line in raw(path).splitlines() if line) + b"data: [DONE]\n\n"


def _responses_lines(path: str) -> Callable[[], bytes]:
    def load() -> bytes:
        out = []
        for line in raw(path).splitlines():
            if line:
                kind = json.loads(line)["type"]
                out.append(f"event: {kind}\ndata: ".encode() + line + b"\n\n")
        return b"".join(out)

    return load


def _codecompanion_sse(path: str) -> Callable[[], bytes]:
    """codecompanion's streams have no blank line between events."""
    return lambda: b"".join(line + b"\n\n" for line in raw(path).splitlines() if line.strip())


def _moonshot_placement() -> bytes:
    """A real Kimi stream with its usage report moved to Moonshot's placement (see the docstring)."""
    body = cassette(FANTASY + "TestOpenRouterCommon/kimi/multi_tool_streaming.yaml")[0].body
    out = []
    for event in body.split(b"\n\n"):
        if b'"usage":{' in event and event.startswith(b"data: {"):
            chunk = json.loads(event[len(b"data: ") :])
            usage = chunk.pop("usage")
            cached = usage.pop("prompt_tokens_details")["cached_tokens"]
            chunk["choices"][0]["usage"] = {**usage, "cached_tokens": cached}
            event = b"data: " + json.dumps(chunk, separators=(",", ":")).encode()
        out.append(event)
    return b"\n\n".join(out)


CASES: tuple[Case, ...] = (
    # --- Anthropic Messages -------------------------------------------------------------------
    Case(
        "anthropic-cache-write-and-read",
        "up-anthropic",
        "anthropic",
        False,
        _cassette(PYDANTIC + "cassettes/test_anthropic/test_anthropic_cache_real_api.yaml", 1),
        JSON,
        {"input_tokens": 3, "output_tokens": 33, "cache_read_input_tokens": 1111, "cache_creation_input_tokens": 418},
        anthropic_usage(3, 33, cache_read=1111, cache_write=418),
        "end_turn",
    ),
    Case(
        # compaction: the top-level usage covers the last iteration only; the bill is every iteration
        "anthropic-cache-read-compaction-stream",
        "up-anthropic",
        "anthropic",
        True,
        _cassette(PYDANTIC + "cassettes/test_anthropic/test_anthropic_compaction_usage_with_cache_streaming.yaml"),
        SSE,
        {"input_tokens": 181, "output_tokens": 8, "cache_read_input_tokens": 0},
        anthropic_usage(100 + 181, 83 + 8, cache_read=55096),
        "end_turn",
        fronts=("anthropic",),  # only an Anthropic client can ask for compaction: it always passes through
    ),
    Case(
        "anthropic-cache-control-stream",
        "up-anthropic",
        "anthropic",
        True,
        _cassette(FANTASY + "TestAnthropicCommonWithCacheControl/claude-sonnet-4/simple_streaming.yaml"),
        SSE,
        {"input_tokens": 16, "output_tokens": 43, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        anthropic_usage(16, 43),
        "end_turn",
    ),
    Case(
        "anthropic-cache-control-tools-stream",
        "up-anthropic",
        "anthropic",
        True,
        _cassette(FANTASY + "TestAnthropicCommonWithCacheControl/claude-sonnet-4/multi_tool_streaming.yaml"),
        SSE,
        {"input_tokens": 502, "output_tokens": 137, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        anthropic_usage(502, 137),
        "tool_use",
        tools=2,
    ),
    Case(
        "anthropic-cache-control-tools",
        "up-anthropic",
        "anthropic",
        False,
        _cassette(FANTASY + "TestAnthropicCommonWithCacheControl/claude-sonnet-4/multi_tool.yaml"),
        JSON,
        {"input_tokens": 507, "output_tokens": 137, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        anthropic_usage(507, 137),
        "tool_use",
        tools=2,
    ),
    # --- OpenAI Chat Completions and its relatives ----------------------------------------------
    Case(
        "openai-prompt-cache-read",
        "up-openai",
        "openai",
        False,
        _cassette(PYDANTIC + "cassettes/test_openai_prompt_cache/test_openai_chat_prompt_cache_e2e.yaml", 1),
        JSON,
        {"prompt_tokens": 4020, "completion_tokens": 4, "cached_tokens": 4012, "reasoning_tokens": 0},
        openai_usage(4020, 4, cached=4012, reasoning=0),
        "end_turn",
    ),
    Case(
        "openai-prompt-cache-write",
        "up-openai",
        "openai",
        False,
        _cassette(PYDANTIC + "cassettes/test_openai_prompt_cache/test_openai_chat_prompt_cache_e2e.yaml", 0),
        JSON,
        {"prompt_tokens": 4020, "completion_tokens": 4, "cache_write_tokens": 4012, "cached_tokens": 0},
        openai_usage(4020, 4, written=4012, reasoning=0),
        "end_turn",
    ),
    Case(
        "openai-reasoning-stream",
        "up-openai",
        "openai",
        True,
        _cassette(FANTASY + "TestOpenAICommon/openai-gpt-5/simple_streaming.yaml"),
        SSE,
        {"prompt_tokens": 19, "completion_tokens": 75, "cached_tokens": 0, "reasoning_tokens": 64},
        openai_usage(19, 75, reasoning=64),
        "end_turn",
    ),
    Case(
        "openai-tools-stream",
        "up-openai",
        "openai",
        True,
        _cassette(FANTASY + "TestOpenAICommon/openai-gpt-4o/multi_tool_streaming.yaml"),
        SSE,
        {"prompt_tokens": 106, "completion_tokens": 50, "cached_tokens": 0, "reasoning_tokens": 0},
        openai_usage(106, 50, reasoning=0),
        "tool_use",
        tools=2,
    ),
    Case(
        "deepseek-cache-hit-stream",
        "deepseek",
        "openai",
        True,
        _openai_lines(VERCEL + "deepseek/src/chat/__fixtures__/deepseek-tool-call.chunks.txt"),
        SSE,
        {"prompt_tokens": 339, "completion_tokens": 83, "prompt_cache_hit_tokens": 320, "reasoning_tokens": 39},
        openai_usage(339, 83, cached=320, reasoning=39),
        "tool_use",
        tools=1,
    ),
    Case(
        "deepseek-cache-hit",
        "deepseek",
        "openai",
        False,
        _raw(VERCEL + "deepseek/src/chat/__fixtures__/deepseek-tool-call.json"),
        JSON,
        {"prompt_tokens": 339, "completion_tokens": 92, "prompt_cache_hit_tokens": 320, "reasoning_tokens": 48},
        openai_usage(339, 92, cached=320, reasoning=48),
        "tool_use",
        tools=1,
    ),
    Case(
        "deepseek-reasoning-stream",
        "deepseek",
        "openai",
        True,
        _codecompanion_sse(CODECOMPANION + "deepseek_streaming.txt"),
        SSE,
        {"prompt_tokens": 9, "completion_tokens": 168, "prompt_cache_hit_tokens": 0, "reasoning_tokens": 163},
        openai_usage(9, 168, reasoning=163),
        "end_turn",
    ),
    Case(
        "openrouter-cache-read-and-write",
        "openrouter",
        "openai",
        False,
        _cassette(
            PYDANTIC + "openrouter/cassettes/test_cache/test_openrouter_cache_messages_anthropic_real_api.yaml", 1
        ),
        JSON,
        {"prompt_tokens": 3329, "completion_tokens": 53, "cached_tokens": 3211, "cache_write_tokens": 115},
        openai_usage(3329, 53, cached=3211, written=115, reasoning=0),
        "end_turn",
    ),
    Case(
        "openrouter-kimi-cached-tools-stream",
        "openrouter",
        "openai",
        True,
        _cassette(FANTASY + "TestOpenRouterCommon/kimi/multi_tool_streaming.yaml"),
        SSE,
        {"prompt_tokens": 125, "completion_tokens": 97, "cached_tokens": 64, "reasoning_tokens": 56},
        openai_usage(125, 97, cached=64, reasoning=56),
        "tool_use",
        tools=2,
    ),
    Case(
        # usage in the finish chunk, JSON spaced after every colon
        "avian-kimi-cached-stream",
        "up-openai",
        "openai",
        True,
        _cassette(FANTASY + "TestOpenAICompatibleCommon/avian-kimi/simple_streaming.yaml"),
        SSE,
        {"prompt_tokens": 21, "completion_tokens": 242, "cached_tokens": 8, "reasoning_tokens": 238},
        openai_usage(21, 242, cached=8, reasoning=238),
        "end_turn",
    ),
    Case(
        "moonshot-choice-usage-stream",
        "moonshot",
        "openai",
        True,
        _moonshot_placement,
        SSE,
        {"prompt_tokens": 125, "completion_tokens": 97, "cached_tokens": 64, "reasoning_tokens": 56},
        openai_usage(125, 97, cached=64, reasoning=56),
        "tool_use",
        tools=2,
        choice_usage=True,
    ),
    Case(
        "moonshot-placement-passed-through-stream",
        "up-openai",
        "openai",
        True,
        _moonshot_placement,
        SSE,
        {"prompt_tokens": 125, "completion_tokens": 97, "cached_tokens": 64, "reasoning_tokens": 56},
        openai_usage(125, 97, cached=64, reasoning=56),
        "tool_use",
        tools=2,
        choice_usage=True,
    ),
    # --- Ollama ---------------------------------------------------------------------------------
    Case(
        "ollama-tools-stream",
        "up-ollama",
        "ollama",
        True,
        _raw(CODECOMPANION + "ollama_tools_streaming.txt"),
        NDJSON,
        {"prompt_eval_count": 577, "eval_count": 90},
        ollama_usage(577, 90),
        "tool_use",
        tools=2,
    ),
    Case(
        "ollama-tools",
        "up-ollama",
        "ollama",
        False,
        _raw(CODECOMPANION + "ollama_tools_no_streaming.txt"),
        JSON,
        {"prompt_eval_count": 577, "eval_count": 90},
        ollama_usage(577, 90),
        "tool_use",
        tools=2,
    ),
    # --- OpenAI Responses -----------------------------------------------------------------------
    Case(
        "responses-reasoning-stream",
        "up-responses",
        "responses",
        True,
        _cassette(FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/simple_streaming.yaml"),
        SSE,
        {"input_tokens": 19, "output_tokens": 118, "cached_tokens": 0, "reasoning_tokens": 64},
        responses_usage(19, 118, reasoning=64),
        "end_turn",
    ),
    Case(
        "responses-cached-stream",
        "up-responses",
        "responses",
        True,
        _responses_lines(VERCEL + "openai/src/responses/__fixtures__/openai-phase.1.chunks.txt"),
        SSE,
        {"input_tokens": 7112, "output_tokens": 463, "cached_tokens": 3072, "reasoning_tokens": 64},
        responses_usage(7112, 463, cached=3072, reasoning=64),
        "end_turn",
    ),
    Case(
        "responses-reasoning",
        "up-responses",
        "responses",
        False,
        _cassette(FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/simple.yaml"),
        JSON,
        {"input_tokens": 19, "output_tokens": 86, "cached_tokens": 0, "reasoning_tokens": 64},
        responses_usage(19, 86, reasoning=64),
        "end_turn",
    ),
)


def last_report(body: bytes) -> dict[str, Any]:
    """The recording's last usage object, flattened one level (details merged in), for `reported`."""
    found: dict[str, Any] | None = None
    text = body.decode()
    for match in re.finditer(r'"usage"\s*:\s*\{', text):
        start = match.end() - 1
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                found = json.loads(text[start : end + 1])
                break
    if found is None:  # Ollama: the counts sit on the done line itself
        last = json.loads(body.strip().splitlines()[-1])
        return {k: v for k, v in last.items() if isinstance(v, int)}
    flat = {k: v for k, v in found.items() if not isinstance(v, dict)}
    for value in found.values():
        if isinstance(value, dict):
            flat.update(value)
    return flat
