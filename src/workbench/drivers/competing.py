"""What goes with winning, from every deal, open ones included: a Fine-Gray model.

- `competing_drivers`: subdistribution hazard ratios of winning (`workbench.stats.finegray`,
  as R's ``cmprsk::crr``), every deal counted: won deals at their close, lost deals as
  the competing outcome, open deals for as long as they have been open. A ratio above 1
  means the share of deals won by any day rises faster: the deals win sooner, more
  often, or both.

The logistic model (`workbench.drivers.model`) needs a mature cohort, deals old enough
to judge after ``mature_days``; on a young export that cohort is small or empty, while
this model uses every deal. The covariates are chosen, transformed and folded exactly as
there (the same `_design`). A level without a single win would get a ratio of 0: its
deals are left out of the model with a note (no penalty can give such a level a
meaningful ratio, and counting them with the reference level would bias that).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .. import tables
from ..dataset.model import Dataset
from ..exceptions import SeparationWarning, SmallSampleWarning, WorkbenchError, fixes
from ..stats.finegray import COMPETING, EVENT, FineGrayResult, fit_fine_gray
from ..timeunits import span
from .cohort import LEAKY_WORDS, candidate_columns, leaky_word
from .leakage import decided_by_outcome
from .model import _check_rank, _columns, _design
from ..results import Result, axes

DAY = pd.Timedelta(days=1)
#: The mature-cohort logistic model is preferred when its cohort holds at least this many deals and
#: this many won and not won (about 10 events per effect for a handful of effects); below, Fine-Gray.
MIN_MATURE_DEALS, MIN_MATURE_OUTCOMES = 200, 20
#: A coefficient beyond this (a ratio past e^10) means the fit ran off: that level is left out.
MAX_COEF = 10.0


@dataclass(frozen=True)
class CompetingDrivers(Result):
    """A Fine-Gray model of winning, lost deals competing and open deals censored.

    Attributes
    ----------
    table : DataFrame
        One row per effect, ranked by p-value then size: ``feature``, ``level``,
        ``ratio`` (subdistribution hazard ratio against ``reference_levels[feature]``, or
        per the unit in ``level``), ``ci_low``, ``ci_high``, ``p_value``, ``coef``,
        ``se`` (robust), ``n`` (deals at the level).
    left_out : dict
        ``feature = level`` -> deals left out because the level never won.
    fit : FineGrayResult
        The fitted model, design columns named as in ``labels``.
    """

    table: pd.DataFrame
    notes: list[str]
    held_out: dict[str, str]
    reference_levels: dict[str, str]
    dropped: dict[str, int]
    excluded: int
    left_out: dict[str, int]
    n: int
    won: int
    lost: int
    open: int
    alpha: float
    covariates: tuple[str, ...]
    method: str = "Fine-Gray"
    fit: FineGrayResult | None = field(repr=False, default=None)



    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return f"<ul>{notes}</ul>" + tables.to_html(self.table, index=False)

    def findings(self, alpha: float | None = None):
        """The strongest significant effects in plain words (`workbench.findings.competing_driver_findings`)."""
        from ..findings import competing_driver_findings

        return competing_driver_findings(self, alpha=self.alpha if alpha is None else alpha)

    def plot(self, *, ax=None):
        """Forest plot of the ratios (`workbench.plots.subdistribution_ratios`); returns the axes."""
        from ..plots import subdistribution_ratios

        return subdistribution_ratios(self, alpha=self.alpha, ax=axes(ax))


def choose_model(dataset: Dataset, mature_days: int | None) -> tuple[str, str]:
    """Which drivers model fits these data, ``logistic`` or ``fine-gray``, and why in a sentence.

    The logistic model on the mature cohort (`mature_cohort`) when that cohort holds at least
    `MIN_MATURE_DEALS` deals and `MIN_MATURE_OUTCOMES` won and not won, or when it is all there
    is (no dates, or every deal closed: final outcomes); otherwise Fine-Gray on every deal.
    """
    from .cohort import mature_cohort

    if not dataset.has_dates:
        return "logistic", "The data have no dates, so the model compares won and lost deals by final outcome."
    if mature_days is None and not dataset.deals["outcome"].eq("open").any():
        return "logistic", "Every deal is closed, so a logistic regression on final outcomes uses every deal."
    every_deal = ("so the model uses every deal instead, open ones for as long as they have been open (a Fine-Gray "
                  "model of winning, lost deals competing).")
    if mature_days is None:
        still_open = int(dataset.deals["outcome"].eq("open").sum())
        return "fine-gray", (f"{still_open:,} deals are still open and no horizon (`mature_days`) is set to judge "
                             f"deals by, {every_deal}")
    try:
        cohort = mature_cohort(dataset, mature_days)
        n, won = len(cohort), int(cohort["won"].sum())
    except WorkbenchError:
        n = won = 0
    horizon = f"{span(mature_days)} after creation"
    if n >= MIN_MATURE_DEALS and min(won, n - won) >= MIN_MATURE_OUTCOMES:
        return "logistic", (f"{n:,} deals are old enough to judge {horizon} ({won:,} won): enough for the "
                            "logistic regression of winning within that time, which the model uses.")
    return "fine-gray", (f"Only {n:,} deals are old enough to judge {horizon} ({won:,} won), fewer than "
                         f"{MIN_MATURE_DEALS} deals with {MIN_MATURE_OUTCOMES} won and {MIN_MATURE_OUTCOMES} not won, "
                         + every_deal)


def deal_outcomes(dataset: Dataset, deals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Days from creation to the close (to ``as_of`` for open deals) and the status code:
    1 won, 2 lost, 0 open."""
    end = deals["closed_at"].fillna(dataset.as_of)
    days = ((end - deals["created_at"]) / DAY).clip(lower=0).to_numpy(dtype=float)
    status = np.select([deals["outcome"].eq("won"), deals["outcome"].eq("lost")], [EVENT, COMPETING], 0)
    return days, status


