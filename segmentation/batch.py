"""Step 6: run the same settings on many images and stream the results into one zip.

Used by both the command line (``python -m segmentation``) and the app's Batch
page, so the zip is the same everywhere; its layout is
:data:`segmentation.export.ZIP_LAYOUT`.  ``<name>`` keeps the input's relative
folder path, so two ``img.tif`` in different folders never collide.  A failed
input never stops the others.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .display import downsample, downsample_factor, format_value, outline_overlay, png_bytes, stretch
from .errors import SegmentationError
from .export import image_outputs, layout_text, script_text, zip_path
from .inputs import BatchInput, Skipped
from .conditions import compile_pattern, condition_columns, condition_table
from .export import channel_planes, file_channel_names
from .io import ImageReadError, read_image, select_plane, validate_plane
from .params import Params
from .pipeline import segment
from .safety import csv_safe
from .stages import MOSTLY_REMOVED
from .suggest import suggest
from .workers import LocalWorkers, one_thread_each, outcomes

__all__ = [
    "ImageOutcome",
    "BatchReport",
    "output_names",
    "process_one",
    "run_batch",
    "flag_outliers",
    "SUMMARY_COLUMNS",
    "OUTLIER_Z",
    "OUTLIER_RATIO",
]

SUMMARY_COLUMNS = [
    "image", "file", "status", "reason", "threshold_method", "threshold", "objects",
    "mean_area_px2", "median_area_px2", "mean_area_um2", "median_area_um2",
    "foreground_fraction", "removed_fraction", "dropped_without_seed", "height", "width", "pixel_size_um",
    "seconds", "warnings", "check",
]
THUMBNAIL_SIDE = 480
TOO_LARGE_FOR_MEMORY = ("too large for the memory of this computer: crop or bin it in Fiji "
                        "(Image > Scale, or Image > Crop), or run it on a computer with more memory")
WORKER_DIED = ("the helper process segmenting this image stopped (most likely it ran out of memory: the image may be "
               "too large for this computer); the other images were not affected")
# With a suggestion per image: what the batch's settings keep, and the suggested values summary.csv records.
KEPT_WHEN_SUGGESTED = ("channel", "z", "t", "pixel_size_um", "positive", "ring_width")
SUGGESTED_IN_SUMMARY = ("threshold_method", "sigma", "background", "min_size", "max_size", "fill_holes",
                        "seed_method", "h", "distance_sigma")
# Skipped inputs that are problems with a file (listed in errors.csv), not just files that are not images.
SKIPPED_AS_ERRORS = ("too_large", "damaged", "encrypted")


@dataclass
class ImageOutcome:
    """What one input gave: files for the zip, a summary row and a thumbnail."""

    name: str
    out_name: str
    status: str  # "ok" or "failed"
    reason: str = ""
    row: dict = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    measurements: pd.DataFrame | None = None
    thumbnail: bytes | None = None


@dataclass
class BatchReport:
    """The run as a whole; `summary` has one row per input (skipped ones too)."""

    zip_path: Path
    summary: pd.DataFrame
    errors: list[tuple[str, str]]
    skipped: list[Skipped]
    thumbnails: dict[str, bytes]
    stopped: bool
    seconds: float

    @property
    def n_ok(self) -> int:
        return int((self.summary["status"] == "ok").sum()) if len(self.summary) else 0


# --- inputs -----------------------------------------------------------------


def output_names(names: Sequence[str]) -> list[str]:
    """Safe, unique output names: relative path without suffix, ``_2`` on clashes.

    A file named ``...tif`` has the stem ``..``: it becomes ``image`` too, so
    that no output name holds a ``.`` or ``..`` step.

    >>> output_names(["a/img.tif", "b/img.tif", "a/img.png", "../x.tif", "a/...tif"])
    ['a/img', 'b/img', 'a/img_2', 'x', 'a/image']
    """
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
        leaf = PurePosixPath(parts[-1]).stem if parts else ""
        stem = "/".join([*parts[:-1], leaf if leaf not in ("", ".", "..") else "image"])
        candidate, n = stem, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{stem}_{n}"
        used.add(candidate.lower())
        out.append(candidate)
    return out


# --- one image ----------------------------------------------------------------


def process_one(inp: BatchInput, out_name: str, params: Params, conditions: dict | None = None,
                suggest_each: bool = False) -> ImageOutcome:
    """Read, segment, measure every channel and render one input. Never raises: failures become outcomes.

    `conditions` (e.g. ``{"condition": "control"}``, see
    :mod:`segmentation.conditions`) go into its summary row and measurements.
    With `suggest_each`, the image gets its own settings from
    :func:`segmentation.suggest` (keeping `params`' plane, pixel size and
    positive calls); they go into the zip, and their key values into the row.
    """
    start = time.perf_counter()
    conditions = dict(conditions or {})
    row: dict = {"image": out_name, "file": inp.name, **conditions}
    try:
        data, info = read_image(inp.source, name=inp.name)
        image = validate_plane(select_plane(data, info, channel=params.channel, z=params.z, t=params.t), inp.name)
        channels = channel_planes(data, info, params, file_channel_names(inp.source, info)) if info.n_c > 1 else {}
        del data
        if params.pixel_size_um is None and info.pixel_size_um is not None:
            params = params.replace(pixel_size_um=info.pixel_size_um)
        if suggest_each:
            suggestion = suggest(image)
            params = suggestion.params.replace(**{k: getattr(params, k) for k in KEPT_WHEN_SUGGESTED})
            row.update(suggestion.record(), **{f"suggest_{k}": getattr(params, k) for k in SUGGESTED_IN_SUMMARY})
        result = segment(image, params, name=inp.name, channels=channels)
        files = image_outputs(result, out_name, params.pixel_size_um)
        if suggest_each:
            files[zip_path("image_settings", out_name)] = params.to_json().encode()
        step = downsample_factor(image.shape, THUMBNAIL_SIDE)
        thumb = outline_overlay(stretch(downsample(image, step)), downsample(result.labels, step), halo=True)
        row.update(
            status="ok",
            reason="",
            height=image.shape[0],
            width=image.shape[1],
            pixel_size_um=params.pixel_size_um,
            warnings=" | ".join([*info.notes, *result.warnings]),
            **result.summary,
        )
        measurements = result.measurements.copy()
        for i, (column, value) in enumerate({"image": out_name, **conditions}.items()):
            measurements.insert(i, column, value)
        outcome = ImageOutcome(inp.name, out_name, "ok", "", row, files, measurements, png_bytes(thumb))
    except (ImageReadError, SegmentationError, ValueError) as exc:
        outcome = ImageOutcome(inp.name, out_name, "failed", str(exc), row)
    except MemoryError:
        outcome = ImageOutcome(inp.name, out_name, "failed", TOO_LARGE_FOR_MEMORY, row)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop a batch
        outcome = ImageOutcome(inp.name, out_name, "failed", f"unexpected error: {type(exc).__name__}: {exc}", row)
    if outcome.status == "failed":
        row.update(status="failed", reason=outcome.reason)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return outcome


# --- quality control ----------------------------------------------------------------

# An image is flagged for a look when one of its numbers lies more than OUTLIER_Z robust z-scores from the
# median of its folder (Iglewicz & Hoaglin's modified z-score, 0.6745 (x - median) / MAD, on the log of
# the values: counts, areas and cutoffs vary by factors) AND differs from that median by at least
# OUTLIER_RATIO times (so a tight folder does not flag small differences).
OUTLIER_Z = 3.5
OUTLIER_RATIO = 1.5
_OUTLIER_WORDS = {
    # column: (word when low, word when high)
    "objects": ("few nuclei", "many nuclei"),
    "threshold": ("low cutoff", "high cutoff"),
    "mean_area_px2": ("small nuclei", "large nuclei"),
}


def flag_outliers(summary: pd.DataFrame, min_images: int = 5) -> pd.Series:
    """Why each image looks unlike the rest of its folder ('' when it does not).

    Each segmented image is compared with the other segmented images of its
    folder (the folder part of its name; the whole batch when the folder has
    fewer than `min_images`) on its number of nuclei, its cutoff and its mean
    nucleus area: flagged when the robust z-score (median and MAD) exceeds
    :data:`OUTLIER_Z` and the value is off the median by a factor of at least
    :data:`OUTLIER_RATIO`.  An image where no nucleus was found is always
    flagged, and so is one where most of the thresholded area ended in no
    nucleus (``removed_fraction`` above :data:`~segmentation.stages.MOSTLY_REMOVED`):
    settings tuned on another kind of image do that to every image alike,
    which no comparison within the batch would notice.

    Parameters
    ----------
    summary : DataFrame
        The batch summary (``BatchReport.summary``): ``image``, ``status``,
        ``objects``, ``threshold``, ``mean_area_px2``.
    min_images : int
        Fewer segmented images than this in a folder: compare with the whole
        batch; fewer in the batch: only images without nuclei are flagged.

    Returns
    -------
    Series of str, aligned with `summary`
        E.g. ``"few nuclei: 12 (folder median 60)"``; several reasons are joined by ``"; "``.

    Examples
    --------
    >>> s = pd.DataFrame({"image": [f"plate/{i}" for i in range(6)], "status": ["ok"] * 6,
    ...                   "objects": [50, 60, 55, 58, 52, 10], "threshold": [100.0, 110, 105, 101, 99, 100],
    ...                   "mean_area_px2": [300.0, 310, 290, 305, 295, 300]})
    >>> flag_outliers(s).tolist()
    ['', '', '', '', '', 'few nuclei: 10 (folder median 53.5)']
    """
    reasons: list[list[str]] = [[] for _ in range(len(summary))]
    if not len(summary):
        return pd.Series([], index=summary.index, dtype=object)
    ok = (summary["status"] == "ok").to_numpy()
    objects = _numbers(summary, "objects")
    for i in np.flatnonzero(ok & (objects == 0)):
        reasons[i].append("no nuclei found")
    removed = _numbers(summary, "removed_fraction") if "removed_fraction" in summary else np.zeros(len(summary))
    for i in np.flatnonzero(ok & (objects > 0) & (removed > MOSTLY_REMOVED)):
        reasons[i].append(f"most of the mask removed: {removed[i]:.0%} (settings for another kind of image?)")
    names = summary["image"].astype(str) if "image" in summary else pd.Series([""] * len(summary))
    folders = np.array([str(PurePosixPath(n).parent) for n in names])
    for column, (low, high) in _OUTLIER_WORDS.items():
        if column not in summary:
            continue
        values = _numbers(summary, column)
        for folder in np.unique(folders[ok]):
            group = ok & (folders == folder) & np.isfinite(values)
            where = "folder"
            if group.sum() < min_images:
                group, where = ok & np.isfinite(values), "batch"
            if group.sum() < min_images:
                continue
            ref = values[group]
            median = float(np.median(ref))
            positive = (ref > 0).all()
            scale = np.log(ref[ref > 0]) if positive else ref
            centre = float(np.median(scale))
            mad = float(np.median(np.abs(scale - centre)))
            for i in np.flatnonzero(ok & (folders == folder) & np.isfinite(values)):
                v = values[i]
                if column == "objects" and v == 0:
                    continue  # already "no nuclei found"
                if positive and v <= 0:
                    z = np.inf
                else:
                    off = abs((np.log(v) if positive else v) - centre)
                    z = 0.6745 * off / mad if mad > 0 else (np.inf if off > 0 else 0.0)
                far = v > median * OUTLIER_RATIO or v < median / OUTLIER_RATIO if median > 0 else v != median
                if z > OUTLIER_Z and far:
                    word = low if v < median else high
                    reasons[i].append(f"{word}: {format_value(v)} ({where} median {format_value(median)})")
    return pd.Series(["; ".join(r) for r in reasons], index=summary.index, dtype=object)


def _numbers(summary: pd.DataFrame, column: str) -> np.ndarray:
    if column not in summary:
        return np.full(len(summary), np.nan)
    return pd.to_numeric(summary[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


# --- the zip --------------------------------------------------------------------


class _ZipWriter:
    """Streams outcomes into a zip on disk as they arrive; tables at the end."""

    def __init__(self, path: Path, params: Params, suggest_each: bool = False):
        self.path = path
        self.params = params
        self.suggest_each = suggest_each
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.tmp = tempfile.TemporaryDirectory(prefix="batch-")
        self.measurement_files: list[Path] = []
        self.part_columns: list[list[str]] = []
        self.columns: list[str] = []

    def conditions_table(self, summary: pd.DataFrame, conditions: Sequence[str]) -> pd.DataFrame | None:
        """Nuclei per image, nucleus area and % positive per condition (None when all images share one)."""
        ok = summary[summary["status"] == "ok"]
        if not conditions or not len(ok) or len(ok[list(conditions)].drop_duplicates()) < 2:
            return None
        area = "area_um2" if "area_um2" in self.columns else "area_px2"
        cutoffs = {c: v for c, v in self.params.positive if f"{c}_mean" in self.columns}
        wanted = ["image", *conditions, area, *(f"{c}_mean" for c in cutoffs)]
        parts = [pd.read_csv(part, usecols=lambda c: c in wanted, keep_default_na=False, na_values=[""])
                 for part in self.measurement_files]
        measurements = pd.concat(parts) if parts else pd.DataFrame(columns=wanted)
        for column in conditions:  # conditions read back as text, as in the summary
            measurements[column] = measurements[column].astype(str)
        return condition_table(ok.astype({c: str for c in conditions}), measurements, area, cutoffs, by=conditions)

    def _write(self, name: str, data: bytes | str) -> None:
        self.zip.writestr(_entry(name), data)

    def add(self, outcome: ImageOutcome) -> None:
        for arc, data in outcome.files.items():
            # TIFFs are zlib-compressed and PNGs deflated already
            self._write(arc, data)
        if outcome.measurements is not None:
            part = Path(self.tmp.name) / f"{len(self.measurement_files)}.csv"
            # the line ends, and so the quoting, of the csv module's writer in close()
            csv_safe(outcome.measurements).to_csv(part, index=False, lineterminator="\r\n")
            self.measurement_files.append(part)
            self.part_columns.append(list(outcome.measurements.columns))
            self.columns += [c for c in outcome.measurements.columns if c not in self.columns]

    def close(self, summary: pd.DataFrame, errors: list[tuple[str, str]], conditions: Sequence[str] = ()) -> None:
        entry = _entry(zip_path("all_measurements"))
        with self.zip.open(entry, "w") as raw, io.TextIOWrapper(raw, "utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=self.columns or ["image", "label"])
            writer.writeheader()
            for part, columns in zip(self.measurement_files, self.part_columns):
                with open(part, newline="", encoding="utf-8") as f:
                    if columns == self.columns:  # the usual case: its rows as they are, past the header
                        f.readline()
                        shutil.copyfileobj(f, out)
                    else:  # columns of its own: each row put in the table's columns
                        writer.writerows(csv.DictReader(f))  # already made safe per image
        self._write(zip_path("summary"), csv_safe(summary).to_csv(index=False, lineterminator="\r\n"))
        table = self.conditions_table(summary, conditions)
        if table is not None:
            self._write(zip_path("conditions"), csv_safe(table).to_csv(index=False, lineterminator="\r\n"))
        if errors:
            table = csv_safe(pd.DataFrame(errors, columns=["file", "reason"]))
            self._write(zip_path("errors"), table.to_csv(index=False, lineterminator="\r\n"))
        self._write(zip_path("settings"), self.params.to_json())
        self._write(zip_path("script"), script_text(self.params))
        self._write(zip_path("readme"), readme_text(self.params, summary, self.suggest_each))
        self.zip.close()
        self.tmp.cleanup()


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry readable by everyone once unzipped (mode 0644, not Python's default 0600).

    TIFFs and PNGs are compressed already: stored as they are; text is deflated.
    """
    entry = zipfile.ZipInfo(name, time.localtime()[:6])
    entry.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
    entry.compress_type = zipfile.ZIP_STORED if name.endswith((".tif", ".png")) else zipfile.ZIP_DEFLATED
    return entry


