"""Recording problems while a table is mapped and validated.

A `Checker` is bound to one table and source; `error` records a problem that
stops the load, `exclude` drops the offending rows and records why.
"""
from __future__ import annotations

import pandas as pd

from .problems import Problem, ValidationReport, row_numbers
from .readers import ROW


class Checker:
    def __init__(self, report: ValidationReport, table: str, source: str = "", kind: str | None = None):
        self.report = report
        self.table = table  # what problems are filed under: a canonical table, or a joined file
        self.source = source
        self.kind = kind or table  # the canonical table whose rules apply (a joined file: deals)

    def name(self, column: str | None) -> str | None:
        """The column as the user's source calls it (`Close Date` rather than `closed_at`)."""
        if column is None:
            return None
        return self.report.source_columns.get((self.table, column), column)

    def unusable(self, column: str) -> bool:
        return (self.table, column) in self.report.unusable

    def _rows(self, frame: pd.DataFrame | None, mask) -> tuple[tuple[int, ...], int]:
        if frame is None or mask is None:
            return (), 0
        hit = frame.loc[mask, ROW] if ROW in frame else frame.index[mask]
        return row_numbers(hit[:200] if not isinstance(hit, pd.Index) else hit[:200]), int(mask.sum())

    def error(self, check: str, message: str, fix: str = "", *, column=None, frame=None, mask=None,
              values=()) -> None:
        rows, count = self._rows(frame, mask)
        self.report.add(Problem("error", check, self.table, message, fix, self.source, self.name(column),
                                rows, count, _shown(values)))

    def warn(self, check: str, message: str, fix: str = "", *, column=None, frame=None, mask=None,
             values=()) -> None:
        """A warning that excludes nothing (e.g. a value set to empty)."""
        rows, count = self._rows(frame, mask)
        self.report.add(Problem("warning", check, self.table, message, fix, self.source, self.name(column),
                                rows, count, _shown(values)))

    def note(self, check: str, message: str, fix: str = "", *, column=None, count=0, values=(),
             source: str | None = None, frame=None, mask=None) -> None:
        """An observation that excludes nothing and does not change the exit code. ``source`` names
        another file than the checker's (a column joined from it), ``column`` then as named there;
        ``frame`` and ``mask`` give the rows it is about."""
        name = column if source is not None else self.name(column)
        rows, counted = self._rows(frame, mask)
        self.report.add(Problem("note", check, self.table, message, fix, source or self.source, name,
                                rows, counted or count, _shown(values)))

    def source_issue(self, issue) -> None:
        """Record a problem of the source itself (a `readers.SourceIssue`): its column is the
        source's own name already, and its rows were left out by the reader."""
        self.report.add(Problem(issue.severity, issue.check, self.table, issue.message, issue.fix, self.source,
                                issue.column, tuple(issue.rows), issue.count, _shown(issue.values),
                                excluded=issue.excluded))

    def exclude(self, frame: pd.DataFrame, mask: pd.Series, check: str, message: str, fix: str = "",
                *, column=None, values=None, severity: str = "warning") -> pd.DataFrame:
        """Drop the rows where ``mask`` holds and record a warning; return the rest.

        ``severity="note"``: the rows are left out on purpose (a value mapped to ~): still counted
        and reported, but not a warning, so `workbench validate` can exit 0.
        """
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return frame
        rows, count = self._rows(frame, mask)
        if values is None and column is not None and column in frame:
            values = frame.loc[mask, column].dropna().unique()[:5]
        self.report.add(Problem(severity, check, self.table, message, fix, self.source, self.name(column),
                                rows, count, _shown(values if values is not None else ()), excluded=count))
        return frame.loc[~mask].copy()  # a copy: the caller goes on setting columns


def _shown(values) -> tuple[str, ...]:
    """Values as a user would find them in the file: 6400 rather than 6400.0, dates without 00:00."""
    out = []
    for v in values:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        elif isinstance(v, pd.Timestamp) and v == v.normalize():
            v = v.date()
        out.append(str(v))
    return tuple(out)
