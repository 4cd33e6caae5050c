"""Segment page: tune the pipeline on one image by eye."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages.common import (
    RERUN_THREADS,
    CurrentImage,
    ImageSource,
    caches,
    current_image,
    digest_of,
    format_value,
    get_params,
    get_source,
    guarded,
    histogram_figure,
    image_stats,
    label_of,
    params_sidebar,
    read_file,
    read_plane,
    remember_upload,
    run_page,
    sample_source,
    set_params,
    set_source,
)
from segmentation import display
from segmentation.display import (
    colorize_labels,
    downsample,
    downsample_factor,
    inner_boundaries,
    overlay_png,
    png_bytes,
    stretch,
)
from segmentation import cost, export
from segmentation.filters import BACKGROUNDS
from segmentation.export import csv_bytes, labels_tiff, mask_tiff, script_text
from segmentation.io import ImageReadError
from segmentation.batch import KEPT_WHEN_SUGGESTED
from segmentation.params import Params
from segmentation.suggest import suggest
from segmentation.safety import escape_markdown
from segmentation.stages import Result, Stages, measure_stages, run_stages
from segmentation.threshold import all_auto_thresholds

VIEW_SIDE = 560  # px per view sent to the browser (four side by side, ~280 px wide each)
INSPECT_SIDE = 192  # at most this many pixels a side in the Inspect view (each carries its values for hovering)
POSITIVE_KEY = "w_positive::"  # + channel name: the cutoff widgets of the positive calls


@dataclass(frozen=True)
class View:
    """What only the screen needs: never part of the settings, never in a download.

    ``scale`` is 2 while tuning on a 2× downsampled working copy of a large
    image; ``crop`` the region shown (rows y0:y1, columns x0:x1 of the plane
    worked on); ``contrast`` the display percentiles.
    """

    scale: int = 1
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    contrast: tuple[float, float] = (0.1, 99.9)


# --- callbacks: run before the script, so they may change the sidebar's state ---------


def _upload_key() -> str:
    # a new key empties the uploader (e.g. after "Use sample image")
    return f"upload_{st.session_state.get('upload_generation', 0)}"


def _forget_view() -> None:
    """A new image starts unzoomed."""
    for key in ("zoom", "zoom_x", "zoom_y"):
        st.session_state.pop(key, None)


def _on_upload() -> None:
    file = st.session_state.get(_upload_key())
    st.session_state.pop("upload_error", None)
    if file is None:
        return
    data = file.getvalue()
    source = ImageSource(file.name, data, digest_of(data))
    try:
        _, info = read_file(source)
        params = _plane_defaults(get_params(), info)
        read_plane(source, params.channel, params.z, params.t)  # constant? NaN?
    except (ImageReadError, MemoryError) as exc:
        st.session_state["upload_error"] = str(exc) if isinstance(exc, ImageReadError) else (
            f"Cannot open '{file.name}': it is too large for the memory of this server.")
        return
    set_source(source)
    remember_upload(source)
    set_params(params)
    _forget_view()


def _plane_defaults(params: Params, info) -> Params:
    """Plane choice and pixel size suited to a newly opened file."""
    return params.replace(
        channel=0 if info.n_c > 1 else None,
        z="max" if info.n_z > 1 else None,
        t=0 if info.n_t > 1 else None,
        pixel_size_um=info.pixel_size_um,
    )


def _use_sample() -> None:
    set_source(sample_source())
    _forget_view()
    st.session_state["upload_generation"] = st.session_state.get("upload_generation", 0) + 1
    st.session_state.pop("upload_error", None)
    set_params(_plane_defaults(get_params(), read_file(sample_source())[1]))


def _suggest() -> None:
    """Settings measured from the image on screen; the previous ones are kept for Undo."""
    before = get_params()
    plane = read_plane(get_source(), before.channel, before.z, before.t)
    suggestion = suggest(plane)
    kept = {k: getattr(before, k) for k in KEPT_WHEN_SUGGESTED}
    params = suggestion.params.replace(**kept)
    set_params(params)
    st.session_state["suggestion"] = {"image": get_source().digest, "params": params, "before": before,
                                      "reasons": suggestion.reasons, "measured": suggestion.measured}


def _undo_suggestion() -> None:
    suggestion = st.session_state.pop("suggestion", None)
    if suggestion is not None:
        set_params(suggestion["before"])


def _pick(label: int | None) -> None:
    st.session_state["picked"] = label


def _keep_unseeded() -> None:
    set_params(get_params().replace(keep_unseeded=True))


def _reset() -> None:
    p = get_params()
    set_params(Params(channel=p.channel, z=p.z, t=p.t, pixel_size_um=p.pixel_size_um))


def _on_settings_upload() -> None:
    file = st.session_state.get("settings_upload")
    st.session_state.pop("settings_error", None)
    if file is None:
        return
    try:
        set_params(Params.from_json(file.getvalue()))
    except ValueError as exc:
        st.session_state["settings_error"] = f"Cannot use '{file.name}': {exc}"


# --- pictures (cached per stage, so a slider only re-encodes what it changed) ----------


def _region(img: np.ndarray, view: View, side: int = VIEW_SIDE) -> np.ndarray:
    y0, y1, x0, x1 = view.crop
    region = img[y0:y1, x0:x1]
    return downsample(region, downsample_factor(region.shape, side))


def _png_gray(img: np.ndarray, view: View) -> bytes:
    return png_bytes(stretch(_region(img, view), *view.contrast))


def _png_mask(mask: np.ndarray, view: View) -> bytes:
    return png_bytes(_region(mask, view).astype(np.uint8) * 255)


def _png_labels(labels: np.ndarray, view: View) -> bytes:
    return png_bytes(colorize_labels(_region(labels, view)))


def _png_overlay(image, labels, removed, view: View, side: int) -> bytes:
    return overlay_png(stretch(_region(image, view, side), *view.contrast), _region(labels, view, side),
                       _region(removed, view, side))


def _png_distance(distance, seeds, view: View, side: int) -> bytes:
    y0, y1, x0, x1 = view.crop
    step = downsample_factor((y1 - y0, x1 - x0), side)
    inside = (seeds[:, 0] >= y0) & (seeds[:, 0] < y1) & (seeds[:, 1] >= x0) & (seeds[:, 1] < x1)
    dots = (seeds[inside] - [y0, x0]) // step
    dist = _region(distance, view, side)
    # dots of 5x5 px where the picture is at full resolution, 3x3 where it is shrunk (nuclei are smaller there)
    return overlay_png(stretch(dist, 0, 99.9), np.zeros(dist.shape, np.uint8), seeds=dots,
                       seed_radius=2 if step == 1 else 1)


# --- page ------------------------------------------------------------------------------


def image_section() -> None:
    """The image to work on, at the top of the sidebar."""
    sb = st.sidebar
    sb.file_uploader(
        "Open an image (TIFF, PNG or JPEG; 8/16/32-bit, multi-channel and z-stacks welcome)",
        type=["tif", "tiff", "png", "jpg", "jpeg"], key=_upload_key(), on_change=guarded(_on_upload),
    )
    sb.button("Suggest settings for this image", on_click=guarded(_suggest), type="primary", width="stretch",
              icon=":material/auto_fix_high:",
              help="Measure the nuclei's size, the background, the histogram and the noise of this image, and set "
                   "every step from them. The reasons show above the result; Undo goes back.")
    sb.button("Use the sample image", on_click=guarded(_use_sample), disabled=get_source().is_sample, width="stretch",
              help="Go back to the built-in sample of Hoechst-stained U2OS nuclei.")
    sb.button("Reset the settings", on_click=guarded(_reset), width="stretch",
              help="Back to the course's recipe (the image and its plane stay).")
    if "upload_error" in st.session_state:
        st.error(escape_markdown(st.session_state["upload_error"]) + " The image shown is unchanged.", icon="⚠️")


def zoom_controls(shape: tuple[int, int], scale: int) -> View:
    """The region shown in all views (a crop of the plane worked on) and the contrast percentiles."""
    h, w = shape
    c1, c2, c3, c4 = st.columns([1.2, 1, 1, 1.4])
    zoom = c1.select_slider("Zoom (all views)", options=[1, 2, 4, 8, 16], key="zoom",
                            format_func=lambda z: f"{z}×", help="Magnify the same region in every view.")
    cx = c2.slider("Centre x (px)", 0, w - 1, w // 2, key="zoom_x", disabled=zoom == 1)
    cy = c3.slider("Centre y (px)", 0, h - 1, h // 2, key="zoom_y", disabled=zoom == 1)
    contrast = c4.slider("Contrast (percentiles)", 0.0, 100.0, (0.1, 99.9), 0.1, key="contrast",
                         help="Display only: intensities below the first percentile show black, above the second white.")
    ch, cw = max(8, h // zoom), max(8, w // zoom)
    y0 = int(min(max(cy - ch // 2, 0), h - ch))
    x0 = int(min(max(cx - cw // 2, 0), w - cw))
    return View(scale, (y0, y0 + ch, x0, x0 + cw), tuple(contrast))


def working_plane(current: CurrentImage) -> tuple[np.ndarray, str, int]:
    """The plane to tune on, its cache key and its scale: a 2× downsampled copy of a very large image if wanted."""
    plane = current.plane
    if plane.size <= display.WORKING_COPY_ABOVE:
        return plane, current.key, 1
    st.warning(f"This image is large ({plane.shape[1]}×{plane.shape[0]} px): every change takes seconds.")
    if not st.checkbox("Work on a 2× downsampled copy while tuning (downloads and the Batch page use the full image)",
                       value=True, key="working_copy"):
        return plane, current.key, 1
    half = caches().files.get((current.key, "half"), lambda: np.ascontiguousarray(plane[::2, ::2]))
    return half, current.key + ":half", 2


def other_channels(current: CurrentImage, params: Params, scale: int) -> dict[str, np.ndarray]:
    """The file's other channels as planes like the one segmented (name -> plane), cached for all sessions."""
    info = current.info
    if info.n_c < 2:
        return {}

    def planes() -> dict[str, np.ndarray]:
        data, _ = read_file(current.source)
        names = export.file_channel_names(current.source.data, info)
        out = export.channel_planes(data, info, params, names)
        return {name: np.ascontiguousarray(plane[::scale, ::scale]) for name, plane in out.items()}

    return caches().files.get((current.key, "other channels", scale), planes)


