"""What the pages share: the current image, the current settings, cached stages, pictures.

The settings live in ``st.session_state["params"]`` (a :class:`Params`), the
image in ``st.session_state["source"]`` (an :class:`ImageSource`).  Every page
reads them with :func:`get_params` and :func:`current_image` and writes settings
back with :func:`set_params`, so a choice made on one page is what the others use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import segmentation
from segmentation.compare import FOOTPRINT_RANGE, MIN_DISTANCE_RANGE, SIGMA_RANGE, WINDOW_RANGE
from segmentation.io import ImageInfo, ImageReadError, read_image, select_plane, validate_plane
from segmentation.filters import filter_image
from segmentation.pipeline import Result, finish, keep_objects, removed_pixels
from segmentation.refine import connected_components, refine_mask
from segmentation.split import SplitResult, split_objects
from segmentation.threshold import ThresholdResult, all_auto_thresholds, threshold_image
from segmentation.params import BACKGROUNDS, FILTERS, HELP, SEED_METHODS, SPLIT_METHODS, THRESHOLD_METHODS, Params

SAMPLE_PATH = Path(segmentation.__file__).parent / "data" / "sample_nuclei.tif"
SAMPLE_NAME = "sample_nuclei.tif"
WIDGET_PREFIX = "w_"  # sidebar widget keys are WIDGET_PREFIX + Params field name


def use_app_navigation() -> None:
    """Make sure the page runs inside ``app.py``'s navigation.

    Streamlit treats a folder named ``pages/`` as a legacy page folder until
    ``st.navigation`` has run once in the server process, so the very first
    visitor who opens e.g. ``/batch`` by URL would get every file of the folder
    as a page, without the app's layout.  Switch that mode off and run again
    through ``app.py``.  Call it first on every page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@dataclass(frozen=True)
class ImageSource:
    """The file the pages work on: its name, bytes and a digest to key caches on."""

    name: str
    data: bytes
    digest: str
    is_sample: bool = False


def digest_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@st.cache_data(show_spinner=False)
def _sample_bytes() -> bytes:
    return SAMPLE_PATH.read_bytes()


def sample_source() -> ImageSource:
    data = _sample_bytes()
    return ImageSource(SAMPLE_NAME, data, digest_of(data), is_sample=True)


def get_source() -> ImageSource:
    """The current image file (the built-in sample until something is uploaded)."""
    if "source" not in st.session_state:
        st.session_state["source"] = sample_source()
    return st.session_state["source"]


def set_source(source: ImageSource) -> None:
    st.session_state["source"] = source


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
    for key in [k for k in st.session_state if str(k).startswith(WIDGET_PREFIX)]:
        del st.session_state[key]


# --- cached reading -------------------------------------------------------------
# Keyed on the file's digest, never on a large array (Streamlit hashes big arrays
# from a sample and could return a stale result); `_data` is not hashed.


@st.cache_resource(max_entries=4, show_spinner=False)
def read_cached(digest: str, name: str, _data: bytes) -> tuple[np.ndarray, ImageInfo]:
    data, info = read_image(_data, name=name)
    data.setflags(write=False)
    return data, info


@st.cache_resource(max_entries=8, show_spinner=False)
def plane_cached(digest: str, name: str, channel, z, t, _data: bytes) -> np.ndarray:
    full, info = read_cached(digest, name, _data)
    plane = np.ascontiguousarray(select_plane(full, info, channel=channel, z=z, t=t))
    validate_plane(plane, name)
    plane.setflags(write=False)
    return plane


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
    _, info = read_cached(src.digest, src.name, src.data)
    plane = plane_cached(src.digest, src.name, params.channel, params.z, params.t, src.data)
    key = f"{src.digest}:{params.channel}:{params.z}:{params.t}"
    return CurrentImage(src, info, plane, key)


# --- pictures -------------------------------------------------------------------


