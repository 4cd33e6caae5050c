"""The whole classic pipeline: filter, threshold, refine, split, measure.

:func:`segment` runs the stages of :mod:`segmentation.stages` in the course's
order: the same code path as the app's pages and the batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .io import validate_plane
from .params import Params
from .stages import Result, measure_stages, run_stages

__all__ = ["Result", "segment"]


def segment(image: np.ndarray, params: Params | None = None, name: str = "image",
            channels: Mapping[str, np.ndarray] | None = None) -> Result:
    """Segment nuclei in one 2-D image with the classic pipeline.

    1. reduce noise (and subtract background), 2. threshold, 3. clean up the
    mask, 4. split touching nuclei with the watershed, 5. drop objects too
    large or on the border, 6. measure each nucleus.

    Parameters
    ----------
    image : (M, N) ndarray
        One plane in its own intensity units (any integer or float dtype).
    params : Params, optional
        Settings; the course's defaults when omitted.
    name : str
        Used in error messages.
    channels : dict of str to (M, N) ndarray, optional
        Other channels of the same field (e.g. ``{"EdU": plane}``), measured in
        the same nuclei: mean, integrated, max and median per nucleus (and in
        a ring around it with ``params.ring_width``).

    Returns
    -------
    Result

    Raises
    ------
    segmentation.io.ImageReadError
        The image is not 2-D, is constant or contains NaN.
    SegmentationError
        A step cannot work on this image (e.g. no automatic cutoff).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((64, 64), np.uint16); img[10:30, 10:30] = 2000; img[40:55, 40:55] = 1800
    >>> result = segment(img)
    >>> result.count, round(result.threshold)  # the Otsu cutoff, in the image's units
    (2, 879)
    """
    params = params or Params()
    image = validate_plane(np.asarray(image), name)
    return measure_stages(run_stages(image, params), params, channels=channels)
