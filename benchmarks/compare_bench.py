"""How long the Compare page's filter grid takes at 2048×2048 (16-bit), fresh and after a threshold change.

    python benchmarks/compare_bench.py [size]

The grid is the page's default (no filter; mean and median 3/5/9/15 px;
Gaussian sigma 1/2/3/5 px: 13 distinct cells), computed as the page does: each
cell runs the stage runner on a stage cache of the server's size, two cells
at a time.  After a threshold change the filtered images still in that
cache are reused; threshold, refine and split run again.  The bare course
recipe, timed in the same run, is the reference.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import best, course_recipe  # noqa: E402
from synthetic import nuclei_image  # noqa: E402

from segmentation import Params  # noqa: E402
from segmentation.cache import Cache  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pages.common import new_caches  # noqa: E402
from segmentation.compare import (  # noqa: E402
    DEFAULT_SIGMAS, DEFAULT_WINDOWS, cell_key, compute_cell, filter_grid, slowest_first)


def grid_seconds(image, params: Params, stages: Cache, cells: Cache) -> tuple[float, int]:
    """Wall time of one grid, as the page computes it (slowest cells first, two threads)."""
    grid = [c.params for row in filter_grid(params, DEFAULT_SIGMAS, DEFAULT_WINDOWS) for c in row.cells]
    start = time.perf_counter()
    futures = [cells.submit(("bench", cell_key(grid[i])), compute_cell, image, grid[i], "bench", stages)
               for i in slowest_first(grid, "bench", stages)]
    counts = [f.result().count for f in futures]
    return time.perf_counter() - start, sum(counts)


def main(size: int = 2048) -> None:
    image = nuclei_image(size)
    base = best(lambda: course_recipe(image))
    server = new_caches()  # the server's cache sizes: what it keeps decides what a change recomputes
    stages, cells = server.stages, server.cells
    fresh, _ = grid_seconds(image, Params(), stages, cells)
    after = {}
    for method in ("li", "triangle", "yen"):  # Li iterates over the whole image: the slowest change
        after[method], _ = grid_seconds(image, Params(threshold_method=method), stages, cells)
    print(f"{size}x{size} uint16; bare course recipe {base * 1000:.0f} ms")
    print(f"filter grid, 13 cells, nothing cached:    {fresh:6.2f} s  ({fresh / base:.1f} x recipe)")
    for method, seconds in after.items():
        print(f"filter grid after a change to {method + ':':9s}   {seconds:6.2f} s  ({seconds / base:.1f} x recipe)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
