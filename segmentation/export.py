"""Write one image's outputs, the results zip's layout, and a standalone script that reproduces the run.

File formats follow the course: labels as uint32 TIFF, masks as 0/255 uint8
TIFF (both carrying the pixel size when it is known, as Fiji reads it), an
ImageJ ROI set per image, an overlay PNG of the label outlines on the
contrast-stretched raw image, and CSV tables.  :data:`ZIP_LAYOUT` is the one
description of the results zip: the writer, the zip's README.txt, the Batch
page and the project README all come from it.

Columns of other channels are named by :func:`channel_names`, the one rule for
the app, the batch and the exported script.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from . import display
from . import io as image_io
from . import measure, safety
from .display import stretch
from .filters import BACKGROUNDS, FILTERS
from .io import ImageInfo, select_plane
from .params import Params
from .rois import roi_zip
from .safety import csv_safe
from .split import SEED_METHODS
from .stages import Result
from .threshold import THRESHOLD_METHODS

__all__ = [
    "ZIP_LAYOUT",
    "ZipEntry",
    "zip_path",
    "layout_markdown",
    "layout_text",
    "labels_tiff",
    "mask_tiff",
    "roi_zip",
    "overlay_png",
    "csv_bytes",
    "image_outputs",
    "channel_names",
    "tiff_channel_names",
    "file_channel_names",
    "channel_planes",
    "SCRIPT_DEPENDENCIES",
    "script_text",
]


@dataclass(frozen=True)
class ZipEntry:
    """One kind of file in the results zip: where it goes and what it is."""

    pattern: str  # path inside the zip; "{name}" is the image's output name, e.g. "exp1/well_A1/img"
    what: str

    def path(self, name: str | None = None) -> str:
        return self.pattern.format(name=name) if "{name}" in self.pattern else self.pattern


ZIP_LAYOUT: dict[str, ZipEntry] = {
    "labels": ZipEntry("labels/{name}.tif", "label image, uint32: 0 = background, 1..N = one nucleus each; "
                       "carries the pixel size when known (Fiji shows µm)"),
    "masks": ZipEntry("masks/{name}.tif", "binary mask, uint8: 0 = background, 255 = nucleus; calibrated as the "
                      "labels"),
    "rois": ZipEntry("rois/{name}.zip", "ImageJ ROI set (RoiSet.zip) for Fiji's ROI Manager: one ROI per nucleus "
                     "along its pixel edges (holes left out), named by its label as in the measurements"),
    "overlays": ZipEntry("overlays/{name}.png", "outlines of the nuclei (yellow) on the contrast-stretched "
                         "image; objects removed (too small or large, on the border, without a seed) in magenta"),
    "measurements": ZipEntry("measurements/{name}.csv", "one row per nucleus: area, centroid, intensities (raw "
                             "image units), shape; _px = pixels, _um = micrometres (when the pixel size is known); "
                             "`<channel>_mean`, ... for each other channel of the image"),
    "all_measurements": ZipEntry("measurements.csv", "all nuclei of all images, with an `image` column and the "
                                 "condition columns"),
    "conditions": ZipEntry("conditions.csv", "one row per condition (first sub-folder, or the groups of a file-name "
                           "pattern): images, nuclei per image, nucleus area, % positive per channel (only when "
                           "the images are in more than one condition)"),
    "summary": ZipEntry("summary.csv", "one row per input file: its condition (sub-folder or file-name pattern), "
                        "status (ok / failed / skipped / not run), threshold used (raw intensity units), number of "
                        "nuclei, mean and median area, ..."),
    "errors": ZipEntry("errors.csv", "file and reason, for each input that failed (only when some did)"),
    "image_settings": ZipEntry("settings/{name}.json", "each image's own settings, when they were suggested for "
                               "each image (Batch: 'Suggest for each image'; command line: --settings auto)"),
    "settings": ZipEntry("settings.json", "the settings used: load it in the app to reproduce or adjust the run"),
    "script": ZipEntry("segment.py", "standalone script reproducing the segmentation and measurements with plain "
                       "scikit-image calls: `uv run segment.py INPUT_FOLDER OUTPUT_FOLDER` installs what it needs"),
    "readme": ZipEntry("README.txt", "what each file is, and the versions that made it"),
}


def zip_path(kind: str, name: str | None = None) -> str:
    """Where a file of `kind` (a key of :data:`ZIP_LAYOUT`) goes in the results zip.

    >>> zip_path("labels", "exp1/img"), zip_path("summary")
    ('labels/exp1/img.tif', 'summary.csv')
    """
    return ZIP_LAYOUT[kind].path(name)


def layout_markdown() -> str:
    """The zip's layout as a Markdown table (the README's and the Batch page's)."""
    rows = [f"| `{e.pattern.replace('{name}', '<name>')}` | {e.what} |" for e in ZIP_LAYOUT.values()]
    return "\n".join(["| path | what |", "| --- | --- |", *rows])