def chosen_positive(values: dict, names: list[str]) -> dict[str, float]:
    """The positive calls set in the Channels section (its widgets hold them between runs)."""
    chosen = dict(values.get("positive") or {})
    for name in names:
        key = POSITIVE_KEY + name
        if st.session_state.get(key + "::on") is False:
            chosen.pop(name, None)
        elif st.session_state.get(key + "::on") and key in st.session_state:
            chosen[name] = float(st.session_state[key])
    return chosen


def main() -> None:
    st.title("Segment nuclei")
    image_section()
    if "settings_error" in st.session_state:
        st.error(escape_markdown(st.session_state["settings_error"]), icon="⚠️")

    params = get_params()
    src = get_source()
    _, info = read_file(src)

    # The sidebar: a widget per setting, then the new settings (or the old ones if invalid).
    values = params_sidebar(params, info, st.session_state.get("last_cutoff"),
                            st.session_state.get("value_range", (0.0, 1.0)))
    if info.n_c > 1:
        values["positive"] = chosen_positive(values, export.channel_names(info.n_c))
    try:
        params = Params.from_dict(values)
        st.session_state["params"] = params
    except ValueError as exc:
        st.sidebar.error(str(exc))

    try:
        current = current_image(params)
    except ImageReadError as exc:
        # e.g. restored settings ask for a channel this file does not have
        params = params.replace(**{k: getattr(_plane_defaults(params, info), k) for k in ("channel", "z", "t")})
        st.warning(f"{exc} Showing the default plane instead.", icon="⚠️")
        current = current_image(params)

    plane, key, scale = working_plane(current)
    stats = image_stats(key, plane)
    st.caption(f"**{escape_markdown(src.name)}** · {info.describe()} · plane {plane.shape[1]}×{plane.shape[0]} px · "
               f"intensity {format_value(stats['min'])} – {format_value(stats['max'])} · filter → threshold → "
               "refine → split → measure in the sidebar, as in the course")
    for note in info.notes:
        st.info(escape_markdown(note), icon=":material/info:")

    seconds = cost.estimated_seconds(plane.shape, params, plane.dtype)
    slow = f" (the filters take about {seconds:.0f} s on this image)" if seconds >= cost.SLOW_SECONDS else ""
    with st.spinner(f"Segmenting{slow}…", show_time=True):
        stages = run_stages(plane, params, image_key=key, cache=caches().stages,
                            object_cache=_object_cache("split", key), threads=RERUN_THREADS)
    fstats = image_stats(stages.keys["filter"], stages.filtered)
    value_range = (fstats["min"], fstats["max"])
    if st.session_state.get("value_range") != value_range and params.threshold_method == "manual":
        st.session_state["value_range"] = value_range
        st.rerun()  # the manual slider's range follows the filtered image
    st.session_state["value_range"] = value_range
    if params.threshold_method != "manual":
        st.session_state["last_cutoff"] = stages.thresholded.value

    # The first screen: the numbers, the four views and the histogram; the measurements fill in below.
    suggestion_note(params)
    slow_filter_note(plane, params, seconds)
    notes = st.container()
    area_slot = metrics(stages, params, key)
    view = zoom_controls(plane.shape, scale)
    views(stages, view)
    histogram(stages, params, key)
    pictures(stages, view)
    channels = other_channels(current, params, scale)
    result = measure_stages(stages, params, cache=caches().stages, pixel_scale=scale, channels=channels)
    with notes:
        for note in result.warnings:
            if getattr(note, "kind", "") == "unseeded":
                left, right = st.columns([4, 1], vertical_alignment="center")
                left.info(note.split(". Tick")[0] + ".", icon=":material/info:")
                right.button("Keep them", on_click=guarded(_keep_unseeded), key="keep_unseeded_now",
                             help="Keep each object without a seed as one object (Split → Advanced: "
                                  "'Keep objects without a seed').")
            else:
                st.warning(note, icon="⚠️")
    area = result.summary.get("median_area_um2") or result.summary.get("median_area_px2")
    unit = "µm²" if result.summary.get("median_area_um2") else "px²"
    area_slot.metric(f"Median area ({unit})", "–" if area is None else (f"{area:,.0f}" if area >= 100 else f"{area:.3g}"))
    inspect(stages, result, view)
    measurements(result)
    if channels:
        channels_section(result, params, list(channels))
    downloads(result, params, current, scale)


