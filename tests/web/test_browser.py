"""The page in a real headless Chromium (Debian's, driven by Playwright): a dropped file and
a recording become a portrait, a bad file a message, the gallery draws its portraits, and
nothing is requested from anywhere but the server.

Skipped when Chromium or Playwright is missing, except under CI (``CI`` set), where that
is a failure: ``.ci/run`` installs Chromium. Screenshots are saved in each test's
temporary directory (``page.png``, ``gallery.png``).
"""

from __future__ import annotations

import pytest

from tests.browser import CHROMIUM, skip_without_browser
from tests.browser import CHROMIUM_ARGS as BASE_ARGS
from tests.web.conftest import write_voice

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A microphone that plays a file, allowed without asking.
CHROMIUM_ARGS = [*BASE_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
WAIT_MS = 60_000
PORTRAIT_SHOWN = """() => {
  const img = document.getElementById('portrait');
  return !document.getElementById('result').hidden && img.complete && img.naturalWidth > 0;
}"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    skip_without_browser()
    from playwright.sync_api import sync_playwright

    microphone = write_voice(tmp_path_factory.mktemp("microphone") / "mic.wav", 4.0, seed=5)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone}"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the server; afterwards, checks that it requested nothing from
    elsewhere and raised no script error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    page.goto(server.url)
    page.wait_for_selector("#status.ready", timeout=WAIT_MS)
    yield page
    context.close()
    outside = [url for url in requests if not url.startswith((server.url, "data:", "blob:"))]
    assert outside == [], f"the page requested {outside}"
    assert requests, "no requests were seen"
    # The bad-file test's answer is logged by Chromium as a failed resource (422).
    assert [e for e in errors if "status of 422" not in e] == []


def test_a_dropped_file_becomes_a_portrait(page, voices, tmp_path):
    page.set_input_files("#file", str(voices / "long.wav"))
    page.wait_for_function(PORTRAIT_SHOWN, timeout=WAIT_MS)
    portrait = page.locator("#portrait")
    assert portrait.is_visible()
    assert portrait.evaluate("img => img.naturalWidth") == 224
    box = portrait.bounding_box()
    assert box["width"] == 224 and box["height"] == 224
    assert page.locator("#spectrogram").evaluate("img => img.naturalWidth") > 400
    assert page.locator("#gender").inner_text() in ("male", "female")
    assert "year" in page.locator("#age").inner_text()
    assert "long.wav" in page.locator("#summary").inner_text()
    assert page.locator("#message").is_hidden()
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    page.locator("#upscale").click()
    assert page.locator("#zoom-img").evaluate("img => img.naturalWidth") == 448
    page.locator("#zoom-close").click()


def test_a_bad_file_shows_its_message(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio\n" * 50)
    page.set_input_files("#file", str(bad))
    message = page.locator("#message")
    message.wait_for(state="visible", timeout=WAIT_MS)
    assert "notes.txt" in message.inner_text()
    assert page.locator("#busy").is_hidden()


def test_a_recording_from_the_microphone(page):
    page.locator("#record").click()
    page.wait_for_selector("#stop:not([hidden])", timeout=WAIT_MS)
    page.wait_for_function(
        "() => parseFloat(document.getElementById('rec-time').textContent.split(' ')[1]) > 2.5",
        timeout=WAIT_MS,
    )
    page.locator("#stop").click()
    page.wait_for_function(PORTRAIT_SHOWN, timeout=WAIT_MS)
    summary = page.locator("#summary").inner_text()
    assert summary.startswith("recording.webm: "), summary  # Chromium records WebM Opus


def test_the_gallery_is_one_click_away(page, tmp_path):
    page.locator("#tab-gallery").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.example .frame img').length == 4", timeout=WAIT_MS
    )
    assert page.locator(".example").count() == 2
    page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)
    page.locator(".example button").first.click()
    page.wait_for_function(PORTRAIT_SHOWN, timeout=WAIT_MS)
    assert "speaker spk0" in page.locator("#summary").inner_text()
