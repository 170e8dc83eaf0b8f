"""Wire-format codecs. One module per dialect; each converts its wire shapes to and from
`dragoman.canonical` and nothing else. `get(name)` returns the codec for a dialect name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dragoman.dialects.base import Codec

DIALECTS = ("openai", "anthropic", "ollama", "responses")

_cache: dict[str, Codec] = {}


def get(name: str) -> Codec:
    codec = _cache.get(name)
    if codec is None:
        if name not in DIALECTS:
            raise KeyError(name)
        # imported on first use: start-up pays only for the dialects it serves
        from importlib import import_module

        codec = _cache[name] = import_module(f"dragoman.dialects.{name}").CODEC
    return codec
