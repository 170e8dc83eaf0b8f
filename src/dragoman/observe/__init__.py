"""Watching finished requests: the sinks registry (and the built-in sinks that are not stores)."""
