"""Headless Chromium (Debian's package) driven by Playwright, for the `browser` tests."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

__all__ = ["SCREENSHOTS", "browser_page", "dismiss_welcome", "expect", "wait_for_http"]

# Screenshots land here for a person to look at after a run.
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".runs" / "screenshots"

# No network here or in CI: Chromium's background services would only fail and retry.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def browser_page(width: int = 1400, height: int = 900) -> Iterator[Page]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is not installed (.ci/run installs Debian's chromium)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def dismiss_welcome(page: Page, timeout_ms: float = 10_000) -> None:
    """Dagster's first-visit community dialog covers the page; skip it when it shows (within
    `timeout_ms`: once skipped, a browser is not shown it again)."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=timeout_ms)
    except Exception:
        pass


def wait_for_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
