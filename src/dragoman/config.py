"""Configuration: a TOML file (the shape below is a public contract) plus the environment.

    [server]                 host, port, default_provider, max_body_bytes, workers, log_level,
                             secret (seals reasoning for Responses clients), reasoning_* ...
    [providers.<id>]         a built-in id overrides its fields; any other id is a custom provider
    [aliases]                "exact-name" = "<provider>/<model>"
    [routes.<name>]          targets = ["<provider>/<model>", ...], strategy, weights
    [prices."<provider>/<model>"]  input, output, cache_read, cache_write (USD per million tokens)
    [router]                 request-signal rules: default, background, think, long_context,
                             web_search, image (each a model name), long_context_threshold,
                             think_effort, background_models
    [clients.claude-code]    what `dragoman code` sets for Claude Code (models, command, env)
    [clients.codex]          what `dragoman codex` writes for Codex

Lookup order: --config, $DRAGOMAN_CONFIG, ./dragoman.toml, the user config dir. With no file at
all every built-in provider whose key variable is set is enabled. A bad file raises `ConfigError`
naming the file, the key and what is wrong.

Fixed-shape tables are typed msgspec Structs, checked in one pass by `typed()`: a key is added by
adding a field (name, type, default; `Annotated[..., Meta(...)]` for a bound), and a rule no type
can say goes in the Struct's `check()`. A new section is a Struct, a field on `Config` and a line
in `parse()`. Provider tables stay open dicts: their keys depend on the provider's own options and
are checked by `check_provider_table` when the catalog is built.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_PROVIDER = "ollama"
DEFAULT_MAX_BODY = 32 * 1024 * 1024  # Anthropic's own limit for Messages

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
SECONDS = ("retry_backoff", "retry_backoff_max", "retry_after_max", "shutdown_grace")
Strategy = Literal["fallback", "weighted", "least-busy"]
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class ConfigError(Exception):
    def __init__(self, path: Path | str | None, key: str, problem: str) -> None:
        where = str(path) if path else "configuration"
        super().__init__(f"{where}: {key}: {problem}")
        self.path, self.key, self.problem = path, key, problem


class Invalid(Exception):
    """Raised by a section's `check()`: the key inside the section, and what is wrong with it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


