"""Time in stage: how long deals stay in each open stage, as survival analysis.

Definition (the contract behind ``median_days_in_stage`` in ``summary.json``): the
dwell of a deal in an open stage is its FIRST visit to the stage, from its first entry
into the stage to its next entry into any stage (won and lost stage rows included), or
to ``closed_at`` when the deal closed without a later row. A deal still in the stage at
``as_of`` (open, no later entry) is censored there. Deals that never entered a stage are
not in its denominator. A history row that repeats the deal's previous stage is not a
new entry: it continues the visit (such rows are counted in ``StageDwell.notes``).

Dropping the deals still in a stage and taking the median of the finished visits
understates the dwell wherever long visits are still running; the tests show it on
the sample data with known truth.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from .. import tables
from ..dataset.groups import OVERALL
from ..dataset.history import history_codes
from ..dataset.model import Dataset
from ..exceptions import SmallSampleWarning, WorkbenchError, fixes
from ..results import Result, axes
from ..stats.survival import CompetingRisks, competing_risks

DAY_NS = 86_400 * 10**9
#: Horizon (days) of the restricted mean dwell.
HORIZON = 365.0


@dataclass(frozen=True)
class Entries:
    """Stage entries as arrays, sorted by deal, then time, then stage order.

    ``deal`` is the row of ``dataset.deals``; ``rank`` the position in
    ``dataset.stage_order``; ``time`` nanoseconds since the epoch. Rows that repeat the
    deal's previous stage are already removed (``repeats`` counts them).
    """

    deal: np.ndarray
    rank: np.ndarray
    time: np.ndarray
    repeats: int

    @property
    def last(self) -> np.ndarray:
        """True on each deal's latest entry."""
        out = np.ones(len(self.deal), bool)
        out[:-1] = self.deal[1:] != self.deal[:-1]
        return out


def entries(dataset: Dataset) -> Entries:
    """The stage history as sorted integer arrays (vectorized; no sort when already sorted).

    Raises
    ------
    WorkbenchError
        History rows name a deal missing from ``deals`` or a stage not declared.
    """
    deal, rank = history_codes(dataset)
    time = dataset.stage_history["entered_at"].to_numpy("datetime64[ns]").view("i8")
    if not _is_sorted(deal, time, rank):
        order = _sort_order(deal, time, rank)
        deal, time, rank = deal[order], time[order], rank[order]
    repeat = np.zeros(len(deal), bool)
    repeat[1:] = (deal[1:] == deal[:-1]) & (rank[1:] == rank[:-1])
    keep = ~repeat
    return Entries(deal=deal[keep], rank=rank[keep], time=time[keep], repeats=int(repeat.sum()))


def _is_sorted(deal, time, rank) -> bool:
    if len(deal) < 2:
        return True
    same = deal[1:] == deal[:-1]
    dt = time[1:] - time[:-1]
    in_order = (dt > 0) | ((dt == 0) & (rank[1:] >= rank[:-1]))
    if not in_order[same].all():
        return False
    heads = deal[np.r_[True, ~same]]
    return np.bincount(heads).max() <= 1  # every deal is one contiguous run


def _sort_order(deal, time, rank) -> np.ndarray:
    """Order by (deal, time, rank) through one int64 key when it fits (a single radix sort)."""
    times, tcode = np.unique(time, return_inverse=True)
    ranks = int(rank.max(initial=0)) + 1
    if deal.max(initial=0) < np.iinfo(np.int64).max // ((len(times) + 1) * ranks):
        return np.argsort((deal.astype(np.int64) * len(times) + tcode) * ranks + rank, kind="stable")
    return np.lexsort((rank, time, deal))


@dataclass(frozen=True)
class Visits:
    """Every visit to an open stage, as arrays (one per history row of an open stage).

    ``days`` runs from the entry to the next entry, or to ``closed_at`` when the deal
    closed without a later row, or to ``as_of`` (``left`` False: censored). ``first``
    marks the first visit of the deal to the stage; ``current`` marks the visit an open
    deal is in at ``as_of``.
    """

    deal: np.ndarray
    stage: np.ndarray  # position in dataset.stages
    start: np.ndarray  # ns
    days: np.ndarray
    left: np.ndarray
    first: np.ndarray
    current: np.ndarray
    repeats: int


def visit_arrays(dataset: Dataset) -> Visits:
    """All visits to open stages, vectorized (see `Visits`)."""
    e = entries(dataset)
    k = len(dataset.stages)
    last = e.last
    rows = np.flatnonzero(e.rank < k)
    deal, stage, start = e.deal[rows], e.rank[rows], e.time[rows]
    has_next = ~last[rows]
    closed_at = dataset.deals["closed_at"].to_numpy("datetime64[ns]")
    closed = ~np.isnat(closed_at)[deal]
    close_ns = closed_at.view("i8")[deal]
    nxt = e.time[np.minimum(rows + 1, len(e.time) - 1)] if len(rows) else start
    end = np.where(has_next, nxt, np.where(closed, close_ns, dataset.as_of.value))
    days = np.maximum(end - start, 0) / DAY_NS
    first = np.zeros(len(rows), bool)
    for s in range(k):
        at = np.flatnonzero(stage == s)
        if len(at):
            first[at[np.r_[True, deal[at][1:] != deal[at][:-1]]]] = True
    left = has_next | closed
    return Visits(deal=deal, stage=stage, start=start, days=days, left=left, first=first,
                  current=~left, repeats=e.repeats)


