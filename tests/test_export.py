"""Export: output files read back as promised, and the standalone segment.py reproduces segment()."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from skimage.segmentation import find_boundaries

from scipy import ndimage as ndi

from testdata import ROOT, SAMPLE, script_call, shared_images
from segmentation import Params, segment
from segmentation.conditions import condition_columns, percent_positive
from segmentation.display import OUTLINE_RGB, outline_overlay, stretch
from segmentation.export import (
    SCRIPT_DEPENDENCIES,
    SCRIPT_PYTHON,
    channel_names,
    channel_planes,
    csv_bytes,
    file_channel_names,
    image_outputs,
    labels_tiff,
    mask_tiff,
    overlay_png,
    script_text,
    tiff_channel_names,
    zip_path,
    ZIP_LAYOUT,
    layout_markdown,
)
from segmentation.filters import BACKGROUNDS, FILTERS, apply_filter, subtract_background
from segmentation.io import load_plane, read_image, select_plane
from segmentation.measure import measure_objects
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
    # without a pixel size: no calibration, as before
    data = labels_tiff(result.labels)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert not tif.is_imagej and tif.pages.first.get_resolution() == (1, 1)
    assert read_image(data, "labels.tif")[1].pixel_size_um is None


def calibration_read_back(data: bytes) -> dict:
    """What Fiji, napari-tiff and this app read from a TIFF's calibration (the rules they apply, via tifffile).

    Fiji (ImageJ's TiffDecoder and FileOpener): pixel width = 1 / XResolution, in the unit of the
    ImageJ description's ``unit=`` (``um`` shows as µm); napari-tiff (for an ImageJ TIFF): scale =
    (YResolution, XResolution) denominator / numerator, in that same unit.
    """
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        numerator, denominator = page.tags["XResolution"].value
        y_numerator, y_denominator = page.tags["YResolution"].value
        return {
            "imagej": tif.is_imagej,
            "unit": (tif.imagej_metadata or {}).get("unit"),
            "resolution_unit": int(page.tags["ResolutionUnit"].value),
            "fiji_pixel_width": 1 / (numerator / denominator),
            "fiji_pixel_height": 1 / (y_numerator / y_denominator),
            "napari_scale": (y_denominator / max(y_numerator, 1), denominator / max(numerator, 1)),
            "axes": tif.series[0].axes,
            "dtype": tif.series[0].dtype,
            "data": tif.asarray(),
            "app": read_image(data, "back.tif")[1].pixel_size_um,
        }


@pytest.mark.parametrize("pixel_size", [0.325, 0.1083333, 2.0])
@pytest.mark.parametrize("writer", [labels_tiff, mask_tiff], ids=["labels", "mask"])
def test_calibrated_tiffs_read_back_with_their_pixel_size(result, writer, pixel_size):
    data = writer(result.labels if writer is labels_tiff else result.labels > 0, pixel_size)
    back = calibration_read_back(data)
    assert back["imagej"] and back["unit"] == "um"  # Fiji's calibration unit, shown as µm
    assert back["resolution_unit"] == 1  # NONE: the resolution is in pixels per `unit`, as ImageJ writes it
    assert back["fiji_pixel_width"] == pytest.approx(pixel_size, rel=1e-7)
    assert back["fiji_pixel_height"] == pytest.approx(pixel_size, rel=1e-7)
    assert back["napari_scale"] == pytest.approx((pixel_size, pixel_size), rel=1e-7)
    assert back["app"] == pytest.approx(pixel_size, rel=1e-7)  # this app (and so the exported script) too
    assert back["axes"] == "YX"  # one plane, not a stack
    if writer is labels_tiff:
        assert back["dtype"] == np.uint32  # ImageJ opens 32-bit integer TIFFs as 32-bit images
        np.testing.assert_array_equal(back["data"], result.labels)
    else:
        np.testing.assert_array_equal(back["data"] == 255, result.labels > 0)


# --- channel names ------------------------------------------------------------------------


def ome_two_channel(planes: np.ndarray, names: list[str], pixel_size: float | None = 0.325, **kw) -> bytes:
    buf = io.BytesIO()
    metadata = {"axes": "CYX", "Channel": {"Name": names}}
    if pixel_size:
        metadata.update(PhysicalSizeX=pixel_size, PhysicalSizeY=pixel_size)
    tifffile.imwrite(buf, planes, metadata=metadata, ome=True, **kw)
    return buf.getvalue()


def imagej_two_channel(planes: np.ndarray, labels: list[str] | None) -> bytes:
    buf = io.BytesIO()
    metadata = {"axes": "CYX", **({"Labels": labels} if labels else {})}
    tifffile.imwrite(buf, planes, imagej=True, metadata=metadata)
    return buf.getvalue()


def test_channel_names_come_from_the_ome_or_imagej_metadata(sample):
    planes = np.stack([sample, sample // 2])
    for data, expected in [
        (ome_two_channel(planes, ["DAPI", "EdU 488"]), ["DAPI", "EdU_488"]),
        (ome_two_channel(planes, ["", "GFP"]), ["ch1", "GFP"]),
        (imagej_two_channel(planes, ["Hoechst", "γH2AX"]), ["Hoechst", "γH2AX"]),
        (imagej_two_channel(planes, None), ["ch1", "ch2"]),
    ]:
        data_array, info = read_image(data, "two.tif")
        assert info.n_c == 2
        assert file_channel_names(data, info) == expected
    # a one-channel file, or one whose metadata cannot be read, has the numbered names
    with tifffile.TiffFile(io.BytesIO(labels_tiff(sample))) as tif:
        assert tiff_channel_names(tif) is None
    # names are cleaned (no formula, no spaces) and never repeat, even when the file calls a channel "ch3"
    assert channel_names(3, ["=cmd|' /C calc'!A0", "ch3", None]) == ["cmd_C_calc_A0", "ch3", "ch3_"]


def test_channel_planes_are_the_other_channels_at_the_chosen_plane(sample):
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 1000, (3, 2, 64, 80)).astype(np.uint16)  # Z, C, Y, X
    buf = io.BytesIO()
    tifffile.imwrite(buf, stack, imagej=True, metadata={"axes": "ZCYX"})
    data, info = read_image(buf.getvalue(), "zc.tif")
    names = file_channel_names(buf.getvalue(), info)
    others = channel_planes(data, info, Params(channel=1, z="max"), names)
    assert list(others) == ["ch1"]
    np.testing.assert_array_equal(others["ch1"], stack[:, 0].max(axis=0))
    others = channel_planes(data, info, Params(channel=0, z=2), names)
    np.testing.assert_array_equal(others["ch2"], stack[2, 1])
    single, info1 = read_image(labels_tiff(sample), "one.tif")
    assert channel_planes(single, info1, Params(), channel_names(1)) == {}


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
    assert set(files) == {"labels/exp1/img.tif", "masks/exp1/img.tif", "rois/exp1/img.zip", "overlays/exp1/img.png",
                          "measurements/exp1/img.csv"}
    assert set(files) == {zip_path(k, "exp1/img") for k in ("labels", "masks", "rois", "overlays", "measurements")}
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(files["labels/exp1/img.tif"])), result.labels)
    assert len(pd.read_csv(io.BytesIO(files["measurements/exp1/img.csv"]))) == result.count
    assert len(zipfile.ZipFile(io.BytesIO(files["rois/exp1/img.zip"])).namelist()) == result.count
    assert read_image(files["labels/exp1/img.tif"], "l.tif")[1].pixel_size_um is None
    # with the pixel size, both TIFFs carry it
    calibrated = image_outputs(result, "img", pixel_size_um=0.65)
    for kind in ("labels", "masks"):
        assert read_image(calibrated[zip_path(kind, "img")], "x.tif")[1].pixel_size_um == pytest.approx(0.65)


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


def start_script(params: Params, work: Path, in_dir: Path, python: str = sys.executable) -> tuple[subprocess.Popen, Path]:
    """Write segment.py next to a poisoned `segmentation` module and start it cleanly with `python`."""
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
        [python, str(script), str(in_dir), str(out_dir)],
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
# settings suggested from the sample: an ordinary Params, so the script reproduces them too
SCRIPT_PARAMS["suggested-for-the-sample"] = __import__("segmentation").suggest(tifffile.imread(SAMPLE)).params
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
        # the app's measurement table: same columns, same values
        assert_same_table(pd.read_csv(out_dir / "measurements" / f"{name}.csv"), expected.measurements, name)


def assert_same_table(script: pd.DataFrame, app: pd.DataFrame, name: str) -> float:
    """The script's CSV holds the app's table: same columns, values equal to rounding; the largest relative difference."""
    assert list(script.columns) == list(app.columns), name
    assert len(script) == len(app) > 0, name
    worst = 0.0
    for column in app.columns:
        expected = app[column].to_numpy(dtype=float)
        np.testing.assert_allclose(script[column].to_numpy(dtype=float), expected, rtol=1e-12, atol=0,
                                   equal_nan=True, err_msg=f"{name}: {column}")
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.abs(script[column].to_numpy(dtype=float) - expected) / np.abs(expected)
        worst = max(worst, float(np.nanmax(np.where(expected == 0, 0, diff))))
    return worst


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


# --- a folder as labs have them: LZW TIFF, PNGs, an OME-TIFF with two channels, a broken file --------

STAIN = 1000  # the second channel inside the stained nuclei, above a background of 0-49
MIXED_PARAMS = Params(channel=0, positive={"EdU_488": STAIN / 2})


def mixed_inputs(folder: Path) -> dict[str, Path]:
    """control/ and treated/ images in the formats labs use, and a broken TIFF; name -> path."""
    sample = tifffile.imread(SAMPLE)
    rng = np.random.default_rng(7)
    (folder / "control").mkdir(parents=True)
    (folder / "treated").mkdir()
    files = {
        "control/lzw": folder / "control" / "lzw.tif",
        "control/png8": folder / "control" / "png8.png",
        "treated/png16": folder / "treated" / "png16.png",
        "treated/two_channel.ome": folder / "treated" / "two_channel.ome.tif",
    }
    # Fiji's usual output: LZW-compressed, ImageJ-calibrated (0.5 µm)
    tifffile.imwrite(files["control/lzw"], sample, compression="lzw", imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "um"})
    Image.fromarray(sample[:256, :384].astype(np.uint8)).save(files["control/png8"])
    Image.fromarray(synthetic16()).save(files["treated/png16"])  # 16-bit grey
    # nuclei in channel 0 (DAPI); the second stain (EdU) fills every odd-numbered nucleus
    labels = segment(sample, MIXED_PARAMS).labels
    stained = np.isin(labels, np.arange(1, labels.max() + 1, 2))
    edu = (np.where(stained, STAIN, 0) + rng.integers(0, 50, sample.shape)).astype(np.uint16)
    files["treated/two_channel.ome"].write_bytes(ome_two_channel(np.stack([sample, edu]), ["DAPI", "EdU 488"],
                                                                 compression="zlib"))
    # a TIFF cut short in the copy
    (folder / "broken.tif").write_bytes(files["control/lzw"].read_bytes()[:300])
    return files


def app_outputs(path: Path, params: Params) -> tuple:
    """What the app makes of a file: the segmentation, its table with the other channels, the pixel size."""
    data, info = read_image(path)
    plane = select_plane(data, info, channel=params.channel, z=params.z, t=params.t)
    pixel_size = params.pixel_size_um or info.pixel_size_um
    others = channel_planes(data, info, params, file_channel_names(path, info))
    result = segment(plane, params.replace(pixel_size_um=pixel_size), channels=others)
    return result, result.measurements, pixel_size


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("mixed") / "in"
    return folder, mixed_inputs(folder)


def run_script(python: str, work: Path, in_dir: Path, params: Params = MIXED_PARAMS) -> tuple[int, str, Path]:
    proc, out_dir = start_script(params, work, in_dir, python=python)
    _, stderr = proc.communicate(timeout=600)
    return proc.returncode, stderr, out_dir


@pytest.fixture(scope="module")
def mixed_run(mixed_folder, tmp_path_factory):
    return run_script(sys.executable, tmp_path_factory.mktemp("mixed-run"), mixed_folder[0])


def pep723(script: str) -> dict:
    """The script's PEP 723 metadata, read as the PEP's reference implementation does."""
    pattern = r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$"
    blocks = [m for m in re.finditer(pattern, script) if m.group("type") == "script"]
    assert len(blocks) == 1, "one `# /// script` block"
    content = "".join(line[2:] if line.startswith("# ") else line[1:]
                      for line in blocks[0].group("content").splitlines(keepends=True))
    return tomllib.loads(content)


@pytest.fixture(scope="module")
def fresh_venv_run(mixed_folder, tmp_path_factory):
    """The script run in a new venv holding only what its own PEP 723 block lists (as `uv run` would make)."""
    text = script_text(MIXED_PARAMS)
    needs = pep723(text)["dependencies"]
    venv = tmp_path_factory.mktemp("fresh-venv") / "venv"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                              *needs], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    setup_seconds = time.perf_counter() - start
    run = run_script(python, tmp_path_factory.mktemp("fresh-run"), mixed_folder[0])
    print(f"fresh venv: set up in {setup_seconds:.0f} s, script in {time.perf_counter() - start - setup_seconds:.0f} s")
    return run


@pytest.mark.parametrize("where", ["project venv", "fresh venv from its PEP 723 block"])
def test_script_on_lzw_png_ome_and_a_broken_file_equals_the_app(request, mixed_folder, where):
    returncode, stderr, out_dir = request.getfixturevalue("mixed_run" if where == "project venv" else "fresh_venv_run")
    _, files = mixed_folder
    # the broken file is listed with its reason, the others went on, and the exit status says so
    assert returncode == 1, stderr
    errors = pd.read_csv(out_dir / "errors.csv")
    assert errors["file"].tolist() == ["broken.tif"]
    assert "cannot read it as an image" in errors["reason"][0]
    summary = pd.read_csv(out_dir / "summary.csv").set_index("image")
    assert sorted(summary.index) == sorted(files)
    for name, path in files.items():
        result, table, pixel_size = app_outputs(path, MIXED_PARAMS)
        assert result.count > 3, name
        labels_file = out_dir / "labels" / f"{name}.tif"
        np.testing.assert_array_equal(tifffile.imread(labels_file), result.labels, err_msg=name)
        assert read_image(labels_file)[1].pixel_size_um == (pytest.approx(pixel_size) if pixel_size else None)
        script_table = pd.read_csv(out_dir / "measurements" / f"{name}.csv")
        assert_same_table(script_table, table, name)
        # without other channels, that is segment()'s own table
        assert_same_table(script_table[list(result.measurements.columns)], result.measurements, name)
        assert summary.loc[name, "objects"] == result.count
    assert summary.loc["control/lzw", "pixel_size_um"] == 0.5
    assert summary.loc["treated/two_channel.ome", "pixel_size_um"] == pytest.approx(0.325)
    assert np.isnan(summary.loc["control/png8", "pixel_size_um"])


def test_script_measures_the_second_channel_and_its_share_of_positive_nuclei(mixed_run, sample):
    _, _, out_dir = mixed_run
    table = pd.read_csv(out_dir / "measurements" / "treated" / "two_channel.ome.csv")
    assert [c for c in table.columns if c.startswith("EdU")] == ["EdU_488_mean", "EdU_488_integrated",
                                                                   "EdU_488_max", "EdU_488_median",
                                                                   "EdU_488_positive"]
    stained = table["label"] % 2 == 1  # the odd-numbered nuclei hold the stain
    assert (table.loc[stained, "EdU_488_mean"] >= STAIN).all()
    assert (table.loc[~stained, "EdU_488_mean"] < 50).all()
    assert (table["EdU_488_max"] < STAIN + 50).all()
    assert (table["EdU_488_positive"] == stained).all()  # the script's own positive call
    summary = pd.read_csv(out_dir / "summary.csv").set_index("image")
    share = summary.loc["treated/two_channel.ome", "EdU_488_percent_positive"]
    assert share == pytest.approx(100 * stained.mean()) and 40 < share < 60
    table["condition"] = condition_columns(["control/lzw.tif", "treated/two_channel.ome.tif"])["condition"].iloc[1]
    assert percent_positive(table, {"EdU_488": STAIN / 2}).loc["treated", "EdU_488_percent_positive"] == share


def test_script_metadata_lists_what_it_imports_with_the_projects_bounds():
    text = script_text(Params())
    meta = pep723(text)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["requires-python"] == SCRIPT_PYTHON == project["requires-python"]
    assert meta["dependencies"] == list(SCRIPT_DEPENDENCIES)
    assert set(SCRIPT_DEPENDENCIES) <= set(project["dependencies"]), "same bounds as pyproject.toml"
    # every package the script imports is listed; imagecodecs is what tifffile needs for LZW
    distributions = {"PIL": "pillow", "skimage": "scikit-image"}
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    third_party = {distributions.get(m, m) for m in imported - set(sys.stdlib_module_names) - {"__future__"}}
    listed = {re.split(r"[<>=!~ ]", d)[0] for d in SCRIPT_DEPENDENCIES}
    assert third_party == listed - {"imagecodecs"}
    assert "imagecodecs" in listed
    assert "uv run segment.py" in text and "pipx run segment.py" in text


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


def test_script_takes_a_settings_file_or_a_folder_of_them(tmp_path, sample):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    tifffile.imwrite(in_dir / "a.tif", sample)
    tifffile.imwrite(in_dir / "b.tif", sample)
    per_image = tmp_path / "settings"
    per_image.mkdir()
    (per_image / "a.json").write_text(Params(sigma=3.0, min_size=80).to_json())  # b keeps the script's own
    script = tmp_path / "segment.py"
    script.write_text(script_text(Params()))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), str(in_dir), str(out), "--settings", str(per_image)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(tifffile.imread(out / "labels" / "a.tif"),
                                  segment(sample, Params(sigma=3.0, min_size=80)).labels)
    np.testing.assert_array_equal(tifffile.imread(out / "labels" / "b.tif"), segment(sample, Params()).labels)
