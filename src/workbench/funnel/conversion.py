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

Beside it (each defined in full in its result class):

- `windowed_conversion`: of the first entries into A at least N days old, the share
  that moved on within N days; a plain proportion, so Wilson intervals and
  two-proportion tests apply (`compare_conversion` tests segments on it).
- `stage_reach`: deals that entered A or any later stage (or won) by ``as_of``.
- `funnel`: the three side by side, with the eventual drop-off, for the funnel chart.
- `cohort_conversion`: the eventual conversion per creation month.

The cleaned stage history and its quality live in `workbench.dataset.history`; moves between
stages in `workbench.funnel.transitions`; path variants in `workbench.funnel.routes`; the absorbing
Markov chain in `workbench.funnel.markov`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import tables
from ..dataset.groups import OVERALL, segment_codes, segment_groups, wilson
from ..dataset.history import history, history_quality
from ..dataset.model import Dataset
from ..exceptions import SmallSampleWarning, WorkbenchError, fixes
from ..stats.survival import competing_risks
from ..results import Result, axes

__all__ = ["transitions", "progress_rows", "stage_outcomes", "stage_conversion", "StageConversion",
           "windowed_conversion", "WindowedConversion", "stage_reach", "StageReach", "funnel", "Funnel",
           "cohort_conversion", "CohortConversion", "compare_conversion", "ConversionComparison", "history_quality"]

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

    Vectorized: one grouped reverse cumulative minimum per stage over the cleaned history
    (`workbench.dataset.history.history`, which also adds the missing closing rows as
    `progress_rows` does).
    """
    arrays = _outcome_arrays(dataset)
    if not len(arrays["deal"]):
        out = pd.DataFrame(columns=["deal_id", "stage", "entered_at", "days", "event"])
    else:
        out = pd.DataFrame({"deal_id": dataset.deals["deal_id"].to_numpy()[arrays["deal"]],
                            "stage": np.asarray(dataset.stages, dtype=object)[arrays["stage"]],
                            "entered_at": arrays["start"].view("datetime64[ns]"), "days": arrays["days"],
                            "event": np.asarray(EVENTS, dtype=object)[arrays["event"]]})
    out.attrs["added_closing_rows"] = arrays["added_closing_rows"]
    return out


#: Event codes of `_outcome_arrays`.
EVENTS = ("open", "advanced", "dropped")


def _outcome_arrays(dataset: Dataset) -> dict[str, np.ndarray]:
    """`stage_outcomes` as arrays: ``deal`` (row of deals), ``stage`` (index), ``start`` (ns),
    ``days``, ``event`` (index into `EVENTS`); rows by stage, then deal in history order."""
    h = history(dataset)
    k = h.k
    deals = dataset.deals
    outcome = deals["outcome"].to_numpy()
    closed_at = deals["closed_at"].to_numpy("datetime64[ns]").view("i8")
    as_of = np.int64(pd.Timestamp(dataset.as_of).value)
    # Rows beyond stage a: open stages after a, or Won (Lost makes no progress).
    beyond = np.where(h.state == k + 1, -1, h.state.astype(np.int8))
    parts = []
    for a in range(k):
        at_a = np.flatnonzero(h.state == a)
        if not len(at_a):
            continue
        firsts = at_a[np.r_[True, h.deal[at_a][1:] != h.deal[at_a][:-1]]]
        d = h.deal[firsts]
        # Rows are in time order within a deal, so the first row beyond a at or after the
        # first entry into a is the earliest such row: one binary search per deal.
        ahead = np.flatnonzero(beyond > a)
        q = np.searchsorted(ahead, firsts)
        nxt = ahead[np.minimum(q, len(ahead) - 1)] if len(ahead) else np.zeros(len(q), np.int64)
        advanced = (q < len(ahead)) & (h.deal[nxt] == d) if len(ahead) else np.zeros(len(q), bool)
        t0 = h.time[firsts]
        dropped = ~advanced & (outcome[d] == "lost")
        end = np.where(advanced, h.time[nxt], np.where(dropped, closed_at[d], as_of))
        parts.append((d, np.full(len(d), a, np.int8), t0, np.maximum(end - t0, 0) / DAY.value,
                      np.where(advanced, 1, np.where(dropped, 2, 0)).astype(np.int8)))
    names = ("deal", "stage", "start", "days", "event")
    if not parts:
        out = {n: np.zeros(0, t) for n, t in zip(names, (np.int64, np.int8, np.int64, float, np.int8))}
    else:
        out = {n: np.concatenate([p[i] for p in parts]) for i, n in enumerate(names)}
    out["added_closing_rows"] = h.quality["added_closing_rows"]
    return out


@dataclass(frozen=True)
class StageConversion(Result):
    """Eventual conversion per transition, overall and per segment.

    ``table``: segment, transition, reached, advanced, dropped, open, conversion
    (eventual, censoring-aware), ci_low, ci_high, count_ratio (advanced / reached,
    the naive figure, for comparison), drop_off (eventual share lost before advancing,
    Aalen-Johansen). ``fits`` maps (segment, stage) to its `CompetingRisks` fit.
    """

    table: pd.DataFrame
    by: str | None
    alpha: float
    fits: dict = field(default_factory=dict, repr=False)

    def headline(self, segment: str = OVERALL) -> dict[str, float | None]:
        """``{"A->B": conversion}`` for one segment (None where no deal reached A)."""
        part = self.table[self.table["segment"] == segment]
        return {row.transition: (None if pd.isna(row.conversion) else float(row.conversion))
                for row in part.itertuples()}

    def findings(self):
        """The biggest leak of all deals: the transition with the lowest eventual conversion."""
        from ..findings import Findings, percent

        overall = self.table[(self.table["segment"] == OVERALL) & self.table["conversion"].notna()]
        if not len(overall):
            return Findings()
        leak = overall.loc[overall["conversion"].idxmin()]
        start, end = leak["transition"].split("->")
        return Findings([f"The biggest leak is from {start} to {end}: of the deals that reached "
                         f"{start}, {percent(leak['conversion'])} eventually move on "
                         f"(95% CI {percent(leak['ci_low']).rstrip('%')}-{percent(leak['ci_high'])})."])

    def plot(self, *, ax=None, segment: str = OVERALL):
        """Eventual conversion of each transition of ``segment`` with its interval; returns the axes."""
        from ..results import interval_bars

        part = self.table[self.table["segment"] == segment]
        return interval_bars(part["transition"], part["conversion"], part["ci_low"], part["ci_high"],
                             xlabel="Eventual conversion", ax=ax)

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


def _outcome_groups(dataset: Dataset, by: str | None, deal: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, rows of the outcome arrays): All deals, then each ``by`` level present, sorted."""
    groups = [(OVERALL, np.arange(len(deal)))]
    if by is None:
        return groups
    codes, labels = segment_codes(dataset, by)
    row_codes = codes[deal].astype(np.int16 if len(labels) < 2**15 else np.int64)  # int16 sorts by radix
    order = np.argsort(row_codes, kind="stable")
    bounds = np.searchsorted(row_codes[order], np.arange(len(labels) + 1))
    for j, label in enumerate(labels):
        if bounds[j + 1] > bounds[j]:
            groups.append((label, order[bounds[j]:bounds[j + 1]]))
    return groups


