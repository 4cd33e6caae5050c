"""The Batch page driven by Streamlit's AppTest: upload, settings, run, results.

The batch runs in a background thread of the page; these tests rerun the page
until the run has finished, as the page's progress fragment does in a browser.
"""

from __future__ import annotations

import io
import re
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from streamlit.testing.v1 import AppTest

from segmentation import Params, load_plane, segment
from segmentation.display import format_value
from segmentation.filters import filter_image
from segmentation.threshold import threshold_image
from testdata import ROOT, SAMPLE, require_shared, rendered

APP = str(ROOT / "app.py")
CORRUPT_TIFF = b"II*\x00" + b"\x08\x00\x00\x00" + b"this is not an image" * 8


def batch_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/batch.py").run()
    assert not at.exception
    return at


def upload(files: list[Path], folder: str = "exp") -> list[tuple[str, bytes, str]]:
    """Real images as a folder upload names them: ``exp/<sub>/<file>``."""
    return [(f"{folder}/{f.parent.parent.name}/{f.name}", f.read_bytes(), "image/tiff") for f in files]


def run_to_end(at: AppTest, timeout: float = 120.0, click: bool = True):
    """Click Start, then rerun the page until the batch has finished; return the job."""
    if click:
        at.button(key="batch_start").click().run()
        assert not at.exception
    job = at.session_state["batch_job"]
    at.run()  # the progress view, as the fragment draws it in a browser
    assert job.finished.wait(timeout), f"batch not finished after {timeout} s ({job.done}/{job.total})"
    at.run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]  # the page shows problems as st.error, never a traceback
    return job