def slow_filter_note(plane: np.ndarray, params: Params, seconds: float) -> None:
    """Say when the filters are slow here, with a one-click faster equivalent where there is one."""
    if seconds < cost.SLOW_SECONDS:
        return
    faster = cost.faster_equivalent(plane.shape, params, plane.dtype)
    text = f"The filters take about {seconds:.0f} s on this {plane.shape[1]}×{plane.shape[0]} image, at each change."
    if faster is None:
        st.info(text, icon=":material/hourglass:")
        return
    fast, fast_seconds = faster
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.info(f"{text} **{BACKGROUNDS['rolling_ball_fast'].label}** takes about {fast_seconds:.1f} s: "
              "masks agree on more than 99.5 % of pixels.", icon=":material/hourglass:")
    right.button("Use it", on_click=guarded(set_params), args=(fast,), key="use_faster",
                 help="Switch Background to the shrunk rolling ball, the way Fiji speeds it up. "
                      "Switch back in the sidebar (Filter → Background) at any time.")


def suggestion_note(params: Params) -> None:
    """What Suggest measured and set, with Undo, while its settings are the ones in use on its image."""
    suggestion = st.session_state.get("suggestion")
    if not suggestion or suggestion["image"] != get_source().digest:
        return
    changed = params != suggestion["params"]
    left, right = st.columns([5, 1], vertical_alignment="top")
    title = "**Suggested from this image**" + (" (you have changed some settings since)" if changed else "") + ":"
    left.success(title + "\n" + "\n".join(f"- {reason}" for reason in suggestion["reasons"]),
                 icon=":material/auto_fix_high:")
    right.button("Undo", on_click=guarded(_undo_suggestion), key="undo_suggestion", width="stretch",
                 help="Back to the settings from before Suggest.")


