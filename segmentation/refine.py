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

__all__ = ["remove_small", "fill_holes", "refine_mask", "filter_objects"]


def remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects smaller than `min_size` pixels.

    Same as ``remove_small_objects(mask, max_size=min_size - 1)`` (scikit-image
    0.26 removes objects *up to and including* ``max_size``), 4-connected.
    """
    mask = np.asarray(mask, dtype=bool)
    if min_size <= 1:
        return mask.copy()
    return morphology.remove_small_objects(mask, max_size=min_size - 1)


def fill_holes(mask: np.ndarray, max_hole_size: int = 0) -> np.ndarray:
    """Fill holes: all of them (``max_hole_size=0``) or those up to that many px."""
    mask = np.asarray(mask, dtype=bool)
    if max_hole_size == 0:
        return ndi.binary_fill_holes(mask)
    return morphology.remove_small_holes(mask, max_size=max_hole_size)


def refine_mask(mask: np.ndarray, params: Params) -> np.ndarray:
    """Remove small objects, close, open and fill holes as set in `params`.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((9, 9), bool); m[1:6, 1:6] = True; m[7, 7] = True
    >>> int(refine_mask(m, Params(min_size=2, closing_radius=0)).sum())
    25
    """
    out = remove_small(mask, params.min_size)
    if params.closing_radius > 0:
        out = morphology.closing(out, morphology.disk(params.closing_radius))
    if params.opening_radius > 0:
        out = morphology.opening(out, morphology.disk(params.opening_radius))
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
