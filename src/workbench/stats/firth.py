"""Firth's penalized-likelihood logistic regression, for data with separation.

When a level of a covariate has only wins (or only losses) the maximum-likelihood
log odds ratio is infinite: statsmodels stops with huge coefficients and standard
errors, or a separation error. Firth (1993) adds half the log-determinant of the
Fisher information (Jeffreys' prior) to the log-likelihood; the penalized estimate
is finite and has less small-sample bias. Newton steps use the modified score::

    U*(b) = X' (y - p + h (1/2 - p)),   h = diag(W^1/2 X (X'WX)^-1 X' W^1/2),  W = diag(p (1 - p))

with step-halving on the penalized log-likelihood, as R's ``logistf`` does. Wald
intervals come from the inverse of the information ``X'WX`` at the estimate
(``logistf`` reports profile-likelihood intervals by default; Wald is what its
``pl = FALSE`` gives).

`logit_newton` is the plain maximum-likelihood Newton iteration on the same arrays.

For a saturated one-way layout (an intercept and the dummies of one factor) the
penalty factorizes by level, and the estimate is the empirical log odds with 1/2
added to every cell; the tests check that by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.special import expit, log_expit


@dataclass(frozen=True)
class FirthFit:
    """A Firth logistic fit: coefficients, their covariance, the penalized log-likelihood."""

    params: np.ndarray
    cov: np.ndarray
    loglik: float
    converged: bool
    iterations: int
    names: tuple[str, ...] = ()

    @property
    def bse(self) -> np.ndarray:
        """Standard errors from the penalized information."""
        return np.sqrt(np.diag(self.cov))

    def predict(self, X) -> np.ndarray:
        """Predicted probabilities for the rows of ``X``."""
        return expit(np.asarray(X, float) @ self.params)


def _information(X, p) -> tuple[np.ndarray, np.ndarray]:
    """``X'WX`` and ``W^1/2 X``: scaling the rows by the root weight once is cheaper than ``(X * w).T @ X``."""
    scaled = X * np.sqrt(p * (1 - p))[:, None]
    return scaled.T @ scaled, scaled


def penalized_loglik(beta, X, y) -> float:
    """Log-likelihood plus half the log-determinant of ``X'WX``."""
    eta = X @ beta
    loglik = float(np.sum(y * log_expit(eta) + (1 - y) * log_expit(-eta)))
    sign, logdet = np.linalg.slogdet(_information(X, expit(eta))[0])
    return loglik + 0.5 * logdet if sign > 0 else -np.inf


def _hat_and_information(X, p):
    """Diagonal of the hat matrix (squared columns of ``L^-1 (W^1/2 X)'``, ``LL' = X'WX``) and ``X'WX``."""
    info, scaled = _information(X, p)
    lower = np.linalg.cholesky(info)
    root = solve_triangular(lower, scaled.T, lower=True, check_finite=False)
    return np.sum(root * root, axis=0), info


def logit_newton(X, y, *, start=None, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray | None:
    """Maximum-likelihood logistic coefficients by Newton's method, for fits repeated on many
    deals (cross-validation folds, the start of statsmodels' fit). None when the information
    turns singular or the steps do not settle within ``max_iter``: the signs of separation."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    beta = np.zeros(X.shape[1]) if start is None else np.array(start, float)
    for _ in range(max_iter):
        p = expit(X @ beta)
        info, _ = _information(X, p)
        try:
            step = cho_solve(cho_factor(info), X.T @ (y - p))
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)):
            return None
        beta = beta + step
        if np.max(np.abs(step)) <= tol:
            return beta
    return None


def firth_logit(X, y, *, names=(), start=None, max_iter: int = 100, tol: float = 1e-9,
                max_step: float = 5.0) -> FirthFit:
    """Fit a logistic regression by Firth's penalized likelihood.

    Parameters
    ----------
    X : array (n, k)
        The design, intercept included; full column rank.
    y : array (n,)
        0/1 outcomes.
    start : array (k,), optional
        Starting coefficients (default zeros).
    max_step : float
        Largest change of any coefficient in one Newton step (``logistf``'s ``maxstep``).
    tol : float
        Converged when no coefficient moves by more than this.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    beta = np.zeros(X.shape[1]) if start is None else np.array(start, float)
    current = penalized_loglik(beta, X, y)
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        p = expit(X @ beta)
        h, info = _hat_and_information(X, p)
        score = X.T @ (y - p + h * (0.5 - p))
        step = np.linalg.solve(info, score)
        largest = np.max(np.abs(step))
        if largest > max_step:
            step *= max_step / largest
        for _ in range(30):  # step-halving: the penalized likelihood must not fall
            candidate = penalized_loglik(beta + step, X, y)
            if candidate >= current - 1e-10 * abs(current):
                break
            step /= 2
        beta = beta + step
        current = candidate
        if np.max(np.abs(step)) <= tol:
            converged = True
            break
    _, info = _hat_and_information(X, expit(X @ beta))
    return FirthFit(params=beta, cov=np.linalg.inv(info), loglik=current, converged=converged,
                    iterations=iteration, names=tuple(names))
