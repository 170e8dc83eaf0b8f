"""One request's trip: route, shape the upstream body, send, and bring the answer back in the
client's dialect — bytes untouched when the dialects match, through the codecs when they differ.

    client body ──route──▶ provider
        same dialect:  body, model rewritten ─────────────┐
        different:     client codec → canonical → upstream codec
                                                          ▼
                                    provider hooks shape the wire body ─▶ upstream
    reply  same dialect:  bytes as they arrive (a decoder taps them only to remember reasoning)
           different:     upstream stream decoder → canonical events → client stream encoder
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from dragoman import dialects
from dragoman.accumulate import Accumulator
from dragoman.canonical import Reasoning, Response, StreamError, Thinking, ToolCall
from dragoman.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamConnectionLost,
    UpstreamError,
    UpstreamTimeout,
    for_anthropic_type,
    redact,
)
from dragoman.gateway import Gateway
from dragoman.providers.base import REASONING_REPLAY, SIGNATURE_AUTHORITY, PrepareContext, Provider
from dragoman.providers.replay import tool_call_ids
from dragoman.routing import Route
from dragoman.server.body import forwarded_header, read_json
from dragoman.store.reasoning import Snapshot

log = logging.getLogger("dragoman.pipeline")

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()

ANTHROPIC_VERSION = "2023-06-01"
# Upstream reply headers worth handing to the client.
PASS_HEADERS = ("retry-after", "retry-after-ms", "x-request-id", "request-id", "x-should-retry")
PASS_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-")
# How each dialect's stream says it ended; a pass-through stream without one was cut short.
TERMINAL = {
    "openai": (b"[DONE]", b'"finish_reason":"', b'"finish_reason": "', b'"error"'),
    "anthropic": (b"message_stop", b"event: error"),
    "ollama": (b'"done":true', b'"done": true', b'"error"'),
}
NOTHING_RECALLED = Snapshot()
STREAM_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


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
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("`messages` is required and must be an array", param="messages")
    return model, stream


def thinking_of(dialect: str, body: dict[str, Any]) -> Thinking | None:
    """What a wire body asks of reasoning, read without a full decode (for pass-through)."""
    t = body.get("thinking")
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "disabled":
            return Thinking(enabled=False)
        if kind in ("enabled", "adaptive"):
            budget = t.get("budget_tokens")
            oc = body.get("output_config")
            effort = oc.get("effort") if isinstance(oc, dict) else None
            return Thinking(
                enabled=True,
                budget_tokens=budget if isinstance(budget, int) else None,
                adaptive=kind == "adaptive",
                effort=effort if isinstance(effort, str) else None,
            )
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return Thinking(enabled=effort != "none", effort=effort)
    think = body.get("think")
    if isinstance(think, bool):
        return Thinking(enabled=think)
    if isinstance(think, str):
        return Thinking(enabled=True, effort=think)
    return None


@dataclass
class Trip:
    """Everything decided about one request before it goes upstream."""

    route: Route
    client: str
    upstream: str
    stream: bool
    include_usage: bool
    wire: dict[str, Any]
    remember: bool

    @property
    def provider(self) -> Provider:
        return self.route.provider

    @property
    def translated(self) -> bool:
        return self.client != self.upstream


async def plan(gw: Gateway, client: str, body: dict[str, Any]) -> Trip:
    model, stream = check_common(body)
    route = gw.router.resolve(model)
    provider = route.provider
    upstream = provider.hooks.dialect_for(provider, route.model)
    include_usage = False
    if client == "openai":
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    if upstream == client:
        wire = body
        wire["model"] = route.model
        thinking = thinking_of(client, body)
    else:
        request = dialects.get(client).decode_request(body)
        request.model = route.model
        if upstream == "anthropic" and request.max_tokens is None and provider.max_tokens_default:
            request.max_tokens = provider.max_tokens_default
        wire = dialects.get(upstream).encode_request(request)
        thinking = request.thinking
        if upstream == "openai" and stream:
            # the client's dialect reports usage at the end; ask for it
            wire["stream_options"] = {"include_usage": True}
    if upstream == "anthropic" and "max_tokens" not in wire and provider.max_tokens_default:
        wire["max_tokens"] = provider.max_tokens_default
    caps = provider.spec.capabilities
    recalled = NOTHING_RECALLED
    if REASONING_REPLAY in caps:
        ids = tool_call_ids(wire)
        if ids:
            recalled = Snapshot(await gw.reasoning.recall_many(ids))  # one round trip to the store
    ctx = PrepareContext(client_dialect=client, upstream_dialect=upstream, thinking=thinking, reasoning=recalled)
    provider.hooks.prepare(provider, wire, ctx)
    # OpenAI clients drop reasoning, so it is remembered for them; for Anthropic clients only
    # signatures minted outside the signature authority are remembered, so that Claude is never
    # sent another provider's signature later in the conversation
    remember = REASONING_REPLAY in caps and (client == "openai" or SIGNATURE_AUTHORITY not in caps)
    return Trip(route, client, upstream, stream, include_usage, wire, remember)


def upstream_headers(trip: Trip, request: web.Request | None) -> dict[str, str]:
    provider = trip.provider
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if trip.stream else "application/json",
    }
    if trip.upstream == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if request is not None and trip.client == "anthropic":
            beta = forwarded_header(request, "anthropic-beta")
            if beta:
                headers["anthropic-beta"] = beta
    headers.update(provider.headers)
    headers.update(provider.auth_headers())
    return headers


def named(exc: GatewayError, provider: Provider) -> GatewayError:
    """The transport's errors name no provider: say which one failed."""
    exc.message = f"{provider.id}: {exc.message}"
    return exc


