"""Dragoman: an LLM gateway that lets every client speak to every provider in its own dialect."""

__version__ = "0.1.0"
