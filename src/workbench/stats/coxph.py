"""Cox proportional-hazards fit with Efron ties, aggregated by distinct time; Firth's penalized fit.

CRM durations are whole days, so a million deals share a few thousand distinct
times. The risk-set sums (S0, S1) are built once per distinct time with
`np.add.reduceat` and reverse cumulative sums, Efron's tie correction reduces to
five scalar sums per time, and the information matrix is two weighted Gram
matrices (BLAS), so one Newton step costs a few passes over the data. statsmodels'
`PHReg` and R's ``coxph`` (same likelihood) are the references in the tests;
benchmarks/bench_cycle.py compares the speed on 1M deals.

When a level has no event of the cause (or, more generally, the events always
have the largest or smallest value of a covariate in their risk set) the partial
likelihood is monotone: the maximum-likelihood coefficient is infinite, Newton's
method walks off and the Wald interval is [0, inf]. ``fit_cox(..., firth=True)``
maximises Firth's penalized partial likelihood instead (Heinze & Schemper 2001),
``l(b) + 1/2 log det I(b)`` with ``I`` the observed Efron information, whose
maximum is finite whenever every column carries information (`information_rank`
finds those that do not). Its gradient needs the derivative of ``I``: each Efron
term ``log sum_i v_i exp(x_i b)`` is a cumulant generating function, so that
derivative is the sum over risk sets of third central moments of ``x``, and
contracted with ``I^-1`` it reduces to the same risk-set sums and weighted Gram
products as the information (no per-time p x p x p tensors): a Firth step costs
about two plain ones. Newton steps use ``I`` itself, as R's ``coxphf`` does, with
step halving on the penalized likelihood. Standard errors come from ``I`` at the
penalized estimate; intervals and p-values from the profile penalized likelihood
(`_FirthProfile`, about ten constrained fits per coefficient), as ``coxphf``
reports them. Ties are Efron's, as in the plain fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

#: A coefficient (per unit of a 0/1 column, per two standard deviations of another) beyond
#: this, or a standard error beyond `MAX_SE`, means the maximum-likelihood fit ran off.
MAX_COEF = 10.0
MAX_SE = 100.0


@dataclass(frozen=True)
class CoxResult:
    """Coefficients, their covariance, and the data needed for residuals.

    ``method`` is ``cox`` (maximum partial likelihood) or ``firth`` (penalized; then
    ``loglik`` is the unpenalized log partial likelihood at the estimate,
    ``penalized_loglik`` the maximised penalized one, and ``cov`` the inverse of the
    information at the estimate, as ``coxphf`` reports).
    """

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
    method: str = "cox"
    penalized_loglik: float | None = None
    x_scale: np.ndarray | None = None
    profile: "_FirthProfile | None" = field(default=None, repr=False, compare=False)

    @property
    def bse(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    @property
    def profiled(self) -> tuple[str, ...]:
        """Coefficients whose `summary` intervals and p-values come from the profile
        penalized likelihood (empty for a maximum-likelihood fit)."""
        return () if self.profile is None else tuple(self.names[j] for j in self.profile.rows)

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """Tidy table: coef, hazard ratio with CI, standard error, z, p-value.

        Maximum likelihood: Wald intervals and p-values. Firth: profile penalized
        likelihood intervals and penalized likelihood-ratio p-values (as ``coxphf``) for
        the coefficients in ``profiled`` (an interval then excludes 1 exactly when
        ``p_value < alpha``), Wald ones from the penalized fit for the others; ``z`` is
        coef / se throughout.
        """
        z = stats.norm.ppf(1 - alpha / 2)
        se = self.bse
        low, high = self.params - z * se, self.params + z * se
        p_value = 2 * stats.norm.sf(np.abs(self.params / se))
        if self.profile is not None:
            rows = self.profile.rows
            low[rows], high[rows] = self.profile.intervals(alpha).T
            p_value[rows] = self.profile.p_values()
        # A runaway maximum-likelihood fit overflows here; `runaway` says so, the table shows inf.
        with np.errstate(over="ignore"):
            return pd.DataFrame({
                "covariate": self.names, "coef": self.params, "se": se,
                "hazard_ratio": np.exp(self.params),
                "ci_low": np.exp(low), "ci_high": np.exp(high),
                "z": self.params / se, "p_value": p_value,
            })

    def runaway(self) -> list[str]:
        """Names of coefficients that ran off (the signs of a monotone likelihood): a
        non-finite estimate or standard error, ``|coef| > MAX_COEF`` or ``se > MAX_SE``,
        both per unit of a 0/1 column and per two standard deviations of any other."""
        scale = np.ones(len(self.params)) if self.x_scale is None else self.x_scale
        with np.errstate(invalid="ignore"):
            se = self.bse
            bad = (~np.isfinite(self.params) | ~np.isfinite(se) | (np.abs(self.params) * scale > MAX_COEF)
                   | (se * scale > MAX_SE))
        return [name for name, b in zip(self.names, bad) if b]

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
    with a = l/d and den = S0 - a E0 (Efron's tie correction), and sum of log den.
    Also, per event (one Efron term each): its time's index among times with events
    (``rep``), ``a`` and ``den``, which Firth's penalty needs."""
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
    out.update(has=has, rep=rep, a=a, den=den, first=np.cumsum(d) - d)
    return out


