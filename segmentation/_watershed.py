"""The course's watershed, flooded one object at a time, with exactly the same labels.

``skimage.segmentation.watershed(-distance, markers, mask=mask)`` floods the
whole image through one priority queue.  This module floods each 4-connected
object of the mask on its own, which skips the whole-image copies of the
single call (about twice as fast at 2048×2048), and gives the same labels,
pixel for pixel.

The invariant
-------------
Water never crosses the background, so what happens inside one object depends
only on that object's pixels and seeds, and on the order in which the queue
takes pixels of *equal height*.  scikit-image's queue orders pixels by height,
then by when they were pushed.  All seeds are pushed at the start; every other
pixel is pushed by a neighbour of its own object.  So the rest of the image
can sway an object only through the order of its seeds of exactly equal
height ("tied" seeds).  Hence:

- an object with a single seed label takes that label everywhere;
- an object whose seeds all differ in height floods the same alone as in
  the whole image;
- an object with tied seeds is flooded once for every order of them (each
  order forced by lowering the tied seeds by a few ulps); if every order
  gives the same labels, that is the whole image's answer too.

When the orders disagree, or one of two guards of that last step fails, the
object goes to one call that orders its tied seeds as the whole image does.
The guards:

- :func:`_can_go_first`: lowering the tied seeds must only decide their own
  order; it may not move them past another pixel of the object (a pixel
  within those ulps below) nor change what a neighbour inherits (a seed
  with a lower neighbour);
- :data:`MAX_TIE_ORDERS` and :data:`MAX_TIE_SECONDS`: the orders to try grow
  factorially; beyond the cap, or after the time bound, stop trying.

That call floods only the pixels the whole image's queue takes before
those seeds have left it, their edge neighbours, every seed and the objects
handed over (:func:`_queued_before`): the queue then goes through the same
steps up to that moment, so it orders the seeds the same (3.6x faster than
flooding the whole image again, ``benchmarks/replacements_bench.py``).

``tests/test_watershed.py`` compares with scikit-image on seeded random
masks that reach every one of these branches.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections import Counter

import numpy as np
from scipy import ndimage as ndi
from skimage import segmentation

__all__ = ["ObjectTable", "watershed_by_object", "MAX_TIE_ORDERS", "MAX_TIE_SECONDS"]

# An object whose tied seeds could be queued in more orders than this gets the whole image's order of them.
MAX_TIE_ORDERS = 24
# The search over orders of tied seeds gives up (the whole image's order) after this long for one image.
MAX_TIE_SECONDS = 2.0
# Heights beyond this (or not numbers) cannot be lowered by a few ulps to order tied seeds: one whole-image call.
HEIGHT_LIMIT = np.finfo(np.float64).max / 2


class ObjectTable:
    """The 4-connected objects of a mask, each with its box grown by one pixel.

    The same objects serve the distance transform and the watershed, which
    floods through the 4 edge neighbours of each pixel.
    """

    def __init__(self, mask: np.ndarray):
        self.mask = mask
        self.labels, self.count = ndi.label(mask)
        h, w = mask.shape
        self.boxes = [
            (slice(max(r.start - 1, 0), min(r.stop + 1, h)), slice(max(c.start - 1, 0), min(c.stop + 1, w)))
            for r, c in ndi.find_objects(self.labels)
        ]
        self._keys: list[bytes] | None = None

    def own(self, i: int) -> np.ndarray:
        """Object ``i`` (0-based) in its box, as a bool array."""
        return self.labels[self.boxes[i]] == i + 1

    def keys(self) -> list[bytes]:
        """A digest of each object's pixels and position (a cache key)."""
        if self._keys is None:
            self._keys = []
            for i, box in enumerate(self.boxes):
                digest = hashlib.blake2b(self.own(i).tobytes(), digest_size=16)
                digest.update(repr((box[0].start, box[1].start, box[0].stop, box[1].stop)).encode())
                self._keys.append(digest.digest())
        return self._keys


