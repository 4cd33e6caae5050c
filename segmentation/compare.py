"""Settings side by side: the grids of the app's Compare page.

The course's advice is to "test different filters and different kernel sizes,
and choose the combination that gives you the best binary mask".  This module
builds those comparisons as *cells*: each cell is the current :class:`Params`
with one or two settings replaced, and :func:`compute_cell` runs the stage
runner (:func:`segmentation.stages.run_stages`) on it, so a cell shows exactly
what :func:`segment` gives with that cell's settings, and cells that share a
stage (say, every threshold cell shares the filter) compute it once when they
share a :class:`~segmentation.cache.Cache`.

- :func:`filter_grid`: a row per filter (none, mean, Gaussian, median), a cell
  per size (sigma for Gaussian, window side for mean and median).
- :func:`threshold_cells`: one cell per automatic threshold method.
- :func:`split_grid`: a row per watershed ``footprint``, a cell per
  ``min_distance``.

The rest are small picture helpers: the crop every cell shows, the mask or
outline picture of a cell, and an overview thumbnail with the crop drawn on it.

No Streamlit here: everything is plain numpy and testable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .display import outline_overlay, stretch_between
from .errors import SegmentationError
from .filters import FILTERS
from .params import SETTINGS, Params
from .stages import filter_key, run_stages
from .threshold import AUTO_THRESHOLD_METHODS, THRESHOLD_METHODS

__all__ = [
    "Cell",
    "Row",
    "CellResult",
    "DEFAULT_SIGMAS",
    "DEFAULT_WINDOWS",
    "DEFAULT_MIN_DISTANCES",
    "DEFAULT_FOOTPRINTS",
    "parse_values",
    "filter_grid",
    "threshold_cells",
    "split_grid",
    "cell_key",
    "cell_cost",
    "slowest_first",
    "compute_cell",
    "busiest_region",
    "crop_box",
    "enlarge",
    "stretch_between",
    "split_lines",
    "mask_picture",
    "outline_picture",
    "overview_picture",
]

DEFAULT_SIGMAS = (1.0, 2.0, 3.0, 5.0)
DEFAULT_WINDOWS = (3, 5, 9, 15)
DEFAULT_MIN_DISTANCES = (5, 10, 15, 20)
DEFAULT_FOOTPRINTS = (15, 25, 35)
MAX_VALUES = 6  # columns per row; more would make the cells too small to judge


# --- the cells ------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One setting to try: the full settings, and how to name it under its picture.

    Attributes
    ----------
    params : Params
        The current settings with the compared field(s) replaced.
    label : str
        Short name of what differs, e.g. ``"σ = 2 px"`` or ``"9 × 9 px"``.
    """

    params: Params
    label: str


@dataclass(frozen=True)
class Row:
    """A row of a grid: a title, the values it varies, and its cells."""

    name: str
    title: str
    values_text: str
    cells: tuple[Cell, ...]


def _fmt(value: float) -> str:
    return f"{value:g}"


def parse_values(text: str, *, integer: bool, low: float, high: float, what: str, step: float | None = None) -> tuple:
    """Read a list of sizes typed by the user, such as ``"1, 2, 3.5"``.

    Values are sorted and duplicates dropped.  With `step`, values must be
    multiples of it (e.g. 0.1 for sigma, what a slider can show).

    Raises
    ------
    ValueError
        With a message for the user: not a number, a fraction where whole
        numbers are needed, out of range, none or too many values.

    Examples
    --------
    >>> parse_values("5, 3 9;3", integer=True, low=1, high=501, what="window sizes")
    (3, 5, 9)
    >>> parse_values("1, 2.5", integer=False, low=0, high=100, what="sigmas")
    (1.0, 2.5)
    """
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    if not parts:
        raise ValueError(f"Type at least one value for the {what}, e.g. 1, 2, 3.")
    values: set[float] = set()
    for part in parts[: MAX_VALUES * 4]:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"'{part[:20]}' is not a number. Type the {what} separated by commas.") from None
        if not np.isfinite(value) or not low <= value <= high:
            raise ValueError(f"The {what} must be between {_fmt(low)} and {_fmt(high)}; '{part[:20]}' is not.")
        if integer and value != int(value):
            raise ValueError(f"The {what} must be whole numbers; '{part[:20]}' is not.")
        if step is not None and abs(value / step - round(value / step)) > 1e-9:
            raise ValueError(f"The {what} go in steps of {_fmt(step)}; '{part[:20]}' is not one.")
        values.add(int(value) if integer else float(value))
    if len(values) > MAX_VALUES or len(parts) > MAX_VALUES * 4:
        raise ValueError(f"Give at most {MAX_VALUES} {what}: more would make the pictures too small to compare.")
    return tuple(sorted(values))


