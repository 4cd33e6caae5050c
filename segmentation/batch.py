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
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .display import downsample, downsample_factor, outline_overlay, png_bytes, stretch
from .errors import SegmentationError
from .export import image_outputs, layout_text, script_text, zip_path
from .inputs import BatchInput, Skipped
from .io import ImageReadError, load_plane
from .params import Params
from .pipeline import segment
from .safety import csv_safe
from .workers import LocalWorkers, outcomes

__all__ = [
    "ImageOutcome",
    "BatchReport",
    "output_names",
    "process_one",
    "run_batch",
    "flag_outliers",
    "SUMMARY_COLUMNS",
    "OUTLIER_FACTOR",
]

SUMMARY_COLUMNS = [
    "image", "file", "status", "reason", "threshold_method", "threshold", "objects",
    "mean_area_px2", "median_area_px2", "mean_area_um2", "median_area_um2",
    "foreground_fraction", "dropped_without_seed", "height", "width", "pixel_size_um", "seconds", "warnings",
]
THUMBNAIL_SIDE = 480
TOO_LARGE_FOR_MEMORY = ("too large for the memory of this computer: crop or bin it in Fiji "
                        "(Image > Scale, or Image > Crop), or run it on a computer with more memory")
WORKER_DIED = ("the helper process segmenting this image stopped (most likely it ran out of memory: the image may be "
               "too large for this computer); the other images were not affected")
# Skipped inputs that are problems with a file (listed in errors.csv), not just files that are not images.
SKIPPED_AS_ERRORS = ("too_large", "damaged", "encrypted")
# An image is flagged for a look when its count, cutoff or mean area is below
# 1/OUTLIER_FACTOR or above OUTLIER_FACTOR times the batch median.
OUTLIER_FACTOR = 2.0


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

    >>> output_names(["a/img.tif", "b/img.tif", "a/img.png", "../x.tif"])
    ['a/img', 'b/img', 'a/img_2', 'x']
    """
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
        stem = "/".join([*parts[:-1], PurePosixPath(parts[-1]).stem]) if parts else "image"
        candidate, n = stem, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{stem}_{n}"
        used.add(candidate.lower())
        out.append(candidate)
    return out


# --- one image ----------------------------------------------------------------


def process_one(inp: BatchInput, out_name: str, params: Params) -> ImageOutcome:
    """Read, segment and render one input. Never raises: failures become outcomes."""
    start = time.perf_counter()
    row: dict = {"image": out_name, "file": inp.name}
    try:
        image, info = load_plane(inp.source, name=inp.name, channel=params.channel, z=params.z, t=params.t)
        if params.pixel_size_um is None and info.pixel_size_um is not None:
            params = params.replace(pixel_size_um=info.pixel_size_um)
        result = segment(image, params, name=inp.name)
        files = image_outputs(result, out_name)
        step = downsample_factor(image.shape, THUMBNAIL_SIDE)
        thumb = outline_overlay(stretch(downsample(image, step)), downsample(result.labels, step))
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
        measurements.insert(0, "image", out_name)
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

_OUTLIER_WORDS = {
    # column: (word when low, word when high, what the number is)
    "objects": ("few nuclei", "many nuclei", "{:.0f}"),
    "threshold": ("low cutoff", "high cutoff", "{:.4g}"),
    "mean_area_px2": ("small nuclei", "large nuclei", "{:.0f} px²"),
}


def flag_outliers(
    summary: pd.DataFrame, factor: float = OUTLIER_FACTOR, min_images: int = 3
) -> pd.Series:
    """Why each image looks unlike the rest of the batch ('' when it does not).

    An image that was segmented is flagged when its number of nuclei, its
    cutoff or its mean nucleus area is less than ``1/factor`` or more than
    `factor` times the median of the batch's segmented images (with the
    default: less than half or more than double), and always when no nucleus
    was found.  Needs at least `min_images` segmented images to compare.

    Parameters
    ----------
    summary : DataFrame
        The batch summary (``BatchReport.summary``): ``status``, ``objects``,
        ``threshold``, ``mean_area_px2``.
    factor : float
        How far from the median (as a ratio) counts as unusual.
    min_images : int
        Fewer segmented images than this: only images without nuclei are flagged.

    Returns
    -------
    Series of str, aligned with `summary`
        E.g. ``"few nuclei: 12 (median 60)"``; several reasons are joined by ``"; "``.

    Examples
    --------
    >>> s = pd.DataFrame({"status": ["ok"] * 4, "objects": [50, 60, 55, 10],
    ...                   "threshold": [100.0, 110.0, 105.0, 100.0],
    ...                   "mean_area_px2": [300.0, 310.0, 290.0, 300.0]})
    >>> flag_outliers(s).tolist()
    ['', '', '', 'few nuclei: 10 (median 52)']
    """
    reasons: list[list[str]] = [[] for _ in range(len(summary))]
    ok = (summary["status"] == "ok").to_numpy() if len(summary) else np.zeros(0, bool)
    if "objects" in summary:
        objects = pd.to_numeric(summary["objects"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        for i in np.flatnonzero(ok & (objects == 0)):
            reasons[i].append("no nuclei found")
    if ok.sum() >= min_images:
        for column, (low, high, fmt) in _OUTLIER_WORDS.items():
            if column not in summary:
                continue
            values = pd.to_numeric(summary[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            median = float(np.nanmedian(values[ok])) if np.isfinite(values[ok]).any() else np.nan
            if not median > 0:  # ratios mean nothing around zero
                continue
            for i in np.flatnonzero(ok & np.isfinite(values)):
                v = values[i]
                if column == "objects" and v == 0:
                    continue  # already "no nuclei found"
                if v < median / factor or v > median * factor:
                    word = low if v < median else high
                    reasons[i].append(f"{word}: {fmt.format(v)} (median {fmt.format(median)})")
    return pd.Series(["; ".join(r) for r in reasons], index=summary.index, dtype=object)


# --- the zip --------------------------------------------------------------------


class _ZipWriter:
    """Streams outcomes into a zip on disk as they arrive; tables at the end."""

    def __init__(self, path: Path, params: Params):
        self.path = path
        self.params = params
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.tmp = tempfile.TemporaryDirectory(prefix="batch-")
        self.measurement_files: list[Path] = []
        self.columns: list[str] = []

    def add(self, outcome: ImageOutcome) -> None:
        for arc, data in outcome.files.items():
            # TIFFs are zlib-compressed and PNGs deflated already
            self.zip.writestr(arc, data, compress_type=zipfile.ZIP_STORED if arc.endswith((".tif", ".png")) else zipfile.ZIP_DEFLATED)
        if outcome.measurements is not None:
            part = Path(self.tmp.name) / f"{len(self.measurement_files)}.csv"
            csv_safe(outcome.measurements).to_csv(part, index=False)
            self.measurement_files.append(part)
            self.columns += [c for c in outcome.measurements.columns if c not in self.columns]

    def close(self, summary: pd.DataFrame, errors: list[tuple[str, str]]) -> None:
        entry = zipfile.ZipInfo(zip_path("all_measurements"), time.localtime()[:6])
        entry.compress_type = zipfile.ZIP_DEFLATED
        with self.zip.open(entry, "w") as raw, io.TextIOWrapper(raw, "utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=self.columns or ["image", "label"])
            writer.writeheader()
            for part in self.measurement_files:
                with open(part, newline="", encoding="utf-8") as f:
                    writer.writerows(csv.DictReader(f))  # already made safe per image
        self.zip.writestr(zip_path("summary"), csv_safe(summary).to_csv(index=False, lineterminator="\r\n"))
        if errors:
            table = csv_safe(pd.DataFrame(errors, columns=["file", "reason"]))
            self.zip.writestr(zip_path("errors"), table.to_csv(index=False, lineterminator="\r\n"))
        self.zip.writestr(zip_path("settings"), self.params.to_json())
        self.zip.writestr(zip_path("script"), script_text(self.params))
        self.zip.writestr(zip_path("readme"), readme_text(self.params, summary))
        self.zip.close()
        self.tmp.cleanup()


def readme_text(params: Params, summary: pd.DataFrame) -> str:
    """README.txt for the results zip: what each file is and what made it."""
    import scipy
    import skimage
    import tifffile

    from . import __version__

    counts = summary["status"].value_counts().to_dict() if len(summary) else {}
    return f"""Nuclei segmentation results
