"""Deals grouped by segment, and the Wilson interval of a share within a group.

`segment_codes` codes each deal by its level of a deal column, `segment_groups` lists
the groups an analysis reports (All deals, then each level with enough deals), and
`wilson` gives the score interval of the shares computed per group. The funnel,
transition, path, Markov and touchpoint analyses share them.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..exceptions import SmallSampleWarning, WorkbenchError, fixes
from .model import Dataset

OVERALL = "All deals"


def segment_codes(dataset: Dataset, by: str | None) -> tuple[np.ndarray, list[str]]:
    """Per deal, the code of its ``by`` level (-1: missing), and the level labels (sorted)."""
    if by is None:
        return np.zeros(len(dataset.deals), np.int64), []
    if by not in dataset.deals:
        raise WorkbenchError(f"Deals have no column `{by}`. " + fixes(f"use one of {dataset.attributes}"))
    levels = pd.Categorical(dataset.deals[by])
    return levels.codes.astype(np.int64), [str(c) for c in levels.categories]


def segment_groups(labels: list[str], sizes: np.ndarray, min_deals: int) -> list[tuple[str, int | None]]:
    """(label, level code) for All deals (code None) and each level with at least ``min_deals``
    deals; the smaller levels are left out with a `SmallSampleWarning`."""
    out: list[tuple[str, int | None]] = [(OVERALL, None)]
    for j, label in enumerate(labels):
        if sizes[j] >= min_deals:
            out.append((label, j))
        elif sizes[j]:
            warnings.warn(f"{label} has {sizes[j]} deals, fewer than {min_deals}: too few to show on its own, "
                          "its deals count in all deals.",
                          SmallSampleWarning, stacklevel=3)
    return out


def wilson(count, n, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``count / n`` (NaN where ``n`` is 0), vectorized."""
    from statsmodels.stats.proportion import proportion_confint

    count = np.asarray(count, float)
    n = np.asarray(n, float)
    ok = n > 0
    low, high = np.full(n.shape, np.nan), np.full(n.shape, np.nan)
    if ok.any():
        low[ok], high[ok] = proportion_confint(count[ok], n[ok], alpha=alpha, method="wilson")
    return low, high
