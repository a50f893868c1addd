"""Deal cycle times as survival analysis.

Time runs from ``created_at`` (or from the first entry into a chosen stage) to the
close; open deals are censored at ``as_of``; won and lost are competing outcomes.
Dropping open deals, or treating lost deals as censored, gives wrong answers: the
tests show both on the sample data with known truth.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from . import tables
from .exceptions import SmallSampleWarning, WorkbenchError, fixes
from .groups import OVERALL
from .model import Dataset
from .survival import CompetingRisks, competing_risks

DAY = pd.Timedelta(days=1)
CAUSES = ("won", "lost")
DEFAULT_DAYS = (30, 90, 180, 365)


def durations(dataset: Dataset, from_stage: str | None = None) -> pd.DataFrame:
    """One row per deal: ``days`` to close (or to ``as_of`` if open) and ``event``.

    Parameters
    ----------
    from_stage : str, optional
        Start the clock at the deal's first entry into this stage instead of
        ``created_at``; deals that never entered it are left out.

    Returns
    -------
    DataFrame
        The deal columns plus ``start``, ``days`` (float, >= 0) and ``event``
        (``won``, ``lost`` or ``open`` = censored).
    """
    deals = dataset.deals
    if from_stage is None:
        start = deals["created_at"]
        frame = deals
    else:
        if from_stage not in dataset.stages:
            raise WorkbenchError(f"`{from_stage}` is not one of the open stages {list(dataset.stages)}. "
                                 + fixes("pick a stage from the dataset's `stages`"))
        history = dataset.stage_history
        first = history[history["stage"] == from_stage].groupby("deal_id")["entered_at"].min()
        frame = deals[deals["deal_id"].isin(first.index)]
        start = frame["deal_id"].map(first)
    end = frame["closed_at"].fillna(dataset.as_of)
    days = ((end - start) / DAY).clip(lower=0)
    return frame.assign(start=start, days=days.to_numpy(), event=frame["outcome"].to_numpy())


@dataclass(frozen=True)
class CycleTimes:
    """Competing-risks fits of time to close, overall and per segment.

    ``fits`` maps a segment label (``OVERALL`` for all deals) to its
    `CompetingRisks`; ``by`` names the segment column (None: overall only);
    ``from_stage`` the stage whose first entry starts the clock (None: creation).
    """

    fits: dict[str, CompetingRisks]
    by: str | None
    counts: pd.DataFrame
    horizon: float
    alpha: float
    warnings: list[str] = field(default_factory=list)
    from_stage: str | None = None

    @property
    def clock(self) -> str:
        """What the days count from, for axis labels: ``Days since created`` or since a stage."""
        return f"Days since entering {self.from_stage}" if self.from_stage else "Days since created"

    def summary(self, days: Sequence[float] = DEFAULT_DAYS) -> pd.DataFrame:
        """Per segment: counts, median and quartiles of days to close with their CIs
        (``<q>_low``/``<q>_high``; ``inf`` where a curve never gets there),
        win probability at the horizon with CI, cumulative incidence of winning at ``days``."""
        rows = []
        for label, fit in self.fits.items():
            row = {"segment": label, **self.counts.loc[label].to_dict()}
            for name, q in (("median", 0.5), ("q25", 0.25), ("q75", 0.75)):
                est = fit.quantile(q)
                row[f"{name}_days"] = est["estimate"]
                row[f"{name}_low"], row[f"{name}_high"] = est["lower"], est["upper"]
            low, high = fit.cif_ci("won", self.horizon)
            row["win_probability"] = float(fit.cif("won", self.horizon)[0])
            row["win_probability_low"], row["win_probability_high"] = float(low[0]), float(high[0])
            row["loss_probability"] = float(fit.cif("lost", self.horizon)[0])
            for d in days:
                row[f"cif_won_{int(d)}"] = float(fit.cif("won", d)[0])
            rows.append(row)
        return pd.DataFrame(rows)

    def cif_table(self, days: Sequence[float] = DEFAULT_DAYS, cause: str = "won") -> pd.DataFrame:
        """Tidy: segment, day, cumulative incidence of ``cause`` with its CI, deals at risk."""
        rows = []
        for label, fit in self.fits.items():
            low, high = fit.cif_ci(cause, days)
            for d, est, lo, hi, n in zip(days, fit.cif(cause, days), low, high, fit.at_risk(days)):
                rows.append({"segment": label, "day": d, "cause": cause, "estimate": est,
                             "ci_low": lo, "ci_high": hi, "at_risk": int(n)})
        return pd.DataFrame(rows)

    def curves(self) -> pd.DataFrame:
        """Tidy step curves of every segment (for plotting or export)."""
        return pd.concat([fit.curves().assign(segment=label) for label, fit in self.fits.items()],
                         ignore_index=True)

    def _repr_html_(self) -> str:
        return tables.to_html(self.summary(), index=False)


def cycle_times(dataset: Dataset, by: str | None = None, *, from_stage: str | None = None,
                horizon: float = 365, alpha: float = 0.05, min_deals: int = 30) -> CycleTimes:
    """Kaplan-Meier of time to close and Aalen-Johansen of winning and losing.

    Parameters
    ----------
    by : str, optional
        A deal column to split by; each level gets its own fit beside the overall one.
        Levels with fewer than ``min_deals`` deals are left out with a warning.
    from_stage : str, optional
        Start the clock at the first entry into this stage.
    horizon : float
        Day at which the eventual win probability is read.
    """
    frame = durations(dataset, from_stage)
    if frame.empty:
        raise WorkbenchError("No deals to analyse" + (f" (none entered `{from_stage}`)" if from_stage else "")
                             + ". " + fixes("check the segment filter", "pick another stage"))
    groups = {OVERALL: frame}
    notes = []
    if by is not None:
        if by not in frame:
            raise WorkbenchError(f"Deals have no column `{by}`. " + fixes(f"use one of {dataset.attributes}"))
        for level, part in frame.groupby(by, sort=True):
            if len(part) < min_deals:
                notes.append(f"`{by}` = {level!r} has {len(part)} deals (< {min_deals}); left out.")
                continue
            groups[str(level)] = part
        missing = int(frame[by].isna().sum())
        if missing:
            notes.append(f"{missing} deals have no `{by}`; they count only in {OVERALL!r}.")
    for note in notes:
        warnings.warn(note, SmallSampleWarning, stacklevel=2)
    fits = {label: competing_risks(part["days"], part["event"], CAUSES, alpha, censored="open")
            for label, part in groups.items()}
    counts = pd.DataFrame({label: {"deals": len(part), **{o: int((part["event"] == o).sum())
                                                          for o in ("won", "lost", "open")}}
                           for label, part in groups.items()}).T
    return CycleTimes(fits=fits, by=by, counts=counts, horizon=horizon, alpha=alpha, warnings=notes,
                      from_stage=from_stage)


def naive_estimates(dataset: Dataset, days: Sequence[float] = DEFAULT_DAYS, horizon: float = 365) -> dict:
    """The two common wrong answers, kept to show in tests and reports what they miss.

    ``closed_only``: open deals dropped (win share among closed, median of closed
    durations). ``lost_as_censored``: 1 - Kaplan-Meier with lost deals censored.
    """
    frame = durations(dataset)
    closed = frame[frame["event"] != "open"]
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(frame["days"], frame["event"] == "won")
    return {
        "closed_only": {
            "win_probability": float((closed["event"] == "won").mean()),
            "median_days_to_close": float(closed["days"].median()),
            "cif_won": {d: float(((closed["event"] == "won") & (closed["days"] <= d)).mean()) for d in days},
        },
        "lost_as_censored": {
            "win_probability": float(1 - km.predict(horizon)),
            "cif_won": {d: float(1 - km.predict(d)) for d in days},
        },
    }


def compare_segments(dataset: Dataset, by: str, *, min_deals: int = 30, correction: str = "fdr_bh") -> pd.DataFrame:
    """Do segments differ in time to close, in winning, in losing?

    For each outcome (``close``: time to any close; ``won`` and ``lost``:
    cause-specific, the competing outcome censored) a k-group log-rank test over
    all levels, then every pair of levels, with p-values corrected for multiple
    comparisons (``correction`` as in statsmodels' ``multipletests``).

    Returns
    -------
    DataFrame
        ``outcome``, ``comparison`` (``all`` or ``A vs B``), ``statistic``, ``df``,
        ``p_value``, ``p_adjusted``.
    """
    from lifelines.statistics import multivariate_logrank_test, pairwise_logrank_test
    from statsmodels.stats.multitest import multipletests

    frame = durations(dataset)
    frame = frame[frame[by].notna()]
    sizes = frame[by].value_counts()
    frame = frame[frame[by].isin(sizes[sizes >= min_deals].index)]
    if frame[by].nunique() < 2:
        raise WorkbenchError(f"`{by}` has fewer than two levels with {min_deals}+ deals: nothing to compare. "
                             + fixes("lower `min_deals`", "compare by another column"))
    rows = []
    for outcome, observed in (("close", frame["event"] != "open"), ("won", frame["event"] == "won"),
                              ("lost", frame["event"] == "lost")):
        overall = multivariate_logrank_test(frame["days"], frame[by], observed)
        rows.append({"outcome": outcome, "comparison": "all", "statistic": overall.test_statistic,
                     "df": overall.degrees_of_freedom, "p_value": overall.p_value})
        pairs = pairwise_logrank_test(frame["days"], frame[by], observed).summary
        for (a, b), row in pairs.iterrows():
            rows.append({"outcome": outcome, "comparison": f"{a} vs {b}", "statistic": row["test_statistic"],
                         "df": 1, "p_value": row["p"]})
    table = pd.DataFrame(rows)
    table["p_adjusted"] = multipletests(table["p_value"], method=correction)[1]
    return table


@dataclass(frozen=True)
class SpeedDrivers:
    """Cause-specific Cox model for time to an outcome, and its PH check."""

    table: pd.DataFrame
    ph_test: pd.DataFrame
    fit: object
    cause: str
    reference_levels: dict
    excluded: int

    def violations(self, alpha: float = 0.01) -> list[str]:
        """Plain-language notes for covariates whose effect changes over time."""
        bad = self.ph_test[self.ph_test["p_value"] < alpha]
        return [f"The effect of {row.covariate} on the speed of {self.cause} deals changes over the life of a "
                f"deal (Schoenfeld test p={row.p_value:.2g}), so its hazard ratio is an average over time."
                for row in bad.itertuples()]

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


def design_matrix(frame: pd.DataFrame, covariates: Sequence[str]) -> tuple[pd.DataFrame, dict]:
    """Dummy-code categorical covariates (reference: the most common level) and scale
    numeric ones per sensible unit: ``amount`` per doubling (log2), others as given."""
    parts, references = [], {}
    for name in covariates:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col):
            if name == "amount":
                parts.append(np.log2(col.clip(lower=1)).rename("amount (per doubling)"))
            else:
                parts.append(col.astype(float).rename(name))
        else:
            reference = col.value_counts().index[0]
            references[name] = reference
            dummies = pd.get_dummies(col, prefix=name, prefix_sep="=", dtype=float)
            parts.append(dummies.drop(columns=f"{name}={reference}"))
    return pd.concat(parts, axis=1), references


def speed_drivers(dataset: Dataset, covariates: Sequence[str], *, cause: str = "won",
                  alpha: float = 0.05) -> SpeedDrivers:
    """What speeds deals up: a cause-specific Cox model for time to ``cause``.

    Deals closed the other way are censored at their close (cause-specific hazard).
    Rows with a missing covariate are excluded and counted, never dropped silently.
    """
    from .coxph import fit_cox

    frame = durations(dataset)
    complete = frame[list(covariates)].notna().all(axis=1)
    excluded = int((~complete).sum())
    frame = frame[complete]
    X, references = design_matrix(frame, covariates)
    fit = fit_cox(frame["days"].to_numpy(), (frame["event"] == cause).to_numpy(), X.to_numpy(),
                  names=list(X.columns))
    table = fit.summary(alpha).sort_values("p_value", ignore_index=True)
    return SpeedDrivers(table=table, ph_test=fit.proportional_hazards_test(), fit=fit, cause=cause,
                        reference_levels=references, excluded=excluded)
