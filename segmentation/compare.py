"""Settings side by side: the grids of the app's Compare page.

The course's advice is to "test different filters and different kernel sizes,
and choose the combination that gives you the best binary mask".  This module
builds those comparisons as *cells*: each cell is the current :class:`Params`
with one or two settings replaced, and :func:`compute_cell` runs the pipeline's
own stage functions on it, so a cell shows exactly what :func:`segment` gives
with that cell's settings.

- :func:`filter_grid`: a row per filter (none, mean, Gaussian, median), a cell
  per size (sigma for Gaussian, window side for mean and median).
- :func:`threshold_cells`: one cell per automatic threshold method.
- :func:`split_grid`: a row per watershed ``footprint``, a cell per
  ``min_distance``.

:class:`CellCache` computes cells in a thread pool (scipy and scikit-image
release the GIL in the filters, the distance transform and the watershed) and
keeps the results, bounded by memory.  The rest are small picture helpers:
the crop every cell shows, the mask or outline picture of a cell, and an
overview thumbnail with the crop drawn on it.

No Streamlit here: everything is plain numpy and testable.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .display import outline_overlay, stretch_between
from .errors import SegmentationError
from .filters import filter_image
from .params import AUTO_THRESHOLD_METHODS, Params
from .pipeline import label_objects
from .refine import refine_mask
from .threshold import threshold_image

__all__ = [
    "Cell",
    "Row",
    "CellResult",
    "CellCache",
    "FILTER_ROWS",
    "FILTER_TITLES",
    "METHOD_TITLES",
    "DEFAULT_SIGMAS",
    "DEFAULT_WINDOWS",
    "DEFAULT_MIN_DISTANCES",
    "DEFAULT_FOOTPRINTS",
    "SIGMA_RANGE",
    "WINDOW_RANGE",
    "MIN_DISTANCE_RANGE",
    "FOOTPRINT_RANGE",
    "parse_values",
    "filter_grid",
    "threshold_cells",
    "split_grid",
    "cell_key",
    "cell_cost",
    "compute_cell",
    "compute_cells",
    "describe",
    "crop_box",
    "enlarge",
    "stretch_between",
    "split_lines",
    "mask_picture",
    "outline_picture",
    "overview_picture",
]

FILTER_ROWS = ("none", "mean", "gaussian", "median")
FILTER_TITLES = {
    "none": "No filter",
    "mean": "Mean filter",
    "gaussian": "Gaussian blur",
    "median": "Median filter",
}
METHOD_TITLES = {
    "otsu": "Otsu", "li": "Li", "triangle": "Triangle", "yen": "Yen",
    "isodata": "IsoData", "mean": "Mean", "minimum": "Minimum",
}
DEFAULT_SIGMAS = (1.0, 2.0, 3.0, 5.0)
DEFAULT_WINDOWS = (3, 5, 9, 15)
DEFAULT_MIN_DISTANCES = (5, 10, 15, 20)
DEFAULT_FOOTPRINTS = (15, 25, 35)
# Ranges the grids accept; the Segment page's sliders (pages/common.py) use the
# same ones, so that an adopted cell shows there unchanged.
SIGMA_RANGE = (0.1, 10.0)
WINDOW_RANGE = (1, 31)
MIN_DISTANCE_RANGE = (1, 100)
FOOTPRINT_RANGE = (1, 101)
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
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"'{part}' is not a number. Type the {what} separated by commas.") from None
        if not np.isfinite(value) or not low <= value <= high:
            raise ValueError(f"The {what} must be between {_fmt(low)} and {_fmt(high)}; '{part}' is not.")
        if integer and value != int(value):
            raise ValueError(f"The {what} must be whole numbers; '{part}' is not.")
        if step is not None and abs(value / step - round(value / step)) > 1e-9:
            raise ValueError(f"The {what} go in steps of {_fmt(step)}; '{part}' is not one.")
        values.add(int(value) if integer else float(value))
    if len(values) > MAX_VALUES:
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
    for name in FILTER_ROWS:
        if name == "none":
            cells = (Cell(params.replace(filter="none"), "no filter"),)
            values = "sizes do not apply"
        elif name == "gaussian":
            cells = tuple(Cell(params.replace(filter=name, sigma=float(s)), f"σ = {_fmt(s)} px") for s in sigmas)
            values = "sigma (px): " + ", ".join(_fmt(s) for s in sigmas)
        else:
            cells = tuple(
                Cell(params.replace(filter=name, filter_size=int(k)), f"{k} × {k} px") for k in windows
            )
            values = "window (px): " + ", ".join(f"{k} × {k}" for k in windows)
        rows.append(Row(name, FILTER_TITLES[name], values, cells))
    return rows


def threshold_cells(params: Params) -> list[Cell]:
    """One cell per automatic threshold method, on the filter set in `params`."""
    return [Cell(params.replace(threshold_method=m), METHOD_TITLES[m]) for m in AUTO_THRESHOLD_METHODS]


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
    """What a cell's result depends on: the settings of filter to split, unused ones left out.

    Two settings that give the same objects get the same key (e.g. Gaussian
    cells whatever the mean/median window), so they share one computation.
    The plane choice is not included: key the image separately.
    """
    p = params
    background = (p.background, p.background_radius if p.background != "none" else None)
    filt = (
        p.filter,
        p.sigma if p.filter == "gaussian" else None,
        p.filter_size if p.filter in ("mean", "median") else None,
    )
    threshold = (
        p.threshold_method,
        p.threshold_value if p.threshold_method == "manual" else None,
        (p.block_size, p.offset) if p.threshold_method == "local" else None,
        p.objects,
    )
    return (background, filt, threshold, p.stage("refine"), p.stage("split"), p.stage("objects"))


def cell_cost(params: Params) -> float:
    """A rough relative cost, to start the slowest cells first (median grows with its window)."""
    if params.filter == "median":
        return 1.0 + params.filter_size**2 / 4
    return 1.0


# --- computing ------------------------------------------------------------------


@dataclass(frozen=True)
class CellResult:
    """What one cell shows.

    Attributes
    ----------
    mask : (M, N) bool ndarray or None
        The refined mask (``Result.mask`` of :func:`segment`).
    labels : (M, N) uint16 or uint32 ndarray or None
        The objects (``Result.labels``), in the smallest type that holds them.
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

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.mask, self.labels) if a is not None)


