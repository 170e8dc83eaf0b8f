"""Model routing, the whole table in one place:

    model                         provider            model on the wire
    ----------------------------  ------------------  -------------------------------------------
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

from dragoman.errors import InvalidRequest, ProviderNotConfigured, UnknownProvider
from dragoman.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    model: str  # as sent upstream
    requested: str  # as the client named it


class Router:
    def __init__(self, providers: dict[str, Provider], aliases: dict[str, str], default_provider: str) -> None:
        self.providers = providers
        self.aliases = aliases
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
        name = self.aliases.get(requested, requested)
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
        return Route(provider=provider, model=provider.wire_model(model), requested=requested)

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
