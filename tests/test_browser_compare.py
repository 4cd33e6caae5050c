"""The Compare page in a real browser: a sparse image opens on the region that holds the nuclei."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from browser import ROOT, launch, needs_chromium, open_app, streamlit_url, upload_image, wait_for_run  # noqa: E402,F401
from testdata import SAMPLE  # noqa: E402

pytestmark = needs_chromium


def test_a_sparse_image_opens_on_its_nuclei(streamlit_url, tmp_path):
    sample = tifffile.imread(SAMPLE)
    sparse = np.full((1200, 1600), 20, np.uint16)
    sparse[900:1100, 1300:1500] = sample[100:300, 100:300] + 20  # nuclei in the lower right corner only
    path = tmp_path / "sparse.tif"
    tifffile.imwrite(path, sparse)
    with sync_playwright() as p:
        browser = launch(p)
        for width, height in ((1440, 900), (1024, 768)):
            page = open_app(browser, streamlit_url, width, height)
            upload_image(page, path)
            page.locator('[data-testid="stSidebarNavLink"]', has_text="Compare").click()
            expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=15_000)
            wait_for_run(page, 120_000)
            caption = page.get_by_text(re.compile(r"Cyan square: x \d+–\d+, y \d+–\d+"))
            expect(caption).to_be_visible(timeout=60_000)
            x0, x1, y0, y1 = map(int, re.findall(r"\d+", caption.inner_text())[:4])
            assert x0 < 1500 and x1 > 1300 and y0 < 1100 and y1 > 900, (x0, x1, y0, y1)
            (ROOT / "artifacts").mkdir(exist_ok=True)
            page.screenshot(path=ROOT / "artifacts" / f"compare_sparse_{width}x{height}.png")
            page.close()
        browser.close()
