"""The ollama dialect: its codec, stream state machines and wire helpers."""

from dragoman.dialects.ollama.codec import CODEC

__all__ = ["CODEC"]
