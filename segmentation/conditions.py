"""Conditions of a batch: which images belong together, and how they compare.

An image's condition is read from its relative path: by default its
first-level sub-folder (``control/img1.tif`` is in ``control``), or, with a
file-name pattern, the named groups of a regular expression (``(?P<well>[A-H]\\d{2})_(?P<treatment>\\w+)``
makes a ``well`` and a ``treatment`` column).  The tables are then summarised
per condition: nuclei per image, any per-nucleus column (area, a channel's
mean), and the share of nuclei positive for each channel.

Everything here is plain pandas on ``summary.csv``-like and
``measurements.csv``-like tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath

import pandas as pd

__all__ = [
    "CONDITION",
    "NO_CONDITION",
    "RESERVED",
    "condition_columns",
    "attach_conditions",
    "compile_pattern",
    "preview",
    "nuclei_per_image",
    "per_nucleus",
    "mark_positive",
    "percent_positive",
    "condition_table",
]

CONDITION = "condition"  # the column of the default, sub-folder condition
NO_CONDITION = ""  # images not in a sub-folder, or whose name the pattern does not match
# columns of the batch tables that a pattern's group may not replace
RESERVED = frozenset({"image", "file", "label", "status", "reason", "matched"})
_MAX_PATTERN = 500  # characters: a file-name pattern is short


def compile_pattern(pattern: str, taken: Iterable[str] = RESERVED) -> re.Pattern[str]:
    """Check a file-name pattern typed by a person and compile it.

    Parameters
    ----------
    pattern : str
        A Python regular expression with at least one named group,
        ``(?P<name>...)``: each group becomes a condition column.
    taken : iterable of str
        Column names a group may not have (the tables' own columns).

    Returns
    -------
    re.Pattern

    Raises
    ------
    ValueError
        The pattern is not a valid regular expression, has no named group,
        is too long, or names a group after a column of the tables; the
        message says what to change.

    Examples
    --------
    >>> compile_pattern(r"(?P<well>[A-H]\\d{2})_(?P<treatment>\\w+)").groupindex
    mappingproxy({'well': 1, 'treatment': 2})
    >>> compile_pattern(r"([A-H]\\d{2})")
    Traceback (most recent call last):
    ...
    ValueError: The pattern '([A-H]\\d{2})' has no named group: name each part to keep, e.g. (?P<well>[A-H]\\d{2}) makes a 'well' column.
    """
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"The pattern is {len(pattern)} characters long: at most {_MAX_PATTERN} are allowed.")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ValueError(f"The pattern '{pattern}' is not a valid regular expression: {exc.msg}{where}.") from None
    if not compiled.groupindex:
        raise ValueError(f"The pattern '{pattern}' has no named group: name each part to keep, e.g. "
                         r"(?P<well>[A-H]\d{2}) makes a 'well' column.")
    clashes = sorted(set(compiled.groupindex) & set(taken))
    if clashes:
        raise ValueError(f"The pattern names a group {clashes[0]!r}, which is already a column of the results: "
                         "give the group another name.")
    return compiled


def condition_columns(names: Iterable[str], pattern: str | None = None) -> pd.DataFrame:
    """The condition columns of each image.

    Parameters
    ----------
    names : iterable of str
        Each image's path relative to the batch's folder (``/`` or ``\\``
        separators), e.g. ``"control/img1.tif"``: all the images of the batch.
    pattern : str, optional
        A regular expression with named groups (see :func:`compile_pattern`),
        searched anywhere in the relative path.  Without one, the condition is
        the first-level sub-folder below the folder all images share
        (``exp/control/a.tif`` and ``exp/treated/b.tif``: ``control`` and ``treated``).

    Returns
    -------
    pandas.DataFrame
        One row per name (in order, indexed by name): a ``condition`` column
        by default, else one column per named group, in the pattern's order.
        :data:`NO_CONDITION` (``""``) for an image outside any sub-folder, or
        where the pattern (or one of its groups) does not match.

    Raises
    ------
    ValueError
        A bad pattern (see :func:`compile_pattern`).

    Examples
    --------
    >>> condition_columns(["control/a.tif", "treated/x/b.tif", "c.tif"])["condition"].tolist()
    ['control', 'treated', '']
    >>> condition_columns(["exp/control/a.tif", "exp/treated/b.tif"])["condition"].tolist()
    ['control', 'treated']
    >>> condition_columns(["plate1/A01_DMSO_1.tif"], r"(?P<well>[A-H]\\d{2})_(?P<treatment>[^_]+)").iloc[0].tolist()
    ['A01', 'DMSO']
    """
    names = [str(n) for n in names]
    paths = [n.replace("\\", "/") for n in names]
    if pattern is None:
        parts = [[p for p in PurePosixPath(path).parts if p not in ("", ".", "..", "/")] for path in paths]
        shared = 0  # leading folders every image is in (the folder the user chose) name no condition
        while parts and all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
            shared += 1
        table = pd.DataFrame({CONDITION: [p[shared] if len(p) > shared + 1 else NO_CONDITION for p in parts]},
                             index=names)
    else:
        compiled = compile_pattern(pattern)
        rows = []
        for path in paths:
            found = compiled.search(path)
            groups = found.groupdict() if found else {}
            rows.append({g: groups.get(g) or NO_CONDITION for g in compiled.groupindex})
        table = pd.DataFrame(rows, index=names, columns=list(compiled.groupindex))
    table.index.name = "image"
    return table


def preview(names: Sequence[str], pattern: str | None = None, limit: int = 10) -> pd.DataFrame:
    """What the condition columns of the first `limit` images would be, for the page to show.

    Parameters
    ----------
    names : sequence of str
        Relative paths of the batch's images.
    pattern : str, optional
        As for :func:`condition_columns`; an empty or blank pattern means the
        sub-folder.
    limit : int
        How many images to show.

    Returns
    -------
    pandas.DataFrame
        Columns ``image``, the condition columns and ``matched`` (False where
        a pattern did not match the name, True for sub-folders).

    Raises
    ------
    ValueError
        A bad pattern, with a message to show as it is.

    Examples
    --------
    >>> preview(["A01_DMSO.tif", "notes.tif"], r"(?P<well>[A-H]\\d{2})").to_dict("list")
    {'image': ['A01_DMSO.tif', 'notes.tif'], 'well': ['A01', ''], 'matched': [True, False]}
    """
    pattern = pattern if pattern and pattern.strip() else None
    shown = list(names)[:limit]
    table = condition_columns(shown, pattern).reset_index()
    if pattern is None:
        table["matched"] = True
    else:
        compiled = compile_pattern(pattern)
        table["matched"] = [compiled.search(n.replace("\\", "/")) is not None for n in shown]
    return table


def attach_conditions(table: pd.DataFrame, conditions: pd.DataFrame, on: str = "image") -> pd.DataFrame:
    """`table` with the condition columns inserted after its `on` column.

    Parameters
    ----------
    table : pandas.DataFrame
        E.g. a summary or measurement table with an ``image`` column.
    conditions : pandas.DataFrame
        Condition columns indexed by the values of `on`, e.g. from
        :func:`condition_columns` (re-indexed by output name if need be).
    on : str
        The column that names the image.

    Returns
    -------
    pandas.DataFrame
        A copy; :data:`NO_CONDITION` for an image `conditions` does not list.
    """
    out = table.drop(columns=[c for c in conditions.columns if c in table.columns])
    position = list(out.columns).index(on) + 1
    looked_up = conditions.reindex(out[on].to_numpy()).fillna(NO_CONDITION)
    for offset, column in enumerate(conditions.columns):
        out.insert(position + offset, column, looked_up[column].to_numpy())
    return out


def _groups(table: pd.DataFrame, by: Sequence[str]) -> list[str]:
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ValueError(f"no condition column {missing[0]!r} in the table: its columns are {list(table.columns)}")
    return by


def nuclei_per_image(summary: pd.DataFrame, by: Sequence[str] = (CONDITION,)) -> pd.DataFrame:
    """Number of nuclei per image, per condition.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per image with an ``objects`` column (nuclei found) and the
        condition columns; rows whose ``status`` is not ``"ok"`` (failed,
        skipped) are left out when there is a ``status`` column.
    by : sequence of str
        The condition columns.

    Returns
    -------
    pandas.DataFrame
        One row per condition (sorted): ``images``, ``nuclei`` (total),
        ``nuclei_per_image_mean`` and ``nuclei_per_image_median``.

    Examples
    --------
    >>> s = pd.DataFrame({"condition": ["a", "a", "b"], "objects": [10, 20, 7]})
    >>> nuclei_per_image(s).reset_index().to_dict("list")  # doctest: +NORMALIZE_WHITESPACE
    {'condition': ['a', 'b'], 'images': [2, 1], 'nuclei': [30, 7],
     'nuclei_per_image_mean': [15.0, 7.0], 'nuclei_per_image_median': [15.0, 7.0]}
    """
    by = _groups(summary, by)
    if "status" in summary.columns:
        summary = summary[summary["status"] == "ok"]
    grouped = summary.groupby(by, sort=True, dropna=False)["objects"]
    return pd.DataFrame({
        "images": grouped.size(),
        "nuclei": grouped.sum().astype("int64"),
        "nuclei_per_image_mean": grouped.mean().astype(float),
        "nuclei_per_image_median": grouped.median().astype(float),
    })


def per_nucleus(measurements: pd.DataFrame, column: str = "area_px2", by: Sequence[str] = (CONDITION,)) -> pd.DataFrame:
    """Mean and median of a per-nucleus column, per condition.

    Parameters
    ----------
    measurements : pandas.DataFrame
        One row per nucleus with the condition columns.
    column : str
        E.g. ``"area_px2"``, ``"area_um2"``, ``"EdU_mean"``.
    by : sequence of str
        The condition columns.

    Returns
    -------
    pandas.DataFrame
        One row per condition: ``nuclei_measured``, ``<column>_mean`` and
        ``<column>_median``.

    Raises
    ------
    ValueError
        When the table has no such column.

    Examples
    --------
    >>> m = pd.DataFrame({"condition": ["a", "a", "a", "b"], "area_px2": [100.0, 200.0, 600.0, 50.0]})
    >>> per_nucleus(m).loc["a"].tolist()
    [3.0, 300.0, 200.0]
    """
    by = _groups(measurements, by)
    if column not in measurements.columns:
        raise ValueError(f"no column {column!r} in the measurements: choose one of {list(measurements.columns)}")
    grouped = measurements.groupby(by, sort=True, dropna=False)[column]
    return pd.DataFrame({
        "nuclei_measured": grouped.count(),
        f"{column}_mean": grouped.mean().astype(float),
        f"{column}_median": grouped.median().astype(float),
    })


def mark_positive(measurements: pd.DataFrame, cutoffs: Mapping[str, float]) -> pd.DataFrame:
    """`measurements` with a ``<channel>_positive`` column for each channel of `cutoffs`.

    A nucleus is positive for a channel when its mean intensity there
    (``<channel>_mean``, in the image's units) is strictly above the cutoff,
    as pixels are kept strictly above a threshold.

    Parameters
    ----------
    measurements : pandas.DataFrame
    cutoffs : mapping of str to float
        Channel name (as in the ``<channel>_mean`` columns) to its cutoff.

    Returns
    -------
    pandas.DataFrame
        A copy with the boolean columns added (after the channel's columns'
        last one).

    Raises
    ------
    ValueError
        A channel without a ``<channel>_mean`` column, or a cutoff that is not
        a finite number.

    Examples
    --------
    >>> m = pd.DataFrame({"label": [1, 2, 3], "EdU_mean": [900.0, 120.0, 500.0]})
    >>> mark_positive(m, {"EdU": 500})["EdU_positive"].tolist()
    [True, False, False]
    """
    out = measurements.copy()
    for channel, cutoff in cutoffs.items():
        column = f"{channel}_mean"
        if column not in out.columns:
            measured = [c[: -len("_mean")] for c in out.columns if c.endswith("_mean") and not c.endswith("_ring_mean")]
            raise ValueError(f"no channel {channel!r} in the measurements (no column {column!r}); "
                             f"channels measured: {measured or 'none'}")
        try:
            cutoff = float(cutoff)
        except (TypeError, ValueError):
            raise ValueError(f"the cutoff for {channel!r} must be a number, not {cutoff!r}") from None
        if cutoff != cutoff or cutoff in (float("inf"), float("-inf")):
            raise ValueError(f"the cutoff for {channel!r} must be a finite number, not {cutoff}")
        out[f"{channel}_positive"] = out[column] > cutoff
    return out


def percent_positive(measurements: pd.DataFrame, cutoffs: Mapping[str, float],
                     by: Sequence[str] = (CONDITION,)) -> pd.DataFrame:
    """Per condition, the % of nuclei positive for each channel (see :func:`mark_positive`).

    Returns
    -------
    pandas.DataFrame
        One row per condition, one column ``<channel>_percent_positive`` per
        channel of `cutoffs` (0-100; NaN for a condition without nuclei).

    Examples
    --------
    >>> m = pd.DataFrame({"condition": ["c", "c", "t", "t"], "EdU_mean": [10.0, 900.0, 800.0, 700.0]})
    >>> percent_positive(m, {"EdU": 500})["EdU_percent_positive"].to_dict()
    {'c': 50.0, 't': 100.0}
    """
    by = _groups(measurements, by)
    marked = mark_positive(measurements, cutoffs)
    columns = {f"{channel}_positive": f"{channel}_percent_positive" for channel in cutoffs}
    if not columns:
        return pd.DataFrame(index=marked.groupby(by, sort=True, dropna=False).size().index)
    shares = marked.groupby(by, sort=True, dropna=False)[list(columns)].mean() * 100
    return shares.rename(columns=columns).astype(float)


def condition_table(summary: pd.DataFrame, measurements: pd.DataFrame, column: str = "area_px2",
                    cutoffs: Mapping[str, float] | None = None, by: Sequence[str] = (CONDITION,)) -> pd.DataFrame:
    """The per-condition table of the Batch page: nuclei per image, `column`, % positive per channel.

    Conditions come from the images of `summary` (so that a condition whose
    images hold no nucleus still has its row, with a count of 0).

    Returns
    -------
    pandas.DataFrame
        One row per condition (the condition columns first, not as index):
        the columns of :func:`nuclei_per_image`, :func:`per_nucleus` and
        :func:`percent_positive`.

    Examples
    --------
    >>> s = pd.DataFrame({"image": ["c/1", "t/1"], "condition": ["c", "t"], "objects": [2, 0]})
    >>> m = pd.DataFrame({"image": ["c/1", "c/1"], "condition": ["c", "c"], "area_px2": [90.0, 110.0],
    ...                   "EdU_mean": [10.0, 900.0]})
    >>> condition_table(s, m, cutoffs={"EdU": 500})[["condition", "nuclei", "area_px2_mean", "EdU_percent_positive"]]
      condition  nuclei  area_px2_mean  EdU_percent_positive
    0         c       2          100.0                  50.0
    1         t       0            NaN                   NaN
    """
    counts = nuclei_per_image(summary, by)
    parts = [counts, per_nucleus(measurements, column, by)]
    if cutoffs:
        parts.append(percent_positive(measurements, cutoffs, by))
    table = pd.concat(parts, axis=1).reindex(counts.index)
    table["nuclei_measured"] = table["nuclei_measured"].fillna(0).astype("int64")
    return table.reset_index()
