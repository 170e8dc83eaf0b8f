"""MiniMax: Anthropic surface, Bearer auth."""

from dragoman.providers.base import ProviderSpec

SPEC = ProviderSpec(
    id="minimax",
    title="MiniMax",
    dialect="anthropic",
    base_url="https://api.minimax.io/anthropic",
    regions={"global": "https://api.minimax.io/anthropic", "cn": "https://api.minimaxi.com/anthropic"},
    key_env="MINIMAX_API_KEY",
    auth="bearer",
    models=("MiniMax-M2.7", "MiniMax-M2.7-highspeed"),
    default_model="MiniMax-M2.7",
    max_tokens_default=4096,
)
