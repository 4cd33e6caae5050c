"""segmentation/_watershed.py: flooded object by object, the labels of one whole-image watershed call.

The random comparison reaches every branch of the tie handling (the cap on
orders, both reasons :func:`_can_go_first` refuses, orders that agree and
orders that disagree), so deleting a guard turns this file red.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import morphology
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import watershed

from segmentation._watershed import _queued_before, watershed_by_object
from segmentation.params import Params
from segmentation.split import distance_map, find_seeds
from test_split import SPLIT_SETTINGS, disk, touching_disks


@pytest.mark.parametrize("params", SPLIT_SETTINGS, ids=lambda p: f"{p.seed_method}-{p.footprint}-{p.min_distance}-"
                         f"{p.distance_sigma}-{p.h}")
def test_equals_one_whole_image_call_on_real_seeds(params):
    for seed in range(12):
        mask = touching_disks(seed)
        distance = distance_map(mask, params.distance_sigma)
        markers, _ = find_seeds(distance, mask, params)
        expected = watershed(-distance, markers, mask=mask)
        np.testing.assert_array_equal(watershed_by_object(distance, markers, mask), expected, err_msg=f"seed {seed}")


def random_case(rng: np.random.Generator):
    """A small mask, a height map with many exact ties, and seeds: often tied, sometimes a lower one,
    sometimes with pixels one ulp below the tied seeds' level."""
    h, w = rng.integers(10, 28, 2)
    kind = rng.integers(3)
    mask = ndi.binary_dilation(rng.random((h, w)) < 0.08, iterations=int(rng.integers(1, 4)))
    pixels = np.flatnonzero(mask)
    if pixels.size < 4:
        return None
    if kind == 0:
        distance = ndi.distance_transform_edt(mask)
    elif kind == 1:
        distance = np.round(ndi.distance_transform_edt(mask) * 2) / 2
    else:
        distance = rng.integers(0, 4, (h, w)).astype(float)
    chosen = rng.choice(pixels, size=min(int(rng.integers(2, 7)), pixels.size), replace=False)
    level = distance.ravel()[chosen].max()
    if rng.random() < 0.7:
        distance.ravel()[chosen] = level  # tied seeds
    if rng.random() < 0.5:  # a lower seed (higher on the distance map)
        extra = rng.choice(pixels)
        distance.ravel()[extra] = level + 1
        chosen = np.append(chosen, extra)
    if rng.random() < 0.5:  # pixels an ulp below the tied seeds
        nudged = (rng.random(distance.shape) < 0.15) & mask
        nudged.ravel()[chosen] = False
        distance[nudged] = np.nextafter(level, np.inf)
    markers = np.zeros(mask.shape, np.int32)
    same_labels = rng.random() < 0.3
    markers.ravel()[chosen] = rng.integers(1, 4, chosen.size) if same_labels else np.arange(1, chosen.size + 1)
    return distance, markers, mask


def equal_on_random_cases(make_case, seed: int, n: int) -> Counter:
    """Compare with one whole-image call on `n` cases of `make_case`; how the objects were settled."""
    rng = np.random.default_rng(seed)
    trace: Counter = Counter()
    for i in range(n):
        case = make_case(rng)
        if case is None:
            continue
        distance, markers, mask = case
        got = watershed_by_object(distance, markers, mask, trace=trace)
        np.testing.assert_array_equal(got, watershed(-distance, markers, mask=mask), err_msg=f"case {i}")
    return trace


def test_random_ties_equal_one_whole_image_call_and_reach_every_branch():
    trace = equal_on_random_cases(random_case, 20261130, 1500)
    for branch in ("flooded", "orders_agree", "orders_disagree", "too_many_orders",
                   "cannot_go_first: pixel_just_below", "cannot_go_first: lower_neighbour"):
        assert trace[branch] > 0, f"the random cases never reached {branch!r}: {dict(trace)}"
    assert trace["time_bound"] == 0, "the search over orders should stay far below its time bound"


def test_a_pixel_just_below_tied_seeds_sends_the_image_to_one_call():
    # Seeds 1 and 5 tie at distance 3; seed 6 (distance 4) floods through pixels at 3 + 1 ulp, which the
    # whole-image queue takes before the tied seeds. Lowering the tied seeds to order them would take them first.
    just = np.nextafter(3.0, np.inf)
    distance = np.array([
        [2.0, 1.5, 3.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0, 0.0], [2.0, 1.5, 4.0, 0.0, 0.0],
        [3.0, just, just, 0.0, 0.0], [3.0, 2.0, 1.5, just, 0.0], [2.0, 2.0, 2.0, 1.5, just],
        [1.0, 1.5, 1.5, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0],
    ])
    mask = distance > 0
    markers = np.zeros(mask.shape, np.int32)
    markers[0, 2], markers[2, 2], markers[4, 0] = 1, 6, 5
    trace: Counter = Counter()
    got = watershed_by_object(distance, markers, mask, trace=trace)
    np.testing.assert_array_equal(got, watershed(-distance, markers, mask=mask))
    assert trace["cannot_go_first: pixel_just_below"] == 1


