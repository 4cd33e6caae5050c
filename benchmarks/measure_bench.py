"""Time the measurement table against regionprops_table and the plain course recipe, in one process.

    python benchmarks/measure_bench.py [size]

Each row is the median of a few runs, in ms and as a ratio to the bare course
recipe (labels only, no measuring) on the same synthetic image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull
from skimage.measure import grid_points_in_poly, regionprops_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import best, course_recipe, print_ratios  # noqa: E402
from synthetic import nuclei_image  # noqa: E402

from segmentation import Params, segment  # noqa: E402
from segmentation.measure import _Objects, measure_objects  # noqa: E402

# what regionprops_table computes for the default table (the columns named after its properties)
REGIONPROPS = (
    "label", "area", "centroid", "bbox", "intensity_mean", "intensity_min", "intensity_max",
    "perimeter", "equivalent_diameter_area", "axis_major_length", "axis_minor_length",
    "eccentricity", "solidity",
)


def convex_area_per_object(labels: np.ndarray) -> np.ndarray:
    """The alternative to the all-objects envelope: scipy's ConvexHull object by object, on the
    same row-end edge midpoints, rasterised by grid_points_in_poly as convex_hull_image does."""
    obj, y, left, right = _Objects(labels)._rows
    cuts = np.flatnonzero(np.r_[True, obj[1:] != obj[:-1], True])
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        ys, xl, xr = y[a:b], left[a:b], right[a:b]
        y0, x0 = ys.min(), xl.min()
        points = np.concatenate([np.c_[ys + dy, x + dx] for x in (xl, xr) for dy, dx in
                                 ((-0.5, 0), (0.5, 0), (0, -0.5), (0, 0.5))]) - (y0, x0)
        hull = ConvexHull(points)
        shape = (ys.max() - y0 + 1, xr.max() - x0 + 1)
        out.append(np.count_nonzero(grid_points_in_poly(shape, points[hull.vertices])))
    return np.array(out)


def main(size: int = 2048) -> None:
    image = nuclei_image(size)
    labels = segment(image, Params()).labels
    channels = {"ch2": image[::-1].copy(), "ch3": image[:, ::-1].copy()}
    base = best(lambda: course_recipe(image))
    rows = {
        "regionprops_table (same columns)": lambda: regionprops_table(labels, image, properties=REGIONPROPS),
        "measure_objects (default table)": lambda: measure_objects(labels, image),
        "measure_objects + 2 channels": lambda: measure_objects(labels, image, channels=channels),
        "measure_objects + 2 channels, ring 3": lambda: measure_objects(labels, image, channels=channels, ring_width=3),
        "solidity: regionprops_table": lambda: regionprops_table(labels, properties=("solidity",)),
        "solidity: per-object scipy ConvexHull": lambda: convex_area_per_object(labels),
        "solidity: measure_objects": lambda: measure_objects(labels, image, properties=("solidity",)),
    }
    print(f"{size}x{size} uint16, {int(labels.max())} objects")
    print_ratios("bare course recipe (labels only)", base, rows)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
