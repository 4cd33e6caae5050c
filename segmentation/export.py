"""Write one image's outputs, the results zip's layout, and a standalone script that reproduces the run.

File formats follow the course: labels as uint32 TIFF, masks as 0/255 uint8
TIFF, an overlay PNG of the label outlines on the contrast-stretched raw image,
and CSV tables.  :data:`ZIP_LAYOUT` is the one description of the results zip:
the writer, the zip's README.txt, the Batch page and the project README all
come from it.
"""

from __future__ import annotations

import inspect
import io
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tifffile

from . import display
from .display import stretch
from .filters import BACKGROUNDS, FILTERS
from .params import Params
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
    "overlay_png",
    "csv_bytes",
    "image_outputs",
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
    "labels": ZipEntry("labels/{name}.tif", "label image, uint32: 0 = background, 1..N = one nucleus each"),
    "masks": ZipEntry("masks/{name}.tif", "binary mask, uint8: 0 = background, 255 = nucleus"),
    "overlays": ZipEntry("overlays/{name}.png", "outlines of the nuclei (yellow) on the contrast-stretched "
                         "image; objects removed (too small or large, on the border, without a seed) in magenta"),
    "measurements": ZipEntry("measurements/{name}.csv", "one row per nucleus: area, centroid, intensities (raw "
                             "image units), shape; _px = pixels, _um = micrometres (when the pixel size is known)"),
    "all_measurements": ZipEntry("measurements.csv", "all nuclei of all images, with an `image` column"),
    "summary": ZipEntry("summary.csv", "one row per input file: status (ok / failed / skipped / not run), "
                        "threshold used (raw intensity units), number of nuclei, mean and median area, ..."),
    "errors": ZipEntry("errors.csv", "file and reason, for each input that failed (only when some did)"),
    "settings": ZipEntry("settings.json", "the settings used: load it in the app to reproduce or adjust the run"),
    "script": ZipEntry("segment.py", "standalone script reproducing the segmentation with plain scikit-image "
                       "calls: `python segment.py INPUT_FOLDER OUTPUT_FOLDER`"),
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


def labels_tiff(labels: np.ndarray) -> bytes:
    """uint32 label TIFF (zlib-compressed; opens in Fiji, napari, tifffile)."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.asarray(labels, dtype=np.uint32), compression="zlib")
    return buf.getvalue()


def mask_tiff(mask: np.ndarray) -> bytes:
    """Binary mask as uint8 TIFF, 0 = background, 255 = object (PackBits: 4x faster than zlib for masks)."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.asarray(mask, dtype=bool).view(np.uint8) * np.uint8(255), compression="packbits")
    return buf.getvalue()


def overlay_png(result: Result) -> bytes:
    """Full-size PNG: object outlines (yellow) and removed objects (magenta) on the raw image."""
    return display.overlay_png(stretch(result.image), result.labels, result.removed)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """A table as CSV, with text cells that a spreadsheet would run as a formula defused (see :mod:`.safety`)."""
    return csv_safe(df).to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def image_outputs(result: Result, name: str) -> dict[str, bytes]:
    """The files of one image, keyed by their path inside the results zip."""
    return {
        zip_path("labels", name): labels_tiff(result.labels),
        zip_path("masks", name): mask_tiff(result.labels > 0),
        zip_path("overlays", name): overlay_png(result),
        zip_path("measurements", name): csv_bytes(result.measurements),
    }


def script_text(params: Params) -> str:
    """A standalone ``segment.py`` reproducing `params` with plain library calls.

    It needs only numpy, scipy, scikit-image, tifffile and pandas (not this
    package), and runs as ``python segment.py INPUT_FOLDER OUTPUT_FOLDER``.
    """
    settings = json.dumps(params.to_dict(), indent=4)
    settings = settings.replace("null", "None").replace("true", "True").replace("false", "False")
    tables = {
        "__BACKGROUNDS__": _table(BACKGROUNDS, "img, s"),
        "__FILTERS__": _table(FILTERS, "img, s"),
        "__THRESHOLDS__": _table(THRESHOLD_METHODS, "img, s"),
        "__SEEDS__": _table(SEED_METHODS, "distance, mask, s"),
    }
    text = _SCRIPT.replace("__SETTINGS__", settings).replace("__HELPERS__", _helper_sources())
    for marker, table in tables.items():
        text = text.replace(marker, table)
    return text