def layout_text() -> str:
    """The zip's layout as plain text (the zip's README.txt)."""
    width = max(len(e.pattern) for e in ZIP_LAYOUT.values()) + 2
    return "\n".join(f"{e.pattern.replace('{name}', '<name>'):<{width}}{e.what.replace('`', '')}"
                     for e in ZIP_LAYOUT.values())


def labels_tiff(labels: np.ndarray, pixel_size_um: float | None = None) -> bytes:
    """uint32 label TIFF (zlib-compressed; opens in Fiji, napari, tifffile).

    With `pixel_size_um`, the file carries the pixel size as ImageJ writes
    it (see :func:`_calibration`): Fiji opens it as a calibrated 32-bit image
    in µm, the napari-tiff reader takes the layer's scale from it (napari's
    built-in imageio reader ignores any calibration), and this app reads the
    pixel size back.
    """
    labels = np.asarray(labels, dtype=np.uint32)
    buf = io.BytesIO()
    tifffile.imwrite(buf, labels, compression="zlib", **_calibration(labels.shape, pixel_size_um))
    return buf.getvalue()


def mask_tiff(mask: np.ndarray, pixel_size_um: float | None = None) -> bytes:
    """Binary mask as uint8 TIFF, 0 = background, 255 = object (PackBits: 4x faster than zlib for masks).

    Calibrated like :func:`labels_tiff` when `pixel_size_um` is given.
    """
    mask = np.asarray(mask, dtype=bool).view(np.uint8) * np.uint8(255)
    buf = io.BytesIO()
    tifffile.imwrite(buf, mask, compression="packbits", **_calibration(mask.shape, pixel_size_um))
    return buf.getvalue()


def _calibration(shape: tuple[int, ...], pixel_size_um: float | None) -> dict[str, Any]:
    """tifffile.imwrite arguments that store the pixel size as ImageJ does (none when it is unknown).

    ImageJ keeps the unit in its description (``unit=um``) and the pixels per
    unit in the resolution tags, with ResolutionUnit NONE.  tifffile's
    ``imagej=True`` refuses uint32, which is not an ImageJ type, so the same
    description is written by hand with :func:`tifffile.imagej_description`;
    ImageJ reads it whatever the pixel type (32-bit integers open as 32-bit).
    """
    if not pixel_size_um:
        return {}
    per_um = 1.0 / float(pixel_size_um)
    return {
        "resolution": (per_um, per_um),
        "resolutionunit": "NONE",
        "description": tifffile.imagej_description(shape, unit="um"),
        "metadata": None,  # no second, tifffile-shaped description
    }


