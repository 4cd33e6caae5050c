"""How long the filter stage will take, estimated before it runs.

:func:`estimated_seconds` multiplies the number of pixels by per-pixel rates
measured with ``benchmarks/filters_bench.py`` (2-vCPU Xeon, 2048² uint16
synthetic nuclei), so a page can warn before a slow setting runs. It is a rough
figure (within a factor of about 2 on that machine), not a promise.
"""

from __future__ import annotations

import math

import numpy as np

from . import _median
from ._rolling_ball import shrink_factor
from .params import Params

__all__ = ["estimated_seconds", "faster_equivalent", "SLOW_SECONDS"]

# A filter stage estimated above this many seconds gets a note (and, where there is one, a faster equivalent).
SLOW_SECONDS = 3.0

# ns per pixel, measured with benchmarks/filters_bench.py and the notes in PERF-NOTES.md
NS_ROLLING_BALL_KERNEL_PX = 1.1  # skimage rolling_ball: per pixel and per element of its (2r+1)² kernel
NS_ROLLING_BALL_FAST_PX = 50.0  # the shrink and the interpolation back, per full-size pixel
NS_TOPHAT_PX_PER_RADIUS = 1.5  # OpenCV erode + dilate with the 'sequence' disk, 16-bit, per px of radius
NS_TOPHAT_FLOAT_PX_PER_RADIUS = 30.0  # scikit-image's, on a float64 image
NS_GAUSSIAN_PX = 15.0
NS_GAUSSIAN_PX_PER_SIGMA = 4.0
NS_MEAN_PX = 35.0
NS_CV2_SMALL_MEDIAN = 8.0  # OpenCV median 3 × 3 or 5 × 5 on 16-bit codes
NS_ENCODE_INT = 8.0  # dense codes of an integer image (a histogram)
TYPICAL_BANDS = 8  # bands of 255 codes a 12-bit image needs (segmentation._median)


def estimated_seconds(shape: tuple[int, ...], params: Params, dtype: np.dtype | type = np.uint16) -> float:
    """Rough time in seconds of background subtraction plus noise filter.

    Parameters
    ----------
    shape : tuple of int
        Shape of the 2-D plane to filter.
    params : Params
        Uses ``background``, ``background_radius``, ``filter``, ``sigma`` and
        ``filter_size``.
    dtype : numpy dtype
        The plane's dtype. After a background subtraction the noise filter
        works on float64 whatever this is.

    Returns
    -------
    float
        Seconds on the machine the rates were measured on.

    Examples
    --------
    >>> round(estimated_seconds((512, 512), Params(background="rolling_ball", background_radius=100)))
    12
    >>> estimated_seconds((512, 512), Params()) < 0.1
    True
    """
    px = math.prod(shape)
    dtype = np.dtype(dtype)
    r = params.background_radius
    ns = 0.0
    if params.background == "rolling_ball":
        ns += (2 * math.ceil(r) + 1) ** 2 * NS_ROLLING_BALL_KERNEL_PX
    elif params.background == "rolling_ball_fast":
        s = shrink_factor(r)
        ns += (2 * math.ceil(r / s) + 1) ** 2 * NS_ROLLING_BALL_KERNEL_PX / s**2
        ns += NS_ROLLING_BALL_FAST_PX if s > 1 else 0.0
    elif params.background == "tophat":
        fast = dtype in (np.uint8, np.uint16, np.int16, np.float32)
        ns += max(r, 1) * (NS_TOPHAT_PX_PER_RADIUS if fast else NS_TOPHAT_FLOAT_PX_PER_RADIUS)

    if params.filter == "median":
        ns += _median_ns(params, dtype)
    elif params.filter == "gaussian" and params.sigma > 0:
        ns += NS_GAUSSIAN_PX + NS_GAUSSIAN_PX_PER_SIGMA * params.sigma
    elif params.filter == "mean":
        ns += NS_MEAN_PX
    return px * ns * 1e-9


def faster_equivalent(shape: tuple[int, ...], params: Params,
                      dtype: np.dtype | type = np.uint16) -> tuple[Params, float] | None:
    """A near-identical, much faster filter setting, and its estimated seconds.

    Only the exact rolling ball has one: Fiji's shrunk rolling ball
    (``'rolling_ball_fast'``), whose masks agree on more than 99.5 % of
    pixels. None when it would not be at least 3× faster.

    Examples
    --------
    >>> p = Params(background="rolling_ball", background_radius=50)
    >>> faster_equivalent((1024, 1024), p)[0].background
    'rolling_ball_fast'
    >>> faster_equivalent((1024, 1024), p.replace(background_radius=5)) is None
    True
    """
    if params.background != "rolling_ball":
        return None
    fast = params.replace(background="rolling_ball_fast")
    seconds = estimated_seconds(shape, fast, dtype)
    if 3 * seconds > estimated_seconds(shape, params, dtype):
        return None
    return fast, seconds


def _median_ns(params: Params, dtype: np.dtype) -> float:
    """Per-pixel cost of the median route segmentation._median will take (typical data)."""
    k = params.filter_size
    ndi_ns = _median.NS_NDI_PER_WINDOW_PX * k * k
    if k <= 2:
        return ndi_ns
    if params.background == "rolling_ball" or params.background == "rolling_ball_fast":
        # float64 with (nearly) as many distinct values as pixels: codes fail, ndimage runs
        return _median.NS_ENCODE_FLOAT + ndi_ns
    if params.background == "tophat" or dtype.kind == "f":
        encode, codes = _median.NS_ENCODE_FLOAT, 2048.0  # integer-valued floats, 11-12 bits
    elif dtype.itemsize == 1:
        encode, codes = 0.0, 256.0
    else:
        encode, codes = NS_ENCODE_INT, 2048.0
    if k % 2 == 0:
        rank_ns = _median.NS_RANK_BASE + _median.NS_RANK_PER_CODE * codes / 2
        return encode + min(rank_ns, ndi_ns)
    if k <= 5:
        return encode + NS_CV2_SMALL_MEDIAN
    bands = 1 if codes <= 256 else TYPICAL_BANDS
    return encode + bands * _median.NS_CV2_PASS