def _object_cache(kind: str, image_key: str) -> dict:
    """This session's per-object results on this image (one image at a time)."""
    per_session = st.session_state.setdefault("object_caches", {})
    if per_session.get("image") != image_key:
        per_session.clear()
        per_session["image"] = image_key
    return per_session.setdefault(kind, {})


def metrics(stages: Stages, params: Params, image_key: str):
    """Count, cutoff, median area and foreground in one row; returns the slot the median area is written into."""
    c = st.columns([0.8, 1.25, 1.2, 1], vertical_alignment="bottom")
    c[0].metric("Objects", f"{stages.count}")
    method = label_of("threshold_method", params.threshold_method).split(" (")[0]  # "Local", not "Local (adaptive)"
    c[1].metric(f"Threshold ({method})", format_value(stages.thresholded.value),
                help="In the image's own intensity units." + (" Median of the local cutoffs." if params.threshold_method == "local" else ""))
    area_slot = c[2].empty()
    area_slot.metric("Median area", "…")
    c[3].metric("Foreground", f"{np.count_nonzero(stages.labels) / stages.labels.size:.1%}",
                help="Share of the image inside a kept object (after every refinement and object filter).")
    saturation_note(stages.image, image_key)
    return area_slot


def saturation_note(image: np.ndarray, image_key: str) -> None:
    """A caption when pixels pile up at the maximum (saturated detector), and only then."""
    stats = image_stats(image_key, image)
    if not stats["dtype_max"] and stats["at_max"] <= 0.001:
        return  # a few pixels at the brightest value: nothing to say
    at_max = round(stats["at_max"] * image.size)
    pixels = f"{at_max:,} pixels ({stats['at_max']:.2%}) sit" if at_max != 1 else f"1 pixel ({stats['at_max']:.2%}) sits"
    note = f"{pixels} at the maximum value {format_value(stats['max'])}"
    if stats["dtype_max"]:
        note += f" (the {image.dtype} ceiling)"
    st.caption(note + (": check for saturation." if stats["at_max"] > 0.001 else "."))


