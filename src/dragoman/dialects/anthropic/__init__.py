"""The anthropic dialect: its codec, stream state machines and wire helpers."""

from dragoman.dialects.anthropic.codec import CODEC

__all__ = ["CODEC"]
