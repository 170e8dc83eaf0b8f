"""The responses dialect (OpenAI Responses API): its codec, stream state machines, and the two
functions the trip calls with the gateway's sealer (`open_sealed`, `unseal_passthrough`)."""

from dragoman.dialects.responses.codec import CODEC
from dragoman.dialects.responses.sealed import open_sealed, unseal_passthrough

__all__ = ["CODEC", "open_sealed", "unseal_passthrough"]
