"""`workbench validate` on the broken-data corpus: one folder per problem in tests/data/broken/.

Each folder is the clean base (10 deals and their stage history) with exactly one problem.
For each, the report must name it once, with the source file, the column, the rows (computed
here from the CSV with plain Python, not hard-coded) and a fix; a warning excludes exactly the
offending rows, an error stops the load; `workbench validate` exits 0 clean, 1 warnings, 2
errors.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import yaml

import workbench
from workbench.cli import main
from workbench.exceptions import DataQualityWarning, DataValidationError, SourceError, SpecError, WorkbenchError
from workbench.findings import data_findings

BROKEN = Path(__file__).resolve().parent / "data" / "broken"
SRC = Path(__file__).resolve().parents[1] / "src"
OUTCOMES = ("won", "lost", "open")
DEALS, HISTORY = "deals.csv", "stage_history.csv"


# --- reading the corpus with plain Python ------------------------------------------------------

def spec_of(folder: str) -> Path:
    return BROKEN / folder / "dataset.yaml"


def records(folder: str, name: str = DEALS) -> list[tuple[int, dict]]:
    """(line number, row) per record of a CSV in the corpus; the header is line 1.

    The corpus files have one record per line (except the two `row_numbers_*` folders,
    which the tests read line by line instead).
    """
    with open(BROKEN / folder / name, newline="", encoding="utf-8") as f:
        return list(enumerate(csv.DictReader(f), start=2))


def lines_where(folder: str, name: str, predicate: Callable[[dict], bool]) -> list[int]:
    return [n for n, row in records(folder, name) if predicate(row)]


def declared(folder: str) -> dict:
    return yaml.safe_load(spec_of(folder).read_text())


def is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def unparseable(column: str, name: str = DEALS):
    return lambda f: lines_where(f, name, lambda r: bool(r[column]) and not is_iso_date(r[column]))


def exact_repeats(folder: str) -> list[int]:
    seen, out = set(), []
    for n, row in records(folder):
        key = tuple(row.values())
        if key in seen:
            out.append(n)
        seen.add(key)
    return out


def conflicting_ids(folder: str) -> list[int]:
    rows = records(folder)
    versions: dict[str, set] = {}
    for _, row in rows:
        versions.setdefault(row["deal_id"], set()).add(tuple(row.values()))
    return [n for n, row in rows if len(versions[row["deal_id"]]) > 1]


def history_stage_unknown(folder: str) -> list[int]:
    spec = declared(folder)
    stages = set(spec["stages"] + spec["won_stages"] + spec["lost_stages"])
    return lines_where(folder, HISTORY, lambda r: r["stage"] not in stages)


def history_deal_unknown(folder: str) -> list[int]:
    ids = {row["deal_id"] for _, row in records(folder)}
    return lines_where(folder, HISTORY, lambda r: r["deal_id"] not in ids)


def history_after_as_of(folder: str) -> list[int]:
    as_of = declared(folder)["as_of"]
    return lines_where(folder, HISTORY, lambda r: r["entered_at"] > as_of)


def unknown_outcomes(folder: str) -> list[int]:
    return lines_where(folder, DEALS, lambda r: r["outcome"] not in OUTCOMES)


def not_numbers(folder: str) -> list[int]:
    return lines_where(folder, DEALS, lambda r: bool(r["amount"]) and not is_number(r["amount"]))


def not_finite(folder: str) -> list[int]:
    """Lines whose amount Python reads as a float but not a finite one (`inf`, `-Infinity`)."""
    return lines_where(folder, DEALS, lambda r: is_number(r["amount"]) and not math.isfinite(float(r["amount"])))


def ragged(folder: str, name: str = DEALS) -> list[int]:
    """Physical lines of the records whose field count differs from the header's (Python's csv module)."""
    with open(BROKEN / folder / name, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        width, out, done = len(next(reader)), [], 1
        for row in reader:
            if row and len(row) != width:
                out.append(done + 1)
            done = reader.line_num
    return out


def created_after_as_of(folder: str) -> list[int]:
    as_of = declared(folder)["as_of"]
    return lines_where(folder, DEALS, lambda r: r["created_at"] > as_of)


def file_hashes() -> dict[str, str]:
    return {str(p.relative_to(BROKEN)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(BROKEN.rglob("*")) if p.is_file()}


def rows_text(rows: list[int]) -> str:
    """How `Problem.to_text` lists rows: `2 rows: 5, 6`."""
    return f"{len(rows)} row{'s' if len(rows) != 1 else ''}: {', '.join(str(r) for r in rows[:5])}"


def load_quietly(folder: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return workbench.load_dataset(spec_of(folder))


# --- the cases ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One broken folder: the problem expected, where, and (if row-level) how to find its rows."""

    folder: str
    check: str
    severity: str
    column: str | None
    rows: Callable[[str], list[int]] | None = None  # None: a whole-table or whole-column problem
    file: str = DEALS
    excludes: bool = True  # not_a_number empties the cell and keeps the deal

    @property
    def table(self) -> str:
        return "deals" if self.file == DEALS else "stage_history"

    def expected_rows(self) -> list[int]:
        rows = self.rows(self.folder) if self.rows else []
        assert rows or not self.rows, f"the test found no offending line in {self.folder}/{self.file}"
        return rows


CASES = [
    Case("missing_required_column", "missing_column", "error", "closed_at"),
    Case("misspelt_source_column", "missing_column", "error", "Created Date"),
    Case("unparseable_dates", "unparseable_dates", "warning", "closed_at", unparseable("closed_at")),
    Case("ambiguous_dates", "ambiguous_dates", "error", "created_at"),
    Case("mixed_date_formats", "mixed_date_formats", "error", "created_at",
         lambda f: lines_where(f, DEALS, lambda r: not is_iso_date(r["created_at"]))),
    Case("mixed_day_first_month_first", "mixed_date_formats", "error", "created_at",
         lambda f: lines_where(f, DEALS, lambda r: int(r["created_at"].split("/")[1]) > 12)),
    Case("date_formats_disagree", "ambiguous_date_formats", "warning", "created_at",
         lambda f: lines_where(f, DEALS, lambda r: "/" in r["created_at"])),
    Case("closed_before_created", "closed_before_created", "warning", "closed_at",
         lambda f: lines_where(f, DEALS, lambda r: bool(r["closed_at"]) and r["closed_at"] < r["created_at"])),
    Case("duplicate_deal_ids", "duplicate_deal_id", "warning", "deal_id", conflicting_ids),
    Case("duplicate_rows", "duplicate_rows", "warning", "deal_id", exact_repeats),
    Case("outcome_won_without_close_date", "outcome_without_close_date", "warning", "closed_at",
         lambda f: lines_where(f, DEALS, lambda r: r["outcome"] in ("won", "lost") and not r["closed_at"])),
    Case("outcome_open_with_close_date", "open_with_close_date", "warning", "closed_at",
         lambda f: lines_where(f, DEALS, lambda r: r["outcome"] == "open" and bool(r["closed_at"]))),
    Case("unknown_outcome_value", "unknown_outcome", "error", "outcome", unknown_outcomes),
    Case("unknown_stage_names", "unknown_stage", "warning", "stage", history_stage_unknown, HISTORY),
    Case("history_for_unknown_deals", "unknown_deal", "warning", "deal_id", history_deal_unknown, HISTORY),
    Case("timestamps_after_as_of", "after_as_of", "warning", "entered_at", history_after_as_of, HISTORY),
    Case("negative_amounts", "negative_amount", "warning", "amount",
         lambda f: lines_where(f, DEALS, lambda r: float(r["amount"]) < 0)),
    Case("not_a_number_amount", "not_a_number", "warning", "amount", not_numbers, excludes=False),
    Case("empty_deals_table", "empty_table", "error", None),
    Case("duplicate_headers", "duplicate_header", "error", "amount"),
    Case("ragged_rows", "ragged_rows", "warning", None, ragged),
    Case("cut_last_line", "ragged_rows", "warning", None, ragged),
    Case("infinite_amount", "not_a_number", "warning", "amount", not_finite, excludes=False),
    Case("history_ids_with_leading_zeros", "unknown_deal", "warning", "deal_id", history_deal_unknown, HISTORY),
    Case("stage_declared_with_space", "unknown_stage", "warning", "stage", history_stage_unknown, HISTORY),
    Case("created_after_as_of", "created_after_as_of", "warning", "created_at", created_after_as_of),
]
#: Folders whose source cannot be read as declared: `SourceError` naming the file, before any check.
SOURCE_ERRORS = {"missing_source_file": "`stage_history_2024.csv`", "not_utf8": "line 5, column `owner`",
                 "semicolon_delimiter": 'delimiter: ";"', "tab_separated_csv": 'delimiter: "\\t"'}
