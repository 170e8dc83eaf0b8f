"""The keys a client presents, and which of them may travel upstream.

A client authenticates with `x-api-key` (Anthropic SDKs, Claude Code) or `Authorization: Bearer`
(OpenAI SDKs, Claude Code's ANTHROPIC_AUTH_TOKEN). Two kinds of key can arrive that way:

* a gateway key (`server.api_keys`): it admits the request and is never forwarded;
* the client's own provider key, for a provider with `auth = "client"`: forwarded in that
  provider's own header style, never logged, never stored.

With no gateway keys set, whatever key the client sent is its own. With gateway keys set, a
request carries the gateway key in one of the two headers and its provider key in the other; a
key that is a gateway key is never taken for a provider key.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a request carries: x-api-key first, then a Bearer token (lower-case names, or
    aiohttp's case-insensitive headers)."""
    keys: list[str] = []
    api_key = (headers.get("x-api-key") or "").strip()
    if api_key:
        keys.append(api_key)
    auth = headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
        if token and token not in keys:
            keys.append(token)
    return keys


def matches_any(keys: Sequence[str]) -> Callable[[str], bool]:
    """A constant-time membership test for a list of gateway keys."""
    encoded = [k.encode() for k in keys]

    def check(key: str) -> bool:
        given = key.encode()
        return any(hmac.compare_digest(given, k) for k in encoded)

    return check


def no_gateway_keys(key: str) -> bool:
    return False


def any_of(tests: Sequence[Callable[[str], bool]]) -> Callable[[str], bool]:
    """A key is a gateway key when any of the tests says so."""
    if not tests:
        return no_gateway_keys
    if len(tests) == 1:
        return tests[0]
    return lambda key: any(test(key) for test in tests)


def client_key(headers: Mapping[str, str], is_gateway_key: Callable[[str], bool] = no_gateway_keys) -> str | None:
    """The client's own provider key: the first presented key that is not a gateway key."""
    for key in presented_keys(headers):
        if not is_gateway_key(key):
            return key
    return None
