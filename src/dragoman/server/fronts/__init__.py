"""HTTP handlers, one module per client dialect (plus `meta` for dialect-free endpoints).

Every completion request goes through `complete`: read the body, plan, run the policy, and, however it
ends (an answer, an error, a refusal before routing, the client gone), hand one `Outcome` to the
sinks. Errors leave in the client's own envelope, with the request id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from dragoman import dialects
from dragoman.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    UpstreamError,
    encode,
    redact,
)
from dragoman.gateway import Gateway
from dragoman.server.auth import Identity, authenticate, keys_configured, known_identity, require_admin
from dragoman.server.body import DECODE_INLINE_MAX, body_at_hand, decode_json, parse_json, read_body
from dragoman.server.clients import family
from dragoman.trip import policy
from dragoman.trip.exchange import SHUTTING_DOWN
from dragoman.trip.outcome import Outcome, instance_name, new_request_id
from dragoman.trip.plan import Caller, Trip, plan, safe
from dragoman.trip.reply import ClientGone

log = logging.getLogger("dragoman.fronts")

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
REQUEST_ID = "x-dragoman-request-id"
BODY_LIMIT = 64 * 1024  # bytes of each body the ledger keeps with `server.log_bodies`
BODY_WINDOW = BODY_LIMIT + 1024  # what is read to redact before cutting


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


async def check_client_key(request: web.Request) -> Identity | None:
    """When the gateway asks for keys (`server.api_keys`, `server.admin_key`, or any key made with
    `dragoman keys`), a request must carry one in either SDK's header (the other header may then carry
    the client's own provider key, see `dragoman.credentials`). See `server.auth`."""
    return await authenticate(request, request.app[GATEWAY])


async def check_admin(request: web.Request) -> Identity | None:
    """The admin endpoints' check (`/v1/usage`, `/v1/keys`, `/metrics`, `/ui`)."""
    return await require_admin(request, request.app[GATEWAY])


def error_response(error: GatewayError, dialect: str, request_id: str | None = None) -> web.Response:
    """An error in the client's own envelope."""
    body = dialects.get(dialect).encode_error(error) if dialect in dialects.DIALECTS else error.to_openai()
    headers = dict(error.headers)
    if request_id:
        headers[REQUEST_ID] = request_id
    return web.Response(body=encode(body), status=error.status, content_type="application/json", headers=headers)


class _Stream(web.StreamResponse):
    # the head waits for the first write and leaves in the same packet (aiohttp's own `Response`
    # does this for whole bodies); the exchange writes as soon as it has the first bytes, and writes
    # an empty chunk to send the head alone when the first bytes are not ready
    _send_headers_immediately = False


class HttpReply:
    """The trip's `Reply` on an aiohttp request; with `keep`, the first bytes of the body sent are
    kept for the ledger (`server.log_bodies`)."""

    __slots__ = ("_stream", "kept", "request", "request_id", "response", "sent", "tee")

    def __init__(self, request: web.Request, request_id: str, keep: bool = False) -> None:
        self.request = request
        self.request_id = request_id
        self.response: web.StreamResponse | None = None
        self._stream: web.StreamResponse | None = None
        self.kept: list[bytes] | None = [] if keep else None
        self.sent = 0  # bytes of body sent, counted only with `keep`
        self.tee: Callable[[bytes], None] | None = None  # sees every byte of the body (a front's hook)

    def keep(self, data: bytes) -> None:
        if self.kept is not None:
            if self.sent <= BODY_WINDOW:
                self.kept.append(data)
            self.sent += len(data)

    @property
    def started(self) -> bool:
        return self.response is not None

    async def send(self, status: int, headers: dict[str, str], body: bytes, content_type: str) -> None:
        headers[REQUEST_ID] = self.request_id
        self.keep(body)
        if self.tee is not None:
            self.tee(body)
        self.response = web.Response(body=body, status=status, headers=headers, content_type=content_type)

    async def start(self, status: int, headers: dict[str, str], content_type: str) -> None:
        headers[REQUEST_ID] = self.request_id
        headers["content-type"] = content_type
        headers["cache-control"] = "no-cache"
        stream = _Stream(status=status, headers=headers)
        self.response = self._stream = stream
        try:
            await stream.prepare(self.request)
        except (ConnectionResetError, ClientConnectionResetError):
            raise ClientGone from None

    async def write(self, data: bytes) -> None:
        assert self._stream is not None
        if self.kept is not None:
            self.keep(data)
        if self.tee is not None:
            self.tee(data)
        try:
            await self._stream.write(data)
        except (ConnectionResetError, ClientConnectionResetError):
            raise ClientGone from None

    async def end(self, data: bytes = b"") -> None:
        assert self._stream is not None
        if data:
            if self.kept is not None:
                self.keep(data)
            if self.tee is not None:
                self.tee(data)
        try:
            await self._stream.write_eof(data)
        except (ConnectionResetError, ClientConnectionResetError):
            raise ClientGone from None


