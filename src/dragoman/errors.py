"""Every error the gateway can return, each knowing its HTTP status and its name in both envelopes.

    GatewayError
    ├── InvalidRequest          400  invalid_request_error / invalid_request_error
    │   ├── Unsupported         400  a feature the target dialect cannot express
    │   ├── ProviderNotConfigured 400 a known provider without a key
    │   └── MethodNotAllowed    405  an endpoint asked with the wrong method (with an Allow header)
    ├── RequestTooLarge         413  request_too_large / invalid_request_error
    ├── AuthenticationFailed    401  authentication_error / authentication_error
    ├── BillingError            402  billing_error / insufficient_quota
    ├── PermissionDenied        403  permission_error / permission_error
    ├── NotFound                404  not_found_error / not_found_error
    │   └── UnknownProvider     404  a model prefix no provider answers to
    ├── RateLimited             429  rate_limit_error / rate_limit_exceeded  (keeps retry-after)
    ├── RequestTimeout          408  the client's request body stalled
    ├── UpstreamError           502  api_error / server_error   (upstream 5xx, bad reply)
    │   ├── UpstreamUnreachable 502  no connection: the request was certainly not sent
    │   ├── UpstreamConnectionLost 502 the connection dropped before the reply was complete
    │   └── Overloaded          529→503 overloaded_error / server_error
    └── UpstreamTimeout         504  timeout_error / timeout   (phase: connect, first_byte, read)

Every upstream failure says whether the request may have reached the upstream
(`may_have_reached`), so that a retry policy never sends a second request the upstream may have
accepted unless it chose to.

Handlers raise; the front renders (`to_openai`, `to_anthropic`). Messages never carry keys: the
upstream's text goes through `redact()` first.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

TimeoutPhase = Literal["connect", "first_byte", "read"]


class GatewayError(Exception):
    status: int = 500
    anthropic_type: str = "api_error"
    openai_type: str = "server_error"
    openai_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.openai_code
        self.headers = headers or {}
        if status is not None:
            self.status = status

    def to_openai(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.openai_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_anthropic(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r})"


class InvalidRequest(GatewayError):
    status = 400
    anthropic_type = "invalid_request_error"
    openai_type = "invalid_request_error"


class Unsupported(InvalidRequest):
    openai_code = "unsupported_feature"


class ProviderNotConfigured(InvalidRequest):
    openai_code = "provider_not_configured"


class MethodNotAllowed(InvalidRequest):
    status = 405
    openai_code = "method_not_allowed"


class RequestTooLarge(GatewayError):
    status = 413
    anthropic_type = "request_too_large"
    openai_type = "invalid_request_error"
    openai_code = "request_too_large"


class AuthenticationFailed(GatewayError):
    status = 401
    anthropic_type = "authentication_error"
    openai_type = "authentication_error"
    openai_code = "invalid_api_key"


class BillingError(GatewayError):
    status = 402
    anthropic_type = "billing_error"
    openai_type = "insufficient_quota"
    openai_code = "insufficient_quota"


class PermissionDenied(GatewayError):
    status = 403
    anthropic_type = "permission_error"
    openai_type = "permission_error"


class NotFound(GatewayError):
    status = 404
    anthropic_type = "not_found_error"
    openai_type = "not_found_error"
    openai_code = "not_found"


class UnknownProvider(NotFound):
    openai_code = "model_not_found"


class RateLimited(GatewayError):
    status = 429
    anthropic_type = "rate_limit_error"
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"


class RequestTimeout(InvalidRequest):
    status = 408
    openai_code = "request_timeout"


class UpstreamError(GatewayError):
    status = 502
    anthropic_type = "api_error"
    openai_type = "server_error"
    openai_code = "upstream_error"
    # whether the upstream may have received the request: re-sending it could run it twice
    may_have_reached = True


class UpstreamUnreachable(UpstreamError):
    """No connection could be made (refused, unresolvable, TLS refused): nothing was sent."""

    may_have_reached = False


class UpstreamConnectionLost(UpstreamError):
    """The connection dropped before the reply was complete.

    `before_reply`: not one byte of the reply had arrived. `reused`: the request went out on a
    pooled keep-alive connection, which the upstream most likely closed as it was idle (then it
    probably never saw the request, but it may have)."""

    def __init__(self, message: str, *, before_reply: bool, reused: bool, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.before_reply = before_reply
        self.reused = reused


class Overloaded(UpstreamError):
    status = 503
    anthropic_type = "overloaded_error"
    openai_code = "server_is_overloaded"


class UpstreamTimeout(GatewayError):
    """`phase`: connect (nothing was sent), first_byte (sent, no reply yet), read (the reply
    stalled); None for an upstream's own 408/504 reply."""

    status = 504
    anthropic_type = "timeout_error"
    openai_type = "timeout"
    openai_code = "timeout"

    def __init__(self, message: str, *, phase: TimeoutPhase | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.phase = phase

    @property
    def may_have_reached(self) -> bool:
        return self.phase != "connect"


_BY_ANTHROPIC_TYPE: dict[str, type[GatewayError]] = {
    "invalid_request_error": InvalidRequest,
    "authentication_error": AuthenticationFailed,
    "billing_error": BillingError,
    "permission_error": PermissionDenied,
    "not_found_error": NotFound,
    "request_too_large": RequestTooLarge,
    "rate_limit_error": RateLimited,
    "api_error": UpstreamError,
    "overloaded_error": Overloaded,
    "timeout_error": UpstreamTimeout,
}


def for_upstream_status(status: int) -> type[GatewayError]:
    """The error class a client sees for an upstream HTTP status (5xx becomes 502: the gateway
    worked, the upstream did not)."""
    if status == 401:
        return AuthenticationFailed
    if status == 402:
        return BillingError
    if status == 403:
        return PermissionDenied
    if status == 404:
        return NotFound
    if status == 413:
        return RequestTooLarge
    if status == 429:
        return RateLimited
    if status in (408, 504):
        return UpstreamTimeout
    if status == 529 or status == 503:
        return Overloaded
    if status >= 500:
        return UpstreamError
    return InvalidRequest


def for_anthropic_type(name: str) -> type[GatewayError]:
    return _BY_ANTHROPIC_TYPE.get(name, UpstreamError)


# How providers say a request is longer than the model takes (OpenAI and the compatible servers,
# Anthropic, Moonshot, DeepSeek, Ollama): a request to fall back to a model with a larger window.
_OVERFLOW = re.compile(
    r"(?i)context[_ ]length|context (window|limit)|maximum context|prompt is too long|"
    r"exceeded model token limit|too many (input )?tokens|input is too long"
)


def is_context_overflow(error: GatewayError) -> bool:
    if error.status not in (400, 413, 422):
        return False
    return error.code == "context_length_exceeded" or bool(_OVERFLOW.search(error.message))


# Long tokens shaped like API keys: sk-..., sk-ant-..., sk-kimi-..., Bearer xxx, key=xxx.
_SECRET = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}|\b(sk|pk|rk)-[A-Za-z0-9_\-]{6,}|(api[_-]?key[\"'=:\s]+)[A-Za-z0-9._\-]{8,}"
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove anything that looks like a key, and every known secret, from a message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")

    def _sub(m: re.Match[str]) -> str:
        prefix = m.group(1) or m.group(3) or ""
        return prefix + "[redacted]"

    return _SECRET.sub(_sub, text)


_json = msgspec.json.Encoder()


def encode(body: dict[str, Any]) -> bytes:
    return _json.encode(body)
