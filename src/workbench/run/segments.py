"""Segments of a run: which deals each report covers, and the folder it is written to.

`plan_segments` turns a run's `split` into `Segment`s: one per observed combination
of the ``by`` columns (in sorted order), or one per named filter, plus the overall
segment (``key == ""``, every deal) when asked. Deals with no value in a ``by``
column belong to no split segment; they are counted in the notes, never dropped
silently.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import WorkbenchError, fixes
from ..markup import slugify
from .params import Split

if TYPE_CHECKING:
    from ..dataset.model import Dataset

#: The notebook parameter the runner sets to the segment's `Segment.scope` (when a notebook declares it).
SCOPE_PARAMETER = "segment_scope"

OVERALL_SLUG = "overall"
OVERALL_LABEL = "All deals"


@dataclass(frozen=True)
class Segment:
    """One report's deals.

    ``key`` identifies the segment in `run.json` and the index (``""`` for all deals,
    ``"persona=Economic buyer"`` for a split, the filter's name for a named filter);
    ``filter`` is what `Dataset.filter` takes (``{}`` for all deals); ``slug`` names
    the folder ``segments/<slug>/``.
    """

    key: str
    label: str
    slug: str
    filter: dict = field(default_factory=dict)

    @property
    def scope(self) -> str:
        """How a report names its deals: ``""`` for all deals, the values for a split (``Procurement``,
        ``Procurement, EMEA``), the name of a named filter."""
        if not self.filter:
            return ""
        if self.key in (self.label,):  # a named filter
            return self.label
        return ", ".join("/".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
                         for v in self.filter.values())


def _plain(value):
    """numpy and pandas scalars as the Python values JSON and YAML know."""
    import numpy as np  # here: a run that only reads segments (`Segment`) imports no numpy nor pandas
    import pandas as pd

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def plan_segments(dataset: Dataset, split: Split | None, *, overall: bool = True) -> tuple[list[Segment], list[str]]:
    """The segments of a run, in report order, and notes about deals in no segment.

    Raises
    ------
    WorkbenchError
        A ``by`` or filter column is not a deal column.
    """
    segments = [Segment("", OVERALL_LABEL, OVERALL_SLUG, {})] if overall or split is None else []
    notes = []
    if split is None:
        return segments, notes
    columns = split.by or sorted({c for f in split.filters.values() for c in f})
    missing = [c for c in columns if c not in dataset.deals.columns]
    if missing:
        raise WorkbenchError(f"`split` names {missing}, which deals lack. "
                             + fixes(f"use deal columns: {dataset.attributes}",
                                     "map the column onto deals in dataset.yaml"))
    deals = dataset.deals
    if split.by:
        unassigned = int(deals[split.by].isna().any(axis=1).sum())
        if unassigned:
            where = "only in the overall report" if overall else "in no report (set `overall: true` to include them)"
            notes.append(f"{unassigned} deals have no value in {split.by}; they are {where}.")
        combos = deals[split.by].dropna().drop_duplicates()
        combos = sorted((tuple(_plain(v) for v in row) for row in combos.itertuples(index=False)),
                        key=lambda row: [(isinstance(v, str), v) for v in row])
        for values in combos:
            seg = dict(zip(split.by, values))
            key = ", ".join(f"{c}={v}" for c, v in seg.items())
            label = ", ".join(f"{c}: {v}" for c, v in seg.items())
            slug = "__".join(f"{slugify(c)}-{slugify(v)}" for c, v in seg.items())
            segments.append(Segment(key, label, slug, seg))
    else:
        for name, filt in split.filters.items():
            for column, wanted in filt.items():
                values = wanted if isinstance(wanted, list) else [wanted]
                absent = [v for v in values if not deals[column].isin([v]).any()]
                if absent:
                    notes.append(f"filter {name!r}: no deal has `{column}` in {absent}; check the spelling.")
            segments.append(Segment(name, name, slugify(name), dict(filt)))
    return _unique_slugs(segments), notes


def _unique_slugs(segments: list[Segment]) -> list[Segment]:
    """Slugs that collide (``A/B`` and ``A-B``, or a filter named "overall") get a short hash of the key."""
    counts = Counter(s.slug for s in segments)
    out = []
    for s in segments:
        if counts[s.slug] > 1 and s.key != "":
            digest = hashlib.sha256(s.key.encode()).hexdigest()[:6]
            s = Segment(s.key, s.label, f"{s.slug}-{digest}", s.filter)
        out.append(s)
    return out
