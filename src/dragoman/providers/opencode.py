"""OpenCode Zen: one key, a wire format per model family."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="opencode",
    title="OpenCode Zen",
    dialect="openai",
    base_url="https://opencode.ai/zen/v1",
    key_env="OPENCODE_API_KEY",
)
