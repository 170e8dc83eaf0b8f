"""What the trip does with reasoning a Responses client carries back sealed. The codec itself is
stateless and never sees the sealer on the way in; these two functions are called with it.

* `open_sealed(request, sealer)` — a decoded (canonical) request from a Responses client: each
  reasoning part holding this gateway's blob is replaced by the parts sealed in it, byte for byte
  (Kimi's and Claude's signed thinking, Moonshot's `reasoning_content`, OpenRouter's details). A blob
  that does not open (sealed under another secret, or changed) is ignored with a logged note: the
  part keeps its visible text and nothing else, as a client's unsigned reasoning would.
* `unseal_passthrough(body, sealer)` — a Responses body about to go, untranslated, to a Responses
  upstream: a sealed item that holds OpenAI's own encrypted reasoning gets it back (without the
  gateway's item id); one that holds another provider's reasoning (or does not open) is removed,
  since OpenAI would refuse it. Such a history went through another provider, so every item's id
  (minted by the gateway) is removed too.
"""

from __future__ import annotations

import logging
from typing import Any

from dragoman.canonical import Part, Reasoning, Request
from dragoman.dialects.base import Sealer
from dragoman.dialects.responses.inputs import SEALED
from dragoman.dialects.responses.wire import is_openai_encrypted, own, wrap
from dragoman.seal import is_sealed

log = logging.getLogger("dragoman.dialects.responses")


def open_sealed(request: Request, sealer: Sealer | None) -> int:
    """Restore sealed reasoning in place; returns how many blobs did not open."""
    failed = 0
    for message in request.messages:
        if not any(isinstance(p, Reasoning) and SEALED in own(p.extra) for p in message.content):
            continue
        parts: list[Part] = []
        for p in message.content:
            blob = own(p.extra).get(SEALED) if isinstance(p, Reasoning) else None
            if not isinstance(p, Reasoning) or not isinstance(blob, str):
                parts.append(p)
                continue
            opened = sealer.open(blob) if sealer is not None else None
            if opened is not None:
                parts.extend(opened)
                continue
            failed += 1
            rest = {k: v for k, v in own(p.extra).items() if k != SEALED}
            parts.append(Reasoning(p.text, extra=wrap(rest)))
        message.content = parts
    if failed:
        log.warning(
            "ignored %d sealed reasoning item(s) that did not open (another deployment's secret, or changed)", failed
        )
    return failed


def _openai_item(item: dict[str, Any], parts: list[Reasoning]) -> dict[str, Any] | None:
    if len(parts) != 1 or not parts[0].signature or not is_openai_encrypted(parts[0].signature):
        return None
    # without its id: the client's is the gateway's, and with `store: false` OpenAI would look an id
    # up and answer "not found"; the encrypted content is self-contained
    restored = {k: v for k, v in item.items() if k not in ("encrypted_content", "id")}
    restored["encrypted_content"] = parts[0].signature
    return restored


def unseal_passthrough(body: dict[str, Any], sealer: Sealer | None) -> bool:
    """Make a same-dialect body safe for a Responses upstream; True when it changed."""
    items = body.get("input")
    if not isinstance(items, list):
        return False
    changed = False
    kept: list[Any] = []
    for item in items:
        blob = item.get("encrypted_content") if isinstance(item, dict) and item.get("type") == "reasoning" else None
        if not isinstance(blob, str) or not is_sealed(blob):
            kept.append(item)
            continue
        changed = True
        opened = sealer.open(blob) if sealer is not None else None
        restored = _openai_item(item, opened) if opened is not None else None
        if restored is not None:
            kept.append(restored)
        else:
            log.debug("removed a sealed reasoning item a Responses upstream cannot take (another provider's)")
    if changed:
        # the history went through another provider: its item ids were minted by this gateway,
        # and OpenAI, keeping nothing with `store: false`, would look them up and not find them
        body["input"] = [{k: v for k, v in i.items() if k != "id"} if isinstance(i, dict) else i for i in kept]
    return changed