def overlay_png(result: Result) -> bytes:
    """Full-size PNG: object outlines (yellow) and removed objects (magenta) on the raw image."""
    return display.overlay_png(stretch(result.image), result.labels, result.removed)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """A table as CSV, with text cells that a spreadsheet would run as a formula defused (see :mod:`.safety`)."""
    return csv_safe(df).to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def image_outputs(result: Result, name: str, pixel_size_um: float | None = None) -> dict[str, bytes]:
    """The files of one image, keyed by their path inside the results zip.

    `pixel_size_um` (the settings' or the file's) calibrates the TIFFs.
    """
    return {
        zip_path("labels", name): labels_tiff(result.labels, pixel_size_um),
        zip_path("masks", name): mask_tiff(result.labels > 0, pixel_size_um),
        zip_path("rois", name): roi_zip(result.labels),
        zip_path("overlays", name): overlay_png(result),
        zip_path("measurements", name): csv_bytes(result.measurements),
    }


# --- other channels ------------------------------------------------------------------


def channel_names(n_channels: int, names: Sequence[str | None] | None = None) -> list[str]:
    """The name of each channel in the measurement columns (``<name>_mean``, ...).

    A channel is called by its name in the file (OME or ImageJ metadata, see
    :func:`tiff_channel_names`), reduced to letters, digits and ``_``;
    without one, or when that name is taken already, by its number from 1,
    as Fiji's C1, C2: ``ch1``, ``ch2``, ...

    Parameters
    ----------
    n_channels : int
        Number of channels in the file.
    names : sequence of str or None, optional
        The file's names for its channels, in order; may be shorter, or hold
        None or "" for a channel without a name.

    Returns
    -------
    list of str
        `n_channels` distinct names.

    Examples
    --------
    >>> channel_names(3, ["DAPI", "EdU (488)"])
    ['DAPI', 'EdU_488', 'ch3']
    >>> channel_names(2), channel_names(2, ["GFP", "gfp"])
    (['ch1', 'ch2'], ['GFP', 'ch2'])
    """
    names = list(names or [])
    out: list[str] = []
    for i in range(n_channels):
        given = names[i] if i < len(names) and names[i] else ""
        name = re.sub(r"\W+", "_", str(given)).strip("_")[:40]
        taken = {n.lower() for n in out}
        if not name or name.lower() in taken:
            name = f"ch{i + 1}"
        while name.lower() in taken:  # a file that calls another channel "ch2"
            name += "_"
        out.append(name)
    return out


def tiff_channel_names(tif: tifffile.TiffFile) -> list[str | None] | None:
    """Channel names stored in a TIFF: OME ``Channel Name``, or ImageJ's slice labels of the first z and time point.

    Returns None when the file names no channel (metadata is free text:
    anything unreadable counts as no name).
    """
    try:
        if tif.is_ome and tif.ome_metadata:
            for element in ET.fromstring(tif.ome_metadata).iter():
                if element.tag.rsplit("}", 1)[-1] == "Pixels":  # the first image's
                    return [c.get("Name") for c in element if c.tag.rsplit("}", 1)[-1] == "Channel"] or None
        meta = tif.imagej_metadata or {}
        n_channels = int(meta.get("channels", 1))
        labels = meta.get("Labels")
        if n_channels > 1 and isinstance(labels, (list, tuple)):
            return [str(label) if label else None for label in labels[:n_channels]]  # ImageJ stores C fastest
    except Exception:
        return None
    return None


def file_channel_names(source: str | os.PathLike | bytes, info: ImageInfo) -> list[str]:
    """:func:`channel_names` of a file read with :func:`segmentation.io.read_image` (path or bytes)."""
    names = None
    if info.n_c > 1 and not info.is_rgb:
        try:
            with tifffile.TiffFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as tif:
                names = tiff_channel_names(tif)
        except Exception:  # not a TIFF: no names
            names = None
    return channel_names(info.n_c, names)