def _by_stage(idx: np.ndarray, stage: np.ndarray, k: int) -> list[np.ndarray]:
    """``idx`` split by the stage of each row."""
    order = idx[np.argsort(stage[idx], kind="stable")]
    bounds = np.searchsorted(stage[order], np.arange(k + 1))
    return [order[bounds[a]:bounds[a + 1]] for a in range(k)]


def stage_conversion(dataset: Dataset, by: str | None = None, *, alpha: float = 0.05,
                     min_deals: int = 30) -> StageConversion:
    """Eventual stage-to-stage conversion with Aalen-Johansen CIs (see the module docstring)."""
    if not dataset.stages:
        raise WorkbenchError("The dataset declares no stages. " + fixes("list `stages` in dataset.yaml"))
    arrays = _outcome_arrays(dataset)
    labels = np.asarray(EVENTS, dtype=object)
    rows, fits = [], {}
    for label, idx in _outcome_groups(dataset, by, arrays["deal"]):
        for transition, stage, sub in zip(transitions(dataset), dataset.stages,
                                          _by_stage(idx, arrays["stage"], len(dataset.stages))):
            counts = np.bincount(arrays["event"][sub], minlength=3)
            row = {"segment": label, "transition": transition, "reached": len(sub),
                   "advanced": int(counts[1]), "dropped": int(counts[2]), "open": int(counts[0])}
            if len(sub) >= min_deals or (label == OVERALL and len(sub)):
                fit = competing_risks(arrays["days"][sub], labels[arrays["event"][sub]], CAUSES, alpha,
                                      censored="open")
                fits[(label, stage)] = fit
                end = fit.table["time"].iloc[-1]
                low, high = fit.cif_ci("advanced", end)
                row.update(conversion=float(fit.cif("advanced", end)[0]), ci_low=float(low[0]),
                           ci_high=float(high[0]), drop_off=float(fit.cif("dropped", end)[0]))
            else:
                if len(sub):
                    warnings.warn(f"{label}, {transition}: {len(sub)} deals reached it (< {min_deals}); "
                                  "no estimate.", SmallSampleWarning, stacklevel=2)
                row.update(conversion=np.nan, ci_low=np.nan, ci_high=np.nan, drop_off=np.nan)
            row["count_ratio"] = row["advanced"] / row["reached"] if row["reached"] else np.nan
            rows.append(row)
    columns = ["segment", "transition", "reached", "advanced", "dropped", "open", "conversion", "ci_low",
               "ci_high", "count_ratio", "drop_off"]
    return StageConversion(table=pd.DataFrame(rows, columns=columns), by=by, alpha=alpha, fits=fits)


