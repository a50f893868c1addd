"""Fine-Gray subdistribution hazards regression, as R's ``cmprsk::crr`` computes it, vectorized.

The model (Fine & Gray 1999) puts covariates on the hazard of the *subdistribution* of
the event of interest: ``F1(t | x) = 1 - exp(-Lambda0(t) exp(x b))``, so ``exp(b)`` is a
ratio of the rates at which the cumulative incidence rises. Subjects who had the
competing event stay in the risk set after it, down-weighted by the chance they
would still be uncensored (inverse probability of censoring weights from the
Kaplan-Meier of the censoring times, ``G``); censored subjects leave it.

Everything follows ``crr`` (cmprsk 2.2, one censoring group, no time-varying
covariates): the weight ``G(s-) / G(t_i-)`` with ``G`` read just before each time,
Breslow-type ties (``d log S0`` at a tied time), the robust (sandwich) variance
``I^-1 (sum_i (eta_i + psi_i)(eta_i + psi_i)') I^-1`` with ``psi_i`` the term for
estimating ``G``, and the baseline jumps ``d_k / S0_k`` behind ``predict.crr``. The
risk-set sums are cumulative sums over the sorted times and the information is one
weighted Gram matrix, so a Newton step costs a few passes over the data
(benchmarks/bench_finegray.py). ``crr`` loops over pairs of subjects for the variance
(O(n^2)). tests/golden/make_golden.R holds R's numbers the tests compare with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

#: Status codes, as ``crr`` reads them with its defaults.
CENSORED, EVENT, COMPETING = 0, 1, 2
_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class FineGrayResult:
    """A fitted Fine-Gray model.

    Attributes
    ----------
    params, cov : ndarray
        Coefficients (log subdistribution hazard ratios) and their robust covariance.
    information : ndarray
        The information matrix at ``params`` (``crr``'s ``inf``); its inverse is the
        naive covariance.
    baseline : DataFrame
        ``time`` (distinct event times), ``jump`` (``crr``'s ``bfitj``), ``cumulative_hazard``,
        ``cif`` (the cumulative incidence at covariates 0).
    """

    params: np.ndarray
    cov: np.ndarray
    information: np.ndarray
    names: tuple[str, ...]
    loglik: float
    loglik_null: float
    n: int
    events: int
    competing: int
    censored: int
    iterations: int
    converged: bool
    baseline: pd.DataFrame = field(repr=False)

    @property
    def table(self) -> pd.DataFrame:
        """`summary` at 95%."""
        return self.summary()

    @property
    def bse(self) -> np.ndarray:
        """Robust standard errors."""
        return np.sqrt(np.diag(self.cov))

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """``coef``, ``exp(coef)``, robust ``se``, ``z``, ``p``, and the interval of ``exp(coef)``."""
        z = stats.norm.ppf(1 - alpha / 2)
        b, se = self.params, self.bse
        return pd.DataFrame({"coef": b, "exp(coef)": np.exp(b), "se": se, "z": b / se,
                             "p": 2 * stats.norm.sf(np.abs(b / se)),
                             "ci_low": np.exp(b - z * se), "ci_high": np.exp(b + z * se)},
                            index=pd.Index(self.names, name="covariate"))

    def predict(self, x) -> pd.DataFrame:
        """Cumulative incidence of the event at every event time for covariate profiles ``x``
        (one row, or one row per profile), as ``predict.crr``: one column per profile."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        risk = np.exp(x @ self.params)
        cif = 1.0 - np.exp(-np.outer(self.baseline["cumulative_hazard"].to_numpy(), risk))
        return pd.DataFrame(cif, index=pd.Index(self.baseline["time"].to_numpy(), name="time"))

    def cif(self, x, times) -> np.ndarray:
        """Cumulative incidence at ``times`` (a step function; 0 before the first event) for each
        profile in ``x``: shape (len(times), profiles)."""
        curves = self.predict(x)
        at = np.searchsorted(curves.index.to_numpy(), np.asarray(times, dtype=float), side="right") - 1
        values = np.vstack([np.zeros(curves.shape[1]), curves.to_numpy()])
        return values[at + 1]


def censoring_weights(t: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Kaplan-Meier of the censoring times read just before each of ``t`` (sorted), as ``crr``
    reads it: at ``t (1 - 100 eps)``, so a censoring at the same time does not count."""
    times, inverse = np.unique(t, return_inverse=True)
    removed = np.bincount(inverse, minlength=len(times))
    censored = np.bincount(inverse, weights=(status == CENSORED).astype(float), minlength=len(times))
    at_risk = len(t) - np.concatenate(([0], np.cumsum(removed)[:-1]))
    km = np.concatenate(([1.0], np.cumprod(1.0 - censored / at_risk)))
    return km[np.searchsorted(times, t * (1 - 100 * _EPS), side="right")]


class _Subdistribution:
    """The risk-set sums of the weighted partial likelihood for one data set, sorted by time."""

    def __init__(self, t: np.ndarray, status: np.ndarray, X: np.ndarray):
        self.t, self.status, self.X = t, status, X
        self.G = censoring_weights(t, status)
        event = status == EVENT
        self.event, self.competing = event, status == COMPETING
        self.times, deaths = np.unique(t[event], return_counts=True)
        self.deaths = deaths.astype(float)
        self.K = len(self.times)
        # k_i: how many event times are <= t_i, so subject i is fully at risk at times k < k_i
        # and, after a competing event, weighted at times k >= k_i.
        self.k = np.searchsorted(self.times, t, side="right")
        self.G_event = self.G[event][np.r_[0, np.cumsum(deaths)[:-1]].astype(int)]  # G(s_k-)
        self.event_sum = X[event].sum(axis=0)
        self.event_index = self.k[event] - 1

    def _by_time(self, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` rows into ``K + 1`` bins by ``index``."""
        if values.ndim == 1:
            return np.bincount(index, weights=values, minlength=self.K + 1)
        return np.stack([np.bincount(index, weights=v, minlength=self.K + 1) for v in values.T], axis=1)

    def sums(self, beta: np.ndarray):
        """Risk scores, S0 (K,), S1 (K, p) at each event time."""
        e = np.exp(self.X @ beta)
        full = self.k - 1  # bin of the last time subject i is fully at risk (-1: none)
        has = full >= 0
        ex = e[:, None] * self.X
        tail0 = self._by_time(full[has], e[has])[::-1].cumsum()[::-1][: self.K]
        tail1 = self._by_time(full[has], ex[has])[::-1].cumsum(axis=0)[::-1][: self.K]
        c = self.competing
        w = e[c] / self.G[c]
        head0 = np.cumsum(self._by_time(self.k[c], w))[: self.K]
        head1 = np.cumsum(self._by_time(self.k[c], w[:, None] * self.X[c]), axis=0)[: self.K]
        S0 = tail0 + self.G_event * head0
        S1 = tail1 + self.G_event[:, None] * head1
        return e, S0, S1

    def exposure(self, per_time: np.ndarray) -> np.ndarray:
        """For each subject, sum over event times of ``per_time`` (K, ...) times its weight in the
        risk set there: 1 while at risk, ``G(s_k-)/G(t_i-)`` after a competing event."""
        zero = np.zeros((1,) + per_time.shape[1:])
        before = np.concatenate([zero, np.cumsum(per_time, axis=0)])          # sum over k < k_i
        weighted = self.G_event.reshape((-1,) + (1,) * (per_time.ndim - 1)) * per_time
        after = np.concatenate([np.cumsum(weighted[::-1], axis=0)[::-1], zero])  # sum over k >= k_i
        out = before[self.k]
        scale = np.where(self.competing, 1.0 / self.G, 0.0).reshape((-1,) + (1,) * (per_time.ndim - 1))
        return out + scale * after[self.k]

    def parts(self, beta: np.ndarray):
        """Log-likelihood, score, information and the pieces the variance reuses."""
        e, S0, S1 = self.sums(beta)
        loglik = float(self.event_sum @ beta - self.deaths @ np.log(S0))
        mean = S1 / S0[:, None]
        score = self.event_sum - self.deaths @ mean
        c = self.deaths / S0
        w = e * self.exposure(c)
        info = (self.X * w[:, None]).T @ self.X - (mean * self.deaths[:, None]).T @ mean
        return loglik, score, info, (e, S0, mean, c, w)

    def robust_middle(self, pieces) -> np.ndarray:
        """``sum_i (eta_i + psi_i)(eta_i + psi_i)'``, the meat of ``crr``'s sandwich."""
        e, S0, mean, c, w = pieces
        X = self.X
        # eta_i: the score residual (dN part minus the compensator part).
        eta = e[:, None] * self.exposure(c[:, None] * mean) - X * w[:, None]
        eta[self.event] += X[self.event] - mean[self.event_index]
        # psi_i: the part from estimating G, q(u) at each distinct censoring time u.
        times, inverse = np.unique(self.t, return_inverse=True)
        m = len(times)
        counts = np.bincount(inverse, minlength=m)
        at_risk = len(self.t) - np.concatenate(([0], np.cumsum(counts)[:-1]))
        cens = np.bincount(inverse, weights=(self.status == CENSORED).astype(float), minlength=m)
        # R0(u), R1(u): competing subjects with t < u, weighted e / G.
        comp = self.competing
        r = e[comp] / self.G[comp]
        R0 = np.concatenate(([0.0], np.cumsum(np.bincount(inverse[comp], weights=r, minlength=m))[:-1]))
        R1 = np.vstack([np.zeros(X.shape[1]),
                        np.cumsum(np.stack([np.bincount(inverse[comp], weights=r * v, minlength=m)
                                            for v in X[comp].T], axis=1), axis=0)[:-1]])
        # A(u), B(u): sums over event times s_k >= u of c_k G_k (and times the risk-set mean).
        first = np.searchsorted(self.times, times, side="left")
        cg = c * self.G_event
        A = np.concatenate([np.cumsum(cg[::-1])[::-1], [0.0]])[first]
        B = np.vstack([np.cumsum((cg[:, None] * mean)[::-1], axis=0)[::-1], np.zeros(X.shape[1])])[first]
        q = R1 * A[:, None] - B * R0[:, None]
        drift = np.cumsum(q * (cens / at_risk**2)[:, None], axis=0)
        psi = -drift[inverse]
        censored = self.status == CENSORED
        psi[censored] += (q / at_risk[:, None])[inverse[censored]]
        total = eta + psi
        return total.T @ total


def fit_fine_gray(durations, status, X, names=None, *, max_iter: int = 50, tol: float = 1e-10) -> FineGrayResult:
    """Fit the Fine-Gray model of the event coded 1 (2: competing event, 0: censored).

    Parameters
    ----------
    durations : array-like (n,)
        Time to the event, the competing event or censoring.
    status : array-like of int (n,)
        0 censored, 1 event of interest, 2 competing event.
    X : array-like (n, p)
        Covariates, no intercept.
    names : sequence of str, optional

    Returns
    -------
    FineGrayResult

    Notes
    -----
    Newton-Raphson from 0 with step halving on the log pseudo-likelihood, until the
    step is below ``tol`` (``crr`` stops at a looser gradient tolerance, ``gtol=1e-6``).
    """
    t = np.asarray(durations, dtype=float)
    s = np.asarray(status).astype(int)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if not (len(t) == len(s) == len(X)):
        raise ValueError("durations, status and X must have the same number of rows")
    if np.isnan(t).any() or (t < 0).any() or np.isnan(X).any():
        raise ValueError("durations must be non-negative and X must have no missing values")
    if not np.isin(s, (CENSORED, EVENT, COMPETING)).all():
        raise ValueError("status must be 0 (censored), 1 (event) or 2 (competing event)")
    if not (s == EVENT).any():
        raise ValueError("no event of interest: nothing to fit")
    order = np.argsort(t, kind="stable")
    lik = _Subdistribution(t[order], s[order], X[order])
    p = X.shape[1]
    names = tuple(names) if names is not None else tuple(f"x{j}" for j in range(p))
    beta = np.zeros(p)
    loglik, score, info, pieces = lik.parts(beta)
    loglik_null, converged, iterations = loglik, False, 0
    for iterations in range(1, max_iter + 1):
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        scale = 1.0
        while scale > 1e-6:
            candidate = beta + scale * step
            new = lik.parts(candidate)
            if np.isfinite(new[0]) and new[0] >= loglik - 1e-10 * (1 + abs(loglik)):
                break
            scale /= 2
        beta, (loglik, score, info, pieces) = candidate, new
        if np.max(np.abs(scale * step)) < tol:
            converged = True
            break
    try:
        inverse = np.linalg.inv(info)
        cov = inverse @ lik.robust_middle(pieces) @ inverse
    except np.linalg.LinAlgError:
        cov = np.full((p, p), np.nan)
    jump = lik.deaths / pieces[1]
    baseline = pd.DataFrame({"time": lik.times, "jump": jump, "cumulative_hazard": np.cumsum(jump),
                             "cif": 1.0 - np.exp(-np.cumsum(jump))})
    return FineGrayResult(params=beta, cov=cov, information=info, names=names, loglik=loglik,
                          loglik_null=loglik_null, n=len(t), events=int((s == EVENT).sum()),
                          competing=int((s == COMPETING).sum()), censored=int((s == CENSORED).sum()),
                          iterations=iterations, converged=converged, baseline=baseline)
