"""Conversion per stage, censoring-aware.

Headline definition (also `stage_conversion` in `summary.json`): for ``A->B``
(B the next declared stage, or Won after the last open stage), of the deals that
reached A, the share that eventually reach B or any later stage, a win counting
as beyond every stage; deals that never entered A are not in its denominator.
"Eventually" means after the deal's first entry into A.

It is estimated as a competing-risks problem from the first entry into A:
*advanced* (first entry into B-or-later, or a win), *dropped* (lost without
advancing), or still open (censored at ``as_of``). The eventual conversion is
the Aalen-Johansen cumulative incidence of advancing at the end of follow-up. A
plain count ratio counts deals still sitting in A as failures and is biased low.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cycle import OVERALL
from .exceptions import SmallSampleWarning, WorkbenchError, fixes
from .model import Dataset
from .survival import competing_risks

DAY = pd.Timedelta(days=1)
CAUSES = ("advanced", "dropped")


def transitions(dataset: Dataset) -> list[str]:
    """The headline transitions: consecutive declared stages, then ``<last stage>->Won``."""
    after = list(dataset.stages[1:]) + ["Won"]
    return [f"{a}->{b}" for a, b in zip(dataset.stages, after)]


def progress_rows(dataset: Dataset) -> pd.DataFrame:
    """Stage history with a ``rank`` per row (open stages 0..K-1, won K, lost -1),
    sorted by deal and time, plus a Won/Lost row at ``closed_at`` for closed deals
    whose history lacks one (counted in ``attrs["added_closing_rows"]``)."""
    k = len(dataset.stages)
    rank = {s: i for i, s in enumerate(dataset.stages)}
    rank.update({s: k for s in dataset.won_stages})
    rank.update({s: -1 for s in dataset.lost_stages})
    history = dataset.stage_history[["deal_id", "stage", "entered_at"]]
    history = history.assign(rank=history["stage"].map(rank).astype(np.int64))
    deals = dataset.deals
    closed = deals[deals["outcome"] != "open"]
    has_terminal = history.loc[history["rank"].isin([k, -1]), "deal_id"].unique()
    missing = closed[~closed["deal_id"].isin(has_terminal)]
    added = pd.DataFrame({"deal_id": missing["deal_id"],
                          "stage": np.where(missing["outcome"] == "won", "Won", "Lost"),
                          "entered_at": missing["closed_at"],
                          "rank": np.where(missing["outcome"] == "won", k, -1)})
    rows = pd.concat([history, added], ignore_index=True) if len(added) else history.reset_index(drop=True)
    # Within a timestamp, order by rank so "two stages at the same time" reads as forward progress.
    rows = rows.sort_values(["deal_id", "entered_at", "rank"], kind="stable", ignore_index=True)
    rows.attrs["added_closing_rows"] = len(added)
    return rows


def stage_outcomes(dataset: Dataset) -> pd.DataFrame:
    """One row per (deal, open stage entered): ``entered_at``, ``days`` from the first
    entry to advancing / dropping / the cut-off, and ``event`` (advanced, dropped, open).

    Vectorized: one reverse cumulative minimum per stage over the sorted history.
    """
    rows = progress_rows(dataset)
    deals = dataset.deals.set_index("deal_id")
    deal_codes, deal_index = pd.factorize(rows["deal_id"], sort=False)
    times = rows["entered_at"].to_numpy("datetime64[ns]").astype(np.int64)
    rank = rows["rank"].to_numpy()
    out = []
    never = np.iinfo(np.int64).max
    as_of = np.int64(pd.Timestamp(dataset.as_of).value)
    closed_at = deals["closed_at"].reindex(deal_index).to_numpy("datetime64[ns]").astype(np.int64)
    outcome = deals["outcome"].reindex(deal_index).to_numpy()
    for a, stage in enumerate(dataset.stages):
        at_a = np.flatnonzero(rank == a)
        if not len(at_a):
            continue
        firsts = at_a[np.r_[True, deal_codes[at_a][1:] != deal_codes[at_a][:-1]]]
        # Earliest time at or after each row of a row with rank > a, within the deal: a reverse
        # cumulative minimum that restarts at every deal boundary.
        candidate = np.where(rank > a, times, never)
        next_adv = _reverse_group_min(candidate, deal_codes)
        t0 = times[firsts]
        t_adv = next_adv[firsts]
        d = deal_codes[firsts]
        advanced = t_adv != never
        dropped = ~advanced & (outcome[d] == "lost")
        end = np.where(advanced, t_adv, np.where(dropped, closed_at[d], as_of))
        event = np.where(advanced, "advanced", np.where(dropped, "dropped", "open"))
        out.append(pd.DataFrame({"deal_id": deal_index[d], "stage": stage, "entered_at": pd.to_datetime(t0),
                                 "days": np.maximum(end - t0, 0) / DAY.value, "event": event}))
    if not out:
        return pd.DataFrame(columns=["deal_id", "stage", "entered_at", "days", "event"])
    result = pd.concat(out, ignore_index=True)
    result.attrs["added_closing_rows"] = rows.attrs["added_closing_rows"]
    return result


def _reverse_group_min(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Suffix minimum of ``values`` within groups (rows sorted by group): one grouped
    cumulative minimum over the reversed rows."""
    series = pd.Series(values[::-1])
    return series.groupby(groups[::-1], sort=False).cummin().to_numpy()[::-1]


