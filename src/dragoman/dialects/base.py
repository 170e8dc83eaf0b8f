"""The interface every dialect codec implements.

A codec is stateless; stream decoders and encoders are small state machines made per stream.
Requests and responses travel as plain dicts (already JSON-decoded by the front, JSON-encoded by the
caller) so that a same-dialect trip never pays for a canonical conversion.
"""

from __future__ import annotations

from typing import Any, Protocol

from dragoman.canonical import Event, Request, Response
from dragoman.errors import GatewayError


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


class Codec(Protocol):
    name: str
    framing: str  # "sse" | "ndjson"

    def decode_request(self, body: dict[str, Any]) -> Request:
        """Raises `InvalidRequest` naming the field for a body of the wrong shape."""
        ...

    def encode_request(self, request: Request) -> dict[str, Any]:
        """Raises `Unsupported` naming the feature when the dialect cannot express it."""
        ...

    def decode_response(self, body: dict[str, Any]) -> Response: ...

    def encode_response(self, response: Response) -> dict[str, Any]: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def stream_encoder(self, *, include_usage: bool = False) -> StreamEncoder: ...

    def decode_error(self, status: int, body: bytes) -> GatewayError:
        """An upstream error response (any envelope it may use) as a gateway error."""
        ...

    def encode_error(self, error: GatewayError) -> dict[str, Any]: ...

    def merge_details(self, fragments: list[Any]) -> list[Any]:
        """Fold streamed reasoning-detail fragments into the list a client replays."""
        ...
