"""OpenRouter: OpenAI surface with attribution headers."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="openrouter",
    title="OpenRouter",
    dialect="openai",
    base_url="https://openrouter.ai/api/v1",
    key_env="OPENROUTER_API_KEY",
    options={"http_referer": "https://github.com/dragoman-gateway/dragoman", "x_title": "Dragoman"},
)
