"""Step 4: label objects and split touching nuclei.

The course's recipe: Euclidean distance transform of the mask, one seed per
nucleus from ``peak_local_max``, label the seeds, and ``watershed(-distance,
seeds, mask=mask)``.  Two additions help on real images: smoothing the
distance map (``distance_sigma``) and h-maxima seeds (``seed_method='h_maxima'``)
so that one irregular nucleus gives one seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation
from skimage.feature import peak_local_max

from .params import Params

__all__ = ["SplitResult", "distance_map", "find_seeds", "split_objects"]


@dataclass(frozen=True)
class SplitResult:
    """Labels and what made them.

    Attributes
    ----------
    labels : (M, N) uint32 ndarray
        0 is background, 1..N the objects.
    distance : (M, N) float64 ndarray or None
        The (smoothed) distance map the watershed flooded; None without splitting.
    seeds : (K, 2) int ndarray
        Row, column of each seed (empty without splitting).
    unseeded : (M, N) bool ndarray
        Mask pixels that received no seed and so no label (the course's recipe
        drops them, often nuclei cut by the image border).
    """

    labels: np.ndarray
    distance: np.ndarray | None
    seeds: np.ndarray
    unseeded: np.ndarray


def distance_map(mask: np.ndarray, distance_sigma: float = 0.0, cache: dict | None = None) -> np.ndarray:
    """Distance (px) of each mask pixel to the nearest background pixel.

    Equal to ``scipy.ndimage.distance_transform_edt(mask)``.  With
    ``distance_sigma > 0`` the map is smoothed with a Gaussian of that width,
    so that bumpy outlines do not create extra maxima.  `cache` (optional)
    keeps each object's transform for the next call, see :func:`split_objects`.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.all() or not mask.any():
        distance = ndi.distance_transform_edt(mask)
    else:
        distance = _edt_by_object(_Objects(mask), cache)
    if distance_sigma > 0:
        distance = ndi.gaussian_filter(distance, sigma=distance_sigma)
    return distance


class _Objects:
    """The 8-connected objects of a mask, each with its box grown by one pixel."""

    def __init__(self, mask: np.ndarray):
        self.mask = mask
        self.labels, _ = ndi.label(mask, structure=np.ones((3, 3)))
        h, w = mask.shape
        self.boxes = [
            (slice(max(r.start - 1, 0), min(r.stop + 1, h)), slice(max(c.start - 1, 0), min(c.stop + 1, w)))
            for r, c in ndi.find_objects(self.labels)
        ]
        self._keys: list[bytes] | None = None

    def own(self, i: int) -> np.ndarray:
        return self.labels[self.boxes[i]] == i + 1

    def keys(self) -> list[bytes]:
        """A digest of each object's pixels and position."""
        if self._keys is None:
            self._keys = []
            for i, box in enumerate(self.boxes):
                digest = hashlib.blake2b(self.own(i).tobytes(), digest_size=16)
                digest.update(repr((box[0].start, box[1].start, box[0].stop, box[1].stop)).encode())
                self._keys.append(digest.digest())
        return self._keys


def _edt_by_object(objects: _Objects, cache: dict | None = None) -> np.ndarray:
    """``ndi.distance_transform_edt(mask)``, computed object by object.

    The nearest background pixel of a pixel of an (8-connected) object always
    lies inside the object's bounding box grown by one pixel, and no other
    object in that box is nearer than it, so each box can be transformed on
    its own with the same result, about 4x faster on a typical nuclei mask.
    """
    out = np.zeros(objects.mask.shape, dtype=np.float64)
    keys = objects.keys() if cache is not None else None
    for i, box in enumerate(objects.boxes):
        own = objects.own(i)
        key = ("edt", keys[i]) if keys is not None else None
        values = cache.get(key) if key is not None else None
        if values is None:
            values = ndi.distance_transform_edt(own)[own]
            if key is not None:
                cache[key] = values
        out[box][own] = values
    return out


