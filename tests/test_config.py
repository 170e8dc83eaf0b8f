"""Config: the public TOML shape, key resolution (env, then .env files), and bad configs that make
`dragoman serve` exit non-zero naming the file, the key and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dragoman import config
from dragoman.config import ConfigError, parse
from dragoman.gateway import Gateway

CONTRACT = """
[server]
host = "127.0.0.1"
port = 4000
default_provider = "ollama"

[providers.kimi]
base_url = "http://127.0.0.1:9000/coding"
api_key = "sk-kimi-from-file"

[providers.moonshot]
api_key_env = "MY_MOONSHOT"
region = "cn"

[providers.my-vllm]
dialect = "openai"
base_url = "http://127.0.0.1:8000/v1"
models = ["qwen3-coder"]

[aliases]
"claude-sonnet-4-5" = "kimi/kimi-for-coding"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for var in list(os.environ):
        if var.endswith("_API_KEY") or var in ("DRAGOMAN_CONFIG", "MY_MOONSHOT"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config._env_cache.clear()


def test_the_documented_shape_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "dragoman.toml"
    path.write_text(CONTRACT)
    monkeypatch.setenv("MY_MOONSHOT", "sk-moon")
    gw = Gateway.from_config(config.load(str(path)))
    kimi, moon, vllm = gw.providers["kimi"], gw.providers["moonshot"], gw.providers["my-vllm"]
    assert kimi.base_url == "http://127.0.0.1:9000/coding" and kimi.api_key == "sk-kimi-from-file"
    assert moon.base_url == "https://api.moonshot.cn/v1" and moon.api_key == "sk-moon"
    assert vllm.dialect == "openai" and vllm.models == ["qwen3-coder"] and vllm.available
    assert gw.router.resolve("claude-sonnet-4-5").provider.id == "kimi"


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "dragoman.toml").write_text("[server]\nport = 4111\n")
    assert config.load(None).server.port == 4111  # ./dragoman.toml
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 4222\n")
    monkeypatch.setenv("DRAGOMAN_CONFIG", str(other))
    assert config.load(None).server.port == 4222  # $DRAGOMAN_CONFIG beats ./dragoman.toml
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("[server]\nport = 4333\n")
    assert config.load(str(explicit)).server.port == 4333  # --config beats both


def test_no_config_enables_providers_by_key_variable(monkeypatch: pytest.MonkeyPatch):
    gw = Gateway.from_config(config.load(None))
    assert not gw.providers["deepseek"].available and gw.providers["ollama"].available
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-ds")
    gw = Gateway.from_config(config.load(None))
    assert gw.providers["deepseek"].available and gw.providers["deepseek"].api_key == "sk-ds"


def test_key_from_dotenv_file_when_not_in_environment(tmp_path: Path):
    (tmp_path / ".env").write_text('# keys\nexport OPENROUTER_API_KEY="sk-or-dotenv"\n')
    gw = Gateway.from_config(config.load(None))
    assert gw.providers["openrouter"].api_key == "sk-or-dotenv"


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ('[server]\nport = "x"\n', "server.port", "expected int"),
        ("[server]\nprot = 1\n", "server.prot", "unknown key"),
        ('[server]\ndefault_provider = "nope"\n', "server.default_provider", "not a provider"),
        ("[providers.kimi]\nbase_url = 5\n", "providers.kimi.base_url", "expected str"),
        ('[providers.kimi]\nregion = "mars"\n', "providers.kimi.region", "unknown region"),
        ('[providers.moonshot]\nregion = "mars"\n', "providers.moonshot.region", "cn"),
        ('[providers.kimi]\nbase_url = "ftp://x"\n', "providers.kimi.base_url", "http"),
        ('[providers.kimi]\nfavourite_colour = "red"\n', "providers.kimi.favourite_colour", "unknown key"),
        ('[providers.custom]\nbase_url = "http://x/v1"\n', "providers.custom.dialect", "required"),
        ('[providers.custom]\ndialect = "grpc"\nbase_url = "http://x"\n', "providers.custom.dialect", "openai"),
        ('[aliases]\nfoo = "no-slash"\n', "aliases.foo", "<provider>/<model>"),
        ('[aliases]\nfoo = "ghost/model"\n', "aliases.foo", "no provider"),
        ("[bogus]\n", "bogus", "unknown section"),
        ('[server]\nlog_level = "loud"\n', "server.log_level", "'loud' is not one of debug, info, warning"),
        ("[server]\nworkers = 0\n", "server.workers", ">= 1, got 0"),
        ('[server]\napi_keys = ["k", ""]\n', "server.api_keys[1]", "length >= 1"),
        ('[providers.kimi]\ndialect = "openai"\n', "providers.kimi.dialect", "with `surface` (anthropic or openai)"),
        ('[providers.opencode]\ndialect = "anthropic"\n', "providers.opencode.dialect", "`formats`"),
        ('[providers.kimi]\nsurface = "grpc"\n', "providers.kimi.surface", "'grpc' is not one of anthropic, openai"),
        (
            '[providers.custom]\ndialect = "gemini"\nbase_url = "http://x"\n',
            "providers.custom.dialect",
            "unknown dialect 'gemini'",
        ),
        ('[clients.claude-code]\nmodle = "x"\n', "clients.claude-code.modle", "unknown key (expected one of model,"),
        ("[clients.codex]\nmodel = 5\n", "clients.codex.model", "expected str, got int 5"),
        ("[clients.cursor]\n", "clients.cursor", "expected one of claude-code, codex"),
        ('[server]\nusage_store = "mysql://x"\n', "server.usage_store", "postgresql://"),
        ('[server]\nusage_store = "sqlite://"\n', "server.usage_store", "sqlite:///path/usage.db"),
        ("[server]\nusage_retention_days = -1\n", "server.usage_retention_days", "keep everything"),
        ("[server]\nusage_journal_mb = 0\n", "server.usage_journal_mb", "at least 1"),
        ('[server]\nlog_bodies = "yes"\n', "server.log_bodies", "expected bool"),
        ('[prices."kimi/kimi-for-coding"]\ninput = -0.5\n', 'prices."kimi/kimi-for-coding".input', ">= 0.0, got -0.5"),
        ("[server\n", "(syntax)", ""),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, toml: str, key: str, words: str):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        Gateway.from_config(config.load(str(path)))
    text = str(err.value)
    assert str(path) in text and key in text and words in text


