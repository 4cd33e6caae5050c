"""The Batch page in a real browser: folder upload, run, download, stop.

Headless Chromium (Playwright) against ``streamlit run app.py``; skipped when
Playwright, Chromium or the shared test images are missing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from browser import ROOT, launch, needs_chromium, streamlit_url, wait_for_run  # noqa: E402,F401
from segmentation import Params, load_plane, segment  # noqa: E402
from testdata import require_shared  # noqa: E402

pytestmark = needs_chromium
ARTIFACTS = ROOT / "artifacts"
VIEWPORT = {"width": 1440, "height": 900}


def open_batch_page(p, url: str):
    browser = launch(p)
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.goto(url)  # the app's entry point first, as a user arrives
    wait_for_run(page)
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Batch").click()
    expect(page.get_by_role("heading", name="Batch")).to_be_visible(timeout=15_000)
    wait_for_run(page)
    return browser, page


def upload_folder(page, folder: Path, n_images: int) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(folder))
    ready = page.get_by_test_id("stAlertContentSuccess")
    expect(ready).to_contain_text(f"{n_images} images", timeout=30_000)
    wait_for_run(page)


def download_zip(page, tmp_path: Path) -> zipfile.ZipFile:
    button = page.get_by_role("button", name="Download all results (zip)")
    with page.expect_download(timeout=30_000) as info:
        button.click()
    path = tmp_path / "results.zip"
    info.value.save_as(path)
    return zipfile.ZipFile(path)


def test_folder_upload_run_and_download(streamlit_url, tmp_path):
    images = require_shared("bbbc007_kc167_dna/images/*.tif")[:5]
    folder = tmp_path / "exp1"
    (folder / "kc167").mkdir(parents=True)
    for f in images:
        shutil.copy(f, folder / "kc167" / f.name)
    (folder / "broken.tif").write_bytes(b"II*\x00" + b"\x08\x00\x00\x00" + b"not an image" * 10)
    (folder / "notes.txt").write_text("Hoechst, 40x, plate 1")

    with sync_playwright() as p:
        browser, page = open_batch_page(p, streamlit_url)
        try:
            upload_folder(page, folder, 6)
            expect(page.get_by_text("1 file will be skipped")).to_be_visible()
            page.get_by_role("button", name="Start batch").click()
            expect(page.get_by_role("button", name="Download all results (zip)")).to_be_visible(timeout=60_000)
            wait_for_run(page)
            expect(page.get_by_text("Files that could not be segmented (1)")).to_be_visible(timeout=15_000)
            expect(page.get_by_text("Skipped files (1)")).to_be_visible()
            expect(page.get_by_role("button", name="Enlarge")).to_have_count(5)

            ARTIFACTS.mkdir(exist_ok=True)
            page.get_by_role("heading", name="Results").evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=ARTIFACTS / "batch_after_run.png")
            page.set_viewport_size({"width": 1440, "height": 2400})  # the whole page
            page.screenshot(path=ARTIFACTS / "batch_after_run_full.png")
            page.set_viewport_size(VIEWPORT)

            with download_zip(page, tmp_path) as z:
                names = z.namelist()
                assert sorted(n for n in names if n.startswith("labels/")) == sorted(
                    f"labels/exp1/kc167/{f.stem}.tif" for f in images)
                for f in images:
                    got = tifffile.imread(io.BytesIO(z.read(f"labels/exp1/kc167/{f.stem}.tif")))
                    assert got.dtype == np.uint32
                    np.testing.assert_array_equal(got, segment(load_plane(f)[0], Params()).labels)
                for fixed in ("measurements.csv", "summary.csv", "settings.json", "segment.py", "errors.csv",
                              "README.txt"):
                    assert fixed in names
                summary = pd.read_csv(z.open("summary.csv"))
                errors = pd.read_csv(z.open("errors.csv"))
            assert len(summary) == 7
            assert summary.set_index("file").loc["exp1/notes.txt", "status"] == "skipped"
            assert errors["file"].tolist() == ["exp1/broken.tif"]
        finally:
            browser.close()


def test_stop_keeps_the_images_done(streamlit_url, tmp_path):
    sources = require_shared("nih3t3_hoechst/images/*.png")
    # enough 1024x1344 images that the batch outlasts the click on Stop on any machine
    n = min(max(40, 10 * (os.cpu_count() or 1)), 200)
    folder = tmp_path / "plate"
    folder.mkdir()
    for i in range(n):
        shutil.copy(sources[i % len(sources)], folder / f"img_{i:03d}.png")

    # settings that take seconds per image (an exact rolling ball), so Stop lands mid-run however fast the rest is
    settings = tmp_path / "slow_settings.json"
    settings.write_text(Params(background="rolling_ball", background_radius=25).to_json())

    with sync_playwright() as p:
        browser, page = open_batch_page(p, streamlit_url)
        try:
            upload_folder(page, folder, n)
            page.get_by_text("From a settings file").click()
            wait_for_run(page)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').last.set_input_files(str(settings))
            expect(page.get_by_text("Rolling ball").first).to_be_visible(timeout=15_000)
            wait_for_run(page)
            page.get_by_role("button", name="Start batch").click()
            expect(page.get_by_text(re.compile(rf"[1-9]\d* of {n} images done"))).to_be_visible(timeout=45_000)
            ARTIFACTS.mkdir(exist_ok=True)
            stop = page.get_by_role("button", name="Stop (keep what is done)")
            stop.scroll_into_view_if_needed()
            page.screenshot(path=ARTIFACTS / "batch_running.png")
            stop.click()
            expect(page.get_by_role("button", name="Download all results (zip)")).to_be_visible(timeout=45_000)
            wait_for_run(page)
            expect(page.get_by_text(re.compile(rf"Stopped after \d+ of {n} images"))).to_be_visible()
            page.get_by_role("heading", name="Results").evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=ARTIFACTS / "batch_stopped.png")

            with download_zip(page, tmp_path) as z:
                labels = [name for name in z.namelist() if name.startswith("labels/")]
                summary = pd.read_csv(z.open("summary.csv"))
                assert z.testzip() is None
            done = (summary["status"] == "ok").sum()
            assert len(summary) == n
            assert 1 <= done < n and len(labels) == done
            assert (summary["status"] == "not run").sum() == n - done
        finally:
            browser.close()


def test_control_and_treated_folders_give_the_per_condition_plot_and_table(streamlit_url, tmp_path):
    images = require_shared("bbbc007_kc167_dna/images/*.tif")[:6]
    folder = tmp_path / "plate1"
    for condition, files in (("control", images[:3]), ("treated", images[3:])):
        (folder / condition).mkdir(parents=True)
        for f in files:
            shutil.copy(f, folder / condition / f.name)
    expected = {c: [segment(load_plane(f)[0], Params()).count for f in files]
                for c, files in (("control", images[:3]), ("treated", images[3:]))}

    with sync_playwright() as p:
        browser, page = open_batch_page(p, streamlit_url)
        try:
            upload_folder(page, folder, 6)
            page.get_by_role("button", name="Start batch").click()
            expect(page.get_by_role("button", name="Download all results (zip)")).to_be_visible(timeout=90_000)
            wait_for_run(page)
            heading = page.get_by_role("heading", name="Conditions")
            expect(heading).to_be_visible(timeout=15_000)
            heading.evaluate("e => e.scrollIntoView({block: 'start'})")
            plots = page.locator('[data-testid="stPlotlyChart"]')
            expect(plots.first).to_be_visible()
            expect(plots.first.locator(".xtick text", has_text="control")).to_have_count(1)
            expect(plots.first.locator(".xtick text", has_text="treated")).to_have_count(1)
            table = page.locator('[data-testid="stDataFrame"]').last
            table.scroll_into_view_if_needed()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "batch_conditions.png")
            with download_zip(page, tmp_path) as z:
                conditions = pd.read_csv(z.open("conditions.csv"))

            # a reload (a new session) finds the finished batch again
            page.reload()
            wait_for_run(page, 60_000)
            if not page.get_by_role("heading", name="Batch").is_visible():
                page.locator('[data-testid="stSidebarNavLink"]', has_text="Batch").click()
            expect(page.get_by_text("Your last batch is back").first).to_be_visible(timeout=30_000)
            expect(page.get_by_role("button", name="Download all results (zip)")).to_be_visible(timeout=30_000)
            expect(page.get_by_role("heading", name="Conditions")).to_be_visible()
        finally:
            browser.close()
    got = conditions.set_index(conditions.columns[0])
    for condition, counts in expected.items():
        assert got.loc[condition, "images"] == 3
        assert got.loc[condition, "nuclei"] == sum(counts)
