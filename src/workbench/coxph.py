"""Cox proportional-hazards fit with Efron ties, aggregated by distinct time.

CRM durations are whole days, so a million deals share a few thousand distinct
times. The risk-set sums (S0, S1) are built once per distinct time with
`np.add.reduceat` and reverse cumulative sums, Efron's tie correction reduces to
five scalar sums per time, and the information matrix is two weighted Gram
matrices (BLAS), so one Newton step costs a few passes over the data. statsmodels' `PHReg` (same likelihood) is the reference in the
tests; benchmarks/bench_cycle.py compares the speed on 1M deals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class CoxResult:
    """Coefficients, their covariance, and the data needed for residuals."""

    params: np.ndarray
    cov: np.ndarray
    names: tuple[str, ...]
    loglik: float
    n: int
    events: int
    iterations: int
    converged: bool
    schoenfeld: np.ndarray | None = None
    event_ranks: np.ndarray | None = None
    event_times: np.ndarray | None = None

    @property
    def bse(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """Tidy table: coef, hazard ratio with CI, standard error, z, p-value."""
        z = stats.norm.ppf(1 - alpha / 2)
        se = self.bse
        return pd.DataFrame({
            "covariate": self.names, "coef": self.params, "se": se,
            "hazard_ratio": np.exp(self.params),
            "ci_low": np.exp(self.params - z * se), "ci_high": np.exp(self.params + z * se),
            "z": self.params / se, "p_value": 2 * stats.norm.sf(np.abs(self.params / se)),
        })


    def proportional_hazards_test(self) -> pd.DataFrame:
        """Grambsch-Therneau test on scaled Schoenfeld residuals against the rank of time.

        One chi-square (1 df) per covariate, as lifelines' ``proportional_hazard_test``
        with ``time_transform="rank"`` (tied event times share their average rank
        here, where lifelines ranks them in its sort order). A small p-value means the covariate's effect
        changes over time, so its hazard ratio is an average over the follow-up.
        """
        scaled = self.events * self.schoenfeld @ self.cov
        g = self.event_ranks - self.event_ranks.mean()
        stat = (g[:, None] * scaled).sum(axis=0) ** 2 / (self.events * self.bse**2 * (g**2).sum())
        return pd.DataFrame({"covariate": self.names, "statistic": stat, "p_value": stats.chi2.sf(stat, 1)})


class _TimeGroups:
    """Rows sorted by time, with the start of each distinct time's block."""

    def __init__(self, durations: np.ndarray, events: np.ndarray):
        order = np.argsort(durations, kind="stable")
        self.order = order
        t = durations[order]
        self.event = events[order].astype(bool)
        self.starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
        self.times = t[self.starts]
        self.group = np.repeat(np.arange(len(self.starts)), np.diff(np.r_[self.starts, len(t)]))
        self.deaths = np.bincount(self.group, weights=self.event, minlength=len(self.starts))

    def block_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (rows in time order) within each distinct time."""
        return np.add.reduceat(values, self.starts, axis=0)

    def risk_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum over the risk set (time >= t) at each distinct time."""
        return np.cumsum(self.block_sums(values)[::-1], axis=0)[::-1]


def _efron_weights(deaths: np.ndarray, s0: np.ndarray, e0: np.ndarray):
    """Per-time sums over l = 0..d-1 of 1/den, a/den, 1/den^2, a/den^2, a^2/den^2,
    with a = l/d and den = S0 - a E0 (Efron's tie correction), and sum of log den."""
    has = deaths > 0
    d = deaths[has].astype(np.int64)
    rep = np.repeat(np.arange(len(d)), d)
    l = np.arange(d.sum()) - np.repeat(np.cumsum(d) - d, d)
    a = l / d[rep]
    den = s0[has][rep] - a * e0[has][rep]
    out = {}
    m = len(deaths)
    for name, val in (("c0", 1 / den), ("c1", a / den), ("q0", 1 / den**2), ("q1", a / den**2),
                      ("q2", a**2 / den**2), ("logden", np.log(den))):
        full = np.zeros(m)
        full[has] = np.bincount(rep, weights=val, minlength=len(d))
        out[name] = full
    return out


