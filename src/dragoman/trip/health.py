"""What the policy knows about its targets and keys: cooldowns, consecutive failures, in-flight counts.

A target (provider + model) that failed `cooldown_after` times in a row is skipped for `cooldown`
seconds while another target of the route is healthy; when the cooldown ends, one request goes
through as a probe (success: healthy again; failure: cooled again), the others keep skipping it
until the probe is back. A key answered 429 or 401 cools down alone (for the upstream's retry-after
when it gave one), and the provider's other keys carry the traffic.

Cooldowns are kept on a `CooldownBoard`: in memory by default; the operations layer can install one
shared through Redis so that every worker and instance honours a cooldown any of them saw. Checks are
always local and synchronous: a board mirrors shared state into memory, it is never asked over the
network on the hot path.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from dragoman.providers.base import Provider
from dragoman.routing import Target

log = logging.getLogger("dragoman.health")

PROBE_WINDOW = 30.0  # seconds a probe may take before another request may probe again


class CooldownBoard(Protocol):
    """Cooldowns by name, as wall-clock deadlines (epoch seconds) so several processes agree."""

    # every deadline held (some maybe over), read-only: empty, the policy skips every check
    entries: dict[str, float]

    def until(self, name: str) -> float:
        """The end of `name`'s cooldown, or 0."""
        ...

    def set(self, name: str, until: float) -> None:
        """Cool `name` until then (0 clears it)."""
        ...

    def active(self) -> dict[str, float]:
        """Every cooldown not yet over, for metrics and the dashboard."""
        ...


class MemoryBoard:
    def __init__(self) -> None:
        self.entries: dict[str, float] = {}

    def until(self, name: str) -> float:
        return self.entries.get(name, 0.0)

    def set(self, name: str, until: float) -> None:
        if until <= 0:
            self.entries.pop(name, None)
        else:
            self.entries[name] = until

    def active(self) -> dict[str, float]:
        now = time.time()
        return {k: v for k, v in self.entries.items() if v > now}


def key_name(provider: Provider, key: int) -> str:
    return f"key:{provider.id}:{key}"


class Health:
    def __init__(self, board: CooldownBoard | None = None, *, count_load: bool = True) -> None:
        self.board: CooldownBoard = board or MemoryBoard()
        self._failures: dict[str, int] = {}
        self._probing: dict[str, float] = {}  # target name -> when its probe started
        self._inflight: dict[str, int] = {}
        self._next_key: dict[str, int] = {}
        # whether the in-flight counts are kept: only a least-busy route reads them
        self.count_load = count_load

    def quiet(self) -> bool:
        """Nothing cooling, probing or counting failures anywhere: `attempting` and `succeeded`
        have nothing to do (the usual state, asked once per attempt instead of calling both)."""
        return not (self._failures or self._probing or self.board.entries)

    # -- targets --------------------------------------------------------------------------------

    def blocked(self, target: Target, now: float) -> bool:
        """Cooling, or its cooldown is over and another request is probing it."""
        name = target.board_name
        until = self.board.until(name)
        if until <= 0:
            return False
        if until > now:
            return True
        started = self._probing.get(name)
        return started is not None and now - started < PROBE_WINDOW

    def attempting(self, target: Target, now: float) -> None:
        """A request is about to try `target`: if its cooldown is over, this one is the probe."""
        name = target.board_name
        until = self.board.until(name)
        if 0 < until <= now and name not in self._probing:
            self._probing[name] = now
            log.info("cooldown of %s over: one probe request goes through", target.label)

    def succeeded(self, target: Target) -> None:
        name = target.board_name
        if self._failures:
            self._failures.pop(name, None)
        if (self._probing and self._probing.pop(name, None) is not None) or self.board.until(name):
            self.board.set(name, 0)
            log.info("%s is healthy again", target.label)

    def failed(self, target: Target) -> None:
        """A failure of the upstream (not of the request): counted towards a cooldown."""
        name = target.board_name
        provider = target.provider
        count = self._failures.get(name, 0) + 1
        probing = self._probing.pop(name, None) is not None
        if probing or count >= provider.cooldown_after:
            self._failures.pop(name, None)
            if provider.cooldown > 0:
                self.board.set(name, time.time() + provider.cooldown)
                log.warning(
                    "%s cooled down for %.0f s after %d consecutive failure%s",
                    target.label,
                    provider.cooldown,
                    count,
                    "" if count == 1 else "s",
                )
        else:
            self._failures[name] = count

    def cooling(self, target: Target, now: float) -> float:
        """Seconds left of a target's cooldown (0 when none, or when it is over)."""
        return max(self.board.until(target.board_name) - now, 0.0)

    # -- keys -----------------------------------------------------------------------------------

    def pick_key(self, provider: Provider, tried: set[int]) -> int:
        """The next of the provider's keys, round robin, skipping cooled and already tried ones;
        when every key is cooling, the one that recovers first."""
        count = len(provider.api_keys)
        if count <= 1:
            return 0
        now = time.time()
        start = self._next_key.get(provider.id, 0)
        best, best_until = -1, float("inf")
        for step in range(count):
            key = (start + step) % count
            if key in tried:
                continue
            until = self.board.until(key_name(provider, key))
            if until <= now:
                self._next_key[provider.id] = key + 1
                return key
            if until < best_until:
                best, best_until = key, until
        if best >= 0:
            return best
        return start % count

    def key_refused(self, provider: Provider, key: int, seconds: float) -> None:
        if len(provider.api_keys) > 1 and seconds > 0:
            self.board.set(key_name(provider, key), time.time() + seconds)
            log.warning("%s key #%d cooled down for %.0f s", provider.id, key + 1, seconds)

    def usable_keys(self, provider: Provider, tried: set[int]) -> bool:
        """Whether a key not yet tried is left."""
        return len(tried) < max(len(provider.api_keys), 1)

    # -- load -----------------------------------------------------------------------------------

    def enter(self, target: Target) -> None:
        name = target.label
        self._inflight[name] = self._inflight.get(name, 0) + 1

    def leave(self, target: Target) -> None:
        name = target.label
        left = self._inflight.get(name, 1) - 1
        if left > 0:
            self._inflight[name] = left
        else:
            self._inflight.pop(name, None)

    def busy(self, target: Target) -> int:
        return self._inflight.get(target.label, 0)
