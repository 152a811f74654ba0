"""A real browser for tests: Debian's Chromium, driven by playwright (nothing is downloaded at test time).

`scripts/ensure-chromium` installs it (CI runs it). Without it a local run skips the browser tests with
that hint; under CI they fail instead, so a missing browser never passes as green.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.waiting import wait_until

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[object]:
    """A launched browser (playwright's async Browser), closed afterwards."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before a browser starts
        message = f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium (or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


# Run in the page before its own script: remembers when each caption state (partial/final, name, text)
# first appeared, by the page's clock (Date.now(), epoch milliseconds like the server's time.time()).
CAPTION_RECORDER = """
window.__seen = [];
(() => {
  const known = new Set();
  const record = () => {
    for (const line of document.querySelectorAll("#captions .line")) {
      const state = {
        final: !line.classList.contains("partial"),
        name: line.querySelector(".name").textContent,
        text: line.querySelector(".text").textContent,
      };
      const key = JSON.stringify(state);
      if (!known.has(key)) {
        known.add(key);
        window.__seen.push({ ...state, t: Date.now() });
      }
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(record).observe(document.body, {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
  });
})();
"""


async def wait_until_true(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript expression until it is truthy. (playwright's wait_for_function evaluates a string,
    which the overlay's Content-Security-Policy rightly refuses; evaluate() goes through the debugger.)"""
    await wait_until(lambda: page.evaluate(expression), timeout, what=f"the page to make this true: {expression}")