class _Efron:
    """The Efron log partial likelihood of one data set: value, score, information, and
    the gradient of Firth's penalty. Rows are sorted by time and covariates centred once."""

    def __init__(self, durations, events, X: np.ndarray):
        self.groups = groups = _TimeGroups(np.asarray(durations, dtype=float), np.asarray(events))
        Xs = X[groups.order]
        # Centre for numerical stability; the coefficients do not change.
        self.Xs = Xs - Xs.mean(axis=0)
        self.ev = groups.event
        self.x_events = groups.block_sums(self.Xs * self.ev[:, None])

    def parts(self, beta):
        groups, Xs, ev = self.groups, self.Xs, self.ev
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
        grad = self.x_events.sum(axis=0) - (c["c0"][:, None] * s1 - c["c1"][:, None] * e1).sum(axis=0)
        return loglik, grad, w, we, s1, e1, c

    def _gram_weight(self, w, we, c) -> np.ndarray:
        return w * np.cumsum(c["c0"])[self.groups.group] - we * c["c1"][self.groups.group]

    def hessian(self, w, we, s1, e1, c):
        # sum_j c0_j S2_j = X' diag(w_i * sum_{t_j <= t_i} c0_j) X, and likewise for the tied
        # events' E2 with c1: two weighted Gram matrices instead of n x p^2 risk-set sums.
        Xs = self.Xs
        weight = self._gram_weight(w, we, c)
        info = Xs.T @ (Xs * weight[:, None])
        outer = (np.einsum("t,ti,tj->ij", c["q0"], s1, s1)
                 - np.einsum("t,ti,tj->ij", c["q1"], s1, e1)
                 - np.einsum("t,ti,tj->ij", c["q1"], e1, s1)
                 + np.einsum("t,ti,tj->ij", c["q2"], e1, e1))
        return info - outer  # observed information (minus the Hessian)

    def penalty_gradient(self, state, info: np.ndarray) -> np.ndarray:
        """Gradient of 1/2 log det I(b): 1/2 tr(I^-1 dI/db_t) for every t.

        dI/db_t is the sum over Efron terms k of the third central moment of x under the
        term's weights p_i = v_i / den_k. With A = I^-1, g_i = x_i' A x_i and m_k the
        term's mean, E_k[(x-m)'A(x-m) (x-m)_t] = E_k[g x_t] - m_t E_k[g] - 2 (A m_k)' E_k[x x_t]
        + 2 (m_k' A m_k) m_t; the first and third sums over k are weighted Gram products
        over the rows (as in `hessian`), the others are per-event vectors.
        """
        _, _, w, we, s1, e1, c = state
        groups, Xs = self.groups, self.Xs
        A = np.linalg.inv(info)
        g = np.einsum("ij,ij->i", Xs @ A, Xs)
        first = Xs.T @ (self._gram_weight(w, we, c) * g)
        # Per-event gathers with np.take: fancy indexing of 2-D arrays is several times slower.
        has, rep, a, den = c["has"], c["rep"], c["a"], c["den"]
        m = (np.take(s1[has], rep, axis=0) - a[:, None] * np.take(e1[has], rep, axis=0)) / den[:, None]
        sg, eg = groups.risk_sums(w * g), groups.block_sums(we * g)
        mean_g = (np.take(sg[has], rep) - a * np.take(eg[has], rep)) / den
        second = m.T @ mean_g
        Am = m @ A
        h = Am / den[:, None]
        H0 = np.zeros((len(has), Xs.shape[1]))
        H1 = np.zeros_like(H0)
        H0[has] = np.add.reduceat(h, c["first"], axis=0)
        H1[has] = np.add.reduceat(h * a[:, None], c["first"], axis=0)
        H = np.take(np.cumsum(H0, axis=0), groups.group, axis=0)
        H[self.ev] -= np.take(H1, groups.group[self.ev], axis=0)
        third = Xs.T @ (w * np.einsum("ij,ij->i", Xs, H))
        fourth = m.T @ np.einsum("ij,ij->i", Am, m)
        return 0.5 * (first - second - 2 * third + 2 * fourth)

    def penalized(self, loglik: float, info: np.ndarray) -> float:
        sign, logdet = np.linalg.slogdet(info)
        return loglik + 0.5 * logdet if sign > 0 else -np.inf

    def firth_newton(self, beta: np.ndarray, free: np.ndarray | None = None, *, max_iter: int = 200,
                     tol: float = 1e-9, max_step: float = 1.0):
        """Maximise the penalized log-likelihood over the ``free`` coefficients (the others
        stay at ``beta``): steps I^-1 U* with the modified score U* = U + penalty gradient,
        at most ``max_step`` per coefficient (``coxphf``'s ``maxstep``), halved until the
        penalized likelihood does not fall.

        Returns beta, penalized loglik, state, information, iterations, converged.
        """
        beta = np.array(beta, dtype=float)
        free = np.ones(len(beta), bool) if free is None else free
        state = self.parts(beta)
        info = self.hessian(*state[2:])
        current = self.penalized(state[0], info)
        converged, iteration = False, 0
        for iteration in range(1, max_iter + 1):
            try:
                score = state[1] + self.penalty_gradient(state, info)
                step = np.zeros_like(beta)
                step[free] = np.linalg.solve(info[np.ix_(free, free)], score[free])
            except np.linalg.LinAlgError:  # no information at all (no events; see `information_rank`)
                break
            largest = np.max(np.abs(step)) if free.any() else 0.0
            if largest > max_step:
                step *= max_step / largest
            for _ in range(40):
                candidate = beta + step
                new_state = self.parts(candidate)
                new_info = self.hessian(*new_state[2:])
                new = self.penalized(new_state[0], new_info)
                if new >= current - 1e-12 * (1 + abs(current)):
                    break
                step /= 2
            else:  # no ascent left along the step: at the maximum to rounding
                converged = True
                break
            beta, state, info, current = candidate, new_state, new_info, new
            if np.max(np.abs(step), initial=0.0) < tol:
                converged = True
                break
        return beta, current, state, info, iteration, converged