def new_outcome(request: web.Request, front: str | None) -> Outcome:
    agent = request.headers.get("user-agent")
    return Outcome(
        request_id=new_request_id(),
        time=time.time(),
        method=request.method,
        path=request.path,
        front=front,
        user_agent=agent[:200] if agent else None,
        client=family(agent),
        instance=instance_name(),
    )


class FrontHooks(Protocol):
    """What a front adds to `complete` around the trip (the Responses front's stored responses)."""

    async def arrive(self, gw: Gateway, body: Any, identity: Identity | None) -> dict[str, Any] | None:
        """Before planning: a body to plan instead of the client's (None: the client's as it is)."""
        ...

    def planned(self, gw: Gateway, trip: Trip, reply: HttpReply) -> None:
        """After planning, before any attempt."""
        ...

    def answered(self, gw: Gateway, trip: Trip) -> None:
        """After the reply went out (or was handed to the server, for a body)."""
        ...


async def complete(request: web.Request, front: str, hooks: FrontHooks | None = None) -> web.StreamResponse:
    """A completion request in the `front` dialect, from the first byte read to the outcome recorded."""
    gw = gateway(request)
    outcome = new_outcome(request, front)
    started = time.perf_counter()
    log_bodies = gw.config.server.log_bodies
    reply = HttpReply(request, outcome.request_id, keep=log_bodies)
    trip: Trip | None = None
    raw = b""
    client_key: str | None = None
    try:
        identity: Identity | None = None
        key_name: str | None = None
        if keys_configured(gw):  # (no coroutine at all when no key of any kind is set, or a known one came)
            identity = known_identity(request, gw) or await authenticate(request, gw)
            key_name = outcome.key_name = identity.name if identity is not None else None
        client_key = gw.client_key(request.headers)
        # (the usual small body that has all arrived is read and decoded without a coroutine)
        at_hand = body_at_hand(request, gw.max_body)
        raw = at_hand if at_hand is not None else await read_body(request, gw.max_body, gw.config.server.body_timeout)
        body = decode_json(raw) if len(raw) <= DECODE_INLINE_MAX else await parse_json(raw)
        planned_raw = raw
        if hooks is not None:
            changed = await hooks.arrive(gw, body, identity)
            if changed is not None:
                body, planned_raw = changed, encode(changed)
        caller = Caller(headers=request.headers, key_name=key_name, client_key=client_key)
        trip = plan(gw, front, planned_raw, body, caller, outcome)
        if hooks is not None:
            hooks.planned(gw, trip, reply)
        if identity is not None and identity.key is not None and gw.limits is not None:
            # its models, budget, RPM and TPM: before any upstream call (answered at once unless
            # Redis must be asked)
            asking = gw.limits.admit(identity.key, trip)
            if asking is not None:
                await asking
        trip.started = started
        trip.task = request.task  # (asyncio.current_task() costs a getpid syscall on 3.11)
        gw.inflight.add(trip)
        if gw.draining:
            trip.abort(SHUTTING_DOWN)
            raise Overloaded(SHUTTING_DOWN, status=503)
        try:
            await policy.run(gw, trip, reply)
        except asyncio.CancelledError:
            if trip.aborted is None or reply.started:
                raise
            raise Overloaded(SHUTTING_DOWN, status=503) from None
        if hooks is not None:
            hooks.answered(gw, trip)
    except GatewayError as exc:
        _failed(outcome, exc)
        if trip is not None and trip.aborted is not None:
            outcome.end = "shutdown"  # ended by the drain before its answer began
        if reply.started:
            raise  # cannot happen: the exchange turns a failure after the first byte into an event
        return _refused(reply, error_response(exc, front, outcome.request_id))
    except asyncio.CancelledError:
        if outcome.end == "ok":
            outcome.end = "client_gone"
        outcome.status = outcome.status or 499
        raise
    except RecursionError:  # a body nested within the decoder's reach but beyond a codec's
        error: GatewayError = InvalidRequest("request body nests JSON arrays or objects too deeply")
        _failed(outcome, error)
        if reply.started:
            outcome.end = "broken"
            return reply.response  # type: ignore[return-value]
        return _refused(reply, error_response(error, front, outcome.request_id))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, safe(request.path))
        error = UpstreamError("internal gateway error", status=500)
        _failed(outcome, error)
        if reply.started:
            outcome.end = "broken"
            return reply.response  # type: ignore[return-value]
        return _refused(reply, error_response(error, front, outcome.request_id))
    finally:
        if trip is not None:
            gw.inflight.discard(trip)
        if log_bodies:
            _keep_bodies(gw, outcome, raw, reply, client_key)
        _record(gw, outcome, started, request.task)
    assert reply.response is not None
    return reply.response


