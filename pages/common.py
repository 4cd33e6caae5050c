"""What the pages share: the current image and settings, the shared caches, the sidebar, the histogram.

The settings live in ``st.session_state["params"]`` (a :class:`Params`), the
image in ``st.session_state["source"]`` (an :class:`ImageSource`).  Every page
reads them with :func:`get_params` and :func:`current_image` and writes settings
back with :func:`set_params`, so a choice made on one page is what the others
use.  The pipeline itself runs in the library (:func:`segmentation.stages.run_stages`);
this module only hands it the server's shared :class:`~segmentation.cache.Cache`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import segmentation
from segmentation.cache import Cache
from segmentation.display import format_value, histogram_counts
from segmentation.errors import SegmentationError
from segmentation.io import ImageInfo, ImageReadError, read_image, select_plane, validate_plane
from segmentation.params import SETTINGS, Params, Setting
from segmentation.safety import escape_markdown

SAMPLE_PATH = Path(segmentation.__file__).parent / "data" / "sample_nuclei.tif"
SAMPLE_NAME = "sample_nuclei.tif"
WIDGET_PREFIX = "w_"  # sidebar widget keys are WIDGET_PREFIX + Params field name
_MB = 1 << 20
# Memory the server keeps for all users together (bytes); NUCLEI_CACHE_MB raises or lowers it.
CACHE_BYTES = int(os.environ.get("NUCLEI_CACHE_MB", "3072")) * _MB
# Threads a rerun's filter may use: the user is waiting for it (batch workers use one each).
RERUN_THREADS = min(4, os.cpu_count() or 1)
log = logging.getLogger("nuclei-segmentation")


def use_app_navigation() -> None:
    """Make sure the page runs inside ``app.py``'s navigation.  Call it first on every page.

    Why: Streamlit treats a folder named ``pages/`` next to the entry point as
    a legacy page folder until ``st.navigation`` has run once in the server
    process, so the very first visitor who opens e.g. ``/batch`` by URL would
    get every file of the folder as a page, without the app's layout.  The
    folder keeps its agreed name, and Streamlit 1.67 has no public switch for
    this (``PagesManager.uses_pages_directory`` is what ``st.navigation`` sets),
    so switch the legacy mode off and run again through ``app.py``.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


# --- the shared caches ------------------------------------------------------------------


@dataclass(frozen=True)
class Caches:
    """The server's caches, shared by every session and bounded in bytes.

    ``files``: decoded files and planes; ``stages``: the stage runner's results;
    ``pictures``: PNGs of the views; ``cells``: the Compare page's cells.
    """

    files: Cache
    stages: Cache
    pictures: Cache
    cells: Cache


@st.cache_resource(show_spinner=False)
def caches() -> Caches:
    return new_caches()


