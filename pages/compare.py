"""Compare page: filters, thresholds and seed settings side by side; one click adopts the best."""

from __future__ import annotations

import time
from concurrent.futures import Future, wait

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pages.common import caches, current_image, get_params, guarded, histogram_figure, run_page, set_params
from segmentation import compare as cmp
from segmentation.display import display_range, downsample_factor, format_value
from segmentation.params import SETTINGS, Params
from segmentation.safety import escape_markdown
from segmentation.stages import filter_stage

CELL_SIDE = 384  # crops smaller than this are enlarged with whole pixels, larger ones reduced
OVERVIEW_SIDE = 320
COLUMNS = 4
TABS = ("Filter", "Threshold", "Splitting")
VIEWS = {"mask": "Mask", "outlines": "Outlines on the raw image"}
LEGEND = {
    "mask": "White: nuclei. Black lines: where touching nuclei were split. "
    "Grey: mask that ended up in no nucleus (no seed, too large or on the border).",
    "outlines": "Yellow: nucleus outlines. Magenta: mask that ended up in no nucleus "
    "(no seed, too large or on the border).",
}
CROP_SIZES = (64, 96, 128, 192, 256, 384, 512, 768, 1024)

# Widget state that should survive a visit to another page (Streamlit forgets the
# values of widgets that a run does not draw): saved here, restored on return.
UI_STORE = "compare_ui"
UI_KEYS = ("cmp_tab", "cmp_view", "cmp_size", "cmp_cx", "cmp_cy", "cmp_sigmas", "cmp_windows",
           "cmp_min_distances", "cmp_footprints", "cmp_log", "cmp_region_of")


# --- computing (cached for every user, keyed on the image and the cell's settings) ----


def _display_range(image) -> tuple[float, float]:
    """The 0.5 and 99.5 percentiles of the whole plane: one contrast for every crop."""
    return caches().stages.get((image.key, "display range"), lambda: display_range(image.plane))


def _overview_u8(image) -> tuple[np.ndarray, int]:
    step = downsample_factor(image.plane.shape, OVERVIEW_SIDE)
    small = caches().pictures.get((image.key, "overview", step), lambda: cmp.stretch_between(
        image.plane[::step, ::step], *_display_range(image)))
    return small, step


def submit(image, cells: list[cmp.Cell]) -> list[Future]:
    """Start the cells not yet known (slowest first); one future per cell, in order.

    Cells run the stage runner on the shared stage cache, so the stages they
    have in common (every threshold cell's filter, say) are computed once.
    """
    futures: list[Future | None] = [None] * len(cells)
    for i in cmp.slowest_first([c.params for c in cells], image.key, caches().stages):
        p = cells[i].params
        futures[i] = caches().cells.submit((image.key, cmp.cell_key(p)), cmp.compute_cell, image.plane, p,
                                           image.key, caches().stages)
    return futures  # type: ignore[return-value]


def show_grid(image, rows: list[cmp.Row], what: str, region: Region, current: Params, key: str, *,
              show_cutoff: bool = False, notes: dict[str, str] | None = None) -> list[list[cmp.CellResult]]:
    """Lay out the grid, then fill each cell as soon as its result is ready.

    Cells are computed in the background threads of :func:`cell_cache`; a rerun
    (the user moved a slider) does not lose them: they finish and are kept.
    """
    cells = [c for row in rows for c in row.cells]
    futures = submit(image, cells)
    progress = st.empty()
    st.caption("Each picture shows the region chosen in the sidebar; the number under it counts the nuclei of "
               "the whole image.")
    slots = []
    for row in rows:
        st.markdown(f"**{row.title}** — {row.values_text}")
        for start in range(0, len(row.cells), COLUMNS):
            cols = st.columns(COLUMNS)
            chunk = row.cells[start:start + COLUMNS]
            slots += [(cols[j].empty(), f"{key}_{row.name}_{start + j}") for j in range(len(chunk))]
            note = (notes or {}).get(row.name)
            if note and len(chunk) < COLUMNS:
                cols[len(chunk)].caption(note)
    pending = {}
    for i, (cell, future, (slot, cell_key)) in enumerate(zip(cells, futures, slots)):
        if future.done():
            draw_cell(slot, cell, future.result(), region, current, cell_key, show_cutoff)
        else:
            draw_pending(slot, cell, region)
            pending.setdefault(future, []).append(i)
    if pending:
        begin = time.perf_counter()
        total = len(pending)
        left = set(pending)
        bar = progress.progress(0.0, text=f"{what}: computing {total} settings…")
        while left:
            done, left = wait(left, timeout=0.5, return_when="FIRST_COMPLETED")
            for future in done:
                for i in pending[future]:
                    slot, cell_key = slots[i]
                    draw_cell(slot, cells[i], future.result(), region, current, cell_key, show_cutoff)
            n = total - len(left)
            bar.progress(n / total, text=f"{what}: {n} of {total} settings ready "
                                         f"({time.perf_counter() - begin:.0f} s; large median windows are the slowest)")
        progress.caption(f"{what}: {total} settings computed in {time.perf_counter() - begin:.1f} s on "
                         f"{caches().cells.workers} threads, and kept: moving the region or coming back is instant.")
    results = [f.result() for f in futures]
    out, k = [], 0
    for row in rows:
        out.append(results[k:k + len(row.cells)])
        k += len(row.cells)
    return out