def histogram_counts(image: np.ndarray, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Pixel counts and bin edges of `image` (from ~1 M pixels at most), in its own units."""
    values = np.asarray(image)
    step = max(1, int(np.sqrt(values.size / 1_000_000)))
    return np.histogram(values[::step, ::step].ravel(), bins=bins)


@st.cache_data(max_entries=32, show_spinner=False)
def _histogram_counts_cached(key: tuple, bins: int, _image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return histogram_counts(_image, bins)


def histogram_figure(
    image: np.ndarray,
    cutoffs: dict[str, float | None],
    *,
    log_counts: bool = False,
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
        counts, edges = _histogram_counts_cached(cache_key, bins, image)
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
            annotation_text=f"{label} {value:.5g}", annotation_position="top right" if i % 2 == 0 else "top left",
            annotation_font_color=color,
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


@st.cache_data(max_entries=16, show_spinner=False)
def image_stats(key: str, _image: np.ndarray) -> dict:
    """Minimum, maximum and the share of pixels at the maximum (saturation) of an image."""
    top = _image.max()
    return {"min": float(_image.min()), "max": float(top),
            "at_max": float(np.count_nonzero(_image == top)) / _image.size,
            "dtype_max": bool(np.issubdtype(_image.dtype, np.integer) and top == np.iinfo(_image.dtype).max)}


def show_error(exc: Exception) -> None:
    """A clear message for a problem with the input, never a traceback."""
    if isinstance(exc, (ImageReadError, ValueError)):
        st.error(str(exc), icon="⚠️")
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}. Try another setting or image.", icon="⚠️")


# --- the sidebar that edits Params ---------------------------------------------------

_LABELS = {
    "none": "None", "mean": "Mean", "gaussian": "Gaussian", "median": "Median",
    "rolling_ball": "Rolling ball", "tophat": "White top-hat",
    "manual": "Manual", "otsu": "Otsu", "li": "Li", "triangle": "Triangle", "yen": "Yen",
    "isodata": "IsoData", "minimum": "Minimum", "local": "Local (adaptive)",
    "bright": "Brighter than background", "dark": "Darker than background",
    "watershed": "Watershed (split touching nuclei)", "peak_local_max": "Local maxima (course)",
    "h_maxima": "h-maxima",
}


def label_of(value) -> str:
    """Human name of a setting's choice (``'otsu'`` -> ``'Otsu'``)."""
    return _LABELS.get(value, str(value))


def _seed(field: str, value) -> str:
    """Widget key of `field`, seeded from the shared settings when absent."""
    key = WIDGET_PREFIX + field
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def _slider(box, field: str, label: str, lo, hi, value, step=None, fmt=None, range_follows_image: bool = False):
    value = min(max(value, lo), hi)
    key = _seed(field, value)
    if not lo <= st.session_state[key] <= hi:  # e.g. a new image with another range
        st.session_state[key] = value
    elif range_follows_image:
        # A new range makes a new widget, which the browser would start at its minimum;
        # setting the value through the session state makes it keep the chosen one.
        st.session_state[key] = st.session_state[key]
    return box.slider(label, lo, hi, step=step, format=fmt, key=key, help=HELP[field])


def _select(box, field: str, label: str, options, value, radio: bool = False):
    key = _seed(field, value)
    widget = box.radio if radio else box.selectbox
    return widget(label, options, key=key, format_func=label_of, help=HELP[field])


def _typed_cutoff() -> None:
    st.session_state[WIDGET_PREFIX + "threshold_value"] = float(st.session_state[WIDGET_PREFIX + "threshold_value_typed"])


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
                                        help=HELP["channel"])
        if info.n_z > 1:
            z_opts = ["max", *range(info.n_z)]
            v["z"] = sb.selectbox("Z-slice", z_opts, key=_seed("z", "max" if params.z is None else params.z),
                                  format_func=lambda z: "Maximum projection" if z == "max" else f"slice {z}",
                                  help=HELP["z"])
        if info.n_t > 1:
            v["t"] = sb.selectbox("Time point", list(range(info.n_t)), key=_seed("t", params.t or 0), help=HELP["t"])

    sb.subheader("1 · Filter")
    v["filter"] = _select(sb, "filter", "Filter", FILTERS, params.filter)
    if v["filter"] == "gaussian":
        v["sigma"] = _slider(sb, "sigma", "Sigma (px)", 0.0, SIGMA_RANGE[1], float(params.sigma), 0.1)
    elif v["filter"] in ("mean", "median"):
        v["filter_size"] = _slider(sb, "filter_size", "Kernel size (px)", *WINDOW_RANGE, int(params.filter_size), 1)
    with sb.expander("Advanced: background subtraction"):
        v["background"] = _select(st, "background", "Background", BACKGROUNDS, params.background)
        if v["background"] != "none":
            v["background_radius"] = _slider(st, "background_radius", "Radius (px)", 5.0, 200.0,
                                             float(params.background_radius), 1.0)

    sb.subheader("2 · Threshold")
    v["threshold_method"] = _select(sb, "threshold_method", "Method", THRESHOLD_METHODS, params.threshold_method)
    if v["threshold_method"] == "manual":
        lo, hi = value_range
        integer_like = hi - lo > 200
        step = 1.0 if integer_like else max((hi - lo) / 200, 1e-6)
        start = params.threshold_value if params.threshold_value is not None else (auto_cutoff or (lo + hi) / 2)
        if integer_like:
            start = float(round(start))  # what the slider can show
        lo, hi = float(np.floor(lo)), float(np.ceil(hi))
        v["threshold_value"] = float(_slider(sb, "threshold_value", "Cutoff (image units)", lo, hi, float(start),
                                             step, "%.0f" if integer_like else "%.4g", range_follows_image=True))
        # the same cutoff as a box to type in: it always shows the slider's value
        typed = WIDGET_PREFIX + "threshold_value_typed"
        st.session_state[typed] = v["threshold_value"]
        sb.number_input("…or type the cutoff", min_value=lo, max_value=hi, step=step, key=typed,
                        format="%.0f" if integer_like else "%.4g", on_change=_typed_cutoff,
                        help="Type an exact cutoff in the image's units; the slider follows.")
    elif v["threshold_method"] == "local":
        v["block_size"] = _slider(sb, "block_size", "Block size (px, odd)", 3, 301, int(params.block_size), 2)
        v["offset"] = float(sb.number_input("Offset (image units)", key=_seed("offset", float(params.offset)),
                                            help=HELP["offset"]))
    v["objects"] = _select(sb, "objects", "Nuclei are", ("bright", "dark"), params.objects, radio=True)

    sb.subheader("3 · Refine")
    v["min_size"] = _slider(sb, "min_size", "Remove objects smaller than (px)", 0, 2000, int(params.min_size), 1)
    v["closing_radius"] = _slider(sb, "closing_radius", "Closing radius (px)", 0, 10, int(params.closing_radius), 1)
    v["fill_holes"] = sb.checkbox("Fill holes", key=_seed("fill_holes", params.fill_holes), help=HELP["fill_holes"])
    v["exclude_border"] = sb.checkbox("Remove objects touching the border",
                                      key=_seed("exclude_border", params.exclude_border), help=HELP["exclude_border"])
    with sb.expander("Advanced: refine"):
        v["opening_radius"] = _slider(st, "opening_radius", "Opening radius (px)", 0, 10, int(params.opening_radius), 1)
        if v["fill_holes"]:
            v["max_hole_size"] = int(st.number_input("Largest hole to fill (px, 0 = all)", min_value=0,
                                                     key=_seed("max_hole_size", int(params.max_hole_size)),
                                                     help=HELP["max_hole_size"]))
        v["max_size"] = int(st.number_input("Remove objects larger than (px, 0 = keep all)", min_value=0,
                                            key=_seed("max_size", int(params.max_size)), help=HELP["max_size"]))

    sb.subheader("4 · Split touching nuclei")
    v["split"] = _select(sb, "split", "Method", SPLIT_METHODS, params.split, radio=True)
    if v["split"] == "watershed":
        # the seed method is chosen under Advanced (drawn below) but decides the sliders shown here
        seed_method = st.session_state.get(WIDGET_PREFIX + "seed_method", params.seed_method)
        if seed_method == "peak_local_max":
            v["footprint"] = _slider(sb, "footprint", "Footprint (px)", *FOOTPRINT_RANGE, int(params.footprint), 1)
            v["min_distance"] = _slider(sb, "min_distance", "min_distance (px)", *MIN_DISTANCE_RANGE, int(params.min_distance), 1)
        else:
            v["h"] = _slider(sb, "h", "h (px)", 0.1, 20.0, float(params.h), 0.1)
        with sb.expander("Advanced: seeds", expanded=params.seed_method != "peak_local_max"):
            v["seed_method"] = _select(st, "seed_method", "Seeds", SEED_METHODS, params.seed_method)
            v["distance_sigma"] = _slider(st, "distance_sigma", "Smooth distance map (px)", 0.0, 10.0,
                                          float(params.distance_sigma), 0.5)
            v["keep_unseeded"] = st.checkbox("Keep objects without a seed", key=_seed("keep_unseeded", params.keep_unseeded),
                                             help=HELP["keep_unseeded"])

    sb.subheader("5 · Measure")
    size = sb.number_input("Pixel size (µm, 0 = unknown)", min_value=0.0, step=0.01, format="%.4f",
                           key=_seed("pixel_size_um", float(params.pixel_size_um or 0.0)), help=HELP["pixel_size_um"])
    v["pixel_size_um"] = float(size) or None
    return v


