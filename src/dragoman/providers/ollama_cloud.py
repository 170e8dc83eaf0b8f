"""Ollama Cloud: the native API at ollama.com with a Bearer key. `<model>:cloud` routes here (the
router strips the suffix, which only a signed-in local daemon understands)."""

from dragoman.providers.base import ProviderSpec
from dragoman.providers.ollama import OllamaHooks

SPEC = ProviderSpec(
    id="ollama_cloud",
    title="Ollama Cloud",
    dialect="ollama",
    base_url="https://ollama.com",
    key_env="OLLAMA_API_KEY",
    model_suffix=":cloud",
    options={"think_default": False},
    hooks=OllamaHooks(),
)
