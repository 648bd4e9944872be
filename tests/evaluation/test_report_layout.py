"""The report's layout in headless Chromium at 1,280 px wide: the headline table in the first
screen, no sideways scroll, compact gallery rows.

Skips when Chromium or Playwright is missing (as ``tests/web/test_browser.py``). Run as
``python -m tests.evaluation.test_report_layout REPORT.html OUT_DIR`` to screenshot a report
(first screen and full page).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from speech2face.evaluation.report import write_report
from tests.browser import CHROMIUM, CHROMIUM_ARGS, skip_without_browser
from tests.evaluation.test_report import write_gallery_media

HERE = Path(__file__).parent
EXAMPLE = HERE / "metrics_example.json"
WIDTH, HEIGHT = 1280, 800
HEADLINE_BOTTOM_PX = 800  # the headline table ends within the first screen
GALLERY_ROW_PX = 250

LAYOUT = """() => {
  const headline = document.querySelector('#headline + table');
  const rows = [...document.querySelectorAll('table.gallery tbody tr')];
  return {
    headline_bottom: headline ? headline.getBoundingClientRect().bottom : null,
    scroll_width: document.documentElement.scrollWidth,
    row_heights: rows.map(r => r.getBoundingClientRect().height),
  };
}"""


@pytest.fixture(scope="module")
def browser():
    skip_without_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def measure(browser: Any, report: Path, shots: Path | None = None) -> dict[str, Any]:
    """The layout's figures of ``report`` opened from disk at 1,280 x 800."""
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    try:
        page.goto(report.resolve().as_uri(), wait_until="load")
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "first_screen.png"))
            page.screenshot(path=str(shots / "full_page.png"), full_page=True)
        return page.evaluate(LAYOUT)
    finally:
        page.close()


def check_layout(layout: dict[str, Any], gallery_rows: int) -> None:
    assert layout["headline_bottom"] is not None, "no headline table"
    assert 0 < layout["headline_bottom"] < HEADLINE_BOTTOM_PX, layout
    assert layout["scroll_width"] <= WIDTH, layout
    assert len(layout["row_heights"]) == gallery_rows
    assert all(h <= GALLERY_ROW_PX for h in layout["row_heights"]), layout["row_heights"]


def test_example_report_layout(browser, tmp_path):
    metrics = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    # A synthetic corpus's gallery: two dozen generator parameters beside the labels.
    for entry in metrics["gallery"]:
        entry["labels"].update({f"param_{i:02d}": f"#{i:06x}" for i in range(24)})
    write_gallery_media(metrics, tmp_path)
    write_report(metrics, tmp_path)
    check_layout(measure(browser, tmp_path / "report.html"), len(metrics["gallery"]))


def test_evaluated_report_layout(browser, voice_run, preprocessed, tmp_path):
    """The report of a real ``s2f-eval`` run on the synthetic corpus."""
    from tests.data.conftest import run_s2f
    from tests.evaluation.conftest import eval_args

    out = tmp_path / "eval"
    checkpoint = voice_run / "checkpoints" / "last.pt"
    args = eval_args(checkpoint, preprocessed, out, "data.split=val", "craniofacial=false")
    result = run_s2f("eval", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    check_layout(measure(browser, out / "report.html"), len(metrics["gallery"]))


if __name__ == "__main__":
    from playwright.sync_api import sync_playwright

    report, shots = Path(sys.argv[1]), Path(sys.argv[2])
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        sys.stdout.write(json.dumps(measure(chromium, report, shots)) + "\n")
        chromium.close()
