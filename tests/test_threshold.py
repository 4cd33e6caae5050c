"""Threshold: each option equals its plain scikit-image call, cutoffs in raw units."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import filters as skfilters

from testdata import SAMPLE, require_shared
from segmentation import _li
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
        # Li's replacement gives scikit-image's cutoff bit for bit (tested below)
        assert THRESHOLD_METHODS[m].func is (_li.threshold_li if m == "li" else getattr(skfilters, f"threshold_{m}"))


def _random_images():
    """Float images of many kinds: spread or piled-up values, offsets, float32, a few pixels, negative values."""
    rng = np.random.default_rng(7)
    for i in range(60):
        shape = (int(rng.integers(1, 70)), int(rng.integers(2, 70)))
        kind = i % 6
        if kind == 0:
            img = rng.random(shape)
        elif kind == 1:
            img = rng.exponential(50, shape) + 1e6  # a large offset: the shift by the minimum rounds
        elif kind == 2:
            img = np.round(rng.normal(100, 30, shape) * 2) / 2  # few distinct values: the exact tolerance is needed
        elif kind == 3:
            img = np.where(rng.random(shape) < 0.2, rng.normal(2500, 300, shape), rng.normal(300, 20, shape))
        elif kind == 4:
            img = (rng.random(shape) * 1e-300) * np.array([1, 1e-10])[rng.integers(0, 2, shape)]  # subnormal gaps
        else:
            img = rng.normal(-5, 3, shape)
        yield img.astype(np.float32) if i % 4 == 3 else img


def _li_sorting(img) -> tuple[float, list[int]]:
    """Our Li cutoff of `img`, and the sizes of the arrays it sorted."""
    sorted_sizes = []
    unique = np.unique
    with pytest.MonkeyPatch.context() as mp, np.errstate(all="ignore"):
        mp.setattr(np, "unique", lambda a, *k, **kw: sorted_sizes.append(a.size) or unique(a, *k, **kw))
        return _li.threshold_li(img), sorted_sizes


def test_li_equals_scikit_images_bit_for_bit_on_random_images(monkeypatch):
    monkeypatch.setattr(_li, "SAMPLE", 40)  # these small images are sampled as a large one is
    exact = 0
    for img in _random_images():
        with np.errstate(all="ignore"):
            expected = skfilters.threshold_li(img)
        got, sorts = _li_sorting(img)
        assert got == expected or (np.isnan(got) and np.isnan(expected)), img
        assert np.asarray(got).dtype == np.asarray(expected).dtype
        exact += img.size > 2 * _li.SAMPLE and sorts[-1] == img.size
    assert 0 < exact < 30  # both ways of stopping are reached: with the sample's bound, and with the exact gap


@pytest.mark.parametrize("img", [np.array([[1.0, np.nan, 3.0, 4.0]]), np.array([[1.0, np.inf, 3.0, 4.0]]),
                                 np.full((3, 3), 2.5), np.array([[0.0, 0.0, 0.0, 1e-300]]), np.array([[7.0]]),
                                 np.arange(12, dtype=np.uint16).reshape(3, 4)])
def test_li_edge_cases_give_scikit_images_answer(img):
    with np.errstate(all="ignore"):
        expected, got = skfilters.threshold_li(img), _li.threshold_li(img)
    assert got == expected or (np.isnan(got) and np.isnan(expected))


def test_li_on_filtered_nuclei_equals_scikit_image_without_sorting_every_pixel():
    from segmentation.io import read_image

    image = read_image(SAMPLE)[0].reshape(512, 512)
    for params in (Params(), Params(sigma=3.0)):
        filtered = filter_image(image, params.only("filter"))
        got, sorted_sizes = _li_sorting(filtered)
        assert got == skfilters.threshold_li(filtered)
        assert sorted_sizes == [image.size // (image.size // _li.SAMPLE)]  # a sample, never every pixel
    for params in (Params(filter="mean", filter_size=9), Params(filter="none")):  # the exact gap, or uint16
        filtered = filter_image(image, params.only("filter"))
        assert _li_sorting(filtered)[0] == skfilters.threshold_li(filtered)


def test_li_on_real_images_equals_scikit_image():
    from segmentation.io import read_image

    for path in require_shared()[::7][:12]:
        image, _ = read_image(path)
        plane = image if image.ndim == 2 else image.reshape(-1, *image.shape[-2:])[0]
        for params in (Params(), Params(sigma=2.0)):
            filtered = filter_image(plane, params.only("filter"))
            assert _li.threshold_li(filtered) == skfilters.threshold_li(filtered), path.name


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
