"""Batch page: a whole folder in, one zip out.

The biologist uploads the experiment's folder (or several files, or a .zip),
checks the settings tuned on the Segment page, and starts the run.  The run is
:func:`segmentation.batch.run_batch`, the command line's code path, in a
background thread of the server, so the page stays responsive while it works:

* a fragment redraws the progress twice a second (``st.fragment(run_every=...)``);
* the Stop button only sets a flag that ``run_batch`` checks between images, so
  the images already finished stay in the zip;
* the results stream into a zip in a temporary folder of this run; the page keeps
  only the summary table and small thumbnails.  A new run deletes the previous
  run's folder, and so does the end of the session; folders left behind (a
  crashed server) are swept an hour after their last sign of life.

What was uploaded is sorted and staged by :mod:`segmentation.inputs`, the
command line's code; every name shown comes from there and is shown as text,
never as markup.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from pages.common import caches, current_image, get_params, guarded, label_of, run_page
from pages.common import ImageSource, browser_key, digest_of, get_source, remember_upload, set_params, set_source
from segmentation.batch import (
    OUTLIER_RATIO,
    OUTLIER_Z,
    BatchReport,
    ImageOutcome,
    flag_outliers,
    output_names,
    run_batch,
)
from segmentation import cluster, cost
from segmentation.conditions import NO_CONDITION, condition_table, preview
from segmentation.display import format_value
from segmentation.export import layout_markdown, zip_path
from segmentation.filters import BACKGROUNDS
from segmentation.inputs import InputPlan, plan_uploads, stage
from segmentation.io import IMAGE_SUFFIXES, ImageReadError
from segmentation.params import Params
from segmentation.safety import escape_markdown
from segmentation.stages import run_stages
from segmentation.workers import shared_workers

TEMP_ROOT = Path(tempfile.gettempdir()) / "nuclei-segmentation-batch"
STALE_AFTER_S = 3600  # run folders without a sign of life for an hour are removed (a crashed server)
POLL_S = 0.5  # progress refresh while a batch runs
THUMB_SIDE = 320  # gallery tiles: square, so rows line up
GALLERY_COLUMNS = 6
GALLERY_PAGE = 24
ENLARGED_HEIGHT = 680  # px: the enlarged overlay fits a 1440×900 screen
JOB_KEY = "batch_job"
SUFFIXES = ", ".join(IMAGE_SUFFIXES)
STATUS_WORDS = {"ok": "segmented", "failed": "failed", "skipped": "skipped", "not run": "not run"}


# --- what was uploaded ----------------------------------------------------------------


def planned(files: list) -> InputPlan:
    """The uploads sorted into images and skipped files (kept while the same files stay uploaded)."""
    key = tuple(getattr(f, "file_id", f.name) for f in files)
    memo = st.session_state.get("batch_plan")
    if memo is None or memo[0] != key:
        memo = (key, plan_uploads(files))
        st.session_state["batch_plan"] = memo
    return memo[1]


def show_list(title: str, lines: list[str], limit: int = 200) -> None:
    """Names (untrusted: from the user's files) in an expander, as plain text, the long tail counted."""
    with st.expander(title):
        st.text("\n".join(lines[:limit]))
        if len(lines) > limit:
            st.caption(f"… and {len(lines) - limit:,} more.")


# --- the run, in a background thread --------------------------------------------------


@dataclass(eq=False)
class BatchJob:
    """A batch run: its settings, its folder on disk and its progress.

    The worker thread writes the progress fields; the page only reads them.
    """

    params: Params
    cutoff_note: str
    total: int
    folder: Path
    stop: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    phase: str = "preparing"  # preparing -> running -> finished
    started: float = field(default_factory=time.monotonic)
    run_started: float | None = None
    done: int = 0
    failed: int = 0
    last: str = ""
    report: BatchReport | None = None
    thumbs: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    stamp: str = field(default_factory=lambda: datetime.now().strftime("%Y%m%d-%H%M"))
    pattern: str | None = None  # the condition pattern (None: the first sub-folder)
    suggest_each: bool = False  # settings suggested for each image
    scheduler: str | None = None  # the lab's Dask scheduler (None: this server's own workers)
    where: str = ""  # what runs the images, as the page says it
    sources: dict[str, tuple[str, Path | bytes]] = field(default_factory=dict)  # output name -> (file name, bytes)
    browser: str | None = None  # the browser that started it: a reload there finds it again

    def cleanup(self) -> None:
        """Stop the run and delete its folder (a new run, or the end of the session)."""
        self.stop.set()
        _LIVE.discard(self.folder)
        if not self.running:
            shutil.rmtree(self.folder, ignore_errors=True)
        # a running job deletes its folder itself when it ends (see _work)

    @property
    def zip_path(self) -> Path:
        return self.folder / "results.zip"

    @property
    def running(self) -> bool:
        return self.phase != "finished"

    def seconds_left(self) -> float | None:
        if self.run_started is None or self.done == 0:
            return None
        elapsed = time.monotonic() - self.run_started
        return elapsed / self.done * (self.total - self.done)


def _square_thumb(png: bytes, side: int = THUMB_SIDE) -> bytes:
    """The outline thumbnail fitted into a dark square, so gallery rows line up.

    JPEG: 15-45 kB a tile instead of 80-170 kB as PNG, so a thousand images
    stay small in memory; the enlarged view shows the lossless overlay.
    """
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.thumbnail((side, side))
    tile = Image.new("RGB", (side, side), (14, 17, 23))
    tile.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    buf = io.BytesIO()
    tile.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _friendly(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return (f"The batch stopped early: the results could not be written ({exc.strerror or exc}). "
                "Free some disk space and run it again.")
    return f"The batch stopped early because of an unexpected error: {type(exc).__name__}: {exc}"


def _work(job: BatchJob, plan: InputPlan) -> None:
    """The worker thread: copy the uploads to disk, then run_batch into the job's zip."""
    inputs_dir = job.folder / "inputs"
    try:
        inputs, failed = stage(plan, inputs_dir)
        names = output_names([i.name for i in inputs])
        job.sources = {name: (inp.name, inp.source) for name, inp in zip(names, inputs)}  # for "Open" in the gallery

        def progress(done: int, total: int, outcome: ImageOutcome) -> None:
            if outcome.thumbnail is not None:
                try:
                    job.thumbs[outcome.out_name] = _square_thumb(outcome.thumbnail)
                except (OSError, ValueError):
                    pass  # no tile for this image; its results are in the zip all the same
            job.failed += outcome.status == "failed"
            job.last = outcome.name
            job.done = done
            os.utime(job.folder)  # a sign of life for the sweep of abandoned folders

        pool, own = shared_workers(), None
        if job.scheduler:
            job.phase = "connecting"
            pool = own = cluster.connect(job.scheduler)  # up to a few seconds: here, not in the page's script
            job.where = f"the Dask cluster ({own.describe()})"
        job.phase, job.run_started = "running", time.monotonic()
        try:
            report = run_batch(inputs, job.params, job.zip_path, skipped=plan.skipped, unreadable=failed,
                               on_progress=progress, should_stop=job.stop.is_set, pool=pool,
                               pattern=job.pattern, suggest_each=job.suggest_each)
        finally:
            if own is not None:
                own.shutdown()
        report.thumbnails.clear()  # the page keeps its own smaller tiles
        job.report = report
    except cluster.ClusterError as exc:
        job.error = f"The batch did not start: {exc}"
    except Exception as exc:  # noqa: BLE001 - reported on the page in plain words
        job.error = _friendly(exc)
    finally:  # the staged images stay (for "Open on the Segment page") until the job's folder goes
        job.seconds = time.monotonic() - job.started
        job.phase = "finished"
        job.finished.set()
        if job.folder not in _LIVE:  # the session ended or a new run replaced this one meanwhile
            shutil.rmtree(job.folder, ignore_errors=True)


_LIVE: set[Path] = set()  # run folders of this server's sessions, never swept


def _remove_stale_runs() -> None:
    """Delete run folders nobody uses: no session of this server, no sign of life for an hour."""
    now = time.time()
    for old in TEMP_ROOT.glob("run-*"):
        try:
            if old not in _LIVE and now - old.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


@st.cache_resource(show_spinner=False)
def _swept_at_startup() -> bool:
    TEMP_ROOT.mkdir(parents=True, exist_ok=True)
    _remove_stale_runs()
    return True


class _SessionJobs:
    """This session's batch runs; released (stopped, folders deleted) when the session ends.

    A run started in a browser we can recognise outlives its session: a reload
    (a new session) finds it again, running or finished, until the sweep of
    folders without a sign of life for :data:`STALE_AFTER_S` removes it.
    """

    def __init__(self) -> None:
        self.jobs: list[BatchJob] = []

    def release(self) -> None:
        for job in self.jobs:
            if job.browser is None:
                job.cleanup()


@st.cache_resource(show_spinner=False)
def _jobs_by_browser() -> dict[str, BatchJob]:
    """The last run of each browser, server-wide."""
    return {}


def _forget_swept_jobs() -> None:
    """Let go of the runs whose folders the sweep removed (their tiles would stay in memory)."""
    kept = _jobs_by_browser()
    for browser, job in list(kept.items()):
        if not job.running and not job.zip_path.is_file():
            kept.pop(browser, None)


def _restore_job() -> BatchJob | None:
    """After a reload: this browser's last run, if its results are still there."""
    _forget_swept_jobs()
    browser = browser_key()
    job = _jobs_by_browser().get(browser) if browser else None
    if job is None or not (job.running or job.zip_path.is_file()):
        return None
    _LIVE.add(job.folder)
    _session_jobs().jobs = [job]
    st.session_state[JOB_KEY] = job
    st.toast("Your last batch is back: " + ("still running." if job.running else "its results are below."),
             icon=":material/restore:")
    return job


@st.cache_resource(scope="session", on_release=_SessionJobs.release, show_spinner=False)
def _session_jobs() -> _SessionJobs:
    return _SessionJobs()


def start_job(plan: InputPlan, params: Params, cutoff_note: str, pattern: str | None = None,
              suggest_each: bool = False, scheduler: str | None = None) -> BatchJob:
    """Delete the previous run's results, then start a new run in a background thread."""
    old = st.session_state.pop(JOB_KEY, None)
    if old is not None:
        old.cleanup()
    TEMP_ROOT.mkdir(parents=True, exist_ok=True)
    _remove_stale_runs()
    _forget_swept_jobs()
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=TEMP_ROOT))
    _LIVE.add(folder)
    job = BatchJob(params, cutoff_note, len(plan.images), folder, pattern=pattern, suggest_each=suggest_each,
                   scheduler=scheduler, where=f"{os.cpu_count() or 1} processor cores of this server",
                   browser=browser_key())
    _session_jobs().jobs = [job]
    if job.browser is not None:
        previous = _jobs_by_browser().get(job.browser)
        if previous is not None and previous is not old:
            previous.cleanup()  # this browser's run from before a reload: replaced now
        _jobs_by_browser()[job.browser] = job
    # the uploads' bytes are read here, in the script's thread, where the upload objects are valid
    threading.Thread(target=_work, args=(job, plan.with_bytes()), name="batch-run", daemon=True).start()
    st.session_state[JOB_KEY] = job
    return job