BY_FOLDER = {c.folder: c for c in CASES}
WARNINGS = [c for c in CASES if c.severity == "warning"]
ERRORS = [c for c in CASES if c.severity == "error"]

def case_params(cases, marks=None):
    marks = marks or {}
    return [pytest.param(c, id=c.folder, marks=marks.get(c.folder, ())) for c in cases]


def primary(report, case: Case):
    found = [p for p in report.problems if p.check == case.check and p.table == case.table]
    assert len(found) == 1, report.to_text()
    return found[0]


def follow_on(case: Case) -> list[int]:
    """Stage-history lines of the deals a deal-level warning drops: they follow their deal out."""
    if case.severity != "warning" or not case.excludes or case.table != "deals":
        return []
    offending = set(case.expected_rows())
    dropped = {r["deal_id"] for n, r in records(case.folder) if n in offending}
    kept = {r["deal_id"] for n, r in records(case.folder) if n not in offending}
    return lines_where(case.folder, HISTORY, lambda r: r["deal_id"] in dropped - kept)


# --- one problem per folder ---------------------------------------------------------------------

@pytest.mark.parametrize("case", case_params(CASES))
def test_reports_the_problem_with_file_column_rows_and_fix(case):
    """The folder's one problem is reported once, naming its file, column and rows, with a fix."""
    problem = primary(workbench.validate(spec_of(case.folder)), case)
    assert problem.severity == case.severity
    assert problem.source == case.file
    assert problem.column == case.column
    text = problem.to_text()
    assert f"`{case.file}`" in text
    if case.column:
        assert f"column `{case.column}`" in text
    assert "Try 1) " in text
    expected = case.expected_rows()
    assert list(problem.rows) == expected
    assert problem.count == len(expected)
    if expected:
        assert rows_text(expected) in text


@pytest.mark.parametrize("case", case_params(CASES))
def test_no_other_errors_or_warnings(case):
    """No other error or warning, except `unknown_deal` on exactly the stage entries of excluded deals."""
    report = workbench.validate(spec_of(case.folder))
    problem = primary(report, case)
    others = [(p.check, p.table, list(p.rows)) for p in report.errors + report.warnings if p is not problem]
    follow = follow_on(case)
    assert others == ([("unknown_deal", "stage_history", follow)] if follow else []), report.to_text()


