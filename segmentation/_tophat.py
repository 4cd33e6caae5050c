"""White top-hat with a decomposed disk, through OpenCV: the same array as scikit-image, faster.

:func:`white_tophat_disk` returns exactly
``skimage.morphology.white_tophat(image, morphology.disk(r, decomposition='sequence'))``
for ``image`` as float64 (which is what ``subtract_background`` passes it).

Why it is the same: the 'sequence' disk is a list of 3 × 3 footprints, each
applied n times. scikit-image erodes with each of them in turn
(``ndi.grey_erosion``, mode 'reflect'), then dilates with each of them
mirrored. Minimum and maximum are exact in any library, and for a 3 × 3
footprint 'reflect' reads the edge pixel itself beyond the border, which is
OpenCV's ``BORDER_REPLICATE``. So the same footprints, in the same order, with
OpenCV's ``erode``/``dilate`` give the same opening, and the same top-hat.

Minimum and maximum only pick values, so they are computed in the image's own
dtype (8/16-bit integers, float32) and cast to float64 afterwards, exactly.
OpenCV is 20× faster than scikit-image there; on float64 it is not faster
(benchmarks/filters_bench.py), so float64 and other dtypes, and images with
NaN (which OpenCV orders differently), go to scikit-image itself.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage import morphology

__all__ = ["white_tophat_disk"]

_OPENCV_FAST = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))


def white_tophat_disk(image: np.ndarray, radius: int) -> np.ndarray:
    """Image minus its opening by a disk of `radius` px ('sequence' decomposition).

    Parameters
    ----------
    image : (M, N) ndarray
        Any real dtype; the result is that of its float64 copy.
    radius : int
        Disk radius in pixels.

    Returns
    -------
    (M, N) float64 ndarray
        Equal to ``morphology.white_tophat(image.astype(float), morphology.disk(radius,
        decomposition='sequence'))``.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import morphology
    >>> img = np.random.default_rng(0).integers(100, 4000, (40, 50)).astype(np.uint16)
    >>> disk = morphology.disk(6, decomposition="sequence")
    >>> bool(np.array_equal(white_tophat_disk(img, 6), morphology.white_tophat(img.astype(float), disk)))
    True
    """
    image = np.asarray(image)
    img = image.astype(np.float64)
    sequence = morphology.disk(radius, decomposition="sequence")
    if image.dtype not in _OPENCV_FAST or image.ndim != 2 or image.size == 0 or not np.isfinite(image).all():
        return morphology.white_tophat(img, footprint=sequence)
    opened = image
    for footprint, n in sequence:
        opened = cv2.erode(opened, footprint.astype(np.uint8), iterations=int(n), borderType=cv2.BORDER_REPLICATE)
    for footprint, n in sequence:
        # scikit-image dilates with the mirrored footprint (a true Minkowski dilation)
        mirrored = np.ascontiguousarray(footprint[::-1, ::-1], dtype=np.uint8)
        opened = cv2.dilate(opened, mirrored, iterations=int(n), borderType=cv2.BORDER_REPLICATE)
    return img - opened
