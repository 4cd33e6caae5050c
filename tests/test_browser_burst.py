"""Fast key presses on a slider never lose the session (Streamlit's "Cached ForwardMsg MISS")."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from browser import launch, needs_chromium, streamlit_url, wait_for_run  # noqa: E402,F401

pytestmark = needs_chromium
SESSIONS = 5


def test_bursts_of_slider_keys_never_break_the_session(streamlit_url):
    broken = []
    with sync_playwright() as p:
        browser = launch(p)
        for session in range(SESSIONS):
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(streamlit_url)
            wait_for_run(page, 60_000)
            sigma = page.get_by_role("slider", name="Sigma (px)")
            for burst in range(6):  # 15 presses within a few ms, six times, back and forth
                sigma.focus()
                for _ in range(15):
                    page.keyboard.press("ArrowRight" if burst % 2 == 0 else "ArrowLeft", delay=0)
                # the next burst comes as soon as the slider shows this one's value: while the page reruns
                expect(sigma).to_have_value("2.5" if burst % 2 == 0 else "1", timeout=30_000)
            wait_for_run(page, 60_000)
            # the session still answers: one more press reruns the page and the views come back
            sigma.focus()
            page.keyboard.press("ArrowRight")
            wait_for_run(page, 60_000)
            expect(page.get_by_text("Labels (").first).to_be_visible()
            misses = [m for m in console if "MISS" in m or "Failed to process a Websocket message" in m]
            if misses:
                broken.append((session, misses[0]))
            page.close()
        browser.close()
    assert not broken, broken
