"""plan: a client's body in, a `Trip` out; and, per attempt, the upstream request for one target.

Nothing here edits what the client sent. `plan` only reads the body. `shape` builds each attempt's
wire body from the original: the first attempt takes the body decoded on arrival, every later one
decodes the raw bytes again, so a fallback to another provider or dialect starts from exactly what
the client sent, not from a body already shaped for someone else.

    same dialect:  body, model rewritten ──────────────┐
    different:     client codec → canonical → upstream codec
                                                       ▼
                             provider hooks shape the wire body ─▶ Shaped (url, headers, bytes)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from dragoman import dialects
from dragoman.dialects.base import Codec, EncodeContext
from dragoman.dialects.responses.sealed import open_sealed, unseal_passthrough
from dragoman.errors import InvalidRequest, redact
from dragoman.providers.base import REASONING_REPLAY, SIGNATURE_AUTHORITY, PrepareContext, merge_betas
from dragoman.providers.replay import tool_call_ids
from dragoman.routing import Route, Target
from dragoman.store.reasoning import Snapshot
from dragoman.trip.outcome import Outcome

if TYPE_CHECKING:
    from dragoman.gateway import Gateway

log = logging.getLogger("dragoman.trip")

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()
NOTHING_RECALLED = Snapshot()
# bodies above this are translated and encoded off the event loop, so other streams keep flowing
OFF_LOOP_BYTES = 1024 * 1024


class Caller(msgspec.Struct):
    """Who sent the request, as far as the trip needs to know."""

    headers: Mapping[str, str]  # the client's request headers (case-insensitive lookups)
    key_name: str | None = None  # the gateway key's name, never the key
    client_key: str | None = None  # the key the client presented, for providers with auth = "client"


class Trip(msgspec.Struct, eq=False):
    """Everything decided about one request before any attempt."""

    front: str  # the client's dialect
    raw: bytes
    model: str  # as the client named it
    stream: bool
    route: Route
    context: EncodeContext  # what of the client's body shapes the reply
    caller: Caller
    outcome: Outcome
    started: float = msgspec.field(default_factory=time.perf_counter)
    rule: str | None = None  # the [router] rule that chose the target
    aborted: str | None = None  # why the gateway itself ended the trip (shutting down)
    task: asyncio.Task[Any] | None = None
    _body: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        """A body this attempt may shape as it likes: the one decoded on arrival the first time,
        a fresh decode of the original bytes after that."""
        body, self._body = self._body, None
        if body is None:
            body = _decode.decode(self.raw)
        return body

    def abort(self, reason: str) -> None:
        """End the trip from outside (the gateway is shutting down): its task is cancelled, and the
        exchange turns that into a proper error for the client."""
        self.aborted = reason
        if self.task is not None and not self.task.done():
            self.task.cancel()


def check_common(body: dict[str, Any]) -> tuple[str, bool]:
    """The two fields the gateway itself relies on: `model` and `stream`."""
    model = body.get("model")
    if model is None:
        raise InvalidRequest("`model` is required", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("`model` must be a non-empty string", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be a boolean", param="stream")
    return model, stream


def plan(gw: Gateway, front: str, raw: bytes, body: dict[str, Any], caller: Caller, outcome: Outcome) -> Trip:
    model, stream = check_common(body)
    outcome.model = model
    outcome.stream = stream
    codec = dialects.get(front)
    codec.check_body(body)
    chosen, rule = gw.router.choose_for(model, front, body)
    route = gw.router.resolve(chosen)
    outcome.route = route.name
    outcome.rule = rule
    return Trip(
        front=front,
        raw=raw,
        model=model,
        stream=stream,
        route=route,
        context=codec.reply_context(body),
        caller=caller,
        outcome=outcome,
        rule=rule,
        _body=body,
    )


class Shaped(msgspec.Struct):
    """One target's upstream request, ready to send with any of the provider's keys."""

    target: Target
    dialect: str  # the upstream's
    codec: Codec  # the upstream dialect's
    url: str
    headers: dict[str, str]  # without auth: the policy picks the key
    payload: bytes
    same_dialect: bool
    rewrite: bool  # a same-dialect stream the provider needs re-encoded (to repair it)
    remember: bool  # reasoning in the reply must be remembered for a later turn
    strip_usage: bool  # usage was asked for upstream on the gateway's behalf, not the client's

    @property
    def passthrough(self) -> bool:
        """The reply's bytes go to the client untouched."""
        return self.same_dialect and not self.rewrite


class _Fixed(msgspec.Struct, frozen=True):
    """What a target's requests share for one client dialect and stream mode (the provider's
    hooks are functions of its config and the model): worked out once per target, not per request."""

    dialect: str
    same: bool
    url: str
    rewrite: bool
    replay: bool  # the provider wants its reasoning replayed
    remember: bool
    forward: tuple[str, ...]  # client headers a same-dialect request passes on
    base: dict[str, str]  # content-type and the dialect's headers
    full: dict[str, str]  # `base`, the provider's headers and betas: when the client forwards nothing