def filtered_image(image, params: Params) -> tuple[np.ndarray, tuple]:
    """The current filtered image (the threshold histogram's) and its key, from the shared stage cache."""
    with st.spinner("Filtering the image…"):
        return filter_stage(image.plane, params, image_key=image.key, cache=caches().stages)


# --- pictures -------------------------------------------------------------------------


class Region:
    """The crop every cell shows, and how to draw it."""

    def __init__(self, image, box: tuple[slice, slice], view: str):
        self.box = box
        self.view = view
        side = box[0].stop - box[0].start
        self.enlarge = max(1, CELL_SIDE // side)
        self.reduce = downsample_factor((side, side), 512)
        lo, hi = _display_range(image)
        self.raw_u8 = cmp.stretch_between(image.plane[box], lo, hi)

    def blank(self, grey: int = 235) -> np.ndarray:
        """A flat tile of the cells' size (keeps the grid aligned where there is no picture)."""
        side = len(range(0, self.raw_u8.shape[0], self.reduce)) * self.enlarge
        return np.full((side, side), grey, np.uint8)

    def picture(self, result: cmp.CellResult) -> np.ndarray:
        if result.error:
            return self.blank(60)
        else:
            mask, labels = result.mask[self.box], result.labels[self.box]
            if self.view == "mask":
                pic = cmp.mask_picture(mask, labels)
            else:
                pic = cmp.outline_picture(self.raw_u8, mask, labels)
        pic = pic[:: self.reduce, :: self.reduce]
        return cmp.enlarge(pic, self.enlarge)


def draw_cell(slot, cell: cmp.Cell, result: cmp.CellResult, region: Region, current: Params, key: str,
              show_cutoff: bool = False) -> None:
    with slot.container(border=True):
        st.image(region.picture(result), output_format="PNG", width="stretch")
        # the same two short lines in every cell, so the buttons of a row line up
        if result.error:
            st.markdown(f"**{cell.label}**  \nno result")
        else:
            cutoff = f" · cutoff {format_value(result.threshold)}" if show_cutoff else ""
            st.markdown(f"**{cell.label}**  \n**{result.count}** nuclei{cutoff}")
        in_use = cell.params == current
        st.button(
            "✓ In use" if in_use else "Use these settings",
            key=key,
            on_click=guarded(set_params),
            args=(cell.params,),
            disabled=in_use or result.error is not None,
            type="secondary",
            width="stretch",
            help=None if in_use else "Make these the settings of every page: " + "; ".join(cell.params.describe()),
        )
        if result.error:
            st.caption(result.error)


def draw_pending(slot, cell: cmp.Cell, region: Region) -> None:
    with slot.container(border=True):
        st.image(region.blank(), output_format="PNG", width="stretch")
        st.markdown(f"**{cell.label}**  \ncomputing…")


# --- sections ---------------------------------------------------------------------------


def _values(label: str, key: str, default: tuple, col, *, integer: bool, name: str, what: str) -> tuple | None:
    """Sizes to compare for setting `name`, typed by the user, within its slider's usual range."""
    spec = SETTINGS[name]
    if key not in st.session_state:
        st.session_state[key] = ", ".join(f"{v:g}" for v in default)
    text = col.text_input(label, key=key, help=spec.help, max_chars=200)
    try:
        low, high = cmp.grid_ranges(name)
        return cmp.parse_values(text, integer=integer, low=low, high=high, what=what,
                                step=None if integer else spec.step)
    except ValueError as exc:
        col.error(str(exc), icon="⚠️")
        return None


def filter_section(image, params: Params, region: Region) -> None:
    st.markdown("Each row is a noise filter, each column a size: which mask looks most like the nuclei? "
                "Everything after the filter uses your current settings.")
    c1, c2, _ = st.columns([1, 1, 2])
    sigmas = _values("Gaussian sigmas (px)", "cmp_sigmas", cmp.DEFAULT_SIGMAS, c1, integer=False, name="sigma",
                     what="sigmas")
    windows = _values("Mean and median window sizes (px)", "cmp_windows", cmp.DEFAULT_WINDOWS, c2,
                      integer=True, name="filter_size", what="window sizes")
    if sigmas is None or windows is None:
        return
    rows = cmp.filter_grid(params, sigmas, windows)
    show_grid(image, rows, "Filter grid", region, params, "cmp_use_filter",
              notes={"none": "Without a filter there is no size to vary: one picture."})


def threshold_section(image, params: Params, region: Region) -> None:
    st.markdown("Every automatic method on the current filtered image "
                f"({params.describe()[0].split(': ', 1)[1]}). An automatic method picks the cutoff from each "
                "image's histogram, so the same settings work on the whole experiment.")
    filtered, filter_key = filtered_image(image, params)
    cells = cmp.threshold_cells(params)
    log = st.toggle("Log counts", value=True, key="cmp_log",
                    help="A log scale shows the nuclei's intensities next to the much taller background peak.")
    histogram = st.empty()  # drawn once every cutoff is known
    if params.threshold_method == "local":
        st.info("Your settings use a local threshold; these cells use one cutoff for the whole image.")
    row = cmp.Row("auto", "Automatic thresholds", "cutoff in image units", tuple(cells))
    (results,) = show_grid(image, [row], "Threshold grid", region, params, "cmp_use_threshold", show_cutoff=True)
    cutoffs = {c.label: r.threshold for c, r in zip(cells, results)}
    highlight = next((c.label for c in cells if c.params.threshold_method == params.threshold_method), None)
    if params.threshold_method == "manual":
        cutoffs["your cutoff"] = params.threshold_value
        highlight = "your cutoff"
    fig = histogram_figure(filtered, cutoffs, log_counts=log, highlight=highlight, height=320, cache_key=filter_key)
    histogram.plotly_chart(fig, key="cmp_histogram", config={"displayModeBar": False})


def split_section(image, params: Params, region: Region) -> None:
    st.markdown("Seeds for the watershed: with a small `min_distance` or `footprint` single nuclei get cut "
                "in pieces (over-split); with large ones touching nuclei stay merged. Pick the setting where "
                "the count stops changing quickly and the outlines follow the nuclei.")
    if params.split == "none" or params.seed_method != "peak_local_max":
        st.info("Your settings do not split with peak_local_max seeds; these cells do, and using one "
                "switches splitting to the watershed with peak_local_max seeds.")
    c1, c2, _ = st.columns([1, 1, 2])
    mds = _values("min_distance values (px)", "cmp_min_distances", cmp.DEFAULT_MIN_DISTANCES, c1,
                  integer=True, name="min_distance", what="min_distance values")
    fps = _values("Footprint values (px)", "cmp_footprints", cmp.DEFAULT_FOOTPRINTS, c2, integer=True,
                  name="footprint", what="footprint values")
    if mds is None or fps is None:
        return
    chart = st.empty()  # drawn once every count is known
    rows = cmp.split_grid(params, mds, fps)
    per_row = show_grid(image, rows, "Splitting sweep", region, params, "cmp_use")
    chart.plotly_chart(count_figure(mds, fps, per_row, params), key="cmp_counts", config={"displayModeBar": False})


LINE_COLORS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


def count_figure(mds, fps, per_row, params: Params) -> go.Figure:
    """Nuclei count against min_distance, a line per footprint; the settings in use circled in red."""
    fig = go.Figure()
    in_use = None
    for i, (fp, results) in enumerate(zip(fps, per_row)):
        fig.add_trace(go.Scatter(x=list(mds), y=[r.count for r in results], mode="lines+markers",
                                 name=f"footprint {fp}", line_color=LINE_COLORS[i % len(LINE_COLORS)],
                                 hovertemplate=f"min_distance %{{x}}<br>%{{y}} nuclei<extra>footprint {fp}</extra>"))
        for md, r in zip(mds, results):
            if (fp, md) == (params.footprint, params.min_distance):
                in_use = (md, r.count)
    if in_use and params.split == "watershed" and params.seed_method == "peak_local_max":
        fig.add_trace(go.Scatter(x=[in_use[0]], y=[in_use[1]], mode="markers", name="in use", hoverinfo="skip",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="#d62728", width=2.5))))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="min_distance (px)",
                      yaxis_title="nuclei", legend_title_text="", hovermode="closest")
    return fig