# --- windowed conversion ----------------------------------------------------------------

@dataclass(frozen=True)
class WindowedConversion(Result):
    """Conversion within ``window_days`` of the first entry, on entries old enough to tell.

    Definition: for ``A->B``, of the deals whose first entry into A was at least
    ``window_days`` before ``as_of`` (``eligible``), the share that reached B, a later
    stage or Won within ``window_days`` days of that entry (``converted``). Every
    eligible entry was observed for the whole window, so this is a plain proportion with
    a Wilson interval, and no deal still in A counts as lost: it simply did not move on
    *within the window*. Entries younger than the window are left out (``too_recent``).
    ``table``: segment, transition, window_days, reached, too_recent, eligible,
    converted, conversion, ci_low, ci_high.
    """

    table: pd.DataFrame
    by: str | None
    window_days: float
    alpha: float

    def findings(self):
        """The transition of all deals that the fewest entries old enough pass within the window."""
        from ..findings import Findings, level, percent

        overall = self.table[(self.table["segment"] == OVERALL) & self.table["conversion"].notna()]
        if not len(overall):
            return Findings([f"No deal entered a stage at least {self.window_days:g} days ago."])
        slow = overall.loc[overall["conversion"].idxmin()]
        return Findings([f"Within {self.window_days:g} days, the fewest deals move on at {slow['transition']}: "
                         f"{percent(slow['conversion'])} of {slow['eligible']:,} entries old enough "
                         f"({level(self.alpha)} {percent(slow['ci_low'])} to {percent(slow['ci_high'])})."])

    def plot(self, *, ax=None, segment: str = OVERALL):
        """Conversion within the window of each transition of ``segment`` with its interval; returns the axes."""
        from ..results import interval_bars

        part = self.table[self.table["segment"] == segment]
        return interval_bars(part["transition"], part["conversion"], part["ci_low"], part["ci_high"],
                             xlabel=f"Moved on within {self.window_days:g} days", ax=ax)

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


