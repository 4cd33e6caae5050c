"""Measure: columns equal regionprops, intensities in raw units, µm only when calibrated."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage import measure

from segmentation import Params, segment
from segmentation.measure import PROPERTIES, measure_objects, summarize

UM_COLUMNS = {
    "area_um2", "centroid_y_um", "centroid_x_um", "perimeter_um", "equivalent_diameter_um",
    "major_axis_um", "minor_axis_um",
}


@pytest.fixture(scope="module")
def result(sample):
    return segment(sample, Params())


@pytest.fixture(scope="module")
def image16(sample) -> np.ndarray:
    """The sample scaled into 16-bit units (values up to ~12,000)."""
    return (sample.astype(np.uint32) * 50 + 300).astype(np.uint16)


def test_columns_equal_regionprops(result, image16):
    labels = result.labels
    df = measure_objects(labels, image16)
    props = measure.regionprops(labels, intensity_image=image16)
    assert len(df) == len(props) == labels.max()
    assert df["label"].tolist() == [p.label for p in props]
    np.testing.assert_array_equal(df["area_px2"], [p.area for p in props])
    np.testing.assert_allclose(df["centroid_y_px"], [p.centroid[0] for p in props])
    np.testing.assert_allclose(df["centroid_x_px"], [p.centroid[1] for p in props])
    np.testing.assert_array_equal(df["bbox_min_y_px"], [p.bbox[0] for p in props])
    np.testing.assert_array_equal(df["bbox_max_x_px"], [p.bbox[3] for p in props])
    np.testing.assert_allclose(df["mean_intensity"], [p.intensity_mean for p in props])
    np.testing.assert_array_equal(df["min_intensity"], [p.intensity_min for p in props])
    np.testing.assert_array_equal(df["max_intensity"], [p.intensity_max for p in props])
    np.testing.assert_allclose(df["perimeter_px"], [p.perimeter for p in props])
    np.testing.assert_allclose(df["equivalent_diameter_px"], [p.equivalent_diameter_area for p in props])
    np.testing.assert_allclose(df["major_axis_px"], [p.axis_major_length for p in props])
    np.testing.assert_allclose(df["minor_axis_px"], [p.axis_minor_length for p in props])
    np.testing.assert_allclose(df["eccentricity"], [p.eccentricity for p in props])
    np.testing.assert_allclose(df["solidity"], [p.solidity for p in props])


def test_intensities_are_in_raw_16bit_units(result, image16):
    df = measure_objects(result.labels, image16)
    assert df["max_intensity"].max() == image16[result.labels > 0].max() > 5000


def test_integrated_intensity_is_the_sum_of_raw_pixels(result, image16):
    labels = result.labels
    df = measure_objects(labels, image16)
    sums = ndi.sum_labels(image16.astype(np.float64), labels, index=df["label"].to_numpy())
    np.testing.assert_allclose(df["integrated_intensity"], sums, rtol=1e-12)
    # and for one object by hand
    first = int(df["label"].iloc[0])
    assert df["integrated_intensity"].iloc[0] == pytest.approx(float(image16[labels == first].sum(dtype=np.int64)))


def test_circularity_of_disk_and_thin_rectangle():
    labels = np.zeros((120, 200), np.uint32)
    yy, xx = np.ogrid[:120, :200]
    labels[(yy - 60) ** 2 + (xx - 60) ** 2 < 40**2] = 1
    labels[10:14, 120:190] = 2  # 4 x 70
    image = np.ones(labels.shape, np.uint16)
    df = measure_objects(labels, image).set_index("label")
    assert df.loc[1, "circularity"] == pytest.approx(1.0, abs=0.1)
    assert df.loc[2, "circularity"] < 0.3
    props = measure.regionprops(labels)
    for p in props:
        assert df.loc[p.label, "circularity"] == pytest.approx(4 * np.pi * p.area / p.perimeter**2)


def test_single_pixel_object_has_nan_circularity_without_warning():
    labels = np.zeros((10, 10), np.uint32)
    labels[5, 5] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = measure_objects(labels, np.arange(100, dtype=np.uint16).reshape(10, 10))
    assert np.isnan(df["circularity"].iloc[0])
    assert df["integrated_intensity"].iloc[0] == 55


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
    assert list(df.columns[: len(PROPERTIES)]) == list(PROPERTIES.values())
    assert {"integrated_intensity", "circularity"} <= set(df.columns)


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
    assert {k: v for k, v in r.summary.items() if k != "dropped_without_seed"} == expected
