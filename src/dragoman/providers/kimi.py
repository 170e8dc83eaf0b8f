"""Kimi For Coding: Anthropic surface at api.kimi.com/coding, gated by User-Agent."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="kimi",
    title="Kimi For Coding",
    dialect="anthropic",
    base_url="https://api.kimi.com/coding",
    key_env="KIMI_API_KEY",
    auth="bearer",
    models=("kimi-for-coding",),
    default_model="kimi-for-coding",
    aliases={"kimi-code": "kimi-for-coding", "k2p5": "kimi-for-coding"},
    max_tokens_default=8192,
    options={"user_agent": "claude-code/0.1.0"},
)