def histogram(stages: Stages, params: Params, image_key: str) -> None:
    left, right = st.columns([2.6, 1], vertical_alignment="center")
    log = right.toggle("Log counts", value=True, key="hist_log",
                       help="A log scale shows the nuclei's intensities next to the much taller background peak.")
    show_all = right.toggle("All methods", key="hist_all", help="Draw the cutoff of every automatic method.")
    name = label_of("threshold_method", params.threshold_method)
    cutoffs: dict[str, float | None] = {name: stages.thresholded.value}
    if show_all:
        others = caches().stages.get((*stages.keys["filter"], "all cutoffs"), lambda: all_auto_thresholds(stages.filtered))
        cutoffs.update({label_of("threshold_method", m): v for m, v in others.items()
                        if label_of("threshold_method", m) != name})
    key = (*stages.keys["filter"], "histogram figure", tuple(cutoffs.items()), log, name)
    # a Figure, not a dict: Streamlit validates a dict anew on every run (15-30 ms)
    fig = caches().pictures.get(key, lambda: histogram_figure(
        stages.filtered, cutoffs, log_counts=log, highlight=name, height=190, width_px=900,
        cache_key=stages.keys["filter"]))
    left.plotly_chart(fig, key="histogram", config={"displayModeBar": False})


def _picture(box, png: bytes, caption: str) -> None:
    # PNG as it is: with "auto", Streamlit decodes and re-encodes every picture as JPEG on every rerun
    box.image(png, caption=caption, width="stretch", output_format="PNG")


def views(stages: Stages, view: View) -> None:
    """Raw, filtered, mask and labels side by side (drawn on two threads, cached per stage)."""
    k, pictures = stages.keys, caches().pictures
    region = (view.crop, view.contrast)
    jobs = {
        "raw": pictures.submit((k["image"], "raw", *region), _png_gray, stages.image, view),
        "filtered": pictures.submit((k["filter"], "filtered", *region), _png_gray, stages.filtered, view),
        "mask": pictures.submit((k["refine"], "mask", view.crop), _png_mask, stages.mask, view),
        "labels": pictures.submit((k["objects"], "labels", view.crop), _png_labels, stages.labels, view),
    }
    png = {name: job.result() for name, job in jobs.items()}
    cols = st.columns(4)
    _picture(cols[0], png["raw"], "Raw")
    _picture(cols[1], png["filtered"], "Filtered")
    _picture(cols[2], png["mask"], "Mask (after refinement)")
    _picture(cols[3], png["labels"], f"Labels ({stages.count} objects)")