def visits(dataset: Dataset, first_only: bool = True) -> pd.DataFrame:
    """One row per visit to an open stage (by default the first visit per deal and stage).

    Returns
    -------
    DataFrame
        ``deal_id``, ``stage``, ``entered_at``, ``days`` (float), ``event`` (``left``, or
        ``in_stage`` = censored at ``as_of``), ``first`` (first visit to the stage).
    """
    v = visit_arrays(dataset)
    keep = v.first if first_only else np.ones(len(v.deal), bool)
    return pd.DataFrame({
        "deal_id": dataset.deals["deal_id"].to_numpy()[v.deal[keep]],
        "stage": np.asarray(dataset.stages, dtype=object)[v.stage[keep]],
        "entered_at": v.start[keep].view("datetime64[ns]"),
        "days": v.days[keep],
        "event": np.where(v.left[keep], "left", "in_stage").astype(object),
        "first": v.first[keep],
    })


def restricted_mean(fit: CompetingRisks, horizon: float) -> tuple[float, float]:
    """Area under the Kaplan-Meier curve up to ``horizon`` and its Greenwood-type SE.

    The curve is unknown beyond the longest observed time, so the area stops there when
    that comes before ``horizon``. Var = sum over event times t_j of
    A_j^2 d_j / (n_j (n_j - d_j)), with A_j the area from t_j to the end (Klein &
    Moeschberger, 2003, 4.5).
    """
    t = fit.table["time"].to_numpy()
    horizon = min(float(horizon), float(t[-1])) if len(t) else 0.0
    inside = t < horizon
    s = fit.table["survival"].to_numpy()[inside]
    grid = np.r_[0.0, t[inside], horizon]
    pieces = np.r_[1.0, s] * np.diff(grid)
    area = pieces.sum()
    tail = area - np.cumsum(pieces)[:-1]  # area from each event time to the horizon
    n = fit.table["at_risk"].to_numpy()[inside]
    d = fit.table["events"].to_numpy()[inside]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n > d, tail**2 * d / (n * (n - d)), 0.0)
    return float(area), float(np.sqrt(terms.sum()))


@dataclass(frozen=True)
class StageDwell(Result):
    """Kaplan-Meier of the first-visit dwell in each open stage, overall and per segment.

    ``table`` has one row per segment and stage: ``segment``, ``stage``, ``entered``,
    ``still_in_stage`` (censored at ``as_of``), ``left``, ``median_days`` with
    ``median_low``/``median_high``, ``q25_days``, ``q75_days``, ``mean_days`` (restricted
    mean to ``horizon``) with ``mean_low``/``mean_high``, and ``share_of_time``.
    ``fits`` maps (segment, stage) to the `CompetingRisks` fit (cause ``left``).
    """

    table: pd.DataFrame
    fits: dict[tuple[str, str], CompetingRisks]
    by: str | None
    horizon: float
    alpha: float
    notes: list[str] = field(default_factory=list)

    def medians(self) -> dict[str, float | None]:
        """Overall median days in each stage; None where not estimable (too few entries,
        or fewer than half have left the stage), so it goes into JSON as null."""
        overall = self.table[self.table["segment"] == OVERALL]
        return {row.stage: (float(row.median_days) if np.isfinite(row.median_days) else None)
                for row in overall.itertuples()}

    def where_time_goes(self) -> pd.DataFrame:
        """Wide: one row per segment, the share of time in each stage (columns in stage order)."""
        wide = self.table.pivot(index="segment", columns="stage", values="share_of_time")
        stages = list(dict.fromkeys(self.table["stage"]))
        segments = list(dict.fromkeys(self.table["segment"]))
        return wide.loc[segments, stages]

    def findings(self, *, unit=None):
        """The slowest stage and where the time goes, in words (`workbench.findings.dwell_findings`)."""
        from ..findings import dwell_findings

        return dwell_findings(self) if unit is None else dwell_findings(self, unit=unit)

    def plot(self, *, ax=None, **kwargs):
        """Median days per stage with intervals (`workbench.plots.dwell_bars`); returns the axes."""
        from ..plots import dwell_bars

        return dwell_bars(self, ax=axes(ax), **kwargs)

    def _repr_html_(self) -> str:
        notes = "".join(f"<p>{n}</p>" for n in self.notes)
        return tables.to_html(self.table, index=False) + notes


