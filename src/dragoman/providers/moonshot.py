"""Moonshot (Kimi API platform): OpenAI surface."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="moonshot",
    title="Moonshot",
    dialect="openai",
    base_url="https://api.moonshot.ai/v1",
    regions={"global": "https://api.moonshot.ai/v1", "cn": "https://api.moonshot.cn/v1"},
    key_env="MOONSHOT_API_KEY",
    models=(
        "kimi-k2.6",
        "kimi-k2.5",
        "kimi-k2-thinking",
        "kimi-k2-thinking-turbo",
        "kimi-k2-turbo-preview",
        "kimi-k2-0905-preview",
        "kimi-k2-0711-preview",
    ),
    default_model="kimi-k2.6",
)
