"""Refine: mask clean-up equals the plain morphology calls; object filters renumber."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation
from skimage.filters import gaussian, threshold_otsu

from segmentation.params import Params
from segmentation.refine import closing, connected_components, fill_holes, filter_objects, opening, refine_mask, remove_small

OFF = dict(min_size=0, closing_radius=0, opening_radius=0, fill_holes=False)


@pytest.fixture(scope="module")
def binary(sample) -> np.ndarray:
    """The sample thresholded as in the course, before any clean-up."""
    smooth = gaussian(sample, sigma=1, preserve_range=True)
    return smooth > threshold_otsu(smooth)


@pytest.mark.parametrize("min_size", [2, 10, 40, 150])
def test_min_size_equals_remove_small_objects(binary, min_size):
    expected = morphology.remove_small_objects(binary, max_size=min_size - 1)
    np.testing.assert_array_equal(remove_small(binary, min_size), expected)
    np.testing.assert_array_equal(refine_mask(binary, Params(**{**OFF, "min_size": min_size})), expected)
    assert (expected != binary).any(), "the test image should have objects to remove"


def test_object_of_exactly_min_size_is_kept_one_less_removed():
    mask = np.zeros((20, 30), bool)
    mask[2, 2:12] = True  # 10 px
    mask[8, 2:11] = True  # 9 px
    mask[14:17, 14:17] = True  # 9 px (3 x 3)
    out = remove_small(mask, 10)
    assert out[2, 2:12].all()
    assert not out[8].any() and not out[14:17, 14:17].any()
    assert out.sum() == 10


def test_remove_small_is_4_connected_like_remove_small_objects():
    mask = np.zeros((12, 12), bool)
    idx = np.arange(10)
    mask[idx, idx] = True  # a diagonal line: ten 1-px objects when 4-connected
    np.testing.assert_array_equal(remove_small(mask, 2), morphology.remove_small_objects(mask, max_size=1))
    assert not remove_small(mask, 2).any()


@pytest.mark.parametrize("min_size", [0, 1])
def test_min_size_0_or_1_keeps_everything_and_copies(binary, min_size):
    out = remove_small(binary, min_size)
    np.testing.assert_array_equal(out, binary)
    assert out is not binary


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_closing_equals_skimage_closing(binary, radius):
    out = refine_mask(binary, Params(**{**OFF, "closing_radius": radius}))
    expected = morphology.closing(binary, morphology.disk(radius))
    np.testing.assert_array_equal(out, expected)
    assert (expected != binary).any()


@pytest.mark.parametrize("radius", [1, 3])
def test_opening_equals_skimage_opening(binary, radius):
    out = refine_mask(binary, Params(**{**OFF, "opening_radius": radius}))
    expected = morphology.opening(binary, morphology.disk(radius))
    np.testing.assert_array_equal(out, expected)
    assert (expected != binary).any()


def random_masks(n: int = 25, seed: int = 0):
    """Blobby masks of odd sizes with objects on every edge, holes and thin gaps."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        noise = rng.random((int(rng.integers(6, 90)), int(rng.integers(6, 90))))
        yield ndi.gaussian_filter(noise, float(rng.uniform(0.6, 3))) > rng.uniform(0.46, 0.54)


@pytest.mark.parametrize("radius", range(1, 8))
def test_closing_and_opening_equal_skimage_on_random_masks(radius):
    changed = 0
    for mask in random_masks():
        expected_closed = morphology.closing(mask, morphology.disk(radius))
        expected_opened = morphology.opening(mask, morphology.disk(radius))
        np.testing.assert_array_equal(closing(mask, radius), expected_closed)
        np.testing.assert_array_equal(opening(mask, radius), expected_opened)
        changed += int((expected_closed != mask).any()) + int((expected_opened != mask).any())
    assert changed > 10, "the masks should give the operations something to do"


def test_fill_holes_and_remove_small_with_labels_equal_plain_calls_on_random_masks():
    for mask in random_masks(seed=1):
        np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))
        labels = connected_components(mask)
        assert labels.dtype == np.int32
        for min_size in (2, 7, 30):
            expected = morphology.remove_small_objects(mask, max_size=min_size - 1)
            np.testing.assert_array_equal(remove_small(mask, min_size, labels), expected)
            np.testing.assert_array_equal(refine_mask(mask, Params(**{**OFF, "min_size": min_size}), labels), expected)