def new_caches() -> Caches:
    """Empty caches sized as the server's (``benchmarks/compare_bench.py`` runs the grid on them too)."""
    return Caches(
        files=Cache(CACHE_BYTES // 4),
        stages=Cache(CACHE_BYTES // 2),
        pictures=Cache(64 * _MB, workers=2),  # NumPy and Pillow release the GIL: two pictures at once
        cells=Cache(CACHE_BYTES // 4, workers=2),
    )


# --- the image --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSource:
    """The file the pages work on: its name, bytes and a digest to key caches on."""

    name: str
    data: bytes
    digest: str
    is_sample: bool = False


def digest_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@st.cache_resource(show_spinner=False)
def sample_source() -> ImageSource:
    data = SAMPLE_PATH.read_bytes()
    return ImageSource(SAMPLE_NAME, data, digest_of(data), is_sample=True)


def get_source() -> ImageSource:
    """The current image file (the built-in sample until something is uploaded)."""
    if "source" not in st.session_state:
        st.session_state["source"] = sample_source()
    return st.session_state["source"]


def set_source(source: ImageSource) -> None:
    st.session_state["source"] = source


def read_file(source: ImageSource) -> tuple[np.ndarray, ImageInfo]:
    """The whole file as a read-only TCZYX array, and its info (cached for all sessions)."""
    return caches().files.get(("file", source.digest), lambda: read_image(source.data, name=source.name))


def read_plane(source: ImageSource, channel, z, t) -> np.ndarray:
    """One validated, read-only 2-D plane of the file (cached for all sessions)."""
    def plane() -> np.ndarray:
        full, info = read_file(source)
        return validate_plane(np.ascontiguousarray(select_plane(full, info, channel=channel, z=z, t=t)), source.name)

    return caches().files.get(("plane", source.digest, channel, z, t), plane)


@dataclass(frozen=True)
class CurrentImage:
    """The 2-D plane the pages segment, with where it came from."""

    source: ImageSource
    info: ImageInfo
    plane: np.ndarray
    key: str  # digest + plane choice: the cache key of everything downstream


def current_image(params: Params | None = None) -> CurrentImage:
    """The plane chosen by `params` (channel, z, t) of the current image.

    Raises
    ------
    ImageReadError
        Unreadable file, a missing plane choice, a constant or NaN plane.
    """
    params = params or get_params()
    src = get_source()
    _, info = read_file(src)
    plane = read_plane(src, params.channel, params.z, params.t)
    return CurrentImage(src, info, plane, f"{src.digest}:{params.channel}:{params.z}:{params.t}")


# --- the settings -----------------------------------------------------------------------


def get_params() -> Params:
    """The shared settings (the course's defaults at first)."""
    if "params" not in st.session_state:
        st.session_state["params"] = Params()
    return st.session_state["params"]


def set_params(params: Params) -> None:
    """Make `params` the shared settings; the Segment page's sidebar follows.

    Call it from a button callback (``on_click``) or on a page where the
    sidebar controls are not drawn: widget values cannot change once drawn.
    """
    st.session_state["params"] = params
    st.session_state.pop("widened", None)
    for key in [k for k in st.session_state if str(k).startswith(WIDGET_PREFIX)]:
        del st.session_state[key]


# --- errors: a clear message for bad input, never a traceback -----------------------------

EXPECTED = (ImageReadError, SegmentationError, ValueError)


def show_error(exc: BaseException) -> None:
    """A clear message for a problem with the input; for anything else a short note (details go to the log)."""
    if isinstance(exc, EXPECTED):
        st.error(escape_markdown(str(exc)[:2000]), icon="⚠️")  # messages quote file names: text, not markup
        return
    log.error("unexpected error on a page:\n%s", "".join(traceback.format_exception(exc)))
    st.error(f"Something went wrong on our side ({type(exc).__name__}). Your image and settings are kept: "
             "try again, or another setting. The details are in the server's log.", icon="⚠️")


def guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    """A widget callback that never lets an exception reach the user: it is shown on the next run instead."""
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown by show_callback_error on this run
            st.session_state["callback_error"] = exc
            return None

    return run


def show_callback_error() -> None:
    """Show (once) the error of a callback that ran before this run."""
    exc = st.session_state.pop("callback_error", None)
    if exc is not None:
        show_error(exc)


def run_page(main: Callable[[], None]) -> None:
    """A page's body, under the last line of defence: never a traceback.

    Before it, a new session takes its settings (and, in the same browser, its
    image) from the link; after it, the link follows the settings.
    """
    use_app_navigation()
    try:
        restore_from_link()
    except Exception as exc:  # noqa: BLE001 - a bad link must never stop the page
        log.warning("could not restore from the link: %r", exc)
    show_callback_error()
    for note in st.session_state.pop("link_notes", []):
        if note.startswith("Restored"):
            st.toast(escape_markdown(note), icon=":material/link:")  # good news: brief, and not in the way
        else:
            st.info(escape_markdown(note), icon=":material/link:")
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        show_error(exc)
    try:
        sync_link(get_params(), get_source())
    except Exception as exc:  # noqa: BLE001
        log.warning("could not update the link: %r", exc)


# --- the link: a reload (or a shared link) keeps the settings; the same browser keeps its image ------

IMAGE_KEPT_S = 8 * 3600  # an upload can be restored by a reload for this long
IMAGE_PARAM = "image"


class UploadStore:
    """Uploaded images by (browser, digest), kept for :data:`IMAGE_KEPT_S`, at most `max_bytes` in all.

    Keyed by the browser (its Streamlit XSRF cookie), so a reload in the same
    browser finds its image, and a link sent to a colleague does not.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: dict[tuple[str, str], tuple[ImageSource, float]] = {}
        self._lock = threading.Lock()

    def put(self, browser: str | None, source: ImageSource) -> None:
        if browser is None or source.is_sample or len(source.data) > self.max_bytes:
            return
        with self._lock:
            self._items[(browser, source.digest)] = (source, time.monotonic() + IMAGE_KEPT_S)
            self._trim()

    def get(self, browser: str | None, digest: str) -> ImageSource | None:
        with self._lock:
            self._trim()
            item = self._items.get((browser, digest)) if browser else None
            return item[0] if item else None

    def _trim(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, until) in self._items.items() if until < now]:
            del self._items[key]
        while sum(len(src.data) for src, _ in self._items.values()) > self.max_bytes:
            oldest = min(self._items, key=lambda k: self._items[k][1])
            del self._items[oldest]


@st.cache_resource(show_spinner=False)
def upload_store() -> UploadStore:
    return UploadStore(CACHE_BYTES // 4)


def browser_key() -> str | None:
    """A key for this browser: the token in Streamlit's XSRF cookie (None without one, e.g. under AppTest)."""
    try:
        cookie = st.context.cookies.get("_streamlit_xsrf")
    except Exception:  # noqa: BLE001 - no cookies outside a browser
        return None
    if not isinstance(cookie, str) or not cookie:
        return None
    parts = cookie.split("|")
    try:
        if parts[0] == "2":  # 2|mask|masked token|timestamp: unmask, since the mask changes between requests
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)).hex()
    except (IndexError, ValueError):
        pass
    return hashlib.blake2b(cookie.encode(), digest_size=16).hexdigest()


def remember_upload(source: ImageSource) -> None:
    """Keep an uploaded image so that a reload in this browser finds it again."""
    upload_store().put(browser_key(), source)


def restore_from_link() -> None:
    """On a session's first run, take the settings and the image named in the link."""
    if st.session_state.get("link_restored"):
        return
    st.session_state["link_restored"] = True
    query = st.query_params.to_dict()
    notes, restored = [], []
    if any(name in SETTINGS for name in query):
        params, problems = Params.from_query(query)
        set_params(params)
        restored.append("the settings")
        if problems:
            notes.append("Some settings of the link could not be used: " + "; ".join(problems) + ".")
    digest = query.get(IMAGE_PARAM)
    if digest:
        source = upload_store().get(browser_key(), digest)
        if source is not None:
            set_source(source)
            restored.append(f"the image {source.name}")
        else:
            notes.append("The image named in the link is not on this server any more (uploads are kept "
                         f"{IMAGE_KEPT_S // 3600} hours, for the browser that uploaded them): upload it again. "
                         "Showing the sample image meanwhile.")
    if restored:
        notes.insert(0, "Restored from the link: " + " and ".join(restored) + ".")
    if notes:
        st.session_state["link_notes"] = notes


def sync_link(params: Params, source: ImageSource) -> None:
    """Write the settings (and an uploaded image's digest) into the link, when they changed."""
    wanted = params.to_query()
    if not source.is_sample:
        wanted[IMAGE_PARAM] = source.digest
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


# --- pictures ------------------------------------------------------------------------------


def histogram_figure(
    image: np.ndarray,
    cutoffs: dict[str, float | None],
    *,
    log_counts: bool = True,
    highlight: str | None = None,
    bins: int = 256,
    height: int = 260,
    width_px: int = 800,
    cache_key: tuple | None = None,
) -> go.Figure:
    """Histogram of `image` in its own units with each cutoff as a labelled vertical line.

    Parameters
    ----------
    cutoffs : dict
        Label -> value (raw units); None values are skipped.
    highlight : str, optional
        The label drawn as a thick red line (the cutoff in use); others are thin.
    width_px : int
        About how wide the plot is drawn, to keep the cutoff labels apart.
    cache_key : tuple, optional
        Identifies `image` (e.g. the filter stage key): its counts are then cached.
    """
    if cache_key is None:
        counts, edges = histogram_counts(image, bins)
    else:
        counts, edges = caches().stages.get((*cache_key, "histogram", bins), lambda: histogram_counts(image, bins))
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centres, y=counts, width=np.diff(edges), marker_color="#6c8ebf",
                           hovertemplate="intensity %{x:.6g}<br>%{y} pixels<extra></extra>"))
    palette = ["#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    others = [k for k in cutoffs if k != highlight]
    for i, (label, value) in enumerate(sorted(cutoffs.items(), key=lambda kv: kv[0] != highlight)):
        if value is None:
            continue
        main = label == highlight
        color = "#d62728" if main else palette[others.index(label) % len(palette)]
        fig.add_vline(
            x=value, line_width=3 if main else 1.5, line_dash="solid" if main else "dash", line_color=color,
            annotation_text=f"{label} {format_value(value)}",
            annotation_position="top right" if i % 2 == 0 else "top left", annotation_font_color=color,
        )
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), bargap=0, showlegend=False,
        xaxis_title="intensity of the filtered image (image units)", yaxis_title="pixels",
        yaxis_type="log" if log_counts else "linear",
    )
    stagger_labels(fig, float(edges[0]), float(edges[-1]), plot_px=width_px, row=16 / max(height - 90, 60))
    return fig


