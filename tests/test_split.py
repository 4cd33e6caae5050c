"""Split: connected components and the watershed recipe, seeds, unseeded objects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import measure, morphology
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import watershed

import segmentation.split as split_module
from segmentation.params import Params
from segmentation.split import EXACT_CV2_DISTANCE, _edt_values, distance_map, find_seeds, split_objects


def watershed_recipe(mask, footprint=25, min_distance=10, distance_sigma=0.0):
    """The course's split, written out with plain calls."""
    distance = ndi.distance_transform_edt(mask)
    if distance_sigma:
        distance = ndi.gaussian_filter(distance, sigma=distance_sigma)
    coords = peak_local_max(distance, footprint=np.ones((footprint, footprint)), min_distance=min_distance)
    peaks = np.zeros(distance.shape, dtype=bool)
    peaks[tuple(coords.T)] = True
    seeds = measure.label(peaks)
    return watershed(-distance, seeds, mask=mask)


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b partition the pixels identically."""
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def disk(shape, cy, cx, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r**2


@pytest.fixture(scope="module")
def mask(sample) -> np.ndarray:
    smooth = gaussian(sample, sigma=1, preserve_range=True)
    m = morphology.remove_small_objects(smooth > threshold_otsu(smooth), max_size=9)
    return morphology.closing(m, morphology.disk(1))


def test_none_equals_label(mask):
    r = split_objects(mask, Params(split="none"))
    np.testing.assert_array_equal(r.labels, measure.label(mask))
    assert r.labels.dtype == np.uint32
    assert r.distance is None and r.seeds.shape == (0, 2) and not r.unseeded.any()


@pytest.mark.parametrize("footprint, min_distance", [(25, 10), (15, 5), (9, 3), (35, 14)])
def test_watershed_equals_plain_recipe(mask, footprint, min_distance):
    r = split_objects(mask, Params(footprint=footprint, min_distance=min_distance))
    expected = watershed_recipe(mask, footprint, min_distance)
    np.testing.assert_array_equal(r.labels, expected)
    assert r.labels.dtype == np.uint32
    np.testing.assert_array_equal(r.distance, ndi.distance_transform_edt(mask))


def test_footprint_and_min_distance_change_the_count(mask):
    fine = split_objects(mask, Params(footprint=9, min_distance=3)).labels.max()
    coarse = split_objects(mask, Params(footprint=35, min_distance=14)).labels.max()
    none = split_objects(mask, Params(split="none")).labels.max()
    assert fine > coarse  # smaller windows: more seeds, more splits
    assert fine > none


def test_two_overlapping_disks_split_into_two_one_disk_stays_one():
    shape = (60, 100)
    two = disk(shape, 30, 35, 18) | disk(shape, 30, 65, 18)
    one = disk(shape, 30, 50, 18)
    p = Params(footprint=15, min_distance=5)
    assert measure.label(two).max() == 1  # they touch
    r = split_objects(two, p)
    assert r.labels.max() == 2
    assert np.array_equal(r.labels > 0, two)
    # the two centres fall in different objects
    assert 0 != r.labels[30, 35] != r.labels[30, 65] != 0
    assert split_objects(one, p).labels.max() == 1
    assert split_objects(two, Params(split="none")).labels.max() == 1


def test_h_maxima_gives_one_seed_for_an_irregular_single_nucleus():
    shape = (80, 100)
    # a lopsided peanut: a large lobe and a smaller one with a shallow neck
    blob = disk(shape, 40, 40, 16) | disk(shape, 40, 54, 13)
    assert measure.label(blob).max() == 1
    h = split_objects(blob, Params(seed_method="h_maxima", h=2.0))
    plm = split_objects(blob, Params(footprint=5, min_distance=2))
    assert h.labels.max() == 1 and len(h.seeds) == 1
    assert plm.labels.max() > 1  # small min_distance cuts the single nucleus
    assert np.array_equal(h.labels > 0, blob)


def test_h_maxima_seeds_equal_textbook_h_maxima(mask):
    distance = ndi.distance_transform_edt(mask)
    markers, coords = find_seeds(distance, mask, Params(seed_method="h_maxima", h=1.5))
    domes = morphology.reconstruction(distance - 1.5, distance, method="dilation")
    expected = measure.label(morphology.local_maxima(domes, allow_borders=True) & mask)
    np.testing.assert_array_equal(markers, expected)
    assert len(coords) == expected.max()
    r = split_objects(mask, Params(seed_method="h_maxima", h=1.5))
    np.testing.assert_array_equal(r.labels, watershed(-distance, expected, mask=mask))


def test_higher_h_gives_fewer_objects(mask):
    low = split_objects(mask, Params(seed_method="h_maxima", h=0.5)).labels.max()
    high = split_objects(mask, Params(seed_method="h_maxima", h=4.0)).labels.max()
    assert low > high > 0


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_distance_sigma_smooths_the_edt(mask, sigma):
    r = split_objects(mask, Params(distance_sigma=sigma))
    expected = ndi.gaussian_filter(ndi.distance_transform_edt(mask), sigma=sigma)
    np.testing.assert_array_equal(r.distance, expected)
    np.testing.assert_array_equal(distance_map(mask, sigma), expected)
    assert same_up_to_renumbering(r.labels, watershed_recipe(mask, distance_sigma=sigma))


def test_strong_smoothing_keeps_seeds_in_the_mask_and_labels_consecutive():
    """A smoothed map can peak outside a non-convex mask (here near a corner)."""
    shape = (80, 100)
    m = (disk(shape, 40, 50, 25) & ~disk(shape, 40, 50, 12)) | disk(shape, 10, 10, 6)
    p = Params(distance_sigma=10.0, footprint=9, min_distance=3)
    r = split_objects(m, p)
    assert len(r.seeds) and m[tuple(r.seeds.T)].all()
    np.testing.assert_array_equal(np.unique(r.labels), np.arange(r.labels.max() + 1))
    assert same_up_to_renumbering(r.labels, watershed_recipe(m, 9, 3, distance_sigma=10.0))


def test_keep_unseeded_adds_the_unseeded_components():
    shape = (60, 120)
    big = disk(shape, 30, 30, 20)
    small = disk(shape, 30, 58, 5)  # inside the big one's footprint: no seed of its own
    far = disk(shape, 30, 100, 12)
    m = big | small | far
    assert measure.label(m).max() == 3
    p = Params(footprint=61, min_distance=5)
    dropped = split_objects(m, p)
    assert dropped.labels.max() == 2
    assert np.array_equal(dropped.unseeded, small)
    assert not dropped.labels[small].any()

    kept = split_objects(m, p.replace(keep_unseeded=True))
    assert kept.labels.max() == 3
    assert np.array_equal(kept.labels > 0, m)
    assert not kept.unseeded.any()
    # the seeded objects keep their labels; the unseeded one is added after them
    np.testing.assert_array_equal(kept.labels[~small], dropped.labels[~small])
    assert set(np.unique(kept.labels[small])) == {3}


def test_keep_unseeded_on_sample_covers_the_whole_mask(mask):
    dropped = split_objects(mask, Params())
    kept = split_objects(mask, Params(keep_unseeded=True))
    n_extra = measure.label(dropped.unseeded).max()
    assert n_extra > 0, "the course recipe leaves some objects without a seed on the sample"
    assert kept.labels.max() == dropped.labels.max() + n_extra
    assert np.array_equal(kept.labels > 0, mask)


@pytest.mark.parametrize("params", [Params(), Params(seed_method="h_maxima"), Params(distance_sigma=2.0)],
                         ids=["peak_local_max", "h_maxima", "smoothed"])
def test_seeds_are_exposed_and_inside_the_mask(mask, params):
    r = split_objects(mask, params)
    assert r.seeds.ndim == 2 and r.seeds.shape[1] == 2 and len(r.seeds) > 50
    assert np.issubdtype(r.seeds.dtype, np.integer)
    assert mask[tuple(r.seeds.T)].all()
    # every seed lies in a labelled object, and each object got one seed
    assert (r.labels[tuple(r.seeds.T)] > 0).all()
    assert len(set(r.labels[tuple(r.seeds.T)].tolist())) == r.labels.max()


def test_empty_mask_gives_no_objects():
    m = np.zeros((20, 20), bool)
    for params in (Params(), Params(seed_method="h_maxima"), Params(split="none")):
        r = split_objects(m, params)
        assert r.labels.max() == 0 and r.labels.dtype == np.uint32
        assert r.seeds.shape == (0, 2)


def test_h_maxima_merges_two_equal_tops_joined_by_a_shallow_dip():
    shape = (80, 100)
    twins = disk(shape, 40, 43, 16) | disk(shape, 40, 57, 16)  # symmetric: both tops equally high
    distance = ndi.distance_transform_edt(twins)
    r = split_objects(twins, Params(seed_method="h_maxima", h=2.0))
    assert len(r.seeds) == 1 and r.labels.max() == 1
    # scikit-image's h_maxima keeps both equal tops, which would cut this nucleus in two
    assert measure.label(morphology.h_maxima(distance, 2.0)).max() == 2


def touching_disks(seed: int, size: int = 192, n: int = 28) -> np.ndarray:
    """Random discs, many overlapping: clumps with seeds of equal height."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    for _ in range(n):
        cy, cx = rng.integers(0, size, 2)
        mask |= disk(mask.shape, cy, cx, int(rng.integers(5, 16)))
    return mask


