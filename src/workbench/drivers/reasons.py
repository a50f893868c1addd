"""Why deals are lost (or won): Pareto tables of the recorded reasons.

A reason is read on every deal closed with the matching outcome (``loss_reason`` on
lost deals, ``win_reason`` on won ones); a missing reason counts as ``(missing)``,
so the shares add up to the deals, not to the deals that happen to have a reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .. import tables
from ..dataset.model import Dataset
from ..exceptions import WorkbenchError, fixes
from ..results import Result

#: ``by=STAGE`` splits by the stage a deal was lost (or won) in: its last open stage.
STAGE = "stage"
MISSING = "(missing)"
NO_HISTORY = "(no stage history)"


def last_open_stage(dataset: Dataset) -> pd.Series:
    """Per deal id, the last open stage in its history (where a lost deal was lost)."""
    history = dataset.stage_history
    rank = {s: i for i, s in enumerate(dataset.stage_order)}
    open_entries = (history[history["stage"].isin(dataset.stages)]
                    .assign(_rank=lambda h: h["stage"].map(rank))
                    .sort_values(["deal_id", "entered_at", "_rank"], kind="stable"))
    return open_entries.groupby("deal_id", sort=False)["stage"].last()


@dataclass(frozen=True)
class ReasonPareto(Result):
    """Reasons ranked by count, with shares and cumulative shares, overall or per group.

    ``table`` columns: the ``by`` column when given, then ``reason``, ``count``,
    ``share``, ``cumulative_share`` and ``deals`` (the group's size).
    """

    table: pd.DataFrame
    column: str
    outcome: str
    by: str | None
    notes: list[str] = field(default_factory=list)

    def findings(self):
        """The most common reason and its share of the deals with this outcome."""
        from ..findings import Findings, percent

        if not len(self.table):
            return Findings([f"No {self.outcome} deal gives a {self.column.replace('_', ' ')}."])
        top = self.table.iloc[0]
        return Findings([f"The most common {self.column.replace('_', ' ')} is “{top['reason']}”: "
                         f"{percent(top['share'])} of the {self.outcome} deals ({int(top['count']):,} of "
                         f"{int(top['deals']):,})."])

    def plot(self, *, ax=None):
        """Share of the deals per reason, most common first, with the cumulative share; returns the axes."""
        from ..results import interval_bars

        labels = self.table["reason"] if self.by is None else [
            f"{g}: {r}" for g, r in zip(self.table[self.by], self.table["reason"])]
        ax = interval_bars(labels, self.table["share"], xlabel=f"Share of {self.outcome} deals", ax=ax)
        if self.by is None:
            ax.plot(self.table["cumulative_share"], range(len(self.table)), "o-", color="0.3",
                    label="cumulative share")
            ax.legend(loc="lower right")
        return ax

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return f"<ul>{notes}</ul>" + tables.to_html(self.table, index=False)


def reason_pareto(dataset: Dataset, column: str = "loss_reason", *, by: str | None = None,
                  outcome: str | None = None) -> ReasonPareto:
    """Pareto table of a reason column: count, share and cumulative share per reason.

    Parameters
    ----------
    column : str
        The deal column holding the reason.
    by : str, optional
        ``"stage"`` for the stage the deal was closed from (its last open stage in
        ``stage_history``; ``(no stage history)`` when it has none), or a deal column
        to split by segment (missing values form a ``(missing)`` segment).
    outcome : {"lost", "won"}, optional
        Which closed deals to read; default ``won`` when the column name mentions
        "win" or "won", else ``lost``.

    Examples
    --------
    >>> reason_pareto(ds, "loss_reason", by="stage").table  # doctest: +SKIP
    """
    deals = dataset.deals
    if column not in deals:
        raise WorkbenchError(f"Deals have no column `{column}`. "
                             + fixes(f"use one of {dataset.attributes}", "map the reason column in dataset.yaml"))
    if outcome is None:
        outcome = "won" if any(w in column.lower() for w in ("win", "won")) else "lost"
    if outcome not in ("won", "lost"):
        raise WorkbenchError(f"`outcome` must be `won` or `lost`, got {outcome!r}.")
    closed = deals[deals["outcome"] == outcome]
    if closed.empty:
        raise WorkbenchError(f"No deal is {outcome}, so `{column}` has nothing to rank. "
                             + fixes("check the outcome mapping in dataset.yaml"))
    reasons = closed[column].astype(object).where(closed[column].notna(), MISSING)
    frame = pd.DataFrame({"reason": reasons.astype(str)})
    order = None
    if by == STAGE:
        frame[STAGE] = closed["deal_id"].map(last_open_stage(dataset)).fillna(NO_HISTORY).to_numpy()
        order = [s for s in dataset.stages + (NO_HISTORY,) if s in set(frame[STAGE])]
    elif by is not None:
        if by not in closed:
            raise WorkbenchError(f"Deals have no column `{by}`. "
                                 + fixes(f"use `stage` or one of {dataset.attributes}"))
        frame[by] = closed[by].astype(object).where(closed[by].notna(), MISSING).astype(str).to_numpy()
        order = sorted(set(frame[by]), key=lambda v: (v == MISSING, v))
    groups = [(None, frame)] if by is None else [(g, frame[frame[by] == g]) for g in order]
    parts = []
    for label, part in groups:
        counts = part["reason"].value_counts()
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        table = pd.DataFrame({"reason": counts.index, "count": counts.to_numpy()})
        table["share"] = table["count"] / len(part)
        table["cumulative_share"] = table["share"].cumsum()
        table["deals"] = len(part)
        if by is not None:
            table.insert(0, by, label)
        parts.append(table)
    missing = int((reasons == MISSING).sum())
    notes = [f"{len(closed)} {outcome} deals; `{column}` is empty on {missing} of them (counted as `{MISSING}`)."]
    if by == STAGE and (frame[STAGE] == NO_HISTORY).any():
        notes.append(f"{int((frame[STAGE] == NO_HISTORY).sum())} {outcome} deals have no open stage in their "
                     f"history (`{NO_HISTORY}`).")
    return ReasonPareto(table=pd.concat(parts, ignore_index=True), column=column, outcome=outcome, by=by,
                        notes=notes)
