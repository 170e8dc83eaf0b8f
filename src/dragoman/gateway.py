"""The gateway as a library object: config, providers, routing, the upstream pool, the reasoning
memory, the price table and the sinks that see every finished request. The HTTP server and `dragoman say` both drive
one of these: `from_config`, then `await start()`, then `await close()`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dragoman import credentials
from dragoman import providers as catalog
from dragoman.config import Config, ConfigError
from dragoman.discovery import ModelDiscovery
from dragoman.observe import sinks
from dragoman.prices import PriceTable
from dragoman.providers.base import Provider
from dragoman.routing import Router
from dragoman.seal import AesGcmSealer, make_sealer
from dragoman.store import ledger
from dragoman.store.cooldowns import RedisBoard
from dragoman.store.db import Database, StoreError
from dragoman.store.keys import KeyRing, Limits
from dragoman.store.keys.ring import cache_path_for
from dragoman.store.reasoning import ReasoningStore, RedisUnavailable, open_store
from dragoman.store.redis_link import RedisLink
from dragoman.store.responses import ResponseStore
from dragoman.transport.upstream import Upstream
from dragoman.trip.health import Health
from dragoman.trip.outcome import Sinks

log = logging.getLogger("dragoman.gateway")

if TYPE_CHECKING:
    from dragoman.trip.plan import Trip


@dataclass
class Gateway:
    config: Config
    providers: dict[str, Provider]
    router: Router
    reasoning: ReasoningStore
    upstream: Upstream = field(default_factory=Upstream)
    sinks: Sinks = field(default_factory=Sinks)
    health: Health = field(default_factory=Health)  # cooldowns, failures, in-flight per target
    prices: PriceTable = field(default_factory=PriceTable.builtin)  # sets Outcome.cost_usd
    inflight: set[Trip] = field(default_factory=set)  # trips under way, for the drain
    draining: bool = False  # shutting down: new trips are refused
    models: ModelDiscovery = field(default_factory=ModelDiscovery)  # what `/v1/models` lists, cached
    is_gateway_key: Callable[[str], bool] = credentials.no_gateway_keys
    redis: RedisLink | None = None  # server.redis: limits, budgets and cooldowns shared by every instance
    keys: KeyRing | None = None  # gateway keys from the usage store; None when off
    limits: Limits | None = None  # what each of those keys may do

    @classmethod
    def from_config(cls, config: Config, reasoning: ReasoningStore | None = None) -> Gateway:
        specs = catalog.specs_for(config)
        providers = catalog.build(config, specs)
        default = config.server.default_provider
        if default not in providers:
            raise ConfigError(
                config.path,
                "server.default_provider",
                f"{default!r} is not a provider ({', '.join(providers)})",
            )
        for name, target in config.aliases.items():
            pid = target.partition("/")[0]
            if pid not in providers:
                raise ConfigError(config.path, f"aliases.{name}", f"{target!r}: no provider named {pid!r}")
        for name, route in config.routes.items():
            for i, target in enumerate(route.targets):
                pid = target.partition("/")[0]
                if pid not in providers:
                    raise ConfigError(
                        config.path, f"routes.{name}.targets[{i}]", f"{target!r}: no provider named {pid!r}"
                    )
        for rule, target in config.router.targets.items():
            prefix, slash, _ = target.partition("/")
            if slash and target not in config.aliases and prefix in specs and prefix not in providers:
                raise ConfigError(config.path, f"router.{rule}", f"{target!r}: provider {prefix!r} is disabled")
        router = Router(providers, config.aliases, default, config.routes, known=specs, rules=config.router)
        server = config.server
        link = RedisLink(server.redis, server.redis_prefix) if server.redis else None
        try:
            store = reasoning or open_store(
                server.reasoning_url, server.reasoning_memory, server.reasoning_ttl, server.redis_prefix
            )
        except RedisUnavailable as exc:
            raise ConfigError(config.path, "server.reasoning_store", str(exc)) from None
        gw = cls(
            config=config,
            providers=providers,
            router=router,
            reasoning=store,
            prices=PriceTable.from_config(config.prices),
            health=Health(
                RedisBoard(link) if link is not None else None,
                count_load=any(route.strategy == "least-busy" for route in config.routes.values()),
            ),
            redis=link,
        )
        if server.virtual_keys and server.usage_store != "off":
            gw.keys = KeyRing(server.key_cache_ttl, cache_path_for(server.usage_store))
            gw.limits = Limits(gw.keys, link, gw.usage_database)
        static = [*server.api_keys, *([server.admin_key] if server.admin_key else [])]
        tests = [credentials.matches_any(static)] if static else []
        if gw.keys is not None:
            tests.append(gw.keys.knows)
        gw.is_gateway_key = credentials.any_of(tests)
        gw.sinks = sinks.build(gw)
        return gw

    async def start(self) -> None:
        """Open what needs the event loop (stores, writers, the cooldowns' mirror); say if the
        reasoning store is down (the gateway serves without it until it answers)."""
        if isinstance(self.health.board, RedisBoard):
            await self.health.board.start()
        await self.sinks.start()
        problem = await self.reasoning.check()
        if problem is not None:
            log.warning("cannot reach the reasoning store %s: serving without it until it answers", problem)

    async def usage_database(self) -> Database:
        """The usage store the ledger writes to (StoreError while it is down or off)."""
        sink = ledger.find(self)
        if sink is None:
            raise StoreError('the usage ledger is off (server.usage_store = "off")')
        return await sink.database(2.0)

    @cached_property
    def client_auth(self) -> bool:
        """Whether any provider takes the client's own key (`auth = "client"`)."""
        return any(p.client_auth for p in self.providers.values())

    def client_key(self, headers: Mapping[str, str]) -> str | None:
        """The client's own provider key in a request's headers (never a gateway key), for
        providers with `auth = "client"` (None when there is none). Never log or store it."""
        if not self.client_auth:
            return None
        return credentials.client_key(headers, self.is_gateway_key)

    @cached_property
    def sealer(self) -> AesGcmSealer:
        """Seals reasoning for Responses clients; made on first use, so that a gateway that never
        serves one never touches the data directory."""
        return make_sealer(self.config.server.secret)

    @cached_property
    def stored_responses(self) -> ResponseStore:
        """Responses kept with `store: true`, in the usage store's database (made on first use)."""
        return ResponseStore(self.usage_database, self.config.server.usage_retention_days)

    @cached_property
    def secrets(self) -> tuple[str, ...]:
        """Every key the gateway holds (each provider's keys, the gateway keys): redacted from
        whatever it logs or keeps."""
        server = self.config.server
        keys = [s for p in self.providers.values() for s in p.secrets()] + list(server.api_keys)
        keys += [server.admin_key or "", urlsplit(server.redis or "").password or ""]
        return tuple(dict.fromkeys(k for k in keys if k))

    @property
    def max_body(self) -> int:
        return self.config.server.max_body_bytes

    async def close(self) -> None:
        """Flush the sinks (every queued record is written), then drop connections."""
        if "stored_responses" in self.__dict__:
            await self.stored_responses.close()  # before the sinks close the database they write to
        await self.sinks.close()
        if isinstance(self.health.board, RedisBoard):
            await self.health.board.close()
        await self.upstream.close()
        await self.reasoning.close()
        if self.redis is not None:
            await self.redis.close()
