"""Filters: each option equals its plain scikit-image / scipy call and keeps raw units.

The fast replacements (segmentation._median, _tophat) are held to the library call they
replace on random and real images, through every route; the fast rolling ball (its own
choice) to its documented tolerance of the exact one.
"""

from __future__ import annotations

import types
from unittest import mock

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp
from PIL import Image
from scipy import ndimage as ndi
from skimage import filters as skfilters
from skimage import morphology, restoration
from skimage.filters import threshold_otsu
from testdata import require_shared

from segmentation import _median, cost
from segmentation._rolling_ball import rolling_ball_fast, shrink_factor
from segmentation._tophat import white_tophat_disk
from segmentation.filters import apply_filter, filter_image, in_strips, subtract_background
from segmentation.params import Params


@pytest.fixture(scope="module")
def bright16() -> np.ndarray:
    """uint16, background ~2000 with a gentle slope and noise, a few nuclei ~2600."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :128]
    img = 1900 + 2.0 * xx + rng.normal(0, 15, yy.shape)
    for cy, cx in [(25, 30), (60, 80), (70, 25)]:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 10**2] += 600
    return img.round().astype(np.uint16)


@pytest.fixture(scope="module")
def crop(sample) -> np.ndarray:
    return sample[:160, :192]


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
def test_gaussian_equals_skimage_gaussian(crop, sigma):
    out = apply_filter(crop, "gaussian", sigma=sigma)
    np.testing.assert_array_equal(out, skfilters.gaussian(crop, sigma=sigma, preserve_range=True))
    assert out.dtype == np.float64


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_gaussian_in_strips_is_skimage_gaussian_bit_for_bit(sample, threads):
    # the sample is tiled to 2 Mpx (strips start above 1 Mpx); an odd height, so strips differ in size
    big = np.tile(sample, (3, 3))[:1531, :1400]
    for sigma in (0.7, 2.0, 2.5, 9.3):
        np.testing.assert_array_equal(apply_filter(big, "gaussian", sigma=sigma, threads=threads),
                                      skfilters.gaussian(big, sigma=sigma, preserve_range=True))


@pytest.mark.parametrize("seed", range(3))
def test_gaussian_in_strips_on_random_images(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(600, 2100, size=2)
    img = rng.integers(0, 65535, size=(h, w), dtype=np.uint16) if seed % 2 else rng.normal(0, 1, (h, w))
    sigma = float(rng.uniform(0.3, 30))  # up to a reach of 120 rows: fewer, taller strips
    out = filter_image(img, Params(sigma=round(sigma, 1)), threads=4)
    np.testing.assert_array_equal(out, skfilters.gaussian(img, sigma=round(sigma, 1), preserve_range=True))


def test_strips_need_the_filters_whole_reach():
    img = np.random.default_rng(0).random((1500, 800))
    blur = lambda a: ndi.gaussian_filter(a, 5.0, mode="nearest")  # noqa: E731 - reaches 20 rows
    assert not np.array_equal(in_strips(blur, img, 3, 2), blur(img))  # too small a margin shows at the seam
    np.testing.assert_array_equal(in_strips(blur, img, 20, 2), blur(img))
    small = img[:100]
    assert in_strips(lambda a: a.shape, small, 20, 2) == small.shape  # small images: one piece


def test_gaussian_sigma_zero_is_the_image_as_float(crop):
    out = apply_filter(crop, "gaussian", sigma=0)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, crop)


@pytest.mark.parametrize("size", [3, 5, 8])
def test_mean_equals_uniform_filter(crop, size):
    out = apply_filter(crop, "mean", size=size)
    np.testing.assert_array_equal(out, ndi.uniform_filter(crop.astype(float), size))


@pytest.mark.parametrize("size", [3, 5])
def test_median_equals_median_filter_and_keeps_dtype(crop, size):
    out = apply_filter(crop, "median", size=size)
    np.testing.assert_array_equal(out, ndi.median_filter(crop, size))
    assert out.dtype == crop.dtype


def test_none_returns_the_image(crop):
    np.testing.assert_array_equal(apply_filter(crop, "none"), crop)
    np.testing.assert_array_equal(filter_image(crop, Params(filter="none")), crop)


@pytest.mark.parametrize("radius", [8, 15])
def test_rolling_ball_equals_image_minus_rolling_ball(crop, radius):
    img = crop.astype(float)
    expected = img - restoration.rolling_ball(img, radius=radius)
    np.testing.assert_array_equal(subtract_background(crop, "rolling_ball", radius), expected)
    # also through filter_image with no noise filter
    out = filter_image(crop, Params(background="rolling_ball", background_radius=radius, filter="none"))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("radius", [5, 12])
def test_tophat_equals_white_tophat_with_sequence_disk(crop, radius):
    expected = morphology.white_tophat(crop.astype(float), morphology.disk(radius, decomposition="sequence"))
    np.testing.assert_array_equal(subtract_background(crop, "tophat", radius), expected)


def test_background_none_is_the_image_as_float(crop):
    out = subtract_background(crop, "none", 10)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, crop)


def test_background_then_filter_in_that_order(crop):
    p = Params(background="tophat", background_radius=10, filter="gaussian", sigma=1.5)
    bg = morphology.white_tophat(crop.astype(float), morphology.disk(10, decomposition="sequence"))
    expected = skfilters.gaussian(bg, sigma=1.5, preserve_range=True)
    np.testing.assert_allclose(filter_image(crop, p), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        Params(),
        Params(sigma=3.0),
        Params(filter="mean", filter_size=5),
        Params(filter="median", filter_size=5),
        Params(filter="none"),
    ],
    ids=["gaussian1", "gaussian3", "mean", "median", "none"],
)
def test_filters_keep_raw_units_of_16bit_image(bright16, params):
    out = filter_image(bright16, params)
    # values stay around 2000 (and nuclei ~2600): never rescaled to 0-1
    assert 1800 < np.median(out) < 2300
    assert 2300 < out.max() < 3000
    assert out.min() > 1500


def test_background_subtraction_keeps_units(bright16):
    out = filter_image(bright16, Params(background="rolling_ball", background_radius=20, filter="none"))
    yy, xx = np.mgrid[: bright16.shape[0], : bright16.shape[1]]
    nucleus = (yy - 60) ** 2 + (xx - 80) ** 2 < 5**2
    background = (yy - 10) ** 2 + (xx - 110) ** 2 < 5**2
    # the ~2000 background goes to near 0 (the ball rests on the noise's lowest
    # points) and the nuclei keep their ~600 above it, in raw units
    assert 0 <= np.median(out[background]) < 120
    assert 500 < np.median(out[nucleus]) - np.median(out[background]) < 700


def test_unknown_methods_raise():
    img = np.zeros((4, 4))
    with pytest.raises(ValueError, match="bilateral"):
        apply_filter(img, "bilateral")
    with pytest.raises(ValueError, match="ball"):
        subtract_background(img, "ball", 5)


# --- median: identical to ndi.median_filter, every route -----------------------------------

MEDIAN_DTYPES = [np.uint8, np.uint16, np.int16, np.float32, np.float64]


def assert_same_median(image, size):
    if _median._scipy_extension_differs(image.shape, size):
        # scipy reads outside the image here, and what it reads is not reproducible (in one full run of the
        # suite two calls on the same image disagreed): nothing to compare with, so check it is scipy's answer
        answer = np.zeros_like(image)
        with mock.patch.object(_median.ndi, "median_filter", return_value=answer) as scipy_median:
            assert _median.median_filter(image, size) is answer
        scipy_median.assert_called_once()
        return
    out = _median.median_filter(image, size)
    expected = ndi.median_filter(image, size=size)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected, err_msg=f"size {size}, {image.dtype} {image.shape}")


def random_image(rng, dtype, shape, levels):
    """`levels` distinct values at most, spread over the dtype (negative ones for int16, fractions for floats)."""
    values = rng.integers(0, levels, shape)
    if dtype == np.int16:
        return (values * (65535 // max(levels - 1, 1)) - 32768).astype(np.int16)
    if np.dtype(dtype).kind == "f":
        return (values * 0.37 - 50).astype(dtype)
    if dtype == np.uint8:
        return np.minimum(values, 255).astype(np.uint8)
    return (values * (65535 // max(levels - 1, 1))).astype(np.uint16)


@pytest.fixture
def routes(monkeypatch):
    """Count the calls _median makes to ndi.median_filter and cv2.medianBlur (delegating to them)."""
    calls = {"ndi": 0, "cv2": 0}
    real_ndi, real_cv2 = _median.ndi.median_filter, _median.cv2.medianBlur

    def ndi_spy(image, size):
        calls["ndi"] += 1
        return real_ndi(image, size=size)

    def cv2_spy(image, k):
        calls["cv2"] += 1
        return real_cv2(image, k)

    monkeypatch.setattr(_median, "ndi", types.SimpleNamespace(median_filter=ndi_spy))
    monkeypatch.setattr(_median, "cv2", types.SimpleNamespace(medianBlur=cv2_spy))
    return calls


@pytest.mark.parametrize("dtype", MEDIAN_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 25])
def test_median_identical_on_random_images(dtype, size):
    rng = np.random.default_rng(size)
    # up to 256 codes (one 8-bit pass), up to 2040 (bands summed), more (coarse pass first)
    for shape, levels in [((37, 53), 200), ((48, 64), 1500), ((70, 70), 20000)]:
        assert_same_median(random_image(rng, dtype, shape, levels), size)


@pytest.mark.parametrize("dtype", MEDIAN_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (6, 1), (2, 3), (5, 4), (9, 40)])
@pytest.mark.parametrize("size", [3, 4, 7, 16, 17, 31, 61])
def test_median_identical_on_tiny_images_and_windows_larger_than_them(dtype, shape, size):
    assert_same_median(random_image(np.random.default_rng(7), dtype, shape, 3000), size)


@settings(max_examples=150, deadline=None)
@given(
    image=hnp.arrays(
        dtype=hst.sampled_from(MEDIAN_DTYPES),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=14),
        elements={"allow_nan": False, "allow_infinity": False, "allow_subnormal": False},
    ),
    size=hst.integers(1, 40),
)
def test_median_identical_property(image, size):
    assert_same_median(image, size)


@pytest.mark.parametrize("size", [3, 7, 15, 16, 25])
def test_median_identical_on_real_16bit_images(dapi16, sample, size):
    # a crop of 12-bit U2OS (1500 distinct values: bands summed), the sample: 8-bit values in uint16
    assert_same_median(dapi16[:256, :320], size)
    assert_same_median(dapi16[:256, :320].astype(np.float64), size)  # a float image with few values
    assert_same_median(sample[:200, :240], size)


@pytest.mark.parametrize("size", [5, 9, 16])
def test_median_identical_on_real_8bit_and_offset_images(size):
    bg_corr = tifffile.imread(require_shared("bobiac_course/images/bg_corr_nuclei_07.tif")[0])
    assert_same_median(bg_corr[200:456, 300:620], size)  # values ~33,000-36,000
    nih = np.asarray(Image.open(require_shared("nih3t3_hoechst/images/dna-0.png")[0]))
    assert_same_median(nih[:256, :320], size)


def test_median_of_16bit_image_takes_no_ndimage(dapi16, routes):
    out = _median.median_filter(dapi16, 15)  # 2047 distinct values: coarse pass, then bands
    assert routes["ndi"] == 0 and routes["cv2"] >= 2
    np.testing.assert_array_equal(out, ndi.median_filter(dapi16, size=15))


def test_median_sums_bands_below_2040_codes_and_uses_a_coarse_pass_above(routes):
    rng = np.random.default_rng(3)
    few = random_image(rng, np.uint16, (60, 70), 1500)  # codes < 1500: 6 bands of 255, summed
    _median.median_filter(few, 9)
    assert routes == {"ndi": 0, "cv2": -(-int(np.unique(few).size - 1) // 255)}
    routes["cv2"] = 0
    many = random_image(rng, np.uint16, (70, 70), 20000)  # > 2040 codes: a coarse pass first
    out = _median.median_filter(many, 25)
    assert routes["ndi"] == 0 and routes["cv2"] >= 2
    np.testing.assert_array_equal(out, ndi.median_filter(many, size=25))


@pytest.mark.parametrize(
    "image, size, why",
    [
        (np.where(np.eye(20, 30) > 0, np.nan, 1.5), 5, "NaN"),
        (np.random.default_rng(0).normal(size=(300, 300)), 3, "more than 65,536 distinct values"),
        (np.arange(120, dtype=np.uint16).reshape(3, 40), 25, "window reaching 4x past a 3 px side"),
        (np.arange(64, dtype=np.uint16).reshape(8, 8), 2, "size 2"),
        (np.random.default_rng(1).integers(0, 1500, (40, 40)).astype(np.uint16), 4, "rank.median slower"),
        (np.sort(np.random.default_rng(2).integers(0, 65536, 200 * 200)).reshape(200, 200).astype(np.uint16), 7,
         "medians over 29,000 codes: too many bands for a small window"),
        (np.arange(12).reshape(3, 4) > 5, 3, "bool"),
    ],
)
def test_median_falls_back_to_ndimage_where_nothing_faster_is_exact(routes, image, size, why):
    out = _median.median_filter(image, size)
    assert routes["ndi"] == 1, why
    np.testing.assert_array_equal(out, ndi.median_filter(image, size=size))


def test_scipy_reflect_is_not_a_reflection_past_four_sides():
    # why the guard above exists: np.pad('symmetric') would give another answer here
    image = np.arange(120, dtype=np.uint16).reshape(3, 40)
    padded = np.pad(image, 12, mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (25, 25)).reshape(3, 40, -1)
    assert not np.array_equal(np.median(windows, axis=-1), ndi.median_filter(image, size=25))


def test_median_even_window_with_many_codes_uses_rank_median(routes):
    image = np.random.default_rng(4).integers(0, 1500, (40, 40)).astype(np.uint16)
    out = _median.median_filter(image, 16)  # rank.median beats ndimage at 16 x 16
    assert routes["ndi"] == 0
    np.testing.assert_array_equal(out, ndi.median_filter(image, size=16))


def test_apply_filter_median_is_the_fast_median(dapi16, routes):
    out = apply_filter(dapi16[:128, :128], "median", size=15)
    assert routes["ndi"] == 0
    np.testing.assert_array_equal(out, ndi.median_filter(dapi16[:128, :128], size=15))


# --- rolling ball, fast variant: close to the exact one, much less work --------------------------


def test_shrink_factor_as_fiji():
    assert [shrink_factor(r) for r in (1, 10, 10.5, 30, 31, 100, 101, 10000)] == [1, 1, 2, 2, 4, 4, 8, 8]


@pytest.mark.parametrize("radius", [3, 10])
def test_rolling_ball_fast_is_the_exact_one_up_to_10_px(crop, radius):
    img = crop.astype(float)
    np.testing.assert_array_equal(rolling_ball_fast(img, radius), restoration.rolling_ball(img, radius=radius))


def within_documented_tolerance(image, radius):
    img = image.astype(float)
    exact = img - restoration.rolling_ball(img, radius=radius)
    fast = subtract_background(image, "rolling_ball_fast", radius)
    lo, hi = np.percentile(img, [0.1, 99.9])
    diff = np.abs(fast - exact)
    assert diff.max() <= max(5.0, 0.01 * (hi - lo))
    assert np.percentile(diff, 99) <= 1.5
    same_mask = (exact > threshold_otsu(exact)) == (fast > threshold_otsu(fast))
    assert same_mask.mean() >= 0.995


@pytest.mark.parametrize("radius", [25, 50])
def test_rolling_ball_fast_within_tolerance_on_real_16bit_image(dapi16, radius):
    within_documented_tolerance(dapi16[:200, :260], radius)


def test_rolling_ball_fast_within_tolerance_on_other_real_images(sample):
    within_documented_tolerance(sample[:256, :256], 25)
    bg_corr = tifffile.imread(require_shared("bobiac_course/images/bg_corr_nuclei_07.tif")[0])
    within_documented_tolerance(bg_corr[:256, :256], 25)
    nih = np.asarray(Image.open(require_shared("nih3t3_hoechst/images/dna-0.png")[0]))
    within_documented_tolerance(nih[:256, :320], 25)


def test_rolling_ball_fast_with_radius_near_nucleus_size_keeps_the_mask(dapi16):
    # 15 px: the ball is sampled every 2nd px, single pixels on steep edges may differ more
    img = dapi16[:200, :260].astype(float)
    exact = img - restoration.rolling_ball(img, radius=15)
    fast = subtract_background(dapi16[:200, :260], "rolling_ball_fast", 15)
    assert ((exact > threshold_otsu(exact)) == (fast > threshold_otsu(fast))).mean() >= 0.995


def test_rolling_ball_fast_removes_a_gradient_and_keeps_nuclei(bright16):
    out = subtract_background(bright16, "rolling_ball_fast", 30)
    exact = subtract_background(bright16, "rolling_ball", 30)
    yy, xx = np.mgrid[: bright16.shape[0], : bright16.shape[1]]
    nucleus = (yy - 60) ** 2 + (xx - 80) ** 2 < 5**2
    background = (yy - 10) ** 2 + (xx - 110) ** 2 < 5**2
    assert 0 <= np.median(out[background]) < 120  # the 2000 DN + 2 DN/px slope is gone
    assert 500 < np.median(out[nucleus]) - np.median(out[background]) < 700
    # close to the exact one: on average within 1 DN, for 99 % of pixels within a third of the
    # noise (15 DN); single pixels on the disks' sharp edges (600 DN in 1 px) differ more
    diff = np.abs(out - exact)
    assert diff.mean() <= 1.0
    assert np.percentile(diff, 99) <= 5.0


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (9, 40), (33, 2)])
def test_rolling_ball_fast_on_tiny_images(shape):
    img = np.random.default_rng(0).integers(100, 200, shape).astype(np.uint16)
    bg = rolling_ball_fast(img, 50)
    assert bg.shape == shape and bg.dtype == np.float64
    assert np.isfinite(bg).all() and (bg <= img).all()


# --- top-hat through OpenCV: identical to scikit-image ----------------------------------------


@pytest.mark.parametrize("dtype", MEDIAN_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (3, 5), (40, 57)])
@pytest.mark.parametrize("radius", [1, 2, 4, 7, 10, 25])
def test_tophat_identical_on_random_images(dtype, shape, radius):
    image = random_image(np.random.default_rng(radius), dtype, shape, 3000)
    expected = morphology.white_tophat(image.astype(float), morphology.disk(radius, decomposition="sequence"))
    np.testing.assert_array_equal(subtract_background(image, "tophat", radius), expected)


@pytest.mark.parametrize("radius", [10, 30])
def test_tophat_identical_on_real_image(dapi16, radius):
    expected = morphology.white_tophat(dapi16.astype(float), morphology.disk(radius, decomposition="sequence"))
    np.testing.assert_array_equal(subtract_background(dapi16, "tophat", radius), expected)


def test_tophat_with_nan_is_left_to_scikit_image():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (30, 37)).astype(np.float32)
    image[rng.random(image.shape) < 0.05] = np.nan  # OpenCV would spread these differently
    expected = morphology.white_tophat(image.astype(float), morphology.disk(4, decomposition="sequence"))
    np.testing.assert_array_equal(white_tophat_disk(image, 4), expected)


# --- cost estimate ------------------------------------------------------------------------------


def test_estimate_grows_with_image_and_radius():
    est = cost.estimated_seconds
    p = Params(background="rolling_ball", background_radius=25, filter="none")
    assert est((1024, 1024), p) > est((512, 512), p)
    assert est((512, 512), p.replace(background_radius=50)) > est((512, 512), p)


def test_estimate_flags_the_slow_settings():
    est = cost.estimated_seconds
    assert est((512, 512), Params(background="rolling_ball", background_radius=200)) > 10  # the largest useful radius
    # after a rolling ball the median runs on floats with as many values as pixels: ndimage
    slow_median = Params(background="rolling_ball", background_radius=10, filter="median", filter_size=31)
    assert est((2048, 2048), slow_median) > 30
    assert est((2048, 2048), Params(filter="median", filter_size=15)) < 1
    assert est((2048, 2048), Params()) < 0.5
    exact = Params(background="rolling_ball", background_radius=50, filter="none")
    fast = Params(background="rolling_ball_fast", background_radius=50, filter="none")
    assert est((1024, 1344), fast) < 0.05 * est((1024, 1344), exact)


def test_estimate_of_fast_rolling_ball_is_the_exact_one_up_to_10_px():
    exact = Params(background="rolling_ball", background_radius=8)
    fast = Params(background="rolling_ball_fast", background_radius=8)
    assert cost.estimated_seconds((512, 512), exact) == cost.estimated_seconds((512, 512), fast)


def test_faster_equivalent_is_the_shrunk_rolling_ball_and_really_faster():
    slow = Params(background="rolling_ball", background_radius=40, filter="none")
    fast, seconds = cost.faster_equivalent((512, 512), slow)
    assert fast == slow.replace(background="rolling_ball_fast")
    assert seconds < cost.estimated_seconds((512, 512), slow) / 3
    assert cost.faster_equivalent((512, 512), slow.replace(background="tophat")) is None
    assert cost.faster_equivalent((512, 512), slow.replace(background_radius=6)) is None  # the same up to 10 px
