"""Which sinks a gateway gets: the built-ins named below (each a `module:function` taking the
`Gateway` and returning a sink, or None when its config turns it off), then every callable in the
`dragoman.sinks` entry point group, registered exactly the same way."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from dragoman.trip.outcome import Sink, Sinks

if TYPE_CHECKING:
    from dragoman.gateway import Gateway

log = logging.getLogger("dragoman.sinks")

BUILTIN: tuple[str, ...] = (
    "dragoman.store.ledger:make_sink",
    "dragoman.store.keys:make_sink",
    "dragoman.observe.metrics:make_sink",
    "dragoman.observe.access:make_sink",
)


def _load(ref: str) -> Callable[[Gateway], Sink | None]:
    module, _, name = ref.partition(":")
    factory: Any = getattr(import_module(module), name)
    return factory


def build(gw: Gateway) -> Sinks:
    sinks = Sinks()
    factories: list[tuple[str, Callable[[Gateway], Sink | None]]] = [(ref, _load(ref)) for ref in BUILTIN]
    for ep in entry_points(group="dragoman.sinks"):
        try:
            factories.append((ep.name, ep.load()))
        except Exception as exc:  # a broken plugin must not take the gateway down
            log.error("sink plugin %s failed to load: %s", ep.name, exc)
    for name, factory in factories:
        try:
            sink = factory(gw)
        except Exception as exc:
            if name in BUILTIN:
                raise  # a built-in sink that cannot be made is a config error, raised as such
            log.error("sink plugin %s failed: %s", name, exc)
            continue
        if sink is not None:
            sinks.add(sink)
    return sinks