# --- cached pipeline stages --------------------------------------------------------
# Each stage is keyed on the image key and the settings of itself and the stages
# upstream of it, so a change recomputes only what it affects.  The arrays travel
# as unhashed `_` arguments.


@st.cache_resource(max_entries=6, show_spinner=False)
def _filtered(key: str, f: tuple, _plane: np.ndarray, _params: Params) -> np.ndarray:
    out = filter_image(_plane, _params)
    out.setflags(write=False)
    return out


@st.cache_resource(max_entries=8, show_spinner=False)
def _thresholded(key: str, f: tuple, t: tuple, _filtered: np.ndarray, _params: Params) -> ThresholdResult:
    return threshold_image(_filtered, _params)


@st.cache_resource(max_entries=4, show_spinner=False)
def _components(key: str, f: tuple, t: tuple, _binary: np.ndarray) -> np.ndarray:
    out = connected_components(_binary)
    out.setflags(write=False)
    return out


@st.cache_resource(max_entries=8, show_spinner=False)
def _refined(key: str, f: tuple, t: tuple, r: tuple, _binary: np.ndarray, _params: Params) -> np.ndarray:
    labels = _components(key, f, t, _binary) if _params.min_size > 1 else None
    return refine_mask(_binary, _params, labels)


@st.cache_resource(max_entries=8, show_spinner=False)
def _split(key: str, mask_digest: str, s: tuple, _mask: np.ndarray, _params: Params, _cache: dict) -> SplitResult:
    return split_objects(_mask, _params, cache=_cache)


