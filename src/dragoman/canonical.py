"""The canonical content model every dialect codec speaks to, and nothing else.

A request or response is a list of messages made of typed parts. A stream is a sequence of events
that follows one grammar whatever the wire format was:

    MessageStart
    ( PartStart(i) <deltas for i>* PartStop(i) )*      # i = 0, 1, 2 ... one part open at a time
    MessageDelta                                       # stop reason and the complete final usage, once
    MessageStop
    StreamError                                        # may replace the tail after any event

Codecs that read an interleaved wire format (OpenAI tool-call deltas by index) put it in this order;
codecs that write a wire format only ever see this order.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["system", "user", "assistant"]

# Anthropic's names: the richest set. Every dialect maps to and from these.
StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "refusal",
    "pause_turn",
    "model_context_window_exceeded",
]


class Text(msgspec.Struct, tag="text", omit_defaults=True):
    text: str
    # Dialect-specific attributes kept verbatim for a same-dialect trip (cache_control, citations).
    extra: dict[str, Any] | None = None


class Image(msgspec.Struct, tag="image", omit_defaults=True):
    """Either inline base64 `data` with its `media_type`, or a `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    detail: str | None = None
    extra: dict[str, Any] | None = None


class Reasoning(msgspec.Struct, tag="reasoning", omit_defaults=True):
    """Model reasoning: Anthropic thinking / redacted_thinking, OpenAI-side reasoning_content,
    Ollama thinking, Responses reasoning items. `signature` and `redacted` are opaque and must
    survive byte for byte; a Responses upstream's `encrypted_content` travels as the `signature`."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None  # the `data` of a redacted_thinking block
    origin: str | None = None  # provider id that produced it; signatures are only valid there
    details: list[Any] | None = None  # OpenRouter reasoning_details, replayed unchanged
    # Dialect-specific attributes (a Responses reasoning item's id), namespaced by dialect.
    extra: dict[str, Any] | None = None


class ToolCall(msgspec.Struct, tag="tool_call", omit_defaults=True):
    id: str
    name: str
    arguments: str = ""  # JSON text; the OpenAI form. Object-based dialects parse it at their edge.
    extra: dict[str, Any] | None = None


class ToolResult(msgspec.Struct, tag="tool_result", omit_defaults=True):
    tool_call_id: str
    content: list[Text | Image] = msgspec.field(default_factory=list)
    is_error: bool = False
    name: str | None = None  # Ollama wants the tool's name on results
    extra: dict[str, Any] | None = None


class Opaque(msgspec.Struct, tag="opaque", omit_defaults=True):
    """A block only its own dialect understands (server tools, citations results, compaction...).
    Kept verbatim for that dialect; another dialect refuses or drops it by documented rule."""

    dialect: str
    data: dict[str, Any]


Part = Text | Image | Reasoning | ToolCall | ToolResult | Opaque


class Message(msgspec.Struct, omit_defaults=True):
    role: Role
    content: list[Part] = msgspec.field(default_factory=list)
    name: str | None = None
    extra: dict[str, Any] | None = None


class ToolSpec(msgspec.Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None
    extra: dict[str, Any] | None = None


class ToolChoice(msgspec.Struct, omit_defaults=True):
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


class Thinking(msgspec.Struct, omit_defaults=True):
    """What the client asked of reasoning. `enabled=None` means the client said nothing."""

    enabled: bool | None = None
    budget_tokens: int | None = None
    effort: str | None = None  # none|minimal|low|medium|high|xhigh|max
    adaptive: bool = False
    display: str | None = None


class ResponseFormat(msgspec.Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


class Request(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[Message] = msgspec.field(default_factory=list)
    system: list[Text] = msgspec.field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    thinking: Thinking | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    stream: bool = False
    include_usage: bool = False
    # Fields of the client's dialect that have no canonical meaning, kept for a same-dialect trip.
    extra: dict[str, Any] | None = None
    # The dialect the request was decoded from; an encoder may adapt only what another dialect wrote.
    source: str | None = None


class Usage(msgspec.Struct, omit_defaults=True, gc=False):  # counts only: never in a cycle
    """Anthropic's convention: `input_tokens` counts only uncached input."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int | None = None

    @property
    def prompt_tokens(self) -> int:
        """OpenAI's convention: all input, cached included."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def merge_usage(into: Usage, new: Usage) -> Usage:
    """Combine two partial reports, later non-zero fields winning (for decoders that see usage in
    pieces). Stream consumers do not merge: a `MessageDelta`'s usage is the complete final report."""
    return Usage(
        input_tokens=new.input_tokens or into.input_tokens,
        output_tokens=new.output_tokens or into.output_tokens,
        cache_read_tokens=new.cache_read_tokens or into.cache_read_tokens,
        cache_write_tokens=new.cache_write_tokens or into.cache_write_tokens,
        reasoning_tokens=new.reasoning_tokens if new.reasoning_tokens is not None else into.reasoning_tokens,
    )


class Response(msgspec.Struct, omit_defaults=True):
    id: str
    model: str
    content: list[Part] = msgspec.field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    extra: dict[str, Any] | None = None


# ---- stream events ------------------------------------------------------------------------------


class MessageStart(msgspec.Struct, tag="message_start", omit_defaults=True):
    id: str
    model: str
    usage: Usage | None = None


class PartStart(msgspec.Struct, tag="part_start", omit_defaults=True):
    """Opens part `index`. `part` holds whatever arrived with the opening (a tool call's id and
    name, a complete redacted_thinking or opaque block)."""

    index: int
    part: Part


class TextDelta(msgspec.Struct, tag="text_delta"):
    index: int
    text: str


class ReasoningDelta(msgspec.Struct, tag="reasoning_delta"):
    index: int
    text: str


class SignatureDelta(msgspec.Struct, tag="signature_delta"):
    index: int
    signature: str


class ArgumentsDelta(msgspec.Struct, tag="arguments_delta"):
    index: int
    fragment: str


class OpaqueDelta(msgspec.Struct, tag="opaque_delta"):
    """A delta only the part's own dialect understands (citations_delta, compaction_delta)."""

    index: int
    dialect: str
    data: dict[str, Any]


class PartStop(msgspec.Struct, tag="part_stop"):
    index: int


class MessageDelta(msgspec.Struct, tag="message_delta", omit_defaults=True):
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None


class MessageStop(msgspec.Struct, tag="message_stop"):
    pass


class StreamError(msgspec.Struct, tag="stream_error", omit_defaults=True):
    """The upstream failed after the stream began. `status` is what it would have been."""

    status: int
    error_type: str  # Anthropic error type name: api_error, overloaded_error, rate_limit_error...
    message: str


Event = (
    MessageStart
    | PartStart
    | TextDelta
    | ReasoningDelta
    | SignatureDelta
    | ArgumentsDelta
    | OpaqueDelta
    | PartStop
    | MessageDelta
    | MessageStop
    | StreamError
)