def filter_grid(params: Params, sigmas: Sequence[float], windows: Sequence[int]) -> list[Row]:
    """A row per filter, a cell per size; the "no filter" row has one cell.

    Gaussian cells vary ``sigma``; mean and median cells vary ``filter_size``.
    Every other setting is the one in `params`.

    Examples
    --------
    >>> rows = filter_grid(Params(), [1, 2], [3, 9])
    >>> [(r.name, [c.label for c in r.cells]) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [('none', ['no filter']), ('mean', ['3 × 3 px', '9 × 9 px']),
     ('gaussian', ['σ = 1 px', 'σ = 2 px']), ('median', ['3 × 3 px', '9 × 9 px'])]
    """
    rows = []
    for name, method in FILTERS.items():
        probe = params.replace(filter=name)
        if probe.uses("sigma"):
            cells = tuple(Cell(params.replace(filter=name, sigma=float(s)), f"σ = {_fmt(s)} px") for s in sigmas)
            values = "sigma (px): " + ", ".join(_fmt(s) for s in sigmas)
        elif probe.uses("filter_size"):
            cells = tuple(
                Cell(params.replace(filter=name, filter_size=int(k)), f"{k} × {k} px") for k in windows
            )
            values = "window (px): " + ", ".join(f"{k} × {k}" for k in windows)
        else:
            cells = (Cell(probe, "no filter" if name == "none" else method.label),)
            values = "sizes do not apply"
        rows.append(Row(name, "No filter" if name == "none" else f"{method.label} filter", values, cells))
    return rows


def threshold_cells(params: Params) -> list[Cell]:
    """One cell per automatic threshold method, on the filter set in `params`."""
    return [Cell(params.replace(threshold_method=m), THRESHOLD_METHODS[m].label) for m in AUTO_THRESHOLD_METHODS]


def split_grid(params: Params, min_distances: Sequence[int], footprints: Sequence[int]) -> list[Row]:
    """A row per ``footprint``, a cell per ``min_distance`` (watershed, peak_local_max seeds).

    The cells always split with the watershed and ``peak_local_max`` seeds (the
    settings these two values belong to), whatever `params` uses.
    """
    rows = []
    for fp in footprints:
        cells = tuple(
            Cell(
                params.replace(
                    split="watershed", seed_method="peak_local_max", footprint=int(fp), min_distance=int(md)
                ),
                f"min_distance {md}",
            )
            for md in min_distances
        )
        values = "min_distance (px): " + ", ".join(str(md) for md in min_distances)
        rows.append(Row(f"footprint_{fp}", f"Footprint {fp} × {fp} px", values, cells))
    return rows


def cell_key(params: Params) -> tuple:
    """What a cell's result depends on: the settings of filter to object filters, unused ones left out.

    Two settings that give the same objects get the same key (e.g. Gaussian
    cells whatever the mean/median window), so they share one computation.
    The plane choice is not included: key the image separately.
    """
    return tuple(params.stage(s) for s in ("filter", "threshold", "refine", "split", "objects"))