@st.cache_resource(max_entries=8, show_spinner=False)
def _kept(key: str, mask_digest: str, s: tuple, o: tuple, _split: SplitResult, _params: Params) -> SplitResult:
    return keep_objects(_split, _params)


@st.cache_resource(max_entries=8, show_spinner=False)
def _finished(key: str, f: tuple, t: tuple, mask_digest: str, s: tuple, o: tuple, m: tuple, _parts: tuple, _params: Params,
              _measure_cache: dict) -> Result:
    return finish(*_parts, _params, measure_cache=_measure_cache)


def _object_cache(kind: str, image_key: str) -> dict:
    """This session's per-object results on this image (one image at a time)."""
    caches = st.session_state.setdefault("object_caches", {})
    if caches.get("image") != image_key:
        caches.clear()
        caches["image"] = image_key
    return caches.setdefault(kind, {})


@st.cache_resource(max_entries=8, show_spinner=False)
def _removed(key: str, f: tuple, t: tuple, mask_digest: str, s: tuple, _binary, _mask, _labels) -> np.ndarray:
    return removed_pixels(_binary, _mask, _labels)


@dataclass(frozen=True)
class Stages:
    """One image through filter, threshold, refine and split: everything but the measurements.

    ``keys`` holds a cache key for each stage's output, for pictures drawn from them.
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


def run_stages(image: CurrentImage, params: Params) -> Stages:
    """Filter, threshold, refine and split the current image, recomputing only changed stages.

    Splitting is keyed on the refined mask itself, so a setting that leaves the
    mask unchanged (say, a minimum size between two objects' sizes) recomputes
    nothing after refinement; the object filters (max size, border) run on the
    split's labels, so toggling them does not split again.
    """
    k, plane = image.key, image.plane
    f, t, r, s, o = (params.stage(x) for x in ("filter", "threshold", "refine", "split", "objects"))
    filtered = _filtered(k, f, plane, params)
    thresholded = _thresholded(k, f, t, filtered, params)
    mask = _refined(k, f, t, r, thresholded.mask, params)
    mask_digest = hashlib.blake2b(mask.view(np.uint8), digest_size=16).hexdigest()
    split = _kept(k, mask_digest, s, o, _split(k, mask_digest, s, mask, params, _object_cache("split", k)), params)
    removed = _removed(k, f, t, mask_digest, s + o, thresholded.mask, mask, split.labels)
    keys = {"image": (k,), "filter": (k, f), "threshold": (k, f, t), "refine": (k, mask_digest),
            "seeds": (k, mask_digest, s), "split": (k, mask_digest, s, o), "labelled": (k, f, t, mask_digest, s, o)}
    return Stages(plane, filtered, thresholded, mask, split, removed, keys)


def measure_stages(stages: Stages, params: Params) -> Result:
    """Measure the objects of `stages` (cached; objects measured before are not measured again)."""
    k = stages.keys["image"][0]
    parts = (stages.image, stages.filtered, stages.thresholded, stages.mask, stages.split)
    return _finished(*stages.keys["labelled"], params.stage("measure"), parts, params, _object_cache("measure", k))


@st.cache_data(max_entries=16, show_spinner=False)
def auto_cutoffs(key: tuple, _filtered: np.ndarray) -> dict[str, float | None]:
    """Every automatic method's cutoff on the filtered image (for the histogram)."""
    return all_auto_thresholds(_filtered)
