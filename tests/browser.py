"""Headless Chromium for the tests that look at pages (the web page, the report): where it
is, how it is started, and a module fixture that skips without it (fails under CI, whose
``.ci/run`` installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet on the network: without the background-networking flags Chromium
# dials Google's services at start, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_problem() -> str | None:
    """Why no browser test can run here, or ``None``."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


def skip_without_browser() -> None:
    """Skip the calling test when Chromium or Playwright is missing; under CI, fail."""
    problem = browser_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}: CI runs the browser tests (.ci/run installs Chromium)")
        pytest.skip(problem)
