"""Write one image's outputs, and a standalone script that reproduces the run.

File formats follow the course: labels as uint32 TIFF, masks as 0/255 uint8
TIFF, an overlay PNG of the label outlines on the contrast-stretched raw image,
and CSV tables.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from .display import outline_overlay, png_bytes, stretch
from .params import Params
from .pipeline import Result

__all__ = [
    "labels_tiff",
    "mask_tiff",
    "overlay_png",
    "csv_bytes",
    "image_outputs",
    "write_outputs",
    "script_text",
]


def labels_tiff(labels: np.ndarray) -> bytes:
    """uint32 label TIFF (zlib-compressed; opens in Fiji, napari, tifffile)."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.asarray(labels, dtype=np.uint32), compression="zlib")
    return buf.getvalue()


def mask_tiff(mask: np.ndarray) -> bytes:
    """Binary mask as uint8 TIFF, 0 = background, 255 = object."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.where(mask, 255, 0).astype(np.uint8), compression="zlib")
    return buf.getvalue()


def overlay_png(result: Result) -> bytes:
    """Full-size PNG: object outlines (yellow) and removed objects (magenta) on the raw image."""
    return png_bytes(outline_overlay(stretch(result.image), result.labels, result.removed))


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def image_outputs(result: Result, name: str) -> dict[str, bytes]:
    """The files of one image, keyed by their path inside the results zip."""
    return {
        f"labels/{name}.tif": labels_tiff(result.labels),
        f"masks/{name}.tif": mask_tiff(result.labels > 0),
        f"overlays/{name}.png": overlay_png(result),
        f"measurements/{name}.csv": csv_bytes(result.measurements),
    }


def write_outputs(result: Result, folder: str | Path, name: str) -> list[Path]:
    """Write :func:`image_outputs` under `folder`; returns the paths written."""
    written = []
    for rel, data in image_outputs(result, name).items():
        path = Path(folder) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def script_text(params: Params) -> str:
    """A standalone ``segment.py`` reproducing `params` with plain library calls.

    It needs only numpy, scipy, scikit-image, tifffile and pandas (not this
    package), and runs as ``python segment.py INPUT_FOLDER OUTPUT_FOLDER``.
    """
    settings = json.dumps(params.to_dict(), indent=4)
    settings = settings.replace("null", "None").replace("true", "True").replace("false", "False")
    return _SCRIPT.replace("__SETTINGS__", settings)


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


def segment(image, s):
    # 1. background subtraction and noise filter, in the image's own units
    img = image
    if s["background"] == "rolling_ball":
        img = image.astype(float) - restoration.rolling_ball(image.astype(float), radius=s["background_radius"])
    elif s["background"] == "tophat":
        disk = morphology.disk(int(round(s["background_radius"])), decomposition="sequence")
        img = morphology.white_tophat(image.astype(float), footprint=disk)
    if s["filter"] == "gaussian" and s["sigma"] > 0:
        img = filters.gaussian(img, sigma=s["sigma"], preserve_range=True)
    elif s["filter"] == "gaussian":
        img = img.astype(float)
    elif s["filter"] == "mean":
        img = ndi.uniform_filter(img.astype(float), size=s["filter_size"])
    elif s["filter"] == "median":
        img = ndi.median_filter(img, size=s["filter_size"])

    # 2. threshold
    method = s["threshold_method"]
    if method == "manual":
        cutoff = s["threshold_value"]
    elif method == "local":
        cutoff = filters.threshold_local(img.astype(float), block_size=s["block_size"], offset=s["offset"])
    else:
        cutoff = getattr(filters, "threshold_" + method)(img)
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
        if s["seed_method"] == "peak_local_max":
            coords = peak_local_max(distance, footprint=np.ones((s["footprint"],) * 2), min_distance=s["min_distance"])
            peaks = np.zeros(distance.shape, dtype=bool)
            peaks[tuple(coords.T)] = True
        else:
            # h-maxima: regional maxima of the reconstruction of (distance - h) under distance
            domes = morphology.reconstruction(distance - s["h"], distance, method="dilation")
            peaks = morphology.local_maxima(domes, allow_borders=True) & mask
        seeds = measure.label(peaks)
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