def pictures(stages: Stages, view: View) -> None:
    """The outlines on the raw image and the distance map with its seeds."""
    k, split, pictures = stages.keys, stages.split, caches().pictures
    region = (view.crop, view.contrast)
    overlay = pictures.submit((k["objects"], k["threshold"], "overlay", *region), _png_overlay, stages.image,
                              stages.labels, stages.removed, view, 1000)
    distance = None
    if split.distance is not None:
        distance = pictures.submit((k["split"], "distance", view.crop), _png_distance, split.distance, split.seeds,
                                   view, 1000)
    left, right = st.columns(2)
    _picture(left, overlay.result(), "Outlines on raw: yellow = objects, magenta = removed (too small/large, "
                                     "border, no seed)")
    if distance is not None:
        _picture(right, distance.result(), f"Distance map with the {len(split.seeds)} watershed seeds (red)")
    else:
        right.info("Splitting is off: no distance map. Choose 'Watershed' in the sidebar to split touching nuclei.")


_FIRST = ["label", "area_um2", "area_px2", "mean_intensity", "integrated_intensity", "circularity",
          "eccentricity", "solidity", "equivalent_diameter_um", "equivalent_diameter_px"]


def _column_order(columns) -> list[str]:
    """The columns a biologist looks at first, then the rest as in the CSV."""
    first = [c for c in _FIRST if c in columns]
    return first + [c for c in columns if c not in first]


def _column_title(column: str) -> str:
    """'area_um2' -> 'Area (µm²)': the CSV column name in words."""
    units = {"_px2": " (px²)", "_um2": " (µm²)", "_px": " (px)", "_um": " (µm)"}
    suffix = next((s for s in units if column.endswith(s)), "")
    words = column[: len(column) - len(suffix)].replace("_", " ")
    return words[:1].upper() + words[1:] + units.get(suffix, "")


