"""Wire-format codecs. One module per dialect; each converts its wire shapes to and from
`dragoman.canonical` and nothing else. `get(name)` returns the codec for a dialect name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dragoman.dialects.base import Codec

DIALECTS = ("openai", "anthropic", "ollama")

_cache: dict[str, Codec] = {}


def get(name: str) -> Codec:
    codec = _cache.get(name)
    if codec is None:
        if name == "openai":
            from dragoman.dialects.openai import CODEC
        elif name == "anthropic":
            from dragoman.dialects.anthropic import CODEC
        elif name == "ollama":
            from dragoman.dialects.ollama import CODEC
        else:
            raise KeyError(name)
        codec = _cache[name] = CODEC
    return codec
