"""Model routing, the whole table in one place. `resolve` turns a name into a provider and the
model sent on the wire, trying these rows in order:

    model                              provider              model on the wire
    ---------------------------------  --------------------  ---------------------------------------
    a [routes] key                     each of its targets   (each by the rows below; the policy tries
                                                             them by the route's strategy)
    an [aliases] key                   the alias target      (then the rows below, once)
    <provider-id>/<model>              <provider-id>         <model>, with the provider's own aliases
    <known-but-disabled-id>/<model>    error: names the provider and how to enable it
    a name exactly one configured      that provider         the name, unchanged (a Claude model
      provider declares                                      name when only `anthropic` declares it)
    <model><suffix>                    the provider whose    <model> (`:cloud` selects ollama_cloud;
                                       spec claims it        the suffix only selects the provider)
    anything else                      default_provider      the name, unchanged: an unknown prefix
                                                             falls through (`hf.co/…`, `library/…`)

A known provider (built-in or configured) that is disabled, or has no key, is an error naming it
and how to configure it, never a silent fall-through (the same for a suffix whose provider is
off). A name that several configured providers declare goes to default_provider.

`choose` runs the `[router]` rules first, once per request, on the name the client sent (see
`Rules`); what it returns is then resolved as above.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

from dragoman.config import EFFORTS, RouteConfig, RouterConfig
from dragoman.errors import InvalidRequest, ProviderNotConfigured
from dragoman.providers.base import Provider, ProviderSpec
from dragoman.signals import Signals, needs_tokens, signals_of

MAX_MODEL_NAME = 256  # characters; the longest real model ids, prefix included, are under 100
# The cache of resolved names, bounded in entries and in bytes (a rough count: the names plus a
# fixed cost per entry); when full it is emptied and refills with the names in use.
CACHE_ENTRIES = 4096
CACHE_BYTES = 2 * 1024 * 1024
_ENTRY_COST = 240


@dataclass(frozen=True, slots=True)
class Target:
    """One provider and the model sent to it."""

    provider: Provider
    model: str  # as sent upstream
    # named on every attempt (health, outcome, logs): built once
    label: str = field(init=False, compare=False, repr=False)
    board_name: str = field(init=False, compare=False, repr=False)  # its name on the cooldown board
    # what `plan.shape` derives from the target alone, per (client dialect, stream): built on first use
    shapes: dict[tuple[str, bool], Any] = field(init=False, compare=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        label = f"{self.provider.id}/{self.model}"
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "board_name", f"target:{label}")


@dataclass(frozen=True, slots=True)
class Route:
    requested: str  # as the client named it (or as a router rule renamed it)
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
        routes: Mapping[str, RouteConfig] | None = None,
        *,
        known: Mapping[str, ProviderSpec] | None = None,
        rules: RouterConfig | None = None,
    ) -> None:
        self.providers = providers
        self.aliases = aliases
        self.routes: Mapping[str, RouteConfig] = routes or {}
        self.default_provider = default_provider
        # every provider id the config knows, enabled or not: a prefix naming one never falls through
        self.known: Mapping[str, ProviderSpec] = (
            known if known is not None else {p.id: p.spec for p in providers.values()}
        )
        self._cache: dict[str, Route] = {}
        self._cache_bytes = 0
        declared: dict[str, set[str]] = {}
        for pid, p in providers.items():
            if p.available:
                for name in (*p.models, *p.spec.aliases):
                    declared.setdefault(name, set()).add(pid)
        # names exactly one configured provider declares (several: ambiguous, default_provider)
        self._declared = {name: next(iter(pids)) for name, pids in declared.items() if len(pids) == 1}
        # suffixes providers claim (`<model>:cloud`), enabled or not, longest first
        suffixes = [(spec.model_suffix, pid) for pid, spec in self.known.items() if spec.model_suffix]
        self._suffixes = sorted(suffixes, key=lambda s: -len(s[0] or ""))
        self.rules = Rules(rules or RouterConfig(), self, self.routes)

    def configured(self) -> list[str]:
        return sorted(pid for pid, p in self.providers.items() if p.available)

    def resolve(self, model: str) -> Route:
        route = self._cache.get(model)
        if route is None:
            if len(model) > MAX_MODEL_NAME:
                raise InvalidRequest(
                    f"`model` is {len(model)} characters long; at most {MAX_MODEL_NAME} are accepted", param="model"
                )
            if not model.isprintable():
                raise InvalidRequest("`model` must not contain control characters", param="model")
            route = self._resolve(model)
            cost = len(model) + sum(len(t.model) for t in route.targets) + _ENTRY_COST
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

    def explicit(self, model: str) -> bool:
        """Whether the name as sent picks a provider itself (a provider-id prefix or a provider's
        suffix): such names are never re-routed by the rules. Alias and route names are not."""
        prefix, slash, _ = model.partition("/")
        if slash and prefix in self.known:
            return True
        return any(suffix and model.endswith(suffix) for suffix, _ in self._suffixes)

    def choose(self, model: str, signals: Signals) -> tuple[str, str | None]:
        """The name to route for a request and the rule that chose it (None: the client's name)."""
        if not self.rules.active or self.explicit(model):
            return model, None
        return self.rules.choose(model, signals)

    def choose_for(self, model: str, dialect: str, body: dict[str, Any]) -> tuple[str, str | None]:
        """`choose` with the signals read from the client's body, skipped when no rule could fire."""
        if not self.rules.active or self.explicit(model):
            return model, None
        return self.rules.choose(model, signals_of(dialect, body, count_tokens=self.rules.wants_tokens))

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
        problem: ProviderNotConfigured | None = None
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
            raise ProviderNotConfigured(
                f"model {requested!r}: provider {pid!r} is disabled (providers.{pid}.enabled = false); remove that "
                f"line to use it. Configured providers: {self._listing()}",
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
        if slash and prefix in self.known:
            return prefix, rest
        declared = self._declared.get(name)
        if declared is not None:
            return declared, name
        for suffix, pid in self._suffixes:
            if suffix and name.endswith(suffix):
                return pid, name[: -len(suffix)]
        return self.default_provider, name

    def _listing(self) -> str:
        names = self.configured()
        return ", ".join(names) if names else "none (set a provider's key variable or write a config)"


class Rules:
    """The `[router]` rules, tried in this order; the first whose signal holds and that names a
    target wins:

        long_context   estimated input tokens above long_context_threshold (default 60,000)
        image          an image anywhere in the input
        background     the requested name matches background_models (Claude Code's small fast
                       model, `claude-*haiku*`, which it uses for titles and summaries)
        web_search     a web-search server tool (`web_search_…`) or OpenAI's web_search_options
        think          reasoning asked at think_effort or above (an explicit budget counts by its
                       effort band; adaptive thinking alone, which Claude Code sends on every turn,
                       does not)
        default        none of the above

    They apply to names that do not pick a provider themselves: explicit `<provider>/<model>` and
    `<model>:cloud` names are never re-routed. `default` also leaves alone a name that is an
    [aliases] or [routes] key: the operator already said where that one goes.
    """

    def __init__(self, config: RouterConfig, router: Router, routes: Collection[str]) -> None:
        self.targets = dict(config.targets)
        self.threshold = config.long_context_threshold
        self.think_rank = EFFORTS.index(config.think_effort)
        self.background = re.compile("|".join(translate(p) for p in config.background_models) or "(?!)")
        self.named = frozenset(router.aliases) | frozenset(routes)
        self.active = bool(self.targets)
        self.wants_tokens = needs_tokens(self.targets)

    def choose(self, model: str, signals: Signals) -> tuple[str, str | None]:
        t = self.targets
        if not t:
            return model, None
        if "long_context" in t and signals.tokens is not None and signals.tokens > self.threshold:
            return t["long_context"], "long_context"
        if "image" in t and signals.image:
            return t["image"], "image"
        if "background" in t and self.background.match(model):
            return t["background"], "background"
        if "web_search" in t and signals.web_search:
            return t["web_search"], "web_search"
        if "think" in t and signals.effort is not None and EFFORTS.index(signals.effort) >= self.think_rank:
            return t["think"], "think"
        if "default" in t and model not in self.named:
            return t["default"], "default"
        return model, None