def watershed_by_object(
    distance: np.ndarray,
    markers: np.ndarray,
    mask: np.ndarray,
    seed_px: np.ndarray | None = None,
    objects: ObjectTable | None = None,
    trace: Counter | None = None,
    cache: dict | None = None,
) -> np.ndarray:
    """``skimage.segmentation.watershed(-distance, markers, mask=mask)``, one object at a time.

    Parameters
    ----------
    distance : (M, N) float ndarray
        The map to flood from its maxima (it is negated, as in the course).
    markers : (M, N) int ndarray
        Labelled seeds, 0 elsewhere.
    mask : (M, N) bool ndarray
    seed_px : 1-D int ndarray, optional
        Raveled indices of every nonzero pixel of `markers`, when known
        (saves a pass over the whole image; those outside the mask are dropped).
    objects : ObjectTable, optional
        ``ObjectTable(mask)``, when already built.
    trace : collections.Counter, optional
        Counts how each object with several seeds was settled: ``"flooded"``
        (no tied seeds), ``"orders_agree"``, and the reasons for taking the whole
        image's order of its tied seeds: ``"too_many_orders"``,
        ``"cannot_go_first: pixel_just_below"``, ``"cannot_go_first: lower_neighbour"``,
        ``"orders_disagree"``, ``"time_bound"``; and ``"cached"`` for an object found in `cache`.
    cache : dict, optional
        Floods of objects seen before, kept between calls: an object with the
        same pixels (and position) and the same seeds (positions, and which
        seeds share a label) floods the same, whatever the numbers its labels
        have.  Only valid while the heights of each object depend on the
        object alone (an unsmoothed distance transform); the caller decides.

    Returns
    -------
    (M, N) int32 ndarray
        (scikit-image's own answer, in the markers' type, where a label does
        not fit int32 or a height is not a finite number well within the
        float range)

    Examples
    --------
    >>> m = np.zeros((20, 40), bool); m[5:15, 2:18] = m[5:15, 22:38] = True; m[9:11, 18:22] = True
    >>> d = ndi.distance_transform_edt(m)
    >>> seeds = np.zeros(m.shape, np.int32); seeds[9, 9] = 1; seeds[9, 30] = 2
    >>> np.array_equal(watershed_by_object(d, seeds, m), segmentation.watershed(-d, seeds, mask=m))
    True
    """
    mask = np.asarray(mask, dtype=bool)
    distance = np.asarray(distance, dtype=np.float64)
    if not _plain_numbers(distance, markers):
        return segmentation.watershed(-distance, markers, mask=mask)
    if seed_px is None:
        markers = np.where(mask, markers, 0).astype(np.int32, copy=False)
        seed_px = np.flatnonzero(markers)
    else:
        # seeds outside the mask flood nothing: zero them (a look at the seeds, not at every pixel)
        markers = np.asarray(markers).astype(np.int32, copy=False)
        outside = seed_px[~mask.ravel()[seed_px]]
        if outside.size:
            markers = markers.copy()
            markers.ravel()[outside] = 0
            seed_px = seed_px[mask.ravel()[seed_px]]
    objects = objects if objects is not None else ObjectTable(mask)
    trace = trace if trace is not None else Counter()
    if objects.count == 0 or seed_px.size == 0:
        return np.zeros(markers.shape, dtype=np.int32)
    seed_object = objects.labels.ravel()[seed_px]
    seed_label = markers.ravel()[seed_px]
    seed_height = -distance.ravel()[seed_px]

    # objects with one seed label: every pixel of them takes it
    pairs = np.unique(np.stack([seed_object, seed_label]), axis=1)
    labels_in = np.bincount(pairs[0], minlength=objects.count + 1)
    one = labels_in[pairs[0]] == 1
    take = np.zeros(objects.count + 1, dtype=np.int32)
    take[pairs[0][one]] = pairs[1][one]
    out = take[objects.labels]

    # objects with several: flood each (those with tied seeds may need the whole image's order of them)
    several = np.flatnonzero(labels_in > 1)
    keep = labels_in[seed_object] > 1
    obj, height = seed_object[keep], seed_height[keep]
    by_height = np.lexsort((height, obj))
    obj, height = obj[by_height], height[by_height]
    same = (obj[1:] == obj[:-1]) & (height[1:] == height[:-1])
    tied = np.unique(obj[1:][same])
    # the last height at which each object's tied seeds leave the queue (heights rise along each object's run)
    tie_level = np.full(objects.count + 1, -np.inf)
    np.maximum.at(tie_level, obj[1:][same], height[1:][same])
    deadline = time.perf_counter() + MAX_TIE_SECONDS
    flooded, whole = [], []
    keys = objects.keys() if cache is not None else None
    for i in np.concatenate([tied, np.setdiff1d(several, tied, assume_unique=True)]):
        box = objects.boxes[i - 1]
        own = objects.own(i - 1)
        seeds = np.where(own, markers[box], 0)
        seeds_at, seed_values, canonical = _seed_groups(seeds)
        key = None
        if keys is not None:
            key = ("flood", keys[i - 1], seeds_at.tobytes(), canonical.tobytes())
            known = cache.get(key)
            if known is not None:
                trace["cached"] += 1
                flooded.append((box, own, _labels_of(known, seeds_at, seed_values, canonical)))
                continue
        labels, how = _flood_object(-distance[box], seeds, own, deadline)
        trace[how] += 1
        if labels is None:
            whole.append(i)
            continue
        if key is not None:
            cache[key] = _canonical_labels(labels, own, seed_values, canonical)
        flooded.append((box, own, labels))
    for box, own, labels in flooded:
        out[box][own] = labels[own]
    if whole:
        needs = np.zeros(objects.count + 1, dtype=bool)
        needs[whole] = True
        inside = needs[objects.labels]
        region = _queued_before(-distance, markers, objects.mask, inside, tie_level[whole].max())
        if region is None:
            return segmentation.watershed(-distance, markers, mask=objects.mask)
        out[inside] = segmentation.watershed(-distance, markers, mask=region)[inside]
    return out