def _windowed_rows(dataset: Dataset, arrays: dict, by: str | None, window_days: float) -> pd.DataFrame:
    cutoff = pd.Timestamp(dataset.as_of).value - window_days * DAY.value
    eligible = arrays["start"] <= cutoff
    converted = eligible & (arrays["event"] == 1) & (arrays["days"] <= window_days)
    rows = []
    for label, idx in _outcome_groups(dataset, by, arrays["deal"]):
        for transition, sub in zip(transitions(dataset), _by_stage(idx, arrays["stage"], len(dataset.stages))):
            n = int(eligible[sub].sum())
            rows.append({"segment": label, "transition": transition, "window_days": window_days,
                         "reached": len(sub), "too_recent": len(sub) - n, "eligible": n,
                         "converted": int(converted[sub].sum())})
    return pd.DataFrame(rows, columns=["segment", "transition", "window_days", "reached", "too_recent",
                                       "eligible", "converted"])


def windowed_conversion(dataset: Dataset, window_days: float = 60, by: str | None = None, *,
                        alpha: float = 0.05, min_deals: int = 30) -> WindowedConversion:
    """Share of first entries into each stage that moved on within ``window_days`` (see
    `WindowedConversion`); NaN where fewer than ``min_deals`` entries are eligible."""
    if window_days <= 0:
        raise WorkbenchError(f"`window_days` must be positive, got {window_days!r}. " + fixes("pass e.g. 60"))
    table = _windowed_rows(dataset, _outcome_arrays(dataset), by, window_days)
    enough = (table["eligible"] >= min_deals) | ((table["segment"] == OVERALL) & (table["eligible"] > 0))
    table["conversion"] = np.where(enough, table["converted"] / table["eligible"].replace(0, np.nan), np.nan)
    low, high = wilson(table["converted"], table["eligible"], alpha)
    table["ci_low"], table["ci_high"] = np.where(enough, low, np.nan), np.where(enough, high, np.nan)
    return WindowedConversion(table=table, by=by, window_days=window_days, alpha=alpha)


# --- reach and the funnel ------------------------------------------------------------------

@dataclass(frozen=True)
class StageReach(Result):
    """How far deals have got by ``as_of``, per stage.

    ``table``: segment, stage, deals (all deals of the segment), entered (deals with an
    entry into the stage), reached (deals that entered the stage or any later one, or
    won: a skip past a stage counts as reaching it, so ``reached`` never grows down the
    funnel), share (reached / deals) with a Wilson ``ci_low``/``ci_high``, still_in
    (open deals whose latest entry is this stage: not dropped, still in play). Reach is
    a count of what happened by ``as_of``: open deals may still go further.
    """

    table: pd.DataFrame
    by: str | None
    alpha: float

    def findings(self):
        """How many of all deals have reached the last stage so far."""
        from ..findings import Findings, level, percent

        overall = self.table[self.table["segment"] == OVERALL]
        if not len(overall):
            return Findings()
        last = overall.iloc[-1]
        return Findings([f"Of {last['deals']:,} deals, {percent(last['share'])} have reached {last['stage']} so far "
                         f"({level(self.alpha)} {percent(last['ci_low'])} to {percent(last['ci_high'])}); open deals "
                         "may still get further."])

    def plot(self, *, ax=None, segment: str = OVERALL):
        """Share of the deals of ``segment`` that reached each stage, with its interval; returns the axes."""
        from ..results import interval_bars

        part = self.table[self.table["segment"] == segment]
        return interval_bars(part["stage"], part["share"], part["ci_low"], part["ci_high"],
                             xlabel="Share of deals that reached the stage", ax=ax)

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


