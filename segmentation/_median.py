"""Exact median filter, fast for large windows.

:func:`median_filter` returns exactly what ``scipy.ndimage.median_filter(image,
size=size)`` returns (square window, mode ``'reflect'``, same dtype), 15-60×
faster on 16-bit images (benchmarks/filters_bench.py).

How it works
------------
1. **Encode.** Each value is replaced by its rank among the image's distinct
   values (8- or 16-bit codes). Ranking keeps the order, so the median of the
   codes is the code of the median; step 4 turns it back into a value.
2. **Pad** the codes by reflection, as scipy extends the image in mode
   ``'reflect'`` (``np.pad(mode='symmetric')``), so that no library's own
   border handling reaches the output.
3. **Median of the codes.**

   - Odd window: OpenCV's ``medianBlur``, in one call for 8-bit codes (any
     size) and for 16-bit codes in windows of 3 and 5. OpenCV takes larger
     windows on 8-bit images only, so 16-bit codes go through several 8-bit
     calls, using that a median commutes with any order-keeping map:
     ``median(clip(codes - b, 0, 255)) == clip(median(codes) - b, 0, 255)``.
     Summed over the bands ``b = 0, 255, 510, ...`` up to the highest code,
     these give the median (7 calls for 11-bit data). Above 2,040 codes a
     coarse call first finds which bands hold a median at all
     (``median(codes >> s) == median(codes) >> s``), and only those are run.
   - Even window (OpenCV has none): :func:`skimage.filters.rank.median`, a
     sliding-histogram median, on the padded codes.
4. **Decode:** ``values[codes]``.

Where nothing faster gives the same answer, it calls ``ndi.median_filter``:
images with NaN or with more than 65,536 distinct values (most float images
after a rolling-ball subtraction), other dtypes (bool, complex), images not 2-D,
windows reaching four times past an image side of 2 px or more (scipy's own
'reflect' extension is not a reflection there), and cases where the cost model
below expects ndimage to be faster (window 2, or wide-range data that would need
many 8-bit calls in a small window).
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import rank

__all__ = ["median_filter"]

_MAX_CODES = 1 << 16

# Cost model, ns per output pixel, measured with benchmarks/filters_bench.py
# (2048² uint16 synthetic nuclei, 2-vCPU Xeon). Only used to choose the faster
# of two exact routes, and by the cost estimate in segmentation.cost.
NS_NDI_PER_WINDOW_PX = 16.0  # ndi.median_filter: about 16 ns × size² per pixel
NS_CV2_PASS = 15.0  # one cv2.medianBlur 8-bit call (window ≥ 7) plus its clip and sum
NS_RANK_BASE = 120.0  # rank.median: a fixed part ...
NS_RANK_PER_CODE = 0.5  # ... plus the histogram walk up to the median code
NS_ENCODE_FLOAT = 80.0  # np.unique of a float image (a sort; for segmentation.cost)

# Up to this many bands of 255 codes (codes < 2040, e.g. 11-bit data), the band
# medians are simply summed; above, a coarse pass first finds the bands needed.
_WALK_BANDS = 8


def median_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Median over a `size` × `size` square, identical to ``ndi.median_filter(image, size=size)``.

    Parameters
    ----------
    image : (M, N) ndarray
        Any real dtype; 8- and 16-bit integers, and floats with at most 65,536
        distinct values, take the fast routes.
    size : int
        Side of the square window in pixels (odd or even).

    Returns
    -------
    (M, N) ndarray
        Same dtype as `image`, element for element equal to
        ``scipy.ndimage.median_filter(image, size=size)`` (``-0.0`` and ``0.0``
        count as the same value).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> img = np.random.default_rng(0).integers(0, 4096, (64, 80)).astype(np.uint16)
    >>> bool(np.array_equal(median_filter(img, 15), ndi.median_filter(img, size=15)))
    True
    """
    image = np.asarray(image)
    k = int(size)
    if not _fast_route_possible(image, k):
        return ndi.median_filter(image, size=k)
    if image.dtype == np.float32 and k in (3, 5):
        # OpenCV sorts float32 directly in windows of 3 and 5: no codes needed
        return _padded(image, k, lambda p: cv2.medianBlur(p, k))
    encoded = _encode(image)
    if encoded is None:  # too many distinct values for 16-bit codes
        return ndi.median_filter(image, size=k)
    codes, values = encoded
    if k % 2 == 0:
        # OpenCV has no even windows; rank.median's cost grows with the number of codes
        if _rank_ns(codes) > _ndi_ns(k):
            return ndi.median_filter(image, size=k)
        out = _padded(codes, k, lambda p: _rank_median(p, k))
    elif codes.dtype == np.uint8 or k <= 5:
        out = _padded(codes, k, lambda p: cv2.medianBlur(p, k))
    else:
        out = _median_by_bands(codes, k)
        if out is None:  # more 8-bit calls than ndimage would take
            return ndi.median_filter(image, size=k)
    return out if values is None else values[out]


def _fast_route_possible(image: np.ndarray, k: int) -> bool:
    """The checks made before encoding; False sends the image to ``ndi.median_filter``."""
    if image.ndim != 2 or image.size == 0 or k <= 2:
        # size 1 is a copy, size 2 (4 values) is quicker in ndimage than any route here
        return False
    if image.dtype.kind not in "uif" or _scipy_extension_differs(image.shape, k):
        return False
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        return False  # NaN has no place in an order; leave it (and inf) to scipy
    return True