SPLIT_SETTINGS = [
    Params(),
    Params(footprint=9, min_distance=3),
    Params(footprint=5, min_distance=1),
    Params(footprint=9, min_distance=3, distance_sigma=1.5),
    Params(seed_method="h_maxima", h=1.0),
    Params(seed_method="h_maxima", h=3.0),
]


@pytest.mark.parametrize("seed", range(6))
def test_distance_map_equals_distance_transform_edt_on_diagonally_touching_objects(seed):
    rng = np.random.default_rng(seed)
    noisy = rng.random((120, 150)) > 0.45  # many objects touching only at corners
    blobs = touching_disks(seed, 150)[:120]
    for mask in (noisy, blobs, noisy ^ blobs):
        np.testing.assert_array_equal(distance_map(mask), ndi.distance_transform_edt(mask))
        cache: dict = {}
        distance_map(mask, cache=cache)
        np.testing.assert_array_equal(distance_map(mask, cache=cache), ndi.distance_transform_edt(mask))


@pytest.mark.parametrize("seed", range(8))
def test_each_objects_transform_equals_scipys_on_random_shapes(seed):
    # OpenCV's transform, squared back to its integer and rooted in float64: scipy's values, bit for bit
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = (int(n) for n in rng.integers(1, 400, 2))
        smooth = ndi.gaussian_filter(rng.random((h, w)), float(rng.uniform(0.5, 12)))
        own = smooth > np.quantile(smooth, rng.uniform(0.05, 0.95))
        if rng.random() < 0.3:
            own[rng.integers(0, h), :] = False  # thin gaps and lines
        if not own.any():
            continue
        np.testing.assert_array_equal(_edt_values(own), ndi.distance_transform_edt(own)[own])


