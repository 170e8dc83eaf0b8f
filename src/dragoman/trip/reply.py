"""The client side of a trip, as the trip sees it: a channel that takes either one whole reply or a
stream of bytes. The HTTP server implements it; the trip never touches a framework object."""

from __future__ import annotations

from typing import Protocol


class ClientGone(Exception):
    """The client closed its connection; nothing more can be sent."""


class Reply(Protocol):
    @property
    def started(self) -> bool:
        """Whether any byte of the reply has been sent (after that, an error is a stream event)."""
        ...

    async def send(self, status: int, headers: dict[str, str], body: bytes, content_type: str) -> None:
        """One whole reply."""
        ...

    async def start(self, status: int, headers: dict[str, str], content_type: str) -> None:
        """The head of a streamed reply, sent with the first `write` (or `end`) so that head and first
        bytes leave in one packet; raises ClientGone."""
        ...

    async def write(self, data: bytes) -> None:
        """Part of a streamed reply; raises ClientGone."""
        ...

    async def end(self, data: bytes = b"") -> None:
        """The last bytes and the end of a streamed reply, in one write; raises ClientGone."""
        ...
