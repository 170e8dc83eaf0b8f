"""Model discovery: every model name a client can ask for, as `/v1/models` and `dragoman models`
list them.

    listed as               from
    <provider>/<model>      the models each available provider declares (its row, or `models`)
    <provider>/<name>       what an Ollama-dialect provider serves: GET {base_url}/api/tags,
                            cached for a while; one that does not answer is left out
    <provider>/<alias>      the provider's own aliases
    <alias>                 [aliases]
    <route>                 [routes] (when the config has them)

A listing never fails because a provider is down: discovery is best effort, the declared names
are always there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from dragoman.errors import GatewayError, UpstreamError

if TYPE_CHECKING:
    from dragoman.gateway import Gateway
    from dragoman.providers.base import Provider

log = logging.getLogger("dragoman.discovery")

TTL = 30.0  # seconds a provider's own list is trusted
FAILED_TTL = 10.0  # seconds a provider that did not answer is left alone
CONNECT_TIMEOUT = 1.0  # a local server answers at once or not at all
READ_TIMEOUT = 5.0
# the dialects whose servers list their models, and where
LISTING_PATHS = {"ollama": "/api/tags"}


@dataclass(frozen=True, slots=True)
class Listed:
    id: str  # as a client names it
    owner: str  # the provider id, or "dragoman" for a route


class ModelDiscovery:
    """The per-gateway cache of what each listing provider said, and the merged listing."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._inflight: dict[str, asyncio.Task[tuple[str, ...]]] = {}

    async def listed(self, gw: Gateway) -> list[Listed]:
        available = {pid: p for pid, p in gw.providers.items() if p.available}
        listing = [p for p in available.values() if p.dialect in LISTING_PATHS]
        served = await asyncio.gather(*(self.served(gw, p) for p in listing))
        discovered = {p.id: names for p, names in zip(listing, served, strict=True)}
        out: dict[str, Listed] = {}

        def add(mid: str, owner: str) -> None:
            out.setdefault(mid, Listed(mid, owner))

        for pid, provider in available.items():
            for model in (*provider.models, *discovered.get(pid, ())):
                add(f"{pid}/{model}", pid)
            for alias in provider.spec.aliases:
                add(f"{pid}/{alias}", pid)
        for alias, target in gw.config.aliases.items():
            pid = target.partition("/")[0]
            if pid in available:
                add(alias, pid)
        routes: Any = getattr(gw.config, "routes", None) or {}
        for name in routes:
            add(str(name), "dragoman")
        return list(out.values())

    async def served(self, gw: Gateway, provider: Provider) -> tuple[str, ...]:
        """The models the provider's server says it has (cached; empty when it does not answer)."""
        now = time.monotonic()
        cached = self._cache.get(provider.id)
        if cached is not None and cached[0] > now:
            return cached[1]
        task = self._inflight.get(provider.id)
        if task is None:
            task = self._inflight[provider.id] = asyncio.ensure_future(self._fetch(gw, provider))
            task.add_done_callback(lambda _t: self._inflight.pop(provider.id, None))
        return await asyncio.shield(task)

    async def _fetch(self, gw: Gateway, provider: Provider) -> tuple[str, ...]:
        url = provider.base_url + LISTING_PATHS[provider.dialect]
        try:
            body = await get_json(gw, provider, url)
            names = tuple(_ollama_names(body))
            expires = time.monotonic() + TTL
        except GatewayError as exc:
            log.info("model listing of %s failed: %s", provider.id, exc.message)
            names, expires = (), time.monotonic() + FAILED_TTL
        self._cache[provider.id] = (expires, names)
        return names


async def get_json(gw: Gateway, provider: Provider, url: str) -> Any:
    """GET a JSON document through the gateway's upstream client, with short timeouts."""
    headers = {**provider.headers, **provider.auth_headers(), "accept": "application/json"}
    resp = await gw.upstream.send(
        "GET",
        url,
        headers,
        None,
        connect_timeout=CONNECT_TIMEOUT,
        first_byte_timeout=READ_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )
    try:
        raw = await resp.read()
    finally:
        resp.close()
    if resp.status != 200:
        raise UpstreamError(f"{url} answered {resp.status}")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise UpstreamError(f"{url} answered with something that is not JSON") from None


def _ollama_names(body: Any) -> list[str]:
    models = body.get("models") if isinstance(body, dict) else None
    names: list[str] = []
    for entry in models if isinstance(models, list) else []:
        name = entry.get("name") or entry.get("model") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names
