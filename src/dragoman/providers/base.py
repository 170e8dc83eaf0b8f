"""What a provider is: a row of data (`ProviderSpec`) plus small hooks (`Hooks`) where data cannot
say it. The core never names a provider; it reads these.

A spec is the built-in or plugin default. `Provider` is the spec with the user's config applied
(base_url, region, key, headers, options) — the thing routing returns and the pipeline calls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from dragoman import dialects
from dragoman.errors import AuthenticationFailed, GatewayError

if TYPE_CHECKING:
    from dragoman.canonical import Thinking
    from dragoman.store.reasoning import Recall

Dialect = Literal["openai", "anthropic", "ollama", "responses"]
Auth = Literal["bearer", "x-api-key", "none"]

log = logging.getLogger("dragoman.providers")

# Capabilities a spec may declare. Behaviour keys on these, never on model names.
COUNT_TOKENS = "count_tokens"  # serves /v1/messages/count_tokens
REASONING_REPLAY = "reasoning_replay"  # assistant tool-call turns must carry their reasoning
# Its own thinking signatures are the ones it validates (Anthropic): what it mints need not be
# remembered for clients that keep their thinking blocks.
SIGNATURE_AUTHORITY = "signature_authority"


class PrepareContext(msgspec.Struct, frozen=True):
    """What a hook may know while shaping the upstream body."""

    client_dialect: str
    upstream_dialect: str
    thinking: Thinking | None  # what the client asked of reasoning, in any dialect
    reasoning: Recall  # what the reasoning memory holds for this request's tool calls
    log: logging.Logger = log


class Hooks:
    """Per-provider behaviour that data cannot express. Every method has a neutral default."""

    def dialect_for(self, provider: Provider, model: str) -> str:
        """The wire format to speak for `model`: the one its catalog entry says it is served in
        only (OpenAI's Responses-only models), else the provider's."""
        info = provider.info(model)
        if info is not None and info.dialect is not None:
            return info.dialect
        return provider.dialect

    def url_for(self, provider: Provider, dialect: str, model: str) -> str:
        """The base_url plus the path the dialect's own SDK appends to it."""
        return provider.base_url + dialects.get(dialect).path

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
    dialect: str  # openai | anthropic | ollama | responses (the default; varied per model by ModelInfo)
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
    option_choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # option -> its allowed values
    # the option that picks the wire format (Kimi's `surface`): a `dialect` key would be ignored, so it is refused
    dialect_option: str | None = None
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
    timeout: float = 600.0  # seconds between upstream bytes
    connect_timeout: float = 10.0
    first_byte_timeout: float = 120.0  # seconds until the first byte of the reply body
    api_keys: list[str] = field(default_factory=list)  # api_key is the first; several are spread over
    cooldown: float = 30.0  # seconds a target is skipped after `cooldown_after` consecutive failures
    cooldown_after: int = 3
    # `auth = "client"`: the key the client sent is forwarded instead of a configured one
    client_auth: bool = False
    # anthropic-beta values this provider always sends (its identity's, its configured header's)
    betas: tuple[str, ...] = ()
    id: str = field(init=False, repr=False)  # the spec's, read on every attempt
    _auth: dict[int, dict[str, str]] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.id = self.spec.id

    @property
    def hooks(self) -> Hooks:
        return self.spec.hooks

    @property
    def needs_key(self) -> bool:
        return self.spec.auth != "none" and self.spec.key_env is not None

    @property
    def available(self) -> bool:
        return bool(self.api_key) or not self.needs_key or self.client_auth

    def info(self, model: str) -> ModelInfo | None:
        return self.spec.model_info.get(model)

    def reasoning_refused(self, model: str) -> bool:
        """True when the catalog says `model` takes no reasoning controls (unknown: False)."""
        info = self.spec.model_info.get(model)
        return info is not None and info.reasoning is False

    def wire_model(self, model: str) -> str:
        """The model id to send: aliases resolved, the provider's default for an empty name."""
        if not model and self.spec.default_model:
            return self.spec.default_model
        return self.spec.aliases.get(model, model)

    def auth_headers(self, client_key: str | None = None, key: int = 0) -> dict[str, str]:
        """The credential header, in this provider's own style (x-api-key or Bearer), for its
        `key`-th configured key. With `auth = "client"` it carries `client_key` (the client's own
        key, never a gateway key), and its absence is a 401: there is no configured key to fall
        back on."""
        if not self.client_auth:
            known = self._auth.get(key)
            if known is not None:
                return known  # (the caller copies it into the request's headers)
        secret = self.api_keys[key] if key < len(self.api_keys) else self.api_key
        if self.client_auth:
            if not client_key:
                raise AuthenticationFailed(
                    f'provider {self.id!r} forwards the client\'s own key (auth = "client") and this request '
                    f"carried none: send your {self.spec.title} key as Authorization: Bearer or x-api-key (with "
                    "gateway keys set, the gateway key in one of those headers and yours in the other)"
                )
            secret = client_key
        if not secret or self.spec.auth == "none":
            headers: dict[str, str] = {}
        elif self.spec.auth == "x-api-key":
            headers = {"x-api-key": secret}
        else:
            headers = {"authorization": f"Bearer {secret}"}
        if not self.client_auth:
            self._auth[key] = headers  # a configured key's header is the same on every request
        return headers

    def request_headers(
        self, client_key: str | None = None, client_beta: str | None = None, key: int = 0
    ) -> dict[str, str]:
        """This provider's headers for one request: configured and identity headers, anthropic-beta
        (`client_beta`, the client's own when the trip forwards it, merged with the provider's
        betas, in order, each once) and the credential."""
        out = dict(self.headers)
        beta = merge_betas(client_beta, self.betas)
        if beta:
            out["anthropic-beta"] = beta
        out.update(self.auth_headers(client_key, key))
        return out

    def secrets(self, client_key: str | None = None) -> tuple[str, ...]:
        """What must never reach a client, a log or a store: the configured keys and a forwarded
        client key."""
        configured = self._configured_secrets
        if self.client_auth and client_key:
            return (*configured, client_key)
        return configured

    @cached_property
    def _configured_secrets(self) -> tuple[str, ...]:
        # asked on every attempt: the configured keys are read once
        return tuple(s for s in (self.api_key, *self.api_keys) if s)


def split_betas(value: str | None) -> list[str]:
    return [b.strip() for b in value.split(",") if b.strip()] if value else []


def merge_betas(client: str | None, own: tuple[str, ...]) -> str:
    """The client's betas first (their order kept), then the provider's, each once."""
    out: list[str] = []
    for beta in (*split_betas(client), *own):
        if beta not in out:
            out.append(beta)
    return ",".join(out)
