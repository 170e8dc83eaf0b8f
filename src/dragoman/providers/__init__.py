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
from dragoman.providers.base import Hooks, Provider, ProviderSpec, split_betas
from dragoman.providers.identity import IDENTITIES

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


def specs_for(config: Config, specs: dict[str, ProviderSpec] | None = None) -> dict[str, ProviderSpec]:
    """Every provider id the config knows, enabled or not: the catalog's rows plus one row per
    custom provider table."""
    specs = dict(specs or catalog())
    path = config.path
    for pid, table in config.providers.items():
        if pid in specs:
            continue
        # a custom provider: a row made from its table
        dialect = table.get("dialect")
        if dialect not in DIALECTS:
            problem = "required for a custom provider" if dialect is None else f"unknown dialect {dialect!r}"
            raise ConfigError(path, f"providers.{pid}.dialect", f"{problem}: one of {', '.join(DIALECTS)}")
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
    return specs


def build(config: Config, specs: dict[str, ProviderSpec] | None = None) -> dict[str, Provider]:
    """Every enabled provider, built-in and custom, with config applied (available or not)."""
    specs = specs_for(config, specs)
    path = config.path
    providers: dict[str, Provider] = {}
    for pid, spec in specs.items():
        table = config.providers.get(pid, {})
        check_provider_table(table, pid, dict(spec.options), path, spec.option_choices)
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
    if table.get("cooldown", 0) < 0 or not math.isfinite(table.get("cooldown", 0)):
        raise ConfigError(path, f"providers.{spec.id}.cooldown", "must be 0 or more seconds")
    if table.get("cooldown_after", 1) < 1:
        raise ConfigError(path, f"providers.{spec.id}.cooldown_after", "must be at least 1")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(path, f"providers.{spec.id}.base_url", f"must be an http(s) URL, got {base_url!r}")
    if "dialect" in table and spec.dialect_option:
        choices = spec.option_choices.get(spec.dialect_option)
        which = f" ({' or '.join(choices)})" if choices else ""
        raise ConfigError(
            path,
            f"providers.{spec.id}.dialect",
            f"{spec.id} picks its wire format with `{spec.dialect_option}`{which}, not `dialect`",
        )
    dialect = table.get("dialect", spec.dialect)
    if dialect not in DIALECTS:
        raise ConfigError(
            path, f"providers.{spec.id}.dialect", f"unknown dialect {dialect!r}: one of {', '.join(DIALECTS)}"
        )

    key_env = table.get("api_key_env", spec.key_env)
    keys = table.get("api_keys")
    if keys is not None and not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(path, f"providers.{spec.id}.api_keys", "must be a list of non-empty strings")
    if keys and table.get("api_key"):
        raise ConfigError(path, f"providers.{spec.id}.api_keys", "give api_key or api_keys, not both")
    api_keys = list(keys or ())
    if not api_keys:
        single = table.get("api_key") or (config.env(key_env) if key_env else None)
        api_keys = [single] if single else []

    auth = table.get("auth", "key")
    if auth not in ("key", "client"):
        raise ConfigError(
            path, f"providers.{spec.id}.auth", '"key" (the configured key) or "client" (the client\'s own)'
        )
    identity = None
    if "identity" in table:
        identity = IDENTITIES.get(table["identity"])
        if identity is None:
            raise ConfigError(path, f"providers.{spec.id}.identity", f"one of {', '.join(IDENTITIES)}")

    headers = {k.lower(): v for k, v in spec.headers.items()}
    headers.update({k.lower(): v for k, v in table.get("headers", {}).items()})
    options = dict(spec.options)
    options.update({k: v for k, v in table.items() if k in spec.options})
    for option, header in spec.option_headers.items():
        if options.get(option):
            headers[header.lower()] = str(options[option])
    betas = split_betas(headers.pop("anthropic-beta", None))  # merged with the client's per request
    if identity is not None:
        headers.update(identity.headers)
        betas = [*identity.betas, *(b for b in betas if b not in identity.betas)]
    # an explicit user_agent wins over the identity's, which wins over the provider's default
    user_agent = table.get("user_agent") or (identity.user_agent if identity else options.get("user_agent"))
    if user_agent:
        headers["user-agent"] = user_agent

    models = list(table.get("models", spec.models))
    aliases = dict(spec.aliases)
    aliases.update(table.get("aliases", {}))
    if aliases != dict(spec.aliases):
        spec = _with(spec, aliases=aliases)
    provider = Provider(
        spec=spec,
        base_url=base_url,
        api_key=api_keys[0] if api_keys else None,
        api_keys=api_keys,
        headers=headers,
        options=options,
        models=models,
        max_tokens_default=table.get("max_tokens_default", spec.max_tokens_default),
        dialect=dialect,
        timeout=_seconds(table, "timeout", 600.0, spec.id, path),
        connect_timeout=_seconds(table, "connect_timeout", 10.0, spec.id, path),
        first_byte_timeout=_seconds(table, "first_byte_timeout", 120.0, spec.id, path),
        cooldown=float(table.get("cooldown", 30.0)),
        cooldown_after=int(table.get("cooldown_after", 3)),
        client_auth=auth == "client",
        betas=tuple(betas),
    )
    if identity is not None and _spoken(provider) != "anthropic":
        raise ConfigError(
            path, f"providers.{spec.id}.identity", "applies to providers spoken in the Anthropic dialect only"
        )
    return provider


def _spoken(provider: Provider) -> str:
    """The wire format the provider's default model is spoken in."""
    try:
        return provider.hooks.dialect_for(provider, provider.spec.default_model or "")
    except Exception:  # a hook refusing the model (OpenCode's Responses family) says nothing here
        return provider.dialect


def _seconds(table: dict[str, Any], key: str, default: float, pid: str, path: Path | None) -> float:
    value = float(table.get(key, default))
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(path, f"providers.{pid}.{key}", f"must be a positive number of seconds, got {value:g}")
    return value


def _with(spec: ProviderSpec, **changes: Any) -> ProviderSpec:
    from dataclasses import replace

    return replace(spec, **changes)
