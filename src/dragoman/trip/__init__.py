"""One request's trip, in layers (no HTTP framework below this line):

plan      client body -> Trip: the route's targets, the signals; copies, never edits
policy    attempts: which target next, retry or fall back, backoff, cooldowns
exchange  one attempt against one target: the one place that sees status, first byte, usage, end
outcome   the typed record of the finished trip, handed to the sinks
"""