class _FirthProfile:
    """Profile penalized likelihood intervals and likelihood-ratio p-values of a Firth fit.

    Each bound solves 2 (l*(b) - max over the other coefficients of l*) = chi2(1, 1-alpha)
    for one coefficient, by secant steps on the signed root (nearly linear in the
    coefficient), each point a constrained Firth fit warm-started from the last one.
    Where a bound cannot be found (the profile flattens out) the Wald bound is used and
    ``wald_fallback`` names the coefficient.
    """

    def __init__(self, lik: _Efron, beta: np.ndarray, penalized: float, info: np.ndarray, cov: np.ndarray, names,
                 rows):
        self.lik, self.beta, self.max, self.info, self.names = lik, beta, penalized, info, tuple(names)
        self.rows = np.asarray(rows, dtype=int)
        self.se = np.sqrt(np.diag(cov))
        self._intervals: dict[float, np.ndarray] = {}
        self._p: np.ndarray | None = None
        self.wald_fallback: list[str] = []

    def _profile(self, j: int, value: float, start: np.ndarray, info: np.ndarray | None = None):
        """Maximum of the penalized log-likelihood with coefficient ``j`` fixed at ``value``,
        from ``start``; with the information there, the other coefficients are first moved
        by their regression on ``j`` (``-I_ff^-1 I_fj`` per unit), which saves a Newton step."""
        free = np.ones(len(start), bool)
        free[j] = False
        start = start.copy()
        if info is not None:
            start[free] -= np.linalg.solve(info[np.ix_(free, free)], info[free, j]) * (value - start[j])
        start[j] = value
        beta, pl, _, info, *_ = self.lik.firth_newton(start, free, tol=1e-7)
        return pl, beta, info

    def p_values(self) -> np.ndarray:
        """Penalized likelihood-ratio test of each coefficient = 0 (1 df)."""
        if self._p is None:
            stat = np.array([2 * (self.max - self._profile(j, 0.0, self.beta, self.info)[0]) for j in self.rows])
            self._p = stats.chi2.sf(np.clip(stat, 0, None), 1)
        return self._p

    def intervals(self, alpha: float = 0.05) -> np.ndarray:
        """Bounds (log hazard ratios) of the coefficients in ``rows``, one row each."""
        if alpha not in self._intervals:
            z = stats.norm.ppf(1 - alpha / 2)
            out = np.empty((len(self.rows), 2))
            for i, j in enumerate(self.rows):
                for k, sign in enumerate((-1.0, 1.0)):
                    bound = self._bound(j, sign, z)
                    if bound is None:
                        bound = self.beta[j] + sign * z * self.se[j]
                        if self.names[j] not in self.wald_fallback:
                            self.wald_fallback.append(self.names[j])
                    out[i, k] = bound
            self._intervals[alpha] = out
        return self._intervals[alpha]

    def _bound(self, j: int, sign: float, z: float, limit: float = 40.0) -> float | None:
        centre, start, info = self.beta[j], self.beta, self.info
        se = self.se[j] if np.isfinite(self.se[j]) and self.se[j] > 0 else 1.0
        previous, below, above = (0.0, 0.0), 0.0, None
        d = min(z * se, limit)
        for _ in range(60):
            pl, start, info = self._profile(j, centre + sign * d, start, info)
            root = np.sqrt(max(0.0, 2 * (self.max - pl)))
            if abs(root - z) < 1e-6:
                return centre + sign * d
            if root < z:
                below = max(below, d)
            else:
                above = d if above is None else min(above, d)
            (d0, r0), previous = previous, (d, root)
            new = d + (z - root) * (d - d0) / (root - r0) if root != r0 else np.nan
            if above is None:  # not bracketed yet: go out, at least 1.5x and at most 4x as far
                new = float(np.clip(new, 1.5 * d, 4 * d)) if np.isfinite(new) else 2 * d
                if new > limit:
                    if d >= limit:
                        return None
                    new = limit
            elif not below < new < above:
                new = 0.5 * (below + above)
            d = new
        return None