def readme_text(params: Params, summary: pd.DataFrame, suggest_each: bool = False) -> str:
    """README.txt for the results zip: what each file is and what made it."""
    import scipy
    import skimage
    import tifffile

    from . import __version__

    counts = summary["status"].value_counts().to_dict() if len(summary) else {}
    each = (" (suggested for each image: see settings/<name>.json; to reproduce one image, run "
            "python segment.py INPUT OUTPUT --settings settings/  ; below, what every image kept)") if suggest_each else ""
    return f"""Nuclei segmentation results
===========================
Made {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by nuclei-segmentation {__version__}
with Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__},
scikit-image {skimage.__version__}, tifffile {tifffile.__version__}, pandas {pd.__version__}.
Inputs: {len(summary)} ({', '.join(f'{v} {k}' for k, v in counts.items()) or 'none'}).

{layout_text()}

Settings{each}:
{chr(10).join("  " + line for line in params.describe())}

{params.to_json()}
"""


# --- the run ------------------------------------------------------------------


Job = tuple[BatchInput, str, Params, dict, bool]  # input, output name, settings, conditions, suggest each


def _run_job(job: Job) -> ImageOutcome:
    return process_one(*job)


def _worker_died(job: Job) -> ImageOutcome:
    inp, out_name, _, conditions, _ = job
    row = {"image": out_name, "file": inp.name, **conditions, "status": "failed", "reason": WORKER_DIED}
    return ImageOutcome(inp.name, out_name, "failed", WORKER_DIED, row)


