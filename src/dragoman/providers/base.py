"""What a provider is: a row of data (`ProviderSpec`) plus small hooks (`Hooks`) where data cannot
say it. The core never names a provider; it reads these.

A spec is the built-in or plugin default. `Provider` is the spec with the user's config applied
(base_url, region, key, headers, options) — the thing routing returns and the pipeline calls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dragoman.errors import GatewayError

if TYPE_CHECKING:
    from dragoman.canonical import Thinking
    from dragoman.store.reasoning import Recall

Dialect = Literal["openai", "anthropic", "ollama"]
Auth = Literal["bearer", "x-api-key", "none"]

log = logging.getLogger("dragoman.providers")

# The path each dialect's SDK appends to its base_url.
DIALECT_PATHS: dict[str, str] = {
    "openai": "/chat/completions",
    "anthropic": "/v1/messages",
    "ollama": "/api/chat",
}

# Capabilities a spec may declare. Behaviour keys on these, never on model names.
COUNT_TOKENS = "count_tokens"  # serves /v1/messages/count_tokens
REASONING_REPLAY = "reasoning_replay"  # assistant tool-call turns must carry their reasoning
# Its own thinking signatures are the ones it validates (Anthropic): what it mints need not be
# remembered for clients that keep their thinking blocks.
SIGNATURE_AUTHORITY = "signature_authority"


@dataclass(frozen=True)
class PrepareContext:
    """What a hook may know while shaping the upstream body."""

    client_dialect: str
    upstream_dialect: str
    thinking: Thinking | None  # what the client asked of reasoning, in any dialect
    reasoning: Recall  # what the reasoning memory holds for this request's tool calls
    log: logging.Logger = log


class Hooks:
    """Per-provider behaviour that data cannot express. Every method has a neutral default."""

    def dialect_for(self, provider: Provider, model: str) -> str:
        """The wire format to speak for `model` (OpenCode Zen varies by model family)."""
        return provider.dialect

    def url_for(self, provider: Provider, dialect: str, model: str) -> str:
        return provider.base_url + DIALECT_PATHS[dialect]

    def count_tokens_url(self, provider: Provider) -> str | None:
        if COUNT_TOKENS in provider.spec.capabilities:
            return provider.base_url + "/v1/messages/count_tokens"
        return None

    def prepare(self, provider: Provider, body: dict[str, Any], ctx: PrepareContext) -> None:
        """Shape the upstream wire body in place (pin sampling, replay reasoning, defaults)."""

    def map_error(self, provider: Provider, status: int, error: GatewayError) -> GatewayError:
        """Turn an upstream error into a clearer one (MiniMax balance, Kimi's UA gate...)."""
        return error

    def rewrite_stream(self, provider: Provider) -> bool:
        """True when a same-dialect reply must still be re-encoded (to repair it)."""
        return False


@dataclass(frozen=True)
class ModelInfo:
    """What the catalog knows of one model. Behaviour keys on these, never on the model's name."""

    context_window: int | None = None  # tokens of input + output it takes
    max_output: int | None = None
    reasoning: bool | None = None  # accepts reasoning controls (effort, thinking); None: not known
    dialect: str | None = None  # served only in this wire format (e.g. "responses")


@dataclass(frozen=True)
class ProviderSpec:
    id: str
    title: str
    dialect: str  # openai | anthropic | ollama (the default; hooks may vary it per model)
    base_url: str
    key_env: str | None = None
    auth: Auth = "bearer"
    regions: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    model_info: Mapping[str, ModelInfo] = field(default_factory=dict)  # by model id, where known
    default_model: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # legacy id -> id sent on the wire
    # a model-name suffix that selects this provider without a prefix (Ollama Cloud's `:cloud`)
    model_suffix: str | None = None
    max_tokens_default: int | None = None
    capabilities: frozenset[str] = frozenset()
    options: Mapping[str, Any] = field(default_factory=dict)  # provider-specific config defaults
    option_headers: Mapping[str, str] = field(default_factory=dict)  # option name -> header it sets
    hooks: Hooks = field(default_factory=Hooks)
    docs: str = ""


@dataclass
class Provider:
    spec: ProviderSpec
    base_url: str
    api_key: str | None
    headers: dict[str, str]
    options: dict[str, Any]
    models: list[str]
    max_tokens_default: int | None
    dialect: str
    timeout: float = 600.0  # seconds between bytes of a reply
    connect_timeout: float = 10.0
    first_byte_timeout: float = 120.0  # seconds from the request to the first byte of the reply's body

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def hooks(self) -> Hooks:
        return self.spec.hooks

    @property
    def needs_key(self) -> bool:
        return self.spec.auth != "none" and self.spec.key_env is not None

    @property
    def available(self) -> bool:
        return bool(self.api_key) or not self.needs_key

    def info(self, model: str) -> ModelInfo | None:
        return self.spec.model_info.get(model)

    def wire_model(self, model: str) -> str:
        """The model id to send: aliases resolved, the provider's default for an empty name."""
        if not model and self.spec.default_model:
            return self.spec.default_model
        return self.spec.aliases.get(model, model)

    def auth_headers(self) -> dict[str, str]:
        if not self.api_key or self.spec.auth == "none":
            return {}
        if self.spec.auth == "x-api-key":
            return {"x-api-key": self.api_key}
        return {"authorization": f"Bearer {self.api_key}"}
