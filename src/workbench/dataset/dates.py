"""Explicit date parsing: ISO, day-first or month-first, never a guess.

A column whose numeric dates could be read either way (every day and month at
most 12) is an error unless the spec declares the order; a column that mixes
formats is an error too. Values that match no format are reported by row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

_ISO = r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
_NUMERIC = (r"^(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<year>\d{4})"
            r"(?:[ T](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?$")
ORDERS = ("auto", "iso", "day_first", "month_first")


@dataclass
class ParsedDates:
    """Parsed values, the positions that failed, and a column-level error if any."""

    values: pd.Series
    bad: pd.Index = field(default_factory=lambda: pd.Index([]))
    error: str | None = None
    order: str | None = None
    conflict: pd.Index = field(default_factory=lambda: pd.Index([]))  # rows in the odd format


def parse_dates(raw: pd.Series, order: str = "auto", fmt: str | None = None) -> ParsedDates:
    """Parse one column of dates.

    Parameters
    ----------
    raw : Series
        Text (or already datetime) values; missing values stay missing.
    order : {"auto", "iso", "day_first", "month_first"}
        How to read numeric dates such as ``03/04/2024``. ``auto`` accepts ISO and
        infers the order only when some value proves it (a day above 12).
    fmt : str, optional
        An explicit ``strftime`` format; overrides ``order``.

    Returns
    -------
    ParsedDates
        ``values`` (datetime64, timezone-naive UTC), ``bad`` (index labels of
        non-empty values that could not be parsed), ``error`` (ambiguous or mixed
        formats: the whole column cannot be trusted).
    """
    if pd.api.types.is_datetime64_any_dtype(raw):
        return ParsedDates(_naive(raw), order="native")
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    filled = raw.notna() & (raw.astype("string").str.strip() != "")
    if not filled.any():
        return ParsedDates(out)
    text = raw[filled].astype("string").str.strip()
    native = raw[filled].map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "year"))
    if native.all():  # Excel cells read as datetimes
        out[filled] = _naive(pd.to_datetime(raw[filled]))
        return ParsedDates(out, order="native")
    if fmt:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        out[filled] = _naive(parsed)
        return ParsedDates(out, bad=text.index[parsed.isna()], order=fmt)

    is_iso = text.str.match(_ISO)
    parts = text.str.extract(_NUMERIC)
    is_numeric = parts["a"].notna()
    other = ~(is_iso | is_numeric)
    result = ParsedDates(out)

    if is_iso.any() and is_numeric.any() and order not in ("day_first", "month_first"):
        # With a declared order both kinds read one way only; without it, the mix is a red flag.
        minority = is_iso if is_iso.sum() < is_numeric.sum() else is_numeric
        result.error = (f"mixes ISO dates (e.g. {text[is_iso].iloc[0]!r}) with numeric dates "
                        f"(e.g. {text[is_numeric].iloc[0]!r})")
        result.conflict = text.index[minority]
        return result
    if is_iso.any():
        out[is_iso[is_iso].index] = _naive(pd.to_datetime(text[is_iso], format="ISO8601", errors="coerce", utc=True))
        result.order = "iso"
    if is_numeric.any():
        if order == "iso":
            result.error = f"declares ISO dates but holds numeric dates such as {text[is_numeric].iloc[0]!r}"
            return result
        nums = parts[is_numeric].astype("float")
        resolved = order
        if order == "auto":
            day_first = bool((nums["a"] > 12).any())
            month_first = bool((nums["b"] > 12).any())
            if day_first and month_first:
                result.error = (f"mixes day-first ({text[is_numeric][nums['a'] > 12].iloc[0]!r}) and "
                                f"month-first ({text[is_numeric][nums['b'] > 12].iloc[0]!r}) dates")
                proof_day, proof_month = nums["a"] > 12, nums["b"] > 12
                minority = proof_day if proof_day.sum() < proof_month.sum() else proof_month
                result.conflict = nums.index[minority]
                return result
            if not (day_first or month_first):
                result.error = (f"has numeric dates such as {text[is_numeric].iloc[0]!r} that read as "
                                "day-first and month-first alike (no day above 12)")
                return result
            resolved = "day_first" if day_first else "month_first"
        day, month = (nums["a"], nums["b"]) if resolved == "day_first" else (nums["b"], nums["a"])
        stamps = pd.to_datetime(
            pd.DataFrame({"year": nums["year"], "month": month, "day": day,
                          "hour": nums["hour"].fillna(0), "minute": nums["minute"].fillna(0),
                          "second": nums["second"].fillna(0)}),
            errors="coerce",
        )
        out[stamps.index] = stamps
        result.order = resolved
    if other.any():
        # Month names ("5 Jan 2024", "January 5, 2024") are unambiguous; anything else is bad.
        words = text[other]
        has_month = words.str.contains(r"[A-Za-z]{3}", regex=True)
        parsed = pd.to_datetime(words.where(has_month), format="mixed", errors="coerce", utc=True)
        out[parsed.index] = _naive(parsed)
    result.bad = text.index[out[text.index].isna()]
    return result


def parse_timestamp(value: str, order: str = "auto", what: str = "date") -> pd.Timestamp:
    """Parse one date given in a spec or a parameter; raise ValueError when unclear."""
    parsed = parse_dates(pd.Series([value], dtype="object"), order=order)
    if parsed.error or len(parsed.bad):
        raise ValueError(f"{what} {value!r} is not a date in an unambiguous format (use YYYY-MM-DD)")
    return parsed.values.iloc[0]


def _naive(values: pd.Series) -> pd.Series:
    values = pd.to_datetime(values)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[ns]")
