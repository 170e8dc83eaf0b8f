"""OpenAI: the reference Chat Completions API."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="openai",
    title="OpenAI",
    dialect="openai",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    models=("gpt-5.1", "gpt-5-mini", "gpt-4.1", "gpt-4o", "o4-mini"),
    default_model="gpt-5.1",
)