def test_more_tied_seeds_than_the_cap_go_to_one_call_without_trying_orders():
    # five equal discs in a row: five seeds of exactly equal height in one object, 5! = 120 orders
    mask = np.zeros((30, 110), bool)
    for cx in (15, 35, 55, 75, 95):
        mask |= disk(mask.shape, 15, cx, 11)
    distance = ndi.distance_transform_edt(mask)
    markers = np.zeros(mask.shape, np.int32)
    for i, cx in enumerate((15, 35, 55, 75, 95), start=1):
        markers[15, cx] = i
    assert len({distance[15, cx] for cx in (15, 35, 55, 75, 95)}) == 1
    trace: Counter = Counter()
    got = watershed_by_object(distance, markers, mask, trace=trace)
    np.testing.assert_array_equal(got, watershed(-distance, markers, mask=mask))
    assert trace == Counter({"too_many_orders": 1})


def test_symmetric_clump_whose_answer_depends_on_seed_order_floods_the_whole_image():
    # two equal discs overlapping symmetrically: the seeds tie, and pixels on the
    # mirror line go to whichever seed the queue takes first
    mask = disk((40, 61), 20, 20, 12) | disk((40, 61), 20, 40, 12)
    mask |= disk((40, 61), 5, 55, 3)  # an unrelated small object elsewhere
    distance = ndi.distance_transform_edt(mask)
    markers = np.zeros(mask.shape, np.int32)
    markers[20, 20], markers[20, 40], markers[5, 55] = 1, 2, 3
    assert distance[20, 20] == distance[20, 40]
    trace: Counter = Counter()
    out = watershed_by_object(distance, markers, mask, trace=trace)
    np.testing.assert_array_equal(out, watershed(-distance, markers, mask=mask))
    assert trace["orders_disagree"] == 1, "the tie should take the whole image's order"


def test_tied_seeds_whose_order_does_not_matter_stay_object_by_object(sample):
    smooth = gaussian(sample, sigma=1, preserve_range=True)
    mask = morphology.closing(morphology.remove_small_objects(smooth > threshold_otsu(smooth), max_size=9),
                              morphology.disk(1))
    distance = distance_map(mask)
    markers, _ = find_seeds(distance, mask, Params())
    # precondition: some object of the sample holds two seeds of exactly equal height
    objects, _ = ndi.label(mask)
    px = np.flatnonzero(markers)
    pairs = np.stack([objects.ravel()[px], distance.ravel()[px]])
    assert np.unique(pairs, axis=1).shape[1] < px.size
    trace: Counter = Counter()
    out = watershed_by_object(distance, markers, mask, trace=trace)
    np.testing.assert_array_equal(out, watershed(-distance, markers, mask=mask))
    assert trace["orders_agree"] > 0
    assert set(trace) <= {"flooded", "orders_agree"}, f"no object should need the whole image: {dict(trace)}"


def test_a_cache_of_floods_gives_the_same_labels_as_flooding_again():
    # masks that lose and gain objects between calls, as min size changes do; seeds renumbered each time
    rng = np.random.default_rng(7)
    cache: dict = {}
    trace: Counter = Counter()
    base = touching_disks(3, size=160, n=30)
    for step in range(6):
        mask = base.copy()
        drop = rng.random(3) < 0.5
        for k, (cy, cx) in enumerate([(20, 20), (80, 80), (140, 40)]):
            if drop[k]:
                mask[cy - 15:cy + 15, cx - 15:cx + 15] = False
        distance = ndi.distance_transform_edt(mask)
        markers, _ = find_seeds(distance, mask, Params(footprint=9, min_distance=3))
        markers = np.where(markers > 0, markers.max() + 1 - markers, 0)  # other numbers, same seeds
        got = watershed_by_object(distance, markers, mask, cache=cache, trace=trace)
        np.testing.assert_array_equal(got, watershed(-distance, markers, mask=mask), err_msg=f"step {step}")
    assert trace["cached"] > 0 and trace["flooded"] > 0


