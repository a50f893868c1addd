"""Open-pipeline forecast: which open deals win within the next window, and its backtest.

Every open deal gets p = P(won within ``window`` days | what is known at ``as_of``),
estimated from the closed and the open deals (won and lost compete, open deals are
censored at ``as_of``) on one of two clocks (see `forecast_open`): the deal's age, as
a conditional cumulative incidence of an Aalen-Johansen fit::

    p = (F_won(a + window) - F_won(a)) / S(a)

or its days in its current stage, as a landmark estimate among the visits that were
in that stage as long. Summing the p's gives the expected number of wins. `backtest`
replays the forecast at an earlier cut-off and compares it with what happened, beside
a naive baseline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr

from .. import tables
from ..dataset.model import Dataset
from ..exceptions import WorkbenchError, fixes
from ..results import Result, axes
from ..stats.survival import CompetingRisks, competing_risks
from .dwell import DAY_NS, visit_arrays
from .times import CAUSES


def conditional_win(fit: CompetingRisks, t, window: float) -> np.ndarray:
    """P(won in (t, t + window] | no close by t) = (F_won(t + window) - F_won(t)) / S(t).

    Zero where S(t) = 0 (no deal of the fit was still open that late).
    """
    t = np.asarray(t, dtype=float)
    s = fit.survival(t)
    gain = fit.cif("won", t + window) - fit.cif("won", t)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(s > 0, gain / s, 0.0)
    return np.clip(p, 0.0, 1.0)


@dataclass(frozen=True)
class StageClock:
    """Landmark estimate of P(won within ``window`` | in this stage for u days), any u.

    ::

        p(u) = G(u) / n(u) * sum over won visits i with c_i - window <= u < d_i of 1 / G(c_i)

    with n(u) the visits still in the stage u days after entry, d_i the days visit i
    spent in the stage, c_i the days from its entry to the win, and G(t) the share of
    the stage's visits followed for at least t days (entered t or more days before
    ``as_of``). Built from every visit to one stage (see `forecast_open`); the arrays are
    sorted for `numpy.searchsorted`, so each u costs O(log n).
    """

    stage: str
    window: float
    n_visits: int
    left_days: np.ndarray  # dwell of the visits that left the stage, sorted
    open_days: np.ndarray  # time in stage of the visits still in it at as_of, sorted
    followed: np.ndarray  # follow-up as_of - entry of every visit, sorted
    starts: np.ndarray  # c - window of the wins (interval starts), sorted
    start_weight: np.ndarray  # 0, then the cumulative 1 / G(c) in `starts` order
    ends: np.ndarray  # days in stage of the wins (interval ends), sorted
    end_weight: np.ndarray  # 0, then the cumulative 1 / G(c) in `ends` order

    def at_risk(self, u) -> np.ndarray:
        """Visits still in the stage ``u`` days after entry (the landmark population)."""
        u = np.asarray(u, dtype=float)
        return ((len(self.left_days) - np.searchsorted(self.left_days, u, side="right"))
                + (len(self.open_days) - np.searchsorted(self.open_days, u, side="left")))

    def p_win(self, u) -> np.ndarray:
        """P(won in (u, u + window] days after entry | still in the stage at u)."""
        u = np.asarray(u, dtype=float)
        followed = (self.n_visits - np.searchsorted(self.followed, u, side="left")) / self.n_visits
        # A win c days after entry, d days in the stage, counts for c - window <= u < d.
        wins = (self.start_weight[np.searchsorted(self.starts, u, side="right")]
                - self.end_weight[np.searchsorted(self.ends, u, side="right")])
        n = self.at_risk(u)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(n > 0, followed * wins / n, np.nan)
        return np.clip(p, 0.0, 1.0)


def stage_clock(stage: str, window: float, days, left, to_close, won, followed) -> StageClock:
    """The landmark estimator of one stage from its visits.

    Parameters
    ----------
    days, left : arrays
        Time in the stage and whether the visit ended (else censored at ``as_of``).
    to_close, won : arrays
        Days from the entry to the deal's close, and whether it was won (closed and won).
    followed : array
        Days from the entry to ``as_of``: the administrative censoring time, known for
        every visit.
    """
    followed = np.sort(np.asarray(followed, dtype=float))
    # G(t) = P(followed >= t): a close t days after entry is in the data with this probability.
    g = (len(followed) - np.searchsorted(followed, to_close[won], side="left")) / len(followed)
    start, end, weight = to_close[won] - window, days[won], 1.0 / g
    keep = start < end  # else the win is more than a window after the visit ended: it counts for no u
    start, end, weight = start[keep], end[keep], weight[keep]
    by_start, by_end = np.argsort(start, kind="stable"), np.argsort(end, kind="stable")
    return StageClock(stage=stage, window=float(window), n_visits=len(followed),
                      left_days=np.sort(days[left]), open_days=np.sort(days[~left]), followed=followed,
                      starts=start[by_start], start_weight=np.r_[0.0, np.cumsum(weight[by_start])],
                      ends=end[by_end], end_weight=np.r_[0.0, np.cumsum(weight[by_end])])


@dataclass(frozen=True)
class PipelineForecast(Result):
    """Per open deal, the probability of winning within ``window`` days of ``as_of``.

    ``deals``: ``deal_id``, ``stage`` (current stage, None when unknown), ``age_days``,
    ``days_in_stage``, ``p_win``, ``amount``, ``expected_amount`` (p_win x amount),
    ``basis`` (``stage`` or ``age``: which clock gave p_win) and ``comparable`` (how many
    visits the stage clock compared the deal with). ``age_fit`` is the Aalen-Johansen fit
    on time since creation; ``stage_clocks`` maps each stage to its `StageClock`.
    """

    deals: pd.DataFrame
    window: float
    as_of: pd.Timestamp
    alpha: float
    age_fit: CompetingRisks
    stage_clocks: dict[str, StageClock] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def totals(self) -> pd.DataFrame:
        """Expected wins and won amount within the window, with a normal-approximation interval.

        The number of wins is a sum of independent Bernoullis: mean sum(p), variance
        sum(p (1 - p)); the amount likewise with weights: mean sum(a p), variance
        sum(a^2 p (1 - p)), over the deals with an amount (``deals`` counts them). The
        interval takes the p's as known, so it understates the uncertainty: the curves
        they come from are estimates too, and deals are not independent (one market,
        one quarter).
        """
        z = norm.ppf(1 - self.alpha / 2)
        p = self.deals["p_win"].to_numpy()
        amount = self.deals["amount"].to_numpy(dtype=float)
        rows = []
        for quantity, weight in (("wins", np.ones_like(p)), ("amount", amount)):
            keep = ~np.isnan(weight)
            w, q = weight[keep], p[keep]
            mean = float(np.sum(w * q))
            sd = float(np.sqrt(np.sum(w**2 * q * (1 - q))))
            rows.append({"quantity": quantity, "expected": mean, "sd": sd, "low": max(mean - z * sd, 0.0),
                         "high": mean + z * sd, "deals": int(keep.sum())})
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """Per current stage (``unknown`` when the history does not say): open deals,
        mean p_win, expected wins and expected amount in the window."""
        frame = self.deals.assign(stage=self.deals["stage"].fillna("unknown"))
        out = frame.groupby("stage", sort=False).agg(open_deals=("deal_id", "size"), mean_p_win=("p_win", "mean"),
                                                     expected_wins=("p_win", "sum"),
                                                     expected_amount=("expected_amount", "sum"))
        return out.reset_index()

    def stage_curves(self, days: Sequence[float] = tuple(range(0, 181, 5))) -> pd.DataFrame:
        """Tidy: ``stage``, ``days_in_stage``, ``p_win`` within the window, ``comparable`` visits.

        How a deal's chance of closing won within the window changes as it sits in a stage.
        """
        days = np.asarray(days, dtype=float)
        return pd.concat([pd.DataFrame({"stage": name, "days_in_stage": days, "p_win": clock.p_win(days),
                                        "comparable": clock.at_risk(days)})
                          for name, clock in self.stage_clocks.items()], ignore_index=True)

    @property
    def table(self) -> pd.DataFrame:
        """The per-stage `summary`: open deals, mean p_win, expected wins and amount in the window."""
        return self.summary()

    def findings(self, backtest=None, *, unit=None, currency: str | None = None):
        """Expected wins and amount (in ``currency`` when given) in words (`workbench.findings.forecast_findings`)."""
        from ..findings import forecast_findings

        options = {"currency": currency} if unit is None else {"unit": unit, "currency": currency}
        return forecast_findings(self, backtest, **options)

    def plot(self, *, ax=None):
        """Expected wins within the window per current stage, as bars; returns the axes."""
        from ..plots import theme

        summary = self.summary()
        with theme():
            ax = axes(ax)
            ax.barh(summary["stage"].astype(str), summary["expected_wins"])
            ax.invert_yaxis()
            ax.set_xlabel(f"Expected wins within {self.window:g} days")
            ax.set_ylabel("Current stage")
        return ax

    def _repr_html_(self) -> str:
        head = (f"<p>{len(self.deals)} open deals as of {self.as_of.date()}; "
                f"wins expected within {self.window:g} days:</p>")
        notes = "".join(f"<p>{n}</p>" for n in self.notes)
        return (head + tables.to_html(self.totals(), index=False) + tables.to_html(self.summary(), index=False)
                + notes)


def forecast_open(dataset: Dataset, *, window: float = 90, by_stage: bool = True, alpha: float = 0.05,
                  min_deals: int = 50) -> PipelineForecast:
    """Probability that each open deal is won within the next ``window`` days.

    Two clocks:

    - ``age`` (used for every deal when ``by_stage=False``): time since ``created_at``,
      an Aalen-Johansen fit on all deals (won and lost compete, open deals censored at
      ``as_of``). A deal of age a gets p = (F_won(a + window) - F_won(a)) / S(a): being
      open at a is all the age clock knows, so this is exact for it.
    - ``stage`` (``by_stage=True``): the deal's current stage is the stage of its latest
      history row and u, its days in stage, the time since that row (the current visit:
      a deal that went back to a stage starts a new visit). p is the share of visits to
      that stage, of any deal, first visit or not, that were still in the stage u days
      after their entry (the landmark population) and then closed won within the next
      ``window`` days: a landmark estimate (van Houwelingen 2007), conditioning on the
      deal still being in its stage, so a deal stuck in Proposal for 60 days is compared
      with visits stuck there as long, not with visits that had moved on. Closes after
      ``as_of`` are unseen: each observed win counts 1 / G(c), with G(c) the share of
      the stage's visits followed for at least c days (c: days from the entry to the
      win; the follow-up ``as_of`` - entry is known for every visit, so G is exact
      counting, the inverse-probability-of-censoring weight), scaled by G(u) for the
      landmark population, which was followed for u days. Exact at every u, with no
      binning, in O(n log n) per stage (`StageClock`).

    Fallbacks to the age clock (``basis`` says which clock each deal got): deals with no
    current open stage (no history, or an open deal whose latest row is a won/lost
    stage), stages with fewer than ``min_deals`` visits, and deals with fewer than
    ``min_deals`` comparable visits (stuck longer than almost every earlier visit).

    Both clocks assume that deals entering at different times behave alike (as every
    Kaplan-Meier does); a drifting process makes the forecast lag.

    Parameters
    ----------
    window : float
        Days ahead.
    by_stage : bool
        Use the stage clock where the current stage is known.
    alpha : float
        1 - confidence level of the intervals in `PipelineForecast.totals`.
    min_deals : int
        Fewest visits a stage, and a deal's landmark population, need for the stage clock.

    Returns
    -------
    PipelineForecast
    """
    if not window > 0:
        raise WorkbenchError(f"`window` must be a positive number of days, got {window!r}. "
                             + fixes("pass e.g. window=90"))
    deals = dataset.deals
    # The clock of `cycle.durations`, without copying the deal table.
    created = deals["created_at"].to_numpy("datetime64[ns]").view("i8")
    closed_at = deals["closed_at"].to_numpy("datetime64[ns]")
    end = np.where(np.isnat(closed_at), dataset.as_of.value, closed_at.view("i8"))
    days = np.maximum(end - created, 0) / DAY_NS
    outcome = deals["outcome"].to_numpy()
    age_fit = competing_risks(days, outcome, CAUSES, alpha, censored="open")
    rows = np.flatnonzero(outcome == "open")
    age = days[rows]
    p = conditional_win(age_fit, age, window)
    n = len(rows)
    stage, in_stage = np.full(n, None, dtype=object), np.full(n, np.nan)
    comparable, basis = np.zeros(n, np.int64), np.full(n, "age", dtype=object)
    clocks, notes = {}, []
    if by_stage and dataset.stages:
        stage, in_stage, p_stage, comparable, clocks = _stage_forecast(dataset, rows, window, min_deals)
        use = ~np.isnan(p_stage)
        p = np.where(use, p_stage, p)
        basis[use] = "stage"
        few = [name for name in dataset.stages if name not in clocks]
        if few:
            notes.append(f"Stages with fewer than {min_deals} visits use the age clock: {few}.")
        fallback = int((~use & (stage != None)).sum())  # noqa: E711
        if fallback:
            notes.append(f"{fallback} open deals have fewer than {min_deals} comparable visits in their stage "
                         "(or their stage has too few); they use the age clock.")
        unknown = int((stage == None).sum())  # noqa: E711
        if unknown:
            notes.append(f"{unknown} open deals have no current open stage in the history; they use the age clock.")
    amount = deals["amount"].to_numpy(dtype=float)[rows]
    out = pd.DataFrame({"deal_id": deals["deal_id"].to_numpy()[rows], "stage": stage, "age_days": age,
                        "days_in_stage": in_stage, "p_win": p, "amount": amount, "expected_amount": p * amount,
                        "basis": basis, "comparable": comparable})
    return PipelineForecast(deals=out, window=float(window), as_of=dataset.as_of, alpha=alpha, age_fit=age_fit,
                            stage_clocks=clocks, notes=notes)


def _stage_forecast(dataset: Dataset, rows: np.ndarray, window: float, min_deals: int):
    """Current stage, days in it and stage-clock p_win of the open deals ``rows`` (NaN: use the age clock)."""
    v = visit_arrays(dataset)
    deals = dataset.deals
    closed_at = deals["closed_at"].to_numpy("datetime64[ns]")
    closed = ~np.isnat(closed_at)[v.deal]
    end = np.where(closed, closed_at.view("i8")[v.deal], dataset.as_of.value)
    to_close = np.maximum(end - v.start, 0) / DAY_NS
    followed = np.maximum(dataset.as_of.value - v.start, 0) / DAY_NS
    won = closed & (deals["outcome"].to_numpy()[v.deal] == "won")
    position = np.full(len(deals), -1)
    position[rows] = np.arange(len(rows))
    n = len(rows)
    stage = np.full(n, None, dtype=object)
    in_stage = np.full(n, np.nan)
    p = np.full(n, np.nan)
    at_risk = np.zeros(n, np.int64)
    clocks = {}
    order = np.argsort(v.stage, kind="stable")
    bounds = np.searchsorted(v.stage[order], np.arange(len(dataset.stages) + 1))
    for s, name in enumerate(dataset.stages):
        at = order[bounds[s]:bounds[s + 1]]
        current = at[v.current[at]]
        who = position[v.deal[current]]
        stage[who] = name
        in_stage[who] = v.days[current]
        if len(at) < min_deals:
            continue
        clock = stage_clock(name, window, v.days[at], v.left[at], to_close[at], won[at], followed[at])
        clocks[name] = clock
        at_risk[who] = clock.at_risk(in_stage[who])
        p[who] = np.where(at_risk[who] >= min_deals, clock.p_win(in_stage[who]), np.nan)
    return stage, in_stage, p, at_risk, clocks


@dataclass(frozen=True)
class Backtest(Result):
    """A forecast made at ``cut_at`` against what happened in the next ``window`` days.

    ``deals`` is the forecast's table plus ``won`` (1: won within the window).
    ``calibration`` has one row per predicted-probability bin: ``bin``, ``p_low``,
    ``p_high``, ``n``, ``mean_predicted``, ``observed_rate`` with its Wilson interval
    ``observed_low``/``observed_high``, ``expected_wins``, ``actual_wins``. The naive
    baseline gives every open deal ``naive_rate``, the win rate of the deals closed by
    ``cut_at``.
    """

    cut_at: pd.Timestamp
    window: float
    deals: pd.DataFrame
    calibration: pd.DataFrame
    expected_wins: float
    wins_sd: float
    actual_wins: int
    brier: float
    naive_rate: float
    naive_expected_wins: float
    naive_brier: float
    forecast: PipelineForecast

    @property
    def spearman(self) -> float:
        """Rank correlation of observed rate with mean predicted probability across bins."""
        cal = self.calibration
        return float(spearmanr(cal["mean_predicted"], cal["observed_rate"]).statistic) if len(cal) > 1 else np.nan

    def summary(self) -> pd.DataFrame:
        """Forecast and naive baseline side by side: expected vs actual wins, Brier score."""
        p = np.full(len(self.deals), self.naive_rate)
        naive_sd = float(np.sqrt(np.sum(p * (1 - p))))
        rows = []
        for model, expected, sd, brier in (("forecast", self.expected_wins, self.wins_sd, self.brier),
                                          ("naive", self.naive_expected_wins, naive_sd, self.naive_brier)):
            rows.append({"model": model, "open_deals": len(self.deals), "expected_wins": expected, "sd": sd,
                         "actual_wins": self.actual_wins, "error": expected - self.actual_wins,
                         "error_in_sd": (expected - self.actual_wins) / sd if sd > 0 else np.nan,
                         "brier": brier})
        return pd.DataFrame(rows)

    @property
    def table(self) -> pd.DataFrame:
        """The `calibration` table, one row per predicted-probability bin."""
        return self.calibration

    def findings(self, *, unit=None):
        """Expected against actual wins and the calibration in words (`workbench.findings.backtest_findings`)."""
        from ..findings import backtest_findings

        return backtest_findings(self) if unit is None else backtest_findings(self, unit=unit)

    def plot(self, *, ax=None):
        """Observed against predicted win rate per bin (`workbench.plots.calibration`); returns the axes."""
        from ..plots import calibration

        return calibration(self, ax=axes(ax))

    def _repr_html_(self) -> str:
        head = (f"<p>Forecast at {self.cut_at.date()} of wins within {self.window:g} days, "
                f"against what happened.</p>")
        return (head + tables.to_html(self.summary(), index=False)
                + tables.to_html(self.calibration, index=False))


def backtest(dataset: Dataset, cut_at, *, window: float = 90, bins: int = 10, strategy: str = "quantile",
             by_stage: bool = True, alpha: float = 0.05, min_deals: int = 50) -> Backtest:
    """Forecast the deals open at ``cut_at`` from the data as it was then; score it.

    A deal counts as won (1) when the full dataset has it won with
    ``cut_at < closed_at <= cut_at + window``, else 0.

    Parameters
    ----------
    cut_at : date-like
        The earlier cut-off; ``cut_at + window`` must not pass the data's ``as_of``.
    bins : int
        Number of predicted-probability bins of the calibration table.
    strategy : {"quantile", "uniform"}
        ``quantile``: bins of (nearly) equal counts, by the rank of the prediction;
        ``uniform``: equal-width bins on [0, 1] (empty bins are left out).

    Raises
    ------
    WorkbenchError
        The window would run past ``as_of``, or no deal is open at ``cut_at``.
    """
    cut_at = pd.Timestamp(cut_at)
    end = cut_at + pd.Timedelta(days=window)
    if end > dataset.as_of:
        latest = (dataset.as_of - pd.Timedelta(days=window)).date()
        raise WorkbenchError(
            f"Cannot backtest at {cut_at.date()} with a {window:g}-day window: the outcome is known only up to "
            f"{dataset.as_of.date()}, before {end.date()}. "
            + fixes(f"cut at {latest} or earlier", "shorten `window`"))
    if strategy not in ("quantile", "uniform"):
        raise WorkbenchError(f"Unknown `strategy` {strategy!r}. " + fixes("use 'quantile' or 'uniform'"))
    past = dataset.cut(cut_at)
    forecast = forecast_open(past, window=window, by_stage=by_stage, alpha=alpha, min_deals=min_deals)
    if forecast.deals.empty:
        raise WorkbenchError(f"No deal was open at {cut_at.date()}: nothing to backtest. "
                             + fixes("cut at a later date"))
    full = dataset.deals
    where = pd.Index(full["deal_id"]).get_indexer(forecast.deals["deal_id"])
    closed_at = full["closed_at"].to_numpy("datetime64[ns]")[where]
    won = ((full["outcome"].to_numpy()[where] == "won") & (closed_at > cut_at.to_datetime64())
           & (closed_at <= end.to_datetime64())).astype(int)
    deals = forecast.deals.assign(won=won)
    p = deals["p_win"].to_numpy()
    outcomes = past.deals["outcome"]
    n_closed = int(outcomes.isin(CAUSES).sum())
    naive_rate = float((outcomes == "won").sum() / n_closed) if n_closed else np.nan
    return Backtest(
        cut_at=cut_at, window=float(window), deals=deals,
        calibration=calibration_table(p, won, bins, strategy, alpha),
        expected_wins=float(p.sum()), wins_sd=float(np.sqrt(np.sum(p * (1 - p)))), actual_wins=int(won.sum()),
        brier=float(np.mean((p - won) ** 2)), naive_rate=naive_rate, naive_expected_wins=naive_rate * len(p),
        naive_brier=float(np.mean((naive_rate - won) ** 2)), forecast=forecast)


def calibration_table(p, y, bins: int = 10, strategy: str = "quantile", alpha: float = 0.05) -> pd.DataFrame:
    """Predicted against observed per bin of predicted probability, with Wilson intervals."""
    from statsmodels.stats.proportion import proportion_confint

    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    if strategy == "quantile":
        code = np.empty(len(p), np.int64)
        code[np.argsort(p, kind="stable")] = np.arange(len(p)) * bins // max(len(p), 1)
    else:
        code = np.minimum((p * bins).astype(np.int64), bins - 1)
    n = np.bincount(code, minlength=bins)
    keep = n > 0
    count = np.bincount(code, weights=y, minlength=bins)
    low, high = proportion_confint(count[keep], n[keep], alpha=alpha, method="wilson")
    lo_p = np.full(bins, np.inf)
    hi_p = np.full(bins, -np.inf)
    np.minimum.at(lo_p, code, p)
    np.maximum.at(hi_p, code, p)
    return pd.DataFrame({
        "bin": np.flatnonzero(keep) + 1, "p_low": lo_p[keep], "p_high": hi_p[keep], "n": n[keep],
        "mean_predicted": np.bincount(code, weights=p, minlength=bins)[keep] / n[keep],
        "observed_rate": count[keep] / n[keep], "observed_low": low, "observed_high": high,
        "expected_wins": np.bincount(code, weights=p, minlength=bins)[keep], "actual_wins": count[keep].astype(int),
    })
