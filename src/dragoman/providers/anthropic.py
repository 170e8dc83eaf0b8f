"""Anthropic: the reference Messages API."""

from dragoman.providers.base import COUNT_TOKENS, ProviderSpec

SPEC = ProviderSpec(
    id="anthropic",
    title="Anthropic",
    dialect="anthropic",
    base_url="https://api.anthropic.com",
    key_env="ANTHROPIC_API_KEY",
    auth="x-api-key",
    models=("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"),
    default_model="claude-sonnet-4-6",
    max_tokens_default=8192,
    capabilities=frozenset({COUNT_TOKENS}),
)
