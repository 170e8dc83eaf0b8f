"""How a request travels upstream: the pooled HTTP client and the stream framings."""
