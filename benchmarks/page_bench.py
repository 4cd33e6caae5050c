"""Rerun time of the Segment page at 2048x2048 (16-bit), measured with AppTest.

    python benchmarks/page_bench.py [size]

Reports the median time of a full script rerun after a downstream change (min size:
refine + split + measure + display) and an upstream one (sigma: everything), next to the
plain course recipe on the same image in the same run (the baseline ratio).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

import tifffile
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import course_recipe  # noqa: E402
from synthetic import nuclei_image  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def main(size: int = 2048, repeats: int = 5) -> None:
    img = nuclei_image(size)
    buf = io.BytesIO()
    tifffile.imwrite(buf, img)
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.file_uploader(key="upload_0").set_value(("big.tif", buf.getvalue(), "image/tiff")).run()
    assert not at.exception, at.exception
    print(f"{size}x{size} uint16, {at.metric[0].value} objects")

    def timed(widget: str, values: list) -> list[float]:
        times = []
        for v in values:
            at.sidebar.slider(key=widget).set_value(v)
            t = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t)
            assert not at.exception, at.exception
        return times

    recipe = []
    for _ in range(3):
        t = time.perf_counter()
        course_recipe(img)
        recipe.append(time.perf_counter() - t)
    base = statistics.median(recipe)
    # nuclei are 200-1250 px: each step removes more of them, so the mask really changes
    counts = []
    min_size = []
    for v in [250 + 150 * i for i in range(repeats)]:
        min_size += timed("w_min_size", [v])
        counts.append(at.metric[0].value)
    if size >= 1024:
        assert len(set(counts)) == len(counts), f"the count must change at every step: {counts}"
    tiny_step = timed("w_min_size", [250 + 150 * repeats + 1 + i for i in range(repeats)])
    sigma = timed("w_sigma", [1.1 + 0.1 * i for i in range(repeats)])
    unchanged = timed("w_sigma", [1.1 + 0.1 * (repeats - 1)] * 3)
    print(f"plain course recipe (baseline):  {base * 1000:7.0f} ms")
    for name, ts in (("min size change (downstream)", min_size),
                     ("min size +1 px (mask may not change)", tiny_step), ("sigma change (upstream)", sigma),
                     ("rerun, nothing changed", unchanged)):
        m = statistics.median(ts)
        print(f"{name:32s} {m * 1000:7.0f} ms  ({m / base:.2f} x recipe)  runs: {[round(x * 1000) for x in ts]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