def stage_reach(dataset: Dataset, by: str | None = None, *, alpha: float = 0.05,
                min_deals: int = 30) -> StageReach:
    """Deals that reached each stage, overall and per ``by`` level with at least ``min_deals`` deals."""
    h = history(dataset)
    k = h.k
    n = h.n_deals
    progress = np.where(h.state == k + 1, -1, h.state.astype(np.int64))
    furthest = np.full(n, -1, np.int64)
    starts = np.flatnonzero(h.first)
    if len(starts):
        furthest[h.deal[starts]] = np.maximum.reduceat(progress, starts)
    entered = np.zeros((n, k + 2), bool)
    entered[h.deal, h.state] = True
    still = np.full(n, -1, np.int64)
    last = h.last
    is_open = dataset.deals["outcome"].to_numpy() == "open"
    still[h.deal[last]] = np.where(is_open[h.deal[last]] & (h.state[last] < k), h.state[last], -1)
    codes, labels = segment_codes(dataset, by)
    sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
    rows = []
    for label, j in segment_groups(labels, sizes, min_deals):
        sel = np.ones(n, bool) if j is None else codes == j
        reached = np.bincount(np.clip(furthest[sel], -1, k) + 1, minlength=k + 2)[::-1].cumsum()[::-1][1:]
        ent = entered[sel].sum(axis=0)
        sitting = np.bincount(still[sel] + 1, minlength=k + 1)[1:]
        for a, stage in enumerate(dataset.stages):
            rows.append({"segment": label, "stage": stage, "deals": int(sel.sum()), "entered": int(ent[a]),
                         "reached": int(reached[a]), "still_in": int(sitting[a])})
    table = pd.DataFrame(rows, columns=["segment", "stage", "deals", "entered", "reached", "still_in"])
    table["share"] = table["reached"] / table["deals"].replace(0, np.nan)
    table["ci_low"], table["ci_high"] = wilson(table["reached"], table["deals"], alpha)
    table = table[["segment", "stage", "deals", "entered", "reached", "share", "ci_low", "ci_high", "still_in"]]
    return StageReach(table=table, by=by, alpha=alpha)


@dataclass(frozen=True)
class Funnel(Result):
    """Reach, eventual and windowed conversion and drop-off per stage: what the funnel chart draws.

    ``table``: one row per segment and stage, the columns of `StageReach` (``share``
    renamed ``reach_share``, its interval ``reach_low``/``reach_high``), then for the
    transition out of the stage: ``transition``, ``conversion`` (eventual, censoring-aware)
    with ``conversion_low``/``conversion_high``, ``drop_off`` (eventual share lost before
    advancing), ``windowed`` (moved on within ``window_days``, on entries old enough) with
    ``windowed_low``/``windowed_high`` and ``eligible``.
    """

    table: pd.DataFrame
    by: str | None
    window_days: float
    alpha: float

    def plot(self, *, ax=None, **kwargs):
        """The funnel chart (`workbench.funnel.plots.funnel_chart`); returns the axes."""
        from .plots import funnel_chart

        return funnel_chart(self, ax=axes(ax), **kwargs)

    def findings(self):
        """The biggest leak of all deals, with the share lost there."""
        from ..findings import Findings, percent

        overall = self.table[(self.table["segment"] == OVERALL) & self.table["conversion"].notna()]
        if not len(overall):
            return Findings()
        leak = overall.loc[overall["conversion"].idxmin()]
        return Findings([f"The biggest leak is {leak['transition']}: {percent(leak['conversion'])} of the deals that "
                         f"reached {leak['stage']} eventually move on (95% CI {percent(leak['conversion_low'])} to "
                         f"{percent(leak['conversion_high'])}); {percent(leak['drop_off'])} are lost there."])

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


def funnel(dataset: Dataset, by: str | None = None, *, window_days: float = 60, alpha: float = 0.05,
           min_deals: int = 30) -> Funnel:
    """`stage_reach`, `stage_conversion` and `windowed_conversion` side by side, per stage (segments
    with fewer than ``min_deals`` deals are left out, with the warnings of those functions)."""
    reach = stage_reach(dataset, by, alpha=alpha, min_deals=min_deals).table
    eventual = stage_conversion(dataset, by, alpha=alpha, min_deals=min_deals).table
    windowed = windowed_conversion(dataset, window_days, by, alpha=alpha, min_deals=min_deals).table
    stage_of = dict(zip(transitions(dataset), dataset.stages))
    eventual = eventual.assign(stage=eventual["transition"].map(stage_of)).rename(
        columns={"ci_low": "conversion_low", "ci_high": "conversion_high"})
    windowed = windowed.assign(stage=windowed["transition"].map(stage_of)).rename(
        columns={"conversion": "windowed", "ci_low": "windowed_low", "ci_high": "windowed_high"})
    table = (reach.rename(columns={"share": "reach_share", "ci_low": "reach_low", "ci_high": "reach_high"})
             .merge(eventual[["segment", "stage", "transition", "conversion", "conversion_low", "conversion_high",
                              "drop_off"]], on=["segment", "stage"], how="left")
             .merge(windowed[["segment", "stage", "windowed", "windowed_low", "windowed_high", "eligible"]],
                    on=["segment", "stage"], how="left"))
    return Funnel(table=table, by=by, window_days=window_days, alpha=alpha)