@pytest.mark.parametrize("case", case_params(WARNINGS))
def test_warning_excludes_exactly_the_offending_rows(case):
    """A warning drops exactly its rows and the dataset counts them (`not_a_number` empties the cell instead)."""
    expected = case.expected_rows()
    follow = follow_on(case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = workbench.load_dataset(spec_of(case.folder))
    quality = [w for w in caught if issubclass(w.category, DataQualityWarning)]
    frame = dataset.deals if case.table == "deals" else dataset.stage_history
    in_file = len(records(case.folder, case.file))
    exclusions = dataset.exclusions
    mine = exclusions[(exclusions["table"] == case.table) & (exclusions["check"] == case.check)]
    assert case.check in {p.check for p in dataset.report.warnings}
    if not case.excludes:
        assert len(frame) == in_file
        assert mine.empty and not quality
        bad_ids = {r["deal_id"] for n, r in records(case.folder) if n in expected}
        assert dataset.deals.loc[dataset.deals["deal_id"].isin(bad_ids), case.column].isna().all()
        return
    assert len(quality) == 1
    assert len(frame) == in_file - len(expected)
    assert int(mine["rows"].sum()) == len(expected)
    assert dataset.report.excluded_rows() == len(expected) + len(follow)
    assert len(dataset.stage_history) == len(records(case.folder, HISTORY)) - (
        len(expected) if case.table == "stage_history" else len(follow))
    if case.table == "deals":
        offending = set(expected)
        dropped = {r["deal_id"] for n, r in records(case.folder) if n in offending}
        kept = {r["deal_id"] for n, r in records(case.folder) if n not in offending}
        assert set(dataset.deals["deal_id"]) == kept
        assert not (dropped - kept) & set(dataset.stage_history["deal_id"])


@pytest.mark.parametrize("case", case_params(ERRORS))
def test_error_stops_the_load(case):
    """An error makes `load_dataset` raise `DataValidationError`, whose `.report` holds the problem."""
    with pytest.raises(DataValidationError) as info:
        workbench.load_dataset(spec_of(case.folder))
    assert info.value.report.exit_code == 2
    assert case.check in info.value.report.checks()
    assert f"[{case.check}]" in str(info.value)


# --- the clean base and the spec / source errors ------------------------------------------------

def test_clean_dataset_has_no_problems():
    """The clean base reports nothing at all and loads every row without a warning."""
    report = workbench.validate(spec_of("clean"))
    assert report.problems == [] and report.exit_code == 0
    assert "no problems found" in report.to_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        dataset = workbench.load_dataset(spec_of("clean"))
    assert len(dataset.deals) == len(records("clean"))
    assert len(dataset.stage_history) == len(records("clean", HISTORY))
    assert dataset.exclusions.empty


def test_misspelt_source_column_suggests_the_close_match(tmp_path):
    """A misspelt mapped column is an error suggesting the file's closest column; taking it makes the data clean."""
    problem = primary(workbench.validate(spec_of("misspelt_source_column")), BY_FOLDER["misspelt_source_column"])
    with open(BROKEN / "misspelt_source_column" / DEALS, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert "Created Date" not in header and "Create Date" in header
    assert "(mapped to `created_at`)" in problem.message
    assert problem.fix.startswith("Try 1) did you mean 'Create Date'")
    fixed = _copy(tmp_path, "misspelt_source_column")
    _edit(fixed, "created_at: Created Date", "created_at: Create Date")
    assert workbench.validate(fixed).exit_code == 0


def test_unknown_yaml_key_is_a_spec_error_naming_the_key(tmp_path):
    """An unknown key in dataset.yaml raises `SpecError` naming the key, from `validate` and from `load_dataset`."""
    for call in (workbench.validate, workbench.load_dataset):
        with pytest.raises(SpecError) as info:
            call(spec_of("unknown_yaml_key"))
        assert "`won_stage`" in str(info.value) and "unknown key" in str(info.value)
        assert "dataset.yaml" in str(info.value)
    fixed = _copy(tmp_path, "unknown_yaml_key")
    _edit(fixed, "won_stage:", "won_stages:")
    assert workbench.validate(fixed).exit_code == 0


def test_unknown_yaml_key_suggests_the_close_key():
    """The unknown-key message suggests the valid key it is closest to, as a numbered fix."""
    with pytest.raises(SpecError) as info:
        workbench.validate(spec_of("unknown_yaml_key"))
    assert "`won_stages`" in str(info.value)
    assert "Try 1) " in str(info.value)


def test_missing_source_file_is_a_source_error_naming_the_path(tmp_path):
    """A source file that does not exist raises `SourceError` naming the path as written and a fix."""
    for call in (workbench.validate, workbench.load_dataset):
        with pytest.raises(SourceError) as info:
            call(spec_of("missing_source_file"))
        message = str(info.value)
        assert "`stage_history_2024.csv`" in message
        assert str(BROKEN / "missing_source_file" / "stage_history_2024.csv") in message
        assert "Try 1) " in message
    fixed = _copy(tmp_path, "missing_source_file")
    _edit(fixed, "source: stage_history_2024.csv", "source: stage_history.csv")
    assert workbench.validate(fixed).exit_code == 0


# --- all at once ----------------------------------------------------------------------------------

def test_several_problems_reported_at_once():
    """Four problems in two files (one error, three warnings) all come in one report, with their rows."""
    folder = "several_problems"
    expected = {
        ("unknown_outcome", "error", "deals"): unknown_outcomes(folder),
        ("not_a_number", "warning", "deals"): not_numbers(folder),
        ("duplicate_rows", "warning", "deals"): exact_repeats(folder),
        ("unparseable_dates", "warning", "stage_history"): unparseable("entered_at", HISTORY)(folder),
    }
    report = workbench.validate(spec_of(folder))
    got = {(p.check, p.severity, p.table): list(p.rows) for p in report.problems if p.severity != "note"}
    assert got == expected, report.to_text()
    assert report.exit_code == 2
    with pytest.raises(DataValidationError) as info:
        workbench.load_dataset(spec_of(folder))
    assert {check for check, _, _ in expected} <= info.value.report.checks()
    text = report.to_text()
    assert all(f"[{check}]" in text for check, _, _ in expected)


def test_several_problems_after_an_error_reported_at_once():
    """An error in one deal column does not hide independent problems elsewhere: all four are reported."""
    report = workbench.validate(spec_of("several_problems_after_an_error"))
    assert {"unknown_outcome", "negative_amount", "unknown_stage", "unknown_deal"} <= report.checks(), \
        report.to_text()


# --- messages that point the wrong way ----------------------------------------------------------

@pytest.mark.parametrize("folder, offending", [
    pytest.param("mixed_date_formats",
                 lambda f: lines_where(f, DEALS, lambda r: not is_iso_date(r["created_at"])), id="iso_and_numeric"),
    pytest.param("mixed_day_first_month_first",  # the one date that reads only month-first
                 lambda f: lines_where(f, DEALS, lambda r: int(r["created_at"].split("/")[1]) > 12),
                 id="day_first_and_month_first"),
])
def test_mixed_date_formats_name_the_odd_rows(folder, offending):
    """A mixed-format column names the rows whose format differs from the rest."""
    problem = primary(workbench.validate(spec_of(folder)), BY_FOLDER[folder])
    assert list(problem.rows) == offending(folder)


def test_mixed_iso_and_numeric_first_fix_works(tmp_path):
    """Following fix 1) of a mixed ISO/numeric column (declare the order) removes the error."""
    problem = primary(workbench.validate(spec_of("mixed_date_formats")), BY_FOLDER["mixed_date_formats"])
    assert "Try 1) declare the order with `dates: day_first`" in problem.fix
    fixed = _copy(tmp_path, "mixed_date_formats")
    _edit(fixed, "as_of:", "dates: day_first\nas_of:")
    assert "mixed_date_formats" not in workbench.validate(fixed).checks()


def test_renamed_column_is_named_as_in_the_source():
    """When a source column is mapped onto a canonical one, the message names the source column."""
    folder = "unparseable_dates_renamed_column"
    problem = primary(workbench.validate(spec_of(folder)), BY_FOLDER["unparseable_dates"])
    assert list(problem.rows) == unparseable("Close Date")(folder)
    assert "`Close Date`" in problem.to_text()


@pytest.mark.parametrize("folder", ["row_numbers_after_blank_line", "row_numbers_after_multiline_cell"])
def test_row_numbers_are_physical_lines(folder):
    """Row numbers are the file's physical line numbers, even after a blank line or a multi-line cell."""
    text = (BROKEN / folder / DEALS).read_text().splitlines()
    line = [n for n, content in enumerate(text, start=1) if content.startswith("D05,")]
    problem = primary(workbench.validate(spec_of(folder)), BY_FOLDER["negative_amounts"])
    assert list(problem.rows) == line == [7]


def test_values_are_shown_as_written():
    """The offending values are quoted as they are written in the source."""
    case = BY_FOLDER["negative_amounts"]
    problem = primary(workbench.validate(spec_of(case.folder)), case)
    written = [r["amount"] for n, r in records(case.folder) if n in case.expected_rows()]
    assert list(problem.values) == written


# --- the command line -----------------------------------------------------------------------------

CLI = [(c.folder, 1 if c.severity == "warning" else 2, f"[{c.check}]") for c in CASES] + [
    ("clean", 0, "no problems found"),
    ("unknown_yaml_key", 2, "`won_stage`"),
    ("missing_source_file", 2, "`stage_history_2024.csv`"),
    ("several_problems", 2, "[unknown_outcome]"),
    ("several_problems_after_an_error", 2, "[unknown_outcome]"),
    ("unparseable_dates_renamed_column", 1, "[unparseable_dates]"),
    ("row_numbers_after_blank_line", 1, "[negative_amount]"),
    ("row_numbers_after_multiline_cell", 1, "[negative_amount]"),
    ("leading_zeros", 0, "no problems found"),
    ("utf16_bom", 0, "no problems found"),
    ("nul_byte", 1, "[nul_bytes]"),
    ("mixed_utc_offsets", 0, "[mixed_utc_offsets]"),
] + [(folder, 2, shown) for folder, shown in SOURCE_ERRORS.items() if folder != "missing_source_file"]


def test_every_folder_has_a_cli_case():
    """Every folder of the corpus is exercised by the command-line test."""
    assert {folder for folder, _, _ in CLI} == {p.name for p in BROKEN.iterdir() if p.is_dir()}


@pytest.mark.parametrize("folder, code, shown", CLI, ids=[c[0] for c in CLI])
def test_cli_exit_code(folder, code, shown, capsys):
    """`workbench validate` exits 0 clean, 1 warnings, 2 errors (spec/source errors too), printing the problem."""
    assert main(["validate", str(spec_of(folder))]) == code
    out, err = capsys.readouterr()
    if folder == "unknown_yaml_key" or folder in SOURCE_ERRORS:
        assert shown in err and err.startswith("workbench validate: ") and out == ""
    else:
        assert shown in out and err == ""


@pytest.mark.parametrize("folder, code, shown", [
    ("clean", 0, "no problems found"),
    ("negative_amounts", 1, "[negative_amount]"),
    ("unknown_outcome_value", 2, "[unknown_outcome]"),
])
@pytest.mark.parametrize("command", ["module", "installed"])
def test_cli_exit_code_in_a_subprocess(folder, code, shown, command):
    """The real `python -m workbench.cli validate` process, and the installed `workbench` command, return the
    same exit codes and their whole output through a pipe (they leave without the interpreter's teardown:
    `workbench.cli.console`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    script = Path(sys.executable).with_name("workbench")
    if command == "installed" and not script.is_file():
        pytest.skip("no installed `workbench` command beside this interpreter")
    start = [sys.executable, "-m", "workbench.cli"] if command == "module" else [str(script)]
    done = subprocess.run([*start, "validate", str(spec_of(folder))], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == code, done.stderr
    assert shown in done.stdout and "Traceback" not in done.stderr
    assert done.stdout.endswith("\n")  # the report, to its last line


@pytest.mark.parametrize("folder, code, shown", CLI, ids=[c[0] for c in CLI])
def test_cli_json_on_every_outcome(folder, code, shown, capsys):
    """`--format json` prints one JSON document whatever happens, with the same exit code: the problems, or
    for a dataset.yaml or source that cannot be read at all, the error (also on stderr for a person)."""
    import json

    assert main(["validate", str(spec_of(folder)), "--format", "json"]) == code
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["exit_code"] == code
    if folder == "unknown_yaml_key" or folder in SOURCE_ERRORS:
        assert shown in document["error"] and shown in err
    else:
        assert document["problems"] or code == 0


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"workbench {workbench.__version__}"


def test_cli_on_a_dataset_folder(capsys):
    """`workbench validate FOLDER` validates FOLDER/dataset.yaml or asks for the file, never a traceback."""
    code = main(["validate", str(BROKEN / "clean")])
    out, err = capsys.readouterr()
    assert code == 0 or (code == 2 and "dataset.yaml" in err)


# --- source files are only read -----------------------------------------------------------------

def test_source_files_are_never_modified(capsys):
    """Validating, loading and running the CLI on every folder leaves the corpus byte for byte as it was."""
    before = file_hashes()
    for folder in sorted(p.name for p in BROKEN.iterdir() if p.is_dir()):
        try:
            workbench.validate(spec_of(folder))
            load_quietly(folder)
        except WorkbenchError:
            pass
        main(["validate", str(spec_of(folder))])
    capsys.readouterr()
    assert file_hashes() == before


# --- helpers for "apply the fix" tests ----------------------------------------------------------

def _copy(tmp_path: Path, folder: str) -> Path:
    shutil.copytree(BROKEN / folder, tmp_path / folder)
    return tmp_path / folder / "dataset.yaml"


def _edit(spec: Path, old: str, new: str) -> None:
    text = spec.read_text()
    assert text.count(old) == 1, old
    spec.write_text(text.replace(old, new))


def test_constant_concat_and_add_days_columns(tmp_path):
    """`{constant: ...}`, `{concat: [...]}` and `derive: {add_days: ...}` build the values they describe."""
    (tmp_path / "deals.csv").write_text("Opp,Line,Result,Days\n1,a,Won,10\n1,b,Loss,3\n2,a,Won,0\n")
    (tmp_path / "dataset.yaml").write_text(
        "deals:\n  source: deals.csv\n  keep_other_columns: false\n  columns:\n"
        "    deal_id: {concat: [Opp, Line], sep: /}\n    outcome: Result\n    days: Days\n"
        "    created_at: {constant: '2024-01-01'}\n"
        "  values: {outcome: {Won: won, Loss: lost}}\n"
        "  derive: {closed_at: {add_days: days, to: created_at}}\n")
    ds = workbench.load_dataset(tmp_path / "dataset.yaml")
    deals = ds.deals.set_index("deal_id")
    assert list(deals.index) == ["1/a", "1/b", "2/a"]
    assert (deals["created_at"] == pd.Timestamp("2024-01-01")).all()
    assert list((deals["closed_at"] - deals["created_at"]).dt.days) == [10, 3, 0]


# --- dateless deals: a drivers-only table --------------------------------------------------------

SURVEY = ("Opportunity,Result,Deal Value,Region\n"
          "1,Won,1200,North\n2,Loss,800,South\n3,Won,300,North\n4,Pending,50,South\n5,Loss,80,North\n")
SURVEY_YAML = ("name: win-loss survey\n"
               "deals:\n  source: deals.csv\n"
               "  columns: {deal_id: Opportunity, outcome: Result, amount: Deal Value}\n"
               "  values: {outcome: {Won: won, Loss: lost, Pending: open}}\n")


def _survey(tmp_path: Path, yaml_text: str = SURVEY_YAML, csv_text: str = SURVEY) -> Path:
    """A win/loss survey export: one row per deal, its outcome and attributes, no dates at all."""
    (tmp_path / "deals.csv").write_text(csv_text)
    (tmp_path / "dataset.yaml").write_text(yaml_text)
    return tmp_path / "dataset.yaml"


def test_dateless_deals_load_with_empty_dates_and_no_cut_off(tmp_path):
    """Neither date mapped: every deal loads, both date columns are all NaT, `as_of` is NaT, `has_dates` False."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        ds = workbench.load_dataset(_survey(tmp_path))
    rows = list(csv.DictReader((tmp_path / "deals.csv").open()))
    assert list(ds.deals["deal_id"]) == [r["Opportunity"] for r in rows]
    outcome = {"Won": "won", "Loss": "lost", "Pending": "open"}
    assert list(ds.deals["outcome"]) == [outcome[r["Result"]] for r in rows]
    assert list(ds.deals.columns[:4]) == ["deal_id", "created_at", "closed_at", "outcome"]
    for column in ("created_at", "closed_at"):
        assert ds.deals[column].dtype == "datetime64[ns]" and ds.deals[column].isna().all()
    assert pd.isna(ds.as_of) and not ds.has_dates
    assert ds.attributes == ["Region"]
    assert repr(ds) == ("<Dataset 'win-loss survey': 5 deals (2 won, 2 lost, 1 open), without deal dates, "
                        "0 stage entries>")
    assert "without deal dates" in ds._repr_html_()
    assert ds.summary().to_dict("records")[0] == {"table": "deals", "rows": 5, "excluded": 0}
    first = data_findings(ds)[0]
    assert "as of" not in first and "without dates" in first


def test_dateless_validate_exits_0_with_one_note(tmp_path, capsys):
    """`workbench validate` on a dateless export exits 0 and prints one `no_dates` note naming what does not apply."""
    spec = _survey(tmp_path)
    assert main(["validate", str(spec)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.count("[no_dates]") == 1
    report = workbench.validate(spec)
    assert report.errors == [] and report.warnings == [] and report.exit_code == 0
    (note,) = [p for p in report.notes if p.check == "no_dates"]
    assert note.severity == "note"
    for words in ("time to close", "stage conversion", "cohorts", "forecasts", "only outcomes and attributes"):
        assert words in note.message


def test_dated_dataset_has_no_dateless_note():
    """A dataset with dates gets no `no_dates` note and `has_dates` is True."""
    assert "no_dates" not in workbench.validate(spec_of("clean")).checks()
    assert load_quietly("clean").has_dates


def test_dateless_outcome_is_still_required_and_checked(tmp_path):
    """Without dates an unknown outcome is still an error, a missing one still excluded, and no date check runs."""
    report = workbench.validate(_survey(tmp_path, csv_text=SURVEY.replace("5,Loss", "5,Maybe")))
    assert [p.check for p in report.errors] == ["unknown_outcome"]
    assert report.errors[0].rows == (6,) and report.errors[0].values == ("Maybe",)
    report = workbench.validate(_survey(tmp_path, csv_text=SURVEY.replace("5,Loss", "5,")))
    assert [(p.check, p.rows) for p in report.warnings] == [("missing_outcome", (6,))]
    no_outcome = (SURVEY_YAML.replace("deal_id: Opportunity, outcome: Result, ", "deal_id: Opportunity, ")
                  .replace("  values: {outcome: {Won: won, Loss: lost, Pending: open}}\n", ""))
    report = workbench.validate(_survey(tmp_path, no_outcome, SURVEY.replace("Result", "Answer")))
    assert [(p.check, p.column) for p in report.errors] == [("missing_column", "outcome")]
    dated_checks = {"missing_created_at", "outcome_without_close_date", "open_with_close_date",
                    "closed_before_created", "after_as_of"}
    assert not dated_checks & workbench.validate(_survey(tmp_path)).checks()


def test_dateless_as_of_given_in_the_yaml_is_kept(tmp_path):
    """`as_of:` in dataset.yaml is the dataset's `as_of` even without deal dates."""
    ds = workbench.load_dataset(_survey(tmp_path, 'as_of: "2024-06-30"\n' + SURVEY_YAML))
    assert ds.as_of == pd.Timestamp("2024-06-30") and not ds.has_dates
    assert "as of 2024-06-30, without deal dates" in repr(ds)


def test_dateless_filter_works_and_cut_says_there_are_no_dates(tmp_path):
    """`filter` restricts a dateless dataset as any other; `cut` raises a WorkbenchError: no dates to cut at."""
    ds = workbench.load_dataset(_survey(tmp_path))
    north = ds.filter({"Region": "North"})
    assert list(north.deals["deal_id"]) == ["1", "3", "5"] and not north.has_dates
    with pytest.raises(WorkbenchError, match=r"no dates.*Try 1\) map `created_at` and `closed_at`"):
        ds.cut("2024-01-01")


def test_dateless_stage_history_keeps_its_own_dates(tmp_path):
    """Stage history beside a dateless deals table loads with its own dates; `as_of` stays NaT (none given)."""
    spec = _survey(tmp_path, "stages: [Lead]\nwon_stages: [Won]\nlost_stages: [Lost]\n" + SURVEY_YAML
                   + "stage_history: {source: history.csv}\n")
    (tmp_path / "history.csv").write_text("deal_id,stage,entered_at\n1,Lead,2024-01-03\n1,Won,2024-02-03\n"
                                          "2,Lead,2024-01-05\n4,Lead,2024-03-01\n")
    report = workbench.validate(spec)
    assert report.errors == [] and report.warnings == []
    ds = workbench.load_dataset(spec)
    assert list(ds.stage_history["entered_at"].dt.strftime("%Y-%m-%d")) == [
        "2024-01-03", "2024-02-03", "2024-01-05", "2024-03-01"]
    assert pd.isna(ds.as_of) and not ds.has_dates


CLOSED = ["Closed", "2024-01-02", "2024-01-03", "2024-01-04", "", "2024-01-05"]  # header, then per deal


@pytest.mark.parametrize("mapped, missing", [("created_at: {constant: '2000-01-01'}", "closed_at"),
                                             ("closed_at: Closed", "created_at")])
def test_one_date_without_the_other_is_an_error_with_the_dateless_fix(tmp_path, mapped, missing):
    """Mapping one date and not the other stays an error naming the missing column; a fix says both may go."""
    text = SURVEY_YAML.replace("amount: Deal Value}", f"amount: Deal Value, {mapped}}}")
    csv_text = "".join(f"{line},{closed}\n" for line, closed in zip(SURVEY.splitlines(), CLOSED))
    report = workbench.validate(_survey(tmp_path, text, csv_text))
    (error,) = report.errors
    assert (error.check, error.column) == ("missing_column", missing)
    assert error.message == f"required column `{missing}` is missing."
    assert "3) leave out" in error.fix and "dateless, drivers-only deals table" in error.fix
    assert "no_dates" not in report.checks()


def test_clear_when_open_on_a_dateless_table_names_the_missing_column(tmp_path):
    """`derive: {closed_at: clear_when_open}` without a `closed_at` is an error, not a half-made date pair."""
    spec = _survey(tmp_path, SURVEY_YAML + "  derive: {closed_at: clear_when_open}\n")
    (error,) = workbench.validate(spec).errors
    assert (error.check, error.column) == ("missing_column", "closed_at") and "clear_when_open" in error.message


# --- exports that used to load silently wrong -----------------------------------------------------

def _source_error(folder: str) -> str:
    with pytest.raises(SourceError) as info:
        workbench.validate(spec_of(folder))
    return str(info.value)


def test_duplicate_headers_name_the_header_and_both_positions(tmp_path):
    """Two `amount` headers are an error naming the file, the header and both positions; renaming one clears it."""
    problem = primary(workbench.validate(spec_of("duplicate_headers")), BY_FOLDER["duplicate_headers"])
    with open(BROKEN / "duplicate_headers" / DEALS, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    positions = [i for i, name in enumerate(header, start=1) if name == "amount"]
    assert positions == [5, 8]
    assert "`amount` appears 2 times, in columns 5 and 8" in problem.message
    assert problem.fix.startswith("Try 1) rename")
    fixed = _copy(tmp_path, "duplicate_headers")
    deals = fixed.parent / DEALS
    deals.write_text(deals.read_text().replace("region,amount", "region,list_price", 1))
    assert workbench.validate(fixed).exit_code == 0


def test_duplicate_deal_id_header_is_an_error_not_a_hidden_column(tmp_path):
    """A second `deal_id` header where `channel` belongs is an error naming both positions (it used to load clean)."""
    (tmp_path / "deals.csv").write_text("deal_id,created_at,closed_at,outcome,deal_id\n"
                                        "D1,2024-01-01,2024-02-01,won,Web\nD2,2024-01-05,,open,Partner\n")
    (tmp_path / "dataset.yaml").write_text("deals: {source: deals.csv}\n")
    report = workbench.validate(tmp_path / "dataset.yaml")
    (error,) = report.errors
    assert (error.check, error.column, error.source) == ("duplicate_header", "deal_id", "deals.csv")
    assert "columns 1 and 5" in error.message and report.exit_code == 2


def test_ragged_rows_are_all_reported_and_hide_nothing(tmp_path):
    """Rows with too few or too many fields, in both files, are each reported by line; problems after them still are."""
    spec = _copy(tmp_path, "ragged_rows")
    deals = spec.parent / DEALS
    deals.write_text(deals.read_text().replace("lost,6400,", "lost,-6400,"))
    history = spec.parent / HISTORY
    lines = history.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rstrip("\n") + ",extra\n"        # line 3: four fields
    lines[-3] = "D10,Qualified\n"                          # two fields
    lines[-2] = lines[-2].replace("2024-07-15", "2024-07-32")  # an unparseable date after both
    history.write_text("".join(lines))
    report = workbench.validate(spec)
    got = {(p.check, p.table): list(p.rows) for p in report.warnings if p.check != "unknown_deal"}
    assert got == {("ragged_rows", "deals"): [4, 7, 10], ("ragged_rows", "stage_history"): [3, len(lines) - 2],
                   ("negative_amount", "deals"): [6], ("unparseable_dates", "stage_history"): [len(lines) - 1]}, \
        report.to_text()
    problem = next(p for p in report.warnings if p.check == "ragged_rows" and p.table == "deals")
    assert "line 4 has 8, line 7 has 6, line 10 has 5" in problem.message
    assert problem.values[0] == "D03,2024-02-01,,open,23000,Ana,North, East"


def test_cut_last_line_says_the_export_looks_cut():
    """A last line that stops early without a line end is reported as a cut export, with its line."""
    problem = primary(workbench.validate(spec_of("cut_last_line")), BY_FOLDER["cut_last_line"])
    assert "The last line (11) ends early" in problem.message and "cut off" in problem.message


def test_extra_field_on_the_first_data_row_does_not_shift_the_others(tmp_path):
    """A first data row with one field too many is left out; it no longer turns the first column into an index."""
    spec = _copy(tmp_path, "clean")
    deals = spec.parent / DEALS
    deals.write_text(deals.read_text().replace(",North\n", ",North,Spare\n", 1))
    report = workbench.validate(spec)
    assert [(p.check, list(p.rows)) for p in report.warnings if p.table == "deals"] == [("ragged_rows", [2])]
    ds = load_quietly_spec(spec)
    assert list(ds.deals["deal_id"]) == [f"D{i:02d}" for i in range(2, 11)]
    assert set(ds.deals["outcome"]) == {"won", "lost", "open"}


def test_every_row_disagreeing_with_the_header_is_an_error(tmp_path):
    """When most rows have another field count (a separator ending every line), the table is not mapped: an error."""
    spec = _copy(tmp_path, "clean")
    deals = spec.parent / DEALS
    head, *rows = deals.read_text().splitlines()
    deals.write_text("\n".join([head] + [r + "," for r in rows]) + "\n")
    report = workbench.validate(spec)
    (error,) = report.errors
    assert (error.check, error.table, error.count) == ("ragged_rows", "deals", 10)
    assert "the header has 7 fields but 10 of 10 rows" in error.message and "most have 8" in error.message
    assert report.exit_code == 2


def load_quietly_spec(spec: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return workbench.load_dataset(spec)


def test_leading_zeros_are_kept_in_ids_and_attributes():
    """`00007` in an attribute and `00001` as a deal id stay text as written; the stage history still matches."""
    ds = load_quietly("leading_zeros")
    rows = records("leading_zeros")
    assert list(ds.deals["zip"]) == [r["zip"] for _, r in rows]
    assert list(ds.deals["deal_id"]) == [r["deal_id"] for _, r in rows]
    assert len(ds.stage_history) == len(records("leading_zeros", HISTORY))
    assert ds.deals["amount"].dtype.kind == "f"  # plain numbers still become numbers


def test_nul_byte_is_kept_and_reported_with_line_and_column():
    """A NUL byte no longer cuts the value (`Ea\\0st` read `Ea`): kept as written, reported by line and column."""
    report = workbench.validate(spec_of("nul_byte"))
    (problem,) = report.problems
    assert (problem.severity, problem.check, problem.column, problem.rows) == ("warning", "nul_bytes", "region", (5,))
    assert problem.values == ("Ea\x00st",) and problem.excluded == 0
    ds = workbench.load_dataset(spec_of("nul_byte"))
    assert ds.deals.set_index("deal_id").loc["D04", "region"] == "Ea\x00st"


def test_utf16_file_with_a_byte_order_mark_reads_as_the_clean_one():
    """A UTF-16 export with its byte-order mark loads exactly as the UTF-8 clean base."""
    got, want = load_quietly("utf16_bom"), load_quietly("clean")
    pd.testing.assert_frame_equal(got.deals, want.deals)
    assert got.report.problems == []


def test_not_utf8_names_line_column_bytes_and_the_encoding_to_set(tmp_path):
    """A byte UTF-8 cannot read is named by line, column and value; setting the suggested `encoding:` reads the file."""
    message = _source_error("not_utf8")
    assert "`deals.csv` is not utf-8 text" in message
    assert "line 5, column `owner`: 0xE9 in `Jos\\xe9` (`José` in cp1252)" in message
    assert "line 9, column `owner`: 0xEB" in message
    assert "Try 1) set `encoding: cp1252` on the source" in message
    fixed = _copy(tmp_path, "not_utf8")
    _edit(fixed, "source: deals.csv", "source: {path: deals.csv, encoding: cp1252}")
    assert workbench.validate(fixed).exit_code == 0
    owners = load_quietly_spec(fixed).deals.set_index("deal_id")["owner"]
    assert (owners["D04"], owners["D08"]) == ("José", "Zoë")


@pytest.mark.parametrize("folder, written", [("semicolon_delimiter", '";"'), ("tab_separated_csv", '"\\t"')])
def test_other_delimiter_gets_the_delimiter_key_to_set(tmp_path, folder, written):
    """A file read as one column because of another delimiter names it and the `delimiter:` to set, which works."""
    message = _source_error(folder)
    assert "reads as a single column" in message and f"Try 1) add `delimiter: {written}` to the source" in message
    fixed = _copy(tmp_path, folder)
    _edit(fixed, "source: deals.csv", f"source: {{path: deals.csv, delimiter: {written}}}")
    assert workbench.validate(fixed).exit_code == 0


def test_stage_declared_with_a_trailing_space_names_the_difference(tmp_path):
    """A stage declared `'Proposal '` is reported as exactly that difference, and fix 1) clears it."""
    problem = primary(workbench.validate(spec_of("stage_declared_with_space")), BY_FOLDER["stage_declared_with_space"])
    assert "declared `Proposal ` with a trailing space, the data say `Proposal`" in problem.message
    assert problem.fix.startswith("Try 1) write `Proposal` in dataset.yaml where it says `Proposal `")
    fixed = _copy(tmp_path, "stage_declared_with_space")
    _edit(fixed, "[Lead, Qualified, 'Proposal ']", "[Lead, Qualified, Proposal]")
    assert workbench.validate(fixed).exit_code == 0


def test_created_after_as_of_is_not_reported_as_closing_before_created():
    """A closed deal created after `as_of` gets its own check and message, not `closed_before_created`."""
    report = workbench.validate(spec_of("created_after_as_of"))
    problem = primary(report, BY_FOLDER["created_after_as_of"])
    assert "created after the cut-off `as_of` 2024-12-31" in problem.message
    assert "It closes before that creation date" in problem.message
    assert "closed_before_created" not in report.checks()


def test_ids_that_differ_by_leading_zeros_say_so():
    """Stage entries `00001` against deals `1` name the leading zeros, both spellings, and the fix."""
    problem = primary(workbench.validate(spec_of("history_ids_with_leading_zeros")),
                      BY_FOLDER["history_ids_with_leading_zeros"])
    assert "31 of these rows would match if leading zeros were ignored (`00001` here, `1` in the deals table)" \
        in problem.message
    assert problem.fix.startswith("Try 1) write the ids the same way in both sources")


def test_joined_ids_that_differ_by_leading_zeros_say_so(tmp_path):
    """A joined attribute table whose keys carry leading zeros the deals lack says so."""
    spec = _copy(tmp_path, "history_ids_with_leading_zeros")
    (spec.parent / "segments.csv").write_text("Opp,Segment\n" + "".join(f"{i:05d},SMB\n" for i in range(1, 11)))
    spec.write_text(spec.read_text().replace(
        "  source: deals.csv\n",
        "  source: deals.csv\n  join:\n    - {source: segments.csv, on: {deal_id: Opp}, columns: {segment: Segment}}\n",
        1))
    report = workbench.validate(spec)
    (problem,) = [p for p in report.warnings if p.check == "join_unmatched"]
    assert "`00001` here, `1` in the deals table" in problem.message


@pytest.mark.parametrize("key, value, shown", [("delimiter", '";;"', "`delimiter` must be one character"),
                                               ("encoding", "klingon", "`encoding: klingon` is not an encoding")])
def test_file_source_keys_are_checked_in_the_spec(tmp_path, key, value, shown):
    """A `delimiter:` of several characters or an unknown `encoding:` is a SpecError at `deals.source.<key>` alone."""
    fixed = _copy(tmp_path, "clean")
    _edit(fixed, "source: deals.csv", f"source: {{path: deals.csv, {key}: {value}}}")
    with pytest.raises(SpecError) as info:
        workbench.validate(fixed)
    assert f"`deals.source.{key}`: Value error, {shown}" in str(info.value)
    assert "has 1 problem(s)" in str(info.value)


# --- deals without ids: rows numbered ----------------------------------------------------------------

B2B = ('Company,Sector,Employees,Status\n'
       'Acme,Retail,50,Won\n'
       '\n'
       'Beta,"Retail,\nOnline",20,Lost\n'
       'Acme,Retail,50,Won\n'
       'Gamma,Energy,200,Open\n')
B2B_YAML = ("name: b2b table\n"
            "deals:\n  source: deals.csv\n"
            "  columns: {deal_id: {row_number: true}, outcome: Status}\n"
            "  values: {outcome: {Won: won, Lost: lost, Open: open}}\n")


def _b2b(tmp_path: Path, text: str = B2B, yaml_text: str = B2B_YAML) -> Path:
    (tmp_path / "deals.csv").write_text(text)
    (tmp_path / "dataset.yaml").write_text(yaml_text)
    return tmp_path / "dataset.yaml"


def test_row_number_ids_are_physical_lines(tmp_path):
    """`deal_id: {row_number: true}` numbers each deal by the line it starts on (blank lines and multi-line
    cells counted), as text, and keeps two deals that agree on every column, with a note saying so."""
    spec = _b2b(tmp_path)
    lines = (tmp_path / "deals.csv").read_text().split("\n")
    starts = [str(i) for i, line in enumerate(lines, start=1) if line.split(",")[0] in {"Acme", "Beta", "Gamma"}]
    report = workbench.validate(spec)
    assert report.exit_code == 0 and report.excluded_rows() == 0
    (note,) = [p for p in report.notes if p.check == "identical_rows_kept"]
    assert note.count == 1 and "row_number" in note.message
    ds = workbench.load_dataset(spec)
    assert list(ds.deals["deal_id"]) == starts
    assert ds.counts() == {"deals": 4, "won": 2, "lost": 1, "open": 1} and not ds.has_dates


def test_concat_ids_drop_alike_deals_and_point_to_row_numbers(tmp_path):
    """A `concat` of attributes as id makes two alike deals one: the copy is excluded, counted, and the fix
    names `row_number`."""
    spec = _b2b(tmp_path, yaml_text=B2B_YAML.replace("{row_number: true}", "{concat: [Company, Sector]}"))
    report = workbench.validate(spec)
    (problem,) = [p for p in report.problems if p.check == "duplicate_rows"]
    assert problem.excluded == 1 and "row_number: true" in problem.fix


def test_row_number_is_only_true(tmp_path):
    """`{row_number: false}` is a spec error, not a silent fallback."""
    with pytest.raises(SpecError, match="row_number"):
        workbench.validate(_b2b(tmp_path, yaml_text=B2B_YAML.replace("row_number: true", "row_number: false")))


def test_numbered_dateless_table_runs_the_drivers(tmp_path):
    """A table of outcome and attributes only (no ids, no dates) gives win rates per attribute over the
    closed deals; the open one is left out and said to be."""
    from workbench.drivers import univariate_drivers

    rows = ["Company,Sector,Status"] + [f"C{i},{'Retail' if i % 3 else 'Energy'},{'Won' if i % 2 else 'Lost'}"
                                         for i in range(60)] + ["Z,Retail,Open"]
    spec = _b2b(tmp_path, "\n".join(rows) + "\n")
    ds = workbench.load_dataset(spec)
    result = univariate_drivers(ds, ["Sector"], min_level=5)
    assert result.rates["Sector"].n == 60
    assert "1 open deal is left out" in result.notes[0]


# --- quality-note wording (#14) ---------------------------------------------------------------------

def _joined(tmp_path: Path) -> Path:
    """The clean deals, plus a sectors file joined on the deal id: rows for D01-D06 and two ids no deal has."""
    spec = _copy(tmp_path, "clean")
    (spec.parent / "sectors.csv").write_text("Opp,Sector\n" + "".join(f"D{i:02d},Retail\n" for i in range(1, 7))
                                             + "X98,Energy\nX99,Energy\n")
    spec.write_text(spec.read_text().replace(
        "  source: deals.csv\n",
        "  source: deals.csv\n  join:\n    - {source: sectors.csv, on: {deal_id: Opp}, columns: {sector: Sector}}\n",
        1))
    return spec


def test_joined_rows_are_filed_under_their_own_file(tmp_path):
    """Unmatched rows of a joined file are counted as rows of that file, not as deals rows, also in the report box."""
    from workbench.run.summary import quality_note

    spec = _joined(tmp_path)
    report = workbench.validate(spec)
    (problem,) = [p for p in report.warnings if p.check == "join_unmatched"]
    lines = [n for n, row in records("clean", "deals.csv")]  # the deals file is untouched
    assert problem.table == "sectors.csv" and problem.source == "sectors.csv"
    assert problem.rows == (8, 9) and problem.excluded == 2 and len(lines) == 10
    ds = load_quietly_spec(spec)
    assert ds.summary().query("table == 'deals'")["excluded"].item() == 0
    from workbench.dataset.model import excluded_rows
    text = quality_note({"excluded_rows": excluded_rows(ds)})
    assert "2 rows of sectors.csv (join_unmatched)" in text and "deals rows" not in text
    assert "2 rows of sectors.csv (join_unmatched)" in " ".join(data_findings(ds))


def test_sparse_joined_column_names_its_own_file(tmp_path):
    """A sparse column that came from a joined file is noted against that file and its own column name."""
    report = workbench.validate(_joined(tmp_path))
    (note,) = [p for p in report.notes if p.check == "sparse_column"]
    assert note.source == "sectors.csv" and note.column == "Sector"
    assert "empty on 4 of 10 deals" in note.message and "joined onto the deals" in note.message


def test_value_map_exclusions_are_informational(tmp_path, capsys):
    """Deals mapped out with `~` are counted and reported as a note: `workbench validate` exits 0."""
    text = B2B + "Gone,Retail,5,Deleted\nAgain,Energy,9,Deleted\n"
    spec = _b2b(tmp_path, text, B2B_YAML.replace("Open: open}", "Open: open, Deleted: ~}"))
    report = workbench.validate(spec)
    (note,) = [p for p in report.problems if p.check == "excluded_by_mapping"]
    deleted = [i for i, line in enumerate(text.split("\n"), start=1) if line.endswith(",Deleted")]
    assert note.severity == "note" and note.rows == tuple(deleted) and note.excluded == len(deleted) == 2
    assert report.excluded_rows() == len(deleted) and report.exit_code == 0
    assert main(["validate", str(spec)]) == 0
    assert "[excluded_by_mapping]" in capsys.readouterr().out
    with pytest.warns(DataQualityWarning, match=f"{len(deleted)} row"):
        assert workbench.load_dataset(spec).exclusions["rows"].sum() == len(deleted)


def test_mixed_utc_offsets_folder_keeps_wall_times_with_a_note():
    """Winter and summer offsets of one zone: every timestamp keeps its clock reading, one note, exit 0."""
    report = workbench.validate(spec_of("mixed_utc_offsets"))
    assert [p.check for p in report.problems] == ["mixed_utc_offsets"] and report.exit_code == 0
    written = {r["deal_id"]: r["created_at"] for _, r in records("mixed_utc_offsets")}
    deals = load_quietly("mixed_utc_offsets").deals.set_index("deal_id")
    for deal, text in written.items():
        assert deals.loc[deal, "created_at"] == pd.Timestamp(text[:19])
    offsets = {text[19:] for text in written.values()}
    assert set(report.notes[0].values) == offsets


def test_clean_text_strips_every_blank_python_strips():
    """Text cells lose exactly the surrounding blanks `str.strip` removes (all of Python's whitespace,
    which pyarrow looks for), all-blank and empty cells become missing, and other cells are left as they are."""
    from workbench.dataset.mapping import clean_text
    from workbench.dataset.readers import BLANKS

    blanks = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert BLANKS == "".join(blanks)
    cells = ["plain", "in side", "\u200bzero-width is not a blank", None, "", *(f"{b}x{b}" for b in blanks),
             *blanks, "\x1ctab\t"]
    cleaned = clean_text(pd.DataFrame({"persona": pd.Series(cells, dtype=object)}))["persona"].tolist()
    expected = [None if c is None else (c.strip() or None) for c in cells]
    assert [None if isinstance(v, float) else v for v in cleaned] == expected
    assert cleaned[0] is cells[0] and cleaned[3] != cleaned[3]  # untouched; missing is NaN


def test_a_bad_date_repeated_is_reported_on_every_row_it_stands(tmp_path):
    """Dates are parsed once per distinct text: a bad date written on several rows is still reported
    with each of their lines, and the rows with good copies of a date all get it."""
    folder = tmp_path / "repeated_bad_date"
    shutil.copytree(BROKEN / "clean", folder)
    path = folder / DEALS
    lines = path.read_text().splitlines(keepends=True)
    rows = list(csv.reader(lines))
    closed = rows[0].index("closed_at")
    hit = [n for n, row in enumerate(rows[1:], start=2) if row[closed]][:3]
    for n in hit:
        rows[n - 1][closed] = "2024-02-30"
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    problem, = [p for p in workbench.validate(folder / "dataset.yaml").problems if p.check == "unparseable_dates"]
    assert list(problem.rows) == hit and problem.count == len(hit) and problem.values == ("2024-02-30",)


def test_stage_entries_come_by_deal_date_and_process_order_whatever_the_file_order():
    """The loaded history is sorted by deal, date and the stage's place in the process (two entries on one
    day: the earlier stage first), the same from rows already in that order (kept as they are) as from
    the same rows shuffled."""
    import numpy as np

    deals = pd.DataFrame({"deal_id": ["D1", "D2", "D3"], "created_at": pd.to_datetime(["2024-01-01"] * 3),
                          "closed_at": pd.to_datetime(["2024-03-01", pd.NaT, "2024-02-01"]),
                          "outcome": ["won", "open", "lost"]})
    ordered = pd.DataFrame({
        "deal_id": ["D1", "D1", "D1", "D1", "D2", "D2", "D3", "D3"],
        "stage": ["Lead", "Qualified", "Proposal", "Won", "Lead", "Qualified", "Lead", "Lost"],
        "entered_at": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-05", "2024-03-01",
                                      "2024-01-01", "2024-02-01", "2024-01-01", "2024-02-01"])})

    def load(history):
        return workbench.from_frames(deals, history, stages=["Lead", "Qualified", "Proposal"], won_stages=["Won"],
                                     lost_stages=["Lost"],
                                     as_of="2024-06-30").stage_history

    kept = load(ordered)
    pd.testing.assert_frame_equal(kept, ordered)
    for seed in range(5):
        shuffled = ordered.sample(frac=1, random_state=seed).reset_index(drop=True)
        pd.testing.assert_frame_equal(load(shuffled), ordered)
    swapped = ordered.iloc[[0, 2, 1, 3, 4, 5, 6, 7]].reset_index(drop=True)  # same day, later stage first
    pd.testing.assert_frame_equal(load(swapped), ordered)
    assert not np.array_equal(swapped["stage"], ordered["stage"])
