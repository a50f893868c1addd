"""Exact-tie Kaplan-Meier and Aalen-Johansen estimators, vectorized.

CRM timestamps are tied (day-resolution dates, bulk updates). These estimators
treat ties exactly and deterministically: all events at a time are removed
together, and censorings at an event time count as still at risk at that time
(the usual convention, as in lifelines' Kaplan-Meier). lifelines'
`AalenJohansenFitter` instead jitters tied times at random.

Variances: Greenwood for Kaplan-Meier, with log(-log) confidence intervals; for
the cumulative incidence, the delta-method (Greenwood-type) variance of Collett
(2015, p. 411), as lifelines uses, with log(-log) intervals. With exact ties it is also
the infinitesimal jackknife that survival's multi-state ``survfit`` reports. On request,
Gray's variance as cmprsk's ``cuminc``. Everything is a few cumulative sums over the
distinct times, O(n log n) for the sort.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

CENSORED = 0


@dataclass(frozen=True)
class CompetingRisks:
    """Kaplan-Meier of time to any event and Aalen-Johansen cumulative incidence per cause.

    ``table`` has one row per distinct time: ``time``, ``at_risk``, ``censored``,
    ``events``, then per cause ``<cause>_events``, ``<cause>_cif``, ``<cause>_var``,
    ``<cause>_lower``, ``<cause>_upper``, and ``survival``, ``survival_var``,
    ``survival_lower``, ``survival_upper`` for the time to any event.
    """

    table: pd.DataFrame
    causes: tuple[str, ...]
    alpha: float
    n: int

    # --- step-function evaluation -------------------------------------------------
    def _at(self, column: str, times, before_first: float) -> np.ndarray:
        times = np.atleast_1d(np.asarray(times, dtype=float))
        idx = np.searchsorted(self.table["time"].to_numpy(), times, side="right") - 1
        values = self.table[column].to_numpy()
        return np.where(idx >= 0, values[np.clip(idx, 0, None)], before_first)

    def cif(self, cause: str, times) -> np.ndarray:
        """Cumulative incidence of ``cause`` at ``times`` (right-continuous step function)."""
        return self._at(f"{cause}_cif", times, 0.0)

    def cif_ci(self, cause: str, times) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise confidence interval of the cumulative incidence at ``times``."""
        return self._at(f"{cause}_lower", times, 0.0), self._at(f"{cause}_upper", times, 0.0)

    def cif_se(self, cause: str, times) -> np.ndarray:
        return np.sqrt(self._at(f"{cause}_var", times, 0.0))

    def survival(self, times) -> np.ndarray:
        """Probability of no event yet at ``times``."""
        return self._at("survival", times, 1.0)

    def at_risk(self, times) -> np.ndarray:
        """Number still at risk at each of ``times`` (observed beyond or at that time)."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        t = self.table["time"].to_numpy()
        idx = np.searchsorted(t, times, side="left")
        at_risk = np.append(self.table["at_risk"].to_numpy(), 0)
        return at_risk[idx]

    def quantile(self, q: float) -> dict[str, float]:
        """Time by which a share ``q`` had an event (of any cause), with its CI.

        The point estimate is the first time with ``1 - S(t) >= q``; the interval
        takes the same crossing on the pointwise confidence band (as lifelines'
        ``median_survival_times`` does). ``inf`` where the curve never gets there.
        """
        target = 1.0 - q
        return {"estimate": _crossing(self.table["time"], self.table["survival"], target),
                "lower": _crossing(self.table["time"], self.table["survival_lower"], target),
                "upper": _crossing(self.table["time"], self.table["survival_upper"], target)}

    def median(self) -> dict[str, float]:
        return self.quantile(0.5)

    def curves(self) -> pd.DataFrame:
        """Tidy long frame: time, curve (``survival`` or a cause), estimate, lower, upper."""
        parts = [self.table[["time"]].assign(curve="any close (1 - S)", estimate=1 - self.table["survival"],
                                             lower=1 - self.table["survival_upper"],
                                             upper=1 - self.table["survival_lower"])]
        for cause in self.causes:
            parts.append(self.table[["time"]].assign(curve=cause, estimate=self.table[f"{cause}_cif"],
                                                     lower=self.table[f"{cause}_lower"],
                                                     upper=self.table[f"{cause}_upper"]))
        return pd.concat(parts, ignore_index=True)


def _crossing(times: pd.Series, curve: pd.Series, target: float) -> float:
    below = np.flatnonzero(curve.to_numpy() <= target + 1e-12)
    return float(times.iloc[below[0]]) if len(below) else float("inf")


VARIANCES = ("delta", "cuminc")


def competing_risks(durations, events, causes: Sequence[str] = ("won", "lost"), alpha: float = 0.05,
                    censored: object = CENSORED, variance: str = "delta") -> CompetingRisks:
    """Fit Kaplan-Meier (any event) and Aalen-Johansen (each cause) in one pass.

    Parameters
    ----------
    durations : array-like of float
        Time from origin to event or censoring (days), non-negative.
    events : array-like
        The cause of each event (one of ``causes``), or ``censored`` for censored.
    causes : sequence of str
        The competing causes, in the order their columns appear.
    alpha : float
        1 - confidence level of the pointwise intervals.
    variance : {"delta", "cuminc"}
        Variance of the cumulative incidence (and so its intervals). ``"delta"``: Collett's
        delta method, as lifelines; with exact ties it equals the infinitesimal jackknife
        of R's multi-state ``survival::survfit``. ``"cuminc"``: Gray's estimator, exactly as
        R's ``cmprsk::cuminc`` (it changes only at the cause's own event times).

    Returns
    -------
    CompetingRisks
    """
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, not {variance!r}")
    t = np.asarray(durations, dtype=float)
    ev = np.asarray(events, dtype=object)
    if t.shape != ev.shape:
        raise ValueError("durations and events must have the same length")
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError("durations must be non-negative numbers")
    codes = np.zeros(len(t), dtype=np.int64)
    for k, cause in enumerate(causes, start=1):
        codes[ev == cause] = k
    unknown = (codes == 0) & (ev != censored)
    if unknown.any():
        raise ValueError(f"events hold values that are neither a cause nor censored: {sorted(set(ev[unknown]))[:5]}")
    table = _estimate(t, codes, len(causes), causes, alpha, variance)
    return CompetingRisks(table=table, causes=tuple(causes), alpha=alpha, n=len(t))


def _estimate(t: np.ndarray, codes: np.ndarray, k: int, causes, alpha: float, variance: str) -> pd.DataFrame:
    times, inverse = np.unique(t, return_inverse=True)
    m = len(times)
    counts = np.bincount(codes * m + inverse, minlength=(k + 1) * m).reshape(k + 1, m).astype(float)
    removed = counts.sum(axis=0)
    at_risk = len(t) - np.concatenate(([0.0], np.cumsum(removed)[:-1]))
    d = counts[1:].sum(axis=0)
    z = norm.ppf(1 - alpha / 2)

    hazard = d / at_risk
    survival = np.cumprod(1.0 - hazard)
    lag_survival = np.concatenate(([1.0], survival[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood_terms = np.where(at_risk > d, d / (at_risk * (at_risk - d)), 0.0)
    greenwood = np.cumsum(greenwood_terms)
    out = {"time": times, "at_risk": at_risk, "censored": counts[0], "events": d}
    out["survival"] = survival
    out["survival_var"] = survival**2 * greenwood
    out["survival_lower"], out["survival_upper"] = _loglog_survival_ci(survival, greenwood, z)

    for j, cause in enumerate(causes, start=1):
        dk = counts[j]
        cif = np.cumsum(lag_survival * dk / at_risk)
        if variance == "cuminc":
            var = _cuminc_variance(cif, survival, lag_survival, at_risk, d, dk)
        else:
            var = _cif_variance(cif, lag_survival, at_risk, d, dk, greenwood_terms)
        out[f"{cause}_events"] = dk
        out[f"{cause}_cif"] = cif
        out[f"{cause}_var"] = var
        out[f"{cause}_lower"], out[f"{cause}_upper"] = _loglog_cif_ci(cif, var, z)
    return pd.DataFrame(out)


def _cif_variance(F, lag_s, n, d, dk, a):
    """Collett's delta-method variance of the cumulative incidence at every time.

    Var F(t) = sum_j (F(t) - F_j)^2 a_j + sum_j S_{j-1}^2 dk_j (n_j - dk_j) / n_j^3
               - 2 sum_j (F(t) - F_j) S_{j-1} dk_j / n_j^2,   with a_j = d_j / (n_j (n_j - d_j)),
    expanded into cumulative sums so it costs O(m).
    """
    quad = F**2 * np.cumsum(a) - 2 * F * np.cumsum(a * F) + np.cumsum(a * F**2)
    second = np.cumsum(lag_s**2 * dk * (n - dk) / n**3)
    b = lag_s * dk / n**2
    linear = F * np.cumsum(b) - np.cumsum(b * F)
    return np.maximum(quad + second - 2 * linear, 0.0)


def _cuminc_variance(F, s, lag_s, n, d, dk):
    """Gray's variance of the cumulative incidence, as cmprsk's ``cuminc`` (Fortran ``cinc``) computes it.

    At each time j, the cause's deaths (dk_j) and the other causes' (do_j = d_j - dk_j) each add
    t_j = S_{j-1}^2 c_j / n_j^2 (c_j = deaths * (1 - (deaths - 1) / (n_j - 1)), a ties correction)
    with weights (u, 1/S_j): u = 1 + F_j / S_j for the cause and F_j / S_j for the others; then
    Var F(t_j) = V1 + F_j^2 V3 - 2 F_j V2 over the cumulative sums V1 = sum u^2 t, V2 = sum u t / S,
    V3 = sum t / S^2. cuminc reports it at the cause's event times only; it holds in between.
    """
    do = d - dk
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_s = np.where(s > 0, 1 / s, 0.0)
        t_cause = lag_s**2 * _tied_deaths(dk, n) / n**2
        t_other = np.where(s > 0, lag_s**2 * _tied_deaths(do, n) / n**2, 0.0)
    u_cause, u_other = 1 + F * inv_s, F * inv_s
    v1 = np.cumsum(u_cause**2 * t_cause + u_other**2 * t_other)
    v2 = np.cumsum(inv_s * (u_cause * t_cause + u_other * t_other))
    v3 = np.cumsum(inv_s**2 * (t_cause + t_other))
    at_event = np.where(dk > 0, v1 + F**2 * v3 - 2 * F * v2, np.nan)
    return np.nan_to_num(pd.Series(at_event).ffill().to_numpy(), nan=0.0)


def _tied_deaths(deaths, n):
    """cuminc's count of tied deaths: deaths * (1 - (deaths - 1) / (n - 1)), sampling without replacement."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return deaths * np.where(deaths > 1, 1 - (deaths - 1) / (n - 1), 1.0)


def _loglog_survival_ci(s, greenwood, z):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_s = np.log(s)
        spread = z * np.sqrt(greenwood) / log_s
        lower = np.exp(-np.exp(np.log(-log_s) - spread))
        upper = np.exp(-np.exp(np.log(-log_s) + spread))
    # Where S is 1 (no event yet) the band is the point; where S is 0 it is [0, 0].
    lower = np.where(s >= 1.0, 1.0, np.where(s <= 0.0, 0.0, lower))
    upper = np.where(s >= 1.0, 1.0, np.where(s <= 0.0, 0.0, upper))
    return lower, upper


def _loglog_cif_ci(F, var, z):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_f = np.log(F)
        se = np.sqrt(var) / (F * np.abs(log_f))
        lower = np.exp(-np.exp(np.log(-log_f) + z * se))
        upper = np.exp(-np.exp(np.log(-log_f) - z * se))
    lower = np.where(F <= 0.0, 0.0, np.where(F >= 1.0, 1.0, lower))
    upper = np.where(F <= 0.0, 0.0, np.where(F >= 1.0, 1.0, upper))
    return lower, upper