# --- cohorts ---------------------------------------------------------------------------------

#: The label of the win-from-creation column of the cohort table.
CREATED_TO_WON = "Created->Won"


@dataclass(frozen=True)
class CohortConversion(Result):
    """Eventual conversion per creation cohort, so a change in the process shows up.

    ``table``: cohort (e.g. ``2024-03``), cohort_start, transition (every headline
    transition, then ``Created->Won``: the deal's eventual win probability from creation),
    reached (deals of the cohort that entered the stage; all its deals for
    ``Created->Won``), conversion with ``ci_low``/``ci_high`` (Aalen-Johansen at the end of
    follow-up, as in `stage_conversion`), follow_up_days (from the cohort's last day to
    ``as_of``) and mature (``follow_up_days >= mature_days``). For young cohorts the
    estimate is the conversion *so far*: a conversion that takes longer than the cohort has
    been observed cannot be seen yet, so compare mature cohorts.
    """

    table: pd.DataFrame
    freq: str
    mature_days: float
    alpha: float

    def wide(self, value: str = "conversion") -> pd.DataFrame:
        """Cohorts (rows) by transitions (columns)."""
        wide = self.table.pivot(index="cohort", columns="transition", values=value)
        return wide[list(dict.fromkeys(self.table["transition"]))]

    def plot(self, *, ax=None, **kwargs):
        """The cohort heatmap (`workbench.funnel.plots.cohort_heatmap`); returns the axes."""
        from .plots import cohort_heatmap

        return cohort_heatmap(self, ax=axes(ax), **kwargs)

    def findings(self):
        """How many cohorts are mature, and the range of the first transition's conversion among them."""
        from ..findings import Findings, percent

        cohorts = self.table.drop_duplicates("cohort")
        out = Findings([f"{int(cohorts['mature'].sum())} of {len(cohorts)} cohorts were followed for at least "
                        f"{self.mature_days:g} days; younger cohorts show conversion so far, so compare mature ones."])
        first = self.table["transition"].iloc[0]
        mature = self.table[self.table["mature"] & (self.table["transition"] == first)].dropna(subset=["conversion"])
        if len(mature) >= 2:
            low, high = mature.loc[mature["conversion"].idxmin()], mature.loc[mature["conversion"].idxmax()]
            out.append(f"Among mature cohorts, {first} ranged from {percent(low['conversion'])} ({low['cohort']}) "
                       f"to {percent(high['conversion'])} ({high['cohort']}).")
        return out

    def _repr_html_(self) -> str:
        return tables.to_html(self.wide())


