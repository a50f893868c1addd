"""Moves between stages and the transition matrix.

States are those of `workbench.dataset.history`: the open stages ``0..K-1``, then ``Won`` (``K``)
and ``Lost`` (``K + 1``). A *move* is a pair of consecutive rows of a deal in the cleaned
history; it is classified by where it goes (`KINDS`):

========  ===========================================================
advance   to the next open stage
skip      forward past at least one open stage (to an open stage)
back      to an earlier open stage (a regression)
re-enter  to the stage the deal is already in (a repeated entry)
win       from an open stage to Won (from any open stage)
lose      from an open stage to Lost
reopen    out of Won or Lost (to any other state)
========  ===========================================================

Counts of moves are counts of what happened by ``as_of``; a deal still in a stage at
``as_of`` has made no move out of it yet (``still_in`` in `TransitionMatrix.table`).

`moves` lists every move; `transition_matrix` counts them (with row shares), overall and
per segment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import tables
from ..dataset.groups import OVERALL, segment_codes, segment_groups
from ..dataset.history import DAY_NS, KINDS, history, move_rows, skipped_stages
from ..dataset.model import Dataset
from ..results import Result, axes


def kind_table(k: int) -> np.ndarray:
    """``kind_table(k)[from, to]``: index into `KINDS` of a move between two states."""
    s = k + 2
    table = np.zeros((s, s), np.int8)
    for a in range(s):
        for b in range(s):
            if a >= k:
                kind = "re-enter" if a == b else "reopen"
            elif b == k:
                kind = "win"
            elif b == k + 1:
                kind = "lose"
            elif b == a:
                kind = "re-enter"
            elif b == a + 1:
                kind = "advance"
            elif b > a:
                kind = "skip"
            else:
                kind = "back"
            table[a, b] = KINDS.index(kind)
    return table


def moves(dataset: Dataset) -> pd.DataFrame:
    """One row per move between consecutive history rows of a deal.

    Returns
    -------
    DataFrame
        ``deal_id``, ``from``, ``to`` (state names, categorical), ``kind`` (see `KINDS`),
        ``skipped`` (open stages jumped over, for forward moves and wins), ``at`` (time of
        the move: the entry into ``to``) and ``days`` in ``from`` before the move.
    """
    h = history(dataset)
    i = move_rows(h)
    a, b = h.state[i], h.state[i + 1]
    kinds = kind_table(h.k)[a, b]
    names = pd.Categorical.from_codes
    return pd.DataFrame({
        "deal_id": dataset.deals["deal_id"].to_numpy()[h.deal[i]],
        "from": names(a, h.names), "to": names(b, h.names),
        "kind": names(kinds, KINDS),
        "skipped": skipped_stages(a, b, h.k),
        "at": h.time[i + 1].view("datetime64[ns]"),
        "days": (h.time[i + 1] - h.time[i]) / DAY_NS,
    })


@dataclass(frozen=True)
class TransitionMatrix(Result):
    """Moves between states, overall and per segment.

    ``table``: ``segment``, ``from``, ``to``, ``kind``, ``moves``, ``share`` (of the moves out
    of ``from`` in that segment), ``still_in`` (deals of the segment in ``from`` at ``as_of``,
    repeated on each row of ``from``: censored, they have made no move out yet).
    """

    table: pd.DataFrame
    by: str | None

    def counts(self, segment: str = OVERALL) -> pd.DataFrame:
        """Wide: moves from (rows) to (columns) for one segment."""
        return self._wide("moves", segment)

    def shares(self, segment: str = OVERALL) -> pd.DataFrame:
        """Wide: row shares of the moves, from (rows) to (columns), for one segment."""
        return self._wide("share", segment)

    def kinds(self, segment: str = OVERALL) -> pd.DataFrame:
        """Moves and their share of all moves per kind (advance, skip, back, ...)."""
        part = self.table[self.table["segment"] == segment]
        out = part.groupby("kind", observed=False)["moves"].sum().reindex(KINDS).fillna(0).astype(np.int64)
        return pd.DataFrame({"kind": out.index, "moves": out.to_numpy(),
                             "share": out.to_numpy() / max(out.sum(), 1)})

    def _wide(self, value: str, segment: str) -> pd.DataFrame:
        part = self.table[self.table["segment"] == segment]
        names = list(part["from"].cat.categories)
        wide = part.pivot(index="from", columns="to", values=value)
        return wide.reindex(index=names, columns=names)

    def plot(self, *, ax=None, **kwargs):
        """The transition heatmap (`workbench.funnel.plots.transition_heatmap`); returns the axes."""
        from .plots import transition_heatmap

        return transition_heatmap(self, ax=axes(ax), **kwargs)

    def findings(self, segment: str = OVERALL):
        """The share of moves of each kind (advance, skip, back...)."""
        from ..findings import Findings, percent

        kinds = self.kinds(segment)
        kinds = kinds[kinds["moves"] > 0]
        if not len(kinds):
            return Findings(["No deal has moved between stages yet."])
        parts = ", ".join(f"{percent(row.share)} {row.kind}" for row in kinds.itertuples())
        return Findings([f"Of {int(kinds['moves'].sum()):,} moves between states: {parts}."])

    def _repr_html_(self) -> str:
        return tables.to_html(self.counts())


def transition_matrix(dataset: Dataset, by: str | None = None, *, min_deals: int = 30) -> TransitionMatrix:
    """Counts and row shares of every move between states (vectorized: one `bincount`).

    Parameters
    ----------
    by : str, optional
        A deal column; levels with fewer than ``min_deals`` deals are left out (they
        still count in ``All deals``).
    """
    h = history(dataset)
    s = h.k + 2
    codes, labels = segment_codes(dataset, by)
    i = move_rows(h)
    pair = h.state[i].astype(np.int64) * s + h.state[i + 1]
    open_last = h.last & (dataset.deals["outcome"].to_numpy()[h.deal] == "open")
    sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
    seg_of_move = codes[h.deal[i]]
    seg_of_still = codes[h.deal[open_last]]
    still_states = h.state[open_last]
    kinds = kind_table(h.k).ravel()
    frames = []
    names = list(h.names)
    for label, j in segment_groups(labels, sizes, min_deals):
        sel = slice(None) if j is None else seg_of_move == j
        counts = np.bincount(pair[sel], minlength=s * s).reshape(s, s)
        still = np.bincount(still_states[slice(None) if j is None else seg_of_still == j], minlength=s)
        out = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(out > 0, counts / out, np.nan)
        frames.append(pd.DataFrame({
            "segment": label,
            "from": pd.Categorical.from_codes(np.repeat(np.arange(s), s), names),
            "to": pd.Categorical.from_codes(np.tile(np.arange(s), s), names),
            "kind": pd.Categorical.from_codes(kinds, KINDS),
            "moves": counts.ravel(), "share": share.ravel(), "still_in": np.repeat(still, s)}))
    return TransitionMatrix(table=pd.concat(frames, ignore_index=True), by=by)