def h_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """Regional maxima of the image after removing every peak lower than `h`.

    The textbook h-maxima transform: the regional maxima of the reconstruction
    by dilation of ``image - h`` under ``image``.  Two tops of equal height
    joined by a dip shallower than `h` form one maximum (one seed per nucleus),
    where ``skimage.morphology.h_maxima`` keeps both.

    Examples
    --------
    >>> h_maxima(np.array([0, 5, 10, 9, 10, 5, 0.0]), 2).astype(int).tolist()
    [0, 0, 1, 1, 1, 0, 0]
    """
    image = np.asarray(image, dtype=np.float64)
    domes = morphology.reconstruction(image - h, image, method="dilation")
    return morphology.local_maxima(domes, allow_borders=True)


def find_seeds(distance: np.ndarray, mask: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Seeds for the watershed, labelled, and their coordinates.

    Returns
    -------
    markers : (M, N) int ndarray
        Labelled seeds (0 elsewhere).
    coords : (K, 2) int ndarray
        Row, column of each seed.
    """
    if params.seed_method == "peak_local_max":
        coords = peak_local_max(
            distance,
            footprint=np.ones((params.footprint, params.footprint)),
            min_distance=params.min_distance,
        )
        # A smoothed map (distance_sigma > 0) can peak just outside the mask; the
        # watershed ignores such seeds, so drop them here (keeps labels 1..N).
        coords = coords[np.asarray(mask, dtype=bool)[tuple(coords.T)]]
        peaks = np.zeros(distance.shape, dtype=bool)
        peaks[tuple(coords.T)] = True
        markers, _ = ndi.label(peaks, structure=np.ones((3, 3)))  # int32: half the memory traffic of int64
        return markers, coords.astype(np.intp)
    if params.seed_method == "h_maxima":
        maxima = h_maxima(distance, params.h) & mask
        markers, _ = ndi.label(maxima, structure=np.ones((3, 3)))
        if markers.max() == 0:
            return markers, np.empty((0, 2), dtype=np.intp)
        centres = ndi.center_of_mass(maxima, markers, np.arange(1, markers.max() + 1))
        return markers, np.rint(np.asarray(centres)).astype(np.intp).reshape(-1, 2)
    raise ValueError(f"unknown seed method {params.seed_method!r}")


def split_objects(mask: np.ndarray, params: Params, cache: dict | None = None) -> SplitResult:
    """Label the objects of `mask`, splitting touching nuclei if asked.

    The distance transform runs object by object; with a `cache` dict (kept
    between calls by the app) objects that did not change are not transformed
    again.  The watershed runs on the whole image: its order of flooding
    between seeds of equal height depends on every seed in the image, so only
    the whole-image call gives exactly the course's labels.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((40, 80), bool)
    >>> rr, cc = np.ogrid[:40, :80]
    >>> m |= (rr - 20) ** 2 + (cc - 25) ** 2 < 15 ** 2
    >>> m |= (rr - 20) ** 2 + (cc - 52) ** 2 < 15 ** 2
    >>> int(split_objects(m, Params(split="none")).labels.max())
    1
    >>> int(split_objects(m, Params(footprint=15, min_distance=5)).labels.max())
    2
    """
    mask = np.asarray(mask, dtype=bool)
    if params.split == "none":
        labels = measure.label(mask).astype(np.uint32)
        return SplitResult(labels, None, np.empty((0, 2), np.intp), np.zeros_like(mask))

    if cache is not None and len(cache) > 20_000:
        cache.clear()
    distance = distance_map(mask, params.distance_sigma, cache)
    markers, coords = find_seeds(distance, mask, params)
    labels = segmentation.watershed(-distance, markers, mask=mask)
    unseeded = mask & (labels == 0)
    if params.keep_unseeded and unseeded.any():
        extra = measure.label(unseeded)
        labels = np.where(extra > 0, extra + labels.max(), labels)
        unseeded = np.zeros_like(mask)
    return SplitResult(labels.astype(np.uint32), distance, coords, unseeded)
