"""Step 3: clean up the binary mask, and filter the final objects.

Mask operations run in the course's order: remove small objects, then closing,
then the optional opening and hole filling.  Size-above and border filters act
on the labelled objects after splitting (see :func:`filter_objects`), so that a
clump of three normal nuclei is not dropped as one "too large" blob.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology, segmentation

from .params import Params

__all__ = ["connected_components", "remove_small", "closing", "opening", "fill_holes", "refine_mask",
           "filter_objects"]


def connected_components(mask: np.ndarray) -> np.ndarray:
    """4-connected labels of `mask` (int32), as ``remove_small_objects`` counts objects.

    Computing them once lets :func:`remove_small` answer each new `min_size` with
    a table look-up (the app keeps them while the threshold stays the same).
    """
    labels, _ = ndi.label(np.asarray(mask, dtype=bool))
    return labels.astype(np.int32, copy=False)


def remove_small(mask: np.ndarray, min_size: int, labels: np.ndarray | None = None,
                 sizes: np.ndarray | None = None) -> np.ndarray:
    """Remove objects smaller than `min_size` pixels.

    Same as ``remove_small_objects(mask, max_size=min_size - 1)`` (scikit-image
    0.26 removes objects *up to and including* ``max_size``), 4-connected.
    `labels` are ``connected_components(mask)`` when already computed, and
    `sizes` their ``np.bincount``.
    """
    mask = np.asarray(mask, dtype=bool)
    if min_size <= 1:
        return mask.copy()
    if labels is None:
        labels = connected_components(mask)
    if sizes is None:
        sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep.take(labels)


def _dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by ``disk(radius)``; pixels outside the image count as background.

    The disk is a stack of centred row segments, so the dilation is a few
    shifted ORs: widen the mask row-wise one pixel at a time, then OR each
    widened copy shifted up and down by the row it belongs to.
    """
    footprint = morphology.disk(radius).astype(bool)
    half = [int(footprint[radius + dy].sum()) // 2 for dy in range(radius + 1)]  # half-width of each row
    widened = [mask]
    for _ in range(max(half)):
        prev = widened[-1]
        grown = prev.copy()
        grown[:, 1:] |= prev[:, :-1]
        grown[:, :-1] |= prev[:, 1:]
        widened.append(grown)
    out = widened[half[0]].copy()
    for dy in range(1, radius + 1):
        row = widened[half[dy]]
        out[dy:] |= row[:-dy]
        out[:-dy] |= row[dy:]
    return out


def _erode_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by ``disk(radius)``, ignoring pixels outside the image."""
    return ~_dilate_disk(~mask, radius)


def closing(mask: np.ndarray, radius: int) -> np.ndarray:
    """Closing by a disk: same as ``skimage.morphology.closing(mask, disk(radius))``.

    Computed with shifted ORs, about 10x faster on a 2048x2048 mask.  Like
    scikit-image (which mirrors the image at its edges), pixels outside the
    image neither grow nor erode anything.

    Examples
    --------
    >>> m = np.zeros((9, 11), bool); m[2:7, 2:5] = m[2:7, 6:9] = True  # two blobs, 1 px apart
    >>> closing(m, 1).astype(int)[4].tolist()
    [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    """
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    return _erode_disk(_dilate_disk(mask, radius), radius)


def opening(mask: np.ndarray, radius: int) -> np.ndarray:
    """Opening by a disk: same as ``skimage.morphology.opening(mask, disk(radius))``."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    return _dilate_disk(_erode_disk(mask, radius), radius)


def fill_holes(mask: np.ndarray, max_hole_size: int = 0) -> np.ndarray:
    """Fill holes: all of them (``max_hole_size=0``) or those up to that many px.

    All holes: same as ``scipy.ndimage.binary_fill_holes`` (background not
    4-connected to the image border), found by labelling the background once,
    about 4x faster.  Up to a size: ``remove_small_holes(mask, max_size=...)``.
    """
    mask = np.asarray(mask, dtype=bool)
    if max_hole_size > 0:
        return morphology.remove_small_holes(mask, max_size=max_hole_size)
    background, _ = ndi.label(~mask)
    open_to_border = np.zeros(int(background.max()) + 1, dtype=bool)
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        open_to_border[edge] = True
    open_to_border[0] = True  # label 0 is the mask itself
    return ~open_to_border[background] | mask


def refine_mask(mask: np.ndarray, params: Params, labels: np.ndarray | None = None,
                sizes: np.ndarray | None = None) -> np.ndarray:
    """Remove small objects, close, open and fill holes as set in `params`.

    `labels` and `sizes`, if given, are ``connected_components(mask)`` and their
    sizes (see :func:`remove_small`).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((9, 9), bool); m[1:6, 1:6] = True; m[7, 7] = True
    >>> int(refine_mask(m, Params(min_size=2, closing_radius=0)).sum())
    25
    """
    out = remove_small(mask, params.min_size, labels, sizes)
    if params.closing_radius > 0:
        out = closing(out, params.closing_radius)
    if params.opening_radius > 0:
        out = opening(out, params.opening_radius)
    if params.fill_holes:
        out = fill_holes(out, params.max_hole_size)
    return np.asarray(out, dtype=bool)


def filter_objects(labels: np.ndarray, max_size: int = 0, exclude_border: bool = False) -> np.ndarray:
    """Drop labelled objects larger than `max_size` px or touching the border.

    Labels are renumbered 1..N afterwards. ``max_size=0`` keeps every size.
    """
    out = labels
    if max_size > 0:
        areas = np.bincount(out.ravel())
        too_large = np.flatnonzero(areas > max_size)
        too_large = too_large[too_large != 0]
        if too_large.size:
            out = np.where(np.isin(out, too_large), 0, out)
    if exclude_border:
        out = segmentation.clear_border(out)
    present = np.bincount(out.ravel()) > 0
    if present[1:].all():  # already numbered 1..N
        return out.astype(np.uint32, copy=False)
    relabelled, _, _ = segmentation.relabel_sequential(out)
    return relabelled.astype(np.uint32, copy=False)
