"""Ollama Cloud: the native API at ollama.com with a Bearer key; `<model>:cloud` routes here."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="ollama_cloud",
    title="Ollama Cloud",
    dialect="ollama",
    base_url="https://ollama.com",
    key_env="OLLAMA_API_KEY",
)
