"""Exceptions and warnings of the workbench.

Every error message says what failed, where (file, row, column), and what to do,
as numbered fixes.
"""
from __future__ import annotations

#: How many examples (rows, values, problems) a message shows at most.
MAX_SHOWN = 5


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class SpecError(WorkbenchError):
    """A `dataset.yaml` (or a run's parameter file) is malformed."""


class SourceError(WorkbenchError):
    """A source file, table or database cannot be read."""


class CredentialsError(SourceError):
    """A credential was put where it would leak, or its variable is not set."""


class DataValidationError(WorkbenchError):
    """The data has errors that stop the load; `report` lists every problem found."""

    def __init__(self, report):
        self.report = report
        super().__init__(report.to_text())


class WorkbenchWarning(UserWarning):
    """Base class of the workbench's warnings."""


class DataQualityWarning(WorkbenchWarning):
    """Rows were excluded from the dataset; the dataset keeps the count and the reason."""


class SmallSampleWarning(WorkbenchWarning):
    """Too few observations for an estimate to be trusted."""


class SeparationWarning(WorkbenchWarning):
    """A level has only wins or only losses (or no events): its maximum-likelihood ratio is infinite,
    so the model is refitted with Firth's penalized likelihood."""


def fixes(*steps: str) -> str:
    """Format numbered fixes the way every message ends: `Try 1) ... 2) ...`."""
    if not steps:
        return ""
    return "Try " + " ".join(f"{i}) {s}" for i, s in enumerate(steps, 1))
