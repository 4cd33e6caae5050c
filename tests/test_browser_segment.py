"""The Segment page in headless Chromium: upload a 16-bit TIFF, move a slider, see the count change."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from browser import choose, launch, needs_chromium, open_app, streamlit_url, upload_image, wait_for_run  # noqa: E402,F401
from segmentation import Params, segment  # noqa: E402
from testdata import SAMPLE  # noqa: E402


def objects_shown(page) -> int:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Objects")
    return int(metric.locator('[data-testid="stMetricValue"]').inner_text())


@needs_chromium
def test_upload_16bit_tiff_and_move_min_size_slider(streamlit_url, tmp_path):
    plane = (tifffile.imread(SAMPLE).astype(np.float64) * 16 + 100).astype(np.uint16)  # 12-bit-like DAPI levels
    path = tmp_path / "dapi16.tif"
    tifffile.imwrite(path, plane, compression="zlib")
    expected = segment(plane, Params())
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(streamlit_url)
        wait_for_run(page, 60_000)
        expect(page.get_by_text("sample_nuclei.tif")).to_be_visible()
        assert objects_shown(page) > 0

        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
        expect(page.get_by_text("dapi16.tif").first).to_be_visible(timeout=30_000)
        wait_for_run(page, 60_000)
        expect(page.get_by_text("uint16").first).to_be_visible()
        assert objects_shown(page) == expected.count
        threshold = page.locator('[data-testid="stMetric"]').filter(has_text="Threshold")
        assert float(threshold.locator('[data-testid="stMetricValue"]').inner_text()) == pytest.approx(
            expected.threshold, rel=1e-4)

        slider = page.get_by_role("slider", name="Remove objects smaller than (px)")
        slider.focus()
        page.keyboard.press("End")  # the largest minimum size
        wait_for_run(page, 60_000)
        smaller = segment(plane, Params(min_size=2000)).count
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="Objects")
               .locator('[data-testid="stMetricValue"]')).to_have_text(str(smaller), timeout=30_000)
        assert smaller < expected.count
        assert "Traceback" not in page.content()
        browser.close()


@needs_chromium
def test_manual_cutoff_survives_a_filter_change(streamlit_url):
    # a new filter gives the cutoff slider a new range; the chosen cutoff must stay
    plane = tifffile.imread(SAMPLE)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(streamlit_url)
        wait_for_run(page, 60_000)
        choose(page, "Method", "Manual")
        wait_for_run(page)
        box = page.get_by_role("spinbutton", name="…or type the cutoff")
        box.fill("52")
        box.press("Enter")
        wait_for_run(page)
        expect(box).to_have_value("52")
        page.get_by_role("slider", name="Sigma (px)").focus()
        page.keyboard.press("ArrowRight")  # sigma 1.0 -> 1.1
        wait_for_run(page)
        expected = segment(plane, Params(threshold_method="manual", threshold_value=52.0, sigma=1.1)).count
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="Objects")
               .locator('[data-testid="stMetricValue"]')).to_have_text(str(expected), timeout=30_000)
        expect(box).to_have_value("52")
        assert expected > 0
        browser.close()


ARTIFACTS = __import__("browser").ROOT / "artifacts"


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name)


@needs_chromium
def test_suggest_settings_on_an_uploaded_16bit_image(streamlit_url, tmp_path):
    from segmentation import suggest

    plane = (tifffile.imread(SAMPLE).astype(np.float64) * 16 + 100).astype(np.uint16)
    path = tmp_path / "dapi16.tif"
    tifffile.imwrite(path, plane)
    suggestion = suggest(plane)
    expected = segment(plane, suggestion.params).count
    with sync_playwright() as p:
        browser = launch(p)
        page = open_app(browser, streamlit_url)
        upload_image(page, path)
        page.get_by_role("button", name="Suggest settings for this image").click()
        wait_for_run(page, 60_000)
        expect(page.get_by_text("Suggested from this image")).to_be_visible(timeout=30_000)
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="Objects")
               .locator('[data-testid="stMetricValue"]')).to_have_text(str(expected), timeout=30_000)
        for reason in suggestion.reasons:
            expect(page.get_by_text(reason.split(":")[0][:40]).first).to_be_visible()
        _shot(page, "segment_suggested.png")
        browser.close()


@needs_chromium
def test_a_reload_keeps_the_settings_and_the_image(streamlit_url, tmp_path):
    plane = (tifffile.imread(SAMPLE).astype(np.float64) * 16 + 100).astype(np.uint16)
    path = tmp_path / "tuned.tif"
    tifffile.imwrite(path, plane)
    with sync_playwright() as p:
        browser = launch(p)
        page = open_app(browser, streamlit_url)
        upload_image(page, path)
        slider = page.get_by_role("slider", name="Remove objects smaller than (px)")
        slider.focus()
        for _ in range(40):
            page.keyboard.press("ArrowRight")  # min size 10 -> 50
        wait_for_run(page, 60_000)
        expect(slider).to_have_value("50", timeout=30_000)
        expected = segment(plane, Params(min_size=50)).count
        objects = page.locator('[data-testid="stMetric"]').filter(has_text="Objects").locator(
            '[data-testid="stMetricValue"]')
        expect(objects).to_have_text(str(expected), timeout=30_000)
        assert "min_size=50" in page.url

        page.reload()
        wait_for_run(page, 60_000)
        expect(page.get_by_text("tuned.tif").first).to_be_visible(timeout=30_000)
        expect(page.get_by_role("slider", name="Remove objects smaller than (px)")).to_have_value("50")
        expect(objects).to_have_text(str(expected), timeout=30_000)
        _shot(page, "segment_after_reload.png")
        browser.close()


@needs_chromium
def test_first_screen_at_1440_and_nothing_cut_at_1024(streamlit_url):
    with sync_playwright() as p:
        browser = launch(p)
        for width, height in ((1440, 900), (1024, 768)):
            page = open_app(browser, streamlit_url, width, height)
            expect(page.get_by_text("Labels (").first).to_be_visible(timeout=30_000)
            views = page.locator('[data-testid="stImage"] img')
            boxes = [views.nth(i).bounding_box() for i in range(4)]
            if width == 1440:
                assert all(b["y"] + b["height"] <= height for b in boxes), boxes  # the four views
                histogram = page.locator('[data-testid="stPlotlyChart"]').first.bounding_box()
                assert histogram["y"] < height, histogram  # and the histogram, on the first screen
            # no metric value or label, and no button label, is cut off with an ellipsis
            check = """() => [...document.querySelectorAll(
                    '[data-testid="stMetricValue"] *, [data-testid="stMetricLabel"] *, button p, '
                    + '[data-testid="stMain"] [data-testid="stWidgetLabel"] *')]
                .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
                .map(e => e.textContent)"""
            cut = page.evaluate(check)
            assert cut == [], f"cut off at {width}×{height}: {cut}"
            _shot(page, f"segment_{width}x{height}.png")
            if width == 1024:  # the longest method name in the metric
                choose(page, "Method", "Local (adaptive)")
                wait_for_run(page, 60_000)
                expect(page.get_by_text("Threshold (Local)").first).to_be_visible(timeout=30_000)
                assert page.evaluate(check) == [], "cut off with a local threshold"
            page.close()
        browser.close()