# --- settings --------------------------------------------------------------------------


def settings_lines(p: Params) -> list[str]:
    """The settings in words, a line per step, the step in bold (every non-default value shows)."""
    lines = [f"**{step}**:{words}" for step, words in (line.split(":", 1) for line in p.describe())]
    if p.pixel_size_um is None:
        lines.append("**Measure**: pixel size read from each file (px only when unknown)")
    return lines


def _preview_cutoff(params: Params) -> tuple[float, str]:
    """The cutoff these settings find on the image open on the Segment page, and that image's name."""
    preview = current_image(params)
    with st.spinner("Finding the cutoff on the image open on the Segment page…"):
        stages = run_stages(preview.plane, params, image_key=preview.key, cache=caches().stages)
    return stages.thresholded.value, preview.source.name


def choose_settings() -> tuple[Params | None, str]:
    """The settings for the run and one sentence on how the cutoff is chosen."""
    source = st.radio("Which settings?", ["segment", "file", "suggest"], horizontal=True, key="batch_settings_from",
                      format_func={"segment": "As set on the Segment page", "file": "From a settings file",
                                   "suggest": "Suggested for each image"}.get)
    if source == "suggest":
        params = get_params()
        with st.container(border=True):
            st.markdown("Each image gets its **own settings, suggested from the image itself** (nucleus size, "
                        "background, histogram, noise), as the Segment page's *Suggest settings* button does. "
                        "Each image's settings go into the zip (settings/), and its key values into summary.csv.")
            kept = [f"**{line.split(':', 1)[0]}**:{line.split(':', 1)[1]}" for line in params.describe()
                    if line.startswith(("Plane", "Measure"))]
            if kept:
                st.markdown("Kept from the Segment page: " + "  \n".join(kept))
        return params, "Settings suggested for each image."
    if source == "file":
        up = st.file_uploader("Settings file saved by this app (settings.json, also inside every results zip)",
                              type=["json"], key="batch_settings_file", max_upload_size=1)
        if up is None:
            st.info("Upload a settings file, or use the settings of the Segment page.")
            return None, ""
        try:
            params = Params.from_json(up.getvalue())
        except ValueError as exc:
            st.error(escape_markdown(f"Cannot use '{up.name}': {exc}"), icon="⚠️")
            return None, ""
    else:
        params = get_params()

    with st.container(border=True):
        st.markdown("  \n".join(settings_lines(params)))
        if source == "segment" and params == Params():
            st.caption("These are the default settings (the course's recipe): tune them on one image first.")
        elif source == "segment":
            st.caption(f"Tuned on **{escape_markdown(get_source().name)}**. Images from another microscope, "
                       "objective or stain may need their own: *Suggested for each image* gives each one its own, "
                       "and the results mark images where most of the mask was removed.")
        st.page_link("pages/segment.py", label="Change the settings on the Segment page", icon=":material/tune:")
        with st.expander("All settings (settings.json)"):
            st.code(params.to_json(), language="json")

    method = params.threshold_method
    if method == "manual":
        return params, f"One fixed cutoff for every image: {format_value(params.threshold_value)} (set by hand)."
    if method == "local":
        return params, "Local threshold: each pixel is compared with its neighbourhood, in every image."
    name = label_of("threshold_method", method)
    choice = st.radio(
        "Cutoff between nuclei and background", ["each", "fixed"], key="batch_cutoff",
        format_func={"each": f"{name} on each image: every image gets its own cutoff (listed in the results)",
                     "fixed": f"One fixed cutoff for all images: the {name} cutoff of the image open on the "
                              "Segment page"}.get,
        help="Per image is the usual choice and adapts to brighter or dimmer images. A fixed cutoff "
             "compares intensities directly between images, when all were imaged with the same settings.",
    )
    if choice == "each":
        return params, f"{name} on each image (each image gets its own cutoff)."
    try:
        value, image_name = _preview_cutoff(params)
    except (ImageReadError, ValueError) as exc:
        st.error(f"No cutoff could be found on the image open on the Segment page: {exc}", icon="⚠️")
        return None, ""
    st.markdown(f"Fixed cutoff: **{format_value(value)}** (image units), the {name} cutoff of the image open on "
                "the Segment page, with these settings:")
    st.text(image_name)
    return (params.replace(threshold_method="manual", threshold_value=value),
            f"One fixed cutoff for every image: {format_value(value)} ({name} on the Segment page's image).")


