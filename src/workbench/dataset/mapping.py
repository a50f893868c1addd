"""Apply a table's mapping from `dataset.yaml`: columns, values, dates, numbers.

Input is a `RawTable` as read; output is a frame with canonical column names and
types. Problems go to the checker: missing columns are errors, unparseable dates
exclude their rows, ambiguous or mixed date formats are errors.
"""
from __future__ import annotations

import dataclasses
import difflib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import fixes
from .checker import Checker
from .columns import DATE_COLUMNS, KNOWN_COLUMNS
from .dates import ParsedDates, parse_dates
from .readers import ROW, RawTable, cells_to_strip
from .spec import Concat, Constant, RowNumber

NUMERIC_COLUMNS = {"amount", "employees", "revenue"}
ID_COLUMNS = {"deal_id", "account_id", "contact_id", "owner"}
DEFAULT_VALUE = "*"
#: Columns whose value mapped to ~ excludes the row (a deal without an outcome cannot be analysed);
#: elsewhere ~ just empties the value.
EXCLUDING_COLUMNS = {"outcome", "stage"}


def map_columns(raw: RawTable, columns: dict, keep_other: bool, check: Checker) -> pd.DataFrame | None:
    """Rename and select columns; a list of source columns takes the first filled one."""
    frame = raw.frame
    available = [c for c in frame.columns if c != ROW]
    wanted = [s for ref in columns.values() for s in _source_names(ref)]
    missing = [s for s in wanted if s not in frame.columns]
    for name in missing:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"the file has {available[:12]}"
        canonical = [k for k, ref in columns.items() if name in _source_names(ref)]
        check.error("missing_column", f"source column `{name}` (mapped to `{canonical[0]}`) is not in the source.",
                    fixes(hint, "correct the `columns:` mapping in dataset.yaml"), column=name)
    if missing:
        return None
    # Columns taken as they are share the source frame's arrays: copying them (1M sample deals' 73M
    # cells) cost up to 1 s in fresh memory. Nothing writes into the source frame after mapping.
    out = {}
    used = set(wanted)
    for canonical, ref in columns.items():
        if isinstance(ref, Constant):
            out[canonical] = pd.Series(ref.constant, index=frame.index)
            check.report.constants.add((check.table, canonical))
            continue
        if isinstance(ref, RowNumber):
            out[canonical] = frame[ROW].astype(str).astype(object)
            check.report.source_columns[(check.table, canonical)] = "row number"
            check.report.numbered.add(check.table)
            continue
        refs = _source_names(ref)
        check.report.source_columns[(check.table, canonical)] = " / ".join(refs)
        check.report.column_files.setdefault((check.table, canonical), (check.source, " / ".join(refs)))
        if isinstance(ref, Concat):
            parts = [frame[r].astype("string") for r in refs]
            value = parts[0].str.cat(parts[1:], sep=ref.sep)  # missing if any part is missing
            out[canonical] = value.astype(object).where(value.notna(), np.nan)
            continue
        value = frame[refs[0]]
        for other in refs[1:]:
            value = value.where(value.notna(), frame[other])
        out[canonical] = value
    known = KNOWN_COLUMNS.get(check.kind, ())
    for name in available:
        if name in out or name in used:
            continue
        if keep_other or name in known:
            out[name] = frame[name]
            check.report.column_files.setdefault((check.table, name), (check.source, name))
    out[ROW] = frame[ROW]
    return pd.DataFrame({name: column.to_numpy() for name, column in out.items()}, index=frame.index, copy=False)


def _source_names(ref) -> list[str]:
    if isinstance(ref, str):
        return [ref]
    if isinstance(ref, Concat):
        return list(ref.concat)
    if isinstance(ref, (Constant, RowNumber)):
        return []
    return list(ref)


