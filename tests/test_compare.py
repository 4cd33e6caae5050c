"""segmentation/compare.py: the grids' cells, their computation, the cache and the pictures."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation import Params, segment
from segmentation.cache import Cache
from segmentation.compare import (
    busiest_region,
    cell_key,
    compute_cell,
    crop_box,
    enlarge,
    filter_grid,
    mask_picture,
    outline_picture,
    overview_picture,
    parse_values,
    slowest_first,
    split_grid,
    split_lines,
    threshold_cells,
)
from segmentation.params import AUTO_THRESHOLD_METHODS
from segmentation.stages import filter_stage


# --- each cell is segment() with the cell's settings ------------------------------


def _cells_to_check() -> list[Params]:
    p = Params()
    rows = {r.name: r.cells for r in filter_grid(p, (1.0, 3.0), (5, 9))}
    thresholds = {c.params.threshold_method: c.params for c in threshold_cells(p)}
    splits = split_grid(p, (5, 20), (15,))[0].cells
    return [
        rows["none"][0].params,
        rows["mean"][1].params,  # mean 9 x 9
        rows["gaussian"][1].params,  # sigma 3
        rows["median"][0].params,  # median 5 x 5
        thresholds["li"],
        thresholds["triangle"],
        splits[0].params,  # footprint 15, min_distance 5
        p.replace(fill_holes=True, min_size=40, keep_unseeded=True, exclude_border=True),
    ]


def test_cells_equal_segment(sample):
    cache = Cache(max_bytes=1 << 30, workers=2)
    params_list = _cells_to_check()
    futures = [cache.submit(("cell", cell_key(p)), compute_cell, sample, p, "sample", cache) for p in params_list]
    for params, future in zip(params_list, futures):
        got = future.result()
        ref = segment(sample, params)
        assert got.error is None
        assert np.array_equal(got.mask, ref.mask), params
        assert np.array_equal(got.labels, ref.labels), params
        assert got.threshold == ref.threshold
        assert got.count == ref.count


def test_cells_share_the_stages_they_have_in_common(sample):
    cache = Cache(max_bytes=1 << 30)
    p = Params(filter="median", filter_size=3)
    first = compute_cell(sample, threshold_cells(p)[0].params, "sample", cache)
    filters_kept = [k for k in cache._done if "filter" in k and "threshold" not in k]
    for cell in threshold_cells(p)[1:3]:
        shared = compute_cell(sample, cell.params, "sample", cache)
        alone = compute_cell(sample, cell.params)
        assert np.array_equal(shared.labels, alone.labels) and shared.threshold == alone.threshold
    # one filtered image for every threshold cell
    assert len([k for k in cache._done if "filter" in k and "threshold" not in k]) == len(filters_kept) == 1
    assert first.count > 0


def test_cell_without_cutoff_reports_instead_of_raising():
    # a ramp has a flat histogram: threshold_minimum finds no two maxima
    img = np.tile(np.arange(64, dtype=np.uint16), (64, 1))
    res = compute_cell(img, Params(filter="none", threshold_method="minimum"))
    assert res.error and "minimum" in res.error and res.error[0].isupper()
    assert res.mask is None and res.count == 0


def test_cached_cells_are_read_only(sample):
    cache = Cache(max_bytes=1 << 30)
    res = compute_cell(sample, Params(), "sample", cache)
    assert not res.labels.flags.writeable and not res.mask.flags.writeable


# --- the grids ------------------------------------------------------------------------


def test_filter_grid_rows_and_cells():
    p = Params(threshold_method="li", min_distance=7)
    rows = filter_grid(p, (1.0, 2.0, 3.0, 5.0), (3, 5, 9, 15))
    assert [r.name for r in rows] == ["none", "mean", "gaussian", "median"]
    assert [len(r.cells) for r in rows] == [1, 4, 4, 4]
    assert [c.params.sigma for c in rows[2].cells] == [1.0, 2.0, 3.0, 5.0]
    assert [c.params.filter_size for c in rows[3].cells] == [3, 5, 9, 15]
    assert rows[3].cells[2].label == "9 × 9 px" and rows[2].cells[3].label == "σ = 5 px"
    assert "9 × 9" in rows[1].values_text and "5" in rows[2].values_text
    # everything else is the current settings
    assert all(c.params.threshold_method == "li" and c.params.min_distance == 7 for r in rows for c in r.cells)


def test_threshold_cells_cover_every_automatic_method():
    cells = threshold_cells(Params(filter="median", filter_size=5))
    assert [c.params.threshold_method for c in cells] == list(AUTO_THRESHOLD_METHODS)
    assert all(c.params.filter == "median" for c in cells)


def test_split_grid_uses_watershed_with_peak_seeds():
    rows = split_grid(Params(split="none", seed_method="h_maxima"), (5, 10), (15, 25, 35))
    assert len(rows) == 3 and all(len(r.cells) == 2 for r in rows)
    c = rows[1].cells[0].params
    assert (c.split, c.seed_method, c.footprint, c.min_distance) == ("watershed", "peak_local_max", 25, 5)


def test_cell_key_ignores_unused_settings():
    p = Params(filter="gaussian", sigma=2.0)
    assert cell_key(p.replace(filter_size=9)) == cell_key(p)  # window unused by Gaussian
    assert cell_key(p.replace(sigma=3.0)) != cell_key(p)
    m = Params(filter="median", filter_size=5)
    assert cell_key(m.replace(sigma=4.0)) == cell_key(m)
    assert cell_key(m.replace(filter_size=7)) != cell_key(m)
    assert cell_key(Params(filter="none", sigma=3.0)) == cell_key(Params(filter="none"))
    assert cell_key(p.replace(threshold_value=12.0)) == cell_key(p)  # only used by 'manual'
    assert cell_key(p.replace(min_distance=5)) != cell_key(p)
    assert cell_key(p.replace(pixel_size_um=0.3)) == cell_key(p)  # measurement only


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, "at least one"),
        ("3, x", {}, "'x' is not a number"),
        ("3, 40", {}, "between 1 and 31"),
        ("2.5", {}, "whole numbers"),
        ("1, 2, 3, 4, 5, 6, 7", {}, "at most 6"),
        ("1.25", {"integer": False, "low": 0.1, "high": 10, "step": 0.1}, "steps of 0.1"),
        ("nan", {"integer": False, "low": 0.1, "high": 10}, "between"),
    ],
)
def test_parse_values_explains_bad_input(text, kwargs, message):
    args = {"integer": True, "low": 1, "high": 31, "what": "window sizes", **kwargs}
    with pytest.raises(ValueError, match=message):
        parse_values(text, **args)


def test_parse_values_sorts_and_deduplicates():
    assert parse_values("15 3,9;;3", integer=True, low=1, high=31, what="sizes") == (3, 9, 15)
    assert parse_values(" 0.5, 2 ", integer=False, low=0.1, high=10, what="sigmas", step=0.1) == (0.5, 2.0)


# --- pictures -------------------------------------------------------------------------


def test_crop_box_stays_inside_the_image():
    assert crop_box((100, 200), (50, 100), 32) == (slice(34, 66), slice(84, 116))
    assert crop_box((100, 200), (99, 0), 32) == (slice(68, 100), slice(0, 32))
    assert crop_box((100, 200), (50, 100), 500) == (slice(0, 100), slice(0, 200))


def test_mask_picture_shows_objects_cuts_and_dropped_parts():
    labels = np.array([[1, 1, 2, 2, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 1, 0]], bool)
    assert mask_picture(mask, labels).tolist() == [[255, 0, 255, 255, 110, 0]]
    assert split_lines(labels).sum() == 1


def test_outline_picture_is_rgb_on_the_raw_picture():
    raw = np.full((8, 8), 50, np.uint8)
    labels = np.zeros((8, 8), np.uint16)
    labels[2:6, 2:6] = 1
    pic = outline_picture(raw, labels > 0, labels)
    assert pic.shape == (8, 8, 3) and pic.dtype == np.uint8
    assert tuple(pic[2, 2]) == (255, 220, 0) and tuple(pic[0, 0]) == (50, 50, 50)


def test_enlarge_and_overview():
    assert enlarge(np.array([[1, 2]]), 2).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2]]
    small = np.full((50, 50), 200, np.uint8)  # a 100 x 100 image, every 2nd pixel
    pic = overview_picture(small, (slice(40, 100), slice(0, 80)), 2)
    assert pic.shape == (50, 50, 3)
    assert tuple(pic[49, 10]) == (0, 220, 255)  # bottom edge, at the image border
    assert tuple(pic[20, 10]) == (0, 220, 255)  # top edge of the box
    assert tuple(pic[30, 20]) == (200, 200, 200)  # inside: as is
    assert tuple(pic[5, 5]) == (100, 100, 100)  # outside: dimmed


def test_the_busiest_region_is_where_the_nuclei_are(sample):
    sparse = np.full((600, 800), 100, np.uint16)
    sparse[400:560, 600:760] = sample[:160, :160] + 100  # nuclei in one corner only
    cy, cx = busiest_region(sparse, 128)
    assert 400 <= cy < 560 and 600 <= cx < 760
    assert busiest_region(np.zeros((50, 60)), 16) == (25, 30)


# --- the order the cells start in ---------------------------------------------------


def _grid(method: str = "otsu") -> list[Params]:
    base = Params(threshold_method=method, threshold_value=1000.0 if method == "manual" else None)
    return [c.params for row in filter_grid(base, (1.0, 5.0), (3, 15)) for c in row.cells]


def _label(p: Params) -> str:
    return f"{p.filter} {p.sigma if p.filter == 'gaussian' else p.filter_size}"


def test_before_any_filter_has_run_the_widest_median_starts_first():
    grid = _grid()
    order = [_label(grid[i]) for i in slowest_first(grid, "img", Cache(1 << 30))]
    assert order[:2] == ["median 15", "median 3"]
    assert sorted(order) == sorted(_label(p) for p in grid)


@pytest.mark.parametrize("method", ["li", "otsu"])
def test_after_a_threshold_change_the_float_images_start_first_and_new_filters_before_them(method):
    image = (np.random.default_rng(0).random((64, 64)) * 4000).astype(np.uint16)
    cache = Cache(1 << 30)
    grid = _grid(method)
    for p in grid:
        if not (p.filter == "gaussian" and p.sigma == 5.0):  # its filter has not run yet
            filter_stage(image, p, image_key="img", cache=cache)
    order = [grid[i] for i in slowest_first(grid, "img", cache)]
    assert _label(order[0]) == "gaussian 5.0", "a cell still to filter has the most to do"
    kinds = [filter_stage(image, p, image_key="img", cache=cache)[0].dtype.kind for p in order[1:]]
    assert kinds == sorted(kinds, key=lambda k: k != "f"), f"float images first: {kinds}"
    assert "f" in kinds and "u" in kinds


def test_a_manual_cutoff_costs_the_same_on_every_filtered_image():
    image = (np.random.default_rng(0).random((64, 64)) * 4000).astype(np.uint16)
    cache = Cache(1 << 30)
    grid = _grid("manual")
    for p in grid:
        filter_stage(image, p, image_key="img", cache=cache)
    assert slowest_first(grid, "img", cache) == list(range(len(grid)))