def fit_cox(durations, events, X, names=None, max_iter: int = 50, tol: float = 1e-9) -> CoxResult:
    """Fit a Cox model with Efron ties by Newton-Raphson with step halving.

    Parameters
    ----------
    durations : array-like (n,)
    events : array-like of bool (n,)
        True where the event of interest happened (competing events and censoring: False).
    X : array-like (n, p)
        Covariates (no intercept).
    """
    t = np.asarray(durations, dtype=float)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    groups = _TimeGroups(t, np.asarray(events))
    Xs = X[groups.order]
    # Centre for numerical stability; the coefficients do not change.
    Xs = Xs - Xs.mean(axis=0)
    ev = groups.event
    x_events = groups.block_sums(Xs * ev[:, None])

    def parts(beta):
        eta = Xs @ beta
        w = np.exp(eta - eta.max())
        we = w * ev
        s0 = groups.risk_sums(w)
        e0 = groups.block_sums(we)
        wx = Xs * w[:, None]
        s1 = groups.risk_sums(wx)
        e1 = groups.block_sums(wx * ev[:, None])
        c = _efron_weights(groups.deaths, s0, e0)
        loglik = float((eta * ev).sum() - (eta.max() * groups.deaths.sum()) - c["logden"].sum())
        grad = x_events.sum(axis=0) - (c["c0"][:, None] * s1 - c["c1"][:, None] * e1).sum(axis=0)
        return loglik, grad, w, we, s1, e1, c

    def hessian(w, we, s1, e1, c):
        # sum_j c0_j S2_j = X' diag(w_i * sum_{t_j <= t_i} c0_j) X, and likewise for the tied
        # events' E2 with c1: two weighted Gram matrices instead of n x p^2 risk-set sums.
        weight = w * np.cumsum(c["c0"])[groups.group] - we * c["c1"][groups.group]
        info = Xs.T @ (Xs * weight[:, None])
        outer = (np.einsum("t,ti,tj->ij", c["q0"], s1, s1)
                 - np.einsum("t,ti,tj->ij", c["q1"], s1, e1)
                 - np.einsum("t,ti,tj->ij", c["q1"], e1, s1)
                 + np.einsum("t,ti,tj->ij", c["q2"], e1, e1))
        return info - outer  # observed information (minus the Hessian)

    beta = np.zeros(p)
    loglik, grad, *rest = parts(beta)
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):
        info = hessian(*rest)
        step = np.linalg.solve(info, grad)
        scale = 1.0
        while True:
            candidate = beta + scale * step
            new_loglik, new_grad, *new_rest = parts(candidate)
            if new_loglik >= loglik - 1e-12 or scale < 1e-4:
                break
            scale /= 2
        done = abs(new_loglik - loglik) < tol * (1 + abs(loglik))
        beta, loglik, grad, rest = candidate, new_loglik, new_grad, new_rest
        if done or np.max(np.abs(scale * step)) < 1e-10:
            converged = True
            break
    cov = np.linalg.inv(hessian(*rest))
    w, we, s1, e1, c = rest
    # Schoenfeld residuals: each event's covariates minus the (Efron) risk-set mean at its time.
    mean_at_time = (c["c0"][:, None] * s1 - c["c1"][:, None] * e1) / np.maximum(groups.deaths, 1)[:, None]
    residuals = (Xs - mean_at_time[groups.group])[ev]
    event_times = t[groups.order][ev]
    # Rank among event times (lifelines' "rank" transform); tied times share their average rank.
    rank_all = stats.rankdata(event_times)
    return CoxResult(params=beta, cov=cov, names=tuple(names or (f"x{i}" for i in range(p))), loglik=loglik,
                     n=n, events=int(groups.deaths.sum()), iterations=iterations, converged=converged,
                     schoenfeld=residuals, event_ranks=rank_all, event_times=event_times)
