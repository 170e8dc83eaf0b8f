"""The metrics of one process, held in plain Python cells and exposed by a prometheus_client
collector: the single-process path of `observe/metrics.py`.

prometheus_client's own value objects take a lock and check the metric on every increment; a
finished request touches eight of them. Here an increment is an attribute add, and the library
builds the exposition from these cells at scrape time (its `CounterMetricFamily`,
`HistogramMetricFamily`, `GaugeMetricFamily`). Under `--workers` the library's multiprocess
values are used instead: only they are shared between processes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any


class Cell:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Hist:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((repr(float(bound)), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


class Family:
    """One metric's cells by label values."""

    def __init__(
        self, kind: str, name: str, help_text: str, label_names: list[str], bounds: tuple[float, ...] = ()
    ) -> None:
        self.kind, self.name, self.help, self.label_names, self.bounds = kind, name, help_text, label_names, bounds
        self.cells: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        cell = self.cells.get(values)
        if cell is None:
            cell = self.cells[values] = Hist(self.bounds) if self.kind == "histogram" else Cell()
        return cell


# (counter | gauge, name, help, label names, [(label values, value)]): read from the live state
Sampled = tuple[str, str, str, list[str], list[tuple[list[str], float]]]


class CellCollector:
    """Yields every family, plus the gauges `gauges()` reads from the live state at scrape time."""

    def __init__(self, families: list[Family], gauges: Callable[[], list[Sampled]]) -> None:
        self.families = families
        self.gauges = gauges

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for family in self.families:
            metric: Any
            if family.kind == "histogram":
                metric = HistogramMetricFamily(family.name, family.help, labels=family.label_names)
                for values, hist in family.cells.items():
                    metric.add_metric(list(values), hist.buckets(), sum_value=hist.total)
            else:
                metric = CounterMetricFamily(family.name, family.help, labels=family.label_names)
                for values, cell in family.cells.items():
                    metric.add_metric(list(values), cell.value)
            yield metric
        for kind, name, help_text, names, samples in self.gauges():
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            metric = family_type(name, help_text, labels=names)
            for label_values, value in samples:
                metric.add_metric(label_values, value)
            yield metric