def stripped_columns(raw: RawTable, columns: dict) -> set[str]:
    """The columns of `map_columns`' frame that hold a source column the reader found stripped
    (`RawTable.stripped`) as it is: mapped from it (or from several such, the first filled), or
    kept under its own name."""
    plain = {canonical: _source_names(ref) for canonical, ref in columns.items()
             if not isinstance(ref, (Constant, RowNumber, Concat))}
    mapped = {canonical for canonical, refs in plain.items() if refs and raw.stripped.issuperset(refs)}
    return mapped | {name for name in raw.stripped if name not in columns}


def clean_text(frame: pd.DataFrame, stripped: set[str] = frozenset()) -> pd.DataFrame:
    """Strip surrounding blanks from text cells; an all-blank cell becomes missing.

    Id columns become text whatever the source stored (a Parquet or SQL integer id
    must match the same id read from a CSV), and a missing text cell is NaN from
    every source. Columns named in ``stripped`` are text and NaN with nothing to strip
    (`stripped_columns`): they are left as they are.
    """
    for name in (ID_COLUMNS & set(frame.columns)) - set(stripped):
        frame[name] = _as_text_ids(frame[name])
    for name in frame.columns:
        col = frame[name]
        if col.dtype != object or name in stripped:
            continue
        kind = pd.api.types.infer_dtype(col, skipna=True)
        if kind == "string":  # text and missing cells only: pyarrow sees both at once
            frame[name] = _strip_text(col)
            continue
        missing = pd.isna(col.to_numpy())
        if any(v is not np.nan for v in col.to_numpy()[missing]):  # None, NaT or pd.NA beside CSV's NaN
            col = frame[name] = _nan_where(col, missing)
            kind = pd.api.types.infer_dtype(col, skipna=True)
        if kind == "string":
            frame[name] = _strip_text(col)
        elif kind.startswith("mixed"):  # e.g. Excel: text beside numbers and dates
            is_text = col.map(lambda v: isinstance(v, str))
            stripped = col[is_text].str.strip()
            col = col.copy()
            col[is_text] = stripped.where(stripped != "", None)
            frame[name] = col
    return frame


def _strip_text(col: pd.Series) -> pd.Series:
    """``col.str.strip()`` with empty results missing, for a column of text: pyarrow trims Python's
    blanks off every cell at once to find the few cells that change or are empty, and only those
    go through Python's `str.strip`, so the result is exactly the per-cell one."""
    try:
        text = pa.array(col.to_numpy(), type=pa.string(), from_pandas=True)
    except (pa.ArrowException, UnicodeEncodeError):  # e.g. a lone surrogate no UTF-8 can hold
        missing = col.isna().to_numpy()
        stripped = _nan_where(col, missing).str.strip()
        return stripped.where(stripped != "", None)
    if text.null_count:
        missing = text.is_null().to_numpy(zero_copy_only=False)
        if any(v is not np.nan for v in col.to_numpy()[missing]):  # None, NaT or pd.NA beside CSV's NaN
            col = _nan_where(col, missing)
    at = pc.indices_nonzero(cells_to_strip(text)).to_numpy()  # a missing cell is null: not found
    if not len(at):
        return col
    values = col.to_numpy(copy=True)
    values[at] = [v.strip() or None for v in values[at]]
    return pd.Series(values, index=col.index, name=col.name)


def _nan_where(col: pd.Series, missing: np.ndarray) -> pd.Series:
    """``col`` with NaN in the ``missing`` cells: a missing text cell is NaN from every source."""
    if not missing.any():
        return col
    values = col.to_numpy(copy=True)
    values[missing] = np.nan
    return pd.Series(values, index=col.index, name=col.name)


def _as_text_ids(col: pd.Series) -> pd.Series:
    if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        return col  # text already, as every CSV id is: kept as written, leading zeros and all
    if pd.api.types.is_integer_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col.astype(str).astype(object)
    if pd.api.types.is_float_dtype(col):
        # Integer ids read as floats because of a gap (12.0): write them as 12.
        whole = col.dropna()
        if (whole == whole.round()).all():
            return col.map(lambda v: np.nan if pd.isna(v) else str(int(v))).astype(object)
        return col.map(lambda v: np.nan if pd.isna(v) else repr(v)).astype(object)
    if col.dtype == object:
        return col.map(lambda v: v if isinstance(v, str) or pd.isna(v) else
                       (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)))
    return col.astype(str).astype(object)