class Table(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A fixed-shape config table: unknown keys are errors, every field has a default."""

    def check(self) -> None:
        """Rules the field types cannot express; raise `Invalid`."""


class ServerConfig(Table):
    host: str = DEFAULT_HOST
    port: Port = DEFAULT_PORT
    default_provider: NonEmpty = DEFAULT_PROVIDER
    max_body_bytes: Positive = DEFAULT_MAX_BODY
    workers: Positive = 1
    log_level: LogLevel = "warning"
    reasoning_memory: Positive = 10_000  # tool-call ids remembered for reasoning replay (in memory)
    # "memory", or redis://host:port/db shared by every worker and instance; unset: server.redis if
    # that is set, else memory
    reasoning_store: str = ""
    reasoning_ttl: Positive = 86_400  # seconds a remembered entry lives in a shared store
    # Keys clients must present (Authorization: Bearer, or x-api-key). Empty: no client auth,
    # which is why the default host is loopback.
    api_keys: list[NonEmpty] = []
    # Client-side bounds, in seconds: a connection waiting for a complete request head (idle
    # keep-alive, or headers trickled in), a request body that stops arriving, a client that stops
    # reading its reply.
    keepalive_timeout: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    body_timeout: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    send_timeout: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    # Seals the reasoning handed to Responses clients; the same on every instance of a deployment.
    # Unset: one is generated once and kept in the data directory ($DRAGOMAN_DATA_DIR).
    secret: NonEmpty | None = None
    retries: Annotated[int, msgspec.Meta(ge=0)] = 2  # extra attempts on one target, before the client has a byte
    retry_backoff: Seconds = 0.5  # before the first retry; doubles each time, with jitter
    retry_backoff_max: Seconds = 8.0
    retry_after_max: Seconds = 10.0  # an upstream's longer retry-after goes back to the client (or a fallback)
    shutdown_grace: Seconds = 30.0  # SIGTERM waits this long for in-flight requests
    # The usage ledger: "sqlite" (a file in the data dir), "sqlite:///path.db", "postgresql://...", "off"
    usage_store: str = "sqlite"
    usage_retention_days: int = 90  # 0 keeps every row
    usage_journal_mb: int = 256  # the spill file's bound while the store is down
    log_bodies: bool = False  # keep request and response bodies in the ledger (redacted)
    # Operations. One access-log line per request at the default level; "json" makes every log line
    # (the access log's included) one JSON object.
    access_log: bool = True
    log_format: Literal["text", "json"] = "text"
    metrics: bool = True  # GET /metrics, Prometheus text format
    metrics_public: bool = False  # /metrics without the admin key (a scraper on a trusted network)
    # Protects /v1/usage, /v1/keys, /metrics and /ui. Unset: those take one of server.api_keys, and
    # are open only while the gateway asks no key at all.
    admin_key: NonEmpty | None = None
    virtual_keys: bool = True  # gateway keys kept in the usage store (`dragoman keys`)
    key_cache_ttl: Annotated[float, msgspec.Meta(ge=0.5)] = 5.0  # how soon every instance sees a new or revoked key
    # redis://...: rate limits, budget counters, cooldowns and the reasoning memory, shared by every
    # worker and instance; when it is down each instance goes on alone (and logs it)
    redis: NonEmpty | None = None
    redis_prefix: NonEmpty = "dragoman:"  # of every key the gateway writes there

    def check(self) -> None:
        if self.reasoning_store not in ("", "memory") and not self.reasoning_store.startswith(REDIS_SCHEMES):
            raise Invalid("reasoning_store", "must be 'memory' or a redis:// URL")
        if self.redis is not None and not self.redis.startswith(REDIS_SCHEMES):
            raise Invalid("redis", "must be a redis://, rediss:// or unix:// URL")
        if (self.shared_reasoning or self.redis) and importlib.util.find_spec("redis") is None:
            key = "redis" if self.redis else "reasoning_store"
            raise Invalid(key, "Redis needs the redis package: pip install 'dragoman[redis]'")
        for key in ("keepalive_timeout", "body_timeout", "send_timeout", *SECONDS):
            if not math.isfinite(getattr(self, key)):
                raise Invalid(key, "must be a finite number of seconds")
        store = self.usage_store
        if not (
            store in ("off", "sqlite")
            or (store.startswith("sqlite://") and len(store) > len("sqlite://"))
            or store.startswith(("postgresql://", "postgres://"))
        ):
            raise Invalid(
                "usage_store",
                f"{store!r}: expected 'sqlite', 'sqlite:///path/usage.db', 'postgresql://user@host:5432/db' or 'off'",
            )
        if self.secret is not None and not self.secret.strip():
            raise Invalid("secret", "must not be empty (leave it out to have one generated)")
        if self.usage_retention_days < 0:
            raise Invalid("usage_retention_days", "must be 0 (keep everything) or a number of days")
        if self.usage_journal_mb < 1:
            raise Invalid("usage_journal_mb", "must be at least 1")

    @property
    def reasoning_url(self) -> str:
        """Where the reasoning memory lives: "memory" or a Redis URL."""
        if self.reasoning_store == "" and self.redis:
            return self.redis
        return self.reasoning_store or "memory"

    @property
    def shared_reasoning(self) -> bool:
        return self.reasoning_url != "memory"


class RouteConfig(Table):
    """[routes."name"]: a model name clients may send, with several targets tried by `strategy`."""

    targets: Annotated[list[Annotated[str, msgspec.Meta(pattern="/")]], msgspec.Meta(min_length=1)] = []
    strategy: Strategy = "fallback"
    weights: list[Annotated[float, msgspec.Meta(ge=0)]] | None = None

    def check(self) -> None:
        if not self.targets:
            raise Invalid("targets", 'required: a non-empty list of "<provider>/<model>"')
        if self.weights is not None:
            if len(self.weights) != len(self.targets):
                raise Invalid("weights", f"must be a list of {len(self.targets)} numbers, one per target")
            if not any(self.weights):
                raise Invalid("weights", "at least one weight must be above 0")
        elif self.strategy == "weighted":
            raise Invalid("weights", "required with strategy = 'weighted'")


class PriceConfig(Table):
    """[prices."provider/model"]: USD per million tokens, overriding the built-in table."""

    input: Annotated[float, msgspec.Meta(ge=0)] | None = None
    output: Annotated[float, msgspec.Meta(ge=0)] | None = None
    cache_read: Annotated[float, msgspec.Meta(ge=0)] | None = None
    cache_write: Annotated[float, msgspec.Meta(ge=0)] | None = None
    source: str | None = None
    date: str | None = None


# The router's rules, in the order they are tried (`default` last).
RULES = ("long_context", "image", "background", "web_search", "think", "default")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


@dataclass
class RouterConfig:
    """`[router]`: which model a request goes to by what it is (see routing.py)."""

    targets: dict[str, str] = field(default_factory=dict)  # rule name -> model name or route
    long_context_threshold: int = 60_000  # estimated input tokens (claude-code-router's default)
    think_effort: str = "high"  # the reasoning effort from which `think` fires
    # requested names that mark a background request (Claude Code's small fast model)
    background_models: list[str] = field(default_factory=lambda: ["claude-*haiku*"])


class ClaudeCodeClient(Table):
    """[clients.claude-code]: the environment `dragoman code` gives Claude Code."""

    model: NonEmpty | None = None  # ANTHROPIC_MODEL
    opus_model: NonEmpty | None = None  # ANTHROPIC_DEFAULT_OPUS_MODEL
    sonnet_model: NonEmpty | None = None  # ANTHROPIC_DEFAULT_SONNET_MODEL
    haiku_model: NonEmpty | None = None  # ANTHROPIC_DEFAULT_HAIKU_MODEL (background tasks)
    subagent_model: NonEmpty | None = None  # CLAUDE_CODE_SUBAGENT_MODEL
    command: NonEmpty = "claude"
    env: dict[str, str] = {}  # more variables for the session


class CodexClient(Table):
    """[clients.codex]: the CODEX_HOME `dragoman codex` writes for Codex."""

    model: NonEmpty | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None
    command: NonEmpty = "codex"
    home: NonEmpty | None = None  # the generated CODEX_HOME (default: in the user data dir)
    env: dict[str, str] = {}


class ClientsConfig(Table):
    claude_code: ClaudeCodeClient = msgspec.field(default_factory=ClaudeCodeClient, name="claude-code")
    codex: CodexClient = msgspec.field(default_factory=CodexClient)


@dataclass
class Config:
    path: Path | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)  # "provider/model" -> rates
    router: RouterConfig = field(default_factory=RouterConfig)
    clients: ClientsConfig = field(default_factory=ClientsConfig)
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


# Keys whose values never appear in an error message.
SECRET_KEYS = ("server.secret", "server.api_keys", "server.admin_key", "server.redis")

SECTIONS = ("server", "providers", "aliases", "routes", "prices", "router", "clients")

# Keys every provider table accepts; a provider's spec adds its own `options` keys.
PROVIDER_KEYS: dict[str, type | tuple[type, ...]] = {
    "base_url": str,
    "api_key": str,
    "api_keys": list,
    "api_key_env": str,
    "region": str,
    "dialect": str,
    "models": list,
    "aliases": dict,
    "headers": dict,
    "user_agent": str,
    "max_tokens_default": int,
    "timeout": (int, float),
    "connect_timeout": (int, float),
    "first_byte_timeout": (int, float),
    "cooldown": (int, float),
    "cooldown_after": int,
    "enabled": bool,
    "title": str,
    "auth": str,  # "key" (the configured key, the default) or "client" (the key the client sent)
    "identity": str,  # "claude-code": present upstream as Claude Code (Anthropic dialect only)
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
    if path.is_dir():
        raise ConfigError(path, "(file)", "is a directory; give the TOML file itself (e.g. dragoman.toml)")
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
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(path, key, f"unknown section (expected {', '.join(SECTIONS)})")
    cfg = Config(path=path, env_files=_env_files(path))
    cfg.server = typed(data.get("server", {}), ServerConfig, "server", path)
    cfg.clients = typed(data.get("clients", {}), ClientsConfig, "clients", path)

    for pid, table in _table(data, "providers", path).items():
        if not isinstance(table, dict):
            raise ConfigError(path, f"providers.{pid}", "must be a table")
        cfg.providers[pid] = dict(table)

    for name, target in _table(data, "aliases", path).items():
        if not isinstance(target, str) or "/" not in target:
            raise ConfigError(path, f"aliases.{name}", 'must be a string "<provider>/<model>"')
        cfg.aliases[name] = target

    for name, table in _table(data, "routes", path).items():
        if name in cfg.aliases:
            raise ConfigError(path, f"routes.{name}", "is also an alias; a name is one or the other")
        cfg.routes[name] = typed(table, RouteConfig, f"routes.{name}", path)

    for name, rates in _table(data, "prices", path).items():
        key = f'prices."{name}"'
        provider, _, model = name.partition("/")
        if not provider or not model:
            raise ConfigError(path, key, 'name it "<provider>/<model>" (or "<provider>/*" for every model)')
        price = typed(rates, PriceConfig, key, path)
        cfg.prices[name] = {k: v for k in price.__struct_fields__ if (v := getattr(price, k)) is not None}
    cfg.router = _router(_table(data, "router", path), path)
    return cfg


def _router(table: dict[str, Any], path: Path | None) -> RouterConfig:
    out = RouterConfig()
    for key, value in table.items():
        where = f"router.{key}"
        if key in RULES:
            if not isinstance(value, str) or not value:
                raise ConfigError(path, where, "must be a model name (a route, an alias or <provider>/<model>)")
            out.targets[key] = value
        elif key == "long_context_threshold":
            _check_type(value, int, path, where)
            if value <= 0:
                raise ConfigError(path, where, "must be a positive number of tokens")
            out.long_context_threshold = value
        elif key == "think_effort":
            if value not in EFFORTS:
                raise ConfigError(path, where, f"one of {', '.join(EFFORTS)}")
            out.think_effort = value
        elif key == "background_models":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(path, where, "must be a list of model-name patterns")
            out.background_models = list(value)
        else:
            valid = ", ".join([*RULES, "long_context_threshold", "think_effort", "background_models"])
            raise ConfigError(path, where, f"unknown key (expected one of {valid})")
    return out


T = TypeVar("T", bound=Table)


def typed(value: Any, kind: type[T], key: str, path: Path | None) -> T:
    """`value` (a TOML table) as the Table `kind`, checked; errors name `key` plus the inner key."""
    try:
        table = msgspec.convert(value, kind)
        _check(table, key)
    except msgspec.ValidationError as exc:
        inner, problem = _explain(str(exc), value, kind)
        if (key + inner).startswith(SECRET_KEYS):
            problem = problem.partition(", got")[0]  # never echo a secret, even a mistyped one
        raise ConfigError(path, key + inner, problem) from None
    except Invalid as exc:
        raise ConfigError(path, f"{key}.{exc.key}", exc.problem) from None
    return table


def _check(table: Table, key: str) -> None:
    table.check()
    for name in table.__struct_fields__:
        inner = getattr(table, name)
        if isinstance(inner, Table):
            try:
                _check(inner, key)
            except Invalid as exc:
                raise Invalid(f"{_encoded(type(table), name)}.{exc.key}", exc.problem) from None


_UNKNOWN = re.compile(r"Object contains unknown field `([^`]*)`")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_NAMES = {"object": "table", "array": "array"}


def _explain(message: str, value: Any, kind: type[Table]) -> tuple[str, str]:
    """msgspec's "<what> - at `$.a.b`" as (".a.b", a problem in the config's words)."""
    what, _, at = message.partition(" - at `")
    segments = [m.group(1) or int(m.group(2)) for m in _SEGMENT.finditer(at.rstrip("`").removeprefix("$"))]
    inner = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments)
    unknown = _UNKNOWN.match(what)
    if unknown:
        table = _type_at(kind, segments)
        names = ", ".join(_encoded(table, f) for f in table.__struct_fields__) if table else ""
        return f"{inner}.{unknown.group(1)}", f"unknown key (expected one of {names})"
    found, given = _value_at(value, segments)
    if what.startswith("Invalid enum value"):
        choices = _choices(_type_at(kind, segments[:-1]), segments[-1] if segments else None)
        return inner, f"{given!r} is not one of {', '.join(choices)}"
    text = re.sub(r"`([^`]*)`", lambda m: _NAMES.get(m.group(1), m.group(1)), what)
    text = (text[:1].lower() + text[1:]).replace(" | null", "")  # TOML has no null: a missing key is one
    if found and ", got" not in text:
        text += f", got {given!r}"
    elif found and not isinstance(given, dict | list):
        text += f" {given!r}"
    return inner, text


def _type_at(kind: type[Table], segments: list[str | int]) -> type[Table] | None:
    """The Table type reached by following encoded field names from `kind`."""
    current: Any = kind
    for seg in segments:
        if not (isinstance(current, type) and issubclass(current, Table)):
            return None
        fields = {f.encode_name: f.type for f in msgspec.structs.fields(current)}
        if seg not in fields:
            return None
        current = _unwrap(fields[seg])
    return current if isinstance(current, type) and issubclass(current, Table) else None


def _unwrap(tp: Any) -> Any:
    """The type inside `Annotated[...]` and `X | None`."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
            tp = args[0]
            continue
        return tp


