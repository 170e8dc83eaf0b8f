"""Model routing, the whole table in one place:

    model                         provider            model on the wire
    ----------------------------  ------------------  -------------------------------------------
    a [routes] key                each of its targets (each by the rules below; tried by strategy)
    an [aliases] key              the alias target    (then the rules below, once)
    <provider-id>/<model>         <provider-id>       <model>, with the provider's own aliases
    <model><suffix>               the provider whose  <model> (`:cloud` selects ollama_cloud; the
                                  spec claims it      suffix only selects the provider)
    a model a provider declares   that provider       <model>  (when its name has a slash)
    anything else                 default_provider    <model>

An unknown prefix, or a provider without a key, is an error naming the problem and the providers
that are configured; a request is never silently sent somewhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from dragoman.config import RouteConfig
from dragoman.errors import InvalidRequest, ProviderNotConfigured, UnknownProvider
from dragoman.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Target:
    """One provider and the model sent to it."""

    provider: Provider
    model: str  # as sent upstream

    @property
    def label(self) -> str:
        return f"{self.provider.id}/{self.model}"


@dataclass(frozen=True, slots=True)
class Route:
    requested: str  # as the client named it
    targets: tuple[Target, ...]  # at least one
    name: str | None = None  # the [routes] or [aliases] entry the name matched
    strategy: str = "fallback"
    weights: tuple[float, ...] | None = None

    @property
    def provider(self) -> Provider:
        return self.targets[0].provider

    @property
    def model(self) -> str:
        return self.targets[0].model


class Router:
    def __init__(
        self,
        providers: dict[str, Provider],
        aliases: dict[str, str],
        default_provider: str,
        routes: dict[str, RouteConfig] | None = None,
    ) -> None:
        self.providers = providers
        self.aliases = aliases
        self.routes = routes or {}
        self.default_provider = default_provider
        self._cache: dict[str, Route] = {}
        # declared model names that contain a slash route to their provider without a prefix
        self._declared = {m: p for p in providers.values() for m in p.models if "/" in m}
        # suffixes providers claim (`<model>:cloud`), longest first
        suffixes = [(p.spec.model_suffix, pid) for pid, p in providers.items() if p.spec.model_suffix]
        self._suffixes = sorted(suffixes, key=lambda s: -len(s[0] or ""))

    def configured(self) -> list[str]:
        return sorted(pid for pid, p in self.providers.items() if p.available)

    def resolve(self, model: str) -> Route:
        route = self._cache.get(model)
        if route is None:
            route = self._resolve(model)
            if len(self._cache) < 4096:
                self._cache[model] = route
        return route

    def _resolve(self, requested: str) -> Route:
        if not requested:
            raise InvalidRequest("`model` must be a non-empty string", param="model")
        route = self.routes.get(requested)
        if route is not None:
            return self._multi(requested, route)
        alias = self.aliases.get(requested)
        target = self._target(requested, alias or requested)
        return Route(requested=requested, targets=(target,), name=requested if alias else None)

    def _multi(self, requested: str, config: RouteConfig) -> Route:
        """A route's targets whose providers can be reached; the others are skipped (their absence is
        reported only when none is left)."""
        targets: list[Target] = []
        weights: list[float] = []
        problem: Exception | None = None
        for i, name in enumerate(config.targets):
            try:
                targets.append(self._target(requested, name))
            except ProviderNotConfigured as exc:
                problem = exc
                continue
            if config.weights:
                weights.append(config.weights[i])
        if not targets:
            assert problem is not None
            raise problem
        return Route(
            requested=requested,
            targets=tuple(targets),
            name=requested,
            strategy=config.strategy,
            weights=tuple(weights) if weights else None,
        )

    def _target(self, requested: str, name: str) -> Target:
        pid, model = self._split(name)
        provider = self.providers.get(pid)
        if provider is None:
            raise UnknownProvider(
                f"model {requested!r}: no provider named {pid!r}. Configured providers: {self._listing()}",
                param="model",
            )
        if not provider.available:
            env = provider.spec.key_env or f"providers.{pid}.api_key"
            raise ProviderNotConfigured(
                f"model {requested!r}: provider {pid!r} has no API key (set {env} or providers.{pid}.api_key)."
                f" Configured providers: {self._listing()}",
                param="model",
            )
        return Target(provider=provider, model=provider.wire_model(model))

    def _split(self, name: str) -> tuple[str, str]:
        prefix, slash, rest = name.partition("/")
        if slash:
            if prefix in self.providers or name not in self._declared:
                return prefix, rest
            return self._declared[name].id, name
        for suffix, pid in self._suffixes:
            if suffix and name.endswith(suffix):
                return pid, name[: -len(suffix)]
        return self.default_provider, name

    def _listing(self) -> str:
        names = self.configured()
        return ", ".join(names) if names else "none (set a provider's key variable or write a config)"
