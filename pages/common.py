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
from segmentation.display import downsample, downsample_factor, png_bytes
from segmentation.io import ImageInfo, ImageReadError, read_image, select_plane, validate_plane
from segmentation.params import Params

SAMPLE_PATH = Path(segmentation.__file__).parent / "data" / "sample_nuclei.tif"
SAMPLE_NAME = "sample_nuclei.tif (built-in sample: U2OS Hoechst nuclei)"
DISPLAY_SIDE = 1000  # longest side of images sent to the browser
WIDGET_PREFIX = "w_"  # sidebar widget keys are WIDGET_PREFIX + Params field name


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


def display_png(image: np.ndarray, max_side: int = DISPLAY_SIDE) -> bytes:
    """A uint8 grey/RGB picture, downsampled to at most `max_side`, as PNG bytes."""
    return png_bytes(downsample(image, downsample_factor(image.shape, max_side)))


def histogram_figure(
    image: np.ndarray,
    cutoffs: dict[str, float | None],
    *,
    log_counts: bool = False,
    highlight: str | None = None,
    bins: int = 256,
    height: int = 260,
) -> go.Figure:
    """Histogram of `image` in its own units with each cutoff as a labelled vertical line.

    Parameters
    ----------
    cutoffs : dict
        Label -> value (raw units); None values are skipped.
    highlight : str, optional
        The label drawn as a thick red line (the cutoff in use); others are thin.
    """
    values = np.asarray(image)
    step = max(1, int(np.sqrt(values.size / 1_000_000)))  # ~1 M pixels are plenty
    sub = values[::step, ::step].ravel()
    counts, edges = np.histogram(sub, bins=bins)
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
        xaxis_title="intensity (image units)", yaxis_title="pixels",
        yaxis_type="log" if log_counts else "linear",
    )
    return fig


def show_error(exc: Exception) -> None:
    """A clear message for a problem with the input, never a traceback."""
    if isinstance(exc, (ImageReadError, ValueError)):
        st.error(str(exc), icon="⚠️")
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}. Try another setting or image.", icon="⚠️")