def _column_scale(X: np.ndarray) -> np.ndarray:
    """1 for a 0/1 column, two standard deviations for any other (`CoxResult.runaway`)."""
    binary = np.all((X == 0) | (X == 1), axis=0)
    return np.where(binary, 1.0, 2 * X.std(axis=0))


def information_rank(durations, events, X, tol: float = 1e-9) -> list[int]:
    """Columns of ``X`` that carry no information of their own in the Cox model.

    The information at any coefficients is a sum of covariances over the risk sets at
    the event times, whose supports do not depend on the coefficients: a column is
    redundant at every ``b`` exactly when it is at 0. Walking the columns in order, a
    column is redundant when its information is (relatively) zero after removing what
    the columns kept before it explain: a linear combination of them (collinear
    dummies), or constant within every risk set (a level whose deals all left before
    the first event). Returns their indices; empty for a usable design.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    lik = _Efron(durations, events, X)
    if not lik.ev.any():
        return list(range(X.shape[1]))
    info = lik.hessian(*lik.parts(np.zeros(X.shape[1]))[2:])
    diag = np.diag(info)
    # What the column's information would be if every risk set were the whole sample: the
    # yardstick for "zero" that does not depend on the column's units.
    whole = lik.ev.sum() * X.var(axis=0)
    kept, redundant = [], []
    for j in range(X.shape[1]):
        if diag[j] <= tol * whole[j]:
            redundant.append(j)
            continue
        residual = diag[j]
        if kept:
            block = info[np.ix_(kept, kept)]
            cross = info[kept, j]
            residual = diag[j] - cross @ np.linalg.solve(block, cross)
        if residual <= 1e-7 * diag[j]:
            redundant.append(j)
        else:
            kept.append(j)
    return redundant


def fit_cox(durations, events, X, names=None, max_iter: int = 50, tol: float = 1e-9, *,
            firth: bool = False, profile=None) -> CoxResult:
    """Fit a Cox model with Efron ties by Newton-Raphson with step halving.

    Parameters
    ----------
    durations : array-like (n,)
    events : array-like of bool (n,)
        True where the event of interest happened (competing events and censoring: False).
    X : array-like (n, p)
        Covariates (no intercept).
    firth : bool
        Maximise Firth's penalized partial likelihood instead (for monotone likelihood:
        a level without events, a coefficient that runs off). Standard errors come
        from the information at the penalized estimate; `CoxResult.summary` then
        gives profile penalized likelihood intervals and likelihood-ratio p-values.
    profile : list of str, optional
        With ``firth``: the coefficients (by name) that get profile intervals and
        p-values; the others get Wald ones from the penalized fit. Default: all. Each
        costs about ten constrained fits, so on large data pass only those the
        penalty was needed for (their likelihood is far from quadratic; well-informed
        coefficients have Wald and profile intervals that agree).

    Notes
    -----
    A singular information matrix (a coefficient gone to infinity, a column without
    information) stops the iteration with ``converged=False`` rather than raising;
    `CoxResult.runaway` names the coefficients that ran off, and `information_rank`
    finds the columns to drop before fitting.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    lik = _Efron(durations, events, X)
    groups = lik.groups
    names = tuple(names or (f"x{i}" for i in range(p)))
    if firth:
        beta, penalized, rest, info, iterations, converged = lik.firth_newton(np.zeros(p), max_iter=max(max_iter, 200))
        loglik, rest = rest[0], rest[2:]
    else:
        penalized = None
        beta = np.zeros(p)
        loglik, grad, *rest = lik.parts(beta)
        converged, iterations = False, 0
        for iterations in range(1, max_iter + 1):
            info = lik.hessian(*rest)
            try:
                step = np.linalg.solve(info, grad)
            except np.linalg.LinAlgError:  # no information left: a coefficient has run off
                break
            if not np.all(np.isfinite(step)):
                break
            scale = 1.0
            while True:
                candidate = beta + scale * step
                new_loglik, new_grad, *new_rest = lik.parts(candidate)
                if new_loglik >= loglik - 1e-12 or scale < 1e-4:
                    break
                scale /= 2
            done = abs(new_loglik - loglik) < tol * (1 + abs(loglik))
            beta, loglik, grad, rest = candidate, new_loglik, new_grad, new_rest
            if done or np.max(np.abs(scale * step)) < 1e-10:
                converged = True
                break
        info = lik.hessian(*rest)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.full((p, p), np.nan)
    w, we, s1, e1, c = rest
    # Schoenfeld residuals: each event's covariates minus the (Efron) risk-set mean at its time.
    mean_at_time = (c["c0"][:, None] * s1 - c["c1"][:, None] * e1) / np.maximum(groups.deaths, 1)[:, None]
    residuals = (lik.Xs - mean_at_time[groups.group])[lik.ev]
    t = np.asarray(durations, dtype=float)
    event_times = t[groups.order][lik.ev]
    # Rank among event times (lifelines' "rank" transform); tied times share their average rank.
    rank_all = stats.rankdata(event_times)
    profiler = None
    if firth and np.isfinite(cov).all():
        rows = range(p) if profile is None else [names.index(name) for name in profile]
        profiler = _FirthProfile(lik, beta, penalized, info, cov, names, rows)
    return CoxResult(params=beta, cov=cov, names=names, loglik=loglik,
                     n=n, events=int(groups.deaths.sum()), iterations=iterations, converged=converged,
                     schoenfeld=residuals, event_ranks=rank_all, event_times=event_times,
                     method="firth" if firth else "cox", penalized_loglik=penalized,
                     x_scale=_column_scale(X), profile=profiler)
