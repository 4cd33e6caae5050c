"""Helpers for real-browser tests: a Streamlit server and headless Chromium.

Import it from a browser test (it is a module, not a conftest)::

    import pytest
    pytest.importorskip("playwright.sync_api")
    from browser import CHROMIUM, app_server, launch, wait_for_run, needs_chromium

    @needs_chromium
    def test_something():
        with app_server() as url, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(url + "/batch")
            wait_for_run(page)

or use the ``streamlit_url`` fixture (``from browser import streamlit_url``) for
one server per test module.  The server is started from the repository root,
so it reads ``.streamlit/config.toml`` as a user's ``streamlit run app.py`` does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((c for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if c and os.path.exists(c)), None)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (/usr/bin/chromium or chromium on PATH)")

__all__ = ["ROOT", "CHROMIUM", "needs_chromium", "free_port", "app_server", "streamlit_url", "launch", "wait_for_run",
           "choose"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(script: str = "app.py", timeout: float = 30.0, env: dict | None = None) -> Iterator[str]:
    """Run ``streamlit run <script>`` headless on a free port; yield its base URL.

    The server log is printed when the block raises (a failing test), and the
    server is always stopped (by its own process id) at the end.
    """
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    cmd = [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           # files edited while a test runs must not change the app under test
           "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    failed = True
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {proc.returncode} before it was ready")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
        failed = False
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if failed:
            log.seek(0)
            print(f"--- streamlit server log ({' '.join(cmd)}) ---\n{log.read()}", file=sys.stderr)
        log.close()


@pytest.fixture(scope="module")
def streamlit_url() -> Iterator[str]:
    """Base URL of the app served for the whole test module (skips without Chromium)."""
    if CHROMIUM is None:
        pytest.skip("no Chromium found (/usr/bin/chromium or chromium on PATH)")
    with app_server() as url:
        yield url


def launch(p, **kwargs):
    """Headless Chromium from the system (no ``playwright install`` needed)."""
    if CHROMIUM is None:
        pytest.skip("no Chromium found (/usr/bin/chromium or chromium on PATH)")
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, **kwargs)


def wait_for_run(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished the current script run (timeout in ms)."""
    from playwright.sync_api import expect

    app = page.locator('[data-testid="stApp"]')
    try:  # the rerun may not have started yet
        expect(app).to_have_attribute("data-test-script-state", "running", timeout=2000)
    except AssertionError:
        pass
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=timeout)


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the sidebar's selectbox `label`, typing it first as a user may: a long list shows only
    the options that fit, so an option further down is not on the page until the list is filtered."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text=label) \
        .locator("input").click()
    page.keyboard.type(option.split(" (")[0])
    page.get_by_role("option", name=option).click()


def open_app(browser, url: str, width: int = 1440, height: int = 900):
    """A new tab on the app's first page, its first run over."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    wait_for_run(page, 60_000)
    return page


def upload_image(page, path) -> None:
    """Open `path` with the Segment page's uploader and wait for its result."""
    from playwright.sync_api import expect

    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
    expect(page.get_by_text(Path(path).name).first).to_be_visible(timeout=30_000)
    wait_for_run(page, 60_000)