def _scipy_calls(monkeypatch) -> list:
    calls = []
    edt = ndi.distance_transform_edt
    monkeypatch.setattr(split_module.ndi, "distance_transform_edt", lambda a: calls.append(a.shape) or edt(a))
    return calls


@pytest.mark.parametrize("height, by_scipy", [(int(EXACT_CV2_DISTANCE), False), (int(EXACT_CV2_DISTANCE) + 1, True)])
def test_distances_at_the_limit_of_float32_go_to_scipy(monkeypatch, height, by_scipy):
    # background only along the top: distances 1 .. height - 1 (outside the box is not background)
    own = np.ones((height, 3), bool)
    own[0] = False
    expected = ndi.distance_transform_edt(own)[own]
    calls = _scipy_calls(monkeypatch)
    np.testing.assert_array_equal(_edt_values(own), expected)
    assert bool(calls) == by_scipy


def test_an_object_without_background_in_its_box_goes_to_scipy(monkeypatch):
    own = np.ones((4, 6), bool)
    expected = ndi.distance_transform_edt(own)[own]
    calls = _scipy_calls(monkeypatch)
    np.testing.assert_array_equal(_edt_values(own), expected)
    assert calls == [(4, 6)]


@pytest.mark.parametrize("footprint, min_distance", [(25, 10), (5, 1), (3, 1)])
def test_peak_local_max_markers_equal_label_of_the_peaks(footprint, min_distance):
    params = Params(footprint=footprint, min_distance=min_distance)
    for seed in range(8):
        mask = touching_disks(seed)
        distance = distance_map(mask)
        markers, coords = find_seeds(distance, mask, params)
        peaks = np.zeros(mask.shape, bool)
        peaks[tuple(coords.T)] = True
        np.testing.assert_array_equal(markers, measure.label(peaks))
        assert markers.dtype == np.int32 and 0 < markers.max() <= len(coords)  # touching peaks make one seed


@pytest.mark.parametrize("params", [*SPLIT_SETTINGS, Params(keep_unseeded=True), Params(split="none")],
                         ids=lambda p: f"{p.split}-{p.seed_method}-{p.footprint}-{p.min_distance}-{p.keep_unseeded}")
def test_split_labels_are_numbered_1_to_n_without_gaps(params):
    # label_objects relies on this to skip renumbering when no object filter is on
    for seed in range(4):
        labels = split_objects(touching_disks(seed), params).labels
        assert labels.dtype == np.uint32
        np.testing.assert_array_equal(np.unique(labels), np.arange(int(labels.max()) + 1))