@dataclass(frozen=True)
class StageConversion:
    """Eventual conversion per transition, overall and per segment.

    ``table``: segment, transition, reached, advanced, dropped, open, conversion
    (eventual, censoring-aware), ci_low, ci_high, count_ratio (advanced / reached,
    the naive figure, for comparison).
    """

    table: pd.DataFrame
    by: str | None
    alpha: float

    def headline(self, segment: str = OVERALL) -> dict[str, float | None]:
        """``{"A->B": conversion}`` for one segment (None where no deal reached A)."""
        part = self.table[self.table["segment"] == segment]
        return {row.transition: (None if pd.isna(row.conversion) else float(row.conversion))
                for row in part.itertuples()}

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda v: f"{v:.3g}")


def stage_conversion(dataset: Dataset, by: str | None = None, *, alpha: float = 0.05,
                     min_deals: int = 30) -> StageConversion:
    """Eventual stage-to-stage conversion with Aalen-Johansen CIs (see the module docstring)."""
    if not dataset.stages:
        raise WorkbenchError("The dataset declares no stages. " + fixes("list `stages` in dataset.yaml"))
    outcomes = stage_outcomes(dataset)
    if by is not None:
        if by not in dataset.deals:
            raise WorkbenchError(f"Deals have no column `{by}`. " + fixes(f"use one of {dataset.attributes}"))
        outcomes = outcomes.merge(dataset.deals[["deal_id", by]], on="deal_id", how="left")
    groups = [(OVERALL, outcomes)]
    if by is not None:
        groups += [(str(level), part) for level, part in outcomes.groupby(by, sort=True)]
    rows = []
    for label, part in groups:
        for transition, stage in zip(transitions(dataset), dataset.stages):
            sub = part[part["stage"] == stage]
            counts = sub["event"].value_counts()
            row = {"segment": label, "transition": transition, "reached": len(sub),
                   "advanced": int(counts.get("advanced", 0)), "dropped": int(counts.get("dropped", 0)),
                   "open": int(counts.get("open", 0))}
            if len(sub) >= min_deals or (label == OVERALL and len(sub)):
                fit = competing_risks(sub["days"], sub["event"], CAUSES, alpha, censored="open")
                end = fit.table["time"].iloc[-1]
                low, high = fit.cif_ci("advanced", end)
                row.update(conversion=float(fit.cif("advanced", end)[0]), ci_low=float(low[0]),
                           ci_high=float(high[0]))
            else:
                if len(sub):
                    import warnings
                    warnings.warn(f"{label}, {transition}: {len(sub)} deals reached it (< {min_deals}); "
                                  "no estimate.", SmallSampleWarning, stacklevel=2)
                row.update(conversion=np.nan, ci_low=np.nan, ci_high=np.nan)
            row["count_ratio"] = row["advanced"] / row["reached"] if row["reached"] else np.nan
            rows.append(row)
    return StageConversion(table=pd.DataFrame(rows), by=by, alpha=alpha)
