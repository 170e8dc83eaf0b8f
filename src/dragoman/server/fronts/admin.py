"""Admin endpoints: `GET /metrics`, and gateway keys over HTTP (`GET /v1/keys`, `POST /v1/keys`,
`DELETE /v1/keys/{name}`). Behind `check_admin` (`server.admin_key`; `/metrics` open with
`server.metrics_public`). Errors in the OpenAI envelope, or Anthropic's with `anthropic-version`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from aiohttp import web

from dragoman.errors import GatewayError, InvalidRequest, NotFound, Overloaded, encode
from dragoman.observe import metrics as observe_metrics
from dragoman.server.fronts import check_admin, error_response, gateway
from dragoman.store.db import StoreError
from dragoman.store.keys import admin as keys_admin
from dragoman.store.keys import describe_key, key_rows
from dragoman.store.keys.records import Period, parse_expiry

log = logging.getLogger("dragoman.server.fronts")


def _dialect(request: web.Request) -> str:
    return "anthropic" if "anthropic-version" in request.headers else "openai"


async def metrics(request: web.Request) -> web.Response:
    gw = gateway(request)
    try:
        sink = observe_metrics.find(gw)
        if sink is None:
            raise NotFound("metrics are off (server.metrics = false)")
        if not gw.config.server.metrics_public:
            await check_admin(request)
    except GatewayError as exc:
        return error_response(exc, _dialect(request))
    # in multiprocess mode the scrape reads every worker's files: off the event loop
    body = await asyncio.to_thread(sink.render) if sink.multiprocess else sink.render()
    return web.Response(body=body, headers={"content-type": observe_metrics.CONTENT_TYPE})


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    budget_usd: float | None = None
    period: Period = "month"
    rpm: int | None = None
    tpm: int | None = None
    models: list[str] | None = None
    expires: str | float | None = None  # a date, a date-time, a span (30d) or epoch seconds


async def _keys(request: web.Request, work: Any) -> web.Response:
    gw = gateway(request)
    try:
        await check_admin(request)
        if gw.keys is None:
            raise NotFound('gateway keys are off (server.virtual_keys = false, or server.usage_store = "off")')
        try:
            result = await work(gw)
        except StoreError as exc:
            log.warning("%s %s: %s", request.method, request.path, exc)
            raise Overloaded("the usage store is unavailable; try again shortly") from None
        except keys_admin.KeyProblem as exc:
            raise InvalidRequest(str(exc)) from None
    except GatewayError as exc:
        return error_response(exc, _dialect(request))
    status, body = result
    return web.Response(body=encode(body), status=status, content_type="application/json")


async def list_keys(request: web.Request) -> web.Response:
    async def work(gw: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"object": "list", "data": await key_rows(gw)}

    return await _keys(request, work)


async def create_key(request: web.Request) -> web.Response:
    async def work(gw: Any) -> tuple[int, dict[str, Any]]:
        try:
            spec = msgspec.json.decode(await request.read(), type=NewKey)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise InvalidRequest(
                f"a key is {{name, budget_usd?, period?, rpm?, tpm?, models?, expires?}}: {exc}"
            ) from None
        try:
            if isinstance(spec.expires, str):
                expires: float | None = parse_expiry(spec.expires)
            else:
                expires = spec.expires
        except ValueError as exc:
            raise InvalidRequest(f"expires: {exc}", param="expires") from None
        key, token = await keys_admin.create_key(
            await gw.usage_database(),
            spec.name,
            budget_usd=spec.budget_usd,
            period=spec.period,
            rpm=spec.rpm,
            tpm=spec.tpm,
            models=spec.models,
            expires=expires,
        )
        await gw.keys.reload()
        row = describe_key(key, None, None, key.created)
        return 201, {**row, "key": token}  # shown this once

    return await _keys(request, work)


async def revoke_key(request: web.Request) -> web.Response:
    async def work(gw: Any) -> tuple[int, dict[str, Any]]:
        try:
            key = await keys_admin.revoke_key(await gw.usage_database(), request.match_info["name"])
        except keys_admin.KeyProblem as exc:
            if "no key named" in str(exc):
                raise NotFound(str(exc)) from None
            raise InvalidRequest(str(exc)) from None
        await gw.keys.reload()
        return 200, describe_key(key, None, None, key.revoked or key.created)

    return await _keys(request, work)
