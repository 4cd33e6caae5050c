"""Step 2: threshold the filtered image into a binary mask.

The cutoff is always reported in the image's own intensity units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from skimage import filters as skfilters

from ._li import threshold_li
from .errors import SegmentationError
from .registry import Method

if TYPE_CHECKING:
    from .params import Params

__all__ = [
    "THRESHOLD_METHODS",
    "AUTO_THRESHOLD_METHODS",
    "POLARITIES",
    "ThresholdResult",
    "auto_threshold",
    "all_auto_thresholds",
    "threshold_image",
]


def _auto(name: str, label: str, help: str, func=None) -> Method:
    """An automatic method of ``skimage.filters``: ``threshold_<name>(image)`` (or `func`, which equals it)."""
    return Method(label, help, func or getattr(skfilters, f"threshold_{name}"), f"filters.threshold_{name}(img)")


# Every way of choosing the cutoff.  An automatic method's function takes the
# filtered image and returns one cutoff in its units.
THRESHOLD_METHODS: dict[str, Method] = {
    "manual": Method("Manual", "Your own cutoff, in the image's units: drag it along the histogram.",
                     code='s["threshold_value"]'),
    "otsu": _auto("otsu", "Otsu", "Splits the histogram into two classes with the least spread in each "
                  "(the course's default). Best when the histogram has two clear peaks."),
    "li": _auto("li", "Li", "Minimum cross-entropy: usually a lower cutoff than Otsu, so dim nuclei are kept.",
                threshold_li),
    "triangle": _auto("triangle", "Triangle", "A line from the background peak to the brightest bin: for one "
                      "large background peak with a long tail of few bright nuclei (sparse fields)."),
    "yen": _auto("yen", "Yen", "Maximum entropy correlation: often a higher cutoff, for bright, well-separated nuclei."),
    "isodata": _auto("isodata", "IsoData", "Iterative intermeans (Ridler-Calvard, Fiji's 'Default'): close to Otsu."),
    "mean": _auto("mean", "Mean", "The mean intensity: a crude first look."),
    "minimum": _auto("minimum", "Minimum", "The valley between the two peaks of the smoothed histogram; finds "
                     "no cutoff when there is no second peak."),
    "local": Method("Local (adaptive)", "A cutoff for every neighbourhood ('block size'), for uneven background.",
                    code='filters.threshold_local(img.astype(float), block_size=s["block_size"], offset=s["offset"])'),
}
AUTO_THRESHOLD_METHODS: tuple[str, ...] = tuple(n for n, m in THRESHOLD_METHODS.items() if m.func is not None)

# Which side of the cutoff the nuclei are on.
POLARITIES: dict[str, Method] = {
    "bright": Method("Brighter than background", "Fluorescence: nuclei are the pixels above the cutoff."),
    "dark": Method("Darker than background", "E.g. brightfield or inverted images: nuclei are below the cutoff."),
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
    method : str
        One of :data:`AUTO_THRESHOLD_METHODS`.

    Raises
    ------
    SegmentationError
        When the method finds no cutoff (``minimum`` needs a histogram with two
        peaks) or the image is constant.
    """
    if method not in AUTO_THRESHOLD_METHODS:
        raise ValueError(f"unknown automatic threshold method {method!r}")
    img = np.asarray(image)
    # A constant image has no cutoff; say so instead of returning its value.
    if img.size == 0 or img.min() == img.max():
        raise SegmentationError(
            "the filtered image is constant, so no threshold can separate nuclei from background"
        )
    try:
        return float(THRESHOLD_METHODS[method].func(img))
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
    >>> from segmentation import Params
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
