"""Step 2: threshold the filtered image into a binary mask.

The cutoff is always reported in the image's own intensity units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage import filters as skfilters

from .errors import SegmentationError
from .params import AUTO_THRESHOLD_METHODS, Params

__all__ = ["ThresholdResult", "auto_threshold", "all_auto_thresholds", "threshold_image"]

_FUNCS = {
    "otsu": skfilters.threshold_otsu,
    "li": skfilters.threshold_li,
    "triangle": skfilters.threshold_triangle,
    "yen": skfilters.threshold_yen,
    "isodata": skfilters.threshold_isodata,
    "mean": skfilters.threshold_mean,
    "minimum": skfilters.threshold_minimum,
}


@dataclass(frozen=True)
class ThresholdResult:
    """A binary mask and the cutoff that made it.

    Attributes
    ----------
    mask : (M, N) bool ndarray
        Pixels classified as objects.
    value : float
        The cutoff in raw intensity units; for the local method, the median of
        the local cutoffs.
    method : str
        The method used.
    """

    mask: np.ndarray
    value: float
    method: str


def auto_threshold(image: np.ndarray, method: str) -> float:
    """Cutoff of one automatic method, in the image's units.

    Parameters
    ----------
    image : (M, N) ndarray
    method : {'otsu', 'li', 'triangle', 'yen', 'isodata', 'mean', 'minimum'}

    Raises
    ------
    SegmentationError
        When the method finds no cutoff (``minimum`` needs a histogram with two
        peaks) or the image is constant.
    """
    if method not in _FUNCS:
        raise ValueError(f"unknown automatic threshold method {method!r}")
    img = np.asarray(image)
    # A constant image has no cutoff; say so instead of returning its value.
    if img.size == 0 or img.min() == img.max():
        raise SegmentationError(
            "the filtered image is constant, so no threshold can separate nuclei from background"
        )
    try:
        return float(_FUNCS[method](img))
    except RuntimeError as exc:  # threshold_minimum: "Unable to find two maxima"
        raise SegmentationError(
            f"the '{method}' method found no cutoff on this image ({exc}); try Otsu or Li"
        ) from exc


def all_auto_thresholds(image: np.ndarray) -> dict[str, float | None]:
    """Cutoff of every automatic method (None where a method finds none)."""
    out: dict[str, float | None] = {}
    for method in AUTO_THRESHOLD_METHODS:
        try:
            out[method] = auto_threshold(image, method)
        except SegmentationError:
            out[method] = None
    return out


def threshold_image(image: np.ndarray, params: Params) -> ThresholdResult:
    """Threshold `image` as set in `params`.

    Bright objects are pixels strictly above the cutoff (as
    ``image > threshold_otsu(image)``); dark objects strictly below.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[100, 100, 3000, 3000]], dtype=np.uint16)
    >>> r = threshold_image(img, Params(threshold_method="manual", threshold_value=1873))
    >>> r.mask.tolist(), r.value
    ([[False, False, True, True]], 1873.0)
    """
    method = params.threshold_method
    if method == "manual":
        value: float | np.ndarray = float(params.threshold_value)  # type: ignore[arg-type]
    elif method == "local":
        value = skfilters.threshold_local(
            np.asarray(image, dtype=np.float64), block_size=params.block_size, offset=params.offset
        )
    else:
        value = auto_threshold(image, method)
    mask = image > value if params.objects == "bright" else image < value
    reported = float(np.median(value)) if isinstance(value, np.ndarray) else float(value)
    return ThresholdResult(mask=np.asarray(mask, dtype=bool), value=reported, method=method)
