"""The OpenAI Responses front: POST /v1/responses (Codex, the Agents SDK), and the stored responses'
GET /v1/responses/{id}, DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.

A request goes through `complete` like any other front; `ResponsesHooks` adds what is particular to
this one:

* reasoning goes out sealed in `encrypted_content` and comes back opened (the trip reads
  `EncodeContext.sealer`, set here, see `dialects.responses.sealed`), and each trip gets its response
  id up front, so a stream and its failure event share it;
* `previous_response_id` is expanded here, before planning: the stored turn's input and output are
  put before this turn's input, and the upstream never sees the id (a chat or Messages upstream has no
  such thing; a Responses upstream would look it up in its own store and not find it);
* `store` (OpenAI's default is true): the reply's final `response` object is kept, with the turn's
  whole input, in the usage store's database, written after the reply went out (`store.responses`).
  Reasoning in a stored response is sealed even when the client did not ask for it, so a later
  `previous_response_id` turn gets it back.

A WebSocket upgrade on /v1/responses (Codex tries one first when its provider supports it) gets 426
at once, so the client falls back to plain HTTP instead of retrying.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import msgspec
from aiohttp import web

from dragoman.dialects.responses.wire import new_id
from dragoman.errors import GatewayError, InvalidRequest, NotFound, Overloaded, UpstreamError, encode
from dragoman.gateway import Gateway
from dragoman.server.auth import Identity
from dragoman.server.fronts import HttpReply, check_client_key, complete, error_response, gateway
from dragoman.store.db import StoreError
from dragoman.store.responses import Stored
from dragoman.trip.plan import Trip, safe

log = logging.getLogger("dragoman.server.fronts.responses")

NS = "responses"
ENCRYPTED = "reasoning.encrypted_content"
KEEP_LIMIT = 64 * 1024 * 1024  # bytes of a reply kept to store it; a larger one is not stored
TERMINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
_dec = msgspec.json.Decoder()


def as_items(value: Any) -> list[Any]:
    """`input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return list(value) if isinstance(value, list) else []


def visible(stored: Stored, identity: Identity | None) -> bool:
    """A key reads only what it stored; the admin key and a gateway without keys read everything."""
    return identity is None or identity.admin or stored.key_name == identity.name


def store_on(gw: Gateway) -> bool:
    return gw.config.server.usage_store != "off"


async def find(gw: Gateway, rid: str, identity: Identity | None, param: str | None = None) -> Stored:
    try:
        stored = await gw.stored_responses.get(rid)
    except StoreError as exc:
        raise Overloaded(f"the response store is unavailable: {exc}", status=503) from None
    if stored is None or not visible(stored, identity):
        raise NotFound(f"Response with id '{safe(rid)}' not found.", param=param)
    return stored


def final_response(data: bytes, stream: bool) -> dict[str, Any] | None:
    """The `response` object a reply ended with: the body, or a stream's terminal event's."""
    try:
        if not stream:
            body = _dec.decode(data)
            return body if isinstance(body, dict) and body.get("object") == "response" else None
        for line in reversed(data.split(b"\n")):
            if line.startswith(b"data: ") and any(t in line for t in TERMINAL):
                event = _dec.decode(line[6:])
                response = event.get("response") if isinstance(event, dict) else None
                return response if isinstance(response, dict) else None
    except msgspec.DecodeError:
        return None
    return None


class ResponsesHooks:
    """One request's additions to `complete` (see the module's docstring)."""

    __slots__ = ("echo", "input", "kept", "key_name", "size", "store")

    def __init__(self) -> None:
        self.store = False
        self.input: list[Any] = []
        self.echo: dict[str, Any] | None = None  # what the reply echoes, when it differs from the wire body
        self.kept: list[bytes] = []
        self.size = 0  # bytes of the reply seen; past KEEP_LIMIT nothing more is kept
        self.key_name: str | None = None

    async def arrive(self, gw: Gateway, body: Any, identity: Identity | None) -> dict[str, Any] | None:
        if not isinstance(body, dict):
            return None  # plan refuses it
        store, previous = body.get("store"), body.get("previous_response_id")
        if store is not None and not isinstance(store, bool):
            raise InvalidRequest("`store` must be a boolean", param="store")
        if previous is not None and not isinstance(previous, str):
            raise InvalidRequest("`previous_response_id` must be a string", param="previous_response_id")
        if not store_on(gw) and (store is True or previous is not None):
            param = "previous_response_id" if previous is not None else "store"
            raise InvalidRequest(
                f'`{param}` needs the usage store, and this gateway runs with server.usage_store = "off"; '
                "send `store: false` and the whole conversation as `input`",
                param=param,
            )
        self.key_name = identity.name if identity is not None else None
        self.store = store is not False and store_on(gw)
        if previous is None and not self.store:
            return None
        wire = dict(body)
        self.input = as_items(body.get("input"))
        if previous is not None:
            stored = await find(gw, previous, identity, "previous_response_id")
            output = stored.response.get("output")
            self.input = [*stored.input, *(output if isinstance(output, list) else ()), *self.input]
            wire.pop("previous_response_id")
            wire["input"] = self.input
            self.echo = body
        if self.store:
            include = body.get("include")
            include = list(include) if isinstance(include, list) else []
            if ENCRYPTED not in include:  # kept reasoning must come back on a later turn
                wire["include"] = [*include, ENCRYPTED]
                self.echo = {**(self.echo or body), "include": wire["include"]}
        return wire

    def planned(self, gw: Gateway, trip: Trip, reply: HttpReply) -> None:
        context = trip.context
        request = context.request if self.echo is None else self.echo
        trip.context = replace(context, sealer=gw.sealer, response_id=new_id("resp"), request=request)
        if self.store:
            reply.tee = self._keep

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size <= KEEP_LIMIT:
            self.kept.append(data)
        elif self.kept:
            self.kept = []

    def answered(self, gw: Gateway, trip: Trip) -> None:
        if not self.store or self.size > KEEP_LIMIT or trip.outcome.status != 200:
            return
        kept, self.kept, stream = self.kept, [], trip.stream

        def make() -> Stored | None:  # run by the store's task, off the reply path
            response = final_response(b"".join(kept), stream)
            rid = response.get("id") if response is not None else None
            if response is None or not isinstance(rid, str):
                log.info("not storing a response: its reply carried no response object")
                return None
            return Stored(rid, self.key_name, self.input, response)

        gw.stored_responses.save(make)


# -- handlers ------------------------------------------------------------------------------------


async def create(request: web.Request) -> web.StreamResponse:
    return await complete(request, NS, ResponsesHooks())


async def upgrade(request: web.Request) -> web.Response:
    """GET /v1/responses: a WebSocket upgrade is answered 426 (use HTTP); anything else 405."""
    if request.headers.get("upgrade", "").lower() == "websocket":
        error: GatewayError = InvalidRequest(
            "this gateway serves the Responses API over HTTP only: POST /v1/responses", code="upgrade_required"
        )
        error.status = 426
        return error_response(error, NS)
    error = InvalidRequest("use POST /v1/responses", code="method_not_allowed")
    error.status = 405
    error.headers = {"allow": "POST"}
    return error_response(error, NS)


async def _stored(request: web.Request) -> tuple[Gateway, Identity | None, str]:
    gw = gateway(request)
    identity = await check_client_key(request)
    if not store_on(gw):
        raise InvalidRequest('stored responses need the usage store (server.usage_store is "off")')
    return gw, identity, request.match_info["id"]


async def _answer(request: web.Request, handle: Any) -> web.Response:
    try:
        body = await handle()
        return web.Response(body=encode(body), content_type="application/json")
    except GatewayError as exc:
        return error_response(exc, NS)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, safe(request.path))
        return error_response(UpstreamError("internal gateway error", status=500), NS)


async def retrieve(request: web.Request) -> web.Response:
    async def handle() -> dict[str, Any]:
        gw, identity, rid = await _stored(request)
        return (await find(gw, rid, identity)).response

    return await _answer(request, handle)


async def delete(request: web.Request) -> web.Response:
    async def handle() -> dict[str, Any]:
        gw, identity, rid = await _stored(request)
        await find(gw, rid, identity)
        try:
            await gw.stored_responses.delete(rid)
        except StoreError as exc:
            raise Overloaded(f"the response store is unavailable: {exc}", status=503) from None
        return {"id": rid, "object": "response", "deleted": True}

    return await _answer(request, handle)


async def input_items(request: web.Request) -> web.Response:
    """The turn's input items (earlier turns' too, with `previous_response_id`), newest first by
    default, as OpenAI pages them: `limit` (1-100, 20), `order` (asc | desc), `after` (an item id)."""

    async def handle() -> dict[str, Any]:
        gw, identity, rid = await _stored(request)
        stored = await find(gw, rid, identity)
        items = [_with_id(item, rid, i) for i, item in enumerate(stored.input)]
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("`order` must be asc or desc", param="order")
        if order == "desc":
            items.reverse()
        after = request.query.get("after")
        if after is not None:
            ids = [i.get("id") for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            raise InvalidRequest("`limit` must be an integer", param="limit") from None
        if not 1 <= limit <= 100:
            raise InvalidRequest("`limit` must be between 1 and 100", param="limit")
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }

    return await _answer(request, handle)


def _with_id(item: Any, rid: str, index: int) -> Any:
    """An item as OpenAI lists it: with an id (one made from the response's, when it had none)."""
    if not isinstance(item, dict) or isinstance(item.get("id"), str):
        return item
    kind = item.get("type", "message")
    prefix = {"message": "msg", "function_call_output": "fco", "function_call": "fc", "reasoning": "rs"}.get(
        kind if isinstance(kind, str) else "", "item"
    )
    out = {"id": f"{prefix}_{rid.removeprefix('resp_')}{index:04d}", **item}
    out.setdefault("type", "message")
    return out