# --- the page ---------------------------------------------------------------------------


def choose_inputs() -> tuple[InputPlan, list]:
    kind = st.radio("What do you upload?", ["folder", "files"], horizontal=True, key="batch_source_kind",
                    format_func={"folder": "A folder", "files": "Image files or a .zip"}.get)
    if kind == "folder":
        files = st.file_uploader(
            "The experiment's folder (sub-folders included)", accept_multiple_files="directory",
            key="batch_folder",
            help=f"Every image ({SUFFIXES}) in the folder and its sub-folders is segmented; other files "
                 "are listed as skipped. Sub-folder names are kept in the output names.")
    else:
        files = st.file_uploader(
            "Image files, or one .zip of a folder of images", accept_multiple_files=True, key="batch_files",
            help=f"Images ({SUFFIXES}) and .zip files of images. Other files are listed as skipped.")
    files = files or []
    plan = planned(files)
    for problem in plan.problems:
        st.error(escape_markdown(problem), icon="⚠️")
    if plan.images:
        folders = plan.folders()
        where = f" in {len(folders)} folder{'s' if len(folders) != 1 else ''}" if folders else ""
        st.success(f"**{len(plan.images)} image{'s' if len(plan.images) != 1 else ''}**{where} ready to segment.",
                   icon=":material/photo_library:")
    elif files and not plan.problems:
        st.warning(f"None of the {len(files)} uploaded files is an image ({SUFFIXES}).", icon="⚠️")
    shown = [s for s in plan.skipped if s.kind != "hidden"]
    hidden = len(plan.skipped) - len(shown)
    if shown:
        show_list(f"{len(shown)} file{'s' if len(shown) != 1 else ''} will be skipped",
                  [f"{s.name} — {s.reason}" for s in shown])
    if hidden:
        st.caption(f"{hidden} hidden or system file{'s' if hidden != 1 else ''} (.DS_Store, ._name, __MACOSX, "
                   "Thumbs.db) left out.")
    if plan.renamed:
        show_list(f"{len(plan.renamed)} name{'s' if len(plan.renamed) != 1 else ''} changed for the results",
                  [f"{r.original} → {r.name} ({r.reason})" for r in plan.renamed])
    if plan.images:
        show_list("Images to segment", [p.name for p in plan.images])
    return plan, files


