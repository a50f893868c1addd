"""Buying roles: who from the customer's side is on a deal, and how that goes with winning.

`buying_roles` counts, per deal, its contacts and their distinct roles and whether a
decision maker is among them, then compares closed deals: the win rate with and
without a decision maker, the number of contacts and of roles on won against lost
deals, and both by the furthest open stage a deal reached. Open deals have no outcome
yet: they are counted and left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .. import tables
from ..dataset.model import Dataset
from ..exceptions import WorkbenchError, fixes
from ..plots import error_lengths
from ..results import Result, axes

DECISION_MAKER = "Decision maker"
NO_STAGE = "(no open stage)"


def deal_roles(dataset: Dataset, decision_role: str = DECISION_MAKER) -> pd.DataFrame:
    """One row per deal: ``deal_id``, ``outcome``, ``contacts``, ``roles`` (distinct, non-missing),
    ``decision_maker`` (a contact's role equals ``decision_role``) and ``stage_reached``.

    ``stage_reached`` is the furthest of ``dataset.stages`` (in process order) the deal
    entered, `NO_STAGE` when its history has none. A deal without contacts has 0 of each.
    """
    contacts = dataset.contacts
    if contacts is None or "deal_id" not in contacts or "role" not in contacts:
        raise WorkbenchError("The dataset has no contacts with `deal_id` and `role`: buying roles cannot be read. "
                             + fixes("map a `contacts` table with `deal_id` and `role` in dataset.yaml"))
    linked = contacts[contacts["deal_id"].notna()]
    g = linked.groupby("deal_id")
    per = pd.DataFrame({"contacts": g.size(), "roles": g["role"].nunique(),
                        "decision_maker": g["role"].agg(lambda r: bool((r == decision_role).any()))})
    deals = dataset.deals[["deal_id", "outcome"]].set_index("deal_id")
    out = deals.join(per)
    out[["contacts", "roles"]] = out[["contacts", "roles"]].fillna(0).astype(int)
    out["decision_maker"] = out["decision_maker"].eq(True)  # deals without contacts: NaN -> False
    order = {s: i for i, s in enumerate(dataset.stages)}
    hist = dataset.stage_history
    idx = hist["stage"].map(order)
    furthest = idx[idx.notna()].groupby(hist.loc[idx.notna(), "deal_id"]).max()
    names = np.array(dataset.stages, dtype=object)
    reached = furthest.reindex(out.index)
    out["stage_reached"] = [names[int(i)] if pd.notna(i) else NO_STAGE for i in reached]
    return out.reset_index()


def _mean_ci(values: pd.Series, alpha: float) -> tuple[float, float, float]:
    values = np.asarray(values, float)
    m = float(values.mean()) if len(values) else np.nan
    if len(values) < 2:
        return m, np.nan, np.nan
    half = stats.t.ppf(1 - alpha / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return m, m - half, m + half


@dataclass(frozen=True)
class BuyingRoles(Result):
    """Decision makers, contacts and roles on won and lost deals.

    Attributes
    ----------
    deals : DataFrame
        `deal_roles` for every deal (open ones too).
    decision_maker : DataFrame
        ``decision_maker`` (True/False), ``n`` (closed deals), ``won``, ``win_rate``,
        Wilson ``ci_low``, ``ci_high``.
    difference, difference_low, difference_high, z, p_value : float
        Win rate with minus without a decision maker, Newcombe's interval for it
        (statsmodels ``confint_proportions_2indep(method="newcomb")``), and the pooled
        two-proportion z-test (``proportions_ztest``).
    counts : DataFrame
        ``measure`` (``contacts``, ``roles``), ``outcome`` (won, lost), ``n``, ``mean``,
        t ``ci_low``, ``ci_high``, ``median``, and per measure the two-sided Mann-Whitney
        ``u`` and ``p_value`` (won against lost).
    by_stage : DataFrame
        Per ``stage_reached`` and ``decision_maker``: ``n``, ``won``, ``win_rate`` and its
        Wilson interval, ``mean_contacts``; stages in process order. Only deals that
        reached the last stages can have won, so read it with ``from_stage``.
    from_stage : DataFrame
        The same per ``stage`` for the closed deals that entered that stage *or a later
        one*: the win rate from each stage on, with and without a decision maker.
    open_deals : int
        Open deals, left out of every comparison.
    """

    deals: pd.DataFrame
    decision_maker: pd.DataFrame
    difference: float
    difference_low: float
    difference_high: float
    z: float
    p_value: float
    counts: pd.DataFrame
    by_stage: pd.DataFrame
    from_stage: pd.DataFrame | None
    open_deals: int
    alpha: float
    notes: list[str] = field(default_factory=list)

    @property
    def statement(self) -> str:
        """The decision-maker comparison in one sentence."""
        t = self.decision_maker.set_index("decision_maker")
        w, wo = t.loc[True], t.loc[False]
        from ..findings import level, p_value

        ci = level(self.alpha)
        return (f"Closed deals with a decision maker among their contacts won {w['win_rate']:.0%} "
                f"({ci} {w['ci_low']:.0%}-{w['ci_high']:.0%}, {int(w['n']):,} deals) against {wo['win_rate']:.0%} "
                f"({wo['ci_low']:.0%}-{wo['ci_high']:.0%}, {int(wo['n']):,} deals) without: a difference of "
                f"{self.difference * 100:+.1f} points ({self.difference_low * 100:+.1f} to "
                f"{self.difference_high * 100:+.1f}; {p_value(self.p_value)}).")

    @property
    def table(self) -> pd.DataFrame:
        """``decision_maker``: closed deals, won and win rate with and without a decision maker."""
        return self.decision_maker

    def findings(self):
        """The decision-maker comparison in one sentence (``statement``)."""
        from ..findings import Findings

        return Findings([self.statement])

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in [self.statement] + self.notes)
        return (f"<ul>{notes}</ul>" + tables.to_html(self.decision_maker, index=False)
                + tables.to_html(self.counts, index=False))

    def plot(self, *, ax=None):
        """Win rate by stage reached, with and without a decision maker; returns the axes."""
        from ..plots import theme

        with theme():
            return self._draw(axes(ax))

    def _draw(self, ax):
        """Draw on ``ax`` (in the theme already)."""
        stages = list(dict.fromkeys(self.by_stage["stage_reached"]))
        for flag, part in self.by_stage.groupby("decision_maker"):
            x = part["stage_reached"].map({s: i for i, s in enumerate(stages)}).to_numpy()
            ax.errorbar(x, part["win_rate"], yerr=error_lengths(part["win_rate"], part["ci_low"], part["ci_high"]),
                        fmt="o-",
                        label="decision maker" if flag else "no decision maker")
        ax.set_xticks(np.arange(len(stages)), stages)
        ax.set_xlabel("furthest open stage reached")
        ax.set_ylabel("win rate (closed deals)")
        ax.legend()
        return ax


def _rates(frame: pd.DataFrame, by: list[str], alpha: float) -> pd.DataFrame:
    from statsmodels.stats.proportion import proportion_confint

    g = frame.groupby(by, sort=False)
    table = pd.DataFrame({"n": g.size(), "won": g["won"].sum().astype(int),
                          "mean_contacts": g["contacts"].mean()}).reset_index()
    table["win_rate"] = table["won"] / table["n"]
    table["ci_low"], table["ci_high"] = proportion_confint(table["won"], table["n"], alpha=alpha, method="wilson")
    return table


def buying_roles(dataset: Dataset, *, decision_role: str = DECISION_MAKER, alpha: float = 0.05) -> BuyingRoles:
    """Compare closed deals with and without a decision maker, and by contacts and roles.

    Raises
    ------
    WorkbenchError
        No contacts table, no closed deal, or no closed deal on one side of the
        decision-maker comparison.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    deals = deal_roles(dataset, decision_role)
    open_deals = int(deals["outcome"].eq("open").sum())
    closed = deals[deals["outcome"].isin(["won", "lost"])].assign(won=lambda d: d["outcome"].eq("won"))
    sides = closed["decision_maker"].value_counts()
    if sides.get(True, 0) == 0 or sides.get(False, 0) == 0:
        which = "with" if sides.get(True, 0) == 0 else "without"
        raise WorkbenchError(f"No closed deal {which} a contact whose role is `{decision_role}` "
                             f"({len(closed)} closed deals): nothing to compare. "
                             + fixes("check the role's spelling: roles present are "
                                     + ", ".join(map(str, dataset.contacts["role"].dropna().unique()[:5])),
                                     "set `decision_role` (the notebook parameter, or `decision_role=`) to the "
                                     "role your CRM uses"))
    dm = _rates(closed, ["decision_maker"], alpha).drop(columns="mean_contacts")
    dm = dm.sort_values("decision_maker", ascending=False, ignore_index=True)
    w, wo = dm.iloc[0], dm.iloc[1]
    z, p = proportions_ztest([w["won"], wo["won"]], [w["n"], wo["n"]])
    low, high = confint_proportions_2indep(w["won"], w["n"], wo["won"], wo["n"], method="newcomb",
                                           compare="diff", alpha=alpha)
    rows = []
    for measure in ("contacts", "roles"):
        won_v, lost_v = closed.loc[closed["won"], measure], closed.loc[~closed["won"], measure]
        u, up = (stats.mannwhitneyu(won_v, lost_v, alternative="two-sided") if len(won_v) and len(lost_v)
                 else (np.nan, np.nan))
        for outcome, v in (("won", won_v), ("lost", lost_v)):
            m, lo, hi = _mean_ci(v, alpha)
            rows.append({"measure": measure, "outcome": outcome, "n": int(len(v)), "mean": m, "ci_low": lo,
                         "ci_high": hi, "median": float(v.median()) if len(v) else np.nan,
                         "u": float(u), "p_value": float(up)})
    counts = pd.DataFrame(rows)
    stage_order = {s: i for i, s in enumerate((NO_STAGE,) + tuple(dataset.stages))}
    by_stage = _rates(closed, ["stage_reached", "decision_maker"], alpha)
    by_stage = (by_stage.assign(_o=by_stage["stage_reached"].map(stage_order))
                .sort_values(["_o", "decision_maker"], ascending=[True, False]).drop(columns="_o")
                .reset_index(drop=True))
    reached_index = closed["stage_reached"].map(stage_order)
    parts = [closed[reached_index >= stage_order[st]].assign(stage=st) for st in dataset.stages]
    at_least = _rates(pd.concat(parts, ignore_index=True), ["stage", "decision_maker"], alpha) if parts else None
    if at_least is not None:
        at_least = (at_least.assign(_o=at_least["stage"].map(stage_order))
                    .sort_values(["_o", "decision_maker"], ascending=[True, False]).drop(columns="_o")
                    .reset_index(drop=True))
    no_contacts = int((deals["contacts"] == 0).sum())
    notes = [f"{len(closed)} closed deals compared; {open_deals} open deals left out (no outcome yet)."]
    if no_contacts:
        notes.append(f"{no_contacts} deals have no contact: they count as 0 contacts, no decision maker.")
    notes.append("A deal wins only by passing every stage, so the overall comparison mixes an effect on each "
                 "step; the tables by stage compare deals that got equally far.")
    return BuyingRoles(deals=deals, decision_maker=dm, difference=float(w["win_rate"] - wo["win_rate"]),
                       difference_low=float(low), difference_high=float(high), z=float(z), p_value=float(p),
                       counts=counts, by_stage=by_stage, from_stage=at_least, open_deals=open_deals, alpha=alpha,
                       notes=notes)