def stage_dwell(dataset: Dataset, by: str | None = None, *, alpha: float = 0.05, min_deals: int = 30,
                horizon: float = HORIZON) -> StageDwell:
    """Days in each open stage (first visit), with Kaplan-Meier for deals still in it.

    Parameters
    ----------
    by : str, optional
        A deal column to split by; each level gets its own fits beside the overall ones.
        Levels with fewer than ``min_deals`` deals are left out with a `SmallSampleWarning`.
    alpha : float
        1 - confidence level of the median's interval (crossings of the log(-log) band).
    min_deals : int
        Also the fewest entries a (segment, stage) needs for estimates; rows with fewer
        keep their counts and get NaN estimates, with a warning.
    horizon : float
        Days up to which the restricted mean dwell is taken (or the longest observed
        dwell, if shorter).

    Returns
    -------
    StageDwell
        ``mean_days`` is the restricted mean dwell: the area under the Kaplan-Meier
        curve up to ``horizon`` days (the expected days in the stage, counting at most
        ``horizon``), with a normal interval from its Greenwood-type SE.
        ``share_of_time`` is each stage's ``mean_days`` over the sum of the segment's
        ``mean_days``: where the time goes for a deal that passes once through every
        stage. It does not weight stages by how many deals reach them, and it leaves out
        later re-visits; stages without an estimate are left out of the sum. Means
        rather than medians, because means add up: the shares of a sum are what "where
        the time goes" asks for.

    Raises
    ------
    WorkbenchError
        ``by`` is not a deal column, or the dataset has no open stages or no history.
    """
    if by is not None and by not in dataset.deals:
        raise WorkbenchError(f"Deals have no column `{by}`. " + fixes(f"use one of {dataset.attributes}"))
    if not dataset.stages or dataset.stage_history.empty:
        raise WorkbenchError("Time in stage needs open stages and a stage history; the dataset has "
                             f"{len(dataset.stages)} open stages and {len(dataset.stage_history)} history rows. "
                             + fixes("declare the open stages under `stages:` in dataset.yaml",
                                     "map a `stage_history` table (or a wide history) in dataset.yaml"))
    v = visit_arrays(dataset)
    keep = v.first
    deal, stage, days, left = v.deal[keep], v.stage[keep], v.days[keep], v.left[keep]
    event = np.where(left, "left", "in_stage").astype(object)
    notes, caveats = [], []  # caveats are also warned about
    if v.repeats:
        notes.append(f"{v.repeats} stage_history rows repeat the deal's previous stage; they continue "
                     "that visit rather than start a new one.")
    groups = [(OVERALL, np.arange(len(deal)))]
    if by is not None:
        levels = pd.Categorical(dataset.deals[by])
        sizes = np.bincount(levels.codes[levels.codes >= 0], minlength=len(levels.categories))
        code = levels.codes[deal]
        order = np.argsort(code, kind="stable")
        bounds = np.searchsorted(code[order], np.arange(len(levels.categories) + 1))
        for j, level in enumerate(levels.categories):
            if sizes[j] < min_deals:
                caveats.append(f"`{by}` = {level!r} has {sizes[j]} deals (< {min_deals}); left out.")
                continue
            groups.append((str(level), order[bounds[j]:bounds[j + 1]]))
        missing = int((levels.codes < 0).sum())
        if missing:
            caveats.append(f"{missing} deals have no `{by}`; they count only in {OVERALL!r}.")
    rows, fits = [], {}
    z = norm.ppf(1 - alpha / 2)
    for label, idx in groups:
        by_stage = idx[np.argsort(stage[idx], kind="stable")]
        bounds = np.searchsorted(stage[by_stage], np.arange(len(dataset.stages) + 1))
        for s, name in enumerate(dataset.stages):
            part = by_stage[bounds[s]:bounds[s + 1]]
            row = {"segment": label, "stage": name, "entered": len(part),
                   "still_in_stage": int((~left[part]).sum()), "left": int(left[part].sum())}
            if len(part) < min_deals:
                caveats.append(f"{label}, {name}: {len(part)} deals entered (< {min_deals}); no estimate.")
                rows.append(row)
                continue
            fit = competing_risks(days[part], event[part], causes=("left",), alpha=alpha, censored="in_stage")
            fits[(label, name)] = fit
            med = fit.median()
            mean, se = restricted_mean(fit, horizon)
            row.update(median_days=med["estimate"], median_low=med["lower"], median_high=med["upper"],
                       q25_days=fit.quantile(0.25)["estimate"], q75_days=fit.quantile(0.75)["estimate"],
                       mean_days=mean, mean_low=max(mean - z * se, 0.0), mean_high=mean + z * se)
            rows.append(row)
    columns = ["segment", "stage", "entered", "still_in_stage", "left", "median_days", "median_low",
               "median_high", "q25_days", "q75_days", "mean_days", "mean_low", "mean_high"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["share_of_time"] = table["mean_days"] / table.groupby("segment", sort=False)["mean_days"].transform("sum")
    for caveat in caveats:
        warnings.warn(caveat, SmallSampleWarning, stacklevel=2)
    return StageDwell(table=table, fits=fits, by=by, horizon=horizon, alpha=alpha, notes=notes + caveats)
