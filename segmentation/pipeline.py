"""The whole classic pipeline: filter, threshold, refine, split, measure.

:func:`segment` reads top to bottom like the course's protocol.  The stage
functions it calls are public so that the app can cache each one and recompute
only what a changed setting affects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from skimage import measure

from .filters import filter_image
from .io import validate_plane
from .measure import measure_objects, summarize
from .params import Params
from .refine import filter_objects, refine_mask
from .split import SplitResult, split_objects
from .threshold import ThresholdResult, threshold_image

__all__ = ["Result", "segment", "label_objects", "keep_objects", "removed_pixels", "finish"]

# Above this share of foreground pixels the nuclei are probably dark on bright.
MOSTLY_FOREGROUND = 0.5


@dataclass(frozen=True)
class Result:
    """Everything one run produced, for display and export.

    Attributes
    ----------
    image : raw 2-D image
    filtered : filtered image, in the raw image's units
    threshold : float, the cutoff used, in raw units
    threshold_method : str
    binary : bool mask straight after thresholding
    mask : bool mask after refinement (before splitting)
    labels : uint32 label image, 0 = background
    distance : distance map used by the watershed, or None
    seeds : (K, 2) row, column of the watershed seeds
    removed : bool, thresholded pixels that ended in no object (too small or
        large, opened away, touching the border, or without a seed)
    measurements : one row per object
    summary : per-image summary
    warnings : plain-language notes on a doubtful result
    """

    image: np.ndarray
    filtered: np.ndarray
    threshold: float
    threshold_method: str
    binary: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    distance: np.ndarray | None
    seeds: np.ndarray
    removed: np.ndarray
    measurements: pd.DataFrame
    summary: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of objects."""
        return int(len(self.measurements))


def label_objects(mask: np.ndarray, params: Params, cache: dict | None = None) -> SplitResult:
    """Split touching nuclei, then drop objects too large or on the border.

    `cache` is passed on to :func:`~segmentation.split.split_objects`.
    """
    return keep_objects(split_objects(mask, params, cache=cache), params)


def keep_objects(split: SplitResult, params: Params) -> SplitResult:
    """Drop the objects larger than ``max_size`` or touching the border, as set in `params`."""
    if params.max_size == 0 and not params.exclude_border:
        return split  # split_objects numbers its labels 1..N already
    labels = filter_objects(split.labels, params.max_size, params.exclude_border)
    return dataclasses.replace(split, labels=labels)


def removed_pixels(binary: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Thresholded (or refined) pixels that ended in no object: the overlay's magenta."""
    return (binary | mask) & (labels == 0)


def finish(
    image: np.ndarray,
    filtered: np.ndarray,
    thresholded: ThresholdResult,
    mask: np.ndarray,
    split: SplitResult,
    params: Params,
    measure_cache: dict | None = None,
) -> Result:
    """Measure the objects and assemble the :class:`Result` with its warnings.

    `measure_cache` is ignored: measuring is whole-image and cheaper than a per-object
    cache (to be removed with its caller in ``pages/common.py``).
    """
    labels = split.labels
    measurements = measure_objects(labels, image, params.pixel_size_um)
    summary = summarize(measurements, mask, thresholded.value, thresholded.method)
    # whole objects the watershed dropped for want of a seed (the course's recipe does this)
    unseeded_objects = int(measure.label(split.unseeded).max()) if split.unseeded.any() else 0
    summary["dropped_without_seed"] = unseeded_objects
    removed = removed_pixels(thresholded.mask, mask, labels)
    return Result(
        image=image,
        filtered=filtered,
        threshold=thresholded.value,
        threshold_method=thresholded.method,
        binary=thresholded.mask,
        mask=mask,
        labels=labels,
        distance=split.distance,
        seeds=split.seeds,
        removed=removed,
        measurements=measurements,
        summary=summary,
        warnings=_warnings(thresholded, mask, split, params, unseeded_objects),
    )


def segment(image: np.ndarray, params: Params | None = None, name: str = "image") -> Result:
    """Segment nuclei in one 2-D image with the classic pipeline.

    Parameters
    ----------
    image : (M, N) ndarray
        One plane in its own intensity units (any integer or float dtype).
    params : Params, optional
        Settings; the course's defaults when omitted.
    name : str
        Used in error messages.

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
    # 1. reduce noise
    filtered = filter_image(image, params)
    # 2. threshold: objects brighter (or darker) than the cutoff
    thresholded = threshold_image(filtered, params)
    # 3. clean up the mask
    mask = refine_mask(thresholded.mask, params)
    # 4. label, splitting touching nuclei with the watershed
    split = label_objects(mask, params)
    # 5. measure
    return finish(image, filtered, thresholded, mask, split, params)


def _warnings(
    thresholded: ThresholdResult, mask: np.ndarray, split: SplitResult, params: Params, unseeded_objects: int
) -> list[str]:
    notes = []
    share = float(np.count_nonzero(thresholded.mask)) / thresholded.mask.size
    if share > MOSTLY_FOREGROUND:
        other = "darker" if params.objects == "bright" else "brighter"
        notes.append(
            f"{share:.0%} of the image is on the object side of the threshold. "
            f"Are the nuclei {other} than the background? (sidebar: Threshold → Nuclei are) "
            "Or is the background uneven? (Filter → background subtraction, or a local threshold)"
        )
    if split.labels.max() == 0:
        if not thresholded.mask.any():
            notes.append("No pixel passed the threshold: lower the threshold or pick another method.")
        elif not mask.any():
            notes.append(
                "Every thresholded object was removed by refinement: lower 'min size' or the opening radius."
            )
        elif share <= MOSTLY_FOREGROUND:
            notes.append(
                "No objects left after splitting and filtering: check 'max size', "
                "'remove objects touching the border' and the seed settings."
            )
    elif unseeded_objects:
        lost = float(np.count_nonzero(split.unseeded)) / max(1, np.count_nonzero(mask))
        notes.append(
            f"{unseeded_objects} object{'s' if unseeded_objects > 1 else ''} "
            f"({'under 1%' if lost < 0.005 else f'{lost:.0%}'} of the mask) got no "
            "watershed seed and were dropped (magenta in the overlay; often whole nuclei at the image "
            "border, where peak_local_max looks for no seed). Tick 'Keep objects without a seed' "
            "(Split → Advanced) to keep them."
        )
    return notes
