"""A real Chromium (Debian's package) driven by Playwright, for the dashboard's tests.

Never `playwright install`: the browser is the system's, started with the flags this machine needs
(no sandbox as root, no GPU, no background traffic to a network that is closed) and a fresh profile.
A missing browser fails the test with what to install; it is never skipped."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("DRAGOMAN_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"  # git-ignored: screenshots of what the tests saw
SAVED: list[Path] = []  # this run's screenshots, listed at the end of the run (conftest)


@dataclass
class Browser:
    page: Any  # playwright.async_api.Page
    problems: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, CSP refusals

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        await self.page.screenshot(path=str(path), full_page=True)
        SAVED.append(path)
        print(f"\nscreenshot: {path}")
        return path


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: the dashboard's browser test needs it "
            "(apt-get install -y chromium; scripts/test installs it, DRAGOMAN_TEST_CHROMIUM names another)",
            pytrace=False,
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile),  # a new, empty --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1440, "height": 1000},
            timeout=120_000,
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(30_000)
            browser = Browser(page)
            page.on("pageerror", lambda exc: browser.problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: msg.type == "error" and browser.problems.append(f"console: {msg.text}"))
            yield browser
        finally:
            await context.close()
