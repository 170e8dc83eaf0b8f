"""HTTP/1.1 wire details of the upstream client: the request head, URL targets, response headers."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from dragoman import __version__
from dragoman.errors import UpstreamError

# the client's own business: never taken from the caller, never handed back
HOP = ("connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection")
_SKIP = frozenset((*HOP, "host", "content-length", "accept-encoding"))
_USER_AGENT = f"dragoman/{__version__}"


class Headers(dict[str, str]):
    """Response headers, keyed by lower-cased name (repeated fields joined with ', ')."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


def keepalive_hint(value: str, default: float) -> float:
    """How long to trust an idle connection given the server's `Keep-Alive: timeout=N`: a second
    less than it says, so that it is never reused just as the server closes it."""
    for item in value.split(","):
        name, _, number = item.strip().partition("=")
        if name.strip().lower() == "timeout":
            try:
                return max(0.0, min(default, float(number) - 1.0))
            except ValueError:
                return default
    return default


def _unsent(message: str) -> UpstreamError:
    """A request that could not be put on the wire at all."""
    error = UpstreamError(message)
    error.may_have_reached = False
    return error


@functools.lru_cache(maxsize=1024)
def target(url: str) -> tuple[tuple[str, str, int], str, str]:
    """The pool key, the Host header and the request target of a URL."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        hostname = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise _unsent("invalid upstream URL") from None
    if scheme not in ("http", "https") or not hostname:
        raise _unsent("invalid upstream URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, hostname, port), parts.netloc.rpartition("@")[2], path


def request_head(method: str, path: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request's head and body, ready to write: the head is the same for every request with
    the same headers (one provider, one key), so all but its Content-Length is made once."""
    head = _head(method, path, host, tuple(headers.items()))
    if body is not None or method in ("POST", "PUT", "PATCH"):
        head += b"Content-Length: %d\r\n\r\n" % (len(body) if body else 0)
    else:
        head += b"\r\n"
    return head + body if body else head


@functools.lru_cache(maxsize=256)
def _head(method: str, path: str, host: str, headers: tuple[tuple[str, str], ...]) -> bytes:
    """The head's lines up to Content-Length, each ended by CRLF (raises for a header that would
    split the head or cannot be put on the wire; a failure is not remembered)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    agent = False
    for name, value in headers:
        low = name.lower()
        if low in _SKIP:
            if low == "host":
                lines[1] = f"Host: {value}"
            continue
        agent = agent or low == "user-agent"
        lines.append(f"{name}: {value}")
    if not agent:
        lines.append(f"User-Agent: {_USER_AGENT}")
    head = "\r\n".join(lines)
    if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:  # a header would split it
        raise _unsent("invalid upstream request header")
    try:
        return (head + "\r\n").encode("utf-8")
    except UnicodeEncodeError:  # a value decoded from undecodable bytes: never put on the wire
        raise _unsent("invalid upstream request header") from None
