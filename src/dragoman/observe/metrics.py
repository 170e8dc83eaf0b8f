"""Prometheus metrics: a sink that counts every finished request, and `GET /metrics`.

    dragoman_requests_total{front,provider,model,status}
    dragoman_request_duration_seconds{front,provider}          histogram, arrival to last byte
    dragoman_time_to_first_byte_seconds{front,provider}        histogram, arrival to first byte
    dragoman_tokens_total{provider,model,kind}                 kind: input cache_read cache_write output reasoning
    dragoman_cost_usd_total{provider,model}
    dragoman_upstream_attempts_total{provider,outcome}         ok rate_limited client_error server_error timeout
                                                               connection unsupported
    dragoman_inflight_requests                                 gauge
    dragoman_cooldown_active{provider}                         gauge: the provider's targets and keys cooling
    dragoman_ledger_queued_rows, dragoman_ledger_store_up      gauges
    dragoman_ledger_journaled_rows_total, ..._replayed_rows_total, ..._dropped_rows_total

Cardinality is bounded by the config: `provider` is a configured provider (or `none`: refused before
routing), `model` one its catalog declares (anything else, a route name included, is `other`),
`status` an HTTP status. `record` looks each label set's children up in a dict: a few increments.

Under `serve --workers N` prometheus_client's multiprocess mode is on (`server/listen.py` sets
PROMETHEUS_MULTIPROC_DIR before the workers fork): each worker writes its own files, any worker
answers `/metrics` for all of them, and each refreshes its gauges every GAUGE_EVERY seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dragoman.observe.cells import CellCollector, Family, Sampled
from dragoman.trip.outcome import Outcome

if TYPE_CHECKING:
    from dragoman.gateway import Gateway

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GAUGE_EVERY = 2.0
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0)
TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")
OTHER = "other"
NONE = "none"

# (name, help, label names) of each metric, whichever path holds it
REQUESTS = ("dragoman_requests", "Finished requests.", ["front", "provider", "model", "status"])
DURATION = (
    "dragoman_request_duration_seconds",
    "From a request's arrival to the last byte of its reply.",
    ["front", "provider"],
)
TTFB = (
    "dragoman_time_to_first_byte_seconds",
    "From a request's arrival to the first byte of its reply body.",
    ["front", "provider"],
)
TOKENS = ("dragoman_tokens", "Tokens by kind.", ["provider", "model", "kind"])
COST = ("dragoman_cost_usd", "Cost in USD, where the price is known.", ["provider", "model"])
ATTEMPTS = ("dragoman_upstream_attempts", "Attempts against upstreams, by how each went.", ["provider", "outcome"])
INFLIGHT = ("dragoman_inflight_requests", "Requests under way.")
COOLDOWNS = ("dragoman_cooldown_active", "The provider's targets and keys cooling down now.", ["provider"])
LEDGER_QUEUED = ("dragoman_ledger_queued_rows", "Usage rows waiting for the store.")
LEDGER_UP = ("dragoman_ledger_store_up", "1 while the usage store takes rows.")
LEDGER_COUNTERS = (
    ("journaled", "Usage rows spilled to the local journal while the store was down or slow."),
    ("replayed", "Usage rows moved from the journal to the store."),
    ("dropped", "Usage rows lost (journal full or unreadable)."),
)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def attempt_outcome(status: int | None, error_type: str | None) -> str:
    if status is not None and status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    if status is not None and status >= 500:
        return "server_error"
    if status is not None:
        return "client_error"
    if error_type == "timeout_error":
        return "timeout"
    if error_type == "invalid_request_error":
        return "unsupported"  # the target could not take the request: nothing was sent
    return "connection"


@dataclass(slots=True)
class _Children:
    """The label children one (front, provider, model, status) touches."""

    requests: Any
    duration: Any
    ttfb: Any
    tokens: tuple[Any, ...]  # in KINDS order
    cost: Any


class Metrics:
    name = "metrics"

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.multiprocess = multiprocess()
        self._catalog = {pid: frozenset(p.models) | frozenset(p.spec.model_info) for pid, p in gw.providers.items()}
        self._children: dict[tuple[str, str, str, int], _Children] = {}
        self._attempt_children: dict[tuple[str, str], Any] = {}
        self._task: asyncio.Task[None] | None = None
        # each a Family (one process) or a prometheus_client metric (several): both have .labels()
        self.requests: Any
        self.duration: Any
        self.ttfb: Any
        self.tokens: Any
        self.cost: Any
        self.attempts: Any
        if self.multiprocess:
            self._library_metrics()
        else:
            self._cell_metrics()

    def _cell_metrics(self) -> None:
        """One process: plain cells, exposed by a collector (see observe/cells.py)."""
        from prometheus_client import CollectorRegistry

        self.requests = Family("counter", *REQUESTS)
        self.duration = Family("histogram", *DURATION, bounds=DURATION_BUCKETS)
        self.ttfb = Family("histogram", *TTFB, bounds=TTFB_BUCKETS)
        self.tokens = Family("counter", *TOKENS)
        self.cost = Family("counter", *COST)
        self.attempts = Family("counter", *ATTEMPTS)
        families = [self.requests, self.duration, self.ttfb, self.tokens, self.cost, self.attempts]
        self.registry: Any = CollectorRegistry(auto_describe=False)
        self.registry.register(CellCollector(families, self._sampled))

    def _library_metrics(self) -> None:
        """Several workers: prometheus_client's multiprocess values (a file per process); every
        scrape reads them all into a fresh registry."""
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = None
        self.requests = Counter(*REQUESTS, registry=None)
        self.duration = Histogram(*DURATION, buckets=DURATION_BUCKETS, registry=None)
        self.ttfb = Histogram(*TTFB, buckets=TTFB_BUCKETS, registry=None)
        self.tokens = Counter(*TOKENS, registry=None)
        self.cost = Counter(*COST, registry=None)
        self.attempts = Counter(*ATTEMPTS, registry=None)
        self.inflight = Gauge(*INFLIGHT, registry=None, multiprocess_mode="livesum")
        self.cooldowns = Gauge(*COOLDOWNS, registry=None, multiprocess_mode="livemax")
        self.ledger_queued = Gauge(*LEDGER_QUEUED, registry=None, multiprocess_mode="livesum")
        self.ledger_up = Gauge(*LEDGER_UP, registry=None, multiprocess_mode="livemin")
        self.ledger_counters = {
            name: Counter(f"dragoman_ledger_{name}_rows", help_text, registry=None)
            for name, help_text in LEDGER_COUNTERS
        }
        self._ledger_seen = dict.fromkeys(self.ledger_counters, 0)

    # -- the sink ---------------------------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        self.record_batch([outcome])

    def record_batch(self, outcomes: list[Outcome]) -> None:
        catalog, children = self._catalog, self._children
        count = self._count_library if self.multiprocess else self._count_cells
        for outcome in outcomes:
            provider, upstream = outcome.provider, outcome.upstream_model
            if provider is None and outcome.attempts:  # no answer: counted where it was last tried
                provider, upstream = outcome.attempts[-1].provider, outcome.attempts[-1].model
            provider = provider or NONE
            known = catalog.get(provider)
            model = upstream if upstream is not None and known is not None and upstream in known else OTHER
            slot = (outcome.front or NONE, provider, model, outcome.status)
            kids = children.get(slot)
            if kids is None:
                kids = children[slot] = self._make(slot)
            count(kids, outcome)

    def _count_library(self, kids: _Children, outcome: Outcome) -> None:
        """The counts on prometheus_client's metrics (several processes)."""
        kids.requests.inc()
        kids.duration.observe(outcome.latency_ms / 1000)
        if outcome.ttfb_ms is not None:
            kids.ttfb.observe(outcome.ttfb_ms / 1000)
        usage = outcome.usage
        if usage is not None:
            counts = (
                usage.input_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.output_tokens,
                usage.reasoning_tokens or 0,
            )
            for child, count in zip(kids.tokens, counts, strict=True):
                if count:
                    child.inc(count)
        if outcome.cost_usd:
            kids.cost.inc(outcome.cost_usd)
        for attempt in outcome.attempts:
            key = (attempt.provider, attempt_outcome(attempt.status, attempt.error_type))
            child = self._attempt_children.get(key)
            if child is None:
                child = self._attempt_children[key] = self.attempts.labels(*key)
            child.inc()

    def _count_cells(self, kids: _Children, outcome: Outcome) -> None:
        """The same counts on plain cells, inlined: this runs once per request."""
        kids.requests.value += 1
        latency = outcome.latency_ms / 1000
        hist = kids.duration
        hist.counts[bisect_left(hist.bounds, latency)] += 1
        hist.total += latency
        if outcome.ttfb_ms is not None:
            first = outcome.ttfb_ms / 1000
            hist = kids.ttfb
            hist.counts[bisect_left(hist.bounds, first)] += 1
            hist.total += first
        usage = outcome.usage
        if usage is not None:
            tokens = kids.tokens
            tokens[0].value += usage.input_tokens
            tokens[1].value += usage.cache_read_tokens
            tokens[2].value += usage.cache_write_tokens
            tokens[3].value += usage.output_tokens
            if usage.reasoning_tokens:
                tokens[4].value += usage.reasoning_tokens
        if outcome.cost_usd:
            kids.cost.value += outcome.cost_usd
        for attempt in outcome.attempts:
            key = (attempt.provider, attempt_outcome(attempt.status, attempt.error_type))
            child = self._attempt_children.get(key)
            if child is None:
                child = self._attempt_children[key] = self.attempts.labels(*key)
            child.value += 1

    def _make(self, slot: tuple[str, str, str, int]) -> _Children:
        front, provider, model, status = slot
        return _Children(
            requests=self.requests.labels(front, provider, model, str(status)),
            duration=self.duration.labels(front, provider),
            ttfb=self.ttfb.labels(front, provider),
            tokens=tuple(self.tokens.labels(provider, model, kind) for kind in KINDS),
            cost=self.cost.labels(provider, model),
        )

    async def start(self) -> None:
        if self.multiprocess and self._task is None:
            self.refresh()
            self._task = asyncio.get_running_loop().create_task(self._gauges(), name="dragoman-metrics")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _gauges(self) -> None:
        while True:
            await asyncio.sleep(GAUGE_EVERY)
            self.refresh()

    # -- gauges and the scrape ----------------------------------------------------------------------

    def _state(self) -> tuple[int, dict[str, int], dict[str, int | bool] | None]:
        """In-flight trips, cooling targets and keys per provider, and the ledger's counters."""
        from dragoman.store import ledger

        gw = self.gw
        cooling = dict.fromkeys(gw.providers, 0)
        for name in gw.health.board.active():
            # target:<provider>/<model> or key:<provider>:<n>
            _, _, rest = name.partition(":")
            provider = rest.split("/", 1)[0] if name.startswith("target:") else rest.split(":", 1)[0]
            if provider in cooling:
                cooling[provider] += 1
        sink = ledger.find(gw)
        return len(gw.inflight), cooling, sink.stats() if sink is not None else None

    def _sampled(self) -> list[Sampled]:
        inflight, cooling, stats = self._state()
        out: list[Sampled] = [
            ("gauge", *INFLIGHT, [], [([], inflight)]),
            ("gauge", *COOLDOWNS, [([p], n) for p, n in cooling.items()]),
        ]
        if stats is not None:
            out.append(("gauge", *LEDGER_QUEUED, [], [([], float(stats["queued"]))]))
            out.append(("gauge", *LEDGER_UP, [], [([], 1.0 if stats["store_up"] else 0.0)]))
            for name, help_text in LEDGER_COUNTERS:
                out.append(("counter", f"dragoman_ledger_{name}_rows", help_text, [], [([], float(stats[name]))]))
        return out

    def refresh(self) -> None:
        """Multiprocess mode: this worker's gauges into its files (a scrape reads every worker's)."""
        if not self.multiprocess:
            return
        inflight, cooling, stats = self._state()
        self.inflight.set(inflight)
        for provider, count in cooling.items():
            self.cooldowns.labels(provider).set(count)
        if stats is not None:
            self.ledger_queued.set(int(stats["queued"]))
            self.ledger_up.set(1 if stats["store_up"] else 0)
            for name, counter in self.ledger_counters.items():
                value = int(stats[name])
                if value > self._ledger_seen[name]:
                    counter.inc(value - self._ledger_seen[name])
                    self._ledger_seen[name] = value

    def render(self) -> bytes:
        """The text exposition (every worker's, in multiprocess mode)."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if not self.multiprocess:
            return generate_latest(self.registry)
        self.refresh()
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def make_sink(gw: Gateway) -> Metrics | None:
    return Metrics(gw) if gw.config.server.metrics else None


def find(gw: Gateway) -> Metrics | None:
    """The gateway's metrics sink, if it has one."""
    return next((s for s in gw.sinks.sinks if isinstance(s, Metrics)), None)