def choose_conditions(plan: InputPlan) -> tuple[str | None, bool]:
    """How each image's condition is named: its sub-folder, or a file-name pattern. Returns (pattern, valid)."""
    with st.expander("Conditions (for comparing wells, treatments, …)",
                     expanded=st.session_state.get("batch_condition_from") == "pattern"):
        how = st.radio("Each image's condition is", ["folder", "pattern"], key="batch_condition_from",
                       horizontal=True, format_func={"folder": "its sub-folder (control/, treated/, …)",
                                                     "pattern": "read from its name by a pattern"}.get)
        pattern = None
        if how == "pattern":
            pattern = st.text_input(
                "Pattern (a regular expression with named groups)", key="batch_pattern", max_chars=500,
                placeholder=r"(?P<well>[A-H]\d{2})_(?P<treatment>[^_]+)",
                help="Each named group (?P<name>…) becomes a column: (?P<well>[A-H]\\d{2}) finds a well such as "
                     "B03 anywhere in the file's path. Images it does not match get no condition.") or None
        if not plan.images:
            return pattern, True
        names = output_names([p.name for p in plan.images])
        try:
            table = preview(names, pattern, limit=8)
        except ValueError as exc:
            st.error(escape_markdown(str(exc)), icon="⚠️")
            return pattern, False
        st.caption("What it gives for the first images:")
        st.dataframe(table.replace({NO_CONDITION: "(none)"}), hide_index=False, height=min(36 + 35 * len(table), 320))
    return pattern, True


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_panel() -> None:
    """Progress of the running batch; redrawn on a timer while it runs."""
    job: BatchJob | None = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if not job.running:
        st.rerun()  # the whole page: show the results
    if job.phase == "preparing":
        st.progress(0.0, text=f"Preparing {job.total} images (copying the uploads)…")
    elif job.phase == "connecting":
        st.progress(0.0, text=f"Connecting to the lab's Dask cluster at {escape_markdown(job.scheduler or '')}…")
    else:
        parts = [f"**{job.done} of {job.total} images done**"]
        if job.last:
            parts.append(f"last finished: {escape_markdown(job.last)}")
        left = job.seconds_left()
        if left is not None and job.done < job.total:
            parts.append(f"about {_duration(left)} left")
        if job.failed:
            parts.append(f"{job.failed} failed so far")
        st.progress(job.done / max(job.total, 1), text=" · ".join(parts))
    if job.stop.is_set():
        st.info("Stopping: the images already started are being finished, the rest is skipped. "
                "Everything done so far stays in the zip.", icon=":material/hourglass_top:")
    else:
        st.button("Stop (keep what is done)", key="batch_stop", icon=":material/stop_circle:",
                  on_click=guarded(job.stop.set))


