"""segment() against the course's recipe written out with plain calls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage import measure
from skimage.measure import label
from skimage.morphology import closing, disk, remove_small_objects
from skimage.segmentation import watershed

from testdata import SAMPLE, require_shared
from segmentation import ImageReadError, Params, segment


def course_recipe(image: np.ndarray) -> np.ndarray:
    """The BoBiAC lab, step by step, in scikit-image 0.26 names."""
    smooth = gaussian(image, sigma=1)
    mask = smooth > threshold_otsu(smooth)
    mask = remove_small_objects(mask, max_size=9)  # = min_size=10 before 0.26
    mask = closing(mask, disk(1))
    distance = ndi.distance_transform_edt(mask)
    coords = peak_local_max(distance, footprint=np.ones((25, 25)), min_distance=10)
    peaks = np.zeros(distance.shape, dtype=bool)
    peaks[tuple(coords.T)] = True
    seeds = label(peaks)
    return watershed(-distance, seeds, mask=mask).astype(np.uint32)


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b partition the pixels identically."""
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    # one-to-one: each label of a meets exactly one label of b and vice versa
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


# the sample, then real images from ../shared/data (each case skips, saying why, when the folder is absent)
RECIPE_IMAGES = [
    "sample",
    "bobiac_course/images/u2os_hoechst_003.tif",
    "bobiac_course/images/bg_corr_nuclei_07.tif",
    "bbbc007_kc167_dna/images/17P1_POS0013_D_1UL.tif",
    "bbbc007_kc167_dna/images/20P1_POS0005_D_1UL.tif",
    "nih3t3_hoechst/images/dna-0.png",
]


@pytest.mark.parametrize("name", RECIPE_IMAGES)
def test_default_params_equal_course_recipe(name):
    from segmentation.io import load_plane

    image, _ = load_plane(SAMPLE if name == "sample" else require_shared(name)[0])
    expected = course_recipe(image)
    result = segment(image, Params())
    assert result.labels.dtype == np.uint32
    assert expected.max() > 5, "the recipe should find nuclei on a real image"
    assert same_up_to_renumbering(result.labels, expected)
    assert result.count == len(np.unique(expected)) - 1


def test_same_up_to_renumbering_detects_a_difference():
    a = np.array([[1, 1, 0, 2, 2]])
    assert same_up_to_renumbering(a, np.array([[5, 5, 0, 3, 3]]))
    assert not same_up_to_renumbering(a, np.array([[5, 5, 0, 5, 5]]))  # merged
    assert not same_up_to_renumbering(a, np.array([[5, 6, 0, 3, 3]]))  # split


def test_threshold_of_16bit_image_is_in_its_own_units(dapi16):
    result = segment(dapi16, Params())
    smooth = gaussian(dapi16, sigma=1, preserve_range=True)
    assert result.threshold == pytest.approx(threshold_otsu(smooth))
    # a 12-bit DAPI image: hundreds to thousands, never a 0-1 fraction
    assert 100 < result.threshold < 4096
    assert result.summary["threshold"] == result.threshold


def test_result_holds_every_stage(sample):
    r = segment(sample)
    assert r.filtered.shape == r.mask.shape == r.labels.shape == sample.shape
    assert r.distance is not None and r.distance.max() > 0
    assert len(r.seeds) >= r.count > 50
    assert not (r.removed & (r.labels > 0)).any()
    assert set(r.measurements["label"]) == set(np.unique(r.labels[r.labels > 0]))
    assert r.summary["objects"] == r.count


def test_dark_objects_on_inverted_image_give_same_labels(sample):
    top = int(sample.max())
    inverted = (top - sample.astype(np.int32)).astype(np.uint16)
    bright = segment(sample, Params(filter="none", threshold_method="manual", threshold_value=60))
    dark = segment(inverted, Params(filter="none", threshold_method="manual", threshold_value=top - 60, objects="dark"))
    assert bright.count > 50
    assert same_up_to_renumbering(bright.labels, dark.labels)


def test_mostly_foreground_warns(sample):
    inverted = (sample.max() - sample).astype(np.uint16)
    result = segment(inverted, Params())
    assert any("darker" in w for w in result.warnings)