def map_values(frame: pd.DataFrame, values: dict, check: Checker) -> pd.DataFrame:
    """Replace values by the spec's maps; `*` maps every value not listed."""
    for column, mapping in values.items():
        if column not in frame:
            check.error("unknown_column", f"`values:` maps column `{column}`, which the table does not have.",
                        fixes(f"use one of {sorted(c for c in frame.columns if c != ROW)}"), column=column)
            continue
        listed = {str(k): v for k, v in mapping.items() if k != DEFAULT_VALUE}
        as_text = frame[column].astype("string")
        mapped = as_text.map(listed)
        hit = as_text.isin(list(listed))
        result = frame[column].astype(object).where(~hit, mapped.astype(object))
        if DEFAULT_VALUE in mapping:
            result = result.where(hit | frame[column].isna(), mapping[DEFAULT_VALUE])
        mapped_out = frame[column].notna() & result.isna()
        raw = frame[column]
        frame[column] = result.where(result.notna(), None)
        if column in EXCLUDING_COLUMNS and mapped_out.any():
            frame = check.exclude(frame, mapped_out, "excluded_by_mapping",
                                  f"rows whose `{check.name(column)}` is mapped to ~ in dataset.yaml are "
                                  "left out on purpose (counted here, not a problem of the data).",
                                  column=column, values=raw[mapped_out].unique()[:5], severity="note")
    return frame


def parse_date_columns(frame: pd.DataFrame, table: str, order: str, formats: dict,
                       check: Checker, *, timezone: str | None = None) -> pd.DataFrame:
    """Parse the table's date columns; exclude rows whose date cannot be read, or that two of the
    column's `date_formats` read as different dates; note a column that mixes UTC offsets."""
    for column in dict.fromkeys((*DATE_COLUMNS.get(table, ()), *formats)):
        if column not in frame:
            continue
        parsed = _parse_distinct(frame[column], order, formats.get(column), timezone)
        if parsed.error:
            conflict = pd.Series(frame.index.isin(parsed.conflict), index=frame.index)
            check.error(
                "ambiguous_dates" if "alike" in parsed.error else "mixed_date_formats",
                f"column {parsed.error}" + (" (the rows in the rarer format are listed)." if conflict.any() else "."),
                fixes("declare the order with `dates: day_first` or `dates: month_first` in dataset.yaml",
                      f"or give explicit formats under `date_formats: {{{column}: ['%d/%m/%Y', '%Y-%m-%d']}}` "
                      "(several are allowed; each value must fit one)",
                      "or export the dates as YYYY-MM-DD"),
                column=column, frame=frame if conflict.any() else None, mask=conflict if conflict.any() else None)
            check.report.unusable.add((check.table, column))
            frame[column] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
            continue
        raw = frame[column]
        frame[column] = parsed.values
        _offset_note(parsed.offsets, column, timezone, check)
        if parsed.ambiguous:
            clash = frame.index.isin(list(parsed.ambiguous))
            readings = list(parsed.ambiguous.values())[:3]
            frame = check.exclude(
                frame, pd.Series(clash, index=frame.index), "ambiguous_date_formats",
                f"`{check.name(column)}` holds values that two of its `date_formats` read as different dates "
                f"({' / '.join(f'`{r}`' for r in dict.fromkeys(readings))}), so which date is meant is unknown.",
                fixes(f"keep only the formats the export really uses under `date_formats: {{{column}: [...]}}`",
                      "correct these cells in the source, or export the dates as YYYY-MM-DD"),
                column=column, values=raw[clash].astype(str).unique()[:5])
        if len(parsed.bad):
            bad = frame.index.isin(parsed.bad)
            given = formats.get(column)
            tried = (f" (tried {', '.join(f'`{f}`' for f in ([given] if isinstance(given, str) else given))})"
                     if given else "")
            frame = check.exclude(
                frame, pd.Series(bad, index=frame.index), "unparseable_dates",
                f"`{check.name(column)}` holds values that are not dates{tried}.",
                fixes("correct or blank these cells in the source",
                      f"give the formats under `date_formats: {{{column}: [...]}}` (a list when the column mixes "
                      "formats, e.g. `['%m/%d/%y', '%m-%d-%y']`)"),
                column=column, values=raw[bad].astype(str).unique()[:5])
    return frame


