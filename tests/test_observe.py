"""The access log and `/metrics` over real HTTP: what one request adds to each, the labels' bounds,
what is never logged, the JSON format, and the start-up banner of a real `dragoman serve`."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import ClientSession
from prometheus_client.parser import text_string_to_metric_families

from dragoman.observe.logs import ACCESS_LOGGER, JsonFormatter
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway, providers_at
from tests.ops_helpers import HI, free_port, openai_reply, serve, to_toml

SECRET_PROMPT = "the-secret-prompt-text-42"


def config(upstream: FakeUpstream, **server: Any) -> dict[str, Any]:
    cfg = providers_at(upstream, server=server)
    cfg["providers"]["up-openai"]["models"] = ["m"]  # the catalog: other names fold into "other"
    cfg["prices"] = {"up-openai/m": {"input": 2.0, "output": 10.0}}
    cfg["routes"] = {"fast": {"targets": ["up-openai/m"]}}
    return cfg


async def scrape(gw: RunningGateway, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple[Any, ...]], float]:
    async with ClientSession() as http, http.get(gw.url + "/metrics", headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["content-type"].startswith("text/plain")
        text = await resp.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_requests_tokens_cost_and_attempts(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.reply(
        Reply(body=openai_reply(prompt=1000, completion=100)),
        Reply(body=openai_reply(prompt=10, completion=5)),
        Reply(body=openai_reply()),
        Reply(status=502, body=b'{"error": {"message": "bad gateway", "type": "server_error"}}'),
    )
    gw = await gateway(config(upstream))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="x", max_retries=0)
    await client.chat.completions.create(model="up-openai/m", messages=HI)
    await client.chat.completions.create(model="fast", messages=HI)  # a route: counted under its target
    await client.chat.completions.create(model="up-openai/unlisted-model", messages=HI)
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="up-openai/m", messages=HI)
    s = await scrape(gw)
    req = "dragoman_requests_total"
    assert value(s, req, front="openai", provider="up-openai", model="m", status="200") == 2
    assert value(s, req, front="openai", provider="up-openai", model="other", status="200") == 1
    assert value(s, req, front="openai", provider="up-openai", model="m", status="502") == 1
    assert not any(dict(labels).get("model") in ("fast", "unlisted-model") for _, labels in s)  # bounded
    tokens = "dragoman_tokens_total"
    assert value(s, tokens, provider="up-openai", model="m", kind="input") == 1010
    assert value(s, tokens, provider="up-openai", model="m", kind="output") == 105
    cost = value(s, "dragoman_cost_usd_total", provider="up-openai", model="m")
    assert cost == pytest.approx((1010 * 2.0 + 105 * 10.0) / 1e6)
    assert value(s, "dragoman_request_duration_seconds_count", front="openai", provider="up-openai") == 4
    assert value(s, "dragoman_time_to_first_byte_seconds_count", front="openai", provider="up-openai") == 3
    assert value(s, "dragoman_upstream_attempts_total", provider="up-openai", outcome="ok") == 3
    assert value(s, "dragoman_upstream_attempts_total", provider="up-openai", outcome="server_error") == 1
    assert value(s, "dragoman_inflight_requests") == 0
    assert ("dragoman_cooldown_active", (("provider", "up-anthropic"),)) in s
    assert value(s, "dragoman_ledger_store_up") == 1
    assert ("dragoman_ledger_queued_rows", ()) in s and ("dragoman_ledger_dropped_rows_total", ()) in s


async def test_a_cooldown_shows_on_the_gauge(upstream: FakeUpstream, gateway: GatewayFactory):
    upstream.default = Reply(status=503, body=b'{"error": {"message": "down", "type": "server_error"}}')
    cfg = config(upstream)
    cfg["providers"]["up-openai"].update(cooldown_after=1, cooldown=60)
    gw = await gateway(cfg)
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="up-openai/m", messages=HI)
    s = await scrape(gw)
    assert value(s, "dragoman_cooldown_active", provider="up-openai") == 1
    assert value(s, "dragoman_cooldown_active", provider="up-anthropic") == 0


async def test_metrics_can_be_public_or_off(upstream: FakeUpstream, gateway: GatewayFactory):
    gw = await gateway(config(upstream, admin_key="sk-admin-0123456789", metrics_public=True))
    await scrape(gw)  # no key needed
    off = await gateway(config(upstream, metrics=False))
    async with ClientSession() as http, http.get(off.url + "/metrics") as resp:
        assert resp.status == 404 and "server.metrics" in (await resp.json())["error"]["message"]


# ---- the access log -------------------------------------------------------------------------------


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


async def test_one_access_line_per_request_without_keys_or_bodies(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    upstream.reply(Reply(body=openai_reply(prompt=12, completion=3)))
    gw = await gateway(config(upstream, api_keys=["sk-gateway-key-abcdef123456"]))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="sk-gateway-key-abcdef123456", max_retries=0)
    await client.chat.completions.create(model="up-openai/m", messages=[{"role": "user", "content": SECRET_PROMPT}])
    bad = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="sk-wrong-key-0000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):  # refused before routing: a line too
        await bad.chat.completions.create(model="up-openai/m", messages=HI)
    async with ClientSession() as http:
        async with http.get(
            gw.url + "/v1/\x1b[31mnope%0a", headers={"authorization": "Bearer sk-gateway-key-abcdef123456"}
        ) as r:
            assert r.status == 404
        async with http.get(gw.url + "/health"):
            pass
    lines = [r.getMessage() for r in access_lines(caplog)]
    assert len(lines) == 3, lines  # /health is not logged at INFO
    ok, refused, missing = lines
    assert ok.startswith("POST /v1/chat/completions 200 front=openai model=up-openai/m provider=up-openai upstream=m")
    for field in ("latency_ms=", "ttfb_ms=", "in=12", "out=3", "attempts=1", "key=api_keys[0]", "id=", "end=ok"):
        assert field in ok, (field, ok)
    assert refused.startswith("POST /v1/chat/completions 401 ") and "error_type=authentication_error" in refused
    assert "attempts=0" in refused
    assert missing.startswith("GET ") and " 404 " in missing
    assert "\x1b" not in missing and "\\x1b" in missing and "\n" not in missing
    everything = "\n".join(lines)
    assert "sk-gateway-key" not in everything and "sk-wrong-key" not in everything and SECRET_PROMPT not in everything


async def test_the_access_log_in_json(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    upstream.reply(Reply(body=openai_reply(prompt=7, completion=2)))
    gw = await gateway(config(upstream, log_format="json"))
    client = openai.AsyncOpenAI(base_url=gw.openai_url, api_key="x", max_retries=0)
    await client.chat.completions.create(model="up-openai/m", messages=HI)
    record = access_lines(caplog)[-1]
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == ACCESS_LOGGER and line["level"] == "info"
    assert line["method"] == "POST" and line["path"] == "/v1/chat/completions" and line["status"] == 200
    assert line["in"] == 7 and line["out"] == 2 and line["provider"] == "up-openai" and line["attempts"] == 1
    with pytest.raises(openai.BadRequestError):  # a control character in a model name is refused, and logged escaped
        await client.chat.completions.create(model="up-openai/m\x07bell", messages=HI)
    line = json.loads(JsonFormatter().format(access_lines(caplog)[-1]))
    assert line["status"] == 400 and line["model"] == "up-openai/m\\x07bell"  # escaped before it is even JSON


async def test_no_access_line_is_formatted_when_the_logger_drops_it(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    caplog.set_level(logging.WARNING, logger=ACCESS_LOGGER)
    from dragoman.observe import access

    called: list[object] = []
    monkeypatch.setattr(access, "fields_of", lambda o: called.append(o) or {})
    upstream.reply(Reply(body=openai_reply()))
    gw = await gateway(config(upstream))
    await openai.AsyncOpenAI(base_url=gw.openai_url, api_key="x", max_retries=0).chat.completions.create(
        model="up-openai/m", messages=HI
    )
    assert called == [] and access_lines(caplog) == []


# ---- a real `dragoman serve` ----------------------------------------------------------------------


async def test_serve_prints_a_banner_and_logs_requests_at_the_default_level(upstream: FakeUpstream, tmp_path: Path):
    upstream.default = lambda seen: Reply(body=openai_reply())
    cfg = tmp_path / "dragoman.toml"
    cfg.write_text(
        to_toml(
            {
                "server": {"default_provider": "fake", "retries": 0, "api_keys": ["sk-static-key-0123456789"]},
                "providers": {
                    "fake": {"dialect": "openai", "base_url": upstream.url + "/v1", "api_key": "sk-fake-secret-1"}
                },
                "routes": {"smart": {"targets": ["fake/a", "fake/b"]}},
                "aliases": {"quick": "fake/q"},
            }
        )
    )
    served = await serve(cfg, free_port())
    try:
        banner = served.banner
        assert banner.startswith(f"dragoman listening on http://127.0.0.1:{served.port} (1 worker)")
        assert "fake (openai at 127.0.0.1:" in banner and "default fake" in banner
        assert "route smart: fake/a | fake/b (fallback)" in banner and "quick -> fake/q" in banner
        assert "usage: sqlite://" in banner and "1 static key" in banner and "/metrics (admin)" in banner
        assert "sk-static-key" not in banner and "sk-fake-secret" not in banner
        client = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="sk-static-key-0123456789", max_retries=0)
        await client.chat.completions.create(model="smart", messages=HI)
        # requests that end in the same step of the loop: their lines go out together, each whole
        many = await asyncio.gather(
            *(client.chat.completions.with_raw_response.create(model="quick", messages=HI) for _ in range(30))
        )
        ids = {r.headers["x-dragoman-request-id"] for r in many}
    finally:
        assert await served.stop() == 0
    log = served.log()
    lines = [line for line in log.splitlines() if "dragoman.access" in line]
    assert len(lines) == 31 and "POST /v1/chat/completions 200" in lines[0] and "key=api_keys[0]" in lines[0]
    assert sorted(re.search(r" id=(\S+) ", line).group(1) for line in lines[1:]) == sorted(ids)  # type: ignore[union-attr]
    assert all(line.startswith(lines[0][:4]) and line.endswith("end=ok") for line in lines)
    # written straight to the buffered handler, as its text formatter would have made it
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    head = "POST /v1/chat/completions 200 front=openai model=smart provider=fake upstream=a"
    assert re.fullmatch(
        rf"{stamp} INFO dragoman\.access: {head} latency_ms=\d+\.\d ttfb_ms=\d+\.\d .* end=ok", lines[0]
    )
    assert "sk-static-key" not in log and "sk-fake-secret" not in log