def _inspect_figure(stages: Stages, result: Result, view: View, picked: int | None) -> go.Figure:
    """The zoomed region as a plotly figure: hover a pixel for its values, click a nucleus's dot to pick it."""
    y0, y1, x0, x1 = view.crop
    step = downsample_factor((y1 - y0, x1 - x0), INSPECT_SIDE)
    rows, cols = np.arange(y0, y1, step), np.arange(x0, x1, step)
    labels = stages.labels[np.ix_(rows, cols)]
    raw = stages.image[np.ix_(rows, cols)].astype(np.float32)
    table = result.measurements
    area_col = "area_um2" if "area_um2" in table else "area_px2"
    areas = np.zeros(int(stages.labels.max()) + 1, np.float32)
    areas[table["label"].to_numpy(int)] = table[area_col].to_numpy(np.float32)
    custom = np.stack([stages.filtered[np.ix_(rows, cols)].astype(np.float32), labels.astype(np.float32),
                       areas[labels]], axis=-1)
    lo, hi = np.percentile(stages.image[y0:y1, x0:x1], view.contrast)
    unit = "µm²" if area_col == "area_um2" else "px²"
    fig = go.Figure(go.Heatmap(
        z=raw, x=cols, y=rows, customdata=custom, colorscale="gray", zmin=float(lo), zmax=float(max(hi, lo + 1)),
        showscale=False,
        hovertemplate="x %{x}, y %{y}<br>raw %{z:.6g}<br>filtered %{customdata[0]:.6g}<br>"
                      f"nucleus %{{customdata[1]:.0f}} (area %{{customdata[2]:.4g}} {unit})<extra></extra>"))
    edge = np.where(inner_boundaries(labels), 1.0, np.nan)
    fig.add_trace(go.Heatmap(z=edge, x=cols, y=rows, colorscale=[[0, "#ffdc00"], [1, "#ffdc00"]], showscale=False,
                             hoverinfo="skip"))
    if picked:
        mine = np.where(inner_boundaries((labels == picked).view(np.uint8)), 1.0, np.nan)
        fig.add_trace(go.Heatmap(z=mine, x=cols, y=rows, colorscale=[[0, "#ff2020"], [1, "#ff2020"]],
                                 showscale=False, hoverinfo="skip"))
    inside = ((table["centroid_y_px"] >= y0) & (table["centroid_y_px"] < y1) & (table["centroid_x_px"] >= x0)
              & (table["centroid_x_px"] < x1))
    dots = table[inside]
    fig.add_trace(go.Scatter(
        x=dots["centroid_x_px"], y=dots["centroid_y_px"], mode="markers", customdata=dots["label"],
        marker=dict(size=9, color=np.where(dots["label"] == picked, "#ff2020", "rgba(0, 200, 255, 0.7)"),
                    line=dict(width=1, color="black")),
        hovertemplate="nucleus %{customdata}: click to pick it<extra></extra>"))
    fig.update_layout(height=420, margin=dict(l=0, r=0, t=0, b=0), showlegend=False, dragmode="pan",
                      xaxis=dict(visible=False, constrain="domain"),
                      yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
    return fig


def inspect(stages: Stages, result: Result, view: View) -> None:
    """Hover to read values; click a nucleus's dot (or a table row) to pick it."""
    st.subheader("Inspect")
    if not st.toggle("Show pixel values and pick nuclei", key="inspect_on",
                     help="An interactive view of the zoomed region: hover a pixel for its raw and filtered values "
                          "and its nucleus; click a nucleus's dot to mark its row in the table. Off, the page is "
                          "faster."):
        return
    with st.container():
        st.caption("The zoomed region (set by Zoom above). Hover a pixel for its raw and filtered values and its "
                   "nucleus; click a nucleus's blue dot to pick it: its row is marked in the table below.")
        picked = st.session_state.get("picked")
        key = (stages.keys["objects"], view.crop, view.contrast, picked, "inspect")
        fig = caches().pictures.get(key, lambda: _inspect_figure(stages, result, view, picked))
        event = st.plotly_chart(fig, key="inspect_chart", on_select="rerun", selection_mode="points",
                                config={"displayModeBar": False, "scrollZoom": True})
        points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
            getattr(getattr(event, "selection", None), "points", [])
        labels = [p.get("customdata") for p in points if isinstance(p.get("customdata"), (int, float))]
        if labels and int(labels[0]) != picked:
            st.session_state["picked"] = int(labels[0])
            st.rerun()


def measurements(result: Result) -> None:
    st.subheader("Measurements")
    st.caption("One row per nucleus; intensities in the raw image's units. Pick a row to mark its nucleus in "
               "Inspect. The CSV download has the same columns under their short names (area_px2, …).")
    table = result.measurements
    if not len(table):
        st.info("No objects: nothing to measure.")
        return
    picked = st.session_state.get("picked")
    left, right = st.columns([3, 2])
    shown = table.style.apply(lambda row: ["background-color: rgba(255, 32, 32, 0.18)" if row["label"] == picked
                                           else ""] * len(row), axis=1) if picked in set(table["label"]) else table
    event = left.dataframe(shown, height=320, hide_index=True, column_order=_column_order(table.columns),
                           column_config={c: st.column_config.NumberColumn(_column_title(c), format="%.6g")
                                          for c in table.columns if c != "label" and table[c].dtype.kind in "fiu"},
                           on_select="rerun", selection_mode="single-row", key="measure_table")
    rows = event.selection.rows if event is not None else []
    if rows:
        label = int(table["label"].iloc[rows[0]])
        if label != picked:
            st.session_state["picked"] = label
            st.rerun()
    if picked in set(table["label"]):
        left.caption(f"Nucleus {picked} is marked in red in Inspect.")
    numeric = [c for c in table.columns if c != "label" and pd.api.types.is_numeric_dtype(table[c])
               and table[c].dtype != bool]
    default = "area_um2" if "area_um2" in numeric else "area_px2"
    if st.session_state.get("measure_hist") not in numeric or (
            st.session_state.get("measure_hist") == "area_px2" and "area_um2" in numeric):
        st.session_state["measure_hist"] = default  # follows a pixel size set after the first look
    col = right.selectbox("Histogram of", numeric, key="measure_hist", format_func=_column_title)
    fig = go.Figure(go.Histogram(x=table[col], nbinsx=30, marker_color="#6c8ebf"))
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=_column_title(col),
                      yaxis_title="objects", bargap=0.05)
    right.plotly_chart(fig, key="measure_histogram", config={"displayModeBar": False})