def _plain_numbers(distance: np.ndarray, markers: np.ndarray) -> bool:
    """Whether every height is a finite number within :data:`HEIGHT_LIMIT` and every label fits int32.

    NaN is caught too: every comparison with it is False.
    """
    if distance.size == 0 or not (-HEIGHT_LIMIT < distance.min() and distance.max() < HEIGHT_LIMIT):
        return False
    markers = np.asarray(markers)
    if markers.dtype.kind in "iu" and not np.can_cast(markers.dtype, np.int32):
        info = np.iinfo(np.int32)
        return bool(info.min <= markers.min() and markers.max() <= info.max)
    return True


def _queued_before(height: np.ndarray, markers: np.ndarray, mask: np.ndarray, objects: np.ndarray,
                   level: float) -> np.ndarray | None:
    """The mask pixels a whole-image call queues before every seed at `level` or below has left the queue.

    The queue takes pixels lowest first, so up to that moment it has taken
    only pixels at `level` or below (``height <= level``).  It queued every
    seed at the start, and since then only edge neighbours of pixels it took.
    A call restricted to these pixels and to `objects` therefore queues and
    takes the same pixels in the same order up to that moment: it orders
    those seeds as the whole image does, and each of `objects` (whole in the
    region) floods the same.  None when the heights or the level are not all
    finite (then the queue's order is not the heights').
    """
    if not (np.isfinite(level) and np.isfinite(height[mask]).all()):
        return None
    taken = mask & (height <= level)
    queued = taken.copy()
    queued[1:] |= taken[:-1]
    queued[:-1] |= taken[1:]
    queued[:, 1:] |= taken[:, :-1]
    queued[:, :-1] |= taken[:, 1:]
    return mask & (queued | (markers != 0) | objects)


