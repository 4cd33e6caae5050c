"""Time each pipeline stage against the plain course recipe on the same image.

    python benchmarks/pipeline_bench.py [size]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import label
from skimage.morphology import closing, disk, remove_small_objects
from skimage.segmentation import watershed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import nuclei_image  # noqa: E402

from segmentation import Params, segment  # noqa: E402
from segmentation.filters import filter_image  # noqa: E402
from segmentation.measure import measure_objects  # noqa: E402
from segmentation.split import split_objects  # noqa: E402
from segmentation.stages import keep_objects  # noqa: E402
from segmentation.refine import refine_mask  # noqa: E402
from segmentation.threshold import threshold_image  # noqa: E402


def course_recipe(image: np.ndarray) -> np.ndarray:
    smooth = gaussian(image, sigma=1)
    mask = closing(remove_small_objects(smooth > threshold_otsu(smooth), max_size=9), disk(1))
    distance = ndi.distance_transform_edt(mask)
    coords = peak_local_max(distance, footprint=np.ones((25, 25)), min_distance=10)
    peaks = np.zeros(distance.shape, bool)
    peaks[tuple(coords.T)] = True
    return watershed(-distance, label(peaks), mask=mask)


def best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def print_ratios(baseline: str, base: float, rows: dict) -> None:
    """Time each of `rows` (name -> function) and print it next to the baseline, as a ratio to it."""
    width = max(len(baseline), *map(len, rows)) + 2
    print(f"{baseline:{width}s} {base * 1000:8.1f} ms  1.000 x")
    for name, fn in rows.items():
        t = best(fn)
        print(f"{name:{width}s} {t * 1000:8.1f} ms  {t / base:.3f} x")


def main(size: int = 2048) -> None:
    img = nuclei_image(size)
    p = Params()
    base = best(lambda: course_recipe(img))
    filtered = filter_image(img, p)
    th = threshold_image(filtered, p)
    mask = refine_mask(th.mask, p)
    split = keep_objects(split_objects(mask, p), p)
    stages = {
        "filter": lambda: filter_image(img, p),
        "threshold": lambda: threshold_image(filtered, p),
        "refine": lambda: refine_mask(th.mask, p),
        "split": lambda: keep_objects(split_objects(mask, p), p),
        "measure": lambda: measure_objects(split.labels, img),
        "segment() total": lambda: segment(img, p),
    }
    print(f"{size}x{size} uint16, {int(split.labels.max())} objects")
    print_ratios("plain course recipe (no measure)", base, stages)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