def crowded_case(rng: np.random.Generator):
    """Many objects in one image, seeds tied within and across objects: several objects need the
    whole image's order of their tied seeds, while others are flooded deeper or shallower."""
    h, w = rng.integers(30, 70, 2)
    mask = ndi.binary_dilation(rng.random((h, w)) < 0.03, iterations=int(rng.integers(2, 5)))
    pixels = np.flatnonzero(mask)
    if pixels.size < 10:
        return None
    kind = rng.integers(3)
    distance = ndi.distance_transform_edt(mask)
    if kind == 1:
        distance = np.round(distance * 2) / 2
    elif kind == 2:  # not a distance map: neighbours may differ by more than one
        distance = np.where(mask, rng.integers(0, 6, (h, w)), 0).astype(float)
    chosen = rng.choice(pixels, size=min(int(rng.integers(4, 16)), pixels.size), replace=False)
    levels = np.unique(distance.ravel()[chosen])
    distance.ravel()[chosen] = rng.choice(levels[-3:], chosen.size)  # a few levels, shared across objects
    markers = np.zeros(mask.shape, np.int32)
    shared = rng.random() < 0.3  # some seeds share a label, as the pixels of one h-maxima plateau do
    markers.ravel()[chosen] = rng.integers(1, 6, chosen.size) if shared else np.arange(1, chosen.size + 1)
    return distance, markers, mask


def test_objects_needing_the_whole_image_are_flooded_in_the_region_queued_before_their_seeds(monkeypatch):
    import segmentation._watershed as module

    regions = []
    queued_before = module._queued_before

    def spy(height, markers, mask, objects, level):
        region = queued_before(height, markers, mask, objects, level)
        regions.append((np.count_nonzero(region), np.count_nonzero(mask)))
        return region

    monkeypatch.setattr(module, "_queued_before", spy)
    trace = equal_on_random_cases(crowded_case, 11302026, 1200)
    assert trace["orders_disagree"] > 50 and trace["too_many_orders"] > 0, dict(trace)
    assert len(regions) > 50
    assert sum(r < m for r, m in regions) > len(regions) // 4, "the region should often leave pixels out"


def test_queued_before_is_the_seeds_the_pixels_up_to_the_level_their_neighbours_and_the_objects():
    height = -np.array([[5.0, 4.0, 1.0, 1.0, 1.0],
                        [4.0, 3.0, 1.0, 0.0, 2.0],
                        [1.0, 1.0, 1.0, 0.0, 1.0]])
    mask = height < 0
    markers = np.zeros(height.shape, np.int32)
    markers[0, 0], markers[1, 4] = 1, 2
    objects = np.zeros(height.shape, bool)
    region = _queued_before(height, markers, mask, objects, level=-3.0)
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 1, 1, 0, 1],
                         [1, 1, 0, 0, 0]], bool)
    np.testing.assert_array_equal(region, expected)
    objects[:, 4] = True
    assert _queued_before(height, markers, mask, objects, level=-3.0)[:, 4].tolist() == [True, True, True]
    assert _queued_before(np.where(mask, np.nan, 0.0), markers, mask, objects, level=-3.0) is None
    assert _queued_before(height, markers, mask, objects, level=-np.inf) is None


@pytest.mark.parametrize("level", [np.finfo(np.float64).max, np.inf, np.nan])
def test_seeds_tied_where_no_ulp_is_left_below_get_the_whole_image_call(level):
    # X . A m B on one row: alone, A floods m; in the whole image the queue takes B first
    mask = np.zeros((3, 5), bool)
    mask[1, [0, 2, 3, 4]] = True
    distance = np.zeros((3, 5))
    distance[1, [0, 2, 4]] = level
    distance[1, 3] = 1.0
    markers = np.zeros((3, 5), np.int32)
    markers[1, 0], markers[1, 2], markers[1, 4] = 3, 1, 2
    expected = watershed(-distance, markers, mask=mask)
    assert expected[1].tolist() == [3, 0, 1, 2, 2]
    np.testing.assert_array_equal(watershed_by_object(distance, markers, mask), expected)


@pytest.mark.parametrize("dtype, labels", [(np.int64, (1, 2**32 + 1)), (np.int64, (1, 2**31)),
                                           (np.uint32, (1, 2**32 - 1)), (np.uint64, (5, 2**40)),
                                           (np.int64, (-7, 9)), (np.uint16, (1, 2**16 - 1))])
def test_labels_of_any_integer_type_come_back_as_scikit_image_gives_them(dtype, labels):
    mask = np.zeros((3, 5), bool)
    mask[1] = True
    distance = np.array([[0, 0, 0, 0, 0], [3, 2, 1, 2, 3], [0, 0, 0, 0, 0]], float)
    markers = np.zeros((3, 5), dtype)
    markers[1, 0], markers[1, 4] = labels
    got = watershed_by_object(distance, markers, mask)
    np.testing.assert_array_equal(got, watershed(-distance, markers, mask=mask))
    assert set(np.unique(got[1]).tolist()) == set(labels)


def test_an_empty_image_gives_empty_labels():
    empty = np.zeros((0, 5))
    got = watershed_by_object(empty, np.zeros((0, 5), np.int32), empty > 0)
    assert got.shape == (0, 5)
