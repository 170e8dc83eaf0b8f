"""Benchmark scenarios (client dialect x upstream dialect x stream) and checks of their responses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TEXT_CHUNKS: tuple[str, ...] = (
    "The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy",
    " dog",
    ".",
)
FULL_TEXT = "".join(TEXT_CHUNKS)
PROMPT_TOKENS = 12
COMPLETION_TOKENS = len(TEXT_CHUNKS)
API_KEY = "sk-bench-5f0c2a9e71d84b36"  # shaped like a real key: it never occurs in a reply, as real keys do not

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
RESPONSES_PATH = "/v1/responses"
MODELS = {"openai": "mock-openai/gpt-bench", "anthropic": "mock-anthropic/claude-bench"}
PATHS = {"openai": OPENAI_PATH, "anthropic": ANTHROPIC_PATH, "responses": RESPONSES_PATH}


@dataclass(frozen=True)
class Scenario:
    key: str  # stable id used in JSON
    client: str  # dialect the client speaks: "openai" | "anthropic" | "responses"
    upstream: str  # dialect of the provider the model routes to
    stream: bool

    @property
    def label(self) -> str:
        short = {"openai": "OpenAI", "anthropic": "Anthropic", "responses": "Responses"}
        kind = "stream" if self.stream else "non-stream"
        return f"{short[self.client]}->{short[self.upstream]} {kind}"

    @property
    def path(self) -> str:
        return PATHS[self.client]

    @property
    def model(self) -> str:
        return MODELS[self.upstream]

    @property
    def translated(self) -> bool:
        return self.client != self.upstream

    def body(self) -> bytes:
        return request_body(self.client, self.model, self.stream)

    def headers(self, key: str = API_KEY) -> dict[str, str]:
        return client_headers(self.client, key)

    # direct-to-mock baseline: what the client would send the upstream itself
    def direct_body(self) -> bytes:
        return request_body(self.upstream, self.model.split("/", 1)[1], self.stream)

    def direct_path(self) -> str:
        return PATHS[self.upstream]

    def direct_headers(self) -> dict[str, str]:
        return client_headers(self.upstream)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("openai-openai-json", "openai", "openai", False),
    Scenario("openai-openai-stream", "openai", "openai", True),
    Scenario("openai-anthropic-json", "openai", "anthropic", False),
    Scenario("openai-anthropic-stream", "openai", "anthropic", True),
    # the Responses front (Codex) translated, beside the translated Chat Completions stream above
    Scenario("responses-openai-stream", "responses", "openai", True),
    Scenario("responses-anthropic-stream", "responses", "anthropic", True),
    Scenario("anthropic-anthropic-stream", "anthropic", "anthropic", True),
    Scenario("anthropic-openai-stream", "anthropic", "openai", True),
)


def request_body(dialect: str, model: str, stream: bool) -> bytes:
    if dialect == "openai":
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a benchmark."},
                {"role": "user", "content": "Say the pangram."},
            ],
            "max_tokens": 64,
            "temperature": 0,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
    elif dialect == "responses":
        body = {  # as Codex sends it: nothing stored, the conversation replayed
            "model": model,
            "instructions": "You are a benchmark.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say the pangram."}]}],
            "max_output_tokens": 64,
            "temperature": 0,
            "store": False,
            "stream": stream,
        }
    else:
        body = {
            "model": model,
            "max_tokens": 64,
            "system": "You are a benchmark.",
            "messages": [{"role": "user", "content": "Say the pangram."}],
            "temperature": 0,
            "stream": stream,
        }
    return json.dumps(body, separators=(",", ":")).encode()


def client_headers(dialect: str, key: str = API_KEY) -> dict[str, str]:
    if dialect in ("openai", "responses"):
        return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return {"Content-Type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01"}


# ------------------------------------------------------------------------------------------ checks


def check_response(scn: Scenario, status: int, content_type: str, body: bytes) -> list[str]:
    """Problems with a response the client of ``scn`` got (empty list: it is right)."""
    if status != 200:
        return [f"HTTP {status}"]
    problems: list[str] = []
    ct = content_type.split(";")[0].strip().lower()
    want_ct = "text/event-stream" if scn.stream else "application/json"
    if ct != want_ct:
        problems.append(f"Content-Type {content_type!r}, expected {want_ct}")
    try:
        if scn.client == "openai":
            problems += check_openai_stream(body) if scn.stream else check_openai_json(body)
        elif scn.client == "responses":
            problems += check_responses_stream(body) if scn.stream else check_responses_json(body)
        else:
            problems += check_anthropic_stream(body) if scn.stream else check_anthropic_json(body)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        problems.append(f"unparseable body: {type(e).__name__}: {e}")
    return problems


def check_openai_json(body: bytes) -> list[str]:
    d = json.loads(body)
    p: list[str] = []
    if d.get("object") != "chat.completion":
        p.append(f"object={d.get('object')!r}, expected 'chat.completion' (not OpenAI shape?)")
        return p
    choice = d["choices"][0]
    msg = choice["message"]
    if msg.get("role") != "assistant":
        p.append(f"message.role={msg.get('role')!r}")
    if msg.get("content") != FULL_TEXT:
        p.append(f"message.content={msg.get('content')!r}, expected {FULL_TEXT!r}")
    if choice.get("finish_reason") != "stop":
        p.append(f"finish_reason={choice.get('finish_reason')!r}, expected 'stop'")
    p += _check_openai_usage(d.get("usage"))
    return p


def _check_openai_usage(usage: Any) -> list[str]:
    if not isinstance(usage, dict):
        return [f"usage={usage!r}"]
    if usage.get("prompt_tokens") != PROMPT_TOKENS or usage.get("completion_tokens") != COMPLETION_TOKENS:
        return [f"usage={usage!r}, expected prompt_tokens={PROMPT_TOKENS} completion_tokens={COMPLETION_TOKENS}"]
    return []


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(event, data) pairs of an SSE body; comments and ids ignored."""
    out: list[tuple[str | None, str]] = []
    event: str | None = None
    for raw in body.decode("utf-8").replace("\r\n", "\n").split("\n"):
        if not raw:
            event = None
        elif raw.startswith("event:"):
            event = raw[6:].strip()
        elif raw.startswith("data:"):
            out.append((event, raw[5:].removeprefix(" ")))
    return out