def test_serve_exits_nonzero_on_bad_config(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = "4000"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    assert str(path) in proc.stderr and "server.port" in proc.stderr and "expected int" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_explicit_config_is_an_error(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "dragoman", "providers", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_parse_rejects_bool_port():
    with pytest.raises(ConfigError):
        parse({"server": {"port": True}})


def test_reasoning_store_must_be_memory_or_redis():
    with pytest.raises(ConfigError) as err:
        parse({"server": {"reasoning_store": "postgres://x"}})
    assert "server.reasoning_store" in str(err.value)
    assert parse({"server": {"reasoning_store": "redis://127.0.0.1:6379/0"}}).server.reasoning_store.startswith("redis")


def test_unknown_key_lists_each_valid_key_once(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[providers.kimi]\nuser_agnet = "x"\n')
    with pytest.raises(ConfigError) as err:
        Gateway.from_config(config.load(str(path)))
    assert str(err.value).count("user_agent") == 1 and "surface" in str(err.value)


def test_honoured_choices_still_load():
    gw = Gateway.from_config(
        parse({"providers": {"kimi": {"surface": "openai"}, "deepseek": {"dialect": "anthropic"}}})
    )
    assert gw.providers["kimi"].options["surface"] == "openai"
    assert gw.providers["deepseek"].dialect == "anthropic"  # a provider whose hooks honour `dialect`


def test_a_directory_given_as_config_says_so(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "dragoman", "providers", "--config", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "is a directory" in proc.stderr and "no such file" not in proc.stderr


def test_serve_with_a_bad_log_level_is_a_config_error(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlog_level = "verbose"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and "server.log_level" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_ledger_keys_load():
    cfg = parse(
        {
            "server": {
                "usage_store": "postgresql://dragoman@db:5432/usage",
                "usage_retention_days": 30,
                "usage_journal_mb": 64,
                "log_bodies": True,
            },
            "prices": {"kimi/kimi-for-coding": {"input": 0.6, "output": 2.5}},
        }
    )
    assert cfg.server.usage_store == "postgresql://dragoman@db:5432/usage"
    assert (cfg.server.usage_retention_days, cfg.server.usage_journal_mb, cfg.server.log_bodies) == (30, 64, True)
    assert cfg.prices == {"kimi/kimi-for-coding": {"input": 0.6, "output": 2.5}}
    defaults = parse({}).server
    assert (defaults.usage_store, defaults.usage_retention_days, defaults.log_bodies) == ("sqlite", 90, False)


def test_timeouts_have_defaults_and_are_validated():
    cfg = parse({})
    assert (cfg.server.keepalive_timeout, cfg.server.body_timeout, cfg.server.send_timeout) == (60.0, 60.0, 60.0)
    cfg = parse({"server": {"keepalive_timeout": 5, "body_timeout": 2.5, "send_timeout": 30}})
    assert (cfg.server.keepalive_timeout, cfg.server.body_timeout, cfg.server.send_timeout) == (5.0, 2.5, 30.0)
    for key in ("keepalive_timeout", "body_timeout", "send_timeout"):
        for bad in (0, -1, float("inf"), float("nan")):
            with pytest.raises(ConfigError, match=rf"server\.{key}: (expected float > 0\.0|must be a finite)"):
                parse({"server": {key: bad}})
        with pytest.raises(ConfigError, match=rf"server\.{key}: expected float, got str"):
            parse({"server": {key: "60"}})


def test_provider_first_byte_timeout():
    gw = Gateway.from_config(parse({"providers": {"kimi": {"api_key": "k", "first_byte_timeout": 30}}}))
    kimi = gw.providers["kimi"]
    assert (kimi.first_byte_timeout, kimi.timeout, kimi.connect_timeout) == (30.0, 600.0, 10.0)
    assert gw.providers["moonshot"].first_byte_timeout == 120.0
    for bad in (0, -5, float("inf")):
        with pytest.raises(ConfigError, match=r"providers\.kimi\.first_byte_timeout: must be a positive number"):
            Gateway.from_config(parse({"providers": {"kimi": {"first_byte_timeout": bad}}}))
    with pytest.raises(ConfigError, match=r"providers\.kimi\.first_byte_timeout: expected int or float"):
        Gateway.from_config(parse({"providers": {"kimi": {"first_byte_timeout": "2m"}}}))
