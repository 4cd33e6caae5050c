"""Tests for segmentation.safety: CSV cells and markdown that stay data."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostile import HOSTILE_NAMES
from segmentation.safety import (
    FORMULA_STARTS,
    csv_safe,
    csv_safe_value,
    escape_markdown,
    summarize,
    visible,
)

# --------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-1e-3", "-1e-3"),
        ("img.tif", "img.tif"),
        ("a=b", "a=b"),
        ("'=1", "'=1"),
        ("", ""),
    ],
)
def test_csv_safe_value(cell, safe):
    assert csv_safe_value(cell) == safe


@pytest.mark.parametrize("value", [-3, -2.5, np.float64(-1.0), None, np.nan, True, b"=x"])
def test_csv_safe_value_leaves_non_strings_alone(value):
    assert csv_safe_value(value) is value


def _formula(cell: object) -> bool:
    """Would a spreadsheet read this cell as a formula?"""
    return (
        isinstance(cell, str)
        and cell.startswith(FORMULA_STARTS)
        and not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", cell)
    )


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("=+-@\t\r'1.e ax")), max_size=8) | st.text(max_size=20))
def test_csv_safe_value_never_leaves_a_formula_and_is_idempotent(cell):
    safe = csv_safe_value(cell)
    assert not _formula(safe)
    assert csv_safe_value(safe) == safe
    # only ever one apostrophe in front, the rest unchanged
    assert safe in (cell, "'" + cell)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=6),
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=6),
)
def test_csv_safe_table_round_trips_numbers_and_defuses_text(names, values):
    n = min(len(names), len(values))
    table = pd.DataFrame({"file": names[:n], "area_px": values[:n], "=label": range(n)})

    safe = csv_safe(table)
    # RFC 4180 line ends: a lone carriage return inside a cell is then quoted
    text = safe.to_csv(index=False, lineterminator="\r\n")
    back = pd.read_csv(io.StringIO(text, newline=""), keep_default_na=False, dtype={"file": str})

    assert list(safe.columns) == ["file", "area_px", "'=label"]
    assert safe.dtypes.tolist() == table.dtypes.tolist()
    np.testing.assert_array_equal(safe["area_px"].to_numpy(), table["area_px"].to_numpy())
    assert not any(_formula(c) for c in safe["file"])
    assert len(back) == n
    assert back["file"].tolist() == safe["file"].tolist()
    # the input table is not changed
    assert list(table.columns) == ["file", "area_px", "=label"]


def test_csv_safe_handles_string_and_categorical_columns():
    table = pd.DataFrame(
        {
            "s": pd.array(["=a", None, "b"], dtype="string"),
            "c": pd.Categorical(["@x", "y", "@x"]),
            "n": [-1, -2, -3],
        }
    )
    safe = csv_safe(table)
    assert safe["s"].tolist()[0] == "'=a" and safe["s"].isna().tolist() == [False, True, False]
    assert safe["c"].tolist() == ["'@x", "y", "'@x"]
    assert safe["n"].tolist() == [-1, -2, -3]


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------

_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$&")


def _unescape(text: str) -> str:
    """What CommonMark shows for backslash escapes of ASCII punctuation."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=60)))
def test_escaped_markdown_shows_exactly_the_text(text):
    escaped = escape_markdown(text)
    # every special character is escaped: an odd run of backslashes before it
    for match in re.finditer(r"(\\*)([^\\])", escaped):
        if match.group(2) in _SPECIAL:
            assert len(match.group(1)) % 2 == 1, (text, escaped)
    assert _unescape(escaped) == visible(text)
    assert "\n" not in escaped and "\r" not in escaped


def test_escaped_markup_names_keep_no_live_syntax():
    for name in HOSTILE_NAMES:
        escaped = escape_markdown(name)
        assert "](" not in escaped and "![" not in escaped
        assert not re.search(r"(?<!\\)[`<]", escaped)


def test_visible_marks_control_characters():
    assert visible("a\tb\x1b\x7f\u202e\u2028c") == "a␉b␛\N{SYMBOL FOR DELETE}\ufffd\ufffdc"
    assert visible("µm café") == "µm café"


def test_summarize():
    assert summarize([]) == ""
    assert summarize(["a"]) == "a"
    assert summarize(["a", "b", "c"]) == "a, b and c"
    assert summarize(["a", "b", "c", "d"], limit=2) == "a, b and 2 more"
    assert summarize((f"{i}.tif" for i in range(1_700_000)), limit=2) == "0.tif, 1.tif and 1,699,998 more"
    assert summarize(["x" * 500], max_chars=10) == "xxxxxxxxx…"
    assert summarize(["`a`\n"], markdown=True) == "\\`a\\`␊"
    with pytest.raises(ValueError, match="limit"):
        summarize(["a"], limit=0)
