"""Configuration: a TOML file (the shape below is a public contract) plus the environment.

    [server]                 host, port, default_provider, max_body_bytes, workers, log_level,
                             keepalive_timeout, body_timeout, send_timeout, reasoning_*, api_keys
    [providers.<id>]         a built-in id overrides its fields; any other id is a custom provider
    [aliases]                "exact-name" = "<provider>/<model>"

Lookup order: --config, $DRAGOMAN_CONFIG, ./dragoman.toml, the user config dir. With no file at
all every built-in provider whose key variable is set is enabled. A bad file raises `ConfigError`
naming the file, the key and what is wrong.
"""

from __future__ import annotations

import importlib.util
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_PROVIDER = "ollama"
DEFAULT_MAX_BODY = 32 * 1024 * 1024  # Anthropic's own limit for Messages


class ConfigError(Exception):
    def __init__(self, path: Path | str | None, key: str, problem: str) -> None:
        where = str(path) if path else "configuration"
        super().__init__(f"{where}: {key}: {problem}")
        self.path, self.key, self.problem = path, key, problem


@dataclass
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    default_provider: str = DEFAULT_PROVIDER
    max_body_bytes: int = DEFAULT_MAX_BODY
    workers: int = 1
    log_level: str = "warning"
    reasoning_memory: int = 10_000  # tool-call ids remembered for reasoning replay (in memory)
    reasoning_store: str = "memory"  # or redis://host:port/db, shared by every worker and instance
    reasoning_ttl: int = 86_400  # seconds a remembered entry lives in a shared store
    # Client-side bounds, in seconds: a connection waiting for a complete request head (idle
    # keep-alive, or headers trickled in), a request body that stops arriving, a client that stops
    # reading its reply.
    keepalive_timeout: float = 60.0
    body_timeout: float = 60.0
    send_timeout: float = 60.0
    # Keys clients must present (Authorization: Bearer, or x-api-key). Empty: no client auth,
    # which is why the default host is loopback.
    api_keys: list[str] = field(default_factory=list)


@dataclass
class Config:
    path: Path | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    env_files: list[Path] = field(default_factory=list)

    def env(self, name: str) -> str | None:
        """A variable from the environment first, then from the .env files."""
        value = os.environ.get(name)
        if value:
            return value
        for path in self.env_files:
            found = _read_env_file(path).get(name)
            if found:
                return found
        return None


_SERVER_TYPES: dict[str, type | tuple[type, ...]] = {
    "host": str,
    "port": int,
    "default_provider": str,
    "max_body_bytes": int,
    "workers": int,
    "log_level": str,
    "reasoning_memory": int,
    "reasoning_store": str,
    "reasoning_ttl": int,
    "api_keys": list,
    "keepalive_timeout": (int, float),
    "body_timeout": (int, float),
    "send_timeout": (int, float),
}

# Keys every provider table accepts; a provider's spec adds its own `options` keys.
PROVIDER_KEYS: dict[str, type | tuple[type, ...]] = {
    "base_url": str,
    "api_key": str,
    "api_key_env": str,
    "region": str,
    "dialect": str,
    "models": list,
    "aliases": dict,
    "headers": dict,
    "user_agent": str,
    "max_tokens_default": int,
    "timeout": (int, float),  # seconds between bytes of a reply
    "first_byte_timeout": (int, float),  # seconds from the request to the first byte of the reply's body
    "connect_timeout": (int, float),
    "enabled": bool,
    "title": str,
}


def user_config_path() -> Path:
    try:
        from platformdirs import user_config_dir

        return Path(user_config_dir("dragoman")) / "dragoman.toml"
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        return Path.home() / ".config" / "dragoman" / "dragoman.toml"


