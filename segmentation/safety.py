"""User strings are data: safe in CSV files and in Streamlit markdown.

File names, zip member names, reasons and settings keys come from the person
using the app (or from whoever made their files).  Two places would read them
as code instead of text:

* a spreadsheet opening our CSV files runs a cell that starts with ``=``,
  ``+``, ``-`` or ``@`` as a formula (CSV injection): :func:`csv_safe` and
  :func:`csv_safe_value` put an apostrophe in front, as OWASP advises;
* Streamlit's markdown turns ``![x](http://...)`` into an image it fetches,
  ``[x](...)`` into a link, backticks into code spans and ``:red[...]``
  into colour: :func:`escape_markdown` makes a string show as itself, and
  :func:`summarize` shows a long list in one short line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "FORMULA_STARTS",
    "csv_safe",
    "csv_safe_value",
    "escape_markdown",
    "summarize",
    "visible",
]

# Cell starts that spreadsheets read as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number ("-12.5", "+3", "1e-3"): data, not a formula, so it
# keeps its value (and its sorting) in the spreadsheet.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_safe_value(value: Any) -> Any:
    """Return `value` ready for a CSV cell: formulas defused, numbers untouched.

    A string starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return gets a leading apostrophe, unless it is a plain number such as
    ``"-12.5"``.  Anything that is not a string is returned as it is.
    Applying it twice changes nothing more.

    Examples
    --------
    >>> csv_safe_value("=HYPERLINK(\\"http://example.invalid\\")")
    '\\'=HYPERLINK("http://example.invalid")'
    >>> csv_safe_value("-12.5"), csv_safe_value(-12.5), csv_safe_value("img.tif")
    ('-12.5', -12.5, 'img.tif')
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        if not _NUMBER.fullmatch(value):
            return "'" + value
    return value


def csv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of `table` whose text cells and column names are CSV-safe.

    Call it on every DataFrame just before ``to_csv``.  Only string cells
    change (see :func:`csv_safe_value`); numeric columns, and numbers inside
    text columns, keep their values.  Write with ``lineterminator="\\r\\n"``
    (RFC 4180) so that a lone carriage return inside a cell is quoted too.

    Parameters
    ----------
    table : DataFrame

    Returns
    -------
    DataFrame
        Same shape, index and dtypes as `table`.

    Examples
    --------
    >>> t = pd.DataFrame({"file": ["=1+2.tif", "a.tif"], "area": [-3.0, 4.0]})
    >>> csv_safe(t).to_dict("list")
    {'file': ["'=1+2.tif", 'a.tif'], 'area': [-3.0, 4.0]}
    """
    out = table.copy()
    for i, dtype in enumerate(out.dtypes):
        if dtype == object or isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype)):
            column = out.iloc[:, i]
            if isinstance(dtype, pd.CategoricalDtype):
                column = column.astype(object)
            out.isetitem(i, column.map(csv_safe_value, na_action="ignore").astype(
                dtype if not isinstance(dtype, pd.CategoricalDtype) else object
            ))
    out.columns = [csv_safe_value(c) for c in out.columns]
    return out


# Characters with a meaning in Streamlit's markdown: CommonMark and GitHub
# punctuation, HTML, Streamlit's :colour[...] and :emoji: directives and
# $LaTeX$.  Each is shown as itself after a backslash.
_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~:$&=\"'%^")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def visible(text: str) -> str:
    """Replace control and invisible formatting characters by visible marks.

    C0 controls become their Unicode "control picture" (a line feed shows as
    ``␊``, an escape as ``␛``); others (bidi overrides, zero-width marks,
    line separators) become ``\N{REPLACEMENT CHARACTER}``.

    Examples
    --------
    >>> visible("a\\nb\\x1bc")
    'a␊b␛c'
    """
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in _CONTROL_CATEGORIES:
            code = ord(ch)
            if code < 0x20:
                out.append(chr(0x2400 + code))
            elif code == 0x7F:
                out.append("\N{SYMBOL FOR DELETE}")
            else:
                out.append("\N{REPLACEMENT CHARACTER}")
        else:
            out.append(ch)
    return "".join(out)


def escape_markdown(text: Any) -> str:
    """Make a user string show as itself inside Streamlit markdown.

    Every markdown, HTML and Streamlit directive character (backticks,
    ``[ ] ( ) !``, ``< >``, ``* _ | # :`` and ``$`` among them) gets a
    backslash; control characters and newlines become visible marks
    (:func:`visible`), so the string stays on one line and cannot start a
    new block.  Use it for names inside ``st.markdown``, ``st.error`` and
    the like; do not put the result inside backticks (code spans show
    backslashes literally).

    Parameters
    ----------
    text : object
        Converted with ``str()``.

    Returns
    -------
    str

    Examples
    --------
    >>> escape_markdown("![x](http://example.invalid/x.png)")
    '\\\\!\\\\[x\\\\]\\\\(http\\\\://example\\\\.invalid/x\\\\.png\\\\)'
    """
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in visible(str(text)))


def summarize(
    items: Iterable[Any],
    limit: int = 3,
    *,
    max_chars: int = 80,
    markdown: bool = False,
) -> str:
    """Show a list in one short line: ``"a.tif, b.tif and 1,699,990 more"``.

    Parameters
    ----------
    items : iterable
        Shown with ``str()``; a long item is cut to `max_chars` with ``…``.
    limit : int
        How many items to show at most.
    max_chars : int
        Longest item shown.
    markdown : bool
        Escape each item with :func:`escape_markdown` (for ``st.markdown``);
        otherwise only control characters are made visible.

    Returns
    -------
    str
        ``""`` for an empty list.

    Examples
    --------
    >>> summarize(["a.tif"])
    'a.tif'
    >>> summarize(["a.tif", "b.tif"])
    'a.tif and b.tif'
    >>> summarize([f"{i}.tif" for i in range(1_700_000)], limit=2)
    '0.tif, 1.tif and 1,699,998 more'
    """
    if limit < 1:
        raise ValueError(f"limit must be 1 or more, not {limit}")
    items = items if isinstance(items, Sequence) else list(items)
    total = len(items)
    shown = [_cut(visible(str(item)), max_chars) for item in items[:limit]]
    if markdown:
        shown = [escape_markdown(item) for item in shown]
    rest = total - len(shown)
    if rest > 0:
        return ", ".join(shown) + f" and {rest:,} more"
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max(1, max_chars - 1)] + "…"