def cohort_conversion(dataset: Dataset, *, freq: str = "M", mature_days: float = 180, alpha: float = 0.05,
                      min_deals: int = 30) -> CohortConversion:
    """Eventual conversion of each transition per creation period (``freq``: a pandas period
    alias, ``M`` months, ``Q`` quarters); cells with fewer than ``min_deals`` deals are NaN."""
    from ..cycle.times import durations

    arrays = _outcome_arrays(dataset)
    periods = dataset.deals["created_at"].dt.to_period(freq)
    cohort = pd.Categorical(periods)
    cohort_codes = cohort.codes.astype(np.int64)
    labels = np.asarray(EVENTS, dtype=object)
    close = durations(dataset)  # every deal, in the deals' order: cohort_codes apply
    as_of = pd.Timestamp(dataset.as_of)
    rows = []
    row_cohort = cohort_codes[arrays["deal"]]
    for c, period in enumerate(cohort.categories):
        follow_up = max((as_of - period.end_time.normalize()) / DAY, 0.0)
        base = {"cohort": str(period), "cohort_start": period.start_time, "follow_up_days": follow_up,
                "mature": follow_up >= mature_days}
        idx = np.flatnonzero(row_cohort == c)
        for transition, sub in zip(transitions(dataset), _by_stage(idx, arrays["stage"], len(dataset.stages))):
            row = {**base, "transition": transition, "reached": len(sub)}
            if len(sub) >= min_deals:
                fit = competing_risks(arrays["days"][sub], labels[arrays["event"][sub]], CAUSES, alpha,
                                      censored="open")
                row.update(_end_of(fit, "advanced"))
            rows.append(row)
        mine = cohort_codes == c
        row = {**base, "transition": CREATED_TO_WON, "reached": int(mine.sum())}
        if mine.sum() >= min_deals:
            fit = competing_risks(close["days"].to_numpy()[mine], close["event"].to_numpy()[mine], ("won", "lost"),
                                  alpha, censored="open")
            row.update(_end_of(fit, "won"))
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=["cohort", "cohort_start", "transition", "reached", "conversion",
                                                "ci_low", "ci_high", "follow_up_days", "mature"])
    return CohortConversion(table=table, freq=freq, mature_days=mature_days, alpha=alpha)


def _end_of(fit, cause: str) -> dict[str, float]:
    """Cumulative incidence of ``cause`` at the end of follow-up, with its interval."""
    end = fit.table["time"].iloc[-1]
    low, high = fit.cif_ci(cause, end)
    return {"conversion": float(fit.cif(cause, end)[0]), "ci_low": float(low[0]), "ci_high": float(high[0])}


# --- segment comparison ----------------------------------------------------------------------

@dataclass(frozen=True)
class ConversionComparison(Result):
    """Each segment against the rest of the deals, per transition, on windowed conversion.

    The test is on the *windowed* conversion (`WindowedConversion`): it is a plain
    proportion of entries that were all observed for the whole window, so a two-proportion
    test is valid under censoring; the eventual conversion of young deals is estimated,
    not counted, and a count-based test on it would be biased. ``table`` (one row per
    transition and segment): eligible, converted, conversion, rest_eligible,
    rest_converted, rest_conversion, difference (segment - rest), statistic (pooled
    two-proportion z), p_value, p_adjusted (``correction`` over every row). ``overall``:
    per transition a chi-square test of all segments (``chi2``, ``df``, ``p_value``,
    ``p_adjusted``). Segments or rests with fewer than ``min_deals`` eligible entries are
    not tested.
    """

    table: pd.DataFrame
    overall: pd.DataFrame
    by: str
    window_days: float
    alpha: float
    correction: str

    def findings(self, alpha: float | None = None, *, limit: int | None = 8, unit=None):
        """Sentences for the differences with adjusted p below ``alpha`` (the ``limit`` largest;
        None: all), then a count of the rest; the window in ``unit`` (days by default)."""
        from ..findings import Findings, p_value, percent
        from ..timeunits import DAYS

        unit = unit or DAYS
        alpha = self.alpha if alpha is None else alpha
        out = Findings()
        hits = self.table[self.table["p_adjusted"] < alpha]
        hits = hits.iloc[np.argsort(-hits["difference"].abs().to_numpy(), kind="stable")]
        shown = hits if limit is None else hits.head(limit)
        for row in shown.itertuples():
            direction = "lower" if row.difference < 0 else "higher"
            out.append(f"{row.segment} converts {row.transition} {abs(row.difference) * 100:.0f} points {direction} "
                       f"than the rest within {unit(self.window_days)} ({percent(row.conversion)} vs "
                       f"{percent(row.rest_conversion)}; adjusted {p_value(row.p_adjusted)}).")
        if len(shown) < len(hits):
            out.append(f"{len(hits) - len(shown)} more differences are statistically significant "
                       "(adjusted p < {alpha:g}); the table lists them.".replace("{alpha:g}", f"{alpha:g}"))
        tested = int(self.table["p_adjusted"].notna().sum())
        rest = tested - len(hits)
        if tested == 0:
            out.append(f"No `{self.by}` value had enough eligible entries to be compared.")
        elif rest:
            lead = f"The other {rest}" if len(hits) else f"All {rest}"
            out.append(f"{lead} comparisons of a `{self.by}` value against the rest show no statistically "
                       f"significant difference (corrected p >= {alpha:g}).")
        return out

    def plot(self, *, ax=None):
        """Each tested segment's difference from the rest, per transition, as bars; returns the axes."""
        from ..results import interval_bars

        tested = self.table[self.table["p_adjusted"].notna()]
        labels = [f"{s}: {t}" for s, t in zip(tested["segment"], tested["transition"])]
        return interval_bars(labels, tested["difference"], xlabel=f"Conversion within {self.window_days:g} days, "
                             "segment minus the rest", ax=ax)

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