def _helper_sources() -> str:
    """The source of the modules whose functions registry entries call (see ``Method.helpers``)."""
    modules = []
    for registry in (BACKGROUNDS, FILTERS, THRESHOLD_METHODS, SEED_METHODS):
        for method in registry.values():
            for helper in method.helpers:
                module = inspect.getmodule(helper)
                if module not in modules:
                    modules.append(module)
    parts = []
    for module in modules:
        source = inspect.getsource(module).replace("from __future__ import annotations\n", "")
        parts.append(f"# --- from {module.__name__} (nuclei segmentation app) ---\n{source.strip()}\n")
    return "\n\n".join(parts)


def _table(registry: dict, args: str) -> str:
    """A registry as a dict of lambdas in the script: name -> the same call as the app's."""
    lines = [f"    {name!r}: lambda {args}: {m.code}," for name, m in registry.items()]
    return "{\n" + "\n".join(lines) + "\n}"


_SCRIPT = '''\
"""Segment nuclei in every image of a folder with the settings below.

Written by the nuclei segmentation app. It needs only numpy, scipy,
scikit-image (>= 0.26), tifffile, imageio and pandas:

    python segment.py INPUT_FOLDER OUTPUT_FOLDER

For each image it writes OUTPUT_FOLDER/labels/<name>.tif (uint32) and
OUTPUT_FOLDER/measurements/<name>.csv, and OUTPUT_FOLDER/summary.csv.
"""

import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, restoration, segmentation
from skimage.feature import peak_local_max

SETTINGS = __SETTINGS__


__HELPERS__

SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def read_plane(path, s):
    """One 2-D plane: the chosen time point, channel and z-slice (or max projection)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tif:
            data, axes = tif.series[0].asarray(), tif.series[0].axes
    else:
        data = iio.imread(path)
        axes = "YXS" if data.ndim == 3 else "YX"
    if axes.endswith("S") and data.shape[-1] in (3, 4):
        data = data[..., :3]
        if all(np.array_equal(data[..., 0], data[..., i]) for i in (1, 2)):
            data, axes = data[..., 0], axes[:-1]
    for ax in [a for a in axes if a not in "YX"]:
        i = axes.index(ax)
        if data.shape[i] == 1:
            data, axes = data.take(0, axis=i), axes.replace(ax, "")
        elif ax in "CS":
            data, axes = data.take(s["channel"], axis=i), axes.replace(ax, "")
        elif ax in "ZIQ":
            z = s["z"]
            data = data.max(axis=i) if z == "max" else data.take(z, axis=i)
            axes = axes.replace(ax, "")
        else:  # time or another axis
            data, axes = data.take(s["t"] or 0, axis=i), axes.replace(ax, "")
    return data


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


def main(src, dst):
    src, dst = Path(src), Path(dst)
    rows = []
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.suffix.lower() in SUFFIXES)
    for path in files:
        name = path.stem if src.is_file() else path.relative_to(src).with_suffix("").as_posix()
        image = read_plane(path, SETTINGS)
        labels, cutoff = segment(image, SETTINGS)
        (dst / "labels" / name).parent.mkdir(parents=True, exist_ok=True)
        (dst / "measurements" / name).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(dst / "labels" / f"{name}.tif", labels)
        table = pd.DataFrame(measure.regionprops_table(
            labels, intensity_image=image,
            properties=("label", "area", "centroid", "intensity_mean", "perimeter", "eccentricity", "solidity")))
        table.to_csv(dst / "measurements" / f"{name}.csv", index=False)
        rows.append({"image": name, "threshold": cutoff, "objects": int(labels.max())})
        print(f"{name}: threshold {cutoff:.6g}, {labels.max()} objects", file=sys.stderr)
    pd.DataFrame(rows).to_csv(dst / "summary.csv", index=False)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python segment.py INPUT_FOLDER_OR_FILE OUTPUT_FOLDER")
    main(sys.argv[1], sys.argv[2])
'''