def competing_drivers(dataset: Dataset, covariates: Sequence[str] | None = None, *, min_level: int = 30,
                      alpha: float = 0.05, exclude: Sequence[str] = LEAKY_WORDS) -> CompetingDrivers:
    """Which attributes go with winning sooner and more often, each adjusted for the others.

    Parameters
    ----------
    covariates : list of str, optional
        As in `workbench.drivers.win_drivers` (default: `candidate_columns` on every deal).
    min_level : int
        Levels with fewer deals are folded into ``other (<min_level deals)``.

    Raises
    ------
    WorkbenchError
        No dates, no win, or no usable covariate.
    """
    if not dataset.has_dates:
        raise WorkbenchError("The data have no dates, so there is no time to a win to model. "
                             + fixes("map `created_at` and `closed_at` in dataset.yaml"))
    deals = dataset.deals.reset_index(drop=True)
    deals = deals.assign(won=deals["outcome"].eq("won").to_numpy())
    if not deals["won"].any():
        raise WorkbenchError("No deal is won: there is nothing to model. "
                             + fixes("check the `outcome` mapping under `values:` in dataset.yaml"))
    notes = []
    if covariates is None:
        covariates, held_out = candidate_columns(dataset, deals, exclude)
    else:
        covariates, held_out = list(covariates), {}
        notes += [f"`{c}` is used as asked, though its name contains `{leaky_word(c, exclude)}`: check it is known "
                  "before the deal closes." for c in covariates if leaky_word(c, exclude)]
        notes += [f"`{c}` is used as asked, though it is decided by the outcome ({why}): its effect only restates "
                  "the outcome." for c, why in decided_by_outcome(dataset, covariates).items()]
    if not covariates:
        raise WorkbenchError("No covariate to model: every column was held out ("
                             + "; ".join(f"`{c}`: {why}" for c, why in held_out.items()) + "). "
                             + fixes("pass `covariates=` explicitly", "map more deal attributes in dataset.yaml"))
    design = _design(dataset, deals, covariates, min_level)
    days, status = deal_outcomes(dataset, deals[design.complete])
    X, names = _columns(design)
    keep, left_out = _without_winless_levels(X, names, status, design)
    X, days, status = X[keep], days[keep], status[keep]
    used = [j for j in range(X.shape[1]) if np.ptp(X[:, j]) > 0] if len(X) else []
    X, names = X[:, used], [names[j] for j in used]
    if not names or not (status == EVENT).any():
        raise WorkbenchError("After leaving out the levels without a win, no covariate varies: there is nothing to "
                             "compare. " + fixes("pass other `covariates=`", "lower `min_level`"))
    _check_rank(np.column_stack([np.ones(len(X)), X]), ["Intercept"] + names, design.labels)
    fit = fit_fine_gray(days, status, X, names)
    runaway = [n for n, b in zip(names, fit.params) if abs(b) > MAX_COEF] if fit.converged else list(names)
    if runaway and len(runaway) < len(names):
        rows = ~np.any(X[:, [names.index(n) for n in runaway]] != 0, axis=1)
        for n in runaway:
            left_out[" = ".join(design.labels[n])] = int((X[:, names.index(n)] != 0).sum())
        X, days, status = X[rows], days[rows], status[rows]
        kept = [j for j, n in enumerate(names) if n not in runaway]
        X, names = X[:, kept], [names[j] for j in kept]
        fit = fit_fine_gray(days, status, X, names)
    table = _table(fit, design, alpha)
    counts = {"won": int((status == EVENT).sum()), "lost": int((status == COMPETING).sum()),
              "open": int((status == 0).sum())}
    notes, warn = _notes(notes, design, held_out, left_out, counts, len(names), fit)
    for text, category in warn:
        warnings.warn(text, category, stacklevel=2)
    return CompetingDrivers(table=table, notes=notes, held_out=held_out, reference_levels=design.references,
                            dropped=design.dropped, excluded=design.excluded, left_out=left_out, n=len(days),
                            alpha=alpha, covariates=tuple(covariates), fit=fit, **counts)


