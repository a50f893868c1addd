"""How tables read in notebooks and reports.

Numbers get three significant figures in plain notation (``0.229``, ``21.3``), values of a
thousand and more are whole numbers with thousands separators (``5,062,345``), counts get
separators too, and p-values read ``<0.001`` below a thousandth. A default 0, 1, 2... index
is left out. Only the display changes: the tables behind it keep every digit.

`to_html` is what the result classes' ``_repr_html_`` use; `show` wraps a plain DataFrame
in a notebook so that it displays the same way.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

__all__ = ["format_number", "format_p", "formatted", "to_html", "show", "Table"]

#: Columns holding p-values (``p_value``, ``p_adjusted``, ``logrank_p``...), not probabilities like ``p_win``.
P_VALUE_COLUMN = re.compile(r"(^|[_ ])(p|p_value|p_adjusted|pvalue)$", re.IGNORECASE)
#: Column names a client reads in place of the code's names.
READABLE = {"ci_low": "95% CI low", "ci_high": "95% CI high", "p": "p", "p_value": "p", "p_adjusted": "Corrected p",
            "n": "Deals", "df": "df"}


def format_number(value) -> str:
    """``0.229``, ``0.5``, ``21.3``, ``5,062,345``, ``2.3e-05``; empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if abs(value) < 0.001:
        return f"{value:.2g}"
    if abs(value) >= 999.5:
        return f"{value:,.0f}"
    value = float(f"{value:.3g}")  # three significant figures, in plain notation
    text = f"{value:.{max(0, 2 - math.floor(math.log10(abs(value))))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_share(value) -> str:
    """A share as a percentage with one decimal (``22.9%``); empty when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{100 * float(value):.1f}%"


def format_p(value) -> str:
    """A p-value: ``<0.001``, ``0.013``, ``0.42``; empty when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    value = float(value)
    if value < 0.001:
        return "<0.001"
    return f"{value:.3f}" if value < 0.01 else f"{value:.2g}" if value < 0.1 else f"{value:.2f}"


def readable_name(column):
    """A code name as a client reads it: ``share_won_low`` -> ``Share won, 95% CI low``, ``p_adjusted`` ->
    ``Corrected p``; a name already written for people (``Win rate``) stays as it is."""
    if not isinstance(column, str) or not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", column):
        return column
    if column in READABLE:
        return READABLE[column]
    for suffix in ("_low", "_high"):
        if column.endswith(suffix):
            return f"{readable_name(column.removesuffix(suffix))}, 95% CI {suffix[1:]}"
    return column.replace("_", " ").capitalize()


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with readable column names (`readable_name`) and yes/no for true/false."""
    out = frame.rename(columns=readable_name)
    out.columns.name = None
    out.index.names = [readable_name(name) for name in out.index.names]
    for i in range(out.shape[1]):
        values = out.iloc[:, i]
        if pd.api.types.is_bool_dtype(values) or (values.dtype == object and len(values) and values.map(
                lambda v: isinstance(v, (bool, np.bool_))).all()):
            out.isetitem(i, out.iloc[:, i].map({True: "yes", False: "no"}).astype(object))
    return out


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every numeric cell as display text (object columns are left as they are)."""
    out = frame.copy()
    for i, column in enumerate(frame.columns):
        values = frame.iloc[:, i]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            continue
        fmt = format_p if P_VALUE_COLUMN.search(str(column)) else format_number
        out.isetitem(i, values.map(lambda v, fmt=fmt: fmt(None if pd.isna(v) else v)).astype(object))
    return out


def to_html(frame: pd.DataFrame, *, index: bool | None = None) -> str:
    """The frame as an HTML table, formatted; the index shown unless it is the default 0, 1, 2..."""
    if index is None:
        index = _meaningful_index(frame)
    return formatted(frame).to_html(index=index, na_rep="", classes="wb-table")


def _meaningful_index(frame: pd.DataFrame) -> bool:
    """False for the default unnamed 0, 1, 2... index."""
    return not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None)


class Table:
    """A DataFrame that displays formatted (`to_html`); the data stays in ``frame``."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def _repr_html_(self) -> str:
        return to_html(self.frame)

    def __repr__(self) -> str:
        return formatted(self.frame).to_string(index=_meaningful_index(self.frame), na_rep="")


def show(frame: pd.DataFrame) -> Table:
    """Display ``frame`` formatted in a notebook: ``show(cycles.summary())``."""
    return Table(frame)