def _offset_note(offsets: dict, column: str, timezone: str | None, check: Checker) -> None:
    """A note when a column's timestamps carry more than one UTC offset: what was done with them."""
    written = {k: v for k, v in offsets.items() if k != "none"}
    if len(written) < 2:
        return
    counts = ", ".join(f"{k} on {v:,}" for k, v in sorted(written.items(), key=lambda kv: -kv[1]))
    bare = offsets.get("none", 0)
    also = f", none on {bare:,}" if bare else ""
    total = sum(offsets.values())
    if timezone:
        done = (f"each was converted to the wall time of `timezone: {timezone}` (values without an offset are "
                "taken as already in that zone)")
        steps = fixes("check that `timezone:` is the zone the report should speak in")
    else:
        done = ("each keeps the local wall time it was written with (23:30+02:00 stays 23:30), so no deal moves "
                "to another day; times from different offsets are not on one clock, which can shift a duration "
                "by the difference (an hour or two)")
        steps = fixes("declare `timezone: <IANA zone>` (e.g. `Europe/Berlin`) at the top of dataset.yaml to "
                      "convert every timestamp to that zone's wall time instead",
                      "leave it as is when the offsets are one zone's summer and winter time")
    check.note("mixed_utc_offsets", f"`{check.name(column)}` carries {len(written)} different UTC offsets "
               f"({counts}{also}, of {total:,} values): {done}.", steps, column=column, count=total,
               values=list(written))


def _parse_distinct(col: pd.Series, order: str, fmt, timezone: str | None) -> ParsedDates:
    """`parse_dates` on each distinct text once, taken back to every row by its code: an export
    repeats the same few thousand days over millions of rows. Values that are not dates are
    named by their rows as before. What is counted or named per row otherwise (a column-level
    error of mixed formats, values two formats read differently, UTC offsets) comes from parsing
    the column again as a whole, so those rows are named and counted exactly."""
    whole = dict(order=order, fmt=fmt, timezone=timezone)
    if col.dtype != object or pd.api.types.infer_dtype(col, skipna=True) != "string":
        return parse_dates(col, **whole)  # datetimes already, or an Excel column
    codes, distinct = pd.factorize(col)  # in order of first appearance; -1 where missing
    parsed = parse_dates(pd.Series(distinct, dtype=object), **whole)
    if parsed.error or parsed.ambiguous or parsed.offsets:
        return parse_dates(col, **whole)
    filled = codes >= 0
    values = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[ns]")
    values[filled] = parsed.values.to_numpy(dtype="datetime64[ns]")[codes[filled]]
    bad = np.zeros(len(distinct), dtype=bool)
    bad[np.asarray(parsed.bad, dtype=np.int64)] = True
    return dataclasses.replace(parsed, values=pd.Series(values, index=col.index),
                               bad=col.index[filled & bad[np.where(filled, codes, 0)]])


#: How a number an attribute column may hold is written for the column to become numeric: no
#: leading zero (a zip code `00007`, an id `0042`), no exponent (a code `2E10`), no `inf` or `nan`.
#: Anything else stays text as written.
PLAIN_NUMBER = r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_SAMPLE = 1000


