"""Threshold: each option equals its plain scikit-image call, cutoffs in raw units."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import filters as skfilters

from testdata import require_shared
from segmentation.errors import SegmentationError
from segmentation.filters import filter_image
from segmentation.params import AUTO_THRESHOLD_METHODS, Params
from segmentation.threshold import THRESHOLD_METHODS, all_auto_thresholds, auto_threshold, threshold_image
from testdata import script_call

# each method as the exported script calls it (for the course's methods: skimage.filters.threshold_<name>)
PLAIN = {m: (lambda img, m=m: script_call(THRESHOLD_METHODS[m], img=img)) for m in AUTO_THRESHOLD_METHODS}


def test_the_course_methods_are_the_plain_scikit_image_calls():
    for m in ("otsu", "li", "triangle", "yen", "isodata", "mean", "minimum"):
        assert THRESHOLD_METHODS[m].code == f"filters.threshold_{m}(img)"
        assert THRESHOLD_METHODS[m].func is getattr(skfilters, f"threshold_{m}")


@pytest.fixture(scope="module")
def nuclei16() -> np.ndarray:
    """Synthetic uint16: background ~300, four nuclei ~2500, with noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    img = rng.normal(300, 20, yy.shape)
    for cy, cx in [(30, 30), (30, 90), (90, 40), (95, 95)]:
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 15**2
        img[disk] = rng.normal(2500, 100, disk.sum())
    return img.clip(0, 65535).round().astype(np.uint16)


@pytest.fixture(scope="module")
def filtered_sample(sample) -> np.ndarray:
    return filter_image(sample, Params())


@pytest.mark.parametrize("method", AUTO_THRESHOLD_METHODS)
def test_auto_method_equals_plain_call_on_16bit(nuclei16, method):
    expected = PLAIN[method](nuclei16)
    r = threshold_image(nuclei16, Params(threshold_method=method))
    assert r.value == pytest.approx(float(expected), rel=1e-12)
    np.testing.assert_array_equal(r.mask, nuclei16 > expected)
    assert r.mask.dtype == bool and r.method == method
    # raw units of a 16-bit image: between the background and the nuclei, not 0-1
    assert 300 < r.value < nuclei16.max()


@pytest.mark.parametrize("method", AUTO_THRESHOLD_METHODS)
def test_auto_method_equals_plain_call_on_filtered_sample(filtered_sample, method):
    expected = PLAIN[method](filtered_sample)
    r = threshold_image(filtered_sample, Params(threshold_method=method))
    assert r.value == float(expected)
    np.testing.assert_array_equal(r.mask, filtered_sample > expected)


def test_manual_threshold_is_strictly_above(nuclei16):
    cutoff = int(np.median(nuclei16[nuclei16 > 1000]))  # a value that occurs in the image
    assert (nuclei16 == cutoff).any()
    r = threshold_image(nuclei16, Params(threshold_method="manual", threshold_value=cutoff))
    assert r.value == cutoff and r.method == "manual"
    np.testing.assert_array_equal(r.mask, nuclei16 > cutoff)
    assert not r.mask[nuclei16 == cutoff].any()


def test_dark_objects_are_strictly_below(nuclei16):
    cutoff = int(np.median(nuclei16[nuclei16 > 1000]))
    r = threshold_image(nuclei16, Params(threshold_method="manual", threshold_value=cutoff, objects="dark"))
    np.testing.assert_array_equal(r.mask, nuclei16 < cutoff)
    assert not r.mask[nuclei16 == cutoff].any()
    otsu = skfilters.threshold_otsu(nuclei16)
    r = threshold_image(nuclei16, Params(objects="dark"))
    np.testing.assert_array_equal(r.mask, nuclei16 < otsu)
    assert r.value == pytest.approx(otsu)


@pytest.mark.parametrize("block_size, offset", [(51, 0.0), (15, -2.0), (31, 5.0)])
def test_local_equals_threshold_local(filtered_sample, block_size, offset):
    local = skfilters.threshold_local(filtered_sample, block_size, offset=offset)
    r = threshold_image(filtered_sample, Params(threshold_method="local", block_size=block_size, offset=offset))
    np.testing.assert_array_equal(r.mask, filtered_sample > local)
    # the reported value is the median of the local cutoffs
    assert r.value == pytest.approx(float(np.median(local)))


def test_local_on_integer_image_equals_threshold_local_on_float(nuclei16):
    img = nuclei16.astype(float)
    local = skfilters.threshold_local(img, 31, offset=-10)
    r = threshold_image(nuclei16, Params(threshold_method="local", block_size=31, offset=-10.0))
    np.testing.assert_array_equal(r.mask, nuclei16 > local)
    r = threshold_image(nuclei16, Params(threshold_method="local", block_size=31, offset=-10.0, objects="dark"))
    np.testing.assert_array_equal(r.mask, nuclei16 < local)


def test_threshold_minimum_on_unimodal_image_is_a_clear_segmentationerror():
    ramp = np.tile(np.arange(64, dtype=np.float64), (64, 1))  # flat histogram: no two peaks
    with pytest.raises(RuntimeError):
        skfilters.threshold_minimum(ramp)  # what the plain call does
    with pytest.raises(SegmentationError, match="'minimum' method found no cutoff.*Otsu") as info:
        threshold_image(ramp, Params(threshold_method="minimum"))
    assert not isinstance(info.value, RuntimeError)
    assert isinstance(info.value, ValueError)


def test_constant_image_is_a_segmentationerror():
    with pytest.raises(SegmentationError, match="constant"):
        auto_threshold(np.full((8, 8), 500, np.uint16), "otsu")
    with pytest.raises(SegmentationError, match="constant"):
        threshold_image(np.full((8, 8), 500.0), Params(threshold_method="li"))


def test_unknown_auto_method_raises_valueerror(nuclei16):
    with pytest.raises(ValueError, match="local"):
        auto_threshold(nuclei16, "local")


def test_all_auto_thresholds_gives_every_method(nuclei16):
    values = all_auto_thresholds(nuclei16)
    assert list(values) == list(AUTO_THRESHOLD_METHODS)
    for method, value in values.items():
        assert value == pytest.approx(float(PLAIN[method](nuclei16)), rel=1e-12)
        assert 300 < value < nuclei16.max()


def test_all_auto_thresholds_none_where_a_method_finds_none():
    ramp = np.tile(np.arange(64, dtype=np.float64), (64, 1))
    values = all_auto_thresholds(ramp)
    assert values["minimum"] is None
    assert values["otsu"] == pytest.approx(skfilters.threshold_otsu(ramp))


def test_threshold_of_offset_16bit_real_image_is_in_raw_units():
    """ImageJ's signed-16-bit offset image: values ~33,000-37,000."""
    import tifffile

    image = tifffile.imread(require_shared("bobiac_course/images/bg_corr_nuclei_07.tif")[0])
    filtered = filter_image(image, Params())
    r = threshold_image(filtered, Params())
    assert r.value == pytest.approx(skfilters.threshold_otsu(filtered))
    assert image.min() < r.value < image.max()
    assert r.value > 30000
