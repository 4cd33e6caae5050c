"""The Compare page under AppTest, on the built-in sample image."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from segmentation.display import format_value
from testdata import rendered
from segmentation import Params, segment
from segmentation.filters import filter_image
from segmentation.threshold import AUTO_THRESHOLD_METHODS, all_auto_thresholds

APP = "../app.py"  # AppTest resolves it against this file's folder
COMPARE = "pages/compare.py"
SEGMENT = "pages/segment.py"


def open_compare(tab: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if tab:
        at.session_state["cmp_tab"] = tab
    at.switch_page(COMPARE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def cell_buttons(at: AppTest, prefix: str) -> list:
    return [b for b in at.button if str(b.key).startswith(prefix)]


def cell_count(at: AppTest, label: str) -> int:
    """The count printed under the (first) cell named `label`."""
    for text in markdown(at):
        m = re.match(rf"\*\*{re.escape(label)}\*\*  \n\*\*(\d+)\*\* nuclei", text)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no cell {label!r} in {markdown(at)}")


def test_filter_grid_renders_on_sample(sample):
    at = open_compare()
    text = markdown(at)
    for title in ("No filter", "Mean filter", "Gaussian filter", "Median filter"):
        assert any(t.startswith(f"**{title}**") for t in text), title
    buttons = cell_buttons(at, "cmp_use_filter_")
    assert len(buttons) == 13  # 'no filter' once, then 4 sizes for 3 filters
    # the default settings (Gaussian sigma 1) are marked, not offered again
    in_use = [b for b in buttons if b.disabled]
    assert [b.key for b in in_use] == ["cmp_use_filter_gaussian_0"] and in_use[0].label == "✓ In use"
    assert len(at.main.image) == 13 and len(at.sidebar.image) == 1
    # the counts shown are those of segment() with the cell's settings
    assert cell_count(at, "no filter") == segment(sample, Params(filter="none")).count
    assert cell_count(at, "σ = 3 px") == segment(sample, Params(sigma=3.0)).count
    assert not at.error


def test_threshold_grid_renders_with_all_cutoffs_on_one_histogram(sample):
    at = open_compare("Threshold")
    assert len(cell_buttons(at, "cmp_use_threshold_")) == len(AUTO_THRESHOLD_METHODS)
    assert len(at.main.image) == len(AUTO_THRESHOLD_METHODS)
    expected = all_auto_thresholds(filter_image(sample, Params()))
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = sorted(s["x0"] for s in spec["layout"]["shapes"])
    assert lines == pytest.approx(sorted(v for v in expected.values() if v is not None))
    # the cutoff printed under each cell is the method's own
    assert cell_count(at, "Otsu") == segment(sample, Params()).count
    assert any(t.endswith(f"nuclei · cutoff {format_value(expected['otsu'])}") for t in markdown(at))


def test_use_these_settings_changes_what_the_segment_page_shows():
    at = open_compare()
    at.button(key="cmp_use_filter_median_2").click().run()  # median 9 x 9
    assert not at.exception
    params = at.session_state["params"]
    assert (params.filter, params.filter_size, params.threshold_method) == ("median", 9, "otsu")
    assert at.button(key="cmp_use_filter_median_2").label == "✓ In use"
    at.switch_page(SEGMENT).run()
    assert not at.exception
    assert at.sidebar.selectbox(key="w_filter").value == "median"
    assert at.session_state["w_filter_size"] == 9


def test_splitting_sweep_adopts_min_distance_and_footprint(sample):
    at = open_compare("Splitting")
    assert len(cell_buttons(at, "cmp_use_footprint_")) == 12  # 3 footprints x 4 min_distances
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    counts = {tr["name"]: tr["y"] for tr in spec["data"]}
    ref = segment(sample, Params(footprint=15, min_distance=5)).count
    assert counts["footprint 15"][0] == ref
    at.button(key="cmp_use_footprint_15_0").click().run()
    params = at.session_state["params"]
    assert (params.footprint, params.min_distance) == (15, 5)
    at.switch_page(SEGMENT).run()
    assert not at.exception
    assert at.session_state["w_footprint"] == 15 and at.session_state["w_min_distance"] == 5


@pytest.mark.shows_errors
def test_bad_sizes_get_a_plain_message():
    at = open_compare()
    at.text_input(key="cmp_windows").set_value("3, banana").run()
    assert not at.exception
    assert any("'banana' is not a number" in rendered(e.value) for e in at.error)


def test_region_and_tab_survive_a_visit_to_the_segment_page():
    at = open_compare("Threshold")
    at.sidebar.select_slider(key="cmp_size").set_value(128).run()
    at.switch_page(SEGMENT).run()
    at.switch_page(COMPARE).run()
    assert not at.exception
    assert at.sidebar.select_slider(key="cmp_size").value == 128
    assert any(t.startswith("**Automatic thresholds**") for t in markdown(at))


@pytest.mark.shows_errors
def test_unreadable_image_gives_a_message_not_a_traceback():
    from pages.common import ImageSource

    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["source"] = ImageSource("broken.tif", b"not a tiff", "0" * 32)
    at.switch_page(COMPARE).run()
    assert not at.exception
    assert at.error and "broken.tif" in rendered(at.error[0].value)
    assert np.all([b.key is None or not str(b.key).startswith("cmp_use") for b in at.button])


def test_a_method_without_cutoff_gets_a_grey_cell_and_a_reason():
    import io

    import tifffile

    from pages.common import ImageSource, digest_of

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.tile(np.arange(64, dtype=np.uint16), (64, 1)))  # flat histogram
    data = buf.getvalue()
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["source"] = ImageSource("ramp.tif", data, digest_of(data))
    at.session_state["params"] = Params(filter="none")
    at.session_state["cmp_tab"] = "Threshold"
    at.switch_page(COMPARE).run()
    assert not at.exception
    assert "**Minimum**  \nno result" in markdown(at)
    assert any("minimum" in c.value and "try Otsu or Li" in c.value for c in at.caption)
    assert at.button(key="cmp_use_threshold_auto_6").disabled
    assert len(at.main.image) == len(AUTO_THRESHOLD_METHODS)  # the grid keeps its shape