def stagger_labels(fig: go.Figure, x_min: float, x_max: float, plot_px: int = 800, row: float = 0.09) -> None:
    """Move the cutoff labels of a histogram down a row where they would overlap their neighbours."""
    span = max(x_max - x_min, 1e-12)
    per_char = 7.0 / plot_px * span  # about 7 px per character at the annotation font size
    taken: list[list[tuple[float, float]]] = []
    for ann in sorted(fig.layout.annotations, key=lambda a: a.x):
        width = len(ann.text) * per_char
        right = ann.x + width > x_max  # no room to the right of the line: write it to the left
        lo, hi = (ann.x - width, ann.x) if right else (ann.x, ann.x + width)
        level = next((i for i, row in enumerate(taken) if all(hi < a or lo > b for a, b in row)), len(taken))
        if level == len(taken):
            taken.append([])
        taken[level].append((lo, hi))
        ann.update(xanchor="right" if right else "left", y=1 - row * level, yanchor="top",
                   bgcolor="rgba(255,255,255,0.85)")


def image_stats(key: Any, image: np.ndarray) -> dict:
    """Minimum, maximum and the share of pixels at the maximum (saturation) of an image (cached)."""
    def stats() -> dict:
        top = image.max()
        return {"min": float(image.min()), "max": float(top),
                "at_max": float(np.count_nonzero(image == top)) / image.size,
                "dtype_max": bool(np.issubdtype(image.dtype, np.integer) and top == np.iinfo(image.dtype).max)}

    return caches().stages.get((key, "stats"), stats)