@pytest.fixture()
def holey() -> np.ndarray:
    """Two squares: one with a 49-px hole, one with a 4-px hole; and a notch open to the border."""
    mask = np.zeros((40, 60), bool)
    mask[2:19, 2:19] = True
    mask[7:14, 7:14] = False  # 49 px hole
    mask[2:19, 30:47] = True
    mask[9:11, 37:39] = False  # 4 px hole
    mask[25:40, 10:30] = True
    mask[32:40, 18:22] = False  # open to the bottom border: not a hole
    return mask


def test_fill_all_holes_equals_binary_fill_holes(holey):
    out = fill_holes(holey, 0)
    np.testing.assert_array_equal(out, ndi.binary_fill_holes(holey))
    assert out[7:14, 7:14].all() and out[9:11, 37:39].all()
    assert not out[32:40, 18:22].any()


@pytest.mark.parametrize("max_hole_size", [4, 10, 48])
def test_fill_holes_up_to_size_equals_remove_small_holes(holey, max_hole_size):
    out = fill_holes(holey, max_hole_size)
    np.testing.assert_array_equal(out, morphology.remove_small_holes(holey, max_size=max_hole_size))
    assert out[9:11, 37:39].all()  # the 4 px hole: up to and including max_hole_size
    assert not out[7:14, 7:14].any()  # the 49 px hole stays


def test_fill_holes_through_params(holey):
    all_filled = refine_mask(holey, Params(**{**OFF, "fill_holes": True}))
    small_only = refine_mask(holey, Params(**{**OFF, "fill_holes": True, "max_hole_size": 10}))
    np.testing.assert_array_equal(all_filled, ndi.binary_fill_holes(holey))
    np.testing.assert_array_equal(small_only, morphology.remove_small_holes(holey, max_size=10))
    # without fill_holes, max_hole_size does nothing
    np.testing.assert_array_equal(refine_mask(holey, Params(**{**OFF, "max_hole_size": 10})), holey)


def test_refine_chain_in_course_order(binary):
    p = Params(min_size=25, closing_radius=2, opening_radius=1, fill_holes=True, max_hole_size=30)
    expected = morphology.remove_small_objects(binary, max_size=24)
    expected = morphology.closing(expected, morphology.disk(2))
    expected = morphology.opening(expected, morphology.disk(1))
    expected = morphology.remove_small_holes(expected, max_size=30)
    out = refine_mask(binary, p)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)


def _labels() -> np.ndarray:
    labels = np.zeros((30, 40), np.uint32)
    labels[0:5, 10:15] = 1  # 25 px, touches the top border
    labels[10:20, 10:20] = 2  # 100 px
    labels[12:15, 25:28] = 4  # 9 px (label 3 unused)
    labels[25:30, 35:40] = 5  # 25 px, touches the bottom-right corner
    labels[22:26, 2:8] = 7  # 24 px
    return labels


def test_filter_objects_max_size_keeps_exactly_max_size():
    labels = _labels()
    out = filter_objects(labels, max_size=25)
    assert out.dtype == np.uint32
    kept_sizes = sorted(np.bincount(out.ravel())[1:].tolist())
    assert kept_sizes == [9, 24, 25, 25]  # the 100 px object is gone, 25 px kept
    assert not out[10:20, 10:20].any()
    np.testing.assert_array_equal(np.unique(out), np.arange(5))  # renumbered 1..N


def test_filter_objects_exclude_border_equals_clear_border():
    labels = _labels()
    out = filter_objects(labels, exclude_border=True)
    assert out.dtype == np.uint32
    assert not out[0, :].any() and not out[-1, :].any() and not out[:, 0].any() and not out[:, -1].any()
    expected = segmentation.relabel_sequential(segmentation.clear_border(labels))[0]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.unique(out), np.arange(4))  # objects 2, 4, 7 -> 1, 2, 3
    # the same partition as the kept objects
    assert np.array_equal(out > 0, np.isin(labels, [2, 4, 7]))


def test_filter_objects_both_filters():
    out = filter_objects(_labels(), max_size=50, exclude_border=True)
    assert out.max() == 2 and sorted(np.bincount(out.ravel())[1:].tolist()) == [9, 24]


def test_filter_objects_nothing_to_remove_still_numbers_1_to_n_as_uint32():
    labels = measure.label(_labels() > 0).astype(np.uint32)
    np.testing.assert_array_equal(filter_objects(labels), labels)
    np.testing.assert_array_equal(filter_objects(labels, max_size=1000), labels)
    gappy = np.where(labels == 1, 0, labels).astype(np.int64)  # label 1 missing
    out = filter_objects(gappy)
    assert out.dtype == np.uint32
    assert sorted(np.unique(out[out > 0]).tolist()) == list(range(1, int(labels.max())))