def convert_numbers(frame: pd.DataFrame, table: str, check: Checker) -> pd.DataFrame:
    """Known numeric columns (`amount`...) become numbers, bad cells emptied and reported (an
    `inf` or `Infinity` is not a number either). Other text columns become numbers only when
    every filled cell is a plain number whose text the number gives back (`PLAIN_NUMBER`), so
    that `00007` stays `00007`; ids and dates are never converted."""
    for column in frame.columns:
        if column == ROW or column in ID_COLUMNS or column in DATE_COLUMNS.get(table, ()):
            continue
        col = frame[column]
        if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        if pd.api.types.is_numeric_dtype(col):  # a typed source (Parquet, SQL) may still hold inf
            bad = pd.Series(np.isinf(col.to_numpy(dtype=float, na_value=np.nan)), index=col.index)
            if column in NUMERIC_COLUMNS and bad.any():
                _not_a_number(frame, column, bad, col, check)
                frame[column] = col.where(~bad, np.nan)
            continue
        if column in NUMERIC_COLUMNS:
            numbers = _to_numeric(col, errors="coerce")
            bad = col.notna() & ~np.isfinite(numbers.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                _not_a_number(frame, column, bad, col, check)
                numbers = numbers.where(~bad, np.nan)
            frame[column] = numbers
        elif _plain_numbers(col):
            frame[column] = _to_numeric(col)
    return frame


def _to_numeric(col: pd.Series, errors: str = "raise") -> pd.Series:
    """`pd.to_numeric` on each distinct text once, taken back to every row by its code (amounts
    and head counts repeat): the same numbers, NaN where a cell is missing."""
    if col.dtype != object or pd.api.types.infer_dtype(col, skipna=True) != "string":
        return pd.to_numeric(col, errors=errors)
    codes, distinct = pd.factorize(col)
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors=errors).to_numpy()
    missing = codes < 0
    if missing.any():
        numbers = np.append(numbers.astype(float), np.nan)  # code -1 takes the last: NaN
    return pd.Series(numbers[codes], index=col.index, name=col.name)


def _not_a_number(frame: pd.DataFrame, column: str, bad: pd.Series, col: pd.Series, check: Checker) -> None:
    check.warn("not_a_number", f"`{check.name(column)}` holds values that are not numbers; they were "
               "set to empty and the rows kept (their outcome and dates are still good).",
               fixes("write plain numbers without currency signs or thousands separators"),
               column=column, frame=frame, mask=bad, values=col[bad].unique()[:5])


def _plain_numbers(col: pd.Series) -> bool:
    """Whether every filled cell is a number, or text written as a plain number (checked on a
    sample first, since most text columns fail at once; then on the whole column with pyarrow's
    regex). Numbers as such (an Excel or JSON cell) count as written."""
    kind = pd.api.types.infer_dtype(col, skipna=True)
    if kind == "string":  # most text columns fail on their first filled cells: no copy of the rest
        head = col.iloc[: 4 * _SAMPLE].dropna()
        if len(head) >= _SAMPLE and not head.iloc[:_SAMPLE].str.fullmatch(PLAIN_NUMBER).all():
            return False
    filled = col.dropna()
    if filled.empty:
        return False
    kind = pd.api.types.infer_dtype(filled, skipna=False)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return True
    if kind.startswith("mixed"):  # an Excel column of numbers with some cells typed as text
        is_text = filled.map(lambda v: isinstance(v, str))
        numbers = filled[~is_text]
        if not numbers.map(lambda v: isinstance(v, (int, float, np.integer, np.floating))
                           and not isinstance(v, (bool, np.bool_))).all():
            return False
        filled = filled[is_text]
        kind = "string" if len(filled) else "empty"
        if kind == "empty":
            return True
    if kind != "string" or not filled.iloc[:_SAMPLE].str.fullmatch(PLAIN_NUMBER).all():
        return False
    import pyarrow as pa
    import pyarrow.compute as pc

    return bool(pc.all(pc.match_substring_regex(pa.array(filled.to_numpy(), type=pa.string()),
                                                f"^(?:{PLAIN_NUMBER})$")).as_py())