def check_openai_stream(body: bytes) -> list[str]:
    events = sse_events(body)
    p: list[str] = []
    if not events or events[-1][1] != "[DONE]":
        p.append("stream does not end with 'data: [DONE]'")
    text = []
    finish = None
    usage = None
    for _ev, data in events:
        if data == "[DONE]":
            continue
        d = json.loads(data)
        if d.get("object") != "chat.completion.chunk":
            p.append(f"chunk object={d.get('object')!r}, expected 'chat.completion.chunk' (not OpenAI shape?)")
            return p
        for ch in d.get("choices") or []:
            delta = ch.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
        if d.get("usage"):
            usage = d["usage"]
    if "".join(text) != FULL_TEXT:
        p.append(f"streamed content={''.join(text)!r}, expected {FULL_TEXT!r}")
    if finish != "stop":
        p.append(f"finish_reason={finish!r}, expected 'stop'")
    p += [f"include_usage: {x}" for x in _check_openai_usage(usage)]
    return p


def check_anthropic_json(body: bytes) -> list[str]:
    d = json.loads(body)
    p: list[str] = []
    if d.get("type") != "message":
        p.append(f"type={d.get('type')!r}, expected 'message' (not Anthropic shape?)")
        return p
    text = "".join(b.get("text", "") for b in d.get("content", []) if b.get("type") == "text")
    if text != FULL_TEXT:
        p.append(f"content text={text!r}, expected {FULL_TEXT!r}")
    if d.get("stop_reason") != "end_turn":
        p.append(f"stop_reason={d.get('stop_reason')!r}, expected 'end_turn'")
    u = d.get("usage") or {}
    if u.get("input_tokens") != PROMPT_TOKENS or u.get("output_tokens") != COMPLETION_TOKENS:
        p.append(f"usage={u!r}")
    return p


