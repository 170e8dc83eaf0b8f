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

MAX_MODEL_NAME = 256  # characters; the longest real model ids, prefix included, are under 100
# The cache of resolved names, bounded in entries and in bytes (a rough count: the names plus a
# fixed cost per entry); when full it is emptied and refills with the names in use.
CACHE_ENTRIES = 4096
CACHE_BYTES = 2 * 1024 * 1024
_ENTRY_COST = 240


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
        self._cache_bytes = 0
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
            if len(model) > MAX_MODEL_NAME:
                raise InvalidRequest(
                    f"`model` is {len(model)} characters long; at most {MAX_MODEL_NAME} are accepted", param="model"
                )
            route = self._resolve(model)
            cost = len(model) + len(route.model) + _ENTRY_COST
            if len(self._cache) >= CACHE_ENTRIES or self._cache_bytes + cost > CACHE_BYTES:
                self._cache.clear()
                self._cache_bytes = 0
            self._cache[model] = route
            self._cache_bytes += cost
        return route

    @property
    def cached(self) -> tuple[int, int]:
        """Entries in the resolution cache, and their approximate size in bytes."""
        return len(self._cache), self._cache_bytes

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
