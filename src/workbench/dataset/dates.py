"""Explicit date parsing: ISO, day-first or month-first, never a guess.

A column whose numeric dates could be read either way (every day and month at
most 12) is an error unless the spec declares the order; a column that mixes
formats is an error too. Values that match no format are reported by row.

Two-digit years follow Python's ``%y`` rule (POSIX): ``00``-``68`` are 2000-2068,
``69``-``99`` are 1969-1999, so ``2/24/11`` is 24 February 2011 whether read by
``dates:`` or by an explicit ``%y`` format.

Several explicit formats may be given for one column: each value must be read by
exactly one of them, or by several that agree; a value two formats read as
different dates is *ambiguous* and reported, never resolved by the order of the list.

Time zones: a timestamp written with a UTC offset (``2024-03-01T23:30:00+01:00``)
keeps its local wall time (23:30 on 1 March) unless a ``timezone`` is given, in which
case it is converted to that zone's wall time; values without an offset are taken as
already local. The offsets met are counted (`ParsedDates.offsets`) so that a column
mixing them is reported rather than shifted silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})"
_ISO = (r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:" + _OFFSET
        + r")?$")
_ISO_OFFSET = re.compile(r"(?<=\d)\s*(" + _OFFSET + r")$")
_NUMERIC = (r"^(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<year>\d{4}|\d{2})"
            r"(?:[ T](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?$")
ORDERS = ("auto", "iso", "day_first", "month_first")
#: Two-digit years below this are 20xx, the others 19xx: Python's (POSIX) ``%y`` rule.
PIVOT = 69


def century(years: pd.Series) -> pd.Series:
    """Four-digit years from two-digit ones by the ``%y`` rule (`PIVOT`); four digits stay."""
    years = years.astype(float)
    short = years < 100
    return years.where(~short, np.where(years < PIVOT, 2000 + years, 1900 + years))


@dataclass
class ParsedDates:
    """Parsed values, the positions that failed, and a column-level error if any."""

    values: pd.Series
    bad: pd.Index = field(default_factory=lambda: pd.Index([]))
    error: str | None = None
    order: str | None = None
    conflict: pd.Index = field(default_factory=lambda: pd.Index([]))  # rows in the odd format
    #: Rows that two explicit formats read as different dates: {label: "fmt -> date; fmt -> date"}.
    ambiguous: dict = field(default_factory=dict)
    #: UTC offset as written (``+01:00``; ``Z`` counts as ``+00:00``) -> how many values carry it;
    #: ``"none"`` counts the values without one in a column where some have one.
    offsets: dict = field(default_factory=dict)


def parse_dates(raw: pd.Series, order: str = "auto", fmt: str | list[str] | None = None,
                timezone: str | None = None) -> ParsedDates:
    """Parse one column of dates.

    Parameters
    ----------
    raw : Series
        Text (or already datetime) values; missing values stay missing.
    order : {"auto", "iso", "day_first", "month_first"}
        How to read numeric dates such as ``03/04/2024``. ``auto`` accepts ISO and
        infers the order only when some value proves it (a day above 12).
    fmt : str or list of str, optional
        Explicit ``strftime`` formats; override ``order``. With several, each value
        is read by the one that fits; values two formats read differently are
        ``ambiguous``.
    timezone : str, optional
        An IANA zone (``Europe/Berlin``): values with a UTC offset are converted to its
        wall time. Default: every value keeps the wall time it was written with.

    Returns
    -------
    ParsedDates
        ``values`` (datetime64, timezone-naive), ``bad`` (index labels of non-empty
        values that could not be parsed), ``error`` (ambiguous or mixed formats: the
        whole column cannot be trusted), ``ambiguous`` and ``offsets``.
    """
    if pd.api.types.is_datetime64_any_dtype(raw):
        return ParsedDates(_naive(raw, timezone), order="native")
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    filled = raw.notna() & (raw.astype("string").str.strip() != "")
    if not filled.any():
        return ParsedDates(out)
    text = raw[filled].astype("string").str.strip()
    native = raw[filled].map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "year"))
    if native.all():  # Excel cells read as datetimes
        out[filled] = _naive(pd.to_datetime(raw[filled]), timezone)
        return ParsedDates(out, order="native")
    if fmt:
        return _explicit(text, out, [fmt] if isinstance(fmt, str) else list(fmt), timezone)

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
        out[is_iso[is_iso].index], result.offsets = _iso(text[is_iso], timezone)
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
            pd.DataFrame({"year": century(nums["year"]), "month": month, "day": day,
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
        out[parsed.index] = _naive(parsed, timezone)
    if result.offsets and (~is_iso).any():
        result.offsets["none"] = result.offsets.get("none", 0) + int((~is_iso).sum())
    result.bad = text.index[out[text.index].isna()]
    return result


def _offset_label(found: str | None) -> str:
    if found is None or pd.isna(found) or not found:
        return "none"
    if found == "Z":
        return "+00:00"
    return found if ":" in found else f"{found[:3]}:{found[3:]}"


def _iso(text: pd.Series, timezone: str | None) -> tuple[pd.Series, dict]:
    """ISO text -> naive timestamps (wall time as written, or in ``timezone``), and the offsets met."""
    found = text.str.extract(_ISO_OFFSET, expand=False)
    offsets = found.astype(object).map(_offset_label).value_counts().to_dict() if found.notna().any() else {}
    aware = found.notna()
    values = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    bare = text.where(~aware, text.str.replace(_ISO_OFFSET, "", regex=True))
    if timezone is None or not aware.any():
        values[:] = pd.to_datetime(bare, format="ISO8601", errors="coerce")
    else:
        values[~aware] = pd.to_datetime(bare[~aware], format="ISO8601", errors="coerce")
        converted = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True)
        values[aware] = converted.dt.tz_convert(timezone).dt.tz_localize(None)
    return values.astype("datetime64[ns]"), {str(k): int(v) for k, v in offsets.items()}


def _explicit(text: pd.Series, out: pd.Series, formats: list[str], timezone: str | None) -> ParsedDates:
    """Read each value with the formats given; one reading (or agreeing ones) or it is reported."""
    readings, offsets = [], {}
    for f in formats:
        if "%z" in f:
            parsed, found = _strptime(text, f, timezone)
            for k, v in found.items():
                offsets[k] = offsets.get(k, 0) + v
        else:
            parsed = pd.to_datetime(text, format=f, errors="coerce")
        readings.append(parsed.astype("datetime64[ns]"))
    table = pd.concat(readings, axis=1, keys=range(len(formats)))
    distinct = table.nunique(axis=1, dropna=True)
    first = table.bfill(axis=1).iloc[:, 0]
    clash = distinct > 1
    out[text.index] = first.where(~clash)
    ambiguous = {label: "; ".join(f"`{formats[i]}` reads {table.at[label, i]}" for i in range(len(formats))
                                  if pd.notna(table.at[label, i]))
                 for label in table.index[clash]}
    bad = text.index[(distinct == 0).to_numpy()]
    order = formats[0] if len(formats) == 1 else " | ".join(formats)
    return ParsedDates(out, bad=bad, order=order, ambiguous=ambiguous, offsets=offsets)


def _strptime(text: pd.Series, fmt: str, timezone: str | None) -> tuple[pd.Series, dict]:
    """Values read one by one with a ``%z`` format (pandas refuses mixed offsets in one go)."""
    zone = ZoneInfo(timezone) if timezone else None
    values, offsets = [], {}
    for value in text:
        try:
            stamp = datetime.strptime(value, fmt)
        except ValueError:
            values.append(pd.NaT)
            continue
        if stamp.tzinfo is not None:
            delta = stamp.utcoffset()
            minutes = int(delta.total_seconds() // 60)
            label = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
            offsets[label] = offsets.get(label, 0) + 1
            stamp = stamp.astimezone(zone) if zone else stamp
            stamp = stamp.replace(tzinfo=None)
        values.append(pd.Timestamp(stamp))
    return pd.Series(values, index=text.index, dtype="datetime64[ns]"), offsets


def parse_timestamp(value: str, order: str = "auto", what: str = "date") -> pd.Timestamp:
    """Parse one date given in a spec or a parameter; raise ValueError when unclear."""
    parsed = parse_dates(pd.Series([value], dtype="object"), order=order)
    if parsed.error or len(parsed.bad):
        raise ValueError(f"{what} {value!r} is not a date in an unambiguous format (use YYYY-MM-DD)")
    return parsed.values.iloc[0]


def _naive(values: pd.Series, timezone: str | None = None) -> pd.Series:
    """Timezone-naive timestamps: an aware column keeps its own wall time, or ``timezone``'s."""
    values = pd.to_datetime(values)
    if getattr(values.dt, "tz", None) is not None:
        if timezone:
            values = values.dt.tz_convert(timezone)
        values = values.dt.tz_localize(None)
    return values.astype("datetime64[ns]")
