"""Deals simulated from a Fine-Gray model with known effects (Fine & Gray 1999, section 5).

Winning has cumulative incidence ``F1(t | x) = 1 - (1 - p (1 - exp(-t / scale)))^exp(x b)``, so
``exp(b)`` are the true subdistribution hazard ratios and ``P(win | x) = 1 - (1 - p)^exp(x b)``;
a deal that does not win is lost after an exponential time with rate ``exp(x g) / scale``.
Deals are created uniformly over ``window`` days before the cut-off, so a deal still open is
censored at its age (independent censoring).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.seeds import seeded_rng


@dataclass(frozen=True)
class Simulated:
    X: np.ndarray
    durations: np.ndarray
    status: np.ndarray      # 0 open, 1 won, 2 lost
    age: np.ndarray         # days from creation to the cut-off
    event_time: np.ndarray  # days to the win or loss, also for deals still open
    beta: np.ndarray
    p: float
    scale: float

    def true_cif(self, x, t) -> np.ndarray:
        """The true cumulative incidence of winning by ``t`` days for profile ``x``."""
        risk = np.exp(np.asarray(x, float) @ self.beta)
        return 1 - (1 - self.p * (1 - np.exp(-np.asarray(t, float) / self.scale))) ** risk


def simulate(seed: str, n: int, beta=(0.7, -0.4), loss=(0.3, 0.2), *, p: float = 0.6, scale: float = 100.0,
             window: float = 365.0) -> Simulated:
    """``n`` deals with a 0/1 covariate (40% ones) and, when ``beta`` has two effects, a standard normal one."""
    rng = seeded_rng(seed)
    beta, loss = np.asarray(beta, float), np.asarray(loss, float)[: len(beta)]
    X = np.column_stack([rng.random(n) < 0.4, rng.standard_normal(n)])[:, : len(beta)].astype(float)
    risk = np.exp(X @ beta)
    win_prob = 1 - (1 - p) ** risk
    won = rng.random(n) < win_prob
    u = rng.random(n)
    # Invert F1(t) / P(win) = u for the time to a win.
    t_win = -scale * np.log(1 - (1 - (1 - u * win_prob) ** (1 / risk)) / p)
    t_loss = rng.exponential(scale / np.exp(X @ loss))
    event_time = np.where(won, t_win, t_loss)
    age = rng.uniform(0, window, n)
    status = np.where(event_time <= age, np.where(won, 1, 2), 0)
    return Simulated(X=X, durations=np.minimum(event_time, age), status=status, age=age, event_time=event_time,
                     beta=beta, p=p, scale=scale)
