"""The gateway as a library object: config, providers, routing, the upstream pool, the reasoning
memory and the sinks that see every finished request. The HTTP server and `dragoman say` both drive
one of these: `from_config`, then `await start()`, then `await close()`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from dragoman import providers as catalog
from dragoman.config import Config, ConfigError
from dragoman.providers.base import Provider
from dragoman.routing import Router
from dragoman.store.reasoning import ReasoningStore, RedisUnavailable, open_store
from dragoman.transport.upstream import Upstream
from dragoman.trip.outcome import Sinks

log = logging.getLogger("dragoman.gateway")


@dataclass
class Gateway:
    config: Config
    providers: dict[str, Provider]
    router: Router
    reasoning: ReasoningStore
    upstream: Upstream = field(default_factory=Upstream)
    sinks: Sinks = field(default_factory=Sinks)

    @classmethod
    def from_config(cls, config: Config, reasoning: ReasoningStore | None = None) -> Gateway:
        providers = catalog.build(config)
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
        router = Router(providers, config.aliases, default)
        server = config.server
        try:
            store = reasoning or open_store(server.reasoning_store, server.reasoning_memory, server.reasoning_ttl)
        except RedisUnavailable as exc:
            raise ConfigError(config.path, "server.reasoning_store", str(exc)) from None
        gw = cls(config=config, providers=providers, router=router, reasoning=store)
        from dragoman.observe import sinks

        gw.sinks = sinks.build(gw)
        return gw

    async def start(self) -> None:
        """Open what needs the event loop (stores, writers); say if the reasoning store is down
        (the gateway serves without it until it answers)."""
        await self.sinks.start()
        problem = await self.reasoning.check()
        if problem is not None:
            log.warning("cannot reach the reasoning store %s: serving without it until it answers", problem)

    @property
    def max_body(self) -> int:
        return self.config.server.max_body_bytes

    async def close(self) -> None:
        """Flush the sinks (every queued record is written), then drop connections."""
        await self.sinks.close()
        await self.upstream.close()
        await self.reasoning.close()