def _read_summary(job: BatchJob) -> pd.DataFrame | None:
    """The summary table: from the report, or from the zip when the run broke off."""
    if job.report is not None:
        return job.report.summary
    try:
        with zipfile.ZipFile(job.zip_path) as archive:
            return pd.read_csv(archive.open(zip_path("summary")))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError):
        return None


def _zip_bytes(path: Path):
    def read() -> bytes:
        return path.read_bytes()

    return read


def _text(column: pd.Series) -> pd.Series:
    """A column as strings, '' where empty (all-empty columns come back from CSV as float NaN)."""
    return column.astype(object).where(column.notna(), "").astype(str)


def results_table(summary: pd.DataFrame, flags: pd.Series) -> None:
    table = pd.DataFrame({
        "Image": np.where(_text(summary["image"]) != "", _text(summary["image"]), _text(summary["file"])),
        "Status": summary["status"].map(STATUS_WORDS).fillna(summary["status"]),
        "Check": np.where(flags != "", "⚠️ " + flags, ""),
        "Cutoff": summary["threshold"],
        "Nuclei": summary["objects"],
        "Mean area (px²)": summary["mean_area_px2"],
    })
    if summary["mean_area_um2"].notna().any():
        table["Mean area (µm²)"] = summary["mean_area_um2"]
    table["Foreground (%)"] = summary["foreground_fraction"] * 100
    table["Dropped (no seed)"] = summary["dropped_without_seed"]
    notes, warnings = _text(summary["reason"]), _text(summary["warnings"])
    table["Notes"] = np.where(notes != "", notes, warnings)
    # numbers first, then the words (which are long and may run off the right edge)
    table = table[[c for c in table.columns if c not in ("Check", "Notes")] + ["Check", "Notes"]]

    def shade(row: pd.Series) -> list[str]:
        colour = ("background-color: rgba(255, 75, 75, 0.12)" if row["Status"] == STATUS_WORDS["failed"]
                  else "background-color: rgba(255, 200, 0, 0.16)" if row["Check"] else "")
        return [colour] * len(row)

    st.dataframe(
        table.style.apply(shade, axis=1), hide_index=True, key="batch_table", placeholder="–",
        height=min(38 + 35 * len(table), 420),
        column_config={
            "Image": st.column_config.TextColumn(width=220),
            "Status": st.column_config.TextColumn(width=85),
            "Check": st.column_config.TextColumn(width=200, help="Why this image looks unlike the others"),
            "Cutoff": st.column_config.NumberColumn(format="%.4g", help="Threshold used, in image units"),
            "Nuclei": st.column_config.NumberColumn(format="%d"),
            "Mean area (px²)": st.column_config.NumberColumn(format="%.0f"),
            "Mean area (µm²)": st.column_config.NumberColumn(format="%.1f"),
            "Foreground (%)": st.column_config.NumberColumn(format="%.1f"),
            "Dropped (no seed)": st.column_config.NumberColumn(
                "No seed",
                format="%d", help="Objects the watershed dropped because no seed was found in them (often "
                                  "nuclei at the border); 'Keep objects without a seed' on the Segment page keeps them"),
            "Notes": st.column_config.TextColumn(width="large", help="Why a file failed, or warnings"),
        },
    )


def _request(key: str, value) -> None:
    st.session_state[key] = value


def _open_enlarged(job: BatchJob, name: str, caption: str) -> None:
    @st.dialog(escape_markdown(name), width="large")
    def enlarged() -> None:
        try:
            with zipfile.ZipFile(job.zip_path) as archive:
                png = archive.read(zip_path("overlays", name))
        except (OSError, KeyError, zipfile.BadZipFile):
            st.warning("This image's overlay is no longer available (a newer run replaced the results).")
            return
        st.caption(caption + " · yellow = nuclei, magenta = objects removed (too small or large, on the "
                   "border, or without a seed). Full resolution in overlays/ of the zip.")
        with Image.open(io.BytesIO(png)) as im:
            w, h = im.size
        st.image(png, output_format="PNG", width=max(200, min(1200, int(ENLARGED_HEIGHT * w / h))))  # whole image on a laptop screen

    enlarged()


