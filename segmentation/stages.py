"""The pipeline's stages in the course's order, each cached on exactly the settings it reads.

:func:`run_stages` is the one place the order of the steps is written:
:func:`segmentation.segment`, the Compare cells and the Segment page all call
it, with or without a :class:`~segmentation.cache.Cache`.  Each stage's cache
key is the image's key plus the settings of that stage and the ones upstream
of it (:data:`~segmentation.params.STAGE_FIELDS`); the stage itself only sees
its own settings (:meth:`Params.only <segmentation.params.Params.only>`), so a
stage that starts reading another stage's setting fails instead of reusing a
stale result.  Splitting is keyed on the refined mask itself, so a setting
that leaves the mask unchanged recomputes nothing downstream.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from skimage import measure

from .conditions import mark_positive
from .filters import filter_image
from .measure import measure_objects, summarize
from .params import Params
from .refine import connected_components, filter_objects, refine_mask
from .split import SplitResult, split_objects
from .threshold import ThresholdResult, threshold_image

__all__ = ["Note", "Stages", "Result", "run_stages", "filter_stage", "filter_key", "measure_stages", "keep_objects",
           "removed_pixels", "finish"]

# Above this share of foreground pixels the nuclei are probably dark on bright.
MOSTLY_FOREGROUND = 0.5
# Above this share of the thresholded pixels in no object, the settings are probably not for this image.
MOSTLY_REMOVED = 0.5


class Note(str):
    """A plain-language note on a result; `kind` names it for the app (``"unseeded"``, ``"polarity"``, ...).

    >>> note = Note("3 objects got no seed", "unseeded")
    >>> note == "3 objects got no seed", note.kind
    (True, 'unseeded')
    """

    kind: str

    def __new__(cls, text: str, kind: str = "") -> Note:
        note = super().__new__(cls, text)
        note.kind = kind
        return note


class _NoCache:
    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        return compute()


@dataclass(frozen=True)
class Stages:
    """One image through filter, threshold, refine, split and the object filters: all but the measurements.

    ``keys`` holds the cache key of each stage's output (``"image"``,
    ``"filter"``, ``"threshold"``, ``"refine"``, ``"split"``, ``"objects"``),
    for pictures drawn from them.
    """

    image: np.ndarray
    filtered: np.ndarray
    thresholded: ThresholdResult
    mask: np.ndarray
    split: SplitResult
    removed: np.ndarray
    keys: dict[str, tuple]

    @property
    def labels(self) -> np.ndarray:
        return self.split.labels

    @property
    def count(self) -> int:
        return int(self.split.labels.max())  # labels are numbered 1..N


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


def run_stages(
    image: np.ndarray,
    params: Params,
    *,
    image_key: Hashable = "image",
    cache: Any = None,
    object_cache: dict | None = None,
    threads: int = 1,
) -> Stages:
    """Filter, threshold, refine, split and filter the objects of one validated 2-D plane.

    Parameters
    ----------
    image : (M, N) ndarray
        The raw plane, in its own units.
    params : Params
    image_key : hashable
        Identifies `image` in `cache` (e.g. the file's digest and plane choice).
    cache : Cache, optional
        Where each stage's result is kept (see :class:`segmentation.cache.Cache`);
        without one, every stage is computed.
    object_cache : dict, optional
        Per-object distance transforms of earlier masks of the *same image*
        (see :func:`~segmentation.split.split_objects`).
    threads : int, optional
        Threads for the filter (see :func:`~segmentation.filters.apply_filter`);
        the result is the same.
    """
    cache = cache if cache is not None else _NoCache()
    keys: dict[str, tuple] = {"image": (image_key,)}

    def stage(name: str, upstream: str, compute: Callable[[], Any]) -> Any:
        keys[name] = _key(keys[upstream], name, params)
        return cache.get(keys[name], compute)

    # 1. reduce noise
    filtered, keys["filter"] = filter_stage(image, params, image_key=image_key, cache=cache, threads=threads)
    # 2. threshold: objects brighter (or darker) than the cutoff
    thresholded = stage("threshold", "filter", lambda: threshold_image(filtered, params.only("threshold")))
    # 3. clean up the mask (objects are counted once per threshold, so a new min size is a look-up)
    def refined() -> np.ndarray:
        labels = sizes = None
        if params.min_size > 1:
            labels, sizes = cache.get((*keys["threshold"], "components"), lambda: _components(thresholded.mask))
        return refine_mask(thresholded.mask, params.only("refine"), labels, sizes)

    mask = stage("refine", "threshold", refined)
    # 4. split touching nuclei, keyed on the mask itself
    keys["mask"] = (image_key, "mask", hashlib.blake2b(mask.view(np.uint8), digest_size=16).hexdigest())
    split = stage("split", "mask", lambda: split_objects(mask, params.only("split"), cache=object_cache))
    # 5. drop the objects too large or on the border
    kept = stage("objects", "split", lambda: keep_objects(split, params.only("objects")))
    removed = cache.get((*keys["objects"], *keys["threshold"], "removed"),
                        lambda: removed_pixels(thresholded.mask, mask, kept.labels))
    return Stages(image, filtered, thresholded, mask, kept, removed, keys)


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = connected_components(mask)
    return labels, np.bincount(labels.ravel())


def _key(upstream: tuple, name: str, params: Params) -> tuple:
    return (*upstream, name, params.stage(name))


def filter_stage(image: np.ndarray, params: Params, *, image_key: Hashable = "image",
                 cache: Any = None, threads: int = 1) -> tuple[np.ndarray, tuple]:
    """Only the first stage: the filtered image and its cache key (the same as :func:`run_stages`')."""
    cache = cache if cache is not None else _NoCache()
    key = filter_key(params, image_key)
    return cache.get(key, lambda: filter_image(image, params.only("filter"), threads)), key


def filter_key(params: Params, image_key: Hashable = "image") -> tuple:
    """The cache key of the filtered image (to look it up without computing it)."""
    return _key((image_key,), "filter", params)


def measure_stages(stages: Stages, params: Params, *, cache: Any = None, pixel_scale: float = 1.0,
                   channels: Mapping[str, np.ndarray] | None = None) -> Result:
    """Measure the objects of `stages` and assemble the :class:`Result` with its warnings.

    `pixel_scale` multiplies the pixel size: a page that works on a 2×
    downsampled copy passes 2, and its settings keep the file's pixel size.
    `channels` are the file's other channels (name -> plane of the same
    shape), measured in the same nuclei; they belong to the image of
    ``stages.keys["image"]``.
    """
    cache = cache if cache is not None else _NoCache()
    size = params.pixel_size_um * pixel_scale if params.pixel_size_um else None
    key = (*stages.keys["objects"], *stages.keys["threshold"], "measure", params.stage("measure"), pixel_scale,
           tuple(channels or ()))
    return cache.get(key, lambda: finish(stages, params.only("threshold", "measure"), size, channels))


def keep_objects(split: SplitResult, params: Any) -> SplitResult:
    """Drop the objects larger than ``max_size`` or touching the border, as set in `params`."""
    if params.max_size == 0 and not params.exclude_border:
        return split  # split_objects numbers its labels 1..N already
    labels = filter_objects(split.labels, params.max_size, params.exclude_border)
    return dataclasses.replace(split, labels=labels)


def removed_pixels(binary: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Thresholded (or refined) pixels that ended in no object: the overlay's magenta."""
    return (binary | mask) & (labels == 0)


def finish(stages: Stages, params: Any, pixel_size_um: float | None,
           channels: Mapping[str, np.ndarray] | None = None) -> Result:
    """Measure the objects (and other channels) and assemble the :class:`Result` with its warnings."""
    split, thresholded, mask = stages.split, stages.thresholded, stages.mask
    channels = dict(channels or {})
    measurements = measure_objects(split.labels, stages.image, pixel_size_um, channels=channels or None,
                                   ring_width=params.ring_width if channels else 0)
    cutoffs = {channel: cutoff for channel, cutoff in params.positive if channel in channels}
    measurements = mark_positive(measurements, cutoffs)
    summary = summarize(measurements, mask, thresholded.value, thresholded.method)
    for channel in cutoffs:
        positive = measurements[f"{channel}_positive"]
        summary[f"{channel}_percent_positive"] = float(positive.mean() * 100) if len(positive) else None
    # whole objects the watershed dropped for want of a seed (the course's recipe does this)
    unseeded_objects = int(measure.label(split.unseeded).max()) if split.unseeded.any() else 0
    summary["dropped_without_seed"] = unseeded_objects
    found = np.count_nonzero(thresholded.mask | mask)
    summary["removed_fraction"] = float(np.count_nonzero(stages.removed) / found) if found else 0.0
    return Result(
        image=stages.image,
        filtered=stages.filtered,
        threshold=thresholded.value,
        threshold_method=thresholded.method,
        binary=thresholded.mask,
        mask=mask,
        labels=split.labels,
        distance=split.distance,
        seeds=split.seeds,
        removed=stages.removed,
        measurements=measurements,
        summary=summary,
        warnings=_warnings(thresholded, mask, split, params.objects, unseeded_objects, summary["removed_fraction"]),
    )


def _warnings(
    thresholded: ThresholdResult, mask: np.ndarray, split: SplitResult, objects: str, unseeded_objects: int,
    removed: float = 0.0,
) -> list[str]:
    notes = []
    if removed > MOSTLY_REMOVED and split.labels.max() > 0:
        notes.append(Note(
            f"{removed:.0%} of what the threshold found ended in no nucleus (magenta in the overlay): the "
            "settings may have been tuned on another kind of image. Check 'Remove objects smaller than', the "
            "object filters and the seeds, or press 'Suggest settings for this image'.", "removed"
        ))
    share = float(np.count_nonzero(thresholded.mask)) / thresholded.mask.size
    if share > MOSTLY_FOREGROUND:
        other = "darker" if objects == "bright" else "brighter"
        notes.append(Note(
            f"{share:.0%} of the image is on the object side of the threshold. "
            f"Are the nuclei {other} than the background? (sidebar: Threshold → Nuclei are) "
            "Or is the background uneven? (Filter → background subtraction, or a local threshold)", "polarity"
        ))
    if split.labels.max() == 0:
        if not thresholded.mask.any():
            notes.append(Note("No pixel passed the threshold: lower the threshold or pick another method.", "empty"))
        elif not mask.any():
            notes.append(Note(
                "Every thresholded object was removed by refinement: lower 'min size' or the opening radius.", "empty"
            ))
        elif share <= MOSTLY_FOREGROUND:
            notes.append(Note(
                "No objects left after splitting and filtering: check 'max size', "
                "'remove objects touching the border' and the seed settings.", "empty"
            ))
    elif unseeded_objects:
        lost = float(np.count_nonzero(split.unseeded)) / max(1, np.count_nonzero(mask))
        notes.append(Note(
            f"{unseeded_objects} object{'s' if unseeded_objects > 1 else ''} "
            f"({'under 1%' if lost < 0.005 else f'{lost:.0%}'} of the mask) got no "
            "watershed seed and were left out, as the course's recipe does (magenta in the overlay). Most are "
            "nuclei cut by the image border: the seed search skips a band along it. Tick 'Keep objects without a "
            "seed' (Split → Advanced) to keep them.", "unseeded"
        ))
    return notes
