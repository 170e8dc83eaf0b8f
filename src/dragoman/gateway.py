"""The gateway as a library object: config, providers, routing, the upstream pool and the
reasoning memory. The HTTP server and `dragoman say` both drive one of these."""

from __future__ import annotations

from dataclasses import dataclass, field

from dragoman import providers as catalog
from dragoman.config import Config, ConfigError
from dragoman.providers.base import Provider
from dragoman.routing import Router
from dragoman.store.reasoning import ReasoningStore, open_store
from dragoman.transport.upstream import Upstream


@dataclass
class Gateway:
    config: Config
    providers: dict[str, Provider]
    router: Router
    reasoning: ReasoningStore
    upstream: Upstream = field(default_factory=Upstream)

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
        store = reasoning or open_store(server.reasoning_store, server.reasoning_memory, server.reasoning_ttl)
        return cls(config=config, providers=providers, router=router, reasoning=store)

    @property
    def max_body(self) -> int:
        return self.config.server.max_body_bytes

    async def close(self) -> None:
        await self.upstream.close()
        await self.reasoning.close()
