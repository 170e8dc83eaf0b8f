"""Cost from the price table: each kind of token at its own published rate (cache reads never as
input, reasoning once inside output), null when the price is not known, and config overrides."""

from __future__ import annotations

import tomllib
from importlib.resources import files

import pytest

from dragoman import providers
from dragoman.canonical import Usage
from dragoman.config import ConfigError, parse
from dragoman.gateway import Gateway
from dragoman.prices import PriceTable

# An agent turn on Claude Sonnet 4.6: mostly cache, some fresh input, a prompt-cache write, and
# output that includes 200 reasoning tokens.
TURN = Usage(
    input_tokens=1_000, output_tokens=500, cache_read_tokens=10_000, cache_write_tokens=2_000, reasoning_tokens=200
)


def test_a_known_models_cost_bills_each_kind_at_its_rate():
    table = PriceTable.builtin()
    # $3/M input, $15/M output, $0.30/M cache read, $3.75/M cache write (platform.claude.com pricing)
    expected = (1_000 * 3.0 + 500 * 15.0 + 10_000 * 0.30 + 2_000 * 3.75) / 1_000_000
    assert table.cost("anthropic", "claude-sonnet-4-6", TURN) == pytest.approx(expected) == pytest.approx(0.021)
    # billing the cache reads as input would have made it $0.048
    assert table.cost("anthropic", "claude-sonnet-4-6", TURN) != pytest.approx(
        ((1_000 + 10_000) * 3.0 + 500 * 15.0 + 2_000 * 3.75) / 1_000_000
    )
    openai_turn = Usage(input_tokens=2_000, output_tokens=1_000, cache_read_tokens=8_000, reasoning_tokens=600)
    assert table.cost("openai", "gpt-5.1", openai_turn) == pytest.approx(
        (2_000 * 1.25 + 1_000 * 10 + 8_000 * 0.125) / 1e6
    )


def test_an_unknown_price_is_null_never_zero():
    table = PriceTable.builtin()
    assert table.cost("kimi", "kimi-for-coding", TURN) is None  # a subscription: no per-token price
    assert table.cost("anthropic", "claude-opus-9", TURN) is None
    assert table.cost("my-vllm", "qwen3-coder", TURN) is None
    assert table.cost(None, None, TURN) is None
    assert table.cost("anthropic", "claude-sonnet-4-6", None) is None  # no usage seen
    # OpenAI bills no cache writes apart: a usage that reports some has no known cost
    assert table.cost("openai", "gpt-4o", Usage(input_tokens=10, cache_write_tokens=5)) is None
    # local Ollama is free, and says so
    assert table.cost("ollama", "qwen3:8b", TURN) == 0.0


def test_config_prices_override_and_extend_the_table():
    cfg = parse(
        {
            "prices": {
                "kimi/kimi-for-coding": {"input": 0.6, "output": 2.5, "cache_read": 0.15},
                "anthropic/claude-sonnet-4-6": {"output": 12.0},
                "my-vllm/*": {"input": 0.0, "output": 0.0, "source": "our own GPUs"},
            }
        }
    )
    table = Gateway.from_config(cfg).prices
    kimi = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=2_000_000)
    assert table.cost("kimi", "kimi-for-coding", kimi) == pytest.approx(0.6 + 0.25 + 0.3)
    assert table.cost("kimi", "kimi-for-coding", TURN) is None  # a cache write, which has no rate given
    overridden = table.get("anthropic", "claude-sonnet-4-6")
    assert overridden is not None and overridden.output == 12.0 and overridden.input == 3.0
    assert overridden.source == "config"
    assert table.cost("my-vllm", "anything", TURN) is None  # no cache rates given
    assert table.cost("my-vllm", "anything", Usage(input_tokens=5, output_tokens=5)) == 0.0
    assert PriceTable.builtin().get("anthropic", "claude-sonnet-4-6").output == 15.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"kimi-for-coding": {"input": 1.0}}, "<provider>/<model>"),
        ({"kimi/kimi-for-coding": 0.6}, "expected table, got float 0.6"),
        ({"kimi/kimi-for-coding": {"inputs": 0.6}}, "unknown key (expected one of input, output"),
        ({"kimi/kimi-for-coding": {"input": -1}}, "expected float >= 0.0, got -1"),
        ({"kimi/kimi-for-coding": {"input": "cheap"}}, "expected float, got str 'cheap'"),
        ({"kimi/kimi-for-coding": {"input": True}}, "expected float, got bool True"),
    ],
)
def test_bad_prices_in_the_config_are_named(prices: dict, message: str):
    with pytest.raises(ConfigError) as caught:
        parse({"prices": prices})
    assert message in str(caught.value) and "prices." in str(caught.value)


def test_every_builtin_price_has_its_source_and_date_and_a_listed_model():
    data = tomllib.loads(files("dragoman").joinpath("data/prices.toml").read_text())
    specs = providers.builtin_specs()
    assert data, "the price table is empty"
    for pid, models in data.items():
        assert pid in specs, pid
        for model, fields in models.items():
            assert model == "*" or model in specs[pid].models, f"{pid}/{model} is not a listed model"
            assert fields["source"] and fields["date"], f"{pid}/{model}"
            assert set(fields) <= {"input", "output", "cache_read", "cache_write", "source", "date"}
            assert {"input", "output"} <= set(fields), f"{pid}/{model} without input or output"