===========================
Made {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by nuclei-segmentation {__version__}
with Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__},
scikit-image {skimage.__version__}, tifffile {tifffile.__version__}, pandas {pd.__version__}.
Inputs: {len(summary)} ({', '.join(f'{v} {k}' for k, v in counts.items()) or 'none'}).

{layout_text()}

Settings:
{chr(10).join("  " + line for line in params.describe())}

{params.to_json()}
"""


# --- the run ------------------------------------------------------------------


def _run_job(job: tuple[BatchInput, str, Params]) -> ImageOutcome:
    return process_one(*job)


def _worker_died(job: tuple[BatchInput, str, Params]) -> ImageOutcome:
    inp, out_name, _ = job
    row = {"image": out_name, "file": inp.name, "status": "failed", "reason": WORKER_DIED}
    return ImageOutcome(inp.name, out_name, "failed", WORKER_DIED, row)


def _outcomes(jobs: list[tuple[BatchInput, str, Params]], pool: LocalWorkers | None, workers: int,
              should_stop: Callable[[], bool]):
    """Outcomes in completion order: in this process for one worker, else in worker processes."""
    if pool is None and workers <= 1:
        for job in jobs:
            if should_stop():
                return
            yield _run_job(job)
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
    on_progress: Callable[[int, int, ImageOutcome], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    pool: LocalWorkers | None = None,
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
    pool : LocalWorkers, optional
        Worker processes to use instead of starting `workers` new ones (the
        app's Batch page shares one pool among its sessions).
    on_progress : callable(done, total, outcome), optional
        Called after each image.
    should_stop : callable() -> bool, optional
        Checked between images; when it returns True the run stops and the zip
        holds what is done.

    Returns
    -------
    BatchReport
    """
    start = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    should_stop = should_stop or (lambda: False)
    out_path = Path(out_path)
    names = output_names([i.name for i in inputs])
    jobs = [(inp, name, params) for inp, name in zip(inputs, names)]
    rows: dict[str, dict] = {}
    errors: list[tuple[str, str]] = []
    thumbnails: dict[str, bytes] = {}
    writer = _ZipWriter(out_path, params)
    stopped = False
    try:
        errors += [(s.name, s.reason) for s in skipped if s.kind in SKIPPED_AS_ERRORS]
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
        for inp, out_name, _ in jobs:
            table.append(rows.get(out_name) or {"image": out_name, "file": inp.name, "status": "not run",
                                                "reason": "the run was stopped before this file"})
        table += [{"image": "", "file": s.name, "status": "skipped", "reason": s.reason}
                  for s in skipped if s.kind != "hidden"]
        summary = pd.DataFrame(table).reindex(columns=SUMMARY_COLUMNS)
        for col in ("objects", "dropped_without_seed", "height", "width"):
            summary[col] = summary[col].astype("Int64")
        writer.close(summary, errors)
    return BatchReport(out_path, summary, errors, list(skipped), thumbnails, stopped, time.perf_counter() - start)
