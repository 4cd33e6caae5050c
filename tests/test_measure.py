"""Measure: every regionprops column equals regionprops_table, on the sample, real and random labels.

The whole-image passes of ``measure_objects`` replace ``regionprops_table``;
each column named after a regionprops property is checked against it
(integers, boxes, min/max, centroids and solidity exactly; sums of floats to
rounding).  Circularity, integrated intensity and the channel columns are
checked against plain numpy and ``find_contours``.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage import measure
from skimage.segmentation import expand_labels

from segmentation import Params, segment
from segmentation import measure as measure_module
from segmentation.io import load_plane
from segmentation.measure import GROUPS, PROPERTIES, measure_objects, summarize
from testdata import ROOT, require_shared

UM_COLUMNS = {
    "area_um2", "centroid_y_um", "centroid_x_um", "perimeter_um", "equivalent_diameter_um",
    "major_axis_um", "minor_axis_um",
}
# regionprops_table's names for the PROPERTIES columns
REGIONPROPS = (
    "label", "area", "centroid", "bbox", "intensity_mean", "intensity_min", "intensity_max",
    "perimeter", "equivalent_diameter_area", "axis_major_length", "axis_minor_length",
    "eccentricity", "solidity",
)
EXACT = [
    "label", "area_px2", "centroid_y_px", "centroid_x_px", "bbox_min_y_px", "bbox_min_x_px", "bbox_max_y_px",
    "bbox_max_x_px", "min_intensity", "max_intensity", "equivalent_diameter_px", "solidity",
]


def assert_equals_regionprops(labels: np.ndarray, image: np.ndarray) -> None:
    """Each PROPERTIES column of measure_objects equals regionprops_table's."""
    ref = pd.DataFrame(measure.regionprops_table(labels, image, properties=REGIONPROPS)).rename(columns=PROPERTIES)
    got = measure_objects(labels, image)
    assert len(got) == len(ref)
    for column in EXACT:
        np.testing.assert_array_equal(got[column], ref[column], err_msg=column)
    # a mean of integers is exact; regionprops sums a float32 image in float32
    rtol = 0 if image.dtype.kind in "iu" else 1e-6 if image.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got["mean_intensity"], ref["mean_intensity"], rtol=rtol)
    # sums in another order
    np.testing.assert_allclose(got["perimeter_px"], ref["perimeter_px"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["major_axis_px"], ref["major_axis_px"], rtol=1e-12)
    # the minor axis and eccentricity are square roots of eigenvalues that regionprops rounds
    # on the scale of the larger one (a straight line's minor axis comes out as ~1e-8):
    # compare the eigenvalues themselves, to rounding of the larger one
    scale = ref["major_axis_px"].to_numpy() ** 2
    difference = np.abs(got["minor_axis_px"] ** 2 - ref["minor_axis_px"] ** 2)
    assert (difference <= 1e-12 * scale).all(), f"minor axis² differs by {difference.max():g}"
    np.testing.assert_allclose(got["eccentricity"] ** 2, ref["eccentricity"] ** 2, rtol=0, atol=1e-12)


def random_labels(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Touching blobs with holes, on the border, 1-px objects and lines, ids far from 1..N."""
    # blobs: smoothed noise above a random level, cut into touching pieces by nearest random point
    noise = ndi.gaussian_filter(rng.random(shape), rng.uniform(1, 3))
    blobs = noise > np.quantile(noise, rng.uniform(0.3, 0.7))
    components, _ = ndi.label(blobs)
    points = rng.integers(0, shape, (rng.integers(1, 12), 2))
    yy, xx = np.indices(shape)
    nearest = np.argmin((yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2, axis=-1)
    labels = np.where(blobs, components * 16 + nearest + 1, 0).astype(np.uint32)
    # a ring (an object with a hole) of a random size
    r = rng.integers(2, 8)
    cy, cx = rng.integers(0, shape)
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    labels[(d2 < r * r) & (d2 >= (r // 2) ** 2)] = 999
    # single pixels, and 1-px-wide lines: horizontal, vertical, diagonal
    for _ in range(rng.integers(1, 5)):
        labels[tuple(rng.integers(0, shape))] = rng.integers(1000, 3000)
    for kind in range(3):
        y, x = rng.integers(0, shape)
        n = rng.integers(2, 20)
        ys, xs = [y + np.arange(n) * (kind != 0), x + np.arange(n) * (kind != 1)]
        inside = (ys < shape[0]) & (xs < shape[1])
        labels[ys[inside], xs[inside]] = 3000 + kind
    return labels


def random_cases(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (int(rng.integers(1, 70)), int(rng.integers(1, 70)))
        labels = random_labels(rng, shape)
        if i % 10 == 0:
            labels[:] = 7  # a single object filling the image
        yield rng, labels


def random_image(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return (rng.normal(100, 50, shape)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), shape, endpoint=True).astype(dtype)


@pytest.fixture(scope="module")
def result(sample):
    return segment(sample, Params())


@pytest.fixture(scope="module")
def image16(sample) -> np.ndarray:
    """The sample scaled into 16-bit units (values up to ~12,000)."""
    return (sample.astype(np.uint32) * 50 + 300).astype(np.uint16)


# --- equal to regionprops ---------------------------------------------------------


def test_columns_equal_regionprops_on_the_sample(result, sample, image16):
    assert_equals_regionprops(result.labels, image16)
    assert_equals_regionprops(result.labels, sample)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int64])
def test_columns_equal_regionprops_on_random_labels(dtype):
    for rng, labels in random_cases():
        if labels.any():
            assert_equals_regionprops(labels, random_image(rng, labels.shape, dtype))


def test_columns_equal_regionprops_on_a_disk_with_a_long_tail():
    """A hull side that many passes of the envelope search peel back point by point."""
    labels = np.zeros((330, 330), np.uint32)
    yy, xx = np.ogrid[:330, :330]
    labels[(yy - 82) ** 2 + (xx - 242) ** 2 <= 80**2] = 5
    for i in range(160):  # a tail from the lower left of the disk, down and far left
        labels[122 + i // 3, 178 - i] = 5
    labels[300:310, 20:30] = 9  # and a plain square beside it
    assert_equals_regionprops(labels, (yy * xx % 251).astype(np.uint8))


# (image, ground-truth labels or None): real label images too, with their own ids (2, 4, …)
REAL = {
    "stardist": ("stardist_pkg/images/img2d.tif", "stardist_pkg/masks/img2d.tif"),
    "bobiac_u2os": ("bobiac_course/images/u2os_hoechst_003.tif", "bobiac_course/masks/u2os_hoechst_003.png"),
    "bobiac_bg": ("bobiac_course/images/bg_corr_nuclei_07.tif", None),
    "nih3t3": ("nih3t3_hoechst/images/dna-0.png", "nih3t3_hoechst/masks_instances_derived/dna-0.tif"),
    "bbbc007": ("bbbc007_kc167_dna/images/A9_p7d.tif", "bbbc007_kc167_dna/masks_sparse/A9_p7d.tif"),
    "dsb2018": ("dsb2018_dev/images/6aa7dd0c88bec4f9.png", "dsb2018_dev/masks/6aa7dd0c88bec4f9.tif"),
}


@pytest.mark.parametrize("name", REAL)
def test_columns_equal_regionprops_on_real_images(name):
    image_file, labels_file = REAL[name]
    image, _ = load_plane(require_shared(image_file)[0])
    assert_equals_regionprops(segment(image, Params()).labels, image)
    if labels_file:
        truth, _ = load_plane(require_shared(labels_file)[0])
        assert_equals_regionprops(truth.astype(np.uint32), image)


def test_huge_label_ids_give_the_same_table():
    """Ids up to 2**32 - 1 (no lookup table that long) measure like 1..N."""
    rng = np.random.default_rng(1)
    labels = random_labels(rng, (60, 50))
    ids, compact = np.unique(labels, return_inverse=True)
    huge_ids = np.r_[0, 2**32 - 1 - 7 * np.arange(len(ids) - 1)[::-1]].astype(np.uint32)
    huge = huge_ids[compact.reshape(labels.shape)]
    image = random_image(rng, labels.shape, np.uint16)
    a = measure_objects(compact.reshape(labels.shape).astype(np.uint32), image, channels={"c": image}, ring_width=2)
    b = measure_objects(huge, image, channels={"c": image}, ring_width=2)
    assert b["label"].tolist() == huge_ids[1:].tolist()
    pd.testing.assert_frame_equal(a.drop(columns="label"), b.drop(columns="label"))


# --- intensities ---------------------------------------------------------------------


def test_intensities_are_in_raw_16bit_units(result, image16):
    df = measure_objects(result.labels, image16)
    assert df["max_intensity"].max() == image16[result.labels > 0].max() > 5000


def test_integrated_intensity_is_the_exact_sum_of_raw_pixels(result, image16):
    labels = result.labels
    df = measure_objects(labels, image16)
    assert df["integrated_intensity"].dtype == np.int64
    assert df["integrated_intensity"].tolist() == [int(image16[labels == i].sum()) for i in df["label"]]


def test_integrated_intensity_is_exact_beyond_float_precision():
    """Sums past 2**53 stay exact (a float64 sum would round them)."""
    labels = np.ones((1500, 1500), np.uint32)
    labels[0, 0] = 2
    image = np.full(labels.shape, 2**32 - 1, np.uint32)
    image[1, 1] = 2**32 - 3
    expected = (labels.size - 1) * (2**32 - 1) - 2  # odd, above 2**53: no float64 holds it
    assert expected > 2**53 and float(expected) != expected
    got = measure_objects(labels, image, properties=("intensity",))
    assert got["integrated_intensity"].tolist() == [expected, 2**32 - 1]
    wide = measure_objects(labels, image.astype(np.int64), properties=("intensity",))  # the other sorting path
    assert wide["integrated_intensity"].tolist() == [expected, 2**32 - 1]


def test_integrated_intensity_of_a_float_image_is_a_float64_sum():
    rng = np.random.default_rng(2)
    labels = random_labels(rng, (50, 60))
    image = rng.normal(0, 1000, labels.shape).astype(np.float32)
    df = measure_objects(labels, image, properties=("intensity",))
    assert df["integrated_intensity"].dtype == np.float64
    expected = [image[labels == i].sum(dtype=np.float64) for i in df["label"]]
    np.testing.assert_allclose(df["integrated_intensity"], expected, rtol=1e-12)


# --- other channels ----------------------------------------------------------------------


def _per_object(values: np.ndarray, where: np.ndarray) -> dict[str, float]:
    v = values[where]
    if v.size == 0:
        return {"mean": np.nan, "integrated": 0, "max": np.nan, "median": np.nan}
    total = v.astype(np.int64 if v.dtype.kind in "iu" else np.float64).sum()
    return {"mean": total / v.size, "integrated": total, "max": v.max(), "median": np.median(v.astype(np.float64))}


@pytest.mark.parametrize("ring_width", [0, 1, 3])
def test_channels_equal_plain_numpy_per_object(ring_width):
    rng = np.random.default_rng(ring_width)
    for case, (_, labels) in enumerate(random_cases(12, seed=ring_width)):
        if not labels.any():
            continue
        channels = {"gfp": random_image(rng, labels.shape, np.uint16),
                    "edu": random_image(rng, labels.shape, np.float32)}
        df = measure_objects(labels, channels["gfp"], channels=channels, ring_width=ring_width)
        grown = expand_labels(labels, ring_width) if ring_width else None
        for row in df.itertuples(index=False):
            row = row._asdict()
            inside = labels == row["label"]
            for name, plane in channels.items():
                want = _per_object(plane, inside)
                for stat in ("mean", "integrated", "max", "median"):
                    np.testing.assert_allclose(row[f"{name}_{stat}"], want[stat], rtol=1e-12, err_msg=f"{name}_{stat}")
                if plane.dtype.kind == "u":
                    assert row[f"{name}_integrated"] == want["integrated"]  # exact
                if ring_width:
                    around = _per_object(plane, (grown == row["label"]) & (labels == 0))
                    for stat in ("mean", "integrated", "median"):
                        np.testing.assert_allclose(row[f"{name}_ring_{stat}"], around[stat], rtol=1e-12)
        if not ring_width:
            assert not any("ring" in c for c in df.columns)


def test_ring_of_an_object_with_no_free_pixel_around_it():
    labels = np.full((5, 5), 1, np.uint32)
    labels[2, 2] = 2  # enclosed by object 1, which fills the rest of the image
    image = np.arange(25, dtype=np.uint16).reshape(5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = measure_objects(labels, image, channels={"c": image}, ring_width=2)
    assert df["c_ring_integrated"].tolist() == [0, 0]
    assert df[["c_ring_mean", "c_ring_median"]].isna().all().all()
    assert df["c_integrated"].tolist() == [300 - 12, 12]


def test_channel_columns_are_named_by_channel_and_checked():
    labels = np.zeros((8, 8), np.uint32)
    labels[2:5, 2:5] = 3
    image = np.ones((8, 8), np.uint8)
    df = measure_objects(labels, image, channels={"ch2": image * 4}, ring_width=1, properties=("area",))
    assert list(df.columns) == ["label", "area_px2", "ch2_mean", "ch2_integrated", "ch2_max", "ch2_median",
                                "ch2_ring_mean", "ch2_ring_integrated", "ch2_ring_median"]
    assert df["ch2_ring_integrated"].iloc[0] == 4 * 12  # 3 px beside each side
    with pytest.raises(ValueError, match="ch2"):
        measure_objects(labels, image, channels={"ch2": np.ones((8, 9))})
    with pytest.raises(ValueError, match="shape"):
        measure_objects(labels, np.ones((9, 8)))
    with pytest.raises(ValueError, match="2-D"):
        measure_objects(labels[None], image[None])
    empty = measure_objects(np.zeros_like(labels), image, channels={"ch2": image}, ring_width=1)
    assert len(empty) == 0 and "ch2_ring_median" in empty.columns


# --- choosing the columns ---------------------------------------------------------------


def test_property_selection_keeps_the_default_order_and_values(result, image16):
    full = measure_objects(result.labels, image16, pixel_size_um=0.5)
    some = measure_objects(result.labels, image16, pixel_size_um=0.5, properties=("solidity", "centroid", "area_px2"))
    assert list(some.columns) == ["label", "area_px2", "centroid_y_px", "centroid_x_px", "solidity",
                                  "area_um2", "centroid_y_um", "centroid_x_um"]
    pd.testing.assert_frame_equal(some, full[some.columns])
    for group, columns in GROUPS.items():
        assert list(measure_objects(result.labels, image16, properties=group).columns) == ["label", *columns]
    with pytest.raises(ValueError, match="unknown property 'roundness'"):
        measure_objects(result.labels, image16, properties=("area", "roundness"))


def test_columns_nobody_asked_for_are_not_computed(result, image16, monkeypatch):
    def refuse(self):
        raise AssertionError("computed a column nobody asked for")

    for name in ("convex_area", "contour_length", "perimeter", "axes", "pixels"):
        monkeypatch.setattr(measure_module._Objects, name, property(refuse))
    df = measure_objects(result.labels, image16, properties=("area", "centroid", "bbox"))
    assert len(df) == result.labels.max()
    with pytest.raises(AssertionError, match="nobody asked"):
        measure_objects(result.labels, image16, properties=("solidity",))


# --- circularity -----------------------------------------------------------------------


def test_circularity_is_4_pi_area_over_the_marching_squares_outline_squared():
    """The outline's length equals find_contours' on each object, holes and all."""
    for _, labels in random_cases(25, seed=4):
        if not labels.any():
            continue
        df = measure_objects(labels, labels, properties=("area", "circularity"))
        for label, area, circularity in zip(df["label"], df["area_px2"], df["circularity"]):
            own = np.pad(labels == label, 1).astype(float)
            length = sum(np.hypot(*np.diff(c, axis=0).T).sum() for c in measure.find_contours(own, 0.5))
            expected = np.nan if area == 1 else min(1.0, 4 * np.pi * area / length**2)
            np.testing.assert_allclose(circularity, expected, rtol=1e-12)


def test_circularity_of_disk_and_thin_rectangle():
    labels = np.zeros((120, 200), np.uint32)
    yy, xx = np.ogrid[:120, :200]
    labels[(yy - 60) ** 2 + (xx - 60) ** 2 < 40**2] = 1
    labels[10:14, 120:190] = 2  # 4 x 70
    df = measure_objects(labels, np.ones(labels.shape, np.uint16)).set_index("label")
    assert 0.9 <= df.loc[1, "circularity"] < 1
    assert df.loc[2, "circularity"] < 0.2


def test_single_pixel_object_has_nan_circularity_without_warning():
    labels = np.zeros((10, 10), np.uint32)
    labels[5, 5] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = measure_objects(labels, np.arange(100, dtype=np.uint16).reshape(10, 10))
    assert np.isnan(df["circularity"].iloc[0])
    assert df["integrated_intensity"].iloc[0] == 55
    assert df["minor_axis_px"].iloc[0] == df["eccentricity"].iloc[0] == 0


def test_circularity_at_most_1_on_every_real_nucleus():
    """And below 1 (so not merely capped) for every object of 10 px or more."""
    files = require_shared("*/images/*")
    for path in files:
        image, _ = load_plane(path)
        df = segment(image, Params()).measurements
        assert (df["circularity"] <= 1).all(), path.name
        assert (df.loc[df["area_px2"] >= 10, "circularity"] < 1).all(), path.name


# --- units, empty tables, summary ------------------------------------------------------


def test_um_columns_only_with_pixel_size(result, image16):
    plain = measure_objects(result.labels, image16)
    assert not UM_COLUMNS & set(plain.columns)
    ps = 0.325
    cal = measure_objects(result.labels, image16, pixel_size_um=ps)
    assert UM_COLUMNS <= set(cal.columns)
    np.testing.assert_allclose(cal["area_um2"], cal["area_px2"] * ps**2)
    np.testing.assert_allclose(cal["centroid_y_um"], cal["centroid_y_px"] * ps)
    np.testing.assert_allclose(cal["perimeter_um"], cal["perimeter_px"] * ps)
    np.testing.assert_allclose(cal["major_axis_um"], cal["major_axis_px"] * ps)
    # pixel columns are unchanged by the calibration
    pd.testing.assert_frame_equal(cal[plain.columns], plain)


def test_column_names_carry_units(result, image16):
    df = measure_objects(result.labels, image16)
    assert list(df.columns) == [*PROPERTIES.values(), "integrated_intensity", "circularity"]


@pytest.mark.parametrize("pixel_size", [None, 0.5])
def test_empty_labels_give_empty_table_with_the_columns(result, image16, pixel_size):
    full = measure_objects(result.labels, image16, pixel_size)
    empty = measure_objects(np.zeros_like(result.labels), image16, pixel_size)
    assert len(empty) == 0
    assert list(empty.columns) == list(full.columns)


def test_summarize_values(result, image16):
    df = measure_objects(result.labels, image16)
    s = summarize(df, result.mask, 42.5, "otsu")
    assert s["objects"] == len(df) == result.labels.max()
    assert s["threshold"] == 42.5 and s["threshold_method"] == "otsu"
    assert s["mean_area_px2"] == pytest.approx(np.bincount(result.labels.ravel())[1:].mean())
    assert s["median_area_px2"] == pytest.approx(np.median(np.bincount(result.labels.ravel())[1:]))
    assert s["foreground_fraction"] == pytest.approx(result.mask.mean())
    assert "mean_area_um2" not in s


def test_summarize_with_pixel_size_and_when_empty(result, image16):
    ps = 0.5
    df = measure_objects(result.labels, image16, ps)
    s = summarize(df, result.mask, 1.0, "li")
    assert s["mean_area_um2"] == pytest.approx(s["mean_area_px2"] * ps**2)
    assert s["median_area_um2"] == pytest.approx(s["median_area_px2"] * ps**2)

    empty = measure_objects(np.zeros((8, 8), np.uint32), np.zeros((8, 8)), ps)
    s = summarize(empty, np.zeros((8, 8), bool), 3.0, "manual")
    assert s["objects"] == 0 and s["foreground_fraction"] == 0.0
    assert s["mean_area_px2"] is None and s["median_area_um2"] is None


def test_segment_measures_the_raw_not_the_filtered_image(image16):
    r = segment(image16, Params())
    direct = measure_objects(r.labels, image16)
    pd.testing.assert_frame_equal(r.measurements, direct)
    expected = summarize(direct, r.mask, r.threshold, "otsu")
    assert {k: v for k, v in r.summary.items() if k not in ("dropped_without_seed", "removed_fraction")} == expected
    assert r.summary["removed_fraction"] == np.count_nonzero(r.removed) / np.count_nonzero(r.binary | r.mask)


def test_benchmark_runs_at_a_tiny_size():
    script = ROOT / "benchmarks" / "measure_bench.py"
    out = subprocess.run([sys.executable, str(script), "128"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "measure_objects" in out.stdout and "x" in out.stdout