def _fixed(target: Target, front: str, stream: bool) -> _Fixed:
    provider = target.provider
    dialect = provider.hooks.dialect_for(provider, target.model)
    up = dialects.get(dialect)
    same = dialect == front
    caps = provider.spec.capabilities
    base = {"content-type": "application/json", **up.request_headers(stream)}
    full = dict(base)
    own_beta = full.pop("anthropic-beta", None)
    full.update(provider.headers)
    beta = merge_betas(own_beta, provider.betas)
    if beta:
        full["anthropic-beta"] = beta
    return _Fixed(
        dialect=dialect,
        same=same,
        url=provider.hooks.url_for(provider, dialect, target.model),
        rewrite=same and stream and provider.hooks.rewrite_stream(provider),
        replay=REASONING_REPLAY in caps,
        # clients that keep signed reasoning (Anthropic's) need nothing remembered from the signature
        # authority itself; everything else is remembered so a later turn can be completed, and so
        # that Claude is never sent another provider's signature
        remember=REASONING_REPLAY in caps
        and (not dialects.get(front).keeps_signed_reasoning or SIGNATURE_AUTHORITY not in caps),
        forward=up.forward_headers() if same else (),
        base=base,
        full=full,
    )


async def shape(gw: Gateway, trip: Trip, target: Target) -> Shaped:
    provider = target.provider
    fixed = target.shapes.get((trip.front, trip.stream))
    if fixed is None:
        fixed = target.shapes[(trip.front, trip.stream)] = _fixed(target, trip.front, trip.stream)
    dialect, same = fixed.dialect, fixed.same
    up = dialects.get(dialect)
    body = trip.body()
    sealer = trip.context.sealer  # set when the client carries reasoning back sealed (Responses)
    if same:
        wire = body
        wire["model"] = target.model
        if sealer is not None:
            unseal_passthrough(wire, sealer)
        thinking = up.thinking_of(wire)
        if provider.max_tokens_default:
            up.default_max_tokens(wire, provider.max_tokens_default)
    else:
        client = dialects.get(trip.front)
        if len(trip.raw) > OFF_LOOP_BYTES:
            request = await asyncio.to_thread(client.decode_request, body)
        else:
            request = client.decode_request(body)
        if sealer is not None:
            open_sealed(request, sealer)
        request.model = target.model
        if request.max_tokens is None and provider.max_tokens_default:
            request.max_tokens = provider.max_tokens_default
        wire = up.encode_request(request)
        thinking = request.thinking
    injected = up.ask_stream_usage(wire) if trip.stream else False
    recalled = NOTHING_RECALLED
    if fixed.replay:
        ids = tool_call_ids(wire)
        if ids:
            recalled = Snapshot(await gw.reasoning.recall_many(ids))  # one round trip to the store
    ctx = PrepareContext(client_dialect=trip.front, upstream_dialect=dialect, thinking=thinking, reasoning=recalled)
    provider.hooks.prepare(provider, wire, ctx)
    if provider.client_auth:
        provider.auth_headers(trip.caller.client_key)  # a 401 now, before any attempt, when it has none
    forwarded: list[tuple[str, str]] = []
    for name in fixed.forward:
        value = trip.caller.headers.get(name)
        if value:
            # a byte that is not printable ASCII would be forwarded as something else, or
            # refused upstream as if the gateway were at fault
            if not (value.isascii() and value.isprintable()):
                raise InvalidRequest(f"header {name} must be printable ASCII", param=name)
            forwarded.append((name, value))
    if forwarded:
        headers = dict(fixed.base)
        headers.update(forwarded)
        client_beta = headers.pop("anthropic-beta", None)
        headers.update(provider.headers)
        beta = merge_betas(client_beta, provider.betas)
        if beta:
            headers["anthropic-beta"] = beta
    else:
        headers = dict(fixed.full)
    if len(trip.raw) > OFF_LOOP_BYTES:
        payload = await asyncio.to_thread(_encode.encode, wire)
    else:
        payload = _encode.encode(wire)
    return Shaped(
        target=target,
        dialect=dialect,
        codec=up,
        url=fixed.url,
        headers=headers,
        payload=payload,
        same_dialect=same,
        rewrite=fixed.rewrite,
        remember=fixed.remember,
        strip_usage=injected and not trip.context.include_usage,
    )


def safe(text: str, limit: int = 200) -> str:
    """A client-chosen string fit for one log line: control characters escaped, length bounded."""
    cleaned = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return redact(cleaned[:limit])
