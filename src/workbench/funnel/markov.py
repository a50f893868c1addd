"""The funnel as an absorbing Markov chain: from each stage, the odds of winning and the days left.

States are the open stages (transient) and Won and Lost (absorbing). A *visit* to an
open stage runs from an entry into it to the next entry into another state (repeated
rows of the same stage continue the visit); a visit still running at ``as_of`` is
censored there. The transition matrix ``P`` is estimated censoring-aware: row ``a`` is
the Aalen-Johansen cumulative incidence, at the end of follow-up, of each destination
among the visits to ``a`` (destinations compete), scaled to sum to 1. Plain shares of
the observed moves would over-weight the destinations that come quickly (in the sample
data, losses take longer to be recorded than advances).

With ``Q`` the open-to-open block and ``R`` the open-to-absorbing block, the fundamental
matrix ``N = (I - Q)^-1`` gives the expected number of visits to each stage, ``B = N R``
the probability of ending Won (or Lost) from each stage (rows of ``B`` sum to 1), and
``N m`` the expected days until the deal closes, with ``m`` the mean days of a visit to
each stage (Kaplan-Meier restricted mean, censoring-aware).

The chain is memoryless: from a stage, it gives every deal the same odds whatever its
path so far. Where history matters (deals that went back are weaker, a mix of segments
that advance at different rates) the chain's numbers differ from what cohorts of real
deals did; `markov_check` measures how much on mature cohorts. The standard errors of
the win probabilities (delta method, each row of ``P`` a multinomial over its completed
moves) treat visits as independent, so they are somewhat too small when the same deal
visits a stage again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from .. import tables
from ..cycle.dwell import restricted_mean
from ..dataset.groups import OVERALL, segment_codes, segment_groups, wilson
from ..dataset.history import LOST, WON, history
from ..dataset.model import Dataset
from ..stats.survival import competing_risks
from ..results import Result

DAY_NS = 86_400 * 10**9
STILL_IN = "(still in stage)"


@dataclass(frozen=True)
class Visits:
    """Every visit to an open stage: ``deal`` (row of deals), ``stage``, ``days`` and ``to``
    (state code of the destination; -1 when censored at ``as_of`` or at ``closed_at``)."""

    deal: np.ndarray
    stage: np.ndarray
    days: np.ndarray
    to: np.ndarray


def visits(dataset: Dataset) -> Visits:
    """Visits to open stages from the cleaned history (vectorized)."""
    h = history(dataset)
    keep = h.first.copy()
    keep[1:] |= h.state[1:] != h.state[:-1]
    deal, state, time = h.deal[keep], h.state[keep], h.time[keep]
    last = np.ones(len(deal), bool)
    last[:-1] = deal[1:] != deal[:-1]
    rows = np.flatnonzero(state < h.k)
    nxt = np.minimum(rows + 1, len(deal) - 1)
    has_next = ~last[rows]
    closed_at = dataset.deals["closed_at"].to_numpy("datetime64[ns]").view("i8")[deal[rows]]
    closed = dataset.deals["outcome"].to_numpy()[deal[rows]] != "open"
    end = np.where(has_next, time[nxt], np.where(closed, closed_at, pd.Timestamp(dataset.as_of).value))
    return Visits(deal=deal[rows], stage=state[rows].astype(np.int64),
                  days=np.maximum(end - time[rows], 0) / DAY_NS,
                  to=np.where(has_next, state[nxt], -1).astype(np.int64))


@dataclass(frozen=True)
class MarkovChain(Result):
    """The absorbing chain per segment.

    ``table``: one row per segment and open stage: ``visits``, ``moves_out`` (completed
    visits), ``p_won`` with ``p_won_se`` and a normal ``ci_low``/``ci_high`` (clipped to
    [0, 1]), ``p_lost`` (``p_won + p_lost = 1``), ``expected_visits`` (to open stages,
    this one included, before closing), ``mean_dwell_days`` (per visit) and
    ``expected_days`` (until the deal closes, won or lost). ``matrices`` maps a segment
    to its estimated transition matrix ``P`` (rows and columns: open stages, Won, Lost).
    """

    table: pd.DataFrame
    matrices: dict[str, pd.DataFrame] = field(repr=False)
    by: str | None = None
    alpha: float = 0.05

    def matrix(self, segment: str = OVERALL) -> pd.DataFrame:
        """The estimated transition matrix of ``segment``."""
        return self.matrices[segment]

    def findings(self, *, unit=None):
        """The chance of ending won from the first and the last stage, and the days left from the last."""
        from ..findings import Findings, percent
        from ..timeunits import DAYS

        unit = unit or DAYS
        first = self.table[self.table["segment"] == OVERALL]
        if not len(first):
            return Findings()
        start, last = first.iloc[0], first.iloc[-1]
        return Findings([f"A deal in {start['stage']} ends won with probability {percent(start['p_won'])}; one in "
                         f"{last['stage']}, {percent(last['p_won'])}, and closes in about "
                         f"{unit(last['expected_days'])}."])

    def plot(self, *, ax=None, segment: str = OVERALL):
        """Probability of ending won from each stage of ``segment``, with its interval; returns the axes."""
        from ..results import interval_bars

        part = self.table[self.table["segment"] == segment]
        return interval_bars(part["stage"], part["p_won"], part["ci_low"], part["ci_high"],
                             xlabel="Probability of ending won", ax=ax)

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


def markov_chain(dataset: Dataset, by: str | None = None, *, alpha: float = 0.05,
                 min_deals: int = 30) -> MarkovChain:
    """Estimate the absorbing chain overall and per ``by`` level (see the module docstring).

    Levels with fewer than ``min_deals`` deals are left out with a `SmallSampleWarning`.
    """
    h = history(dataset)
    v = visits(dataset)
    k = h.k
    names = list(h.names)
    codes, labels = segment_codes(dataset, by)
    sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
    z = norm.ppf(1 - alpha / 2)
    rows, matrices = [], {}
    for label, j in segment_groups(labels, sizes, min_deals):
        sel = np.ones(len(v.deal), bool) if j is None else codes[v.deal] == j
        P, dwell, visits_n, moves_n = _estimate(v, sel, k, names)
        matrices[label] = pd.DataFrame(P, index=names, columns=names)
        fit = absorb(P, dwell, moves_n)
        for a, stage in enumerate(names[:k]):
            rows.append({"segment": label, "stage": stage, "visits": int(visits_n[a]), "moves_out": int(moves_n[a]),
                         "p_won": fit["p_won"][a], "p_won_se": fit["se"][a],
                         "ci_low": max(fit["p_won"][a] - z * fit["se"][a], 0.0),
                         "ci_high": min(fit["p_won"][a] + z * fit["se"][a], 1.0),
                         "p_lost": fit["p_lost"][a], "expected_visits": fit["visits"][a],
                         "mean_dwell_days": dwell[a], "expected_days": fit["days"][a]})
    return MarkovChain(table=pd.DataFrame(rows), matrices=matrices, by=by, alpha=alpha)


def _estimate(v: Visits, sel: np.ndarray, k: int, names: list[str]):
    """P (Aalen-Johansen rows), mean dwell per stage, visits and completed moves per stage."""
    s = k + 2
    P = np.full((s, s), np.nan)
    P[k:, :] = 0.0
    P[k, k] = P[k + 1, k + 1] = 1.0
    dwell = np.full(k, np.nan)
    visits_n, moves_n = np.zeros(k, np.int64), np.zeros(k, np.int64)
    label = np.asarray(names + [STILL_IN], dtype=object)
    for a in range(k):
        part = sel & (v.stage == a)
        visits_n[a] = part.sum()
        moves_n[a] = (part & (v.to >= 0)).sum()
        if not moves_n[a]:
            continue
        causes = tuple(names[b] for b in range(s) if b != a)
        fit = competing_risks(v.days[part], label[v.to[part]], causes, censored=STILL_IN)
        end = fit.table["time"].iloc[-1]
        cif = np.array([fit.cif(c, end)[0] for c in causes])
        P[a, [b for b in range(s) if b != a]] = cif / cif.sum()
        P[a, a] = 0.0
        left = np.where(v.to[part] >= 0, "left", "in")
        dwell[a] = restricted_mean(competing_risks(v.days[part], left, ("left",), censored="in"), np.inf)[0]
    return P, dwell, visits_n, moves_n


def absorb(P: np.ndarray, dwell: np.ndarray, moves: np.ndarray) -> dict[str, np.ndarray]:
    """Absorption probabilities, their delta-method SEs, expected visits and days.

    ``P`` is the full matrix (open stages, then Won, then Lost); rows of stages never
    left (NaN) are treated as never entered: their results are NaN.
    """
    k = len(dwell)
    known = ~np.isnan(P[:k]).any(axis=1)
    Q = np.where(known[:, None], P[:k, :k], 0.0)
    Q[:, ~known] = 0.0
    R = np.where(known[:, None], P[:k, k:], 0.0)
    N = np.linalg.inv(np.eye(k) - Q)
    B = N @ R
    extended = np.r_[B[:, 0], 1.0, 0.0]  # P(won) from every state
    Pk = np.where(known[:, None], P[:k], 0.0)
    spread = Pk @ extended**2 - (Pk @ extended) ** 2  # variance of P(won) over the next state
    with np.errstate(divide="ignore", invalid="ignore"):
        per_row = np.where(moves > 0, spread / moves, 0.0)
    se = np.sqrt((N**2) @ per_row)
    days = N @ np.where(known, dwell, 0.0)
    nan = np.where(known, 1.0, np.nan)
    return {"p_won": B[:, 0] * nan, "p_lost": B[:, 1] * nan, "se": se * nan, "visits": N.sum(axis=1) * nan,
            "days": days * nan, "N": N}


def markov_check(dataset: Dataset, *, by: str | None = None, mature_days: float = 180, alpha: float = 0.05,
                 min_deals: int = 30, chain: MarkovChain | None = None) -> pd.DataFrame:
    """The chain's win probability from each stage against what mature cohorts did.

    The mature cohort is the deals created at least ``mature_days`` before ``as_of``. For
    each stage: the chain's ``markov_p_won`` with ``markov_se``, ``markov_low``/``markov_high``;
    of the cohort's deals that ever entered the stage (``cohort_deals``): ``won``,
    ``lost``, ``open``; ``cohort_win_rate`` = won / closed with a Wilson interval; and
    bounds that hold whatever the open deals do: ``lower_bound`` = won / deals,
    ``upper_bound`` = (won + open) / deals. ``difference`` = chain - cohort win rate and
    ``z`` = difference / sqrt(SE_chain^2 + SE_cohort^2). The chain is fitted on every
    deal (censoring-aware), the cohort only counts; where they disagree beyond sampling
    error the chain's memorylessness (or a change in the process) is the likely cause.
    """
    chain = markov_chain(dataset, by, alpha=alpha, min_deals=min_deals) if chain is None else chain
    h = history(dataset)
    k = h.k
    deals = dataset.deals
    mature = (deals["created_at"] <= dataset.as_of - pd.Timedelta(days=mature_days)).to_numpy()
    outcome = deals["outcome"].to_numpy()
    entered = np.zeros((h.n_deals, k + 2), bool)
    entered[h.deal, h.state] = True
    codes, labels = segment_codes(dataset, by)
    rows = []
    for row in chain.table.itertuples():
        a = list(h.names).index(row.stage)
        sel = mature & entered[:, a]
        if row.segment != OVERALL:
            sel &= codes == labels.index(row.segment)
        won, lost, still = (int((sel & (outcome == o)).sum()) for o in ("won", "lost", "open"))
        n, closed = won + lost + still, won + lost
        rate = won / closed if closed else np.nan
        se_c = np.sqrt(rate * (1 - rate) / closed) if closed else np.nan
        low, high = wilson([won], [closed], alpha)
        spread = np.hypot(row.p_won_se, se_c) if closed else np.nan
        rows.append({"segment": row.segment, "stage": row.stage, "markov_p_won": row.p_won,
                     "markov_se": row.p_won_se, "markov_low": row.ci_low, "markov_high": row.ci_high,
                     "cohort_deals": n, "won": won, "lost": lost, "open": still,
                     "cohort_win_rate": rate, "cohort_low": low[0],
                     "cohort_high": high[0], "lower_bound": won / n if n else np.nan,
                     "upper_bound": (won + still) / n if n else np.nan, "difference": row.p_won - rate,
                     "z": (row.p_won - rate) / spread if spread > 0 else np.nan})
    out = pd.DataFrame(rows)
    out.attrs["mature_days"] = mature_days
    return out


__all__ = ["MarkovChain", "markov_chain", "markov_check", "visits", "absorb", "WON", "LOST"]
