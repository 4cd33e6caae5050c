"""Batch: one zip for many images; bad files become rows, never stop the run."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from segmentation import Params, segment
from testdata import SAMPLE
from segmentation.batch import (
    SUMMARY_COLUMNS,
    flag_outliers,
    output_names,
    process_one,
    run_batch,
)
from segmentation.export import script_text
from segmentation.inputs import BatchInput, Skipped, plan_paths, stage
from segmentation.io import load_plane

PARAMS = Params(min_size=15, footprint=21, min_distance=8)


def tiff_bytes(data: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, **kwargs)
    return buf.getvalue()


def bad_files(sample: np.ndarray) -> dict[str, bytes]:
    """Each of these must fail with a clear reason (regex) of its own."""
    nan = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    nan[3, 3] = np.nan
    full = tiff_bytes(sample)
    return {
        "truncated.tif": full[: len(full) // 2],
        "text.tif": b"this is a text file, renamed to .tif\n",
        "empty.tif": b"",
        "constant.tif": tiff_bytes(np.full((32, 32), 7, np.uint16)),
        "nan.tif": tiff_bytes(nan),
    }


BAD_REASONS = {
    "truncated.tif": "truncated or damaged",
    "text.tif": "not a TIFF image",
    "empty.tif": "empty",
    "constant.tif": "every pixel has the value 7",
    "nan.tif": "NaN",
}


def make_folder(root: Path, sample: np.ndarray) -> Path:
    """exp/ with duplicate names in two folders, a calibrated image, bad files and a non-image."""
    exp = root / "exp"
    (exp / "a").mkdir(parents=True)
    (exp / "b").mkdir()
    (exp / "bad").mkdir()
    tifffile.imwrite(exp / "a" / "img.tif", sample[:256, :256])
    tifffile.imwrite(exp / "b" / "img.tif", sample[256:, 256:])
    tifffile.imwrite(exp / "sample.tif", sample, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    for name, data in bad_files(sample).items():
        (exp / "bad" / name).write_bytes(data)
    (exp / "notes.txt").write_text("not an image")
    (exp / ".DS_Store").write_bytes(b"\x00\x01")
    return exp


GOOD = {"exp/a/img": "exp/a/img.tif", "exp/b/img": "exp/b/img.tif", "exp/sample": "exp/sample.tif"}


def collect_inputs(paths: list[Path]) -> tuple[list[BatchInput], list[Skipped]]:
    """What the command line does: plan the files and folders, stage them (files on disk stay in place)."""
    plan = plan_paths(paths)
    inputs, failed = stage(plan, Path(paths[0]).parent / ".staging")
    return inputs, plan.skipped + failed


def shown(skipped: list[Skipped]) -> list[str]:
    return [s.name for s in skipped if s.kind != "hidden"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, sample) -> Path:
    return make_folder(tmp_path_factory.mktemp("batch"), sample)


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    inputs, skipped = collect_inputs([folder])
    progress = []
    report = run_batch(
        inputs, PARAMS, tmp_path_factory.mktemp("out") / "results.zip", workers=1, skipped=skipped,
        on_progress=lambda done, total, outcome: progress.append((done, total, outcome.name, outcome.status)),
    )
    return inputs, skipped, report, progress


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        return {n: z.read(n) for n in z.namelist()}


def expected_result(path: Path, params: Params = PARAMS):
    image, info = load_plane(path)
    if params.pixel_size_um is None and info.pixel_size_um is not None:
        params = params.replace(pixel_size_um=info.pixel_size_um)
    return segment(image, params)


# --- inputs and names --------------------------------------------------------


def test_collect_inputs_keeps_folder_names_and_lists_non_images(folder):
    inputs, skipped = collect_inputs([folder])
    names = [i.name for i in inputs]
    assert set(GOOD.values()) <= set(names)
    assert {f"exp/bad/{n}" for n in BAD_REASONS} <= set(names)
    assert shown(skipped) == ["exp/notes.txt"]  # .DS_Store (hidden) is neither
    assert [s.kind for s in skipped if s.name.endswith(".DS_Store")] == ["hidden"]
    assert all(isinstance(i.source, Path) and i.source.is_file() for i in inputs)
    # a file given directly is named by its file name
    single, none = collect_inputs([folder / "a" / "img.tif"])
    assert [i.name for i in single] == ["img.tif"] and shown(none) == []
    with pytest.raises(FileNotFoundError, match="missing"):
        collect_inputs([folder / "missing"])


def test_output_names_never_collide():
    names = ["a/img.tif", "b/img.tif", "a/img.png", "A/IMG.TIF", "a/img_2.tif", "../../x.tif", "c\\d\\y.tif", "/abs/z.tif", ""]
    out = output_names(names)
    assert len(out) == len(names)
    assert len({o.lower() for o in out}) == len(out)  # unique, even on case-insensitive disks
    assert out[:2] == ["a/img", "b/img"]
    assert out[2] == "a/img_2" and out[3].lower() not in ("a/img", "a/img_2")
    assert out[4].lower() not in {o.lower() for o in out[:4]}
    assert out[5] == "x"  # no path escapes the zip
    assert out[6] == "c/d/y" and out[7] == "abs/z" and out[8] == "image"
    assert all(".." not in o.split("/") and not o.startswith("/") for o in out)


def test_duplicate_file_names_in_different_folders_both_written(run, folder):
    _, _, report, _ = run
    files = read_zip(report.zip_path)
    a = tifffile.imread(io.BytesIO(files["labels/exp/a/img.tif"]))
    b = tifffile.imread(io.BytesIO(files["labels/exp/b/img.tif"]))
    np.testing.assert_array_equal(a, expected_result(folder / "a" / "img.tif").labels)
    np.testing.assert_array_equal(b, expected_result(folder / "b" / "img.tif").labels)
    assert not np.array_equal(a, b)


# --- the results zip ------------------------------------------------------------


def test_good_images_give_labels_equal_to_segment(run, folder):
    _, _, report, _ = run
    files = read_zip(report.zip_path)
    for out_name, rel in GOOD.items():
        path = folder.parent / rel
        expected = expected_result(path)
        labels = tifffile.imread(io.BytesIO(files[f"labels/{out_name}.tif"]))
        assert labels.dtype == np.uint32 and expected.count > 5
        np.testing.assert_array_equal(labels, expected.labels)
        mask = tifffile.imread(io.BytesIO(files[f"masks/{out_name}.tif"]))
        np.testing.assert_array_equal(mask == 255, expected.labels > 0)
        assert files[f"overlays/{out_name}.png"].startswith(b"\x89PNG")
        table = pd.read_csv(io.BytesIO(files[f"measurements/{out_name}.csv"]))
        assert len(table) == expected.count
    assert set(report.thumbnails) == set(GOOD)


def test_bad_files_become_failed_rows_and_errors_csv(run):
    _, _, report, _ = run
    summary = report.summary.set_index("file")
    for name, reason in BAD_REASONS.items():
        row = summary.loc[f"exp/bad/{name}"]
        assert row["status"] == "failed", name
        assert pd.Series([row["reason"]]).str.contains(reason).all(), (name, row["reason"])
    errors = pd.read_csv(io.BytesIO(read_zip(report.zip_path)["errors.csv"]))
    assert list(errors.columns) == ["file", "reason"]
    assert sorted(errors["file"]) == sorted(f"exp/bad/{n}" for n in BAD_REASONS)
    for name, reason in BAD_REASONS.items():
        assert errors.loc[errors["file"] == f"exp/bad/{name}", "reason"].str.contains(reason).all()
    assert sorted(f for f, _ in report.errors) == sorted(errors["file"])
    # no output files for the failed ones
    assert not [n for n in read_zip(report.zip_path) if n.startswith("labels/exp/bad/")]


def test_summary_has_ok_failed_and_skipped_rows(run, folder):
    inputs, skipped, report, _ = run
    zipped = pd.read_csv(io.BytesIO(read_zip(report.zip_path)["summary.csv"]))
    assert list(zipped.columns) == [*SUMMARY_COLUMNS[:2], "condition", *SUMMARY_COLUMNS[2:]]
    assert len(zipped) == len(inputs) + len(shown(skipped))
    assert (zipped["status"] == "ok").sum() == report.n_ok == len(GOOD)
    assert (zipped["status"] == "failed").sum() == len(BAD_REASONS)
    skipped_rows = zipped[zipped["status"] == "skipped"]
    assert skipped_rows["file"].tolist() == ["exp/notes.txt"] and shown(report.skipped) == ["exp/notes.txt"]
    assert skipped_rows["reason"].str.contains("not an image").all()
    ok = zipped[zipped["status"] == "ok"].set_index("image")
    for out_name, rel in GOOD.items():
        expected = expected_result(folder.parent / rel)
        assert ok.loc[out_name, "objects"] == expected.count
        assert ok.loc[out_name, "threshold"] == pytest.approx(expected.threshold)
        assert ok.loc[out_name, "height"] == expected.image.shape[0]
    # the calibrated file's pixel size is used when the settings have none
    assert ok.loc["exp/sample", "pixel_size_um"] == pytest.approx(0.5)
    assert pd.isna(ok.loc["exp/a/img", "pixel_size_um"])
    assert ok.loc["exp/sample", "mean_area_um2"] == pytest.approx(ok.loc["exp/sample", "mean_area_px2"] * 0.25)


def test_measurements_csv_concatenates_tables_with_image_column(run):
    _, _, report, _ = run
    files = read_zip(report.zip_path)
    combined = pd.read_csv(io.BytesIO(files["measurements.csv"]))
    assert combined.columns[0] == "image"
    assert set(combined["image"]) == set(GOOD)
    assert "area_um2" in combined.columns  # from the calibrated image
    for out_name in GOOD:
        part = pd.read_csv(io.BytesIO(files[f"measurements/{out_name}.csv"]))
        rows = combined[combined["image"] == out_name].reset_index(drop=True)
        assert len(rows) == len(part)
        pd.testing.assert_frame_equal(rows[part.columns], part, check_dtype=False)
        if "area_um2" not in part:
            assert rows["area_um2"].isna().all()


def test_settings_readme_and_script_in_zip(run):
    _, _, report, _ = run
    files = read_zip(report.zip_path)
    assert Params.from_json(files["settings.json"]) == PARAMS
    assert files["segment.py"].decode("utf-8") == script_text(PARAMS)
    readme = files["README.txt"].decode("utf-8")
    assert "labels/<name>.tif" in readme and "scikit-image" in readme
    assert "3 ok" in readme and "5 failed" in readme


def test_progress_called_for_every_input(run):
    inputs, _, report, progress = run
    assert [p[0] for p in progress] == list(range(1, len(inputs) + 1))
    assert {p[1] for p in progress} == {len(inputs)}
    assert not report.stopped


def test_two_workers_give_the_same_files_as_one(folder, tmp_path):
    inputs, skipped = collect_inputs([folder / "a", folder / "b", folder / "bad" / "nan.tif", folder / "sample.tif"])
    one = run_batch(inputs, PARAMS, tmp_path / "one.zip", workers=1, skipped=skipped)
    two = run_batch(inputs, PARAMS, tmp_path / "two.zip", workers=2, skipped=skipped)
    f1, f2 = read_zip(one.zip_path), read_zip(two.zip_path)
    assert set(f1) == set(f2)
    label_files = [n for n in f1 if n.startswith(("labels/", "masks/"))]
    assert len(label_files) == 6
    for name in label_files:
        np.testing.assert_array_equal(tifffile.imread(io.BytesIO(f1[name])), tifffile.imread(io.BytesIO(f2[name])))
    s1 = one.summary.drop(columns="seconds").sort_values("image").reset_index(drop=True)
    s2 = two.summary.drop(columns="seconds").sort_values("image").reset_index(drop=True)
    pd.testing.assert_frame_equal(s1, s2)


def test_should_stop_leaves_a_valid_zip_with_not_run_rows(folder, tmp_path):
    inputs, _ = collect_inputs([folder / "a", folder / "b", folder / "sample.tif"])
    done = []
    report = run_batch(
        inputs, PARAMS, tmp_path / "stopped.zip", workers=1,
        on_progress=lambda *args: done.append(args), should_stop=lambda: len(done) >= 1,
    )
    assert report.stopped and len(done) == 1
    files = read_zip(report.zip_path)
    summary = pd.read_csv(io.BytesIO(files["summary.csv"]))
    assert summary["status"].tolist() == ["ok", "not run", "not run"]
    assert summary["reason"].iloc[1:].str.contains("stopped").all()
    assert [n for n in files if n.startswith("labels/")] == [f"labels/{summary['image'].iloc[0]}.tif"]
    assert {"settings.json", "README.txt", "segment.py", "measurements.csv"} <= set(files)
    assert "errors.csv" not in files  # stopping is not an error


def test_stop_before_start_with_workers(folder, tmp_path):
    inputs, _ = collect_inputs([folder / "a"])
    report = run_batch(inputs, PARAMS, tmp_path / "none.zip", workers=2, should_stop=lambda: True)
    assert report.stopped and report.n_ok == 0
    assert report.summary["status"].tolist() == ["not run"]
    assert "summary.csv" in read_zip(report.zip_path)


def test_process_one_never_raises(tmp_path):
    outcome = process_one(BatchInput("gone.tif", tmp_path / "gone.tif"), "gone", PARAMS)
    assert outcome.status == "failed" and "does not exist" in outcome.reason
    assert outcome.row["status"] == "failed" and outcome.row["seconds"] >= 0
    assert outcome.files == {} and outcome.measurements is None


def test_process_one_uses_the_plane_choice(sample):
    stack = np.stack([np.zeros_like(sample) + 3, sample])  # channel 0 is flat
    data = tiff_bytes(stack, imagej=True, metadata={"axes": "CYX"})
    failed = process_one(BatchInput("two.tif", data), "two", PARAMS)
    assert failed.status == "failed" and "channel" in failed.reason
    ok = process_one(BatchInput("two.tif", data), "two", PARAMS.replace(channel=1))
    assert ok.status == "ok"
    np.testing.assert_array_equal(
        tifffile.imread(io.BytesIO(ok.files["labels/two.tif"])), segment(sample, PARAMS).labels
    )



def test_image_with_no_objects_is_ok_with_a_warning(folder, tmp_path):
    inputs, _ = collect_inputs([folder / "a"])
    params = PARAMS.replace(min_size=1_000_000)  # every object is too small
    report = run_batch(inputs, params, tmp_path / "r.zip", workers=1)
    row = report.summary.iloc[0]
    assert row["status"] == "ok" and row["objects"] == 0
    assert "min size" in row["warnings"]
    files = read_zip(report.zip_path)
    assert tifffile.imread(io.BytesIO(files["labels/a/img.tif"])).max() == 0
    assert len(pd.read_csv(io.BytesIO(files["measurements/a/img.csv"]))) == 0
    assert len(pd.read_csv(io.BytesIO(files["measurements.csv"]))) == 0


def test_no_inputs_still_writes_a_valid_zip(tmp_path):
    report = run_batch([], PARAMS, tmp_path / "r.zip", workers=2, skipped=[Skipped("x.txt", "not_image", "not an image")])
    assert report.n_ok == 0 and not report.stopped
    files = read_zip(report.zip_path)
    assert {"summary.csv", "settings.json", "segment.py", "README.txt", "measurements.csv"} <= set(files)
    assert pd.read_csv(io.BytesIO(files["summary.csv"]))["status"].tolist() == ["skipped"]


def test_workers_do_not_rerun_the_callers_main_script(tmp_path):
    """Under Streamlit the main script is the app: workers must not run it again."""
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "main_ran.txt"
    fake_main = tmp_path / "fake_app.py"
    fake_main.write_text(f"open({str(marker)!r}, 'a').write('ran\\n')\n")
    img = tmp_path / "img.tif"
    tifffile.imwrite(img, tifffile.imread(SAMPLE))
    driver = textwrap.dedent(f"""
        import sys, types
        fake = types.ModuleType("__main__"); fake.__file__ = {str(fake_main)!r}; fake.__spec__ = None
        sys.modules["__main__"] = fake  # as Streamlit does with the page script
        from segmentation import Params
        from segmentation.batch import BatchInput, run_batch
        inputs = [BatchInput(f"img{{i}}.tif", {str(img)!r}) for i in range(3)]
        report = run_batch(inputs, Params(), {str(tmp_path / "out.zip")!r}, workers=2)
        assert report.n_ok == 3
    """)
    subprocess.run([sys.executable, "-c", driver], check=True, cwd=tmp_path, timeout=120)
    assert not marker.exists()


# --- quality control: the robust rule --------------------------------------------------------


def _summary(counts, folders=None, thresholds=None, areas=None):
    n = len(counts)
    folders = folders or ["plate"] * n
    return pd.DataFrame({
        "image": [f"{f}/img_{i:02d}" for i, f in enumerate(folders)], "status": ["ok"] * n,
        "objects": counts, "threshold": thresholds or [100.0] * n, "mean_area_px2": areas or [300.0] * n,
    })


def test_qc_keeps_ordinary_variation_quiet_and_flags_the_odd_one():
    rng = np.random.default_rng(4)
    counts = np.round(80 * rng.lognormal(0, 0.3, 30)).astype(int).tolist()  # a varied but ordinary plate
    counts[7] = 9  # one image with almost nothing
    areas = (300 * rng.lognormal(0, 0.15, 30)).tolist()
    flags = flag_outliers(_summary(counts, areas=areas))
    assert flags[7].startswith("few nuclei: 9 (folder median")
    assert (flags != "").sum() <= 2, flags[flags != ""].tolist()


def test_qc_compares_each_image_with_its_own_folder():
    counts = [50, 52, 55, 48, 51, 200, 210, 190, 205, 198]
    folders = ["control"] * 5 + ["treated"] * 5
    assert (flag_outliers(_summary(counts, folders)) == "").all()  # 4x apart, but each folder is consistent
    counts[9] = 60
    flags = flag_outliers(_summary(counts, folders))
    assert flags[9] == "few nuclei: 60 (folder median 200)" and (flags[:9] == "").all()


def test_qc_small_folders_use_the_batch_and_no_nuclei_is_always_flagged():
    summary = _summary([50, 55, 60, 52, 58, 140, 0], ["a", "a", "b", "b", "c", "c", "c"],
                       thresholds=[100.0, 104, 98, 101, 99, 100, 40.0])
    summary.loc[7] = ["c/failed", "failed", None, None, None]
    flags = flag_outliers(summary).tolist()
    assert flags[5] == "many nuclei: 140 (batch median 55)"
    assert flags[6].startswith("no nuclei found") and "low cutoff: 40 (batch median 100)" in flags[6]
    assert flags[7] == "" and flags[:5] == [""] * 5  # failed files are listed elsewhere
    assert flag_outliers(summary.iloc[:3]).tolist() == ["", "", ""]  # too few images to compare


def test_zip_entries_are_readable_by_everyone_once_unzipped(run, tmp_path):
    _, _, report, _ = run
    with zipfile.ZipFile(report.zip_path) as z:
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in z.infolist()}
        z.extractall(tmp_path / "unzipped")
    assert modes and set(modes.values()) == {0o644}, modes
    extracted = [p for p in (tmp_path / "unzipped").rglob("*") if p.is_file()]
    assert extracted and all(p.stat().st_mode & 0o044 == 0o044 for p in extracted)


# --- other channels and conditions --------------------------------------------------------


def two_channel_field(sample: np.ndarray, stained_share: str) -> tuple[np.ndarray, np.ndarray]:
    """Channel 0: the nuclei; channel 1: a stain in the odd-numbered nuclei ('half') or in none."""
    labels = segment(sample, PARAMS).labels
    stained = (labels % 2 == 1) & (labels > 0) if stained_share == "half" else np.zeros(labels.shape, bool)
    stain = np.where(stained, 1000, 20).astype(np.uint16)
    return np.stack([sample, stain]), labels


def test_other_channels_percent_positive_and_conditions_in_the_zip(sample, tmp_path):
    folder = tmp_path / "exp"
    expected = {}
    for condition, share in (("control", "none"), ("treated", "half")):
        stack, labels = two_channel_field(sample, share)
        (folder / condition).mkdir(parents=True)
        tifffile.imwrite(folder / condition / "field.tif", stack, imagej=True, metadata={"axes": "CYX"})
        n = int(labels.max())
        expected[condition] = (n, 100.0 * ((np.arange(1, n + 1) % 2 == 1).sum() if share == "half" else 0) / n)
    inputs, skipped = collect_inputs([folder])
    params = PARAMS.replace(channel=0, positive={"ch2": 500})
    report = run_batch(inputs, params, tmp_path / "r.zip", workers=1, skipped=skipped)
    files = read_zip(report.zip_path)
    measurements = pd.read_csv(io.BytesIO(files["measurements.csv"]))
    treated = measurements[measurements["condition"] == "treated"]
    assert set(treated.loc[treated["label"] % 2 == 1, "ch2_mean"]) == {1000.0}  # exact per-nucleus means
    assert set(treated.loc[treated["label"] % 2 == 0, "ch2_mean"]) == {20.0}
    assert (treated["ch2_positive"] == (treated["label"] % 2 == 1)).all()
    summary = pd.read_csv(io.BytesIO(files["summary.csv"])).set_index("condition")
    conditions = pd.read_csv(io.BytesIO(files["conditions.csv"])).set_index("condition")
    for condition, (n, percent) in expected.items():
        assert summary.loc[condition, "objects"] == n
        assert summary.loc[condition, "ch2_percent_positive"] == pytest.approx(percent)
        assert conditions.loc[condition, "ch2_percent_positive"] == pytest.approx(percent)
    assert 40 < expected["treated"][1] < 60


def test_settings_that_remove_most_of_every_image_are_flagged_even_when_all_images_agree(sample, tmp_path):
    # tuned on large nuclei elsewhere: min size above most of the sample's nuclei, on every image alike
    inputs = [BatchInput(f"plate/field_{i}.tif", tiff_bytes(np.rot90(sample, i))) for i in range(6)]
    report = run_batch(inputs, Params(min_size=1200), tmp_path / "out.zip", workers=1)
    summary = report.summary
    assert (summary["removed_fraction"] > 0.5).all()
    assert summary["check"].str.contains("most of the mask removed").all()
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        assert pd.read_csv(z.open("summary.csv"))["check"].str.contains("most of the mask removed").all()
    # with the course's settings nothing is flagged for it
    fine = run_batch(inputs, Params(), tmp_path / "fine.zip", workers=1).summary
    assert not fine["check"].str.contains("most of the mask removed").any()


def _slow_all_measurements(parts: list[pd.DataFrame]) -> str:
    """The all-objects table as the csv module writes it, each part's rows put in the union of the columns."""
    import csv

    from segmentation.safety import csv_safe

    columns: list[str] = []
    for part in parts:
        columns += [c for c in part.columns if c not in columns]
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for part in parts:
        text = csv_safe(part).to_csv(index=False, lineterminator="\r\n")
        writer.writerows(csv.DictReader(io.StringIO(text, newline="")))
    return out.getvalue()