def _choices(table: type[Table] | None, name: str | int | None) -> list[str]:
    if table is None or not isinstance(name, str):
        return []
    for f in msgspec.structs.fields(table):
        if f.encode_name == name:
            return [str(c) for c in typing.get_args(_unwrap(f.type))]
    return []


def _encoded(table: type[Table] | None, name: str) -> str:
    """A field's name as written in TOML (`claude_code` is `claude-code`)."""
    if table is not None:
        for f in msgspec.structs.fields(table):
            if f.name == name:
                return f.encode_name
    return name


def _value_at(value: Any, segments: list[str | int]) -> tuple[bool, Any]:
    for seg in segments:
        inside = isinstance(value, list) and isinstance(seg, int) and seg < len(value)
        if not (inside or (isinstance(value, dict) and seg in value)):
            return False, None
        value = value[seg]
    return True, value


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
        shown = "" if key.startswith(SECRET_KEYS) else f" {value!r}"
        raise ConfigError(path, key, f"expected {names}, got {type(value).__name__}{shown}")


def check_provider_table(
    table: dict[str, Any],
    pid: str,
    options: dict[str, Any],
    path: Path | None,
    choices: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    """Validate one [providers.<id>] table against the generic keys and the provider's options
    (`choices`: the values an option may take, where the provider lists them)."""
    for key, value in table.items():
        expected: type | tuple[type, ...] | None = PROVIDER_KEYS.get(key)
        if expected is None and key in options:
            default = options[key]
            expected = type(default) if default is not None else (str, int, float, bool, list, dict)
        if expected is None:
            valid = ", ".join(dict.fromkeys([*PROVIDER_KEYS, *options]))  # an option may share a generic name
            raise ConfigError(path, f"providers.{pid}.{key}", f"unknown key (expected one of {valid})")
        _check_type(value, expected, path, f"providers.{pid}.{key}")
        allowed = (choices or {}).get(key)
        if allowed and value not in allowed:
            raise ConfigError(path, f"providers.{pid}.{key}", f"{value!r} is not one of {', '.join(allowed)}")
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
