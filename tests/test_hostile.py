"""The hostile-input corpus (tests/hostile.py) through the reader and the input stager.

Every bomb is refused from its header, before any pixel is decoded, with a
message saying it is too large; the peak memory of refusing it is measured
in a fresh child process (its peak resident memory, VmHWM).  The child's
address space is capped too, so that a reader that did believe the header
fails there instead of filling this machine.
Every zip fault skips its member only, with its reason, while the good
members come through; nothing is written outside the staging folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

import hostile
from segmentation.batch import output_names, process_one
from segmentation.inputs import ZipLimits, plan_paths, plan_uploads, stage
from segmentation.io import (
    CALIBRATED_UM,
    ImageReadError,
    ImageTooLargeError,
    load_plane,
    read_image,
)
from segmentation.params import Params

ROOT = Path(__file__).resolve().parents[1]
PEAK_LIMIT_MB = 1024
CHILD_CAP = 2560 * 1024**2  # address space of a child: a safety net, not the measure


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return hostile.build(tmp_path_factory.mktemp("hostile"))


def _child(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run `code` in a fresh Python with a capped address space; return its JSON."""
    prelude = (
        "import json, resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({CHILD_CAP}, {CHILD_CAP}))\n"
        "def peak_mb():\n"
        "    # VmHWM: peak resident memory of this program since it started; Linux's\n"
        "    # ru_maxrss would also count the parent's memory at fork time\n"
        "    try:\n"
        "        status = open('/proc/self/status').read()\n"
        "        return int(status.split('VmHWM:')[1].split()[0]) / 1024\n"
        "    except (OSError, IndexError):\n"
        "        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
    )
    run_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for variable in ("NUCLEI_MAX_MEGAPIXELS", "NUCLEI_MAX_GIGABYTES"):
        if variable not in (env or {}):
            run_env.pop(variable, None)
    done = subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        capture_output=True, text=True, cwd=ROOT, env=run_env, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_READ = """
from pathlib import Path
from segmentation.io import load_plane, ImageReadError
path, how = Path(sys.argv[1]), sys.argv[2]
source = path.read_bytes() if how == "bytes" else path
try:
    plane, info = load_plane(source, path.name)
    result = {"error": None, "shape": list(plane.shape)}
except ImageReadError as exc:
    result = {"error": type(exc).__name__, "message": str(exc)}
result["peak_mb"] = peak_mb()
print(json.dumps(result))
"""


# --------------------------------------------------------------------------
# Bombs
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "how", "declared"),
    [
        ("tiled_100k", "path", "100,000×100,000"),
        ("tiled_100k", "bytes", "100,000×100,000"),
        ("strips_100k", "path", "100,000×100,000"),
        ("dots_30k", "path", "30,000×30,000"),
        ("dots_16k", "path", "16,000×16,000"),
        ("png16_13k", "path", "13,000×13,000"),
        ("png16_13k", "bytes", "13,000×13,000"),
        ("jpeg_60k", "path", "60,000×60,000"),
        ("valid_20k", "path", "20,000×20,000"),
    ],
)
def test_bomb_is_refused_from_its_header_in_bounded_memory(corpus, case, how, declared):
    assert corpus[case].stat().st_size < 1_000_000  # small on disk...

    result = _child(_READ, str(corpus[case]), how)

    # ...refused by the size check (not by running out of memory):
    assert result["error"] == "ImageTooLargeError", result
    assert "too large" in result["message"]
    assert declared in result["message"] and "limit is 150 megapixels" in result["message"]
    assert "Fiji" in result["message"] and "NUCLEI_MAX_MEGAPIXELS" in result["message"]
    assert "damaged" not in result["message"]
    assert result["peak_mb"] < PEAK_LIMIT_MB


def test_tile_declared_larger_than_the_image_is_refused(corpus):
    result = _child(_READ, str(corpus["huge_tile"]), "path")
    assert result["error"] == "ImageTooLargeError"
    assert "too large" in result["message"] and "4.3 GB" in result["message"]
    assert result["peak_mb"] < PEAK_LIMIT_MB


def test_environment_variable_raises_the_limit(corpus):
    result = _child(_READ, str(corpus["dots_16k"]), "path", env={"NUCLEI_MAX_MEGAPIXELS": "300"})
    assert result["error"] is None and result["shape"] == [16_000, 16_000]


def test_running_out_of_memory_is_too_large_not_damaged(corpus):
    # allowed by the limits, but the child has far less memory than it needs
    code = _READ.replace(
        "plane, info = load_plane(source, path.name)",
        "resource.setrlimit(resource.RLIMIT_AS, (450 * 2**20, 450 * 2**20))\n"
        "    plane, info = load_plane(source, path.name, max_megapixels=500)",
    )
    result = _child(code, str(corpus["valid_20k"]), "path")
    assert result["error"] == "ImageTooLargeError", result
    assert "ran out of memory" in result["message"]
    assert "damaged" not in result["message"]


