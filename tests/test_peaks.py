"""segmentation/_peaks.py: the same peaks as skimage.feature.peak_local_max, on random and real maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.feature import peak_local_max as skimage_peaks

from segmentation import Params, segment
from segmentation._peaks import _nonzero, peak_local_max
from testdata import SAMPLE, require_shared


def same(image, footprint, min_distance):
    expected = skimage_peaks(image, footprint=np.ones((footprint, footprint)), min_distance=min_distance)
    got = peak_local_max(image, footprint, min_distance)
    np.testing.assert_array_equal(got, expected.reshape(-1, 2), err_msg=f"footprint {footprint}, min_distance "
                                                                        f"{min_distance}")


def blobs(seed: int, shape=(97, 131)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndi.binary_dilation(rng.random(shape) < 0.02, iterations=int(rng.integers(2, 9)))


@pytest.mark.parametrize("seed", range(10))
def test_distance_maps_of_random_masks(seed):
    rng = np.random.default_rng(seed)
    distance = ndi.distance_transform_edt(blobs(seed))
    for footprint, min_distance in [(25, 10), (1, 1), (2, 1), (3, 1), (8, 3), (15, 0), (40, 7), (301, 2)]:
        same(distance, footprint, min_distance)
    smooth = ndi.gaussian_filter(distance, float(rng.uniform(0.5, 3)))  # arbitrary floats, near-ties
    for footprint, min_distance in [(25, 10), (9, 4), (6, 2)]:
        same(smooth, footprint, min_distance)


@pytest.mark.parametrize("seed", range(6))
def test_plateaus_ties_and_float32_collisions(seed):
    rng = np.random.default_rng(100 + seed)
    flat = rng.integers(0, 4, (60, 70)).astype(np.float64)  # many exact ties
    for footprint, min_distance in [(3, 1), (5, 2), (11, 5)]:
        same(flat, footprint, min_distance)
    # values that float32 cannot tell apart: float32 candidates that the exact check must reject
    close = 1000.0 + rng.integers(0, 3, (50, 50)) * 1e-9
    for footprint, min_distance in [(3, 1), (7, 2)]:
        same(close, footprint, min_distance)


def test_edge_cases():
    same(np.zeros((20, 20)), 25, 10)  # nothing above the minimum
    same(np.full((20, 20), 3.0), 5, 1)  # constant
    one = np.zeros((20, 20)); one[10, 10] = 1
    same(one, 25, 10)
    same(one, 5, 15)  # border exclusion wider than the image
    same(np.arange(6.0).reshape(2, 3), 3, 1)  # tiny
    same(np.array([[0.0, 2.0, 0.0]]), 1, 1)


@pytest.mark.parametrize("name", ["sample", "bobiac_course/images/u2os_hoechst_003.tif",
                                  "nih3t3_hoechst/images/dna-0.png"])
def test_real_distance_maps(name):
    from segmentation.io import load_plane

    image, _ = load_plane(SAMPLE if name == "sample" else require_shared(name)[0])
    mask = segment(image, Params(split="none")).mask
    distance = ndi.distance_transform_edt(mask)
    for footprint, min_distance in [(25, 10), (15, 5), (9, 3)]:
        same(distance, footprint, min_distance)
    same(ndi.gaussian_filter(distance, 2.0), 25, 10)


# --- with a cache: the candidates of the previous map reused where it did not change ----------


def test_a_cache_follows_objects_removed_and_added(dapi16):
    """A min size sweep up and down on a real image: each map differs from the last by a few objects."""
    from segmentation import _peaks
    from segmentation.refine import remove_small

    big = np.tile(dapi16, (2, 2))[:1100, :1300]  # several tiles, objects across tile edges
    mask = segment(big, Params(split="none", min_size=1)).mask
    cache: dict = {}
    calls = []
    real = _peaks._candidates
    _peaks._candidates = lambda region, *a: calls.append(region.size) or real(region, *a)
    try:
        for min_size in [1, 200, 400, 600, 400, 50, 2000, 1]:
            distance = ndi.distance_transform_edt(remove_small(mask, min_size))
            for footprint, min_distance in [(25, 10), (9, 3), (300, 2)]:
                expected = skimage_peaks(distance, footprint=np.ones((footprint,) * 2), min_distance=min_distance)
                got = peak_local_max(distance, footprint, min_distance, cache=cache)
                np.testing.assert_array_equal(got, expected.reshape(-1, 2), err_msg=f"min size {min_size}, "
                                              f"footprint {footprint}")
    finally:
        _peaks._candidates = real
    assert min(calls) < big.size / 4  # some calls really filtered only a few tiles


@pytest.mark.parametrize("seed", range(8))
def test_a_cache_on_random_changes(seed):
    rng = np.random.default_rng(seed)
    cache: dict = {}
    mask = blobs(seed, shape=(300, 420))
    for _ in range(6):
        # remove or add a few blobs anywhere, near tile edges included
        labels, n = ndi.label(mask)
        gone = rng.choice(np.arange(1, n + 1), size=min(n, 3), replace=False)
        mask = mask & ~np.isin(labels, gone) | (blobs(int(rng.integers(1000)), shape=mask.shape)
                                                 & (rng.random(mask.shape) < 0.002))
        distance = ndi.distance_transform_edt(mask)
        for footprint, min_distance in [(25, 10), (8, 3), (131, 1)]:
            expected = skimage_peaks(distance, footprint=np.ones((footprint,) * 2), min_distance=min_distance)
            np.testing.assert_array_equal(peak_local_max(distance, footprint, min_distance, cache=cache),
                                          expected.reshape(-1, 2))
    smooth = ndi.gaussian_filter(distance, 1.5)  # the whole map changes: computed afresh
    np.testing.assert_array_equal(peak_local_max(smooth, 25, 10, cache=cache),
                                  skimage_peaks(smooth, footprint=np.ones((25, 25)), min_distance=10).reshape(-1, 2))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (1, 7), (7, 1), (64, 48), (300, 301)])
def test_nonzero_is_numpys_in_the_same_order(shape):
    rng = np.random.default_rng(sum(shape))
    for density in (0.0, 0.001, 0.3, 1.0):
        mask = rng.random(shape) < density
        for view in (mask, mask[::2, ::3], mask.T):
            expected = np.transpose(np.nonzero(view))
            got = _nonzero(view)
            np.testing.assert_array_equal(got, expected)
            assert got.shape == expected.shape and got.dtype == expected.dtype