def cell_cost(params: Params, filtered: np.ndarray | None = None) -> float:
    """A rough relative cost, to start the slowest cells first.

    Before the cell's filter has run, the filter dominates (a median grows
    with its window).  Once its filtered image is known (`filtered`: a
    change after the filter) only the threshold and the split remain; an
    automatic cutoff of a float image then costs most (Li iterates over
    every pixel, 100-200 ms at 2048×2048, where an integer image's cutoff
    comes from its histogram in 15 ms).
    """
    if filtered is not None:
        return 2.0 if filtered.dtype.kind == "f" and params.threshold_method != "manual" else 1.0
    if params.filter == "median":
        return 3.0 + params.filter_size**2 / 4
    return 3.0


def slowest_first(cells: Sequence[Params], image_key: Hashable = "image", cache: Any = None) -> list[int]:
    """The positions of `cells` in the order to start them: slowest first, so that the last to finish are short.

    `cache` is the stage cache the cells will run on: a cell whose filtered
    image it holds is costed without its filter (:func:`cell_cost`).
    """
    def cost(params: Params) -> float:
        filtered = cache.peek(filter_key(params, image_key)) if cache is not None else None
        return cell_cost(params, filtered)

    costs = [cost(p) for p in cells]
    return sorted(range(len(cells)), key=lambda i: -costs[i])


def grid_ranges(name: str) -> tuple[float, float]:
    """The values a grid accepts for setting `name`: its slider's usual range."""
    ui = SETTINGS[name].ui
    assert ui is not None
    return ui


# --- computing ------------------------------------------------------------------


@dataclass(frozen=True)
class CellResult:
    """What one cell shows.

    Attributes
    ----------
    mask : (M, N) bool ndarray or None
        The refined mask (``Result.mask`` of :func:`segment`).
    labels : (M, N) uint32 ndarray or None
        The objects (``Result.labels``).
    threshold : float or None
        The cutoff in raw units.
    count : int
        Number of objects.
    seconds : float
        Time the computation took.
    error : str or None
        Why this cell has no result (e.g. the 'minimum' method found no cutoff).
    """

    mask: np.ndarray | None
    labels: np.ndarray | None
    threshold: float | None
    count: int
    seconds: float
    error: str | None = None


def compute_cell(image: np.ndarray, params: Params, image_key: Hashable = "image", cache: Any = None) -> CellResult:
    """Segment `image` with `params` up to the labels, as :func:`segment` does.

    Parameters
    ----------
    image : (M, N) ndarray
        The raw plane (already validated).
    params : Params
    image_key, cache :
        Passed to :func:`~segmentation.stages.run_stages`: cells sharing a
        cache share the stages they have in common.

    Returns
    -------
    CellResult
        ``error`` is set, not raised, when a step finds no answer on this
        image (:class:`SegmentationError`).
    """
    start = time.perf_counter()
    try:
        stages = run_stages(image, params, image_key=image_key, cache=cache)
    except SegmentationError as exc:
        return CellResult(None, None, None, 0, time.perf_counter() - start, error=_sentence(str(exc)))
    return CellResult(stages.mask, stages.labels, stages.thresholded.value, stages.count,
                      time.perf_counter() - start)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# --- pictures -------------------------------------------------------------------