# --- the sidebar that edits Params -----------------------------------------------------------


def label_of(name: str, value: Any) -> str:
    """The words for one choice of a setting (``label_of('threshold_method', 'otsu') -> 'Otsu'``)."""
    choices = SETTINGS[name].choices
    return choices[value].label if choices and value in choices else str(value)


def _title(spec: Setting) -> str:
    return f"{spec.label} ({spec.unit})" if spec.unit else spec.label


def _help(spec: Setting) -> str:
    if not spec.choices:
        return spec.help
    return spec.help + "\n\n" + "\n".join(f"- **{m.label}**: {m.help}" for m in spec.choices.values())


def _seed(name: str, value: Any) -> str:
    """Widget key of setting `name`, seeded from the shared settings when absent."""
    key = WIDGET_PREFIX + name
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def control(box: Any, name: str, params: Params, *, radio: bool = False) -> Any:
    """The widget of one setting, as its :class:`Setting` describes it; returns the chosen value.

    A valid value outside a slider's usual range (e.g. loaded from a settings
    file) widens the slider, with a note; it is never clamped.
    """
    spec = SETTINGS[name]
    value = getattr(params, name)
    if spec.kind == "choice":
        widget = box.radio if radio else box.selectbox
        return widget(spec.label, list(spec.choices), key=_seed(name, value),
                      format_func=functools.partial(label_of, name), help=_help(spec))
    if spec.kind == "bool":
        return box.checkbox(spec.label, key=_seed(name, value), help=spec.help)
    if spec.ui is None:
        kind = int if spec.kind == "int" else float
        out = box.number_input(_title(spec), min_value=kind(spec.low) if spec.low is not None else None,
                               max_value=kind(spec.high) if spec.high is not None else None,
                               key=_seed(name, kind(value)), help=spec.help)
        return kind(out)
    kind = int if spec.kind == "int" else float
    key = _seed(name, kind(value))
    # once widened, a slider stays so for the session (its range must not jump while it is moved)
    widened = st.session_state.setdefault("widened", {})
    lo, hi = spec.slider_range(st.session_state[key])
    if name in widened:
        lo, hi = min(lo, widened[name][0]), max(hi, widened[name][1])
    if (lo, hi) != spec.ui:
        widened[name] = (lo, hi)
        st.session_state[key] = st.session_state[key]  # keep the value although the range changed
    out = box.slider(_title(spec), kind(lo), kind(hi), step=kind(spec.step), key=key, help=spec.help)
    if (lo, hi) != spec.ui:
        box.caption(f"Widened from its usual {spec.ui[0]:g}–{spec.ui[1]:g} to fit a loaded value.")
    return out