def compute_cell(image: np.ndarray, params: Params, filtered: np.ndarray | None = None) -> CellResult:
    """Segment `image` with `params` up to the labels, as :func:`segment` does.

    Parameters
    ----------
    image : (M, N) ndarray
        The raw plane (already validated).
    params : Params
    filtered : ndarray, optional
        ``filter_image(image, params)`` when already known (cells that differ
        only after the filter share it).

    Returns
    -------
    CellResult
        ``error`` is set, not raised, when a step finds no answer on this
        image (:class:`SegmentationError`).
    """
    start = time.perf_counter()
    try:
        # 1. reduce noise
        if filtered is None:
            filtered = filter_image(image, params)
        # 2. threshold
        thresholded = threshold_image(filtered, params)
        # 3. clean up the mask
        mask = refine_mask(thresholded.mask, params)
        # 4. label, splitting touching nuclei
        labels = label_objects(mask, params).labels
    except SegmentationError as exc:
        return CellResult(None, None, None, 0, time.perf_counter() - start, error=_sentence(str(exc)))
    count = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))  # = rows of the measurement table
    if labels.max() < 2**16:
        labels = labels.astype(np.uint16)
    mask.setflags(write=False)
    labels.setflags(write=False)
    return CellResult(mask, labels, thresholded.value, count, time.perf_counter() - start)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def compute_cells(
    image: np.ndarray, params_list: Sequence[Params], workers: int = 2, filtered: np.ndarray | None = None
) -> list[CellResult]:
    """Compute many cells in `workers` threads, slowest first; results in input order."""
    order = sorted(range(len(params_list)), key=lambda i: -cell_cost(params_list[i]))
    results: list[CellResult | None] = [None] * len(params_list)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(compute_cell, image, params_list[i], filtered): i for i in order}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
    return results  # type: ignore[return-value]


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    return int(getattr(value, "nbytes", 0))


class CellCache:
    """Compute cells in a shared thread pool and keep the results (least recently used go first).

    ``submit(key, fn, *args)`` returns a :class:`~concurrent.futures.Future`:
    already done when the key is kept, the running one when the same key is
    being computed (a rerun of the page waits for it instead of starting
    again), else a new one.  Results are kept when they finish, even when
    nobody waits for them any more, and the total kept stays under
    `max_bytes`.  Failed computations are not kept.
    """

    def __init__(self, max_bytes: int = 1 << 30, workers: int = 2) -> None:
        self.max_bytes = int(max_bytes)
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compare-cell")
        self._lock = threading.Lock()
        self._done: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._done

    def __len__(self) -> int:
        with self._lock:
            return len(self._done)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                done: Future = Future()
                done.set_result(self._done[key][0])
                return done
            if key in self._pending:
                return self._pending[key]
            future = self._pool.submit(fn, *args, **kwargs)
            self._pending[key] = future
        future.add_done_callback(partial(self._keep, key))
        return future

    def _keep(self, key: Hashable, future: Future) -> None:
        with self._lock:
            if self._pending.get(key) is future:
                del self._pending[key]
            if future.cancelled() or future.exception() is not None:
                return
            value = future.result()
            size = _nbytes(value)
            if size > self.max_bytes or key in self._done:
                return
            self._done[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, old) = self._done.popitem(last=False)
                self._bytes -= old

    def clear(self) -> None:
        with self._lock:
            self._done.clear()
            self._bytes = 0


def describe(params: Params) -> str:
    """The compared settings in a few words.

    >>> describe(Params())
    'Gaussian blur σ = 1 px → Otsu → watershed (footprint 25, min_distance 10)'
    """
    if params.filter == "none":
        filt = "no filter"
    elif params.filter == "gaussian":
        filt = f"Gaussian blur σ = {_fmt(params.sigma)} px"
    else:
        filt = f"{FILTER_TITLES[params.filter]} {params.filter_size} × {params.filter_size} px"
    method = params.threshold_method
    if method == "manual":
        thr = f"manual cutoff {_fmt(params.threshold_value)}"  # type: ignore[arg-type]
    elif method == "local":
        thr = f"local threshold (block {params.block_size} px)"
    else:
        thr = METHOD_TITLES[method]
    if params.split == "none":
        split = "no splitting"
    elif params.seed_method == "peak_local_max":
        split = f"watershed (footprint {params.footprint}, min_distance {params.min_distance})"
    else:
        split = f"watershed (h-maxima, h = {_fmt(params.h)})"
    return f"{filt} → {thr} → {split}"


# --- pictures -------------------------------------------------------------------


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
