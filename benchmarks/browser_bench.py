"""What a user waits for on the Segment page at 2048x2048 (16-bit), in headless Chromium.

    python benchmarks/browser_bench.py [size] [images]

Starts ``streamlit run app.py`` and, for each of a few synthetic 16-bit images
(new ones, so nothing is cached), uploads it, raises sigma twice (upstream:
every stage reruns) and then the minimum size four times, by a tenth of its
range each (downstream: refine, split and measure; every step removes more
nuclei but leaves hundreds).  For each key press it reports, timed inside the
page from the key event:

- *count*: the Objects metric shows the new value;
- *settled*: the script run is over and every picture on the page has loaded;

and what happened meanwhile: when the script started and ended, and how much
CPU time Chromium and the server used (here they share the same cores).

Before that, it opens the app four times in a new browser context (a new
session each) and reports how long each waits for its first result on the
built-in sample: the first right after the server started, the others on a
running server.

The plain course recipe on the same image, in the same run, is the baseline.
Needs Chromium (``/usr/bin/chromium``) and Playwright.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tifffile
from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from browser import app_server, launch, wait_for_run  # noqa: E402
from pipeline_bench import best, course_recipe  # noqa: E402
from synthetic import nuclei_image  # noqa: E402

# Records, in page time, the key press, the first change of the object count and the end of the run.
# Light on purpose: the page shares the cores with it, so it reads the page only when something changed
# (the count) or once the script state says the run is over (the pictures), never on every mutation.
WATCH = """() => {
  const w = window.__bench = {key: null, count: null, done: null, start: null, end: null};
  const value = () => {
    const m = [...document.querySelectorAll('[data-testid="stMetric"]')].find(e => e.textContent.includes('Objects'));
    return m ? m.querySelector('[data-testid="stMetricValue"]').textContent : null;
  };
  const start = value();
  const app = document.querySelector('[data-testid="stApp"]');
  let changed = false;
  const body = new MutationObserver(() => { changed = true; });
  body.observe(document.body, {subtree: true, childList: true, characterData: true});
  document.addEventListener('keydown', () => { if (w.key === null) w.key = performance.now(); }, {capture: true, once: true});
  new MutationObserver(() => {
    const state = app.getAttribute('data-test-script-state');
    if (w.key === null) return;
    if (state === 'running' && w.start === null) w.start = performance.now();
    if (state === 'notRunning' && w.start !== null && w.end === null) w.end = performance.now();
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  const poll = setInterval(() => {
    if (w.key === null) return;
    if (w.count === null && changed) { changed = false; if (value() !== start) { w.count = performance.now(); body.disconnect(); } }
    if (w.end !== null && !document.querySelector('[data-testid="stStatusWidget"]')
        && [...document.querySelectorAll('img')].every(i => i.complete)) {
      w.done = performance.now(); clearInterval(poll); body.disconnect();
    }
  }, 4);
}"""


# The first result is on screen: the Objects metric, the six pictures loaded, the script run over.
FIRST_RESULT = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
  const objects = [...document.querySelectorAll('[data-testid="stMetric"]')].some(e => e.textContent.includes('Objects'));
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning' && objects && imgs.length >= 6
         && imgs.every(i => i.complete && i.naturalWidth > 0) && !document.querySelector('[data-testid="stStatusWidget"]');
}"""


def first_result(browser, url: str) -> float:
    """Seconds from opening the app in a new browser context (a new session) to its first result."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function(FIRST_RESULT, timeout=120_000, polling=20)
        return time.perf_counter() - start
    finally:
        context.close()


def cpu_ms(word: str) -> float:
    """CPU time (ms) used so far by the processes whose command line holds `word` (Linux; else 0)."""
    total = 0
    for pid in (p for p in os.listdir("/proc") if p.isdigit()) if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if word.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total * 1000 / os.sysconf("SC_CLK_TCK")


def press(page, slider: str, key: str) -> tuple[float, float | None, float, float, float, float]:
    """Press `key` on the slider named `slider`.

    Returns ms from the key press to: settled, the new count (None if unchanged),
    the script run's start and its end; then the CPU ms Chromium and the
    streamlit server used meanwhile (they share the machine's cores).
    """
    page.get_by_role("slider", name=slider).focus()
    page.evaluate(WATCH)
    browser_cpu, server_cpu = cpu_ms("chromium"), cpu_ms("streamlit")
    page.keyboard.press(key)
    page.wait_for_function("() => window.__bench.done !== null", timeout=120_000)
    browser_cpu, server_cpu = cpu_ms("chromium") - browser_cpu, cpu_ms("streamlit") - server_cpu
    time.sleep(0.3)
    w = page.evaluate("() => window.__bench")
    count = None if w["count"] is None else w["count"] - w["key"]
    return w["done"] - w["key"], count, w["start"] - w["key"], w["end"] - w["key"], browser_cpu, server_cpu


def main(size: int = 2048, images: int = 3) -> None:
    first = nuclei_image(size, seed=100)
    base = best(lambda: course_recipe(first))
    rows: dict[str, list] = {"sigma (upstream)": [], "min size (downstream)": [], "min size, cached": []}
    with tempfile.TemporaryDirectory() as tmp, app_server() as url, sync_playwright() as p:
        browser = launch(p)
        sessions = [first_result(browser, url) for _ in range(4)]  # the sample image, as a new user sees it
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        wait_for_run(page, 120_000)
        for i in range(images):
            path = Path(tmp) / f"nuclei_{i}.tif"
            tifffile.imwrite(path, nuclei_image(size, seed=100 + i))
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
            expect(page.get_by_text(path.name).first).to_be_visible(timeout=60_000)
            wait_for_run(page, 120_000)
            page.get_by_role("button", name="Reset the settings").click()
            wait_for_run(page, 120_000)
            time.sleep(1)
            rows["sigma (upstream)"] += [press(page, "Sigma (px)", "ArrowRight") for _ in range(2)]
            rows["min size (downstream)"] += [press(page, "Remove objects smaller than (px)", "PageUp")
                                              for _ in range(4)]
            # back down through the same values: every stage and picture is cached, so this is what a
            # rerun costs Streamlit and the browser when nothing is computed (the floor of any change)
            rows["min size, cached"] += [press(page, "Remove objects smaller than (px)", "PageDown")
                                         for _ in range(3)]
        browser.close()
    print(f"first result of a new session (built-in sample, running server): {sessions[0]:.2f} s for the first "
          f"session after the server started, then {', '.join(f'{t:.2f}' for t in sessions[1:])} s")
    print(f"{size}x{size} uint16, {images} images; plain course recipe (baseline): {base * 1000:.0f} ms")
    for name, runs in rows.items():
        settled = statistics.median(r[0] for r in runs)
        counts = [r[1] for r in runs if r[1] is not None]
        shown = f"{statistics.median(counts):5.0f} ms" if counts else "  (count unchanged)"
        start, end = statistics.median(r[2] for r in runs), statistics.median(r[3] for r in runs)
        print(f"{name:22s} count shown {shown}   settled {settled:5.0f} ms ({settled / 1000 / base:.2f} x recipe)"
              f"   runs: {[round(r[0]) for r in runs]}")
        print(f"{'':22s} of which: key to script start {start:.0f} ms, script end {end:.0f} ms, "
              f"pictures loaded {settled - end:.0f} ms after it")
        print(f"{'':22s} CPU meanwhile: Chromium {statistics.median(r[4] for r in runs):.0f} ms, "
              f"server {statistics.median(r[5] for r in runs):.0f} ms, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