def _typed_cutoff() -> None:
    st.session_state[WIDGET_PREFIX + "threshold_value"] = float(st.session_state[WIDGET_PREFIX + "threshold_value_typed"])


def manual_cutoff(box: Any, params: Params, auto_cutoff: float | None, value_range: tuple[float, float]) -> float:
    """The manual cutoff: a slider over the filtered image's intensities, and a box to type it.

    A cutoff outside this image's range (tuned on another image) widens the
    slider and is said so; it is never clamped to the image.
    """
    lo, hi = value_range
    integer_like = hi - lo > 200
    step = 1.0 if integer_like else max((hi - lo) / 200, 1e-6)
    start = params.threshold_value if params.threshold_value is not None else (auto_cutoff or (lo + hi) / 2)
    if integer_like:
        start = float(round(start))  # what the slider can show
    key = _seed("threshold_value", float(start))
    current = float(st.session_state[key])
    lo, hi = float(np.floor(min(lo, current))), float(np.ceil(max(hi, current)))
    st.session_state[key] = current  # a new range makes a new widget: keep the chosen value
    fmt = "%.0f" if integer_like else "%.4g"
    value = float(box.slider("Cutoff (image units)", lo, hi, step=step, format=fmt, key=key,
                             help=SETTINGS["threshold_value"].help))
    if not value_range[0] <= value <= value_range[1]:
        side = "above every" if value > value_range[1] else "below every"
        box.warning(f"The cutoff {format_value(value)} is {side} pixel of this image (filtered: "
                    f"{format_value(value_range[0])} – {format_value(value_range[1])}), so "
                    f"{'no' if side.startswith('above') else 'every'} pixel passes. It was probably set on "
                    "another image: pick an automatic method or move the slider.", icon="⚠️")
    typed = WIDGET_PREFIX + "threshold_value_typed"
    st.session_state[typed] = value
    box.number_input("…or type the cutoff", min_value=lo, max_value=hi, step=step, key=typed, format=fmt,
                     on_change=guarded(_typed_cutoff), help="Type an exact cutoff in the image's units; the slider follows.")
    return value


