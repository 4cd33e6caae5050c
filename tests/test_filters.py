"""Filters: each option equals its plain scikit-image / scipy call and keeps raw units."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import filters as skfilters
from skimage import morphology, restoration

from segmentation.filters import apply_filter, filter_image, subtract_background
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
