"""Conditions: names to condition columns, and per-condition summaries with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.conditions import (
    NO_CONDITION,
    attach_conditions,
    compile_pattern,
    condition_columns,
    condition_table,
    mark_positive,
    nuclei_per_image,
    per_nucleus,
    percent_positive,
    preview,
)

WELLS = r"(?P<well>[A-H]\d{2})_(?P<treatment>[A-Za-z]+)"


# --- names to conditions ----------------------------------------------------------------


def test_the_default_condition_is_the_first_level_sub_folder():
    names = ["control/img1.tif", "treated/day2/img1.tif", "img3.tif", "sub\\win.tif", "./top.tif"]
    table = condition_columns(names)
    assert list(table.columns) == ["condition"]
    assert table["condition"].tolist() == ["control", "treated", NO_CONDITION, "sub", NO_CONDITION]
    assert table.index.tolist() == names


def test_a_pattern_makes_one_column_per_named_group_searched_in_the_relative_path():
    names = ["plate1/B03_DMSO_1.tif", "plate1/C11_Taxol_2.tif", "plate1/notes.tif"]
    table = condition_columns(names, WELLS)
    assert list(table.columns) == ["well", "treatment"]
    assert table.to_dict("list") == {"well": ["B03", "C11", ""], "treatment": ["DMSO", "Taxol", ""]}
    # a group that takes no part in the match is empty too
    optional = condition_columns(["A01.tif", "A01_x.tif"], r"(?P<well>[A-H]\d{2})(_(?P<extra>\w))?")
    assert optional["extra"].tolist() == ["", "x"]
    # the folder is part of the relative path the pattern sees
    assert condition_columns(["exp2/a.tif"], r"exp(?P<experiment>\d+)/")["experiment"].tolist() == ["2"]


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(?P<well>[A-H", "not a valid regular expression"),
        (r"([A-H]\d{2})", "has no named group"),
        (r"(?P<image>\w+)", "already a column"),
        ("(?P<a>x)" * 100, "at most 500"),
    ],
)
def test_a_bad_pattern_says_what_is_wrong(pattern, words):
    with pytest.raises(ValueError, match=words):
        compile_pattern(pattern)
    with pytest.raises(ValueError, match=words):
        preview(["a.tif"], pattern)


def test_preview_shows_what_the_first_images_give_and_which_did_not_match():
    names = [f"A0{i}_DMSO.tif" for i in range(1, 8)] + ["readme.tif"]
    shown = preview(names, WELLS, limit=3)
    assert shown.to_dict("list") == {"image": names[:3], "well": ["A01", "A02", "A03"],
                                     "treatment": ["DMSO"] * 3, "matched": [True] * 3}
    assert preview(["x/a.tif", "readme.tif"], WELLS)["matched"].tolist() == [False, False]
    # a blank pattern means the sub-folder
    folders = preview(["x/a.tif", "b.tif"], "  ")
    assert folders.to_dict("list") == {"image": ["x/a.tif", "b.tif"], "condition": ["x", ""], "matched": [True, True]}


def test_attach_conditions_inserts_the_columns_after_the_image_column():
    summary = pd.DataFrame({"image": ["c/1", "t/1", "other"], "objects": [3, 4, 5]})
    conditions = condition_columns(["c/1", "t/1"])
    out = attach_conditions(summary, conditions)
    assert list(out.columns) == ["image", "condition", "objects"]
    assert out["condition"].tolist() == ["c", "t", NO_CONDITION]
    # attaching again (e.g. with a pattern) replaces the old columns
    again = attach_conditions(out, pd.DataFrame({"condition": ["x"]}, index=["c/1"]))
    assert list(again.columns) == ["image", "condition", "objects"]
    assert again["condition"].tolist() == ["x", "", ""]
    assert out is not summary and "condition" not in summary


# --- per-condition summaries ------------------------------------------------------------


@pytest.fixture()
def summary() -> pd.DataFrame:
    return pd.DataFrame({
        "image": ["c/1", "c/2", "c/3", "t/1", "t/2", "t/3", "e/1"],
        "condition": ["control", "control", "control", "treated", "treated", "treated", "empty"],
        "status": ["ok", "ok", "ok", "ok", "ok", "failed", "ok"],
        "objects": [10, 20, 60, 4, 8, np.nan, 0],
    })


@pytest.fixture()
def measurements() -> pd.DataFrame:
    # control: 4 nuclei (2 EdU-positive), treated: 3 nuclei (3 positive, 1 GFP-positive)
    return pd.DataFrame({
        "image": ["c/1", "c/1", "c/2", "c/3", "t/1", "t/1", "t/2"],
        "condition": ["control"] * 4 + ["treated"] * 3,
        "area_px2": [100.0, 200.0, 300.0, 1000.0, 50.0, 70.0, 90.0],
        "EdU_mean": [600.0, 400.0, 500.0, 501.0, 900.0, 800.0, 700.0],
        "GFP_mean": [1.0, 2.0, 3.0, 4.0, 50.0, 1.0, 1.0],
        "GFP_ring_mean": [0.0] * 7,
    })


def test_nuclei_per_image_counts_only_images_that_were_segmented(summary):
    table = nuclei_per_image(summary)
    assert table.index.tolist() == ["control", "empty", "treated"]
    assert table["images"].tolist() == [3, 1, 2]  # the failed treated image is left out
    assert table["nuclei"].tolist() == [90, 0, 12]
    assert table["nuclei_per_image_mean"].tolist() == [30.0, 0.0, 6.0]
    assert table["nuclei_per_image_median"].tolist() == [20.0, 0.0, 6.0]


def test_per_nucleus_mean_and_median_of_any_column(measurements):
    area = per_nucleus(measurements)
    assert area.loc["control"].tolist() == [4, 400.0, 250.0]
    assert area.loc["treated"].tolist() == [3, 70.0, 70.0]
    edu = per_nucleus(measurements, "EdU_mean")
    assert edu.loc["treated", "EdU_mean_median"] == 800.0
    with pytest.raises(ValueError, match="no column 'area_um2'"):
        per_nucleus(measurements, "area_um2")
    with pytest.raises(ValueError, match="no condition column 'well'"):
        per_nucleus(measurements, by=["well"])


def test_positive_means_strictly_above_the_cutoff(measurements):
    marked = mark_positive(measurements, {"EdU": 500, "GFP": 10})
    assert marked["EdU_positive"].tolist() == [True, False, False, True, True, True, True]  # 500 is not above 500
    assert marked["GFP_positive"].sum() == 1
    assert "EdU_positive" not in measurements
    shares = percent_positive(measurements, {"EdU": 500, "GFP": 10})
    assert shares.loc["control"].tolist() == [50.0, 0.0]
    assert shares.loc["treated", "EdU_percent_positive"] == 100.0
    assert shares.loc["treated", "GFP_percent_positive"] == pytest.approx(100 / 3)


def test_a_cutoff_for_a_channel_that_was_not_measured_is_refused(measurements):
    with pytest.raises(ValueError, match=r"no channel 'DAPI'.*channels measured: \['EdU', 'GFP'\]"):
        mark_positive(measurements, {"DAPI": 3})
    with pytest.raises(ValueError, match="finite number"):
        mark_positive(measurements, {"EdU": float("nan")})
    with pytest.raises(ValueError, match="must be a number"):
        mark_positive(measurements, {"EdU": "high"})


def test_condition_table_keeps_conditions_without_nuclei(summary, measurements):
    table = condition_table(summary, measurements, "area_px2", {"EdU": 500})
    assert table["condition"].tolist() == ["control", "empty", "treated"]
    assert table["nuclei"].tolist() == [90, 0, 12]  # from the summary
    assert table["nuclei_measured"].tolist() == [4, 0, 3]  # rows of the (toy) measurement table
    row = table.set_index("condition")
    assert row.loc["control", "area_px2_mean"] == 400.0
    assert row.loc["empty", "nuclei_measured"] == 0
    assert np.isnan(row.loc["empty", "area_px2_mean"]) and np.isnan(row.loc["empty", "EdU_percent_positive"])
    assert row.loc["treated", "EdU_percent_positive"] == 100.0


def test_several_condition_columns_group_together():
    summary = pd.DataFrame({"well": ["A01", "A01", "B01"], "treatment": ["DMSO", "DMSO", "Taxol"],
                            "objects": [2, 1, 1]})
    measurements = pd.DataFrame({"well": ["A01", "A01", "A01", "B01"], "treatment": ["DMSO"] * 3 + ["Taxol"],
                                 "area_px2": [1.0, 2.0, 3.0, 10.0], "ch2_mean": [0.0, 9.0, 9.0, 9.0]})
    table = condition_table(summary, measurements, cutoffs={"ch2": 5}, by=["well", "treatment"])
    assert table[["well", "treatment"]].values.tolist() == [["A01", "DMSO"], ["B01", "Taxol"]]
    assert table["nuclei_per_image_mean"].tolist() == [1.5, 1.0]
    assert table["ch2_percent_positive"].tolist() == pytest.approx([200 / 3, 100.0])
