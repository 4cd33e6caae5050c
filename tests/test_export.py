"""Export: output files read back as promised, and the standalone segment.py reproduces segment()."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from skimage.segmentation import find_boundaries

from scipy import ndimage as ndi

from testdata import SAMPLE, script_call, shared_images
from segmentation import Params, segment
from segmentation.display import OUTLINE_RGB, outline_overlay, stretch
from segmentation.export import (
    csv_bytes,
    image_outputs,
    labels_tiff,
    mask_tiff,
    overlay_png,
    script_text,
    zip_path,
    ZIP_LAYOUT,
    layout_markdown,
)
from segmentation.filters import BACKGROUNDS, FILTERS, apply_filter, subtract_background
from segmentation.io import load_plane
from segmentation.split import SEED_METHODS, find_seeds
from segmentation.threshold import THRESHOLD_METHODS, threshold_image


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b partition the pixels identically."""
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def synthetic16(seed: int = 3) -> np.ndarray:
    """uint16 field: background ~300 with a slope, touching and separate nuclei ~2500."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:160, :200]
    img = 300 + 0.5 * xx + rng.normal(0, 25, yy.shape)
    for cy, cx, r in [(40, 40, 16), (40, 68, 14), (110, 60, 18), (100, 150, 12), (150, 190, 10), (30, 150, 8)]:
        d = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img[d] += 2200 - 8 * np.sqrt((yy[d] - cy) ** 2 + (xx[d] - cx) ** 2)
    return img.clip(0, 65535).round().astype(np.uint16)


@pytest.fixture(scope="module")
def result(sample):
    return segment(sample, Params())


# --- single-image outputs ---------------------------------------------------------


def test_labels_tiff_reads_back_uint32_and_equal(result):
    back = tifffile.imread(io.BytesIO(labels_tiff(result.labels)))
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, result.labels)
    # an int64 label image is written as uint32 too
    back = tifffile.imread(io.BytesIO(labels_tiff(result.labels.astype(np.int64))))
    assert back.dtype == np.uint32 and back.max() == result.labels.max()


def test_mask_tiff_is_0_255_uint8(result):
    back = tifffile.imread(io.BytesIO(mask_tiff(result.labels > 0)))
    assert back.dtype == np.uint8
    assert set(np.unique(back).tolist()) == {0, 255}
    np.testing.assert_array_equal(back == 255, result.labels > 0)


def test_overlay_png_is_the_outline_overlay_of_the_image(result, sample):
    png = Image.open(io.BytesIO(overlay_png(result)))
    assert png.format == "PNG" and png.mode == "P"  # a palette PNG: cheap to write
    rgb = np.asarray(png.convert("RGB"))
    assert rgb.shape == (*sample.shape, 3)
    # the same picture as the RGB overlay, the grey within half a level
    expected = outline_overlay(stretch(sample), result.labels, result.removed)
    assert np.abs(rgb.astype(int) - expected).max() <= 1
    # the object outlines are drawn in the outline colour
    edges = find_boundaries(result.labels, mode="inner")
    assert (rgb[edges] == OUTLINE_RGB).all()
    # outlines are drawn inside the objects: no background pixel is yellow
    assert not (rgb[result.labels == 0] == OUTLINE_RGB).all(axis=1).any()


def test_csv_bytes_round_trip(result):
    back = pd.read_csv(io.BytesIO(csv_bytes(result.measurements)))
    assert list(back.columns) == list(result.measurements.columns)
    np.testing.assert_allclose(back["area_px2"], result.measurements["area_px2"])


def test_image_outputs_follow_the_zip_layout(result):
    files = image_outputs(result, "exp1/img")
    assert set(files) == {"labels/exp1/img.tif", "masks/exp1/img.tif", "overlays/exp1/img.png", "measurements/exp1/img.csv"}
    assert set(files) == {zip_path(k, "exp1/img") for k in ("labels", "masks", "overlays", "measurements")}
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(files["labels/exp1/img.tif"])), result.labels)
    assert len(pd.read_csv(io.BytesIO(files["measurements/exp1/img.csv"]))) == result.count


def test_readme_table_is_the_zip_layout():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert layout_markdown() in readme, "README.md's zip table differs from export.ZIP_LAYOUT: paste layout_markdown()"
    assert len(ZIP_LAYOUT) == layout_markdown().count("\n| `")


# --- the standalone script ----------------------------------------------------------


def test_script_has_no_segmentation_import_and_embeds_the_settings():
    p = Params(z="max", channel=1, threshold_method="manual", threshold_value=12.5, fill_holes=True)
    text = script_text(p)
    assert not re.search(r"^\s*(import|from)\s+segmentation\b", text, re.MULTILINE)
    assert "import segmentation" not in text
    compile(text, "segment.py", "exec")
    namespace: dict = {}
    exec(compile(text.split("SUFFIXES =")[0], "segment.py", "exec"), namespace)  # imports + SETTINGS
    assert namespace["SETTINGS"] == p.to_dict()


def start_script(params: Params, work: Path, in_dir: Path) -> tuple[subprocess.Popen, Path]:
    """Write segment.py next to a poisoned `segmentation` module and start it cleanly."""
    script_dir = work / "script"
    script_dir.mkdir(parents=True)
    script = script_dir / "segment.py"
    script.write_text(script_text(params), encoding="utf-8")
    # the script's folder comes first on sys.path: importing our package would fail loudly
    (script_dir / "segmentation.py").write_text(
        "raise ImportError('the standalone script must not import the segmentation package')\n"
    )
    out_dir = work / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # a deprecated scikit-image call made by the script itself fails the run
    env["PYTHONWARNINGS"] = "error::DeprecationWarning:__main__,error::FutureWarning:__main__"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(in_dir), str(out_dir)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return proc, out_dir


def script_inputs(folder: Path) -> dict[str, np.ndarray]:
    """The sample, a synthetic 16-bit field and (when present) a crop of a real 16-bit image."""
    folder.mkdir()
    images = {"sample_nuclei": tifffile.imread(SAMPLE), "sub/synthetic16": synthetic16()}
    real = shared_images("bobiac_course/images/u2os_hoechst_003.tif")
    if real:
        images["u2os_crop"] = tifffile.imread(real[0])[100:356, 200:456]
    for name, image in images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / f"{name}.tif", image)
    return images


def plane_inputs(folder: Path, sample: np.ndarray) -> np.ndarray:
    """A 2-channel ImageJ TIFF (nuclei in channel 1) and a Z=3 x C=2 stack; returns the stack."""
    rng = np.random.default_rng(5)
    folder.mkdir()
    noise = rng.integers(0, 40, sample.shape).astype(np.uint16)
    tifffile.imwrite(folder / "two_channel.tif", np.stack([noise, sample]), imagej=True, metadata={"axes": "CYX"})
    crop = synthetic16()
    stack = np.stack([np.stack([rng.integers(0, 50, crop.shape).astype(np.uint16), (crop * f).astype(np.uint16)])
                      for f in (0.6, 1.0, 0.8)])
    tifffile.imwrite(folder / "zstack.tif", stack, imagej=True, metadata={"axes": "ZCYX"})
    return stack


SCRIPT_PARAMS = {
    "defaults": Params(),
    "tophat-median-li-fill-open-border-max": Params(
        background="tophat", background_radius=20,
        filter="median", filter_size=5, threshold_method="li", fill_holes=True, max_hole_size=0,
        closing_radius=0, opening_radius=2, exclude_border=True, max_size=600, min_size=20,
    ),
    "local-hmaxima-sigma-unseeded": Params(
        threshold_method="local", block_size=61, offset=-2.0, seed_method="h_maxima", h=1.5,
        distance_sigma=1.5, keep_unseeded=True, fill_holes=True, max_hole_size=30,
    ),
    "fastball-tophat-median": Params(
        background="rolling_ball_fast", background_radius=25, filter="median", filter_size=9,
        threshold_method="li", min_size=30,
    ),
    "rollingball-mean-dark-none": Params(
        background="rolling_ball", background_radius=15, filter="mean", filter_size=3,
        threshold_method="triangle", objects="dark", split="none", min_size=50,
    ),
}
PLANE_PARAMS = Params(channel=1, z="max")


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory, sample):
    """Every script run started at once (they are independent), then awaited."""
    root = tmp_path_factory.mktemp("script")
    images = script_inputs(root / "in")
    stack = plane_inputs(root / "planes", sample)
    started = {key: start_script(params, root / key, root / "in") for key, params in SCRIPT_PARAMS.items()}
    started["planes"] = start_script(PLANE_PARAMS, root / "planes-run", root / "planes")
    runs = {}
    for key, (proc, out_dir) in started.items():
        try:
            _, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        runs[key] = (proc.returncode, stderr, out_dir)
    return images, stack, root / "planes", runs


@pytest.mark.parametrize("key", list(SCRIPT_PARAMS))
def test_script_reproduces_segment(script_runs, key):
    images, _, _, runs = script_runs
    returncode, stderr, out_dir = runs[key]
    assert returncode == 0, stderr
    params = SCRIPT_PARAMS[key]
    summary = pd.read_csv(out_dir / "summary.csv").set_index("image")
    assert sorted(summary.index) == sorted(images)
    for name, image in images.items():
        expected = segment(image, params)
        labels = tifffile.imread(out_dir / "labels" / f"{name}.tif")
        assert labels.dtype == np.uint32
        assert expected.count > 0, f"{name}: the settings should find objects"
        assert same_up_to_renumbering(labels, expected.labels), name
        np.testing.assert_array_equal(labels, expected.labels, err_msg=name)
        assert summary.loc[name, "objects"] == expected.count
        assert summary.loc[name, "threshold"] == pytest.approx(expected.threshold, rel=1e-6)
        table = pd.read_csv(out_dir / "measurements" / f"{name}.csv")
        assert len(table) == expected.count
        np.testing.assert_array_equal(table["area"], expected.measurements["area_px2"])


def test_script_picks_channel_and_max_projection_like_segment(script_runs, sample):
    """A 2-channel ImageJ TIFF and a Z x C stack, with channel=1 and z='max'."""
    _, stack, in_dir, runs = script_runs
    returncode, stderr, out_dir = runs["planes"]
    assert returncode == 0, stderr
    for name, plane in [("two_channel", sample), ("zstack", stack[:, 1].max(axis=0))]:
        loaded, _ = load_plane(in_dir / f"{name}.tif", channel=1, z="max")
        np.testing.assert_array_equal(loaded, plane)
        expected = segment(loaded, PLANE_PARAMS)
        labels = tifffile.imread(out_dir / "labels" / f"{name}.tif")
        assert expected.count > 3
        assert same_up_to_renumbering(labels, expected.labels), name
    # channel 1 of the 2-channel file gives the same labels as the plain sample
    np.testing.assert_array_equal(
        tifffile.imread(out_dir / "labels" / "two_channel.tif"), segment(sample, PLANE_PARAMS).labels
    )


# --- each registry entry's code in the script equals the app's function --------------------
# (so that adding a method to a registry is one entry: the script takes its code from there)


@pytest.mark.parametrize("name", list(FILTERS))
def test_script_code_of_every_filter_equals_the_app(sample, name):
    s = Params(filter=name, sigma=1.5, filter_size=5).to_dict()
    np.testing.assert_array_equal(script_call(FILTERS[name], img=sample, s=s), apply_filter(sample, name, 1.5, 5))


@pytest.mark.parametrize("name", [n for n in BACKGROUNDS if n != "none"])
def test_script_code_of_every_background_equals_the_app(sample, name):
    s = Params(background=name, background_radius=12.0).to_dict()
    np.testing.assert_array_equal(script_call(BACKGROUNDS[name], img=sample[:128, :128].astype(float), s=s),
                                  subtract_background(sample[:128, :128], name, 12.0))


@pytest.mark.parametrize("name", list(SEED_METHODS))
def test_script_code_of_every_seed_method_equals_the_app(sample, name):
    params = Params(seed_method=name, footprint=9, min_distance=4, h=1.5)
    mask = segment(sample, params).mask
    distance = ndi.distance_transform_edt(mask)
    markers, _ = find_seeds(distance, mask, params)
    np.testing.assert_array_equal(script_call(SEED_METHODS[name], distance=distance, mask=mask, s=params.to_dict()),
                                  markers)


def test_script_code_of_manual_and_local_thresholds_equals_the_app(sample):
    img = sample.astype(float)
    manual = Params(threshold_method="manual", threshold_value=33.5)
    assert script_call(THRESHOLD_METHODS["manual"], img=img, s=manual.to_dict()) == 33.5
    local = Params(threshold_method="local", block_size=31, offset=-2.0)
    cutoff = script_call(THRESHOLD_METHODS["local"], img=img, s=local.to_dict())
    np.testing.assert_array_equal(img > cutoff, threshold_image(img, local).mask)
