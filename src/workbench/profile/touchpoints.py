"""Touchpoints: how many, of which channel and kind, in which stage, for won and lost deals.

Every touch with a ``deal_id`` is assigned to the stage its deal was in when it happened:
the latest stage entry on or before ``occurred_at`` (a touch on the day of an entry belongs
to the stage entered). Touches before the deal's first stage entry are in
``(before first stage)``. Touches without a deal (account-level) and touches after their
deal closed are left out and counted, never dropped silently.

Won against lost compares closed deals only; open deals are left out of those tables and
counted. The stage-advance lift uses every deal, open ones too: it is about what precedes
a move, not about the outcome.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from .. import tables
from ..dataset.groups import wilson
from ..dataset.model import Dataset
from ..exceptions import WorkbenchError, fixes
from ..results import Result, axes

DAY = pd.Timedelta(days=1)
ALL = "(all)"
BEFORE = "(before first stage)"
UNKNOWN = "(unknown)"
DIMENSIONS = ("channel", "kind")
CLOSED = ("won", "lost")


def deal_touches(dataset: Dataset) -> tuple[pd.DataFrame, dict[str, int]]:
    """Touches of deals with their deal's dates and outcome and the ``stage`` at the time.

    Returns
    -------
    touches : DataFrame
        ``deal_id``, ``occurred_at``, ``channel``, ``kind`` (missing values are
        ``(unknown)``), ``outcome``, ``created_at``, ``closed_at``, ``stage``; sorted by deal
        and time (ties keep the source order).
    excluded : dict
        ``without_deal`` (touches with no ``deal_id``) and ``after_close`` (touches dated after
        their deal's ``closed_at``).

    Raises
    ------
    WorkbenchError
        When the dataset has no touchpoints table.
    """
    raw = dataset.touchpoints
    if raw is None or "occurred_at" not in raw:
        raise WorkbenchError("The dataset has no `touchpoints` table. "
                             + fixes("map a touchpoints source in dataset.yaml",
                                     "use `workbench.dataset.sample.generate()`, which has touchpoints"))
    cols = {c: raw[c] if c in raw else pd.Series(None, index=raw.index, dtype=object)
            for c in ("deal_id", "channel", "kind")}
    t = pd.DataFrame({"deal_id": cols["deal_id"], "occurred_at": raw["occurred_at"],
                      "channel": cols["channel"].astype(object).where(cols["channel"].notna(), UNKNOWN),
                      "kind": cols["kind"].astype(object).where(cols["kind"].notna(), UNKNOWN)})
    without_deal = int(t["deal_id"].isna().sum())
    t = t[t["deal_id"].notna()]
    deals = dataset.deals[["deal_id", "outcome", "created_at", "closed_at"]]
    t = t.merge(deals, on="deal_id", how="inner", validate="many_to_one")
    after = t["closed_at"].notna() & (t["occurred_at"] > t["closed_at"])
    t = t[~after]
    t = t.assign(stage=assign_stages(t, dataset.stage_history))
    t = t.sort_values(["deal_id", "occurred_at"], kind="stable", ignore_index=True)
    return t, {"without_deal": without_deal, "after_close": int(after.sum())}


def assign_stages(touches: pd.DataFrame, stage_history: pd.DataFrame) -> pd.Series:
    """The stage each touch's deal was in at ``occurred_at`` (index-aligned with ``touches``).

    A backward ``merge_asof`` by deal on the stage history: the latest entry on or before the
    touch wins; ``(before first stage)`` where the deal had no entry yet. Among entries on the
    same timestamp the last row of the history wins.
    """
    # merge_asof needs one datetime resolution on both sides; sources may differ (s, us, ns).
    left = touches[["deal_id", "occurred_at"]].astype({"occurred_at": "datetime64[ns]"})
    left = left.assign(_row=np.arange(len(touches)))
    left = left.sort_values("occurred_at", kind="stable")
    right = stage_history[["deal_id", "entered_at", "stage"]].astype({"entered_at": "datetime64[ns]"})
    right = right.sort_values("entered_at", kind="stable")
    right = right.astype({"deal_id": left["deal_id"].dtype}) if len(right) else right
    merged = pd.merge_asof(left, right, left_on="occurred_at", right_on="entered_at", by="deal_id",
                           direction="backward", allow_exact_matches=True)
    stage = merged.set_index("_row")["stage"].sort_index()
    return pd.Series(stage.fillna(BEFORE).to_numpy(), index=touches.index, name="stage")


def _long(t: pd.DataFrame) -> pd.DataFrame:
    """One row per touch and dimension (``channel``, ``kind``, ``(all)``), stage and ``(all)`` stages."""
    parts = [t.assign(dimension=d, level=t[d]) for d in DIMENSIONS] + [t.assign(dimension=ALL, level=ALL)]
    long = pd.concat(parts, ignore_index=True)
    return pd.concat([long, long.assign(stage=ALL)], ignore_index=True)


@dataclass(frozen=True)
class TouchpointSummary(Result):
    """Touches of won and lost deals by stage, channel and kind; timing; what precedes an advance.

    Attributes
    ----------
    table : DataFrame
        Tidy: ``outcome`` (won, lost), ``stage`` (``(all)``, each stage, ``(before first
        stage)``), ``dimension`` (``channel``, ``kind``, ``(all)``), ``level``, ``deals`` (the
        denominator: closed deals of that outcome; for a stage, those that entered it),
        ``touches``, ``mean_per_deal`` with a normal-approximation ``mean_ci_low``/``mean_ci_high``
        (untouched deals count as 0; NaN with one deal), ``deals_touched``, ``share_touched`` (share of the
        deals with at least one such touch) with Wilson ``ci_low``/``ci_high``.
    timing : DataFrame
        Per outcome (and ``(all)`` closed): ``deals``, ``deals_with_touches``, median days from
        the first touch to ``created_at`` (positive: the touch came first) and to the close, and
        the share of deals touched before they were created with its Wilson CI.
    advance : DataFrame
        Per ``dimension`` and ``level``: ``window_touches`` (touches in the ``window_days``
        before a stage advance), ``window_share``, its Wilson CI, ``overall_touches``,
        ``overall_share`` and ``lift`` = window share / overall share; sorted by lift.
    counts : dict
        Deals and touches used and left out (``open_deals``, ``open_touches``,
        ``without_deal``, ``after_close``).
    """

    table: pd.DataFrame
    timing: pd.DataFrame
    advance: pd.DataFrame
    window_days: float
    alpha: float
    counts: dict = field(default_factory=dict)

    def top_before_advance(self, dimension: str = "channel") -> pd.Series:
        """The row of the level of ``dimension`` most frequent in the window before an advance."""
        part = self.advance[self.advance["dimension"] == dimension]
        return part.loc[part["window_touches"].idxmax()]

    def wide(self, dimension: str = "channel", stage: str = ALL, value: str = "mean_per_deal") -> pd.DataFrame:
        """``value`` by level (rows) and outcome (columns), for one dimension and stage."""
        part = self.table[(self.table["dimension"] == dimension) & (self.table["stage"] == stage)]
        return part.pivot(index="level", columns="outcome", values=value)

    def plot(self, *, dimension: str = "channel", ax=None):
        """Mean touches per deal by level of ``dimension``, won against lost; returns the axes."""
        from ..plots import theme

        with theme():
            ax = axes(ax)
            self.wide(dimension).reindex(columns=list(CLOSED)).plot.barh(ax=ax)
            ax.set_xlabel("Touches per deal")
            ax.set_ylabel(dimension.capitalize())
        return ax

    def findings(self):
        """Touches per won and lost deal, and the channel most frequent before a stage advance."""
        from ..findings import Findings, percent

        out = Findings()
        every = self.table[(self.table["stage"] == ALL) & (self.table["dimension"] == ALL)].set_index("outcome")
        if {"won", "lost"} <= set(every.index):
            out.append(f"Won deals had {every.loc['won', 'mean_per_deal']:.1f} touches per deal, lost deals "
                       f"{every.loc['lost', 'mean_per_deal']:.1f}.")
        if len(self.advance) and (self.advance["dimension"] == "channel").any():
            top = self.top_before_advance("channel")
            out.append(f"In the {self.window_days:g} days before a stage advance, {top['level']} makes "
                       f"{percent(top['window_share'])} of touches, against {percent(top['overall_share'])} overall.")
        return out or Findings(["No closed deal has touches to compare."])

    def _repr_html_(self) -> str:
        return tables.to_html(self.timing, index=False) + tables.to_html(self.advance, index=False)


def _stage_denominators(t_deals: pd.DataFrame, dataset: Dataset, stages: list[str]) -> pd.DataFrame:
    """Closed deals per outcome and stage: all of them for ``(all)`` and before the first stage,
    those with an entry into the stage otherwise."""
    per_outcome = t_deals["outcome"].value_counts()
    h = dataset.stage_history.merge(t_deals[["deal_id", "outcome"]], on="deal_id")
    entered = h.drop_duplicates(["deal_id", "stage"]).groupby(["outcome", "stage"]).size()
    rows = []
    for outcome in CLOSED:
        for stage in stages:
            n = per_outcome.get(outcome, 0) if stage in (ALL, BEFORE) else entered.get((outcome, stage), 0)
            rows.append({"outcome": outcome, "stage": stage, "deals": int(n)})
    return pd.DataFrame(rows)


def touchpoint_summary(dataset: Dataset, *, window_days: float = 14, alpha: float = 0.05) -> TouchpointSummary:
    """Touches per deal and per stage by channel and kind for won and lost deals, timing of the
    first touch, and which channel or kind comes most in the ``window_days`` before a stage advance.

    Parameters
    ----------
    window_days : float
        Length of the window before a stage advance (an entry into a later open stage or a
        won stage than the one before it).
    alpha : float
        1 - confidence of the Wilson intervals.
    """
    t, counts = deal_touches(dataset)
    closed_deals = dataset.deals[dataset.deals["outcome"].isin(CLOSED)]
    counts.update(open_deals=int((dataset.deals["outcome"] == "open").sum()),
                  open_touches=int((t["outcome"] == "open").sum()), touches=int(len(t)))
    closed = t[t["outcome"].isin(CLOSED)]

    table = _touch_table(closed, closed_deals, dataset, alpha)
    return TouchpointSummary(table=table, timing=_timing(closed, closed_deals, alpha),
                             advance=_advance_lift(t, dataset, window_days, alpha),
                             window_days=window_days, alpha=alpha, counts=counts)


def _touch_table(closed: pd.DataFrame, closed_deals: pd.DataFrame, dataset: Dataset, alpha: float) -> pd.DataFrame:
    """Per outcome, stage, dimension and level: touches, mean per deal, deals touched, over the
    full grid (zeros kept)."""
    long = _long(closed)
    keys = ["outcome", "stage", "dimension", "level"]
    per_deal = long.groupby(keys + ["deal_id"]).size()
    got = pd.DataFrame({"touches": per_deal.groupby(level=keys).sum(),
                        "deals_touched": per_deal.groupby(level=keys).size(),
                        "_squares": per_deal.pow(2).groupby(level=keys).sum()}).reset_index()
    seen_stages = set(closed["stage"])
    stages = [ALL] + [s for s in (BEFORE,) + dataset.stage_order if s in seen_stages or s in dataset.stages]
    levels = long[["dimension", "level"]].drop_duplicates()
    grid = _stage_denominators(closed_deals, dataset, stages).merge(levels, how="cross")
    table = grid.merge(got, on=["outcome", "stage", "dimension", "level"], how="left")
    table[["touches", "deals_touched", "_squares"]] = table[["touches", "deals_touched", "_squares"]].fillna(0)
    table = table.astype({"touches": int, "deals_touched": int})
    n = table["deals"].where(table["deals"] > 0)
    table["mean_per_deal"] = table["touches"] / n
    # Normal-approximation CI of the mean over all deals of the cell (untouched deals count as 0).
    var = (table["_squares"] - n * table["mean_per_deal"] ** 2) / (n - 1).where(n > 1)
    half = norm.ppf(1 - alpha / 2) * np.sqrt(var.clip(lower=0) / n)
    table["mean_ci_low"] = (table["mean_per_deal"] - half).clip(lower=0)
    table["mean_ci_high"] = table["mean_per_deal"] + half
    table["share_touched"] = table["deals_touched"] / table["deals"].where(table["deals"] > 0)
    table["ci_low"], table["ci_high"] = wilson(table["deals_touched"], table["deals"], alpha)
    order = {"outcome": {o: i for i, o in enumerate(CLOSED)}, "stage": {s: i for i, s in enumerate(stages)}}
    table = table.sort_values(keys, key=lambda c: c.map(order[c.name]) if c.name in order else c, ignore_index=True)
    return table[["outcome", "stage", "dimension", "level", "deals", "touches", "mean_per_deal",
                  "mean_ci_low", "mean_ci_high", "deals_touched", "share_touched", "ci_low", "ci_high"]]


def _timing(closed: pd.DataFrame, closed_deals: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Median days from the first touch to creation and to close, per outcome."""
    first = closed.groupby("deal_id").agg(first=("occurred_at", "min"), outcome=("outcome", "first"),
                                          created_at=("created_at", "first"), closed_at=("closed_at", "first"))
    first["to_created"] = (first["created_at"] - first["first"]) / DAY
    first["to_close"] = (first["closed_at"] - first["first"]) / DAY
    rows = []
    for outcome in (ALL,) + CLOSED:
        part = first if outcome == ALL else first[first["outcome"] == outcome]
        n = int(len(closed_deals) if outcome == ALL else (closed_deals["outcome"] == outcome).sum())
        before = int((part["to_created"] > 0).sum())
        low, high = wilson([before], [len(part)], alpha)
        rows.append({"outcome": outcome, "deals": n, "deals_with_touches": int(len(part)),
                     "median_days_first_touch_to_created": part["to_created"].median(),
                     "median_days_first_touch_to_close": part["to_close"].median(),
                     "share_touched_before_created": before / len(part) if len(part) else np.nan,
                     "ci_low": low[0], "ci_high": high[0]})
    return pd.DataFrame(rows)


def stage_advances(dataset: Dataset) -> pd.DataFrame:
    """Entries into a stage later in the process (open stages, then won) than the deal's previous
    entry: ``deal_id``, ``stage``, ``entered_at``. Entries into a lost stage are never advances."""
    rank = {s: i for i, s in enumerate(dataset.stages + dataset.won_stages)}
    h = dataset.stage_history.sort_values(["deal_id", "entered_at"], kind="stable")
    pos = h["stage"].map(rank).astype(float)  # lost stages: NaN
    prev = pos.groupby(h["deal_id"]).shift()
    return h.loc[pos > prev, ["deal_id", "stage", "entered_at"]].reset_index(drop=True)


def _advance_lift(t: pd.DataFrame, dataset: Dataset, window_days: float, alpha: float) -> pd.DataFrame:
    """Share of each channel and kind among touches in the window before an advance, against overall."""
    adv = stage_advances(dataset).astype({"deal_id": t["deal_id"].dtype, "entered_at": "datetime64[ns]"})
    left = (t[["deal_id", "occurred_at", "channel", "kind"]].astype({"occurred_at": "datetime64[ns]"})
            .sort_values("occurred_at", kind="stable"))
    nxt = pd.merge_asof(left, adv.rename(columns={"entered_at": "next_advance"})[["deal_id", "next_advance"]]
                        .sort_values("next_advance"), left_on="occurred_at", right_on="next_advance",
                        by="deal_id", direction="forward", allow_exact_matches=False)
    # Strictly before the advance: a touch on the day of an entry belongs to the stage entered.
    in_window = (nxt["next_advance"] - nxt["occurred_at"]) <= pd.Timedelta(days=window_days)
    rows = []
    for dim in DIMENSIONS:
        overall = nxt[dim].value_counts()
        window = nxt.loc[in_window, dim].value_counts().reindex(overall.index, fill_value=0)
        rows.append(pd.DataFrame({"dimension": dim, "level": overall.index, "window_touches": window.to_numpy(),
                                  "window_total": int(in_window.sum()), "overall_touches": overall.to_numpy(),
                                  "overall_total": int(len(nxt))}))
    out = pd.concat(rows, ignore_index=True)
    out["window_share"] = out["window_touches"] / out["window_total"].where(out["window_total"] > 0)
    out["ci_low"], out["ci_high"] = wilson(out["window_touches"], out["window_total"], alpha)
    out["overall_share"] = out["overall_touches"] / out["overall_total"]
    out["lift"] = out["window_share"] / out["overall_share"]
    out = out.sort_values(["dimension", "lift"], ascending=[True, False], ignore_index=True)
    return out[["dimension", "level", "window_touches", "window_total", "window_share", "ci_low", "ci_high",
                "overall_touches", "overall_total", "overall_share", "lift"]]