def test_zip_bomb_is_refused_from_the_directory_in_bounded_memory(corpus, tmp_path):
    code = """
from pathlib import Path
from segmentation.inputs import plan_paths, stage
plan = plan_paths([Path(sys.argv[1])])
inputs, failed = stage(plan, Path(sys.argv[2]))
print(json.dumps({"inputs": len(inputs), "skipped": [[s.name, s.kind, s.reason] for s in plan.skipped + failed],
                  "peak_mb": peak_mb()}))
"""
    result = _child(code, str(corpus["zip_bomb"]), str(tmp_path / "stage"))
    assert result["inputs"] == 0
    ((name, kind, reason),) = result["skipped"]
    assert (name, kind) == ("bomb.zip/zeros.tif", "too_large")
    assert "1.1 GB" in reason and "zip bomb" in reason
    assert list((tmp_path / "stage").iterdir()) == []
    assert result["peak_mb"] < PEAK_LIMIT_MB


def test_staging_streams_a_large_member(tmp_path):
    # 128 MB of zeros allowed by loose limits: staged piece by piece
    bomb = hostile.zip_bomb(tmp_path / "zeros.zip", 128 << 20)
    code = """
from pathlib import Path
from segmentation.inputs import ZipLimits, plan_paths, stage
plan = plan_paths([Path(sys.argv[1])], limits=ZipLimits(max_ratio=1e9))
before = peak_mb()
inputs, failed = stage(plan, Path(sys.argv[2]))
print(json.dumps({"size": inputs[0].source.stat().st_size, "growth_mb": peak_mb() - before}))
"""
    result = _child(code, str(bomb), str(tmp_path / "stage"))
    assert result["size"] == 128 << 20
    assert result["growth_mb"] < 32  # far less than the 128 MB member


# --------------------------------------------------------------------------
# Correctness and metadata
# --------------------------------------------------------------------------


def test_16_bit_colour_pngs_keep_16_bits(corpus):
    data, info = read_image(corpus["png16_rgb"])
    assert info.dtype == "uint16" and info.is_rgb and info.n_c == 3
    assert data[0, 0, 0, 0, :3].tolist() == [7, 1007, 2007]
    assert data[0, 1, 0, :3, 0].tolist() == [3, 1503, 3003]
    assert data[0, 2].max() == 65535

    rgba, info_rgba = read_image(corpus["png16_rgba"])
    assert info_rgba.n_c == 3
    np.testing.assert_array_equal(rgba, data)

    grey, info_grey = read_image(corpus["png16_grey_alpha"])
    assert info_grey.n_c == 1 and info_grey.dtype == "uint16"
    np.testing.assert_array_equal(grey[0, 0, 0], data[0, 0, 0])


def test_pages_of_different_sizes_are_noted(corpus):
    data, info = read_image(corpus["mixed_sizes"])
    assert data.shape == (1, 1, 1, 512, 512)
    assert info.notes == ("This file holds 3 images of different sizes; only the first, 512×512, is used.",)


@pytest.mark.parametrize(
    ("case", "shown"),
    [("ome_1e308", "1e+308 µm"), ("ome_nan", "nan µm"), ("ome_negative", "-0.5 µm"), ("imagej_1e9", "1e+09 µm")],
)
def test_absurd_pixel_size_is_ignored_with_a_note(corpus, case, shown):
    plane, info = load_plane(corpus[case])
    assert plane.shape == (64, 64)
    assert info.pixel_size_um is None
    (note,) = info.notes
    assert shown in note and "ignored" in note
    # and the settings built from it are valid
    Params(pixel_size_um=info.pixel_size_um)


def test_every_pixel_size_the_reader_believes_is_a_valid_setting():
    for bound in CALIBRATED_UM:
        assert Params(pixel_size_um=bound).pixel_size_um == bound


@pytest.mark.parametrize(("case", "words"), [("empty", "empty (0 bytes)"), ("truncated", "truncated or damaged")])
def test_empty_and_truncated(corpus, case, words):
    with pytest.raises(ImageReadError, match=re.escape(words)) as caught:
        load_plane(corpus[case])
    assert not isinstance(caught.value, ImageTooLargeError)


# --------------------------------------------------------------------------
# Zips
# --------------------------------------------------------------------------

GOOD = ["exp/good_00.tif", "exp/good_01.tif", "exp/good_02.tif"]


