"""The one protocol every analysis result follows.

An analysis is a function over the dataset that returns a small result object (the
statsmodels Model/Results split). Every public result has

``table``
    A tidy DataFrame: the numbers to test, display and export.
``notes``
    A list of plain-language caveats (str); empty when there are none.
``findings()``
    A `workbench.findings.Findings`: plain-language sentences written from ``table``
    (no statistics of their own).
``plot(*, ax=None)``
    Draws in the house theme (`workbench.plots.theme`) on ``ax``, or on a new axes when
    None, and returns the axes. Never ``plt.show()``.
``_repr_html_()``
    How it displays in a notebook: findings, the table, the notes.

`Result` gives the defaults (no notes, no findings, the default display); a result class
inherits from it and supplies ``table``, ``findings`` and ``plot``. `tests/test_results.py`
checks every result class against this protocol.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pandas as pd

from . import tables
from .findings import Findings

if TYPE_CHECKING:  # matplotlib and seaborn load when a figure is drawn, not when an analysis is imported
    from matplotlib.axes import Axes

__all__ = ["Result", "axes"]


class _NoNotes:
    """``notes`` of a result without caveats: a fresh empty list (an instance's own ``notes`` wins).

    On the class it is missing, so that a dataclass field ``notes`` without a default stays required.
    """

    def __get__(self, obj, owner=None) -> list[str]:
        if obj is None:
            raise AttributeError("notes")
        return []


def axes(ax: Axes | None = None) -> Axes:
    """``ax`` itself, or a new axes on a new figure in the house theme when None."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    from .plots import theme

    with theme():
        return plt.figure().add_subplot()


class Result:
    """Base of the analysis results: defaults for ``notes``, ``findings()`` and ``_repr_html_``.

    Subclasses provide ``table`` (a field or a property) and ``plot(*, ax=None)``.
    """

    notes = _NoNotes()
    table: pd.DataFrame

    def findings(self) -> Findings:
        """Plain-language sentences about this result (none by default)."""
        return Findings()

    def plot(self, *, ax: Axes | None = None) -> Axes:
        """Draw this result on ``ax`` (a new axes when None) and return the axes."""
        raise NotImplementedError(f"{type(self).__name__} has no figure.")

    def _repr_html_(self) -> str:
        said = "".join(f"<li>{html.escape(s)}</li>" for s in self.findings())
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        return (f"<ul>{said}</ul>" if said else "") + tables.to_html(self.table, index=False) + notes


def interval_bars(labels, value, low=None, high=None, *, xlabel: str, share: bool = True,
                  ax: Axes | None = None) -> Axes:
    """Horizontal bars of ``value`` per label (top to bottom in the given order), with the interval
    ``low``-``high`` as error bars where given; a percentage axis when ``share``. Returns the axes."""
    import numpy as np
    from matplotlib.ticker import PercentFormatter

    from .plots import error_lengths, theme

    labels = [str(label) for label in labels]
    value = np.asarray(value, dtype=float)
    with theme():
        ax = axes(ax)
        xerr = None
        if low is not None and high is not None:
            xerr = error_lengths(value, np.asarray(low, dtype=float), np.asarray(high, dtype=float))
        y = np.arange(len(labels))
        ax.barh(y, np.nan_to_num(value), xerr=xerr, capsize=3)
        ax.set_yticks(y, labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel(xlabel)
        if share:
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(axis="y", visible=False)
    return ax