def _refused(reply: HttpReply, response: web.Response) -> web.Response:
    if reply.kept is not None and isinstance(response.body, bytes):
        reply.keep(response.body)
    return response


def bounded_text(data: bytes, secrets: tuple[str, ...], size: int | None = None) -> str:
    """At most `BODY_LIMIT` characters of a body (`size` bytes in all) as text, redacted; a cut says
    how much there was. Redacted before the cut (on a window a key's length wider), so no key is cut
    in two and half kept."""
    size = len(data) if size is None else size
    text = redact(data[:BODY_WINDOW].decode("utf-8", "replace"), secrets)
    if size <= BODY_LIMIT and len(text) <= BODY_LIMIT:
        return text
    return text[:BODY_LIMIT] + f"...[cut: {size} bytes in all]"


def _keep_bodies(gw: Gateway, outcome: Outcome, raw: bytes, reply: HttpReply, client_key: str | None) -> None:
    secrets = (*gw.secrets, client_key) if client_key else gw.secrets
    if raw:
        outcome.request_body = bounded_text(raw, secrets)
    if reply.kept:
        outcome.response_body = bounded_text(b"".join(reply.kept), secrets, reply.sent)


def _failed(outcome: Outcome, error: GatewayError) -> None:
    outcome.status = error.status
    outcome.end = "error"
    outcome.error_type = error.anthropic_type
    outcome.error = error.message[:1000]


def _record(gw: Gateway, outcome: Outcome, started: float, task: asyncio.Task[Any]) -> None:
    if not gw.sinks.active and not log.isEnabledFor(logging.DEBUG):
        return  # nobody reads the record
    # to the microsecond (int arithmetic: round(x, 3) takes a float-to-decimal conversion)
    outcome.latency_ms = int((time.perf_counter() - started) * 1_000_000 + 0.5) / 1000
    if outcome.ttfb_ms is not None:
        outcome.ttfb_ms = int(outcome.ttfb_ms * 1000 + 0.5) / 1000
    if outcome.usage is not None and outcome.provider and outcome.upstream_model and gw.prices is not None:
        outcome.cost_usd = gw.prices.cost(outcome.provider, outcome.upstream_model, outcome.usage)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s %s -> %s %s in %.1f ms",
            outcome.front,
            safe(outcome.model or "-"),
            outcome.provider or "-",
            outcome.status,
            outcome.latency_ms,
        )
    if gw.sinks.active:
        # once the reply is out: a body leaves after the handler returns, in the same step, and
        # the sinks' work then overlaps the client's next request instead of delaying this reply
        gw.sinks.soon(outcome, task.get_loop())


async def guarded(request: web.Request, dialect: str, handle: Any) -> web.StreamResponse:
    """Run a non-completion handler behind the client-key check; failures leave in the client's envelope."""
    try:
        await check_client_key(request)
        result: web.StreamResponse = await handle()
        return result
    except GatewayError as exc:
        return error_response(exc, dialect)
    except RecursionError:  # a body nested within the decoder's reach but beyond a later stage's
        return error_response(InvalidRequest("request body nests JSON arrays or objects too deeply"), dialect)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, safe(request.path))
        return error_response(UpstreamError("internal gateway error", status=500), dialect)