def busiest_region(image: np.ndarray, size: int) -> tuple[int, int]:
    """The centre (row, column) of the `size`-px square with the most nuclei-like pixels (above Otsu).

    The Compare page opens there, so that a sparse image does not open on empty background.

    >>> img = np.zeros((100, 100)); img[70:80, 10:20] = 5
    >>> r, c = busiest_region(img, 20)
    >>> 60 <= r < 90 and 0 <= c < 30
    True
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(image.size / 250_000)))  # a quick look at ~500×500 pixels
    small = np.asarray(image[::step, ::step], dtype=np.float32)
    if small.min() == small.max():
        return h // 2, w // 2
    bright = (small > threshold_otsu(small)).astype(np.float32)
    window = max(1, min(size // step, *small.shape))
    density = ndi.uniform_filter(bright, window, mode="constant")
    r, c = np.unravel_index(int(np.argmax(density)), density.shape)
    return int(min(r * step + step // 2, h - 1)), int(min(c * step + step // 2, w - 1))


def crop_box(shape: tuple[int, int], centre: tuple[int, int], size: int) -> tuple[slice, slice]:
    """The square of side `size` around `centre` (row, column), moved inside the image.

    >>> crop_box((100, 200), (5, 190), 32)
    (slice(0, 32, None), slice(168, 200, None))
    """
    out = []
    for n, c in zip(shape[:2], centre):
        side = min(int(size), n)
        start = min(max(int(c) - side // 2, 0), n - side)
        out.append(slice(start, start + side))
    return out[0], out[1]


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel repeated `factor` times in both directions (sharp pixels, no blur)."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def split_lines(labels: np.ndarray) -> np.ndarray:
    """Pixels where two different objects touch (one pixel wide), the watershed's cuts.

    >>> split_lines(np.array([[1, 1, 2, 2], [0, 0, 0, 0]])).astype(int).tolist()
    [[0, 1, 0, 0], [0, 0, 0, 0]]
    """
    lines = np.zeros(labels.shape, dtype=bool)
    a, b = labels[:, :-1], labels[:, 1:]
    lines[:, :-1] |= (a != b) & (a > 0) & (b > 0)
    a, b = labels[:-1, :], labels[1:, :]
    lines[:-1, :] |= (a != b) & (a > 0) & (b > 0)
    return lines


MASK_GREY = {"object": 255, "dropped": 110, "background": 0, "cut": 0}


def mask_picture(mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mask as a grey picture: objects white, cuts between touching objects black,
    mask pixels that ended in no object (no seed, too large, on the border) mid-grey."""
    out = np.zeros(mask.shape, dtype=np.uint8)
    out[mask] = MASK_GREY["dropped"]
    out[labels > 0] = MASK_GREY["object"]
    out[split_lines(labels)] = MASK_GREY["cut"]
    return out


def outline_picture(raw_u8: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Object outlines (yellow) and dropped mask parts (magenta) on the raw picture (RGB)."""
    return outline_overlay(raw_u8, labels, removed=mask & (labels == 0))


def overview_picture(small_u8: np.ndarray, box: tuple[slice, slice], step: int) -> np.ndarray:
    """The crop `box` drawn in cyan on a thumbnail of the image, the rest dimmed.

    Parameters
    ----------
    small_u8 : (m, n) uint8
        The whole image downsampled by `step` (every `step`-th pixel).
    box : (slice, slice)
        Rows and columns of the crop, in full-resolution pixels.
    """
    h, w = small_u8.shape[:2]
    r0 = min(box[0].start // step, h - 1)
    r1 = min(max((box[0].stop - 1) // step, r0), h - 1)
    c0 = min(box[1].start // step, w - 1)
    c1 = min(max((box[1].stop - 1) // step, c0), w - 1)
    dim = small_u8 // 2  # outside the crop at half brightness, so the crop stands out
    dim[r0 : r1 + 1, c0 : c1 + 1] = small_u8[r0 : r1 + 1, c0 : c1 + 1]
    rgb = np.repeat(dim[..., None], 3, axis=2)
    t = max(1, min(h, w) // 150)  # line width in thumbnail pixels
    color = (0, 220, 255)
    rgb[r0 : r0 + t, c0 : c1 + 1] = color
    rgb[max(r1 - t + 1, 0) : r1 + 1, c0 : c1 + 1] = color
    rgb[r0 : r1 + 1, c0 : c0 + t] = color
    rgb[r0 : r1 + 1, max(c1 - t + 1, 0) : c1 + 1] = color
    return rgb