# --- region picker -------------------------------------------------------------------


def _restore_ui() -> None:
    for k, v in st.session_state.get(UI_STORE, {}).items():
        if k not in st.session_state:
            st.session_state[k] = v


def _save_ui() -> None:
    # merge: widgets of the tabs not drawn in this run keep their saved values
    store = st.session_state.setdefault(UI_STORE, {})
    store.update({k: st.session_state[k] for k in UI_KEYS if k in st.session_state})


def _clamped(key: str, default, ok) -> None:
    if key not in st.session_state or not ok(st.session_state[key]):
        st.session_state[key] = default


def region_picker(image) -> tuple[tuple[slice, slice], str]:
    h, w = image.plane.shape
    sizes = [s for s in CROP_SIZES if s < min(h, w)] + [min(h, w)]
    _clamped("cmp_view", "mask", lambda v: v in VIEWS)
    _clamped("cmp_size", 192 if 192 in sizes else sizes[len(sizes) // 2], lambda v: v in sizes)
    if st.session_state.get("cmp_region_of") != image.key:  # a new image opens on its busiest region
        cy, cx = caches().stages.get((image.key, "busiest", st.session_state["cmp_size"]),
                                     lambda: cmp.busiest_region(image.plane, st.session_state["cmp_size"]))
        st.session_state["cmp_cx"], st.session_state["cmp_cy"] = cx, cy
        st.session_state["cmp_region_of"] = image.key
    _clamped("cmp_cx", w // 2, lambda v: 0 <= v < w)
    _clamped("cmp_cy", h // 2, lambda v: 0 <= v < h)
    with st.sidebar:
        st.subheader("What the cells show")
        view = st.radio("Show", list(VIEWS), format_func=VIEWS.get, key="cmp_view", label_visibility="collapsed")
        st.caption(LEGEND[view])
        st.subheader("Region")
        size = st.select_slider("Region size (px)", options=sizes, key="cmp_size",
                                help="Side of the square every cell shows, at full resolution.")
        cx = st.slider("Centre x (px)", 0, w - 1, key="cmp_cx", disabled=size >= w)
        cy = st.slider("Centre y (px)", 0, h - 1, key="cmp_cy", disabled=size >= h)
        box = cmp.crop_box((h, w), (cy, cx), size)
        small, step = _overview_u8(image)
        st.image(cmp.overview_picture(small, box, step), output_format="PNG", width="stretch",
                 caption=f"Cyan square: x {box[1].start}–{box[1].stop}, y {box[0].start}–{box[0].stop}")
        st.caption("Every cell segments the whole image (automatic thresholds look at the whole "
                   "histogram); the region only chooses what you see.")
    return box, view


# --- page ------------------------------------------------------------------------------


def _plane_text(params: Params) -> str:
    """The plane the Segment page chose, for multi-dimensional files."""
    parts = []
    if params.channel is not None:
        parts.append(f"channel {params.channel}")
    if params.z is not None:
        parts.append("maximum projection" if params.z == "max" else f"z-slice {params.z}")
    if params.t is not None:
        parts.append(f"time point {params.t}")
    return f" ({', '.join(parts)})" if parts else ""


def main() -> None:
    st.title("Compare")
    st.write("Try filters, thresholds and seed settings side by side on the same region, "
             "then adopt the best with **Use these settings**: the Segment and Batch pages use it.")
    params = get_params()
    image = current_image(params)
    _restore_ui()
    box, view = region_picker(image)
    h, w = image.plane.shape
    st.caption(f"Image: {escape_markdown(image.source.name)}{_plane_text(params)} · {w} × {h} px. "
               f"Current settings: {'; '.join(params.describe())}.")
    _clamped("cmp_tab", TABS[0], lambda v: v in TABS)
    tabs = st.tabs(list(TABS), key="cmp_tab", on_change="rerun")
    _save_ui()
    region = Region(image, box, view)
    for tab, section in zip(tabs, (filter_section, threshold_section, split_section)):
        if tab.open:
            with tab:
                section(image, params, region)


run_page(main)
