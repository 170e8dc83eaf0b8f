"""The HTTP server: the endpoint table, the fronts, running on one or several workers."""
