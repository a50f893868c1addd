"""Validation problems, collected lazily and reported all at once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import pandas as pd

from .. import tables
from ..exceptions import MAX_SHOWN

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Problem:
    """One problem found in the data.

    ``rows`` are source row numbers as a user would see them (for a CSV, the line in
    the file: the header is line 1). An error stops the load; a warning excludes the
    ``excluded`` rows and is kept with the dataset.
    """

    severity: Severity
    check: str
    table: str
    message: str
    fix: str = ""
    source: str = ""
    column: str | None = None
    rows: tuple[int, ...] = ()
    count: int = 0
    values: tuple[str, ...] = ()
    excluded: int = 0

    def to_text(self) -> str:
        where = f"`{self.source}`" if self.source else f"table `{self.table}`"
        if self.column:
            where += f", column `{self.column}`"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:MAX_SHOWN])
            more = f" (first {MAX_SHOWN} shown)" if self.count > MAX_SHOWN else ""
            where += f", {self.count} row{'s' if self.count != 1 else ''}: {shown}{more}"
        elif self.count:
            where += f", {self.count} row{'s' if self.count != 1 else ''}"
        text = f"{self.severity.upper()} [{self.check}] {where}: {self.message}"
        if self.values:
            text += " Values: " + ", ".join(repr(v) for v in self.values[:MAX_SHOWN]) + "."
        if self.excluded:
            text += f" {self.excluded} row{'s' if self.excluded != 1 else ''} excluded."
        if self.fix:
            text += " " + self.fix
        return text


@dataclass
class ValidationReport:
    """Every problem found while loading a dataset."""

    problems: list[Problem] = field(default_factory=list)
    source: str = ""
    #: What the problems and counts are of, when not of this dataset itself: a segment's slice
    #: carries the load of the whole dataset it was cut from (`workbench.dataset.store.read_quality`).
    scope: str = ""
    #: (table, column) pairs whose values cannot be trusted (ambiguous or mixed date formats):
    #: checks that would only repeat that error skip them.
    unusable: set = field(default_factory=set)
    #: (table, canonical column) -> the source column it came from, for messages.
    source_columns: dict = field(default_factory=dict)
    #: Tables whose ids are their rows' numbers (`{row_number: true}`): rows that agree on every
    #: other column are distinct records there, not copies.
    numbered: set = field(default_factory=set)
    #: (table, canonical column) pairs given one `{constant: ...}` value for every row.
    constants: set = field(default_factory=set)
    #: (table, canonical column) -> (file label, source column) it was read from: a deals column
    #: joined from another file is named by that file in notes.
    column_files: dict = field(default_factory=dict)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def notes(self) -> list[Problem]:
        """Observations about the data that exclude nothing (sparse columns, no lost deals...)."""
        return [p for p in self.problems if p.severity == "note"]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 warnings only, 2 errors (the `workbench validate` contract)."""
        return 2 if self.errors else 1 if self.warnings else 0

    def checks(self) -> set[str]:
        return {p.check for p in self.problems}

    def exclusions(self) -> pd.DataFrame:
        """Excluded rows per table and reason."""
        rows = [
            {"table": p.table, "check": p.check, "reason": p.message, "rows": p.excluded}
            for p in self.problems if p.excluded
        ]
        return pd.DataFrame(rows, columns=["table", "check", "reason", "rows"])

    def excluded_rows(self) -> int:
        return int(sum(p.excluded for p in self.problems))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"severity": p.severity, "check": p.check, "table": p.table, "source": p.source,
             "column": p.column, "count": p.count, "first_rows": list(p.rows[:MAX_SHOWN]),
             "excluded": p.excluded, "message": p.message, "fix": p.fix}
            for p in self.problems
        ])

    def _repr_html_(self) -> str:
        if not self.problems:
            loaded = f" {self.scope}" if self.scope else ""
            return f"<p>No problems were found while loading{loaded}; no rows were excluded.</p>"
        scope = f" (counted over {self.scope})" if self.scope else ""
        head = (f"<p>{len(self.errors)} error(s), {len(self.warnings)} warning(s), {self.excluded_rows():,} row(s) "
                f"excluded, {len(self.notes)} note(s){scope}.</p>")
        table = self.to_frame()[["severity", "check", "table", "column", "count", "excluded", "message", "fix"]]
        return head + tables.to_html(table, index=False)  # to_html escapes the cells

    def to_text(self) -> str:
        if not self.problems:
            return f"{self.source or 'dataset'}: no problems found."
        head = (f"{self.source or 'dataset'}: {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s), {self.excluded_rows()} row(s) excluded, "
                f"{len(self.notes)} note(s).")
        return "\n".join([head] + [p.to_text() for p in self.problems])

    def to_records(self) -> list[dict]:
        """JSON-ready list, as written into `summary.json`."""
        return [
            {"severity": p.severity, "check": p.check, "table": p.table, "column": p.column,
             "count": p.count, "excluded": p.excluded, "message": p.to_text()}
            for p in self.problems
        ]


def row_numbers(index: Sequence[int] | pd.Index | pd.Series) -> tuple[int, ...]:
    """Source row numbers (the `_row` column values) as a sorted tuple of ints."""
    return tuple(sorted(int(i) for i in index))
