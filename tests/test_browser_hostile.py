"""Hostile files in a real browser: short clear messages, no traceback, no frozen tab, no markup from names."""

from __future__ import annotations

import json
import re

import pytest
import tifffile

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from browser import ROOT, launch, needs_chromium, streamlit_url, wait_for_run  # noqa: E402,F401
from segmentation.params import SCHEMA_NAME  # noqa: E402
from testdata import SAMPLE  # noqa: E402

pytestmark = needs_chromium
ARTIFACTS = ROOT / "artifacts"
OUTSIDE = "example.invalid"


def open_page(p, url: str, outside: list):
    browser = launch(p)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.on("request", lambda r: outside.append(r.url) if OUTSIDE in r.url else None)
    page.goto(url)
    wait_for_run(page, 60_000)
    return browser, page


def no_traceback(page) -> None:
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "Traceback" not in text and 'File "/' not in text and ".py\", line" not in text


def settings_uploader(page):
    return page.locator('[data-testid="stFileUploaderDropzoneInput"]').last


def test_absurd_pixel_size_markdown_names_and_hostile_settings(streamlit_url, tmp_path):
    plane = tifffile.imread(SAMPLE)
    absurd = tmp_path / f"![x](http:{OUTSIDE}) `tick` <img src=x onerror=alert(1)>.tif"  # no "/" in a file name
    tifffile.imwrite(absurd, plane, ome=True, metadata={"axes": "YX", "PhysicalSizeX": 1e308})
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 5_000 + "]" * 5_000)
    huge = tmp_path / "huge.json"
    keys = ", ".join(f'"k{i}": {i}' for i in range(1_700_000))
    huge.write_text(f'{{"schema": "{SCHEMA_NAME}", "version": 1, "params": {{{keys}}}}}')
    assert huge.stat().st_size > 30e6
    outside: list = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser, page = open_page(p, streamlit_url, outside)
        try:
            # an image whose name is markup and whose pixel size is absurd: opened, the size ignored with a note
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(absurd))
            expect(page.get_by_text("cannot be right, so it is ignored").first).to_be_visible(timeout=30_000)
            wait_for_run(page, 60_000)
            expect(page.get_by_text("pixel size unknown").first).to_be_visible()
            expect(page.get_by_text("onerror=alert(1)").first).to_be_visible()  # the name shown as text
            no_traceback(page)
            page.screenshot(path=ARTIFACTS / "hostile_absurd_pixel_size.png", full_page=True)

            # settings nested 100,000 deep: one short message
            settings_uploader(page).set_input_files(str(nested))
            expect(page.get_by_text("nested far too deeply").first).to_be_visible(timeout=30_000)
            no_traceback(page)
            page.screenshot(path=ARTIFACTS / "hostile_nested_json.png")

            # 50 MB of settings: refused in the browser, the tab stays responsive
            settings_uploader(page).set_input_files(str(huge))
            expect(page.get_by_text("File must be 1.0MB or smaller").first).to_be_visible(timeout=30_000)
            assert page.evaluate("() => 1 + 1") == 2
            wait_for_run(page, 60_000)
            no_traceback(page)
            page.screenshot(path=ARTIFACTS / "hostile_huge_json.png")
        finally:
            browser.close()
    assert outside == [], f"the page fetched from an outside address: {outside}"


def test_batch_names_with_markup_fetch_nothing(streamlit_url, tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    plane = tifffile.imread(SAMPLE)[:128, :128]
    # a folder upload names files by their path: "exp/![x](http:/example.invalid/a.png).tif"
    (folder / "![x](http:" / OUTSIDE).mkdir(parents=True)
    tifffile.imwrite(folder / "![x](http:" / OUTSIDE / "a.png).tif", plane)
    tifffile.imwrite(folder / "=HYPERLINK(1).tif", plane)
    (folder / f"[link](http:{OUTSIDE}) `x`.txt").write_text("notes")
    outside: list = []
    with sync_playwright() as p:
        browser, page = open_page(p, streamlit_url, outside)
        try:
            page.locator('[data-testid="stSidebarNavLink"]', has_text="Batch").click()
            expect(page.get_by_role("heading", name="Batch")).to_be_visible(timeout=15_000)
            wait_for_run(page)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(folder))
            expect(page.get_by_text("2 images").first).to_be_visible(timeout=30_000)
            wait_for_run(page)
            page.get_by_text("1 file will be skipped").click()
            page.get_by_text("Images to segment").click()
            page.get_by_text(re.compile("changed for the results")).click()
            expect(page.get_by_text(f"exp/![x](http:/{OUTSIDE}/a.png).tif →").first).to_be_visible()
            page.get_by_role("button", name="Start batch").click()
            expect(page.get_by_role("button", name="Download all results (zip)")).to_be_visible(timeout=60_000)
            wait_for_run(page)
            no_traceback(page)
            page.screenshot(path=ARTIFACTS / "hostile_batch_names.png", full_page=True)
        finally:
            browser.close()
    assert outside == [], f"the page fetched from an outside address: {outside}"
    assert json.dumps(outside) == "[]"