def params_sidebar(params: Params, info: ImageInfo, auto_cutoff: float | None, value_range: tuple[float, float]) -> dict:
    """Draw one control per Params field, in the course's order; return the chosen values.

    Parameters
    ----------
    params : the shared settings the widgets are seeded from
    info : the current file (which plane pickers to show)
    auto_cutoff : the last automatic cutoff, to start the manual slider from
    value_range : (min, max) intensity of the filtered image, the manual slider's range
    """
    sb = st.sidebar
    v = params.to_dict()

    if info.n_c > 1 or info.n_z > 1 or info.n_t > 1:
        sb.subheader("Image plane")
        if info.n_c > 1:
            v["channel"] = sb.selectbox("Channel", list(range(info.n_c)), key=_seed("channel", params.channel or 0),
                                        help=SETTINGS["channel"].help)
        if info.n_z > 1:
            z_opts = ["max", *range(info.n_z)]
            v["z"] = sb.selectbox("Z-slice", z_opts, key=_seed("z", "max" if params.z is None else params.z),
                                  format_func=lambda z: "Maximum projection" if z == "max" else f"slice {z}",
                                  help=SETTINGS["z"].help)
        if info.n_t > 1:
            v["t"] = sb.selectbox("Time point", list(range(info.n_t)), key=_seed("t", params.t or 0),
                                  help=SETTINGS["t"].help)

    def shown(name: str) -> bool:
        return Params.uses(_Chosen(v), name)

    sb.subheader("1 · Filter")
    v["filter"] = control(sb, "filter", params)
    for name in ("sigma", "filter_size"):
        if shown(name):
            v[name] = control(sb, name, params)
    with sb.expander("Advanced: background subtraction", expanded=params.background != "none"):
        v["background"] = control(st, "background", params)
        if shown("background_radius"):
            v["background_radius"] = control(st, "background_radius", params)

    sb.subheader("2 · Threshold")
    v["threshold_method"] = control(sb, "threshold_method", params)
    if shown("threshold_value"):
        v["threshold_value"] = manual_cutoff(sb, params, auto_cutoff, value_range)
    if shown("block_size"):
        v["block_size"] = control(sb, "block_size", params)
        v["offset"] = control(sb, "offset", params)
    v["objects"] = control(sb, "objects", params, radio=True)

    sb.subheader("3 · Refine")
    for name in ("min_size", "closing_radius", "fill_holes", "exclude_border"):
        v[name] = control(sb, name, params)
    with sb.expander("Advanced: refine"):
        v["opening_radius"] = control(st, "opening_radius", params)
        if shown("max_hole_size"):
            v["max_hole_size"] = control(st, "max_hole_size", params)
        v["max_size"] = control(st, "max_size", params)

    sb.subheader("4 · Split touching nuclei")
    v["split"] = control(sb, "split", params, radio=True)
    if shown("seed_method"):
        # the seed method is chosen under Advanced (drawn below) but decides the sliders shown here
        v["seed_method"] = st.session_state.get(WIDGET_PREFIX + "seed_method", params.seed_method)
        for name in ("footprint", "min_distance", "h"):
            if shown(name):
                v[name] = control(sb, name, params)
        with sb.expander("Advanced: seeds", expanded=params.seed_method != "peak_local_max"):
            for name in ("seed_method", "distance_sigma", "keep_unseeded"):
                v[name] = control(st, name, params)

    sb.subheader("5 · Measure")
    spec = SETTINGS["pixel_size_um"]
    size = sb.number_input(f"{spec.label} (µm, 0 = unknown)", min_value=0.0, max_value=float(spec.high), step=0.01,
                           format="%.4f", key=_seed("pixel_size_um", float(params.pixel_size_um or 0.0)),
                           help=spec.help)
    v["pixel_size_um"] = float(size) or None
    return v


class _Chosen:
    """The values chosen so far, read like Params (for :meth:`Params.uses`)."""

    def __init__(self, values: dict):
        self.__dict__.update(values)