def check_anthropic_stream(body: bytes) -> list[str]:
    events = sse_events(body)
    p: list[str] = []
    types: list[str] = []
    text: list[str] = []
    stop_reason = None
    output_tokens = None
    for ev, data in events:
        d = json.loads(data)
        t = d.get("type")
        if ev is not None and ev != t:
            p.append(f"event: {ev!r} line does not match data type {t!r}")
        types.append(str(t))
        if t == "content_block_delta" and d["delta"].get("type") == "text_delta":
            text.append(d["delta"]["text"])
        elif t == "message_delta":
            stop_reason = d["delta"].get("stop_reason")
            output_tokens = (d.get("usage") or {}).get("output_tokens")
        elif t == "error":
            p.append(f"error event: {data}")
    if not types or types[0] != "message_start":
        p.append(f"first event {types[:1]!r}, expected message_start (not Anthropic shape?)")
    if not types or types[-1] != "message_stop":
        p.append(f"last event {types[-1:]!r}, expected message_stop")
    for need in ("content_block_start", "content_block_stop", "message_delta"):
        if need not in types:
            p.append(f"no {need} event")
    if "".join(text) != FULL_TEXT:
        p.append(f"streamed text={''.join(text)!r}, expected {FULL_TEXT!r}")
    if stop_reason != "end_turn":
        p.append(f"message_delta stop_reason={stop_reason!r}, expected 'end_turn'")
    if output_tokens != COMPLETION_TOKENS:
        p.append(f"message_delta usage.output_tokens={output_tokens!r}, expected {COMPLETION_TOKENS}")
    return p


def _check_responses_object(d: Any, status: str = "completed") -> list[str]:
    p: list[str] = []
    if d.get("object") != "response":
        return [f"object={d.get('object')!r}, expected 'response' (not Responses shape?)"]
    if d.get("status") != status:
        p.append(f"status={d.get('status')!r}, expected {status!r}")
    text = "".join(
        c.get("text", "")
        for item in d.get("output") or []
        if item.get("type") == "message"
        for c in item.get("content") or []
        if c.get("type") == "output_text"
    )
    if text != FULL_TEXT:
        p.append(f"output text={text!r}, expected {FULL_TEXT!r}")
    u = d.get("usage") or {}
    if (u.get("input_tokens"), u.get("output_tokens"), u.get("total_tokens")) != (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        PROMPT_TOKENS + COMPLETION_TOKENS,
    ):
        p.append(f"usage={u!r}")
    return p


def check_responses_json(body: bytes) -> list[str]:
    return _check_responses_object(json.loads(body))


def check_responses_stream(body: bytes) -> list[str]:
    events = [json.loads(data) for _ev, data in sse_events(body)]
    p: list[str] = []
    types = [e.get("type") for e in events]
    if not types or types[0] != "response.created":
        return [f"first event {types[:1]!r}, expected response.created (not Responses shape?)"]
    if [e.get("sequence_number") for e in events] != list(range(len(events))):
        p.append("sequence_number is not 0, 1, 2...")
    for need in ("response.output_item.added", "response.output_text.done", "response.output_item.done"):
        if need not in types:
            p.append(f"no {need} event")
    text = "".join(e.get("delta", "") for e in events if e.get("type") == "response.output_text.delta")
    if text != FULL_TEXT:
        p.append(f"streamed text={text!r}, expected {FULL_TEXT!r}")
    if types[-1] != "response.completed":
        return [*p, f"last event {types[-1]!r}, expected response.completed"]
    return p + _check_responses_object(events[-1]["response"])