def _ndi_ns(k: int) -> float:
    return NS_NDI_PER_WINDOW_PX * k * k


# --- steps ---------------------------------------------------------------------------


def _scipy_extension_differs(shape: tuple[int, ...], k: int) -> bool:
    """True where scipy's 'reflect' is not np.pad's 'symmetric' for this window.

    Along a side of n ≥ 2 px, scipy (1.17) reads a wrong value (usually its
    ``cval``; not always the same: two calls once disagreed) at offsets that are
    multiples of 2n from 4n before the first pixel on; a window of half-width
    k // 2 reaches there once k // 2 >= 4n.  Such images go to scipy as they are.
    """
    return any(n >= 2 and k // 2 >= 4 * n for n in shape)


def _encode(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Dense rank codes and the values they stand for; None above 65,536 distinct values.

    Codes are uint8 for at most 256 distinct values, else uint16. A uint8 image
    is its own code (values None).
    """
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image), None
    if image.dtype.kind in "ui" and int(image.max()) - int(image.min()) < 1 << 26:
        # a histogram instead of a sort: linear time
        lo = int(image.min())
        if image.dtype.kind == "u" and image.dtype.itemsize <= 2:
            shifted = image - image.dtype.type(lo)
        else:
            shifted = image.astype(np.int64) - lo
        present = np.bincount(shifted.ravel()) > 0
        n = int(np.count_nonzero(present))
        if n > _MAX_CODES:
            return None
        lut = (np.cumsum(present) - 1).astype(np.uint8 if n <= 256 else np.uint16)
        return lut[shifted], (np.flatnonzero(present) + lo).astype(image.dtype)
    values, inverse = np.unique(image, return_inverse=True)
    if values.size > _MAX_CODES:
        return None
    return inverse.reshape(image.shape).astype(np.uint8 if values.size <= 256 else np.uint16), values


def _padded(codes: np.ndarray, k: int, fn) -> np.ndarray:
    """Apply `fn` to `codes` reflected by the window's reach, and cut the border off again.

    A window of even size k covers offsets -k/2 .. k/2 - 1 (scipy's origin 0).
    """
    h, w = codes.shape
    before, after = k // 2, (k - 1) // 2
    padded = np.pad(codes, ((before, after), (before, after)), mode="symmetric")
    return fn(padded)[before : before + h, before : before + w]


def _rank_median(padded: np.ndarray, k: int) -> np.ndarray:
    with warnings.catch_warnings():
        # "Bad rank filter performance is expected ...": the cost model has decided
        warnings.filterwarnings("ignore", message="Bad rank filter performance", category=UserWarning)
        return rank.median(padded, footprint=np.ones((k, k), dtype=bool))


def _rank_ns(codes: np.ndarray) -> float:
    """rank.median's ns per pixel: its histogram walk goes up to the median's code."""
    return NS_RANK_BASE + NS_RANK_PER_CODE * float(codes.max()) / 2


def _median_by_bands(codes: np.ndarray, k: int) -> np.ndarray | None:
    """Median of 16-bit codes with an odd window ≥ 7, from 8-bit OpenCV calls.

    ``clip(codes - b, 0, 255)`` keeps the order of the codes, so its median is
    ``clip(median - b, 0, 255)``. Summed over the bands b = 0, 255, 510, ...
    that reach the highest code, these clipped medians give the median itself.
    When that takes many bands, a coarse pass first finds which bands hold a
    median at all (``median(codes >> s) == median(codes) >> s``), and only
    those are computed. Returns None when ndimage would be quicker.
    """
    h, w = codes.shape
    pad = k // 2
    padded = np.pad(codes, pad, mode="symmetric")
    inner = (slice(pad, pad + h), slice(pad, pad + w))

    def clipped_median(base: int) -> np.ndarray:
        clipped = (np.clip(padded, base, base + 255) - np.uint16(base)).astype(np.uint8)
        return cv2.medianBlur(clipped, k)[inner]

    top = int(codes.max())
    n_bands = -(-top // 255)  # bands of 255 codes from 0 up to the highest
    if n_bands <= _WALK_BANDS:
        out = np.zeros((h, w), np.uint16)
        for j in range(n_bands):
            out += clipped_median(255 * j)
        return out

    shift = top.bit_length() - 8
    coarse = cv2.medianBlur((padded >> shift).astype(np.uint8), k)[inner]
    levels = np.flatnonzero(np.bincount(coarse.ravel(), minlength=256))
    # bands of 256 codes, each starting at the lowest coarse level not yet covered
    bands = []  # (first code, first level, last level)
    i = 0
    while i < len(levels):
        base = int(levels[i]) << shift
        last = ((base + 256) >> shift) - 1  # last level whose codes all lie in [base, base + 255]
        bands.append((base, int(levels[i]), last))
        i = int(np.searchsorted(levels, last, side="right"))
    if (1 + len(bands)) * NS_CV2_PASS > _ndi_ns(k):
        return None
    band_of_level = np.zeros(256, np.uint8)
    for j, (_, first, last) in enumerate(bands):
        band_of_level[first : last + 1] = j
    band = band_of_level[coarse]
    out = np.empty((h, w), np.uint16)
    for j, (base, _, _) in enumerate(bands):
        np.add(clipped_median(base), np.uint16(base), out=out, where=band == j, dtype=np.uint16)
    return out