def _without_winless_levels(X, names, status, design) -> tuple[np.ndarray, dict[str, int]]:
    """Rows to keep: those outside any level (or ``= 0`` indicator) whose deals never won."""
    keep = np.ones(len(X), bool)
    left_out = {}
    won = status == EVENT
    for j, name in enumerate(names):
        if name.startswith("x") and "[T." not in name:
            continue  # a number, not a level
        members = X[:, j] != 0
        if members.any() and not won[members].any():
            keep &= ~members
            left_out[" = ".join(design.labels[name])] = int(members.sum())
    return keep, left_out


def _table(fit: FineGrayResult, design, alpha: float) -> pd.DataFrame:
    summary = fit.summary(alpha)
    rows = [{"feature": design.labels[name][0], "level": design.labels[name][1], "ratio": r["exp(coef)"],
             "ci_low": r["ci_low"], "ci_high": r["ci_high"], "p_value": r["p"], "coef": r["coef"], "se": r["se"],
             "n": design.counts[name]} for name, r in summary.iterrows()]
    table = pd.DataFrame(rows, columns=["feature", "level", "ratio", "ci_low", "ci_high", "p_value", "coef", "se", "n"])
    return (table.assign(_size=-table["coef"].abs()).sort_values(["p_value", "_size"], kind="stable")
            .drop(columns="_size").reset_index(drop=True))


def _notes(notes, design, held_out, left_out, counts, effects, fit):
    """Plain-language notes, and the (text, warning class) pairs to warn with."""
    total = sum(counts.values())
    notes = [f"Every deal counts: {total:,} deals, {counts['won']:,} won, {counts['lost']:,} lost and "
             f"{counts['open']:,} still open, each open deal for as long as it has been open (a Fine-Gray model; "
             "lost deals can no longer win)."] + notes
    if design.excluded:
        notes.append(f"{design.excluded} deals dropped for a missing covariate ("
                     + ", ".join(f"`{c}`: {k}" for c, k in design.dropped.items()) + ").")
    notes += design.notes
    notes += [f"`{c}` held out: {why}." for c, why in held_out.items()]
    if design.references:
        notes.append("Reference levels (ratio 1): " + ", ".join(f"`{c}` = {v!r}" for c, v in design.references.items())
                     + ".")
    warn = []
    if left_out:
        text = ("Left out of the model because none of their deals won, so no ratio can be estimated (it would be 0): "
                + "; ".join(f"{level} ({k} deals)" for level, k in left_out.items()) + ".")
        notes.append(text)
        warn.append((text, SeparationWarning))
    if not fit.converged:
        notes.append("The fit did not converge: treat its estimates as rough.")
    if counts["won"] < 10 * effects:
        text = (f"Only {counts['won']} won deals for {effects} effects (fewer than 10 per effect): "
                "estimates are unstable.")
        notes.append(text)
        warn.append((text, SmallSampleWarning))
    return notes, warn