def compare_conversion(dataset: Dataset, by: str, *, window_days: float = 60, alpha: float = 0.05,
                       min_deals: int = 30, correction: str = "fdr_bh") -> ConversionComparison:
    """Two-proportion z-tests (each ``by`` value against the rest) and chi-square tests
    (all values) of the windowed conversion per transition, with p-values corrected by
    statsmodels' ``multipletests`` (``correction``; Benjamini-Hochberg by default)."""
    from scipy.stats import chi2_contingency
    from statsmodels.stats.proportion import proportions_ztest

    counts = _windowed_rows(dataset, _outcome_arrays(dataset), by, window_days)
    total = counts[counts["segment"] == OVERALL].set_index("transition")
    levels = counts[counts["segment"] != OVERALL].copy()
    levels["conversion"] = levels["converted"] / levels["eligible"].replace(0, np.nan)
    levels["rest_eligible"] = levels["transition"].map(total["eligible"]) - levels["eligible"]
    levels["rest_converted"] = levels["transition"].map(total["converted"]) - levels["converted"]
    levels["rest_conversion"] = levels["rest_converted"] / levels["rest_eligible"].replace(0, np.nan)
    levels["difference"] = levels["conversion"] - levels["rest_conversion"]
    stat, p = np.full(len(levels), np.nan), np.full(len(levels), np.nan)
    for i, row in enumerate(levels.itertuples()):
        if row.eligible >= min_deals and row.rest_eligible >= min_deals:
            pooled = (row.converted + row.rest_converted) / (row.eligible + row.rest_eligible)
            if 0 < pooled < 1:
                stat[i], p[i] = proportions_ztest([row.converted, row.rest_converted],
                                                  [row.eligible, row.rest_eligible])
    levels["statistic"], levels["p_value"] = stat, p
    levels["p_adjusted"] = _adjust(p, correction)
    overall = []
    for transition, part in levels.groupby("transition", sort=False):
        part = part[part["eligible"] >= min_deals]
        table = np.column_stack([part["converted"], part["eligible"] - part["converted"]])
        row = {"transition": transition, "segments": len(part), "chi2": np.nan, "df": np.nan, "p_value": np.nan}
        if len(part) >= 2 and (table.sum(axis=0) > 0).all():
            res = chi2_contingency(table, correction=False)
            row.update(chi2=float(res[0]), df=int(res[2]), p_value=float(res[1]))
        overall.append(row)
    overall = pd.DataFrame(overall, columns=["transition", "segments", "chi2", "df", "p_value"])
    overall["p_adjusted"] = _adjust(overall["p_value"].to_numpy(float), correction)
    columns = ["transition", "segment", "eligible", "converted", "conversion", "rest_eligible", "rest_converted",
               "rest_conversion", "difference", "statistic", "p_value", "p_adjusted"]
    return ConversionComparison(table=levels[columns].reset_index(drop=True), overall=overall, by=by,
                                window_days=window_days, alpha=alpha, correction=correction)


def _adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Corrected p-values where ``p`` is known (NaN elsewhere)."""
    from statsmodels.stats.multitest import multipletests

    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out
