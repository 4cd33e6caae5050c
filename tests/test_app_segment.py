"""The Segment page under Streamlit's AppTest: widgets in, results out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from streamlit.testing.v1 import AppTest

from segmentation import Params, segment
from segmentation.display import format_value
from segmentation.io import load_plane
from testdata import SAMPLE, rendered

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label_start: str) -> str:
    for m in at.metric:
        if m.label.startswith(label_start):
            return m.value
    raise AssertionError(f"no metric {label_start!r} in {[m.label for m in at.metric]}")


def histogram_spec(at: AppTest) -> dict:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(c for c in charts if c["layout"].get("shapes"))


def test_default_page_shows_sample_result():
    at = run_app()
    expected = segment(load_plane(SAMPLE)[0], Params())
    assert int(metric(at, "Objects")) == expected.count > 0
    assert metric(at, "Threshold") == format_value(expected.threshold)
    assert len(at.image) >= 4  # raw, filtered, mask, labels (+ overlay, distance map)
    captions = " ".join(str(i.proto.imgs[0].caption) for i in at.image)
    for name in ("Raw", "Filtered", "Mask", "Labels"):
        assert name in captions
    spec = histogram_spec(at)
    assert spec["layout"]["shapes"][0]["x0"] == pytest.approx(expected.threshold)
    assert not at.error


@pytest.mark.parametrize(
    "widget, value",
    [("w_sigma", 3.0), ("w_min_size", 400), ("w_threshold_method", "li")],
)
def test_changing_a_control_changes_the_result(widget, value):
    at = run_app()
    before = (metric(at, "Objects"), metric(at, "Threshold"))
    if widget == "w_threshold_method":
        at.sidebar.selectbox(key=widget).select(value).run()
    else:
        at.sidebar.slider(key=widget).set_value(value).run()
    assert not at.exception
    after = (metric(at, "Objects"), metric(at, "Threshold"))
    assert after != before
    assert at.session_state["params"].to_dict()[widget[2:]] == value


def test_manual_cutoff_follows_the_slider():
    at = run_app()
    at.sidebar.selectbox(key="w_threshold_method").select("manual").run()
    at.sidebar.slider(key="w_threshold_value").set_value(80.0).run()
    assert not at.exception
    assert float(metric(at, "Threshold")) == 80.0
    assert histogram_spec(at)["layout"]["shapes"][0]["x0"] == 80.0
    expected = segment(load_plane(SAMPLE)[0], Params(threshold_method="manual", threshold_value=80.0))
    assert int(metric(at, "Objects")) == expected.count
    at.sidebar.number_input(key="w_threshold_value_typed").set_value(63.0).run()  # typed instead
    assert not at.exception
    assert float(metric(at, "Threshold")) == 63.0
    assert at.sidebar.slider(key="w_threshold_value").value == 63.0


def test_settings_json_round_trip_restores_the_result():
    at = run_app()
    at.sidebar.slider(key="w_sigma").set_value(2.0)
    at.sidebar.selectbox(key="w_threshold_method").select("triangle")
    at.sidebar.slider(key="w_min_size").set_value(60).run()
    tuned = (metric(at, "Objects"), metric(at, "Threshold"))
    saved = at.session_state["params"].to_json()

    next(b for b in at.sidebar.button if b.label == "Reset the settings").click().run()
    assert (metric(at, "Objects"), metric(at, "Threshold")) != tuned
    assert at.session_state["params"] == Params()

    at.file_uploader(key="settings_upload").set_value(("settings.json", saved.encode(), "application/json")).run()
    assert not at.exception
    assert (metric(at, "Objects"), metric(at, "Threshold")) == tuned
    assert at.sidebar.slider(key="w_sigma").value == 2.0
    assert at.sidebar.selectbox(key="w_threshold_method").value == "triangle"


@pytest.mark.shows_errors
def test_bad_settings_json_gives_a_message():
    at = run_app()
    at.file_uploader(key="settings_upload").set_value(("s.json", b'{"schema": "x"}', "application/json")).run()
    assert not at.exception
    assert any("not a settings file" in rendered(e.value) for e in at.error)
    assert int(metric(at, "Objects")) > 0


def _two_channel_tiff() -> tuple[bytes, np.ndarray]:
    """A 16-bit 2-channel ImageJ TIFF: channel 1 holds the sample scaled to ~12-bit DAPI levels."""
    nuclei = load_plane(SAMPLE)[0].astype(np.float64)
    ch1 = (nuclei * 16 + 100).astype(np.uint16)  # ~100 .. 3860
    ch0 = np.full_like(ch1, 500) + np.random.default_rng(1).integers(0, 50, ch1.shape, dtype=np.uint16)
    stack = np.stack([ch0, ch1])
    buf = io.BytesIO()
    tifffile.imwrite(buf, stack, imagej=True, metadata={"axes": "CYX", "unit": "um"}, resolution=(1 / 0.65, 1 / 0.65))
    return buf.getvalue(), ch1


def test_16bit_multichannel_upload_selects_channel_and_shows_16bit_threshold():
    data, ch1 = _two_channel_tiff()
    at = run_app()
    at.file_uploader(key="upload_0").set_value(("cells.tif", data, "image/tiff")).run()
    assert not at.exception
    assert at.sidebar.selectbox(key="w_channel").options == ["0", "1"]
    assert at.sidebar.number_input(key="w_pixel_size_um").value == pytest.approx(0.65)
    at.sidebar.selectbox(key="w_channel").select(1).run()
    assert not at.exception
    expected = segment(ch1, Params(channel=1, pixel_size_um=0.65))
    threshold = float(metric(at, "Threshold"))
    assert metric(at, "Threshold") == format_value(expected.threshold)
    assert threshold > 500  # 16-bit units, not a 0-1 fraction
    assert int(metric(at, "Objects")) == expected.count
    assert "µm²" in " ".join(m.label for m in at.metric)


@pytest.mark.shows_errors
def test_unreadable_upload_keeps_the_current_image():
    at = run_app()
    before = metric(at, "Objects")
    at.file_uploader(key="upload_0").set_value(("broken.tif", b"this is not a tiff", "image/tiff")).run()
    assert not at.exception
    assert any("broken.tif" in rendered(e.value) for e in at.error)
    assert metric(at, "Objects") == before


@pytest.mark.shows_errors
def test_constant_image_upload_is_refused_with_a_reason():
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.full((64, 64), 1000, np.uint16))
    at = run_app()
    before = metric(at, "Objects")
    at.file_uploader(key="upload_0").set_value(("flat.tif", buf.getvalue(), "image/tiff")).run()
    assert not at.exception
    assert any("flat.tif" in rendered(e.value) and "1000" in rendered(e.value) for e in at.error)
    assert metric(at, "Objects") == before


def test_dark_background_image_suggests_dark_objects():
    plane = load_plane(SAMPLE)[0]
    inverted = (plane.max() - plane).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, inverted)
    at = run_app()
    at.file_uploader(key="upload_0").set_value(("inverted.tif", buf.getvalue(), "image/tiff")).run()
    assert not at.exception
    assert any("darker" in w.value for w in at.warning)
    at.sidebar.radio(key="w_objects").set_value("dark").run()
    assert not any("darker" in w.value for w in at.warning)


def test_new_image_starts_unzoomed_and_sample_button_empties_the_uploader():
    data, _ = _two_channel_tiff()
    at = run_app()
    at.select_slider(key="zoom").set_value(4).run()
    at.file_uploader(key="upload_0").set_value(("cells.tif", data, "image/tiff")).run()
    assert not at.exception
    assert at.select_slider(key="zoom").value == 1
    use_sample = next(b for b in at.button if b.label == "Use the sample image")
    use_sample.click().run()
    assert not at.exception
    assert "sample_nuclei.tif" in " ".join(rendered(c.value) for c in at.caption)
    assert at.file_uploader(key="upload_1").value is None  # a fresh, empty uploader


def test_object_filters_toggle_without_losing_the_split():
    # the border filter and max size act on the split's labels: toggling them must
    # give segment()'s answer each way, on and off again
    plane = load_plane(SAMPLE)[0]
    at = run_app()
    base = int(metric(at, "Objects"))
    at.sidebar.checkbox(key="w_exclude_border").check().run()
    assert int(metric(at, "Objects")) == segment(plane, Params(exclude_border=True)).count < base
    at.sidebar.number_input(key="w_max_size").set_value(600).run()
    assert int(metric(at, "Objects")) == segment(plane, Params(exclude_border=True, max_size=600)).count
    at.sidebar.checkbox(key="w_exclude_border").uncheck().run()
    at.sidebar.number_input(key="w_max_size").set_value(0).run()
    assert int(metric(at, "Objects")) == base
    assert not at.exception and not at.error


def test_loaded_settings_beyond_the_sliders_widen_them_instead_of_being_clamped():
    # bug: these valid values came back as 10, 2000, 200, 20 and 301 after one rerun
    loaded = Params(closing_radius=20, min_size=5000, background="tophat", background_radius=240.0,
                    seed_method="h_maxima", h=30.0, threshold_method="local", block_size=501, offset=-5.0)
    at = run_app()
    at.file_uploader(key="settings_upload").set_value(("big.json", loaded.to_json().encode(), "application/json")).run()
    at.run()  # one more rerun, as any widget change would cause
    assert at.session_state["params"] == loaded
    for name in ("closing_radius", "min_size", "background_radius", "h", "block_size"):
        slider = at.sidebar.slider(key=f"w_{name}")
        assert slider.value == getattr(loaded, name), name
        assert slider.max == getattr(loaded, name), name  # widened just enough
    assert sum("Widened" in c.value for c in at.sidebar.caption) == 5
    at.switch_page("pages/batch.py").run()
    assert at.session_state["params"] == loaded  # the Batch page runs what was loaded


def test_downloads_carry_the_files_pixel_size_when_tuning_on_a_working_copy(monkeypatch):
    # bug: on a 2x downsampled working copy the page doubled the pixel size, and the
    # settings JSON and the script were built from that display-only value
    import segmentation.display
    import segmentation.export

    monkeypatch.setattr(segmentation.display, "WORKING_COPY_ABOVE", 100 * 100)  # the 512² sample counts as large
    exported = []
    real_script = segmentation.export.script_text
    monkeypatch.setattr(segmentation.export, "script_text", lambda p: exported.append(p) or real_script(p))
    real_json = Params.to_json
    monkeypatch.setattr(Params, "to_json", lambda self, *a, **k: exported.append(self) or real_json(self, *a, **k))

    at = run_app()
    at.sidebar.number_input(key="w_pixel_size_um").set_value(0.65).run()
    assert any("downsampled copy" in c.label for c in at.checkbox)  # tuning on the working copy
    assert "µm²" in " ".join(m.label for m in at.metric)
    exported.clear()
    at.run()
    assert exported and {p.pixel_size_um for p in exported} == {0.65}
    assert at.session_state["params"].pixel_size_um == 0.65


def test_objects_without_a_seed_get_a_calm_note_and_a_one_click_keep():
    plane = load_plane(SAMPLE)[0]
    at = run_app()
    assert not [w for w in at.warning if "seed" in w.value]  # a note, not a warning
    assert any("got no watershed seed" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Keep them").click().run()
    assert at.session_state["params"].keep_unseeded is True
    assert int(metric(at, "Objects")) == segment(plane, Params(keep_unseeded=True)).count
    assert not any(b.label == "Keep them" for b in at.button)


def test_a_second_channel_is_measured_with_its_positive_share():
    # channel 0: the nuclei; channel 1: a stain in the odd-numbered nuclei of segment()'s labels
    plane = load_plane(SAMPLE)[0]
    labels = segment(plane, Params()).labels
    stain = np.where((labels % 2 == 1) & (labels > 0), 1000, 20).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack([plane, stain]), imagej=True, metadata={"axes": "CYX"})
    at = run_app()
    at.file_uploader(key="upload_0").set_value(("two.tif", buf.getvalue(), "image/tiff")).run()
    assert "Other channels" in [s.value for s in at.subheader]
    at.toggle(key="w_positive::ch2::on").set_value(True).run()
    at.number_input(key="w_positive::ch2").set_value(500.0).run()
    assert at.session_state["params"].positive == (("ch2", 500.0),)
    n = int(labels.max())
    expected = 100.0 * (np.arange(1, n + 1) % 2 == 1).sum() / n
    assert metric(at, "ch2-positive") == f"{expected:.1f}%"
    assert 40 < expected < 60


def test_suggest_sets_the_sidebar_shows_reasons_and_undo_goes_back():
    from segmentation import suggest

    plane = (load_plane(SAMPLE)[0].astype(np.float64) * 16 + 100).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, plane)
    at = run_app()
    at.file_uploader(key="upload_0").set_value(("dapi16.tif", buf.getvalue(), "image/tiff")).run()
    before = at.session_state["params"]
    next(b for b in at.sidebar.button if b.label.startswith("Suggest settings")).click().run()
    expected = suggest(plane)
    assert at.session_state["params"] == expected.params
    assert int(metric(at, "Objects")) == segment(plane, expected.params).count
    note = next(s.value for s in at.success if "Suggested from this image" in s.value)
    assert all(reason in note for reason in expected.reasons)
    assert at.sidebar.selectbox(key="w_threshold_method").value == expected.params.threshold_method
    at.button(key="undo_suggestion").click().run()
    assert at.session_state["params"] == before
    assert not any("Suggested from this image" in s.value for s in at.success)


def test_a_slow_rolling_ball_is_announced_with_a_one_click_faster_equivalent():
    at = run_app()
    assert not any("The filters take about" in i.value for i in at.info)  # the course's recipe is quick
    at.sidebar.selectbox(key="w_background").select("rolling_ball").run()
    at.sidebar.slider(key="w_background_radius").set_value(60.0).run()
    note = next(i.value for i in at.info if "The filters take about" in i.value)
    assert "Rolling ball, fast" in note
    next(b for b in at.button if b.label == "Use it").click().run()
    params = at.session_state["params"]
    assert (params.background, params.background_radius) == ("rolling_ball_fast", 60.0)
    assert at.sidebar.selectbox(key="w_background").value == "rolling_ball_fast"  # the sidebar follows
    assert not any("The filters take about" in i.value for i in at.info)


def test_saturation_is_mentioned_only_when_pixels_pile_up_at_the_maximum():
    at = run_app()  # the sample: one pixel at its maximum, far below the uint16 ceiling
    assert not any("at the maximum value" in c.value for c in at.caption)
    plane = load_plane(SAMPLE)[0].copy()
    plane[:40, :40] = 65535  # 0.6 % of the pixels clipped at the 16-bit ceiling
    buf = io.BytesIO()
    tifffile.imwrite(buf, plane)
    at.sidebar.file_uploader(key="upload_0").set_value(("clipped.tif", buf.getvalue(), "image/tiff")).run()
    note = next(c.value for c in at.caption if "at the maximum value" in c.value)
    assert "1,600 pixels" in note and "uint16 ceiling" in note and "check for saturation" in note
