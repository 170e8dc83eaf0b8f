"""What the gateway keeps: the reasoning memory (and, in time, the usage ledger, keys, responses)."""