@pytest.mark.parametrize("seed", range(4))
def test_all_measurements_copies_parts_with_the_tables_columns_as_the_csv_module_would_write_them(tmp_path, seed):
    from segmentation.batch import ImageOutcome, _ZipWriter
    from segmentation.export import zip_path

    rng = np.random.default_rng(seed)
    awkward = ["a,b", 'say "hi"', "line\r\nbreak", "cr\ronly", "=1+2", "", "µm²", " lead", "tab\there"]
    parts = []
    for i in range(5):
        n = int(rng.integers(0, 6))
        table = pd.DataFrame({"image": [rng.choice(awkward) + str(i)] * n, "label": np.arange(1, n + 1),
                              "area_px2": rng.integers(1, 900, n),
                              "mean_intensity": rng.normal(500, 300, n).round(int(rng.integers(0, 9)))})
        if seed % 2 and i == 3:  # a calibrated image brings a column the others lack, in the middle
            table.insert(2, "area_um2", table["area_px2"] * 0.25)
        if rng.random() < 0.3:
            table.loc[0:1, "mean_intensity"] = np.nan
        parts.append(table)
    writer = _ZipWriter(tmp_path / "out.zip", Params())
    for i, table in enumerate(parts):
        writer.add(ImageOutcome(f"{i}.tif", str(i), "ok", measurements=table))
    writer.close(pd.DataFrame({"image": [], "status": []}), [])
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        written = z.read(zip_path("all_measurements")).decode("utf-8")
    assert written == _slow_all_measurements(parts)
    # and every awkward cell reads back as it was (a lone carriage return used to end a row)
    back = pd.read_csv(io.StringIO(written, newline=""), keep_default_na=False, na_values=[""])
    expected = pd.concat(parts, ignore_index=True)
    assert back["image"].tolist() == [("'" + v if v[:1] == "=" else v) for v in expected["image"]]
    pd.testing.assert_series_equal(back["mean_intensity"], expected["mean_intensity"], check_dtype=False)
