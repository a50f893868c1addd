"""Sections every notebook opens with: the data (`overview`) and the settings used (`settings_used`)."""
from __future__ import annotations

import pandas as pd

from .. import findings
from ..dataset.model import Dataset
from ..exceptions import SpecError, fixes
from .base import Section, section

#: Figure sizes (inches) the sections draw at.
WIDE, TALL, SQUARE = (9.0, 5.0), (9.0, 6.5), (7.0, 5.5)


def open_dataset(dataset_path: str = "") -> Dataset:
    """The dataset a notebook analyses: ``dataset_path`` (a dataset.yaml), or the built-in sample when empty."""
    from ..dataset.loader import load_dataset
    from ..dataset.sample import generate

    if dataset_path:
        return load_dataset(dataset_path)
    return generate(seed="workbench").dataset()


def new_axes(size=WIDE):
    """A fresh figure and axes for one section figure (closed once the section has it as a PNG)."""
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1]


@section("The data")
def overview(out: Section, settings):
    """What was loaded, and every row the loader excluded, counted with its reason."""
    from ..dataset.model import excluded_rows

    dataset = settings.dataset
    out.sentences(findings.data_findings(dataset), key=1)
    out.table(dataset.summary().rename(columns={"table": "Table", "rows": "Rows kept", "excluded": "Rows excluded"}),
              caption="The tables loaded:", detail=True)
    exclusions = dataset.exclusions
    if len(exclusions):
        out.table(exclusions.rename(columns=str.capitalize), caption="Rows excluded while loading, by reason:")
    if dataset.report.scope:
        out.text(f"Excluded rows are counted over {dataset.report.scope}.")
    out.record(counts={k: dataset.counts()[k] for k in ("deals", "won", "lost", "open")},
               as_of=None if pd.isna(dataset.as_of) else str(dataset.as_of.date()),
               excluded_rows=excluded_rows(dataset))
    return dataset


@section("Settings used")
def settings_used(out: Section, settings):
    """Each setting's value, and whether it was given or chosen from the data."""
    out.sentences(settings.explained)
    out.record(**settings.as_record())
    return settings


def require_columns(dataset: Dataset, columns, parameter: str) -> None:
    """Raise a plain error when a parameter names deal columns the data lack."""
    missing = [c for c in columns if c not in dataset.deals]
    if missing:
        raise SpecError(f"`{parameter}` names {', '.join(f'`{c}`' for c in missing)}, which the deals do not "
                             f"have. " + fixes(f"use some of {dataset.attributes + ['amount']}",
                                               f"leave `{parameter}` empty to choose from the data"))
