"""DeepSeek: OpenAI surface."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="deepseek",
    title="DeepSeek",
    dialect="openai",
    base_url="https://api.deepseek.com",
    key_env="DEEPSEEK_API_KEY",
    models=("deepseek-v4-pro", "deepseek-v4-flash", "deepseek-chat", "deepseek-reasoner"),
    default_model="deepseek-v4-flash",
)