def channels_section(result: Result, params: Params, names: list[str]) -> None:
    """Other channels measured in the same nuclei: a histogram of per-nucleus means, and a positive call."""
    st.subheader("Other channels")
    st.caption("Every other channel of the file is measured in the same nuclei (mean, integrated, max, median; "
               "in a ring around each nucleus too when 'Cytoplasm ring' is set under 5 · Measure). A nucleus is "
               "positive when its mean is above the cutoff.")
    table = result.measurements
    current = dict(params.positive)
    for column, name in zip(st.columns(min(len(names), 3)) * (len(names) // 3 + 1), names):
        means = table.get(f"{name}_mean")
        if means is None:
            continue
        with column:
            key = POSITIVE_KEY + name
            on = st.toggle(f"Call {name}-positive nuclei", value=name in current, key=key + "::on")
            cutoff = current.get(name)
            if on:
                if key not in st.session_state:
                    st.session_state[key] = float(cutoff if cutoff is not None else
                                                  (np.median(means) if len(means) else 0.0))
                cutoff = st.number_input(f"{name}: positive above (mean intensity)", key=key, format="%.6g")
            fig = histogram_figure(means.to_numpy(float), {"cutoff": cutoff} if on else {}, log_counts=False,
                                   highlight="cutoff", bins=min(40, max(5, len(means) // 3)), height=220,
                                   width_px=360)
            fig.update_layout(xaxis_title=f"{name}: mean per nucleus", yaxis_title="nuclei")
            st.plotly_chart(fig, key=f"channel_hist::{name}", config={"displayModeBar": False})
            if on and f"{name}_positive" in table:
                share = result.summary.get(f"{name}_percent_positive")
                st.metric(f"{name}-positive", "–" if share is None else f"{share:.1f}%",
                          help=f"{int(table[f'{name}_positive'].sum())} of {len(table)} nuclei")


def full_result(current: CurrentImage, params: Params) -> Result:
    """`params` on the whole plane, at full resolution (cached): what downloads of a working copy hold."""
    stages = run_stages(current.plane, params, image_key=current.key, cache=caches().stages, threads=RERUN_THREADS)
    return measure_stages(stages, params, cache=caches().stages, channels=other_channels(current, params, 1))


def downloads(result: Result, params: Params, current: CurrentImage, scale: int) -> None:
    """Every download is built from the shared settings `params`, never from what only the screen uses:
    on a working copy (`scale` 2) the image downloads are computed at full resolution when clicked."""

    def full() -> Result:
        return result if scale == 1 else full_result(current, params)

    size = params.pixel_size_um
    stem = current.source.name.rsplit(".", 1)[0].split(" ")[0] or "image"
    st.subheader("Download")
    if scale != 1:
        st.caption("The image downloads are made from the full-resolution image when you click (a few seconds).")
    items = [
        ("Measurements CSV", lambda: csv_bytes(full().measurements), f"{stem}_measurements.csv", "text/csv", None),
        ("Labels TIFF", lambda: labels_tiff(full().labels, size), f"{stem}_labels.tif", "image/tiff",
         "uint32: 0 = background, 1..N = one nucleus each; calibrated when the pixel size is known."),
        ("Mask TIFF", lambda: mask_tiff(full().labels > 0, size), f"{stem}_mask.tif", "image/tiff", None),
        ("ImageJ ROIs", lambda: export.roi_zip(full().labels), f"{stem}_RoiSet.zip", "application/zip",
         "RoiSet.zip for Fiji's ROI Manager: one ROI per nucleus, named by its label."),
        ("Overlay PNG", lambda: export.overlay_png(full()), f"{stem}_overlay.png", "image/png", None),
        ("Settings JSON", params.to_json(), "settings.json", "application/json",
         "Load it here or on the Batch page, or give it to the command line."),
        ("Python script", script_text(params), "segment.py", "text/x-python",
         "A standalone script that reproduces these settings with plain scikit-image calls."),
    ]
    for start in range(0, len(items), 4):
        cols = st.columns(4)
        for col, (label, data, name, mime, help_text) in zip(cols, items[start:start + 4]):
            col.download_button(label, data, name, mime, on_click="ignore", help=help_text, width="stretch")
    st.file_uploader("Restore settings from a settings JSON", type=["json"], key="settings_upload",
                     on_change=guarded(_on_settings_upload), max_upload_size=1)


run_page(main)