def find_config(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("DRAGOMAN_CONFIG")
    if env:
        return Path(env)
    local = Path("dragoman.toml")
    if local.is_file():
        return local
    user = user_config_path()
    return user if user.is_file() else None


def load(explicit: str | None = None) -> Config:
    path = find_config(explicit)
    if path is None:
        return Config(env_files=_env_files(None))
    if not path.is_file():
        raise ConfigError(path, "(file)", "no such file")
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(syntax)", str(exc)) from None
    except OSError as exc:
        raise ConfigError(path, "(file)", exc.strerror or str(exc)) from None
    return parse(data, path)


def parse(data: dict[str, Any], path: Path | None = None) -> Config:
    cfg = Config(path=path, env_files=_env_files(path))
    for key in data:
        if key not in ("server", "providers", "aliases"):
            raise ConfigError(path, key, "unknown section (expected server, providers, aliases)")

    server = _table(data, "server", path)
    for key, value in server.items():
        expected = _SERVER_TYPES.get(key)
        if expected is None:
            raise ConfigError(path, f"server.{key}", f"unknown key (expected one of {', '.join(_SERVER_TYPES)})")
        _check_type(value, expected, path, f"server.{key}")
        setattr(cfg.server, key, value)
    if not 0 <= cfg.server.port <= 65535:
        raise ConfigError(path, "server.port", f"{cfg.server.port} is not a TCP port")
    if cfg.server.max_body_bytes <= 0:
        raise ConfigError(path, "server.max_body_bytes", "must be positive")
    if cfg.server.workers < 1:
        raise ConfigError(path, "server.workers", "must be at least 1")
    if cfg.server.reasoning_store not in ("", "memory") and not cfg.server.reasoning_store.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError(path, "server.reasoning_store", "must be 'memory' or a redis:// URL")
    if cfg.server.reasoning_store not in ("", "memory") and importlib.util.find_spec("redis") is None:
        raise ConfigError(
            path, "server.reasoning_store", "a Redis store needs the redis package: pip install 'dragoman[redis]'"
        )
    for key in ("keepalive_timeout", "body_timeout", "send_timeout"):
        seconds = float(getattr(cfg.server, key))
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ConfigError(path, f"server.{key}", f"must be a positive number of seconds, got {seconds:g}")
        setattr(cfg.server, key, seconds)
    if not all(isinstance(k, str) and k for k in cfg.server.api_keys):
        raise ConfigError(path, "server.api_keys", "must be a list of non-empty strings")

    for pid, table in _table(data, "providers", path).items():
        if not isinstance(table, dict):
            raise ConfigError(path, f"providers.{pid}", "must be a table")
        cfg.providers[pid] = dict(table)

    for name, target in _table(data, "aliases", path).items():
        if not isinstance(target, str) or "/" not in target:
            raise ConfigError(path, f"aliases.{name}", 'must be a string "<provider>/<model>"')
        cfg.aliases[name] = target
    return cfg


def _table(data: dict[str, Any], name: str, path: Path | None) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(path, name, "must be a table")
    return table


def _check_type(value: Any, expected: type | tuple[type, ...], path: Path | None, key: str) -> None:
    # bool is an int in Python; a port of `true` is still wrong
    if isinstance(value, bool) and expected is not bool and not (isinstance(expected, tuple) and bool in expected):
        ok = False
    else:
        ok = isinstance(value, expected)
    if not ok:
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise ConfigError(path, key, f"expected {names}, got {type(value).__name__} {value!r}")


def check_provider_table(table: dict[str, Any], pid: str, options: dict[str, Any], path: Path | None) -> None:
    """Validate one [providers.<id>] table against the generic keys and the provider's options."""
    for key, value in table.items():
        expected: type | tuple[type, ...] | None = PROVIDER_KEYS.get(key)
        if expected is None and key in options:
            default = options[key]
            expected = type(default) if default is not None else (str, int, float, bool, list, dict)
        if expected is None:
            valid = ", ".join([*PROVIDER_KEYS, *options])
            raise ConfigError(path, f"providers.{pid}.{key}", f"unknown key (expected one of {valid})")
        _check_type(value, expected, path, f"providers.{pid}.{key}")
    if "models" in table and not all(isinstance(m, str) for m in table["models"]):
        raise ConfigError(path, f"providers.{pid}.models", "must be a list of strings")
    for sub in ("headers", "aliases"):
        if sub in table and not all(isinstance(v, str) for v in table[sub].values()):
            raise ConfigError(path, f"providers.{pid}.{sub}", "values must be strings")


def _env_files(path: Path | None) -> list[Path]:
    files = [Path(".env")]
    if path is not None:
        files.append(path.parent / ".env")
    files.append(user_config_path().parent / ".env")
    seen: list[Path] = []
    for f in files:
        if f.is_file() and f.resolve() not in [s.resolve() for s in seen]:
            seen.append(f)
    return seen


_env_cache: dict[Path, dict[str, str]] = {}


def _read_env_file(path: Path) -> dict[str, str]:
    cached = _env_cache.get(path)
    if cached is not None:
        return cached
    values: dict[str, str] = {}
    try:
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.removeprefix("export ").partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[key.strip()] = value
    except OSError:
        pass
    _env_cache[path] = values
    return values
