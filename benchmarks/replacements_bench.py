"""Every hand-written replacement of a library call, head to head with the call it replaces.

    python benchmarks/replacements_bench.py [size]

Each replacement stays only because this shows its win; each is tested equal to
its library call in ``tests/``.  Times are medians on one synthetic 16-bit image
(``synthetic.nuclei_image``), with the bare course recipe timed in the same run
as the reference (ratios to it), and the speed-up over the library call.
The median filter, top-hat and rolling ball are in ``filters_bench.py``, the
measurement table in ``measure_bench.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import os

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, morphology, segmentation
from skimage.feature import peak_local_max as skimage_peaks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import best, course_recipe  # noqa: E402
from synthetic import nuclei_image  # noqa: E402

from segmentation import Params, segment  # noqa: E402
from segmentation._li import threshold_li  # noqa: E402
from segmentation._peaks import _nonzero, peak_local_max  # noqa: E402
from segmentation import _watershed  # noqa: E402
from segmentation._watershed import ObjectTable, watershed_by_object  # noqa: E402
from segmentation.filters import apply_filter  # noqa: E402
from segmentation.display import inner_boundaries, outline_overlay, overlay_png, png_bytes, stretch  # noqa: E402
from segmentation.refine import closing, connected_components, fill_holes, remove_small  # noqa: E402
from segmentation.split import _edt_values, distance_map, find_seeds  # noqa: E402


def main(size: int = 2048) -> None:
    img = nuclei_image(size)
    result = segment(img, Params())
    binary, mask, labels = result.binary, result.mask, result.labels
    distance = ndi.distance_transform_edt(mask)
    markers, _ = find_seeds(distance, mask, Params())
    grey = stretch(img)
    components = connected_components(binary)
    base = best(lambda: course_recipe(img))
    candidates = (distance > 0) & (distance == ndi.maximum_filter(distance, 25))  # a few pixels per nucleus
    objects = ObjectTable(mask)
    boxes = [objects.own(i) for i in range(objects.count)]
    # Li's lower cutoff joins more nuclei: some clumps hold seeds of equal height whose order only the whole
    # image decides; the call that decides it floods only what the queue takes before those seeds
    li_mask = segment(img, Params(threshold_method="li")).mask
    li_distance = ndi.distance_transform_edt(li_mask)
    li_markers, _ = find_seeds(li_distance, li_mask, Params())
    region_args = []
    spied = _watershed._queued_before
    _watershed._queued_before = lambda *args: region_args.append(args) or spied(*args)
    watershed_by_object(li_distance, li_markers, li_mask)
    _watershed._queued_before = spied
    threads = min(4, os.cpu_count() or 1)  # as the Segment page's reruns (pages/common.RERUN_THREADS)
    rows = [
        # its win: an interactive rerun's filter on every core (batch workers use one each)
        (f"Gaussian, sigma 2, {threads} strips", lambda: filters.gaussian(img, sigma=2.0, preserve_range=True),
         lambda: apply_filter(img, "gaussian", sigma=2.0, threads=threads)),
        ("threshold_li, Gaussian-filtered", lambda: filters.threshold_li(result.filtered),
         lambda: threshold_li(result.filtered)),
        # its win: the components are counted once per threshold, so a new min size is a table look-up
        ("remove small objects, a new min size", lambda: morphology.remove_small_objects(binary, max_size=9),
         lambda: remove_small(binary, 10, components)),
        ("closing, disk(1)", lambda: morphology.closing(binary, morphology.disk(1)), lambda: closing(binary, 1)),
        ("closing, disk(5)", lambda: morphology.closing(binary, morphology.disk(5)), lambda: closing(binary, 5)),
        ("fill holes", lambda: ndi.binary_fill_holes(mask), lambda: fill_holes(mask)),
        ("distance transform", lambda: ndi.distance_transform_edt(mask), lambda: distance_map(mask)),
        # its win: OpenCV's call costs less per object than scipy's (the sum of the boxes in distance_map)
        ("distance transform, per object box", lambda: [ndi.distance_transform_edt(b)[b] for b in boxes],
         lambda: [_edt_values(b) for b in boxes]),
        ("peak_local_max (25, 10)", lambda: skimage_peaks(distance, footprint=np.ones((25, 25)), min_distance=10),
         lambda: peak_local_max(distance, 25, 10)),
        ("nonzero of a sparse 2-D mask", lambda: np.transpose(np.nonzero(candidates)), lambda: _nonzero(candidates)),
        ("watershed", lambda: segmentation.watershed(-distance, markers, mask=mask),
         lambda: watershed_by_object(distance, markers, mask)),
        *([("watershed, ties decided by the image", lambda: segmentation.watershed(-li_distance, li_markers,
                                                                                   mask=li_mask),
             lambda: segmentation.watershed(-li_distance, li_markers, mask=spied(*region_args[0])))]
          if region_args else []),
        ("outlines (find_boundaries inner)", lambda: segmentation.find_boundaries(labels, mode="inner"),
         lambda: inner_boundaries(labels)),
        ("overlay PNG (RGB vs palette)", lambda: png_bytes(outline_overlay(grey, labels, result.removed)),
         lambda: overlay_png(grey, labels, result.removed)),
    ]
    print(f"{size}x{size} uint16, {result.count} objects; bare course recipe: {base * 1000:.0f} ms")
    print(f"{'replacement':36s} {'library':>9s} {'ours':>8s} {'lib/recipe':>11s} {'ours/recipe':>12s} {'speed-up':>9s}")
    for name, library, ours in rows:
        t_lib, t_ours = best(library), best(ours)
        print(f"{name:36s} {t_lib * 1000:7.1f}ms {t_ours * 1000:6.1f}ms {t_lib / base:10.3f}x {t_ours / base:11.3f}x"
              f" {t_lib / t_ours:8.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
