"""Model discovery: /v1/models in both SDKs' shapes and `dragoman models` list a local Ollama's
models (its recorded /api/tags), briefly cached, a dead Ollama left out, and the declared models,
aliases and routes."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import anthropic
import openai
import pytest

from dragoman import discovery
from tests.conftest import FakeUpstream, GatewayFactory, Reply, Seen
from tests.recorded import raw

OLLAMA_TAGS = "olimorris__codecompanion.nvim/tests/adapters/http/stubs/model_list/ollama.json"
TAGGED = [m["name"] for m in json.loads(raw(OLLAMA_TAGS))["models"]]


def dead_url() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def tags(seen: Seen) -> Reply:
    if seen.path == "/api/tags":
        return Reply(body=raw(OLLAMA_TAGS))
    return Reply(status=404, body=b'{"error":"not found"}')


def config(ollama_url: str) -> dict:
    return {
        "server": {"default_provider": "ollama"},
        "providers": {
            "ollama": {"base_url": ollama_url, "models": ["declared-one"]},
            "kimi": {"api_key": "sk-kimi-secret"},
        },
        "aliases": {"claude-sonnet-4-5": "kimi/kimi-for-coding"},
    }


async def test_openai_list_has_ollama_declared_and_alias_models(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = tags
    gw = await gateway(config(upstream.url))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="unused")
    ids = [m.id async for m in client.models.list()]
    owners = {m.id: m.owned_by async for m in client.models.list()}
    assert TAGGED and all(f"ollama/{name}" in ids for name in TAGGED)
    assert "ollama/declared-one" in ids and "kimi/kimi-for-coding" in ids and "kimi/k2p5" in ids
    assert "claude-sonnet-4-5" in ids and owners["claude-sonnet-4-5"] == "kimi"
    assert owners[f"ollama/{TAGGED[0]}"] == "ollama"
    assert not any(i.startswith("deepseek/") for i in ids)  # a provider without a key lists nothing
    assert len(ids) == len(set(ids))
    assert [s.path for s in upstream.seen] == ["/api/tags"]  # the second listing came from the cache


async def test_anthropic_list_shape_and_paging(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = tags
    gw = await gateway(config(upstream.url))
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused")
    every = [m async for m in client.models.list()]
    ids = [m.id for m in every]
    assert all(m.type == "model" and m.display_name == m.id for m in every)
    assert all(f"ollama/{name}" in ids for name in TAGGED) and "claude-sonnet-4-5" in ids
    paged = [m.id async for m in client.models.list(limit=2)]  # the SDK follows has_more / last_id
    assert paged == ids
    page = await client.models.list(limit=2)
    assert [m.id for m in page.data] == ids[:2] and page.has_more and page.last_id == ids[1]


async def test_a_dead_ollama_is_left_out_quickly(gateway: GatewayFactory):
    gw = await gateway(config(dead_url()))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="unused")
    ids = [m.id async for m in await asyncio.wait_for(client.models.list(), 30)]
    assert "ollama/declared-one" in ids and "kimi/kimi-for-coding" in ids
    assert not any(i.removeprefix("ollama/") in TAGGED for i in ids)


async def test_an_ollama_answering_an_error_is_left_out(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(status=500, body=b'{"error":"broken"}')
    gw = await gateway(config(upstream.url))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="unused")
    ids = [m.id async for m in client.models.list()]
    assert "ollama/declared-one" in ids and not any(i.removeprefix("ollama/") in TAGGED for i in ids)


async def test_the_cache_expires(upstream: FakeUpstream, gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch):
    upstream.default = tags
    monkeypatch.setattr(discovery, "TTL", 0.0)
    gw = await gateway(config(upstream.url))
    await gw.gateway.models.listed(gw.gateway)
    await gw.gateway.models.listed(gw.gateway)
    assert [s.path for s in upstream.seen] == ["/api/tags", "/api/tags"]


async def test_routes_are_listed_when_the_config_has_them(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = tags
    gw = await gateway(config(upstream.url))
    gw.gateway.config.routes = {"coding": {"targets": ["kimi/kimi-for-coding"]}}  # type: ignore[attr-defined]
    listed = await gw.gateway.models.listed(gw.gateway)
    assert [(m.id, m.owner) for m in listed if m.id == "coding"] == [("coding", "dragoman")]


async def test_models_command_lists_the_same(upstream: FakeUpstream, tmp_path: Path):
    upstream.default = tags
    path = tmp_path / "dragoman.toml"
    path.write_text(
        f'[providers.ollama]\nbase_url = "{upstream.url}"\n[providers.kimi]\napi_key = "sk-kimi-secret"\n'
        '[aliases]\n"claude-sonnet-4-5" = "kimi/kimi-for-coding"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dragoman",
        "models",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert all(f"ollama/{name}" in lines for name in TAGGED)
    assert "kimi/kimi-for-coding" in lines and "claude-sonnet-4-5" in lines