def texts(at: AppTest) -> str:
    """The page's words as a reader sees them (markdown escapes removed; plain text included)."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [s.value for s in at.success] + [e.label for e in at.expander]
    parts += [t.value for t in at.text]
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


@pytest.fixture(scope="module")
def kc167() -> list[Path]:
    files = require_shared("bbbc007_kc167_dna/images/*.tif")
    assert len(files) >= 5
    return files[:5]


def test_batch_of_real_images_matches_segment(kc167):
    at = batch_page()
    files = upload(kc167) + [
        ("exp/broken.tif", CORRUPT_TIFF, "image/tiff"),
        ("exp/notes.txt", b"stained with DAPI, 40x", "text/plain"),
        ("exp/.DS_Store", b"\x00\x00\x00\x01Bud1", "application/octet-stream"),
    ]
    at.file_uploader(key="batch_folder").set_value(files).run()
    assert not at.exception
    assert "6 images" in at.success[0].value
    assert "1 file will be skipped" in texts(at)
    assert not at.button(key="batch_start").disabled

    job = run_to_end(at)
    assert job.error is None
    assert job.report is not None and not job.report.stopped

    with zipfile.ZipFile(job.zip_path) as z:
        names = z.namelist()
        labels = sorted(n for n in names if n.startswith("labels/"))
        assert labels == sorted(f"labels/exp/bbbc007_kc167_dna/{f.stem}.tif" for f in kc167)  # sub-folder kept
        for f in kc167:  # same code path as segment() with the same settings
            got = tifffile.imread(io.BytesIO(z.read(f"labels/exp/bbbc007_kc167_dna/{f.stem}.tif")))
            assert got.dtype == np.uint32
            image, _ = load_plane(f)
            np.testing.assert_array_equal(got, segment(image, Params()).labels)
        for part in ("masks/", "overlays/", "measurements/"):
            assert sum(n.startswith(part) for n in names) == 5
        for fixed in ("measurements.csv", "summary.csv", "settings.json", "segment.py", "errors.csv", "README.txt"):
            assert fixed in names
        summary = pd.read_csv(z.open("summary.csv"))
        errors = pd.read_csv(z.open("errors.csv"))
        assert Params.from_json(z.read("settings.json")) == Params()

    assert len(summary) == 7  # 6 inputs and the skipped text file; .DS_Store is not an input
    assert sorted(summary["status"]) == ["failed", "ok", "ok", "ok", "ok", "ok", "skipped"]
    assert summary.loc[summary["status"] == "skipped", "file"].tolist() == ["exp/notes.txt"]
    assert errors["file"].tolist() == ["exp/broken.tif"]
    assert "broken.tif" in errors["reason"][0] and len(errors["reason"][0]) > 30

    # the results on the page
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Segmented"] == "5 of 6" and metrics["Failed"] == "1" and metrics["Skipped"] == "1"
    page = texts(at)
    assert "exp/broken.tif" in page and "Files that could not be segmented (1)" in [s.value for s in at.subheader]
    assert "Skipped files (1)" in page and "exp/notes.txt — not an image file" in page
    assert "robust z-scores from the median" in page  # the outlier rule, in words
    assert at.download_button(key="batch_download").label == "Download all results (zip)"
    assert len(at.image) == 5  # one thumbnail per segmented image
    table = next(d.value for d in at.dataframe if "Status" in d.value.columns)
    assert len(table) == 7 and set(table["Status"]) == {"segmented", "failed", "skipped"}


def test_stop_keeps_what_is_done(kc167):
    # many more images than the pool takes at once (2 per core), so that the run is
    # still going when Stop is clicked, even on a fast machine, and some never start
    n = 16 * (os.cpu_count() or 1) + 16
    files = [(f"exp/img_{i:03d}.tif", kc167[i % len(kc167)].read_bytes(), "image/tiff") for i in range(n)]
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(files).run()
    at.button(key="batch_start").click().run()
    at.button(key="batch_stop").click().run()  # while the workers are still starting
    assert not at.exception
    # "Stopping…" shows only until the images in flight finish, which may already be over
    assert at.session_state["batch_job"].stop.is_set()
    job = run_to_end(at, click=False)
    assert job.report.stopped
    summary = job.report.summary
    done = int((summary["status"] == "ok").sum())
    assert (summary["status"] == "not run").sum() == n - done > 0
    with zipfile.ZipFile(job.zip_path) as z:
        assert z.testzip() is None
        assert sum(name.startswith("labels/") for name in z.namelist()) == done
        assert len(pd.read_csv(z.open("summary.csv"))) == n
    assert any(f"Stopped after {done} of {n} images" in w.value for w in at.warning)


def test_enlarge_shows_the_full_overlay(kc167):
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(upload(kc167[:3])).run()
    run_to_end(at)
    before = len(at.image)
    name = f"exp/bbbc007_kc167_dna/{kc167[0].stem}"
    at.button(key=f"batch_enlarge::{name}").click().run()
    assert not at.exception
    assert len(at.image) == before + 1


def test_fixed_cutoff_is_found_on_the_preview_image(kc167):
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(upload(kc167[:3])).run()
    at.radio(key="batch_cutoff").set_value("fixed").run()
    assert not at.exception
    sample, _ = load_plane(SAMPLE)
    expected = threshold_image(filter_image(sample, Params()), Params()).value
    assert f"**{format_value(expected)}**" in texts(at)

    job = run_to_end(at)
    assert job.params.threshold_method == "manual" and job.params.threshold_value == pytest.approx(expected)
    summary = job.report.summary
    assert (summary["threshold_method"] == "manual").all()
    assert np.allclose(summary["threshold"].astype(float), expected)


def test_each_image_gets_its_own_cutoff(kc167):
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(upload(kc167)).run()
    job = run_to_end(at)
    summary = job.report.summary
    assert (summary["threshold_method"] == "otsu").all()
    assert summary["threshold"].nunique() == 5  # listed per image in the summary


@pytest.mark.shows_errors
def test_settings_file(kc167):
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(upload(kc167[:2])).run()
    at.radio(key="batch_settings_from").set_value("file").run()
    assert at.button(key="batch_start").disabled  # no settings yet

    at.file_uploader(key="batch_settings_file").set_value(("bad.json", b"{not json", "application/json")).run()
    assert not at.exception
    assert "Cannot use 'bad.json'" in rendered(at.error[0].value)
    assert at.button(key="batch_start").disabled

    mine = Params(split="none", min_size=50)
    at.file_uploader(key="batch_settings_file").set_value(("settings.json", mine.to_json().encode(), "application/json")).run()
    assert not at.exception and not at.error
    assert "**Split**: off" in texts(at) and "remove objects smaller than 50 px" in texts(at)
    job = run_to_end(at)
    assert job.params == mine
    with zipfile.ZipFile(job.zip_path) as z:
        assert Params.from_json(z.read("settings.json")) == mine


def test_rerun_replaces_the_previous_zip(kc167):
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(upload(kc167[:2])).run()
    first = run_to_end(at)
    assert first.zip_path.is_file()
    second = run_to_end(at)
    assert second.zip_path != first.zip_path
    assert not first.folder.exists()  # the previous run's results are gone
    with zipfile.ZipFile(second.zip_path) as z:
        assert sum(n.startswith("labels/") for n in z.namelist()) == 2


def test_zip_upload_keeps_folder_names(kc167):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("plate1/A01/img.tif", kc167[0].read_bytes())
        z.writestr("plate1/A02/img.tif", kc167[1].read_bytes())
        z.writestr("plate1/readme.md", "notes")
        z.writestr("__MACOSX/plate1/._img.tif", b"junk")
    at = batch_page()
    at.radio(key="batch_source_kind").set_value("files").run()
    at.file_uploader(key="batch_files").set_value([("plate1.zip", buf.getvalue(), "application/zip"),
                                                   ("extra.tif", kc167[2].read_bytes(), "image/tiff")]).run()
    assert not at.exception
    assert "3 images" in at.success[0].value
    job = run_to_end(at)
    with zipfile.ZipFile(job.zip_path) as z:
        labels = sorted(n for n in z.namelist() if n.startswith("labels/"))
    assert labels == ["labels/extra.tif", "labels/plate1/A01/img.tif", "labels/plate1/A02/img.tif"]
    assert [x.name for x in job.report.skipped if x.kind != "hidden"] == ["plate1.zip/plate1/readme.md"]


@pytest.mark.shows_errors
def test_damaged_zip_and_no_images_are_explained():
    at = batch_page()
    at.radio(key="batch_source_kind").set_value("files").run()
    at.file_uploader(key="batch_files").set_value([("broken.zip", b"PK\x03\x04 nope", "application/zip")]).run()
    assert not at.exception
    assert "not a valid zip file" in rendered(at.error[0].value)
    assert at.button(key="batch_start").disabled
    at.file_uploader(key="batch_files").set_value([("notes.txt", b"hello", "text/plain")]).run()
    assert "None of the 1 uploaded files is an image" in at.warning[0].value
    assert at.button(key="batch_start").disabled


@pytest.mark.shows_errors
def test_a_zip_with_every_fault_returns_every_good_image_and_lists_the_rest(tmp_path):
    # 20 good images, a damaged member, an encrypted one, a zip bomb and a valid 20,000² TIFF
    import hostile

    good = [(f"exp/img_{i:02d}.tif", hostile.small_tiff(i)) for i in range(20)]
    huge = hostile.big_valid_tiff(tmp_path / "huge.tif", 20_000).read_bytes()
    data = hostile.zip_with_every_fault(good, huge)

    at = batch_page()
    at.radio(key="batch_source_kind").set_value("files").run()
    at.file_uploader(key="batch_files").set_value([("plate.zip", data, "application/zip")]).run()
    assert "22 images" in at.success[0].value and "2 files will be skipped" in texts(at)  # as planned...
    job = run_to_end(at)
    summary = job.report.summary
    # ... so counted after the run: the damaged member was an image that failed, the others stay skipped
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Segmented"], metrics["Failed"], metrics["Skipped"]) == ("20 of 22", "2", "2")
    assert dict(zip(summary["file"], summary["status"]))["plate.zip/exp/damaged.tif"] == "failed"
    assert sorted(summary.loc[summary["status"] == "ok", "file"]) == [name for name, _ in good]
    listed = dict(zip(summary["file"], summary["reason"]))
    assert "too large" in listed["exp/huge_20k.tif"]
    assert "cannot" in listed["plate.zip/exp/damaged.tif"] or "damaged" in listed["plate.zip/exp/damaged.tif"]
    assert "encrypted" in listed["plate.zip/exp/secret.tif"]
    assert "unpacks" in listed["plate.zip/exp/zeros.tif"]
    with zipfile.ZipFile(job.zip_path) as z:
        assert sum(n.startswith("labels/") for n in z.namelist()) == 20
        errors = pd.read_csv(z.open("errors.csv"))
    assert len(errors) == 4
    page = texts(at)
    for name in ("exp/huge_20k.tif", "plate.zip/exp/damaged.tif", "plate.zip/exp/secret.tif", "plate.zip/exp/zeros.tif"):
        assert name in page, name


def test_conditions_are_compared_and_an_image_opens_on_the_segment_page(tmp_path):
    plane = load_plane(SAMPLE)[0]
    tiles = {"control": [plane[:256, :256], plane[:256, 256:]], "treated": [plane[256:, :256], plane[256:, 256:]]}
    files = []
    for condition, images in tiles.items():
        for i, image in enumerate(images):
            buf = io.BytesIO()
            tifffile.imwrite(buf, image)
            files.append((f"plate/{condition}/field_{i}.tif", buf.getvalue(), "image/tiff"))
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(files).run()
    job = run_to_end(at)
    assert "Conditions" in [s.value for s in at.subheader]
    table = next(d.value for d in at.dataframe if "nuclei_per_image_mean" in d.value.columns)
    assert table["condition"].tolist() == ["control", "treated"]
    counts = job.report.summary.groupby("condition")["objects"].sum()
    assert table.set_index("condition")["nuclei"].to_dict() == counts.to_dict()

    at.button(key="batch_open::plate/treated/field_1").click().run()
    assert "Segment nuclei" in [t.value for t in at.title]
    assert "field_1.tif" in " ".join(rendered(c.value) for c in at.caption)
    assert int(next(m.value for m in at.metric if m.label == "Objects")) == segment(plane[256:, 256:], job.params).count


def test_suggest_for_each_image(tmp_path):
    from segmentation import suggest

    plane = load_plane(SAMPLE)[0]
    images = {"bright": plane, "dim": (plane // 4).astype(np.uint16)}
    files = []
    for name, image in images.items():
        buf = io.BytesIO()
        tifffile.imwrite(buf, image)
        files.append((f"exp/{name}.tif", buf.getvalue(), "image/tiff"))
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value(files).run()
    at.radio(key="batch_settings_from").set_value("suggest").run()
    job = run_to_end(at)
    assert job.suggest_each
    with zipfile.ZipFile(job.zip_path) as z:
        for name, image in images.items():
            saved = Params.from_json(z.read(f"settings/exp/{name}.json"))
            assert saved == suggest(image).params
            np.testing.assert_array_equal(tifffile.imread(io.BytesIO(z.read(f"labels/exp/{name}.tif"))),
                                          segment(image, saved).labels)


def test_slow_filters_are_announced_before_the_start():
    at = batch_page()
    at.file_uploader(key="batch_folder").set_value([("exp/a.tif", SAMPLE.read_bytes(), "image/tiff")]).run()
    assert not any("These filters take about" in i.value for i in at.info)  # the course's recipe is quick
    at.session_state["params"] = Params(background="rolling_ball", background_radius=60)
    at.run()
    note = next(i.value for i in at.info if "These filters take about" in i.value)
    assert "Rolling ball, fast" in note
    assert not at.button(key="batch_start").disabled  # a note, not a block


def test_the_progress_line_shows_file_names_as_text(tmp_path):
    from pages.batch import JOB_KEY, BatchJob

    at = batch_page()
    # a running batch whose last image has markup in its name
    job = BatchJob(Params(), "", 40, tmp_path, phase="running", done=3, last="exp/002_![x](http:/a.png).tif")
    at.session_state[JOB_KEY] = job
    at.run()
    text = next(p.proto.text for p in at.get("progress"))
    assert "\\!\\[x\\]" in text and "![x](" not in text
    job.phase = "finished"
    job.finished.set()
