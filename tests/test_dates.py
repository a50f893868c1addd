"""Dates as real exports write them: two-digit years, several formats per column, UTC offsets.

Each test writes a small export into tmp_path and checks what `workbench.validate` and
`workbench.load_dataset` make of it; expected dates are computed here with `datetime.strptime`
(Python's own `%y` rule), not typed in.
"""
from __future__ import annotations

import csv
import warnings
from datetime import datetime, timedelta, timezone as tz
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

import workbench
from workbench.cli import main
from workbench.dataset.dates import PIVOT, century, parse_dates
from workbench.exceptions import DataQualityWarning, SpecError


def _export(tmp_path, rows: list[dict], yaml_extra: str = "", top: str = "") -> "Path":  # noqa: F821
    with open(tmp_path / "deals.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "dataset.yaml").write_text(
        f"name: dates\n{top}deals:\n  source: deals.csv\n{yaml_extra}"
        "  derive: {closed_at: clear_when_open}\n")
    return tmp_path / "dataset.yaml"


def _load(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return workbench.load_dataset(spec)


def test_two_digit_years_follow_pythons_pivot():
    """`2/24/11` is 2011 and `1/2/69` 1969 under `dates: month_first`, exactly as `%y` reads them."""
    values = ["2/24/11", "1/2/68", "1/2/69", "12/31/99", "3/4/00"]
    parsed = parse_dates(pd.Series(values), order="month_first")
    expected = [datetime.strptime(v, "%m/%d/%y") for v in values]
    assert parsed.error is None and list(parsed.values) == [pd.Timestamp(e) for e in expected]
    assert list(century(pd.Series([PIVOT - 1, PIVOT, 2011]))) == [2000 + PIVOT - 1, 1900 + PIVOT, 2011]


def test_two_digit_years_are_dates_under_auto(tmp_path):
    """Under `dates: auto` a two-digit-year column proves its order by a day above 12 and loads whole."""
    rows = [{"deal_id": f"D{i}", "created_at": c, "closed_at": d, "outcome": o}
            for i, (c, d, o) in enumerate([("2/24/11", "3/30/11", "won"), ("1/5/11", "2/1/11", "lost"),
                                           ("3/15/11", "", "open"), ("4/2/11", "5/13/11", "won")])]
    report = workbench.validate(_export(tmp_path, rows))
    assert "unparseable_dates" not in report.checks() and report.exit_code == 0
    ds = _load(tmp_path / "dataset.yaml")
    assert list(ds.deals["created_at"]) == [pd.Timestamp(datetime.strptime(r["created_at"], "%m/%d/%y"))
                                            for r in rows]


def test_several_formats_read_every_value_once(tmp_path):
    """`date_formats: {created_at: [a, b]}` keeps the rows a single format would lose."""
    written = ["2/24/11", "02-03-11", "3/1/11", "03-15-11", "12/2/10"]
    rows = [{"deal_id": f"D{i}", "created_at": c, "closed_at": "", "outcome": "open"} for i, c in enumerate(written)]
    one = _export(tmp_path, rows, '  date_formats: {created_at: "%m/%d/%y"}\n')
    lost = [p for p in workbench.validate(one).problems if p.check == "unparseable_dates"]
    assert lost and lost[0].excluded == sum("-" in w for w in written)
    assert "tried `%m/%d/%y`" in lost[0].message
    two = _export(tmp_path, rows, '  date_formats: {created_at: ["%m/%d/%y", "%m-%d-%y"]}\n')
    assert workbench.validate(two).excluded_rows() == 0
    ds = _load(two)
    expected = [datetime.strptime(w, "%m/%d/%y" if "/" in w else "%m-%d-%y") for w in written]
    assert list(ds.deals["created_at"]) == [pd.Timestamp(e) for e in expected]


def test_formats_that_disagree_exclude_the_value_and_say_so(tmp_path):
    """A value two formats read as different dates is excluded as `ambiguous_date_formats`, with both readings."""
    written = ["24/02/2011", "03/04/2011", "15/03/2011"]
    rows = [{"deal_id": f"D{i}", "created_at": c, "closed_at": "", "outcome": "open"} for i, c in enumerate(written)]
    spec = _export(tmp_path, rows, '  date_formats: {created_at: ["%d/%m/%Y", "%m/%d/%Y"]}\n')
    report = workbench.validate(spec)
    (problem,) = [p for p in report.problems if p.check == "ambiguous_date_formats"]
    assert problem.rows == (3,) and problem.excluded == 1 and problem.values == ("03/04/2011",)
    assert "2011-04-03" in problem.message and "2011-03-04" in problem.message
    assert report.exit_code == 1


def test_offsets_keep_the_wall_time_and_a_mix_is_noted(tmp_path):
    """Without `timezone:` a `+02:00` time keeps its clock reading (no day moves); mixed offsets give a note."""
    written = ["2024-03-31T23:30:00+01:00", "2024-07-31T23:30:00+02:00", "2024-08-01T00:30:00+02:00"]
    rows = [{"deal_id": f"D{i}", "created_at": c, "closed_at": "", "outcome": "open"} for i, c in enumerate(written)]
    spec = _export(tmp_path, rows, top='as_of: "2024-12-31"\n')
    ds = _load(spec)
    wall = [datetime.fromisoformat(w).replace(tzinfo=None) for w in written]
    assert list(ds.deals["created_at"]) == [pd.Timestamp(w) for w in wall]
    assert [t.month for t in ds.deals["created_at"]] == [3, 7, 8]  # UTC would say 3, 7, 7
    report = workbench.validate(spec)
    (note,) = [p for p in report.notes if p.check == "mixed_utc_offsets"]
    assert note.column == "created_at" and set(note.values) == {"+01:00", "+02:00"}
    assert "+02:00 on 2" in note.message and "timezone:" in note.fix
    assert report.exit_code == 0


def test_declared_timezone_converts_to_its_wall_time(tmp_path):
    """`timezone: America/New_York` converts every offset timestamp to New York's clock."""
    written = ["2024-03-31T23:30:00+01:00", "2024-07-31T23:30:00+02:00", "2024-07-31T10:00:00Z"]
    rows = [{"deal_id": f"D{i}", "created_at": c, "closed_at": "", "outcome": "open"} for i, c in enumerate(written)]
    spec = _export(tmp_path, rows, top='as_of: "2024-12-31"\ntimezone: America/New_York\n')
    ds = _load(spec)
    zone = ZoneInfo("America/New_York")
    expected = [datetime.fromisoformat(w.replace("Z", "+00:00")).astimezone(zone).replace(tzinfo=None)
                for w in written]
    assert list(ds.deals["created_at"]) == [pd.Timestamp(e) for e in expected]
    (note,) = [p for p in workbench.validate(spec).notes if p.check == "mixed_utc_offsets"]
    assert "America/New_York" in note.message


def test_one_offset_is_no_note(tmp_path):
    """A column all in one offset (Salesforce's `+0000`) is read as written without a note."""
    rows = [{"deal_id": "D1", "created_at": "2024-02-05T09:12:44.000+0000", "closed_at": "", "outcome": "open"}]
    spec = _export(tmp_path, rows, top='as_of: "2024-12-31"\n')
    assert "mixed_utc_offsets" not in workbench.validate(spec).checks()
    assert _load(spec).deals["created_at"].iloc[0] == pd.Timestamp("2024-02-05 09:12:44")


def test_explicit_offset_format_reads_mixed_offsets():
    """A `%z` format reads each value's own offset; with a zone they land on its clock."""
    values = ["2024-03-01 23:30 +0100", "2024-07-01 23:30 +0200"]
    parsed = parse_dates(pd.Series(values), fmt="%Y-%m-%d %H:%M %z", timezone="UTC")
    expected = [datetime.strptime(v, "%Y-%m-%d %H:%M %z").astimezone(tz.utc).replace(tzinfo=None) for v in values]
    assert list(parsed.values) == [pd.Timestamp(e) for e in expected]
    assert parsed.offsets == {"+01:00": 1, "+02:00": 1}
    kept = parse_dates(pd.Series(values), fmt="%Y-%m-%d %H:%M %z")
    assert list(kept.values) == [pd.Timestamp(v[:16]) for v in values]
    assert expected[0] - list(kept.values)[0] == -timedelta(hours=1)


def test_unknown_timezone_is_a_spec_error(tmp_path):
    """`timezone: Mars/Olympus` is refused before any data is read, naming the key."""
    rows = [{"deal_id": "D1", "created_at": "2024-01-01", "closed_at": "", "outcome": "open"}]
    with pytest.raises(SpecError, match="timezone"):
        workbench.validate(_export(tmp_path, rows, top="timezone: Mars/Olympus\n"))


def test_validate_cli_shows_the_offset_note(tmp_path, capsys):
    """`workbench validate` prints the mixed-offset note and exits 0."""
    rows = [{"deal_id": f"D{i}", "created_at": c, "closed_at": "", "outcome": "open"}
            for i, c in enumerate(["2024-01-10T10:00+01:00", "2024-06-10T10:00+02:00"])]
    assert main(["validate", str(_export(tmp_path, rows, top='as_of: "2024-12-31"\n'))]) == 0
    assert "[mixed_utc_offsets]" in capsys.readouterr().out