def reply_headers(upstream: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in upstream.items():
        low = name.lower()
        if low in PASS_HEADERS or low.startswith(PASS_PREFIXES):
            out[low] = value
    return out


def upstream_error(trip: Trip, status: int, headers: Any, body: bytes) -> GatewayError:
    codec = dialects.get(trip.upstream)
    error = codec.decode_error(status, body)
    error = trip.provider.hooks.map_error(trip.provider, status, error)
    secrets = tuple(s for s in (trip.provider.api_key,) if s)
    error.message = redact(error.message, secrets)
    kept = reply_headers(headers)
    if kept:
        error.headers = {**kept, **error.headers}
    return error


async def complete(gw: Gateway, client: str, request: web.Request) -> web.StreamResponse:
    """The handler body shared by both fronts for a completion request."""
    body = await read_json(request, gw.max_body, gw.config.server.body_timeout)
    trip = await plan(gw, client, body)
    provider = trip.provider
    url = provider.hooks.url_for(provider, trip.upstream, trip.route.model)
    payload = _encode.encode(trip.wire)
    headers = upstream_headers(trip, request)
    started = time.perf_counter()
    try:
        up = await gw.upstream.send(
            "POST",
            url,
            headers,
            payload,
            connect_timeout=provider.connect_timeout,
            first_byte_timeout=provider.first_byte_timeout,
            read_timeout=provider.timeout,
        )
    except GatewayError as exc:
        raise named(exc, provider) from None
    try:
        if up.status >= 400:
            raise upstream_error(trip, up.status, up.headers, await up.read())
        if trip.stream:
            return await _stream(gw, trip, request, up)
        return await _unary(gw, trip, up)
    except (UpstreamConnectionLost, UpstreamTimeout) as exc:
        if isinstance(exc, UpstreamTimeout) and exc.phase is None:
            raise  # an upstream's own 408/504 reply, in its own words
        raise named(exc, provider) from None
    finally:
        up.close()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %s in %.1f ms",
                client,
                trip.route.requested,
                provider.id,
                (time.perf_counter() - started) * 1000,
            )


