"""Who a request is: key -> identity, for every endpoint but /health.

A request presents keys in `x-api-key` and/or `Authorization: Bearer` (`credentials.presented_keys`).
One of them may be

* a gateway key from the store (`sk-dgm-...`, `dragoman keys create`): it has a name and limits;
* one of `server.api_keys` (static, no limits), named `api_keys[i]`;
* `server.admin_key`, named `admin`: admits API requests too, and alone opens the admin endpoints.

A key is required as soon as any of those exists. When the keys could not be read at all (the store
down at start-up and no local copy), requests are refused with a 503 rather than let in unchecked.

Admin endpoints (`/v1/usage`, `/v1/keys`, `/metrics`, `/ui`): the admin key when one is set;
otherwise one of `server.api_keys`; open only while the gateway asks no key at all.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from aiohttp import web

from dragoman.credentials import presented_keys
from dragoman.errors import AuthenticationFailed, Overloaded, PermissionDenied
from dragoman.gateway import Gateway
from dragoman.store.keys.records import GatewayKey, when


@dataclass(frozen=True, slots=True)
class Identity:
    name: str  # what the ledger, the access log and metrics call it; never the key
    key: GatewayKey | None = None  # a gateway key from the store (with its limits)
    admin: bool = False  # the admin key, or a static key while no admin key is set


def _static(gw: Gateway, given: str) -> Identity | None:
    server = gw.config.server
    encoded = given.encode("utf-8", "surrogateescape")  # a header's undecodable bytes compare as themselves
    if server.admin_key and hmac.compare_digest(encoded, server.admin_key.encode()):
        return Identity("admin", admin=True)
    for i, key in enumerate(server.api_keys):
        if hmac.compare_digest(encoded, key.encode()):
            return Identity(f"api_keys[{i}]", admin=not server.admin_key)
    return None


def keys_required(gw: Gateway) -> bool:
    server = gw.config.server
    return bool(server.api_keys or server.admin_key or (gw.keys is not None and (gw.keys.any or not gw.keys.loaded)))


def keys_configured(gw: Gateway) -> bool:
    """Whether any key of any kind may be set (with none, there is nothing to look up)."""
    server = gw.config.server
    return gw.keys is not None or bool(server.api_keys) or bool(server.admin_key)


async def authenticate(request: web.Request, gw: Gateway) -> Identity | None:
    """The request's identity (None when the gateway asks for no key); raises the client's 401, or a
    503 while the keys are unknown."""
    if not keys_configured(gw):
        return None  # no key of any kind is set: nothing to look up
    return await _identify(gw, presented_keys(request.headers))


# the text of the one key header a request came with -> the gateway key it is and its identity;
# checked against the ring's current key on every use (a reload makes new keys, a revocation too)
_known: dict[str, tuple[GatewayKey, Identity]] = {}
KNOWN_MAX = 4096


def known_identity(request: web.Request, gw: Gateway) -> Identity | None:
    """The usual request's identity without a coroutine: one gateway key, seen before and active,
    and no static key to compare it with. None: `authenticate` decides (it may refuse)."""
    ring = gw.keys
    server = gw.config.server
    if ring is None or server.api_keys or server.admin_key:
        return None
    headers = request.headers
    text = headers.get("authorization")
    if text is None:
        text = headers.get("x-api-key")
        if text is None:
            return None
    elif "x-api-key" in headers:
        return None  # two keys (a gateway key and the client's own, say): `authenticate` tells them apart
    known = _known.get(text)
    if known is not None and ring.by_id.get(known[0].key_id) is known[0]:
        key, identity = known
    else:
        presented = presented_keys(headers)
        found = ring.verified(presented[0]) if len(presented) == 1 else None
        if found is None:
            return None
        key, identity = found, Identity(found.name, key=found)
        if len(_known) >= KNOWN_MAX:
            _known.clear()
        _known[text] = (key, identity)
    return identity if key.state(time.time()) == "active" else None


async def _identify(gw: Gateway, presented: list[str]) -> Identity | None:
    ring = gw.keys
    server = gw.config.server
    static = bool(server.api_keys or server.admin_key)
    refused: str | None = None
    for given in presented:
        if static:
            found = _static(gw, given)
            if found is not None:
                return found
        if ring is not None:
            # a key seen before is known without a coroutine; a new one may need the store
            key = ring.verified(given) or await ring.lookup(given)
            if key is None:
                continue
            state = key.state(time.time())
            if state == "active":
                return Identity(key.name, key=key)
            refused = (
                f"the gateway key {key.name!r} was revoked"
                if state == "revoked"
                else f"the gateway key {key.name!r} expired at {when(key.expires)}"
            )
    if refused is not None:
        raise AuthenticationFailed(refused)
    if not keys_required(gw):
        return None
    if ring is not None and not ring.loaded:
        raise Overloaded("the gateway cannot read its keys (the usage store is unavailable); try again shortly")
    if presented:
        raise AuthenticationFailed("unknown gateway key")
    raise AuthenticationFailed(
        "this gateway needs a key: send it as a Bearer token (Authorization header) or in x-api-key"
    )


async def require_admin(request: web.Request, gw: Gateway) -> Identity | None:
    """Admits an admin request, or raises the client's 401/403 (see the module's docstring)."""
    identity = await authenticate(request, gw)
    if identity is not None and identity.admin:
        return identity
    if identity is None and not keys_required(gw):
        return None
    if identity is None:
        raise AuthenticationFailed("this endpoint needs the admin key")
    if gw.config.server.admin_key:
        raise PermissionDenied(f"{identity.name} is not the admin key; this endpoint needs server.admin_key")
    raise PermissionDenied(
        f"{identity.name} may not use the admin endpoints: set server.admin_key (or use one of server.api_keys)"
    )