@pytest.mark.parametrize(
    ("case", "images", "skipped"),
    [
        ("zip_damaged", GOOD, {"exp/damaged.tif": ("damaged", "invalid block type")}),
        ("zip_encrypted", GOOD, {"exp/secret.tif": ("encrypted", "password")}),
        ("zip_deflate64", GOOD, {"exp/odd.tif": ("damaged", "cannot unpack")}),
        ("zip_lying_size", GOOD, {"exp/liar.tif": ("damaged", "Bad CRC-32")}),
        ("zip_duplicates", ["exp/same.tif", "exp/same (2).tif", "exp/SAME (3).tif"], {}),
        ("zip_unsafe_names", ["a/b/c.tif", "ctrl_[31m_.tif", "escape.tif", "etc/absolute.tif", "Windows/drive.tif"], {}),
        ("zip_hidden", GOOD, {
            "__MACOSX/exp/._good_00.tif": ("hidden", "system file"),
            "exp/.DS_Store": ("hidden", "system file"),
            "exp/Thumbs.db": ("hidden", "system file"),
            "exp/notes.txt": ("not_image", "not an image"),
            "exp/inner.zip": ("nested_zip", "zip inside a zip"),
        }),
        ("zip_bomb", [], {"zeros.tif": ("too_large", "zip bomb")}),
    ],
)
@pytest.mark.parametrize("how", ["path", "upload"])
def test_zip_faults_skip_their_member_only(corpus, tmp_path, case, images, skipped, how):
    path = corpus[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    if how == "path":
        plan = plan_paths([path])
    else:
        plan = plan_uploads([(path.name, path.read_bytes())])
    folder = tmp_path / "stage"

    inputs, failed = stage(plan, folder)

    assert sorted(i.name for i in inputs) == sorted(images)
    reasons = {s.name: (s.kind, s.reason) for s in plan.skipped + failed}
    assert set(reasons) == {f"{path.name}/{name}" for name in skipped}
    for name, (kind, words) in skipped.items():
        assert reasons[f"{path.name}/{name}"][0] == kind
        assert words in reasons[f"{path.name}/{name}"][1]
    # nothing outside the staging folder, and only numbered files inside it
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == sorted(
        ["outside", "outside/keep.txt", "stage"] + [f"stage/{i.source.name}" for i in inputs]
    )
    assert all(re.fullmatch(r"\d{6}\.tif", i.source.name) for i in inputs)
    # the good members are intact
    for inp in inputs:
        assert load_plane(inp.source, inp.name)[0].shape == (64, 64)
    assert plan.problems == []


def test_unsafe_and_duplicate_names_are_listed_as_renamed(corpus):
    plan = plan_paths([corpus["zip_unsafe_names"], corpus["zip_duplicates"]])
    renamed = {r.original: r.name for r in plan.renamed}
    assert renamed == {
        "../../escape.tif": "escape.tif",
        "/etc/absolute.tif": "etc/absolute.tif",
        "C:\\Windows\\drive.tif": "Windows/drive.tif",
        "ctrl\x1b[31m\x07.tif": "ctrl_[31m_.tif",
        "a//b/./c.tif": "a/b/c.tif",
        "exp/same.tif": "exp/same (2).tif",
        "exp/SAME.tif": "exp/SAME (3).tif",
    }


def test_not_a_zip_is_a_problem(corpus):
    plan = plan_uploads([("not_a_zip.zip", corpus["not_a_zip"].read_bytes())])
    assert plan.images == [] and len(plan.problems) == 1
    assert "not a valid zip" in plan.problems[0]


def test_hostile_names_make_safe_output_names(corpus, tmp_path):
    plan = plan_paths([corpus["zip_markup_names"], corpus["zip_unsafe_names"]])
    inputs, failed = stage(plan, tmp_path)
    assert failed == [] and len(inputs) == len(hostile.HOSTILE_NAMES) + len(hostile.UNSAFE_NAMES)
    for out in output_names([i.name for i in inputs]):
        assert not out.startswith("/") and ":" not in out and "\\" not in out
        assert ".." not in PurePosixPath(out).parts


def test_a_batch_page_zip_with_every_fault_keeps_all_good_images(corpus, tmp_path):
    good = [(f"exp/img_{i:02d}.tif", hostile.small_tiff(i)) for i in range(20)]
    plan = plan_uploads([("upload.zip", hostile.zip_with_every_fault(good, corpus["valid_20k"].read_bytes()))])
    inputs, failed = stage(plan, tmp_path / "stage")
    outcomes = [process_one(inp, name, Params()) for inp, name in zip(inputs, output_names([i.name for i in inputs]))]

    assert sorted(o.name for o in outcomes if o.status == "ok") == [n for n, _ in good]
    (too_large,) = [o for o in outcomes if o.status != "ok"]
    assert too_large.name == "exp/huge_20k.tif" and "too large" in too_large.reason
    reasons = {s.name: s.kind for s in plan.skipped + failed}
    assert reasons == {
        "upload.zip/exp/damaged.tif": "damaged",
        "upload.zip/exp/secret.tif": "encrypted",
        "upload.zip/exp/zeros.tif": "too_large",
    }


def test_zip_limits_are_configurable(corpus):
    loose = ZipLimits(max_ratio=1e9, max_member_bytes=2 << 30)
    plan = plan_paths([corpus["zip_bomb"]], limits=loose)
    assert [p.name for p in plan.images] == ["zeros.tif"] and plan.skipped == []