def _seed_groups(seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed pixels (raveled), their labels, and each label renumbered by first appearance (0, 1, ...)."""
    at = np.flatnonzero(seeds)
    values = seeds.ravel()[at]
    unique, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(unique), dtype=np.int32)
    rank[np.argsort(first)] = np.arange(len(unique), dtype=np.int32)
    return at, values, rank[inverse]


def _canonical_labels(labels: np.ndarray, own: np.ndarray, values: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """An object's flood with its labels renumbered as :func:`_seed_groups` does (1, 2, ...; 0 outside)."""
    lut_from, lut_to = np.unique(values, return_index=True)
    out = np.zeros(labels.shape, dtype=np.int32)
    inside = own & (labels > 0)
    out[inside] = canonical[lut_to[np.searchsorted(lut_from, labels[inside])]] + 1
    return out


def _labels_of(known: np.ndarray, at: np.ndarray, values: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """A cached flood back in this call's label numbers."""
    actual = np.zeros(int(canonical.max()) + 2, dtype=np.int32)
    actual[canonical + 1] = values
    return actual[known]


def _flood_object(
    height: np.ndarray, seeds: np.ndarray, own: np.ndarray, deadline: float
) -> tuple[np.ndarray | None, str]:
    """Watershed of one object and how it was settled; None when its answer depends on the order of tied seeds."""
    px = np.flatnonzero(seeds)
    values = height.ravel()[px]
    _, group, count = np.unique(values, return_inverse=True, return_counts=True)
    if (count == 1).all():
        return segmentation.watershed(height, seeds, mask=own), "flooded"
    ties = [px[group == g] for g in np.flatnonzero(count > 1)]
    if math.prod(math.factorial(len(t)) for t in ties) > MAX_TIE_ORDERS:
        return None, "too_many_orders"
    reasons: Counter = Counter()
    if not all(_can_go_first(height, own, t, reasons) for t in ties):
        return None, "cannot_go_first: " + next(iter(reasons))
    first = None
    for orders in itertools.product(*(itertools.permutations(t) for t in ties)):
        if time.perf_counter() > deadline:
            return None, "time_bound"
        labels = segmentation.watershed(_queued_in(orders, height), seeds, mask=own)
        if first is None:
            first = labels
        elif not np.array_equal(labels, first):
            return None, "orders_disagree"
    return first, "orders_agree"


def _lowered(value: float, ulps: int) -> float:
    for _ in range(ulps):
        value = np.nextafter(value, -np.inf)
    return value


def _can_go_first(height: np.ndarray, own: np.ndarray, tied: np.ndarray, why: Counter | None = None) -> bool:
    """Whether lowering the tied seeds by a few ulps only decides their own order.

    True when no pixel of the object lies within those ulps below them and no
    seed has a lower neighbour (whose queued height the lowering would change).
    When False, `why` (if given) counts the reason: ``"pixel_just_below"`` or
    ``"lower_neighbour"``.
    """
    why = why if why is not None else Counter()
    level = height.ravel()[tied[0]]
    low = _lowered(level, len(tied))
    inside = height[own]
    if ((inside >= low) & (inside < level)).any():
        why["pixel_just_below"] += 1
        return False
    rows, cols = np.unravel_index(tied, height.shape)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = rows + dr, cols + dc
        ok = (r >= 0) & (r < height.shape[0]) & (c >= 0) & (c < height.shape[1])
        r, c = r[ok], c[ok]
        if (own[r, c] & (height[r, c] < level)).any():
            why["lower_neighbour"] += 1
            return False
    return True


def _queued_in(orders: tuple, height: np.ndarray) -> np.ndarray:
    """`height` with each group of tied seeds lowered so that the queue takes them in the given order."""
    out = height.copy()
    flat = out.ravel()
    for group in orders:
        for rank, p in enumerate(group):
            flat[p] = _lowered(flat[p], len(group) - rank)
    return out