async def _unary(gw: Gateway, trip: Trip, up: Any) -> web.Response:
    raw = await up.read()
    headers = reply_headers(up.headers)
    if not trip.translated and not trip.remember:
        return web.Response(body=raw, status=up.status, content_type="application/json", headers=headers)
    try:
        body = _decode.decode(raw)
    except msgspec.DecodeError:
        raise UpstreamError(f"{trip.provider.id} returned a reply that is not JSON") from None
    if not isinstance(body, dict):
        raise UpstreamError(f"{trip.provider.id} returned a reply that is not a JSON object")
    if "error" in body and ("choices" not in body and "content" not in body and "message" not in body):
        # an error envelope on a 2xx (some OpenAI-compatible servers do this)
        raise upstream_error(trip, 502, up.headers, raw)
    response = dialects.get(trip.upstream).decode_response(body)
    if trip.remember:
        await remember(gw, trip.provider.id, response)
    if not trip.translated:
        return web.Response(body=raw, status=up.status, content_type="application/json", headers=headers)
    out = dialects.get(trip.client).encode_response(response)
    return web.Response(body=_encode.encode(out), content_type="application/json", headers=headers)


async def remember(gw: Gateway, origin: str, response: Response) -> None:
    """Key each reasoning run by the tool calls that follow it."""
    pending: list[Reasoning] = []
    for part in response.content:
        if isinstance(part, Reasoning):
            if part.origin is None:
                part.origin = origin
            pending.append(part)
        elif isinstance(part, ToolCall) and pending:
            ids = [p.id for p in response.content if isinstance(p, ToolCall)]
            await gw.reasoning.remember(ids, pending)
            return


def stream_error(event: StreamError) -> GatewayError:
    return for_anthropic_type(event.error_type)(event.message, status=event.status)


async def _stream(gw: Gateway, trip: Trip, request: web.Request, up: Any) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={**STREAM_HEADERS, **reply_headers(up.headers)})
    try:
        await response.prepare(request)
        try:
            if trip.translated or trip.provider.hooks.rewrite_stream(trip.provider):
                await _translate_stream(gw, trip, up, response)
            else:
                await _pass_stream(gw, trip, up, response)
        except ConnectionResetError:
            raise
        except Exception as exc:
            # the upstream failed after the stream began: tell the client in its own dialect
            if not isinstance(exc, GatewayError):
                log.exception("unexpected error while streaming")
                exc = UpstreamError("internal gateway error while streaming", status=500)
            exc.message = redact(exc.message, tuple(s for s in (trip.provider.api_key,) if s))
            encoder = dialects.get(trip.client).stream_encoder(include_usage=trip.include_usage)
            await response.write(encoder.encode_error(exc))
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client left mid-stream; `complete` closes the upstream connection
    return response


async def _pass_stream(gw: Gateway, trip: Trip, up: Any, response: web.StreamResponse) -> None:
    decoder = dialects.get(trip.upstream).stream_decoder() if trip.remember else None
    acc = Accumulator() if decoder is not None else None
    markers = TERMINAL[trip.upstream]
    ended = False
    tail = b""
    async for chunk in up.chunks():
        await response.write(chunk)
        if not ended:
            window = tail + chunk
            ended = any(marker in window for marker in markers)
            tail = window[-32:]
        if decoder is not None and acc is not None:
            for event in decoder.feed(chunk):
                acc.feed(event)
    if decoder is not None and acc is not None:
        for event in decoder.close():
            acc.feed(event)
        await remember(gw, trip.provider.id, acc.finish())
    if not ended:
        raise UpstreamError(f"{trip.provider.id} ended the stream before it was complete")


async def _translate_stream(gw: Gateway, trip: Trip, up: Any, response: web.StreamResponse) -> None:
    decoder = dialects.get(trip.upstream).stream_decoder()
    encoder = dialects.get(trip.client).stream_encoder(include_usage=trip.include_usage)
    acc = Accumulator() if trip.remember else None

    def translate(events: list[Any]) -> bytes:
        out = []
        for event in events:
            if isinstance(event, StreamError):
                raise stream_error(event)
            if acc is not None:
                acc.feed(event)
            out.append(encoder.encode(event))
        return b"".join(out)

    async for chunk in up.chunks():
        data = translate(decoder.feed(chunk))
        if data:
            await response.write(data)
    data = translate(decoder.close())
    if data:
        await response.write(data)
    if acc is not None:
        await remember(gw, trip.provider.id, acc.finish())
