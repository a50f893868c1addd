"""Ground truth of the sample data: statistics of full, never censored journeys.

`workbench.dataset.sample` simulates every journey to absorption (won or lost) before it
cuts the data at ``as_of``. `Truth` computes, from the uncut journeys, the numbers an
analysis of the cut data should recover. Definitions (days are whole days counted
from ``created_at``; every uncut deal closes):

- ``win_probability``: share of deals eventually won.
- ``cif_won(d)`` / ``cif_lost(d)``: share of deals won (lost) with
  ``closed_at - created_at <= d`` days.
- ``median_days_to_close``: median of ``closed_at - created_at`` over all deals.
- ``stage_conversion["A->B"]`` (B the next open stage, or Won after the last one):
  of the deals that ever entered A, the share that enter B, a later open stage or
  Won at some time after their first entry into A.
- ``median_days_in_stage[A]``: over the deals that ever entered A, the median of the
  days from the first entry into A to the next stage entry (any stage, Won and Lost
  included).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .. import tables
from ..exceptions import WorkbenchError, fixes

#: The horizons (days) of the tidy CIF table.
CIF_DAYS = (30, 60, 90, 180, 365)
#: The segment variables of the tidy tables.
BY = ("persona", "channel")


@dataclass(frozen=True)
class Journeys:
    """Full journeys as long arrays sorted by deal, then time.

    ``deal`` indexes the rows of ``attributes``; ``stage`` codes the open stages
    ``0 .. K-1``, Won ``K`` and Lost ``K + 1``; ``day`` counts days since creation.
    """

    attributes: pd.DataFrame
    deal: np.ndarray
    stage: np.ndarray
    day: np.ndarray


def _summarize(j: Journeys, k: int) -> dict[str, np.ndarray]:
    """Per-deal outcome, time to close and, per open stage, entered/converted/days."""
    n = len(j.attributes)
    deal, stage, day = j.deal, j.stage, j.day
    last = np.r_[deal[1:] != deal[:-1], True]
    # Suffix maximum of progress within each deal (Lost counts as no progress):
    # walking the rows backwards, offsetting each deal by a multiple of `width` keeps
    # a running maximum from leaking across deals.
    width = k + 3
    progress = np.where(stage == k + 1, -1, stage).astype(np.int64) + 1
    block = (n - 1 - deal[::-1]).astype(np.int64) * width
    ahead = (np.maximum.accumulate(block + progress[::-1]) - block - 1)[::-1]
    entered = np.zeros((n, k), bool)
    converted = np.zeros((n, k), bool)
    days_in = np.full((n, k), np.nan)
    for s in range(k):
        rows = np.flatnonzero(stage == s)
        rows = rows[np.r_[True, deal[rows][1:] != deal[rows][:-1]]]  # first entry per deal
        d = deal[rows]
        entered[d, s] = True
        # An open stage is never a deal's last row, so rows + 1 is the same deal.
        converted[d, s] = ahead[rows + 1] > s
        days_in[d, s] = day[rows + 1] - day[rows]
    return {
        "won": stage[last] == k,
        "days": day[last].astype(np.int64),
        "entered": entered,
        "converted": converted,
        "days_in": days_in,
    }


class Truth:
    """True statistics of a population of full (uncut) sample journeys.

    Attributes are computed on first use. ``segment(persona=...)`` gives the truth of
    a sub-population; ``outcomes``, ``cif``, ``conversions`` and ``stage_durations``
    give tidy tables overall and per persona and channel.

    Parameters
    ----------
    journeys : Journeys
        Full journeys and the per-deal attributes.
    stages : tuple of str
        The open stages in order.
    coefficients : DataFrame
        The true effects on the log-odds of advancing (see `workbench.dataset.sample`).
    """

    def __init__(self, journeys: Journeys | None, stages, coefficients: pd.DataFrame, _parts=None):
        self.stages = tuple(stages)
        self.coefficients = coefficients
        self._journeys = journeys
        if _parts is not None:
            self.__dict__["_parts"] = _parts

    @cached_property
    def _parts(self) -> dict:
        parts = _summarize(self._journeys, len(self.stages))
        parts["attributes"] = self._journeys.attributes
        return parts

    @property
    def n(self) -> int:
        """Number of simulated deals."""
        return len(self._parts["won"])

    @property
    def transitions(self) -> tuple[str, ...]:
        """Conversion labels: ``"Lead->Qualified"``, ..., ``"Negotiation->Won"``."""
        after = self.stages[1:] + ("Won",)
        return tuple(f"{a}->{b}" for a, b in zip(self.stages, after))

    @property
    def win_probability(self) -> float:
        """P(the deal is eventually won)."""
        return float(self._parts["won"].mean())

    @property
    def median_days_to_close(self) -> float:
        """Median days from creation to close (won or lost)."""
        return float(np.median(self._parts["days"]))

    @property
    def stage_conversion(self) -> pd.Series:
        """Share of deals entering each stage that later reach the next stage or beyond."""
        p = self._parts
        entered = p["entered"].sum(axis=0)
        converted = (p["converted"] & p["entered"]).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = converted / entered
        return pd.Series(rate, index=list(self.transitions), name="stage_conversion")

    @property
    def median_days_in_stage(self) -> pd.Series:
        """Median days of the first visit to each stage, over deals that entered it."""
        d = self._parts["days_in"]
        med = [np.median(col[~np.isnan(col)]) if (~np.isnan(col)).any() else np.nan for col in d.T]
        return pd.Series(med, index=list(self.stages), name="median_days_in_stage")

    def _cif(self, days, won: bool):
        p = self._parts
        times = np.sort(p["days"][p["won"] == won])
        hits = np.searchsorted(times, np.asarray(days, dtype=float), side="right")
        out = hits / max(self.n, 1)
        return float(out) if np.ndim(out) == 0 else out

    def cif_won(self, days):
        """P(won within ``days`` days of creation); ``days`` a number or an array."""
        return self._cif(days, True)

    def cif_lost(self, days):
        """P(lost within ``days`` days of creation); ``days`` a number or an array."""
        return self._cif(days, False)

    def grouped_conversion(self, groups, **levels) -> pd.Series:
        """True eventual conversion between groups of consecutive open stages (a journey grid's
        stages): of the deals that entered a group, the share that later reach the next group
        or beyond, a win counting as beyond every group. ``levels`` select deals as in `segment`.

        Raises
        ------
        WorkbenchError
            On a `segment` truth, which keeps no journeys: call it on the full truth with ``levels``.
        """
        j = self._journeys
        if j is None:
            raise WorkbenchError("This truth keeps no journeys. " + fixes("call `grouped_conversion` on the full "
                                                                            "truth, with the segment as keywords"))
        k = len(self.stages)
        code = np.full(k + 2, -1, np.int64)  # Lost: -1, no progress
        for g, names in enumerate(groups):
            code[[self.stages.index(n) for n in names]] = g
        code[k] = len(groups)
        keep = np.ones(len(j.attributes), bool)
        for column, level in levels.items():
            keep &= (j.attributes[column] == level).to_numpy()
        rows = keep[j.deal]
        deal, group = j.deal[rows], code[j.stage[rows]]
        n, width = len(j.attributes), len(groups) + 2
        block = (n - 1 - deal[::-1]).astype(np.int64) * width  # suffix maximum within each deal
        ahead = (np.maximum.accumulate(block + group[::-1] + 1) - block - 1)[::-1]
        labels = [g[0] if len(g) == 1 else "+".join(g) for g in groups]
        after = labels[1:] + ["Won"]
        out = {}
        for g in range(len(groups)):
            at = np.flatnonzero(group == g)
            first = at[np.r_[True, deal[at][1:] != deal[at][:-1]]] if len(at) else at
            out[f"{labels[g]}->{after[g]}"] = float((ahead[first + 1] > g).mean()) if len(first) else np.nan
        return pd.Series(out, name="grouped_conversion")

    def segment(self, **levels) -> "Truth":
        """The truth of the deals whose attributes equal ``levels``, e.g. ``persona="Procurement"``."""
        p = self._parts
        attrs = p["attributes"]
        mask = np.ones(len(attrs), bool)
        for column, level in levels.items():
            mask &= (attrs[column] == level).to_numpy()
        parts = {key: value[mask] for key, value in p.items() if key != "attributes"}
        parts["attributes"] = attrs[mask].reset_index(drop=True)
        return Truth(None, self.stages, self.coefficients, _parts=parts)

    def _groups(self, by):
        yield "all", "all", self
        attrs = self._parts["attributes"]
        for column in (by,) if isinstance(by, str) else by:
            col = attrs[column]
            levels = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else sorted(col.unique())
            for level in levels:
                yield column, level, self.segment(**{column: level})

    def outcomes(self, by=BY) -> pd.DataFrame:
        """Tidy table: ``by``, ``level``, ``n``, ``win_probability`` (+ ``se``), ``median_days_to_close``."""
        rows = []
        for column, level, t in self._groups(by):
            p = t.win_probability
            rows.append({"by": column, "level": level, "n": t.n, "win_probability": p,
                         "se": float(np.sqrt(p * (1 - p) / t.n)),
                         "median_days_to_close": t.median_days_to_close})
        return pd.DataFrame(rows)

    def cif(self, days=CIF_DAYS, by=BY) -> pd.DataFrame:
        """Tidy table: ``by``, ``level``, ``outcome`` (won/lost), ``days``, ``cif``."""
        days = np.atleast_1d(days)
        frames = []
        for column, level, t in self._groups(by):
            for outcome, values in (("won", t.cif_won(days)), ("lost", t.cif_lost(days))):
                frames.append(pd.DataFrame({"by": column, "level": level, "outcome": outcome,
                                            "days": days, "cif": values}))
        return pd.concat(frames, ignore_index=True)

    def conversions(self, by=BY) -> pd.DataFrame:
        """Tidy table: ``by``, ``level``, ``transition``, ``entered``, ``rate``."""
        frames = []
        for column, level, t in self._groups(by):
            frames.append(pd.DataFrame({"by": column, "level": level, "transition": t.transitions,
                                        "entered": t._parts["entered"].sum(axis=0),
                                        "rate": t.stage_conversion.to_numpy()}))
        return pd.concat(frames, ignore_index=True)

    def stage_durations(self, by=BY) -> pd.DataFrame:
        """Tidy table: ``by``, ``level``, ``stage``, ``entered``, ``median_days`` (first visit)."""
        frames = []
        for column, level, t in self._groups(by):
            frames.append(pd.DataFrame({"by": column, "level": level, "stage": t.stages,
                                        "entered": t._parts["entered"].sum(axis=0),
                                        "median_days": t.median_days_in_stage.to_numpy()}))
        return pd.concat(frames, ignore_index=True)

    def __repr__(self) -> str:
        return (f"<Truth of {self.n} full journeys: win probability {self.win_probability:.3f}, "
                f"median {self.median_days_to_close:g} days to close>")

    def _repr_html_(self) -> str:
        return f"<p>{repr(self)[1:-1]}</p>" + tables.to_html(self.outcomes(), index=False)