def channel_planes(data: np.ndarray, info: ImageInfo, params: Params, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Every channel but the segmented one, as the same plane (z-slice or projection, time point), by name.

    Parameters
    ----------
    data, info
        As returned by :func:`segmentation.io.read_image`.
    params : Params
        Its ``channel`` is the segmented one; ``z`` and ``t`` pick the plane.
    names : sequence of str
        :func:`channel_names` of the file.

    Returns
    -------
    dict of str to (M, N) ndarray
        Ready for :func:`segmentation.measure.measure_objects`'s ``channels``;
        empty for a one-channel image.
    """
    nuclei = params.channel or 0
    return {names[c]: select_plane(data, info, channel=c, z=params.z, t=params.t)
            for c in range(info.n_c) if c != nuclei}


# What the exported script imports, as PEP 723 requirements: the same bounds as
# pyproject.toml's (a test checks), so that the script installs what the app was tested with.
SCRIPT_DEPENDENCIES: tuple[str, ...] = (
    "numpy>=1.26",
    "scipy>=1.11",
    "scikit-image>=0.26",
    "tifffile>=2024.1.1",
    "imagecodecs>=2024.1.1",  # LZW, zstd, ... compressed TIFFs, as Fiji and many microscopes write them
    "pandas>=2.1",
    "pillow>=10",
)
SCRIPT_PYTHON = ">=3.11"

# Copied into the script, whole: the measurement table (besides the registries' helpers).
_SCRIPT_MODULES = (measure,)
# Copied into the script one by one: reading the pixel size and the channel names as the app
# does, calibrated label TIFFs, CSV cells that a spreadsheet will not run.
_SCRIPT_FUNCTIONS = (
    image_io._tiff_pixel_size, image_io._ome_pixel_size, image_io._imagej_pixel_size, image_io._tag_pixel_size,
    image_io._x_resolution, image_io._plausible, image_io._pillow_pixel_size,
    channel_names, tiff_channel_names, labels_tiff, _calibration,
    safety.csv_safe_value, safety.csv_safe,
)
_SCRIPT_CONSTANTS = {
    "_UNIT_TO_UM": image_io._UNIT_TO_UM,
    "_PLAUSIBLE_UM": image_io._PLAUSIBLE_UM,
    "CALIBRATED_UM": image_io.CALIBRATED_UM,
    "FORMULA_STARTS": safety.FORMULA_STARTS,
    "_NUMBER": safety._NUMBER,
}


def script_text(params: Params) -> str:
    """A standalone ``segment.py`` reproducing `params` with plain library calls.

    It starts with PEP 723 inline metadata (:data:`SCRIPT_DEPENDENCIES`), so
    that ``uv run segment.py INPUT_FOLDER OUTPUT_FOLDER`` (or ``pipx run``)
    installs what it needs; it never imports this package.  It writes the
    app's measurement table, with every other channel of a multi-channel
    image measured, calibrated label TIFFs, and ``errors.csv`` for the files
    that failed (and then exits with status 1).
    """
    settings = json.dumps(params.to_dict(), indent=4)
    settings = settings.replace("null", "None").replace("true", "True").replace("false", "False")
    header = "\n".join(["# /// script", f'# requires-python = "{SCRIPT_PYTHON}"', "# dependencies = [",
                        *[f'#     "{d}",' for d in SCRIPT_DEPENDENCIES], "# ]", "# ///"])
    tables = {
        "__BACKGROUNDS__": _table(BACKGROUNDS, "img, s"),
        "__FILTERS__": _table(FILTERS, "img, s"),
        "__THRESHOLDS__": _table(THRESHOLD_METHODS, "img, s"),
        "__SEEDS__": _table(SEED_METHODS, "distance, mask, s"),
    }
    text = (_SCRIPT.replace("__METADATA__", header).replace("__SETTINGS__", settings)
            .replace("__HELPERS__", _helper_sources()))
    for marker, table in tables.items():
        text = text.replace(marker, table)
    return text


@functools.cache  # the source files do not change while the program runs
def _helper_sources() -> str:
    """The source of what the script calls from this package.

    Whole modules: those whose functions registry entries call (see
    ``Method.helpers``) and :data:`_SCRIPT_MODULES`; then the single
    functions and constants of :data:`_SCRIPT_FUNCTIONS` and
    :data:`_SCRIPT_CONSTANTS`.
    """
    modules = []
    for registry in (BACKGROUNDS, FILTERS, THRESHOLD_METHODS, SEED_METHODS):
        for method in registry.values():
            for helper in method.helpers:
                module = inspect.getmodule(helper)
                if module not in modules:
                    modules.append(module)
    modules += [m for m in _SCRIPT_MODULES if m not in modules]
    parts = []
    for module in modules:
        source = inspect.getsource(module).replace("from __future__ import annotations\n", "")
        parts.append(f"# --- from {module.__name__} (nuclei segmentation app) ---\n{source.strip()}\n")
    constants = "\n".join(f"{name} = {value!r}" for name, value in _SCRIPT_CONSTANTS.items())
    functions = "\n\n".join(inspect.getsource(f).strip() + "\n" for f in _SCRIPT_FUNCTIONS)
    parts.append("# --- reading and writing files as the app does (nuclei segmentation app) ---\n"
                 f"{constants}\n\n\n{functions}")
    return "\n\n".join(parts)


def _table(registry: dict, args: str) -> str:
    """A registry as a dict of lambdas in the script: name -> the same call as the app's."""
    lines = [f"    {name!r}: lambda {args}: {m.code}," for name, m in registry.items()]
    return "{\n" + "\n".join(lines) + "\n}"


_SCRIPT = '''\
__METADATA__
"""Segment nuclei in every image of a folder with the settings below.

Written by the nuclei segmentation app. The block above lists what it needs,
so that uv or pipx install it by themselves:

    uv run segment.py INPUT_FOLDER OUTPUT_FOLDER
    pipx run segment.py INPUT_FOLDER OUTPUT_FOLDER

or, in a Python environment that has those packages:

    python segment.py INPUT_FOLDER OUTPUT_FOLDER

INPUT_FOLDER may also be a single image file. With --settings FILE_OR_FOLDER
after the two folders, the settings come from a settings file saved by the app,
or from the file named after each image in a folder of them (the settings/
folder of a results zip whose settings were suggested for each image).
For each image it writes
    OUTPUT_FOLDER/labels/<name>.tif        uint32 labels, with the pixel size (µm) when known
    OUTPUT_FOLDER/measurements/<name>.csv  one row per nucleus: the app's columns, and
                                           <channel>_mean, ... for every other channel
and OUTPUT_FOLDER/summary.csv. A file that cannot be read or segmented is
listed in OUTPUT_FOLDER/errors.csv with the reason; the others go on, and the
script then ends with exit status 1.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, restoration, segmentation
from skimage.feature import peak_local_max

SETTINGS = __SETTINGS__


__HELPERS__

SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "L", "F", "I")


def read_image(path):
    """The file's pixels, their axes, the channel names in the file (or None) and the pixel size (µm, or None)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return series.asarray(), series.axes, tiff_channel_names(tif), _tiff_pixel_size(tif)[0]
    with Image.open(path) as image:
        pixel_size = _pillow_pixel_size(image)
        if image.mode in ("1", "LA", "La"):
            image = image.convert("L")
        elif image.mode not in GREY_MODES:
            image = image.convert("RGB")  # colour and palette images; alpha dropped
        data = np.asarray(image)
    if data.dtype == np.int32 and data.min() >= 0 and data.max() <= 65535:
        data = data.astype(np.uint16)  # Pillow may open 16-bit grey PNGs as 32-bit
    return data, ("YXS" if data.ndim == 3 else "YX"), None, pixel_size


def channel_planes(data, axes, s):
    """One 2-D plane per channel: the chosen time point and z-slice (or maximum projection)."""
    if axes.endswith("S") and data.shape[-1] in (3, 4):
        data = data[..., :3]
        if all(np.array_equal(data[..., 0], data[..., i]) for i in (1, 2)):
            data, axes = data[..., 0], axes[:-1]  # a grey image saved as colour
    # the channels first
    channel_axis = next((a for a in axes if a in "CS"), None)
    if channel_axis is None:
        data, axes = data[np.newaxis], "C" + axes
    else:
        data = np.moveaxis(data, axes.index(channel_axis), 0)
        axes = "C" + axes.replace(channel_axis, "", 1)
    for ax in [a for a in axes[1:] if a not in "YX"]:
        i = axes.index(ax, 1)
        if data.shape[i] == 1:
            data = data.take(0, axis=i)
        elif ax in "ZIQ":
            if s["z"] is None:
                raise ValueError(f"it holds {data.shape[i]} z-slices: set 'z' in SETTINGS to one (0 = first) or 'max'")
            data = data.max(axis=i) if s["z"] == "max" else data.take(s["z"], axis=i)
        else:  # time or another axis
            data = data.take(s["t"] or 0, axis=i)
        axes = axes[:i] + axes[i + 1:]
    return list(data)


def peaks_to_mask(coords, shape):
    peaks = np.zeros(shape, dtype=bool)
    peaks[tuple(coords.T)] = True
    return peaks


# Each choice of the app, as the same plain call (img = image, s = SETTINGS).
BACKGROUNDS = __BACKGROUNDS__
FILTERS = __FILTERS__
THRESHOLDS = __THRESHOLDS__
SEEDS = __SEEDS__


def segment(image, s):
    # 1. background subtraction and noise filter, in the image's own units
    img = image
    if s["background"] != "none":
        img = BACKGROUNDS[s["background"]](image.astype(float), s)
    img = FILTERS[s["filter"]](img, s)

    # 2. threshold
    cutoff = THRESHOLDS[s["threshold_method"]](img, s)
    mask = img > cutoff if s["objects"] == "bright" else img < cutoff

    # 3. refine the mask
    if s["min_size"] > 1:
        mask = morphology.remove_small_objects(mask, max_size=s["min_size"] - 1)
    if s["closing_radius"] > 0:
        mask = morphology.closing(mask, morphology.disk(s["closing_radius"]))
    if s["opening_radius"] > 0:
        mask = morphology.opening(mask, morphology.disk(s["opening_radius"]))
    if s["fill_holes"] and s["max_hole_size"] == 0:
        mask = ndi.binary_fill_holes(mask)
    elif s["fill_holes"]:
        mask = morphology.remove_small_holes(mask, max_size=s["max_hole_size"])

    # 4. label, splitting touching nuclei: distance transform + seeds + watershed
    if s["split"] == "none":
        labels = measure.label(mask)
    else:
        distance = ndi.distance_transform_edt(mask)
        if s["distance_sigma"] > 0:
            distance = ndi.gaussian_filter(distance, sigma=s["distance_sigma"])
        seeds = SEEDS[s["seed_method"]](distance, mask, s)
        labels = segmentation.watershed(-distance, seeds, mask=mask)
        unseeded = mask & (labels == 0)
        if s["keep_unseeded"] and unseeded.any():
            extra = measure.label(unseeded)
            labels = np.where(extra > 0, extra + labels.max(), labels)

    # drop objects that are too large or touch the border, then number 1..N
    if s["max_size"] > 0:
        areas = np.bincount(labels.ravel())
        big = np.flatnonzero(areas > s["max_size"])
        labels = np.where(np.isin(labels, big[big != 0]), 0, labels)
    if s["exclude_border"]:
        labels = segmentation.clear_border(labels)
    labels = segmentation.relabel_sequential(labels)[0]
    return labels.astype(np.uint32), float(np.median(cutoff))


def process(path, name, dst, s):
    """Segment one file, measure every channel in its nuclei and write its files; its summary row."""
    try:
        data, axes, names_in_file, pixel_size = read_image(path)
    except Exception as exc:
        raise ValueError(f"cannot read it as an image: it is damaged or not a TIFF, PNG or JPEG ({exc})") from exc
    planes = channel_planes(data, axes, s)
    if len(planes) > 1 and s["channel"] is None:
        raise ValueError(f"it holds {len(planes)} channels: set 'channel' in SETTINGS to the nuclear one (0 = first)")
    nuclei = s["channel"] or 0
    if nuclei >= len(planes):
        raise ValueError(f"it holds {len(planes)} channel(s), but SETTINGS asks for channel {nuclei} (0 = first)")
    names = channel_names(len(planes), names_in_file)
    image = planes[nuclei]
    others = {names[c]: plane for c, plane in enumerate(planes) if c != nuclei}
    pixel_size = s["pixel_size_um"] or pixel_size

    labels, cutoff = segment(image, s)
    table = measure_objects(labels, image, pixel_size, channels=others, ring_width=s.get("ring_width", 0))
    row = {"image": name, "threshold": cutoff, "objects": int(labels.max()), "pixel_size_um": pixel_size}
    for channel, above in dict(s.get("positive") or {}).items():  # positive: mean intensity above the cutoff
        if f"{channel}_mean" in table:
            table[f"{channel}_positive"] = table[f"{channel}_mean"] > above
            row[f"{channel}_percent_positive"] = 100 * table[f"{channel}_positive"].mean() if len(table) else None

    for folder in ("labels", "measurements"):
        (dst / folder / name).parent.mkdir(parents=True, exist_ok=True)
    (dst / "labels" / f"{name}.tif").write_bytes(labels_tiff(labels, pixel_size))
    csv_safe(table).to_csv(dst / "measurements" / f"{name}.csv", index=False)
    return row


def settings_for(name, settings_path):
    """SETTINGS, or a settings file saved by the app, or the file named after the image in a folder of them."""
    if settings_path is None:
        return SETTINGS
    path = Path(settings_path)
    if path.is_dir():
        path = path / f"{name}.json"
        if not path.is_file():
            return SETTINGS
    values = json.loads(path.read_text(encoding="utf-8"))["params"]
    return {**SETTINGS, **values}


def main(src, dst, settings_path=None):
    """Segment every image of `src` (a folder or one file) into `dst`; 1 when a file failed, else 0.

    `settings_path`: a settings file saved by the app, or a folder of them named after the images (the
    settings/ folder of a results zip whose settings were suggested for each image).
    """
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.suffix.lower() in SUFFIXES)
    rows, errors = [], []
    for path in files:
        name = path.stem if src.is_file() else path.relative_to(src).with_suffix("").as_posix()
        try:
            row = process(path, name, dst, settings_for(name, settings_path))
        except Exception as exc:  # one bad file must not stop the others
            reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            errors.append({"file": path.name if src.is_file() else path.relative_to(src).as_posix(), "reason": reason})
            print(f"{name}: FAILED: {reason}", file=sys.stderr)
            continue
        rows.append(row)
        print(f"{name}: threshold {row['threshold']:.6g}, {row['objects']} objects", file=sys.stderr)
    columns = ["image", "threshold", "objects", "pixel_size_um"]
    summary = pd.DataFrame(rows).reindex(columns=columns + [c for r in rows for c in r if c not in columns])
    csv_safe(summary).to_csv(dst / "summary.csv", index=False)
    if errors:
        csv_safe(pd.DataFrame(errors, columns=["file", "reason"])).to_csv(dst / "errors.csv", index=False)
        print(f"{len(errors)} of {len(files)} file(s) failed: see {dst / 'errors.csv'}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    settings_path = None
    if len(args) == 4 and args[2] == "--settings":
        settings_path = args.pop(3)
        args.pop(2)
    if len(args) != 2:
        sys.exit("usage: python segment.py INPUT_FOLDER_OR_FILE OUTPUT_FOLDER [--settings settings.json or folder]")
    sys.exit(main(args[0], args[1], settings_path))
'''
