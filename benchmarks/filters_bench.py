"""Median and rolling ball: the library call against ours, next to the plain course recipe.

    python benchmarks/filters_bench.py [size]        # size: 2048 (default), or HxW, e.g. 1024x1344

Every time is also given as a ratio to the bare course recipe (gaussian, Otsu,
watershed; no measuring) timed on the same image in the same process. The
median rows check that ours is identical to ``ndi.median_filter``; the rolling
ball rows give the largest difference of the fast variant from the exact one;
the top-hat rows check ours against ``morphology.white_tophat`` with the
'sequence' disk (uint16 image in, float64 out, as in ``subtract_background``).
The last lines are the per-pixel rates that ``segmentation.cost`` uses.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology, restoration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import course_recipe  # noqa: E402
from synthetic import nuclei_image  # noqa: E402

from segmentation._median import median_filter  # noqa: E402
from segmentation._rolling_ball import rolling_ball_fast  # noqa: E402
from segmentation._tophat import white_tophat_disk  # noqa: E402

MEDIAN_SIZES = (3, 5, 9, 15, 25, 16)
BALL_RADII = (25, 50)
TOPHAT_RADII = (25, 50)


def timed(fn, repeats: int = 3):
    """(median seconds, result); a call over 2 s is timed once."""
    t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t
    if first > 2 or repeats == 1:
        return first, result
    times = [first]
    for _ in range(repeats - 1):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def image_of(shape: tuple[int, int]) -> np.ndarray:
    side = max(shape)
    return np.ascontiguousarray(nuclei_image(side)[: shape[0], : shape[1]])


def main(shape: tuple[int, int] = (2048, 2048)) -> None:
    img = image_of(shape)
    px = img.size
    base, _ = timed(lambda: course_recipe(img))
    print(f"{shape[0]}x{shape[1]} uint16 synthetic nuclei (max {int(img.max())} DN)")
    print(f"{'plain course recipe (labels only)':30s} {base * 1000:9.0f} ms  1.00 x recipe\n")
    print(f"{'case':16s} {'library ms':>11s} {'ours ms':>9s} {'lib/recipe':>11s} {'ours/recipe':>12s} "
          f"{'speed-up':>9s}  answer")
    rates = {}
    for k in MEDIAN_SIZES:
        t_lib, ref = timed(lambda: ndi.median_filter(img, size=k))
        t_ours, out = timed(lambda: median_filter(img, k))
        same = "identical" if out.dtype == ref.dtype and np.array_equal(out, ref) else "DIFFERENT"
        print(f"{f'median {k}x{k}':16s} {t_lib * 1000:11.0f} {t_ours * 1000:9.0f} {t_lib / base:11.2f} "
              f"{t_ours / base:12.3f} {t_lib / t_ours:8.1f}x  {same}")
        rates[f"median {k}: ndi ns/px/window px"] = t_lib / px / (k * k) * 1e9
        rates[f"median {k}: ours ns/px"] = t_ours / px * 1e9
    fimg = img.astype(np.float64)
    for r in BALL_RADII:
        t_lib, exact = timed(lambda: restoration.rolling_ball(fimg, radius=r), repeats=1)
        t_ours, fast = timed(lambda: rolling_ball_fast(fimg, r))
        diff = float(np.abs(fast - exact).max())
        print(f"{f'rolling ball {r}':16s} {t_lib * 1000:11.0f} {t_ours * 1000:9.0f} {t_lib / base:11.2f} "
              f"{t_ours / base:12.3f} {t_lib / t_ours:8.1f}x  fast variant: max |diff| {diff:.1f} DN")
        rates[f"rolling ball {r}: skimage ns/px/kernel px"] = t_lib / px / (2 * r + 1) ** 2 * 1e9
        rates[f"rolling ball {r}: fast ns/px"] = t_ours / px * 1e9
    for r in TOPHAT_RADII:
        sequence = morphology.disk(r, decomposition="sequence")
        t_lib, ref = timed(lambda: morphology.white_tophat(fimg, footprint=sequence))
        t_ours, out = timed(lambda: white_tophat_disk(img, r))
        same = "identical" if np.array_equal(out, ref) else "DIFFERENT"
        print(f"{f'top-hat {r}':16s} {t_lib * 1000:11.0f} {t_ours * 1000:9.0f} {t_lib / base:11.2f} "
              f"{t_ours / base:12.3f} {t_lib / t_ours:8.1f}x  {same}")
        rates[f"top-hat {r}: ours ns/px/radius px"] = t_ours / px / r * 1e9
    print("\nrates (for segmentation.cost):")
    for name, v in rates.items():
        print(f"  {name:45s} {v:8.2f}")


def parse_shape(arg: str) -> tuple[int, int]:
    if "x" in arg:
        h, w = arg.lower().split("x")
        return int(h), int(w)
    return int(arg), int(arg)


if __name__ == "__main__":
    main(parse_shape(sys.argv[1]) if len(sys.argv) > 1 else (2048, 2048))
