"""Ollama, local: native /api/chat, no key."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="ollama",
    title="Ollama",
    dialect="ollama",
    base_url="http://localhost:11434",
    key_env=None,
    auth="none",
)
