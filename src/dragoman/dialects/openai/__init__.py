"""The openai dialect: its codec, stream state machines and wire helpers."""

from dragoman.dialects.openai.codec import CODEC

__all__ = ["CODEC"]
