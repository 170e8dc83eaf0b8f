"""The interface every dialect codec implements.

A codec is stateless; stream decoders, encoders and taps are small state machines made per stream.
Requests and responses travel as plain dicts (already JSON-decoded by the front, JSON-encoded by the
caller) so that a same-dialect trip never pays for a canonical conversion.

Besides translating, a codec knows everything about its wire format that the trip needs, so that a
new dialect is one package plus one row in `dragoman.dialects.DIALECTS`:

* where its SDKs post (`path`), the headers a request carries (`request_headers`) and which client
  headers a same-dialect trip passes on (`forward_headers`);
* how a wire body asks for reasoning (`thinking_of`) and for stream usage (`ask_stream_usage`);
* what of a client's body shapes the reply (`reply_context`);
* how to read a same-dialect reply without translating it (`summarize` for a body, `stream_tap`
  for a stream: end seen, usage, stop reason, tool calls);
* its error envelope (`encode_error`, and the stream encoder's `encode_error`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from dragoman.canonical import Event, Reasoning, Request, Response, StopReason, Usage
from dragoman.errors import GatewayError


class Sealer(Protocol):
    """Seals reasoning into an opaque blob a client carries back (Responses' `encrypted_content`)."""

    def seal(self, parts: list[Reasoning]) -> str: ...

    def open(self, blob: str) -> list[Reasoning] | None:
        """The parts a blob holds, or None for a blob this gateway did not seal (or one tampered with)."""
        ...


@dataclass(frozen=True, slots=True)
class EncodeContext:
    """What shapes a reply in the client's dialect beyond the canonical response itself."""

    include_usage: bool = False  # an OpenAI client's stream_options.include_usage
    request: dict[str, Any] | None = None  # the client's body, for dialects whose replies echo it
    response_id: str | None = None  # the id the reply is presented under, when the gateway chose one
    sealer: Sealer | None = None  # for dialects that hand reasoning to the client sealed
    origin: str | None = None  # the provider a reply comes from, stamped on reasoning it seals


class Tally(msgspec.Struct, omit_defaults=True):
    """What a same-dialect reply said about itself, read without translating it."""

    usage: Usage | None = None
    stop_reason: StopReason | None = None
    tool_calls: int = 0
    ended: bool = False  # streams: the dialect's end-of-stream event was seen
    error: str | None = None  # streams: the message of an error event inside the stream


class StreamDecoder(Protocol):
    """Upstream bytes (split anywhere) in, canonical events out, in the canonical grammar."""

    def feed(self, chunk: bytes) -> list[Event]: ...

    def close(self) -> list[Event]:
        """The upstream closed. Returns the remaining events; if the stream was cut short (no
        terminal event seen) the last one is a `StreamError` saying so."""
        ...


class StreamEncoder(Protocol):
    """Canonical events in, the client's wire bytes out (b"" when an event has no wire form)."""

    def encode(self, event: Event) -> bytes: ...

    def encode_error(self, error: GatewayError) -> bytes:
        """The dialect's mid-stream error form, for a failure after the stream began."""
        ...


class StreamTap(Protocol):
    """Watches a same-dialect stream pass through. `feed` runs on every chunk and must stay cheap
    (byte scans, a bounded tail kept; no JSON decoded per chunk); once the stream is over, `ended`
    says (cheaply) whether it reached its end, which decides how the reply ends, and `finish`,
    read after that, what it kept (its `ended` the same)."""

    def feed(self, chunk: bytes) -> None: ...

    def ended(self) -> bool: ...

    def finish(self) -> Tally: ...


class Codec(Protocol):
    name: str
    framing: str  # "sse" | "ndjson"
    path: str  # what its SDKs append to a base_url ("/chat/completions", "/v1/messages"...)
    stream_content_type: str  # the content type of its streams
    # its clients send back signed reasoning as they got it (Anthropic's thinking blocks), so the
    # gateway need not remember it for them
    keeps_signed_reasoning: bool

    def check_body(self, body: dict[str, Any]) -> None:
        """The cheap checks a same-dialect trip relies on (the conversation field is there); raises
        `InvalidRequest`. A translated trip's full decode checks the rest."""
        ...

    def default_max_tokens(self, body: dict[str, Any], tokens: int) -> None:
        """Give a wire body the provider's default output limit where the dialect requires one."""
        ...

    def decode_request(self, body: dict[str, Any]) -> Request:
        """Raises `InvalidRequest` naming the field for a body of the wrong shape."""
        ...

    def encode_request(self, request: Request) -> dict[str, Any]:
        """Raises `Unsupported` naming the feature when the dialect cannot express it."""
        ...

    def decode_response(self, body: dict[str, Any]) -> Response: ...

    def encode_response(self, response: Response, context: EncodeContext | None = None) -> dict[str, Any]: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def stream_encoder(self, *, include_usage: bool = False, context: EncodeContext | None = None) -> StreamEncoder: ...

    def stream_tap(self, usage: bool = True) -> StreamTap:
        """With `usage` false (no sink reads the outcome), a tap that only tells whether the stream
        reached its end: the exchange needs that much to end a cut stream with an error event."""
        ...

    def summarize(self, body: bytes, usage: bool = True) -> Tally:
        """Usage, stop reason and tool calls of a same-dialect reply body (a partial decode). With
        `usage` false (no sink reads them) a dialect may read only what the exchange needs: that
        the body is JSON (raising msgspec.DecodeError), and the error an error envelope names."""
        ...

    def strip_stream_usage(self, lines: bytes) -> bytes:
        """Whole lines of a same-dialect stream without the usage reports `ask_stream_usage` asked
        for (the client did not): what the client would have got had it not been asked."""
        ...

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        """An upstream error response (any envelope it may use) as a gateway error."""
        ...

    def encode_error(self, error: GatewayError) -> dict[str, Any]: ...

    def merge_details(self, fragments: list[Any]) -> list[Any]:
        """Fold streamed reasoning-detail fragments into the list a client replays."""
        ...

    def request_headers(self, stream: bool) -> dict[str, str]:
        """Headers every upstream request in this dialect carries (accept, version...)."""
        ...

    def forward_headers(self) -> tuple[str, ...]:
        """Client request headers a same-dialect trip passes upstream (anthropic-beta...)."""
        ...

    def thinking_of(self, body: dict[str, Any]) -> Any:
        """What a wire body asks of reasoning (a `canonical.Thinking`, or None), without a full decode."""
        ...

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        """Make a streaming wire body ask for usage at the end; True when that changed the body
        (a same-dialect trip then keeps the extra report from a client that did not ask)."""
        ...

    def reply_context(self, body: dict[str, Any]) -> EncodeContext:
        """What of a client's body shapes the reply (include_usage, the request a reply echoes)."""
        ...


# Claude Code's first system block: per-request billing metadata for Anthropic (its `cch=` changes
# on every request), meaningless to any other model and fatal to their prefix caches.
BILLING_HEADER = "x-anthropic-billing-header:"


def is_client_metadata(text: str) -> bool:
    """A system text that is a client's metadata for Anthropic, not an instruction to the model."""
    return text.startswith(BILLING_HEADER)
