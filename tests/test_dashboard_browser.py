"""The dashboard in a real browser: a gateway (SQLite, then PostgreSQL) takes real traffic from the
official SDKs to a fake upstream, some of it failing; Chromium opens /ui and must show those
requests, draw the charts, list the providers with their percentiles, and never run a model name
as markup. A screenshot of each run is kept under tests/artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dragoman.store.db import open_database
from dragoman.store.keys.admin import create_key, revoke_key
from dragoman.store.ledger import find
from tests.browser import Browser, chromium
from tests.dashboard_helpers import ADMIN_KEY, GATEWAY_KEY, MARKUP_MODEL, config, make_traffic, with_admin_key
from tests.ledger_helpers import eventually

# pixels of a canvas that are drawn in colour (series strokes; axes, grid and text are grey)
COLOURED_PIXELS = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
  }
  return n;
}"""


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/usage.db"
    return str(request.getfixturevalue("pg_url"))


async def make_keys(store_url: str) -> str:
    """Two keys in the store, as `dragoman keys create` makes them: team-a (returned) and a revoked one."""
    db = await open_database(store_url)
    try:
        _, token = await create_key(
            db, "team-a", budget_usd=10.0, period="month", rpm=600, tpm=10_000_000, models=["up-*"]
        )
        await create_key(db, "ci")
        await revoke_key(db, "ci")
    finally:
        await db.close()
    return token


async def sign_in(browser: Browser, url: str, key: str = GATEWAY_KEY, needs: str = "server.api_keys") -> None:
    page = browser.page
    await page.goto(url + "/ui")
    await page.wait_for_selector("#login-form", state="visible")
    assert needs in await page.text_content("#login-hint")
    await page.fill("#login-key", "not-the-key")
    await page.click("#login-form button")
    # predicates are functions: Playwright polls a plain expression with eval, which the page's CSP refuses
    await page.wait_for_function("() => document.getElementById('login-error').textContent.includes('refused')")
    assert await page.is_hidden("#board")
    await page.fill("#login-key", key)
    await page.click("#login-form button")
    await page.wait_for_selector("#board", state="visible")
    # the key lives in this tab's sessionStorage, never in the address
    assert key not in page.url
    assert await page.evaluate("sessionStorage.getItem('dragoman.dashboard.key')") == key


async def test_dashboard_shows_the_traffic_just_made(store_url: str, gateway, upstream, tmp_path: Path):
    on_sqlite = store_url.startswith("sqlite")
    # SQLite: behind server.api_keys, no gateway keys made; PostgreSQL: gateway keys (the traffic spends
    # team-a's), the dashboard behind the admin key
    server: dict[str, Any] = {"usage_store": store_url}
    if on_sqlite:
        server["api_keys"] = [GATEWAY_KEY]
        key = GATEWAY_KEY
        running = await gateway(config(upstream, **server))
    else:
        key = await make_keys(store_url)
        running = await gateway(with_admin_key(config(upstream, **server)))
    traffic = await make_traffic(running, upstream, key=key)
    sink = find(running.gateway)
    assert sink is not None
    await eventually(lambda: sink.stats()["written"] >= traffic.requests, what="the ledger to hold the traffic")

    async with chromium(tmp_path / "chromium-profile") as browser:
        page = browser.page
        if on_sqlite:
            await sign_in(browser, running.url)
        else:
            await sign_in(browser, running.url, ADMIN_KEY, "server.admin_key")
        await page.select_option("#since", "15m")
        await page.wait_for_function(
            "(n) => document.querySelectorAll('#feed tbody tr[data-request-id]').length >= n", arg=traffic.requests
        )
        await page.wait_for_function("() => Number(document.body.dataset.refreshed || 0) >= 1")

        # the live feed: every request, models as the client named them, providers, failures marked
        feed = await page.inner_text("#feed tbody")
        for text in ("up-openai/gpt-dash", "up-anthropic/claude-dash", "openai/gpt-4o", MARKUP_MODEL):
            assert text in feed
        assert "up-openai" in feed and "up-anthropic" in feed
        statuses = await page.eval_on_selector_all("#feed tbody td.bad", "cells => cells.map(c => c.textContent)")
        assert sorted(statuses) == ["400", "429", "502"]
        # the markup in a model name stayed text: no element made, no script run
        assert await page.evaluate("document.querySelectorAll('main img').length") == 0
        assert await page.evaluate("window.__xss") is None

        # the providers table: each provider that took traffic, its error rate and percentiles
        await page.wait_for_selector("#providers tr[data-provider='up-openai']")
        rows = await page.eval_on_selector_all(
            "#providers tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        table = {r[0]: r for r in rows}
        assert set(table) == {"up-openai", "up-anthropic", "(not routed)"}
        assert table["up-openai"][1:4] == ["5", "1", "20%"]
        assert table["up-anthropic"][1:4] == ["2", "1", "50%"]
        for provider in ("up-openai", "up-anthropic"):
            assert all(cell.endswith("ms") for cell in table[provider][4:10]), table[provider]

        # the totals
        cards = await page.inner_text("#totals")
        assert f"Requests\n{traffic.requests}" in cards
        assert f"${traffic.cost:.2g}" in cards  # the page shows two significant digits below a cent

        # charts: three canvases, each with series drawn in colour, one line per provider
        canvases = await page.query_selector_all(".chart canvas")
        assert len(canvases) == 3
        for canvas in canvases:
            assert await canvas.evaluate(COLOURED_PIXELS) > 50
        legend = await page.eval_on_selector_all(
            "#chart-requests .u-legend .u-series .u-label", "labels => labels.map(l => l.textContent)"
        )
        assert set(legend) >= {"up-openai", "up-anthropic"}

        # by model: the client-chosen names become legend text too, never markup
        await page.select_option("#by", "model")
        await page.wait_for_function(
            "(name) => [...document.querySelectorAll('#chart-requests .u-legend .u-label')]"
            ".some(l => l.textContent === name)",
            arg="up-openai/" + MARKUP_MODEL,
        )
        assert await page.evaluate("document.querySelectorAll('main img').length") == 0

        keys = await page.inner_text("#keys")
        if on_sqlite:
            assert "No gateway keys." in keys
        else:
            assert "team-a" in keys and "of $10.00" in keys and "ci" in keys and "revoked" in keys
            assert key not in await page.content()
        assert "No provider or key is cooling down." in await page.inner_text("#cooldowns")

        await browser.screenshot(f"dashboard-{'sqlite' if on_sqlite else 'postgres'}.png")
        assert browser.problems == []


async def test_with_the_store_down_the_page_says_so_and_shows_what_it_can(gateway, upstream, tmp_path: Path):
    # no gateway keys: with them on, a store down from the start leaves them unknown and every request refused
    store = "postgresql://root:pw-secret@127.0.0.1:1/test"
    running = await gateway(config(upstream, usage_store=store, virtual_keys=False))
    async with chromium(tmp_path / "chromium-profile") as browser:
        page = browser.page
        await page.goto(running.url + "/ui/")
        await page.wait_for_selector("#banner", state="visible", timeout=60_000)
        assert "the usage store is unavailable" in await page.inner_text("#banner")
        # this instance's own state needs no store: cooldowns and the footer still show
        await page.wait_for_function("() => document.getElementById('status').textContent.includes('DOWN')")
        assert "No provider or key is cooling down." in await page.inner_text("#cooldowns")
        assert "pw-secret" not in await page.content()
        await browser.screenshot("dashboard-store-down.png")
    # the only complaints are the 503s the page was told about
    assert browser.problems and all("503" in p for p in browser.problems), browser.problems
