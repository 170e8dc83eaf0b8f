"""What a request cost: per provider and model, USD per million tokens of each kind.

The built-in table is data (`data/prices.toml`, with each price's source and date); the config's
`[prices."<provider>/<model>"]` tables override it field by field, and `"<provider>/*"` prices
every model of a provider that has no entry of its own.

The usage is canonical (`canonical.Usage`): input is uncached input, cache reads and writes are
counted apart, output includes reasoning. Each kind is billed at its own rate, so a cache read is
never billed as input nor counted twice. A cost is None, never 0, when the model has no price or
when the request used a kind of token whose rate is not known.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import msgspec

from dragoman.canonical import Usage

PER = 1_000_000
RATES = ("input", "output", "cache_read", "cache_write")


class Price(msgspec.Struct, frozen=True, omit_defaults=True):
    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None
    source: str | None = None
    date: str | None = None

    def cost(self, usage: Usage) -> float | None:
        total = 0.0
        for tokens, rate in (
            (usage.input_tokens, self.input),
            (usage.output_tokens, self.output),  # reasoning tokens are part of output, billed once
            (usage.cache_read_tokens, self.cache_read),
            (usage.cache_write_tokens, self.cache_write),
        ):
            if tokens:
                if rate is None:
                    return None
                total += tokens * rate
        return round(total / PER, 10)


class PriceTable:
    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices: dict[str, Price] = dict(prices or {})
        self._found: dict[tuple[str, str | None], Price | None] = {}  # what `get` answered, per request

    @classmethod
    def builtin(cls) -> PriceTable:
        return cls(_builtin())

    @classmethod
    def from_config(cls, overrides: Mapping[str, Mapping[str, Any]]) -> PriceTable:
        """The built-in table with the config's `[prices]` applied (already validated by config)."""
        prices = dict(_builtin())
        for name, fields in overrides.items():
            base = prices.get(name)
            merged = msgspec.structs.asdict(base) if base is not None else {}
            merged.update({k: float(v) if k in RATES else v for k, v in fields.items()})
            if "source" not in fields:
                merged["source"] = "config"
                merged.pop("date", None)
            prices[name] = msgspec.convert(merged, Price)
        return cls(prices)

    def get(self, provider: str | None, model: str | None) -> Price | None:
        if not provider:
            return None
        try:
            return self._found[(provider, model)]
        except KeyError:
            pass
        found = self._find(provider, model)
        if len(self._found) >= 4096:  # model names a client chose (pass-through providers) vary
            self._found.clear()
        self._found[(provider, model)] = found
        return found

    def _find(self, provider: str, model: str | None) -> Price | None:
        if model:
            found = self._prices.get(f"{provider}/{model}")
            if found is not None:
                return found
        return self._prices.get(f"{provider}/*")

    def cost(self, provider: str | None, model: str | None, usage: Usage | None) -> float | None:
        """USD for this usage on this provider's model; None when the price is not known."""
        if usage is None:
            return None
        price = self.get(provider, model)
        return price.cost(usage) if price is not None else None

    def __iter__(self) -> Iterator[tuple[str, Price]]:
        return iter(sorted(self._prices.items()))

    def __len__(self) -> int:
        return len(self._prices)


@cache
def _builtin() -> dict[str, Price]:
    data = tomllib.loads(files("dragoman").joinpath("data/prices.toml").read_text(encoding="utf-8"))
    prices: dict[str, Price] = {}
    for provider, models in data.items():
        for model, fields in models.items():
            prices[f"{provider}/{model}"] = msgspec.convert(fields, Price)
    return prices