def _condition_columns(summary: pd.DataFrame) -> list[str]:
    """The summary's condition columns (between 'file' and 'status')."""
    columns = list(summary.columns)
    return columns[columns.index("file") + 1: columns.index("status")] if "status" in columns else []


def _measurements(job: BatchJob) -> pd.DataFrame:
    """The batch's measurements.csv (read once per job)."""
    if getattr(job, "_measurements", None) is None:
        try:
            with zipfile.ZipFile(job.zip_path) as archive:
                job._measurements = pd.read_csv(archive.open(zip_path("all_measurements")),
                                                keep_default_na=False, na_values=[""])
        except (OSError, KeyError, zipfile.BadZipFile, ValueError, pd.errors.EmptyDataError):
            job._measurements = pd.DataFrame()
    return job._measurements


def conditions_section(job: BatchJob, summary: pd.DataFrame) -> None:
    """Conditions compared: nuclei per image and a per-nucleus measure, as plots and one table."""
    by = _condition_columns(summary)
    ok = summary[summary["status"] == "ok"].copy()
    if not by or not len(ok):
        return
    for column in by:
        ok[column] = ok[column].fillna(NO_CONDITION).astype(str).replace({NO_CONDITION: "(none)"})
    ok["group"] = ok[by].agg(" · ".join, axis=1)
    if ok["group"].nunique() < 2:
        return
    st.subheader("Conditions")
    measurements = _measurements(job)
    for column in by:
        if column in measurements:
            measurements[column] = measurements[column].fillna(NO_CONDITION).astype(str).replace(
                {NO_CONDITION: "(none)"})
    numeric = [c for c in measurements.columns if c not in ("label", "image", *by)
               and pd.api.types.is_numeric_dtype(measurements[c]) and measurements[c].dtype != bool]
    default = next((c for c in ("area_um2", "area_px2") if c in numeric), numeric[0] if numeric else None)
    left, right = st.columns(2)
    with left:
        fig = px.strip(ok, x="group", y="objects", color="group", hover_name="image",
                       labels={"group": " · ".join(by), "objects": "nuclei per image"})
        fig.add_trace(go.Box(x=ok["group"], y=ok["objects"], boxpoints=False, fillcolor="rgba(0,0,0,0)",
                             line_color="#888", showlegend=False, hoverinfo="skip"))
        fig.update_layout(height=320, showlegend=False, margin=dict(l=10, r=10, t=30, b=10),
                          title_text="Nuclei per image")
        st.plotly_chart(fig, key="cond_counts", config={"displayModeBar": False})
    column = None
    with right:
        if default is not None:
            column = st.selectbox("Per nucleus", numeric, index=numeric.index(default), key="cond_column")
            per = measurements.copy()
            per["group"] = per[by].agg(" · ".join, axis=1) if len(per) else []
            fig = go.Figure([go.Box(y=group[column], name=str(name), boxpoints="outliers",
                                    marker=dict(size=3, opacity=0.5))
                             for name, group in per.groupby("group", sort=True)])
            values = per[column].dropna()
            # a few clumps ten times the median squash every box: a log axis keeps both in view
            log = bool(len(values)) and values.min() > 0 and values.max() > 10 * values.median()
            fig.update_layout(height=270, showlegend=False, margin=dict(l=10, r=10, t=10, b=10),
                              yaxis_title=column + (" (log scale)" if log else ""))
            if log:
                ticks = [m * 10.0 ** e for e in range(int(np.floor(np.log10(values.min()))),
                                                      int(np.ceil(np.log10(values.max()))) + 1) for m in (1, 2, 5)]
                fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:,.4g}" for t in ticks])
            st.plotly_chart(fig, key="cond_measure", config={"displayModeBar": False})
    cutoffs = {c: v for c, v in job.params.positive if f"{c}_mean" in measurements}
    try:
        table = condition_table(ok.drop(columns="group").astype({c: str for c in by}),
                                measurements, column or "area_px2", cutoffs, by=by)
    except (ValueError, KeyError) as exc:
        st.caption(f"No per-condition table: {escape_markdown(str(exc))}")
        return
    st.dataframe(table, hide_index=True, key="cond_table",
                 column_config={c: st.column_config.NumberColumn(format="%.4g") for c in table.columns
                                if c not in by})
    if cutoffs:
        st.caption("% positive: nuclei whose mean is above the cutoff set on the Segment page (" +
                   ", ".join(f"{c} > {format_value(v)}" for c, v in cutoffs.items()) + ").")


