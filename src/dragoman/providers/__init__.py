"""The provider catalog: built-in rows (one module per provider) plus third-party ones from the
`dragoman.providers` entry point group, with the user's config applied by `build()`.

An entry point names a `ProviderSpec`, a list of them, or a callable returning either.
"""

from __future__ import annotations

import logging
import math
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from dragoman.config import Config, ConfigError, check_provider_table
from dragoman.dialects import DIALECTS
from dragoman.providers.base import Hooks, Provider, ProviderSpec

log = logging.getLogger("dragoman.providers")

BUILTIN_MODULES = (
    "anthropic",
    "openai",
    "kimi",
    "moonshot",
    "minimax",
    "deepseek",
    "openrouter",
    "opencode",
    "ollama",
    "ollama_cloud",
)


def builtin_specs() -> dict[str, ProviderSpec]:
    specs: dict[str, ProviderSpec] = {}
    for name in BUILTIN_MODULES:
        spec: ProviderSpec = import_module(f"dragoman.providers.{name}").SPEC
        specs[spec.id] = spec
    return specs


def plugin_specs() -> dict[str, ProviderSpec]:
    specs: dict[str, ProviderSpec] = {}
    for ep in entry_points(group="dragoman.providers"):
        try:
            obj: Any = ep.load()
            if callable(obj) and not isinstance(obj, ProviderSpec):
                obj = obj()
            for spec in obj if isinstance(obj, list | tuple) else [obj]:
                if not isinstance(spec, ProviderSpec):
                    raise TypeError(f"{spec!r} is not a ProviderSpec")
                specs[spec.id] = spec
        except Exception as exc:  # a broken plugin must not take the gateway down
            log.error("provider plugin %s failed to load: %s", ep.name, exc)
    return specs


def catalog() -> dict[str, ProviderSpec]:
    specs = builtin_specs()
    specs.update(plugin_specs())
    return specs


def build(config: Config, specs: dict[str, ProviderSpec] | None = None) -> dict[str, Provider]:
    """Every provider, built-in and custom, with config applied (available or not)."""
    specs = dict(specs or catalog())
    path = config.path
    for pid, table in config.providers.items():
        if pid in specs:
            continue
        # a custom provider: a row made from its table
        dialect = table.get("dialect")
        if dialect not in DIALECTS:
            raise ConfigError(
                path,
                f"providers.{pid}.dialect",
                f"required for a custom provider: one of {', '.join(DIALECTS)}",
            )
        if not isinstance(table.get("base_url"), str):
            raise ConfigError(path, f"providers.{pid}.base_url", "required for a custom provider")
        specs[pid] = ProviderSpec(
            id=pid,
            title=str(table.get("title", pid)),
            dialect=dialect,
            base_url=table["base_url"],
            auth="x-api-key" if dialect == "anthropic" else "bearer",
            capabilities=frozenset(),
            hooks=Hooks(),
        )
    providers: dict[str, Provider] = {}
    for pid, spec in specs.items():
        table = config.providers.get(pid, {})
        check_provider_table(table, pid, dict(spec.options), path)
        if table.get("enabled") is False:
            continue
        providers[pid] = _apply(spec, table, config)
    return providers


def _apply(spec: ProviderSpec, table: dict[str, Any], config: Config) -> Provider:
    path = config.path
    region = table.get("region")
    base_url = spec.base_url
    if region is not None:
        if region not in spec.regions:
            valid = ", ".join(spec.regions) or "none"
            raise ConfigError(path, f"providers.{spec.id}.region", f"unknown region {region!r} (regions: {valid})")
        base_url = spec.regions[region]
    base_url = str(table.get("base_url", base_url)).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(path, f"providers.{spec.id}.base_url", f"must be an http(s) URL, got {base_url!r}")
    dialect = table.get("dialect", spec.dialect)
    if dialect not in DIALECTS:
        raise ConfigError(path, f"providers.{spec.id}.dialect", f"one of {', '.join(DIALECTS)}")

    key_env = table.get("api_key_env", spec.key_env)
    api_key = table.get("api_key") or (config.env(key_env) if key_env else None)

    headers = {k.lower(): v for k, v in spec.headers.items()}
    headers.update({k.lower(): v for k, v in table.get("headers", {}).items()})
    options = dict(spec.options)
    options.update({k: v for k, v in table.items() if k in spec.options})
    for option, header in spec.option_headers.items():
        if options.get(option):
            headers[header.lower()] = str(options[option])
    user_agent = table.get("user_agent", options.get("user_agent"))
    if user_agent:
        headers["user-agent"] = user_agent

    models = list(table.get("models", spec.models))
    aliases = dict(spec.aliases)
    aliases.update(table.get("aliases", {}))
    if aliases != dict(spec.aliases):
        spec = _with(spec, aliases=aliases)
    return Provider(
        spec=spec,
        base_url=base_url,
        api_key=api_key,
        headers=headers,
        options=options,
        models=models,
        max_tokens_default=table.get("max_tokens_default", spec.max_tokens_default),
        dialect=dialect,
        timeout=_seconds(table, "timeout", 600.0, spec.id, path),
        connect_timeout=_seconds(table, "connect_timeout", 10.0, spec.id, path),
        first_byte_timeout=_seconds(table, "first_byte_timeout", 120.0, spec.id, path),
    )


def _seconds(table: dict[str, Any], key: str, default: float, pid: str, path: Path | None) -> float:
    value = float(table.get(key, default))
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(path, f"providers.{pid}.{key}", f"must be a positive number of seconds, got {value:g}")
    return value


def _with(spec: ProviderSpec, **changes: Any) -> ProviderSpec:
    from dataclasses import replace

    return replace(spec, **changes)
