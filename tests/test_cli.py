"""Command line: exit codes, progress on stderr, and bad inputs that never stop the others."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from segmentation import Params, segment
from segmentation.cli import main


def tiff_bytes(data: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, **kwargs)
    return buf.getvalue()


def zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        return {n: z.read(n) for n in z.namelist()}


@pytest.fixture()
def good_dir(tmp_path, sample) -> Path:
    folder = tmp_path / "good"
    folder.mkdir()
    tifffile.imwrite(folder / "left.tif", sample[:, :256])
    tifffile.imwrite(folder / "right.tif", sample[:, 256:])
    return folder


def stack_5d(sample: np.ndarray) -> np.ndarray:
    """ImageJ TZCYX, T=2, Z=3, C=2: nuclei in channel 1."""
    crop = sample[:128, :128]
    rng = np.random.default_rng(2)
    data = rng.integers(0, 20, (2, 3, 2, *crop.shape)).astype(np.uint16)
    for t in range(2):
        for z in range(3):
            data[t, z, 1] = crop // (1 + abs(z - 1)) + t
    return data


BAD_INPUTS = {
    "empty.tif": "empty",
    "truncated.tif": "truncated or damaged",
    "text.tif": "not a TIFF image",
    "constant.tif": "every pixel has the value",
    "nan.tif": "NaN",
    "stack5d.tif": "2 time points, 2 channels and 3 z-slices: choose",
}


@pytest.fixture()
def bad_dir(tmp_path, sample) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    full = tiff_bytes(sample)
    nan = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    nan[5, 5] = np.nan
    (folder / "empty.tif").write_bytes(b"")
    (folder / "truncated.tif").write_bytes(full[: len(full) // 3])
    (folder / "text.tif").write_text("Hello, I am a text file.\n")
    (folder / "constant.tif").write_bytes(tiff_bytes(np.full((40, 40), 1000, np.uint16)))
    (folder / "nan.tif").write_bytes(tiff_bytes(nan))
    (folder / "stack5d.tif").write_bytes(tiff_bytes(stack_5d(sample), imagej=True, metadata={"axes": "TZCYX"}))
    return folder


def test_exit_0_when_every_input_succeeds(good_dir, tmp_path, capsys, sample):
    out = tmp_path / "results.zip"
    assert main([str(good_dir), "--out", str(out), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "[1/2] good/left.tif:" in err and "[2/2] good/right.tif:" in err
    assert "objects, threshold" in err
    assert f"wrote {out}: 2 of 2 images segmented, 0 failed" in err
    files = zip_files(out)
    assert "errors.csv" not in files
    labels = tifffile.imread(io.BytesIO(files["labels/good/left.tif"]))
    np.testing.assert_array_equal(labels, segment(sample[:, :256], Params()).labels)


def test_exit_1_when_some_fail_and_the_rest_are_written(good_dir, bad_dir, tmp_path, capsys, sample):
    out = tmp_path / "results.zip"
    assert main([str(good_dir), str(bad_dir), "--out", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    for name in BAD_INPUTS:
        assert f"bad/{name}: FAILED: " in err
    assert "2 of 8 images segmented, 6 failed" in err

    files = zip_files(out)
    errors = pd.read_csv(io.BytesIO(files["errors.csv"])).set_index("file")
    assert sorted(errors.index) == sorted(f"bad/{n}" for n in BAD_INPUTS)
    for name, reason in BAD_INPUTS.items():
        message = errors.loc[f"bad/{name}", "reason"]
        assert reason in message, (name, message)
        assert name in message  # names the file
    # the good inputs still come back, equal to segment()
    for name, part in [("left", sample[:, :256]), ("right", sample[:, 256:])]:
        labels = tifffile.imread(io.BytesIO(files[f"labels/good/{name}.tif"]))
        np.testing.assert_array_equal(labels, segment(part, Params()).labels)
    summary = pd.read_csv(io.BytesIO(files["summary.csv"]))
    assert (summary["status"] == "ok").sum() == 2 and (summary["status"] == "failed").sum() == 6


def test_settings_choose_the_plane_of_a_5d_stack(bad_dir, tmp_path, capsys, sample):
    params = Params(t=1, channel=1, z="max", footprint=15, min_distance=5)
    settings = tmp_path / "settings.json"
    settings.write_text(params.to_json(), encoding="utf-8")
    out = tmp_path / "r.zip"
    assert main([str(bad_dir / "stack5d.tif"), "--out", str(out), "--settings", str(settings), "--workers", "1"]) == 0
    files = zip_files(out)
    expected = segment(stack_5d(sample)[1, :, 1].max(axis=0), params)
    assert expected.count > 2
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(files["labels/stack5d.tif"])), expected.labels)
    assert Params.from_json(files["settings.json"]) == params


def test_skipped_files_are_reported(good_dir, tmp_path, capsys):
    (good_dir / "notes.txt").write_text("hello")
    out = tmp_path / "r.zip"
    assert main([str(good_dir), "--out", str(out), "--workers", "1"]) == 0
    assert "skipped good/notes.txt: not an image file" in capsys.readouterr().err
    summary = pd.read_csv(io.BytesIO(zip_files(out)["summary.csv"]))
    assert summary.loc[summary["status"] == "skipped", "file"].tolist() == ["good/notes.txt"]


def test_exit_2_for_a_missing_input(good_dir, tmp_path, capsys):
    out = tmp_path / "r.zip"
    assert main([str(good_dir), str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "other", "version": 1, "params": {}}', "not a settings file"),
        (Params(sigma=2.0).to_json().replace('"sigma"', '"sigmaa"'), "unknown setting"),
        (Params().to_json().replace('"min_size": 10', '"min_size": -3'), "min_size"),
    ],
    ids=["not-json", "other-schema", "unknown-key", "bad-value"],
)
def test_exit_2_for_bad_settings(good_dir, tmp_path, capsys, content, message):
    settings = tmp_path / "settings.json"
    settings.write_text(content, encoding="utf-8")
    out = tmp_path / "r.zip"
    assert main([str(good_dir), "--out", str(out), "--settings", str(settings)]) == 2
    err = capsys.readouterr().err
    assert "cannot use settings" in err and message in err
    assert not out.exists()


def test_exit_2_for_missing_settings_file(good_dir, tmp_path, capsys):
    assert main([str(good_dir), "--out", str(tmp_path / "r.zip"), "--settings", str(tmp_path / "none.json")]) == 2
    assert "cannot use settings" in capsys.readouterr().err


def test_exit_2_when_no_images(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    out = tmp_path / "r.zip"
    assert main([str(folder), "--out", str(out)]) == 2
    assert "no image files" in capsys.readouterr().err
    assert not out.exists()


def test_exit_2_for_usage_errors(good_dir, tmp_path, capsys):
    assert main([str(good_dir)]) == 2  # no --out
    assert "--out" in capsys.readouterr().err
    assert main([str(good_dir), "--out", str(tmp_path / "r.zip"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "r.zip")]) == 2  # no input


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "INPUT" in capsys.readouterr().out


def test_python_dash_m_segmentation_runs(good_dir, tmp_path):
    out = tmp_path / "r.zip"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "segmentation", str(good_dir / "left.tif"), "--out", str(out), "--workers", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[1/1] left.tif:" in proc.stderr
    assert "labels/left.tif" in zip_files(out)


def test_a_bomb_first_never_sinks_the_good_images(tmp_path, capsys):
    # the bomb declares 100,000² in 78 kB and comes first; then 20 good images, on 2 worker processes
    from hostile import small_tiff, tiled_bomb

    folder = tmp_path / "plate"
    folder.mkdir()
    (folder / "000_bomb.tif").write_bytes(tiled_bomb(100_000))
    for i in range(20):
        (folder / f"img_{i:02d}.tif").write_bytes(small_tiff(i, side=128))
    out = tmp_path / "results.zip"
    assert main([str(folder), "--out", str(out), "--workers", "2"]) == 1  # one failed, the rest written
    files = zip_files(out)
    assert sorted(n for n in files if n.startswith("labels/")) == [f"labels/plate/img_{i:02d}.tif" for i in range(20)]
    summary = pd.read_csv(io.BytesIO(files["summary.csv"])).set_index("image")
    assert (summary["status"] == "ok").sum() == 20
    assert summary.loc["plate/000_bomb", "status"] == "failed"
    assert "too large" in summary.loc["plate/000_bomb", "reason"]
    errors = pd.read_csv(io.BytesIO(files["errors.csv"]))
    assert errors["file"].tolist() == ["plate/000_bomb.tif"] and "100,000×100,000" in errors["reason"][0]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, '{"' + 'k": 1, "' * 2_000_000 + 'z": 0}'],
                         ids=["nested-100000-deep", "huge-with-unknown-keys"])
def test_hostile_settings_exit_2_with_one_short_line(good_dir, tmp_path, capsys, content):
    settings = tmp_path / "settings.json"
    settings.write_text(content)
    assert main([str(good_dir), "--out", str(tmp_path / "r.zip"), "--settings", str(settings)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 400 and "Traceback" not in err
    assert not (tmp_path / "r.zip").exists()


def test_pattern_names_conditions_and_a_bad_pattern_is_a_usage_error(tmp_path, sample, capsys):
    folder = tmp_path / "plate"
    folder.mkdir()
    for well, treatment in (("A01", "DMSO"), ("A02", "drug"), ("B01", "DMSO")):
        tifffile.imwrite(folder / f"{well}_{treatment}_1.tif", sample[:256, :256])
    out = tmp_path / "r.zip"
    assert main([str(folder), "--out", str(out), "--workers", "1",
                 "--pattern", r"(?P<well>[A-H]\d{2})_(?P<treatment>[^_]+)"]) == 0
    summary = pd.read_csv(io.BytesIO(zip_files(out)["summary.csv"]))
    assert summary[["well", "treatment"]].values.tolist() == [["A01", "DMSO"], ["A02", "drug"], ["B01", "DMSO"]]
    conditions = pd.read_csv(io.BytesIO(zip_files(out)["conditions.csv"]))
    assert len(conditions) == 3 and sorted(conditions["treatment"]) == ["DMSO", "DMSO", "drug"]
    assert main([str(folder), "--out", str(tmp_path / "x.zip"), "--pattern", "(no groups)"]) == 2
    assert "named group" in capsys.readouterr().err


def test_settings_auto_suggests_settings_for_each_image(tmp_path, sample):
    from segmentation import suggest

    folder = tmp_path / "in"
    folder.mkdir()
    images = {"dense": sample, "inverted": (sample.max() - sample).astype(np.uint16)}
    for name, image in images.items():
        tifffile.imwrite(folder / f"{name}.tif", image)
    out = tmp_path / "r.zip"
    assert main([str(folder), "--out", str(out), "--settings", "auto", "--workers", "1"]) == 0
    files = zip_files(out)
    summary = pd.read_csv(io.BytesIO(files["summary.csv"])).set_index("image")
    for name, image in images.items():
        expected = suggest(image).params
        saved = Params.from_json(files[f"settings/in/{name}.json"])
        assert saved == expected  # no plane or pixel size to keep here
        labels = tifffile.imread(io.BytesIO(files[f"labels/in/{name}.tif"]))
        np.testing.assert_array_equal(labels, segment(image, expected).labels)
        assert summary.loc[f"in/{name}", "suggest_threshold_method"] == expected.threshold_method
        assert summary.loc[f"in/{name}", "suggest_diameter_px"] > 10
    assert summary.loc["in/inverted", "suggest_polarity"] == "dark"