def test_constant_and_nan_images_raise_clear_errors():
    with pytest.raises(ImageReadError, match="nothing to segment|constant|same value"):
        segment(np.full((32, 32), 7, np.uint16), name="flat.tif")
    img = np.random.default_rng(0).random((32, 32))
    img[3, 3] = np.nan
    with pytest.raises(ImageReadError, match="NaN"):
        segment(img, name="nan.tif")


def test_no_objects_gives_warning_not_error():
    img = np.zeros((64, 64), np.uint16)
    img[0, 0] = 1000  # one bright pixel: below min size
    result = segment(img, Params())
    assert result.count == 0
    assert result.warnings


@pytest.mark.parametrize("name", RECIPE_IMAGES)
def test_distance_map_equals_scipy_edt_on_real_masks(name):
    from segmentation.io import load_plane
    from segmentation.split import distance_map

    image, _ = load_plane(SAMPLE if name == "sample" else require_shared(name)[0])
    mask = segment(image, Params(split="none")).mask
    assert mask.any() and not mask.all()
    np.testing.assert_array_equal(distance_map(mask), ndi.distance_transform_edt(mask))


def test_distance_map_edge_cases():
    from segmentation.split import distance_map

    rng = np.random.default_rng(3)
    for mask in (np.ones((9, 7), bool), np.zeros((9, 7), bool), rng.random((64, 80)) > 0.4, rng.random((64, 80)) > 0.8):
        np.testing.assert_array_equal(distance_map(mask), ndi.distance_transform_edt(mask))
    touching_border = np.zeros((20, 20), bool)
    touching_border[:, :12] = True  # an object spanning the full height
    np.testing.assert_array_equal(distance_map(touching_border), ndi.distance_transform_edt(touching_border))


@pytest.mark.parametrize("name", RECIPE_IMAGES[:3])
def test_split_with_cache_equals_plain_calls(name):
    from segmentation.io import load_plane
    from segmentation.split import find_seeds, split_objects

    image, _ = load_plane(SAMPLE if name == "sample" else require_shared(name)[0])
    cache: dict = {}
    variants = [Params(), Params(min_size=80), Params(min_distance=5, footprint=9), Params(min_size=80),
                Params(distance_sigma=2.0), Params(seed_method="h_maxima", h=1.5), Params()]
    for p in variants:
        mask = segment(image, p).mask
        distance = ndi.distance_transform_edt(mask)
        if p.distance_sigma:
            distance = ndi.gaussian_filter(distance, p.distance_sigma)
        markers, _ = find_seeds(distance, mask, p)
        expected = watershed(-distance, markers, mask=mask)
        with_cache = split_objects(mask, p, cache=cache)
        np.testing.assert_array_equal(with_cache.labels, expected)  # exactly, not only up to renumbering
        np.testing.assert_array_equal(with_cache.distance, distance)
        np.testing.assert_array_equal(split_objects(mask, p).labels, expected)
    assert any(k[0] == "edt" for k in cache)


def test_objects_dropped_for_want_of_a_seed_are_counted_and_reported(sample):
    result = segment(sample, Params())  # the course's recipe drops unseeded objects
    dropped = measure.label(result.mask & (result.labels == 0)).max()
    assert result.summary["dropped_without_seed"] == dropped > 0
    assert any(f"{dropped} objects" in w and "Keep objects without a seed" in w for w in result.warnings)
    kept = segment(sample, Params(keep_unseeded=True))
    assert kept.summary["dropped_without_seed"] == 0
    assert kept.count == result.count + dropped


def test_the_pages_threaded_filter_gives_the_recipes_labels(sample):
    from segmentation.stages import run_stages

    big = np.tile(sample, (2, 3))  # above a megapixel: the Gaussian runs in strips
    threaded = run_stages(big, Params(), threads=2)
    np.testing.assert_array_equal(threaded.filtered, gaussian(big, sigma=Params().sigma, preserve_range=True))
    np.testing.assert_array_equal(threaded.labels, segment(big).labels)