def _open_on_segment_page(job: BatchJob, name: str) -> None:
    """Make a batch image the Segment page's image, with the batch's settings; the page switches next run."""
    file_name, source = job.sources[name]
    data = source.read_bytes() if isinstance(source, Path) else source
    image = ImageSource(file_name, data, digest_of(data))
    set_source(image)
    remember_upload(image)
    set_params(job.params)
    st.session_state["batch_open_request"] = True


def gallery(job: BatchJob, summary: pd.DataFrame, flags: pd.Series) -> None:
    ok = summary["status"] == "ok"
    names = [n for n in summary.loc[ok, "image"] if n in job.thumbs]
    if not names:
        return
    st.subheader("Quality control")
    flagged = {n for n, f in zip(summary["image"], flags) if f}
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.caption("Outlines of the nuclei found on each image (yellow; magenta = removed). "
               "Click **Enlarge** under an image to see it in full.")
    only = c2.toggle(f"Only images marked ⚠️ ({len(flagged & set(names))})", key="batch_only_flagged",
                     disabled=not flagged)
    if only:
        names = [n for n in names if n in flagged]
    pages = max(1, -(-len(names) // GALLERY_PAGE))
    page = 0
    if pages > 1:
        page = st.selectbox("Images", range(pages), key="batch_gallery_page",
                            format_func=lambda i: f"{i * GALLERY_PAGE + 1}–{min((i + 1) * GALLERY_PAGE, len(names))} "
                                                  f"of {len(names)}")
    shown = names[page * GALLERY_PAGE:(page + 1) * GALLERY_PAGE]
    info = summary.set_index("image")

    def caption(name: str) -> str:
        # a zero-width space after each / and _ lets long names wrap there, never inside a word
        breakable = escape_markdown(name).replace("/", "/\u200b").replace("_", "_\u200b")
        return f"{'⚠️ ' if name in flagged else ''}{breakable} · {info.at[name, 'objects']} nuclei"

    for start in range(0, len(shown), GALLERY_COLUMNS):
        cols = st.columns(GALLERY_COLUMNS)
        for col, name in zip(cols, shown[start:start + GALLERY_COLUMNS]):
            with col:  # button right under the square tile, so buttons line up
                st.image(job.thumbs[name], width="stretch", output_format="JPEG")
                if name in job.sources:
                    st.button("Open", key=f"batch_open::{name}", icon=":material/open_in_new:",
                              on_click=guarded(_open_on_segment_page), args=(job, name),
                              help="Open this image on the Segment page with the batch's settings, to look closer "
                                   "and adjust.")
                st.button("Enlarge", key=f"batch_enlarge::{name}", icon=":material/zoom_in:",
                          on_click=_request, args=("batch_enlarge_request", name))
                st.caption(caption(name))
    # requests are recorded by callbacks, so they survive a rerun that comes before them
    name = st.session_state.pop("batch_enlarge_request", None)
    if name in job.thumbs:
        _open_enlarged(job, name, caption(name))


def results(job: BatchJob) -> None:
    st.divider()
    st.header("Results")
    if job.error:
        st.error(escape_markdown(job.error), icon="⚠️")
    summary = _read_summary(job)
    if summary is None:
        st.error("No results were written. Try again with fewer images.", icon="⚠️")
        return
    report = job.report
    status = summary["status"]
    n_ok, n_failed = int((status == "ok").sum()), int((status == "failed").sum())
    n_skipped, n_not_run = int((status == "skipped").sum()), int((status == "not run").sum())
    if report is not None and report.stopped or n_not_run:
        st.warning(f"Stopped after {job.total - n_not_run} of {job.total} images. The zip holds the images that "
                   f"were finished; the {n_not_run} others are listed as 'not run'.", icon=":material/stop_circle:")
    flags = summary["check"].fillna("").astype(str) if "check" in summary else flag_outliers(summary)
    n_flagged = int((flags != "").sum())

    c = st.columns([1, 1, 1, 1, 1, 1.6], vertical_alignment="center")
    c[0].metric("Segmented", f"{n_ok} of {job.total}")
    c[1].metric("Failed", n_failed)
    c[2].metric("Skipped", n_skipped, help="Files that are not images, or that were not taken out of a zip "
                                           "(encrypted, or far too large): listed below with the reason")
    c[3].metric("Nuclei", f"{int(pd.to_numeric(summary['objects'], errors='coerce').fillna(0).sum()):,}")
    c[4].metric("To check", n_flagged, help="Images marked ⚠️ in the table")
    with c[5]:
        if job.zip_path.is_file():
            st.download_button("Download all results (zip)", data=_zip_bytes(job.zip_path),
                               file_name=f"nuclei-results-{job.stamp}.zip", mime="application/zip",
                               type="primary", icon=":material/download:", on_click="ignore", key="batch_download")
            size = job.zip_path.stat().st_size / 1e6
            st.caption(f"{size:.1f} MB · made in {_duration(job.seconds)} · {job.cutoff_note}")

    st.caption(
        f"⚠️ **Check** marks an image whose number of nuclei, cutoff or mean nucleus area is far from the other "
        f"images of its folder (more than {OUTLIER_Z:g} robust z-scores from the median, and at least "
        f"{OUTLIER_RATIO:g}× off it), where no nucleus was found, or where most of what the threshold found "
        "ended in no nucleus (settings tuned on another kind of image do that): look at its outlines before "
        "trusting its numbers. The same words are in summary.csv (column 'check'). Click a column header to sort.")
    results_table(summary, flags)

    failed = summary[status == "failed"]
    if len(failed):
        st.subheader(f"Files that could not be segmented ({len(failed)})")
        if len(failed) <= 20:  # whole sentences, wrapped
            st.markdown("\n".join(f"- {escape_markdown(f)}: {escape_markdown(r)}"
                                   for f, r in zip(failed["file"], failed["reason"])))
        else:
            st.dataframe(failed[["file", "reason"]].rename(columns={"file": "File", "reason": "Reason"}),
                         hide_index=True, key="batch_failed",
                         column_config={"Reason": st.column_config.TextColumn(width="large")})
    skipped = summary.loc[status == "skipped"]
    if len(skipped):
        show_list(f"Skipped files ({len(skipped)})", [f"{f} — {r}" for f, r in zip(skipped["file"], skipped["reason"])])
    conditions_section(job, summary)
    gallery(job, summary, flags)
    with st.expander("What is in the zip"):
        st.markdown(layout_markdown() + "\n\nSub-folder names are kept: `exp1/well_A1/img.tif` gives "
                    f"`{zip_path('labels', 'exp1/well_A1/img')}`.")


def choose_where() -> str | None:
    """The lab's Dask scheduler when the server has one and the user wants it, else None (this server).

    Only the address the server was started with (``NUCLEI_DASK_SCHEDULER``) is
    offered: a scheduler sends pickled results back, so a page that connected to
    any typed address would let a user run code on the server.
    """
    address = cluster.default_address()
    if address is None:
        return None
    use = st.toggle("Run on the lab's Dask cluster", value=True, key="batch_use_cluster",
                    help=f"Each image is one task on the Dask cluster at {address} (set for this server in "
                         f"{cluster.SCHEDULER_ENV}); the results come back into the same zip. Off: this "
                         "server's own processor cores.")
    return address if use else None


def slow_settings_note(params: Params, side: int = 1024) -> None:
    """Say before the start when the filters alone take seconds per image."""
    seconds = cost.estimated_seconds((side, side), params)
    if seconds < cost.SLOW_SECONDS:
        return
    text = f"These filters take about {seconds:.0f} s per {side}×{side} image (more for larger ones)."
    faster = cost.faster_equivalent((side, side), params)
    if faster is not None:
        text += (f" **{BACKGROUNDS['rolling_ball_fast'].label}** takes about {faster[1]:.1f} s and agrees on "
                 "more than 99.5 % of mask pixels: choose it on the Segment page.")
    st.info(text, icon=":material/hourglass:")


def main() -> None:
    _swept_at_startup()
    if st.session_state.pop("batch_open_request", False):
        st.switch_page("pages/segment.py")
    st.title("Batch")
    st.caption("Segment every image of an experiment with the same settings, and download all the results "
               "(labels, masks, outlines, measurements, settings and a script) as one zip.")
    job: BatchJob | None = st.session_state.get(JOB_KEY) or _restore_job()
    running = job is not None and job.running

    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("1 · Images")
        plan, files = choose_inputs()
        pattern, pattern_ok = choose_conditions(plan)
    with right:
        st.subheader("2 · Settings")
        params, cutoff_note = choose_settings()

    st.subheader("3 · Run")
    ready = bool(plan.images) and params is not None and pattern_ok
    cores = os.cpu_count() or 1
    scheduler = choose_where()
    where = "the lab's Dask cluster" if scheduler else f"{cores} processor cores"
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    c1.button("Start batch", type="primary", key="batch_start", icon=":material/play_arrow:",
              disabled=running or not ready, on_click=_request, args=("batch_start_request", True))
    if running:
        c2.caption(f"Running on {escape_markdown(job.where)}. You can look at other pages meanwhile.")
    elif not plan.images:
        c2.caption("Upload images first.")
    elif params is None:
        c2.caption("Choose the settings first.")
    else:
        c2.caption(f"{len(plan.images)} images on {where}"
                   + (" · replaces the previous results" if job is not None else "") + ".")
        slow_settings_note(params)
    if st.session_state.pop("batch_start_request", False) and not running and ready:
        start_job(plan, params, cutoff_note, pattern, st.session_state.get("batch_settings_from") == "suggest",
                  scheduler)
        st.rerun()
    if running:
        st.fragment(progress_panel, run_every=POLL_S)()
    elif job is not None:
        results(job)


run_page(main)