def _outcomes(jobs: list[Job], pool: LocalWorkers | None, workers: int,
              should_stop: Callable[[], bool]):
    """Outcomes in completion order: in this process for one worker, else in worker processes."""
    if pool is None and workers <= 1:
        import cv2

        threads = cv2.getNumThreads()
        one_thread_each()  # one worker: one core, as each worker process has
        try:
            for job in jobs:
                if should_stop():
                    return
                yield _run_job(job)
        finally:
            cv2.setNumThreads(threads)
        return
    own = pool is None
    pool = pool or LocalWorkers(workers)
    try:
        yield from outcomes(jobs, _run_job, pool, in_flight=2 * pool.workers, should_stop=should_stop,
                            died=_worker_died)
    finally:
        if own:
            pool.shutdown()


def run_batch(
    inputs: Sequence[BatchInput],
    params: Params,
    out_path: str | os.PathLike,
    *,
    workers: int | None = None,
    skipped: Sequence[Skipped] = (),
    unreadable: Sequence[Skipped] = (),
    on_progress: Callable[[int, int, ImageOutcome], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    pool: LocalWorkers | None = None,
    pattern: str | None = None,
    suggest_each: bool = False,
) -> BatchReport:
    """Segment every input with `params` and write the results zip to `out_path`.

    Parameters
    ----------
    inputs : sequence of BatchInput
    params : Params
        Applied to every image. Automatic threshold methods find each image's
        own cutoff; set ``threshold_method='manual'`` for one fixed cutoff.
        Without ``pixel_size_um``, each file's own calibration is used.
    out_path : path
        The zip to write (replaced if it exists).
    workers : int, optional
        Processes to use; default every core.  With 1, images are processed
        in this process.
    skipped : sequence of Skipped
        Files found but not segmented (see :mod:`segmentation.inputs`), listed
        in the summary with their reason; damaged, encrypted and too large
        ones also in ``errors.csv``.
    unreadable : sequence of Skipped
        Images that were counted as images but could not be taken out of
        their zip (the ``failed`` of :func:`segmentation.inputs.stage`):
        listed as failed, with their reason, in the summary and ``errors.csv``.
    pool : LocalWorkers, optional
        Worker processes to use instead of starting `workers` new ones (the
        app's Batch page shares one pool among its sessions).
    pattern : str, optional
        A regular expression with named groups that reads each image's
        condition from its name (see :mod:`segmentation.conditions`); by
        default the condition is the first sub-folder.
    suggest_each : bool
        Give each image its own settings with :func:`segmentation.suggest`
        (`params` then only sets the plane, pixel size and positive calls).
        Each image's settings go into the zip.

    Raises
    ------
    ValueError
        A `pattern` that is not a valid regular expression with named groups
        (before anything is run).
    on_progress : callable(done, total, outcome), optional
        Called after each image.
    should_stop : callable() -> bool, optional
        Checked between images; when it returns True the run stops and the zip
        holds what is done.

    Returns
    -------
    BatchReport
    """
    if pattern:
        compile_pattern(pattern)  # a bad pattern fails before any image is run
    start = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    should_stop = should_stop or (lambda: False)
    out_path = Path(out_path)
    names = output_names([i.name for i in inputs])
    conditions = condition_columns(names, pattern or None)
    condition_names = list(conditions.columns)
    jobs = [(inp, name, params, conditions.loc[name].to_dict(), suggest_each) for inp, name in zip(inputs, names)]
    rows: dict[str, dict] = {}
    errors: list[tuple[str, str]] = []
    thumbnails: dict[str, bytes] = {}
    writer = _ZipWriter(out_path, params, suggest_each)
    stopped = False
    try:
        errors += [(s.name, s.reason) for s in skipped if s.kind in SKIPPED_AS_ERRORS]
        errors += [(s.name, s.reason) for s in unreadable]
        for outcome in _outcomes(jobs, pool, min(workers, max(1, len(jobs))), should_stop):
            writer.add(outcome)
            rows[outcome.out_name] = outcome.row
            if outcome.status == "failed":
                errors.append((outcome.name, outcome.reason))
            if outcome.thumbnail is not None:
                thumbnails[outcome.out_name] = outcome.thumbnail
            if on_progress is not None:
                on_progress(len(rows), len(jobs), outcome)
        stopped = len(rows) < len(jobs)
    finally:
        table = []
        for inp, out_name, *_ in jobs:
            table.append(rows.get(out_name) or {"image": out_name, "file": inp.name, "status": "not run",
                                                "reason": "the run was stopped before this file"})
        table += [{"image": "", "file": s.name, "status": "failed", "reason": s.reason} for s in unreadable]
        table += [{"image": "", "file": s.name, "status": "skipped", "reason": s.reason}
                  for s in skipped if s.kind != "hidden"]
        summary = pd.DataFrame(table)
        extra = [c for c in summary.columns if c not in SUMMARY_COLUMNS and c not in condition_names]
        columns = [*SUMMARY_COLUMNS[:2], *condition_names, *SUMMARY_COLUMNS[2:], *extra]
        summary = summary.reindex(columns=columns)
        for col in ("objects", "dropped_without_seed", "height", "width"):
            summary[col] = summary[col].astype("Int64")
        summary["check"] = flag_outliers(summary)  # what the Batch page marks ⚠, in the zip too
        writer.close(summary, errors, condition_names)
    return BatchReport(out_path, summary, errors, [*skipped, *unreadable], thumbnails, stopped,
                       time.perf_counter() - start)
