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

from .. import tables
from ..dataset.groups import OVERALL
from ..dataset.model import Dataset
from ..exceptions import SeparationWarning, SmallSampleWarning, WorkbenchError, fixes
from ..results import Result, axes
from ..stats.survival import CompetingRisks, competing_risks

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
class CycleTimes(Result):
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

    @property
    def table(self) -> pd.DataFrame:
        """The `summary` at the default days: one row per segment."""
        return self.summary()

    @property
    def notes(self) -> list[str]:
        """The fits' caveats (``warnings``) in plain words."""
        return list(self.warnings)

    def findings(self, *, unit=None):
        """Time to close and the outcomes at the horizon, for all deals, in words
        (`workbench.findings.time_to_close_findings`, `outcome_findings`)."""
        from ..findings import Findings, outcome_findings, time_to_close_findings

        options = {} if unit is None else {"unit": unit}
        return Findings([*time_to_close_findings(self, **options), *outcome_findings(self, **options)])

    def plot(self, *, ax=None, **kwargs):
        """Share of deals closed over time per segment (`workbench.plots.survival_curves`); returns the axes."""
        from ..plots import survival_curves

        return survival_curves(self, ax=axes(ax), **kwargs)

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

    For time to any close (``close``) a k-group log-rank test over all levels; for
    ``won`` and ``lost``, Gray's test of the cumulative incidence (`workbench.stats.gray`,
    as R's ``cmprsk::cuminc``): whether the share of deals won (lost) by each day differs,
    the other outcome competing and open deals censored. A cause-specific log-rank test
    would compare the rate of winning among deals still open instead, which is not the
    share a client reads ("wins more often"): a segment that loses fast wins less often at
    the same cause-specific rate. Then every pair of levels, the same way, with p-values
    corrected for multiple comparisons (``correction`` as in statsmodels' ``multipletests``).

    Returns
    -------
    DataFrame
        ``outcome``, ``comparison`` (``all`` or ``A vs B``), ``statistic``, ``df``,
        ``p_value``, ``p_adjusted``, ``test`` (``log-rank`` or ``Gray``).
    """
    from itertools import combinations

    from lifelines.statistics import multivariate_logrank_test, pairwise_logrank_test
    from statsmodels.stats.multitest import multipletests

    from ..stats.gray import gray_test

    frame = durations(dataset)
    frame = frame[frame[by].notna()]
    sizes = frame[by].value_counts()
    frame = frame[frame[by].isin(sizes[sizes >= min_deals].index)]
    if frame[by].nunique() < 2:
        raise WorkbenchError(f"`{by}` has fewer than two levels with {min_deals}+ deals: nothing to compare. "
                             + fixes("lower `min_deals`", "compare by another column"))
    rows = []
    # The levels as codes in their sorted order (lifelines' order of the pairs): each deal's level is
    # compared as a number, not as text once per level and pair (seconds at a million deals).
    codes, levels = pd.factorize(frame[by], sort=True)
    closed = frame["event"] != "open"
    overall = multivariate_logrank_test(frame["days"], codes, closed)
    rows.append({"outcome": "close", "comparison": "all", "statistic": overall.test_statistic,
                 "df": overall.degrees_of_freedom, "p_value": overall.p_value, "test": "log-rank"})
    pairs = pairwise_logrank_test(frame["days"], codes, closed).summary
    for (a, b), row in pairs.iterrows():
        rows.append({"outcome": "close", "comparison": f"{levels[a]} vs {levels[b]}",
                     "statistic": row["test_statistic"], "df": 1, "p_value": row["p"], "test": "log-rank"})
    days, events, groups = frame["days"].to_numpy(), frame["event"].to_numpy(dtype=object), frame[by].to_numpy()
    tested = {"all": gray_test(days, events, groups, censored="open")}
    code_of = {level: i for i, level in enumerate(levels)}
    for a, b in combinations(sorted(levels, key=str), 2):
        pair = (codes == code_of[a]) | (codes == code_of[b])
        tested[f"{a} vs {b}"] = gray_test(days[pair], events[pair], groups[pair], censored="open")
    for outcome in CAUSES:
        for comparison, tests in tested.items():
            test = tests.get(outcome)
            rows.append({"outcome": outcome, "comparison": comparison,
                         "statistic": np.nan if test is None else test.statistic,
                         "df": (len(pd.unique(groups)) - 1 if comparison == "all" else 1) if test is None else test.df,
                         "p_value": np.nan if test is None else test.p_value, "test": "Gray"})
    table = pd.DataFrame(rows)
    tested_rows = table["p_value"].notna()
    table["p_adjusted"] = np.nan
    table.loc[tested_rows, "p_adjusted"] = multipletests(table.loc[tested_rows, "p_value"], method=correction)[1]
    return table[["outcome", "comparison", "statistic", "df", "p_value", "p_adjusted", "test"]]


@dataclass(frozen=True)
class SpeedDrivers(Result):
    """Cause-specific Cox model for time to an outcome, and its PH check.

    ``method`` is ``cox`` (maximum partial likelihood) or ``firth`` (Firth's penalized
    partial likelihood, after a level without events or a fit that ran off);
    ``notes`` say in plain words what was folded, left out or refitted, and why.
    ``fit`` is the `workbench.stats.coxph.CoxResult` (None when there was nothing to fit).
    """

    table: pd.DataFrame
    ph_test: pd.DataFrame
    fit: object
    cause: str
    reference_levels: dict
    excluded: int
    notes: list[str] = field(default_factory=list)
    method: str = "cox"

    def violations(self, alpha: float = 0.01) -> list[str]:
        """Plain-language notes for covariates whose effect changes over time."""
        bad = self.ph_test[self.ph_test["p_value"] < alpha]
        return [f"The effect of {row.covariate} on the speed of {self.cause} deals changes over the life of a "
                f"deal (Schoenfeld test p={row.p_value:.2g}), so its hazard ratio is an average over time."
                for row in bad.itertuples()]

    def findings(self, *, alpha: float | None = None):
        """Which covariates speed deals to the outcome, and the PH check (`workbench.findings.driver_findings`)."""
        from ..findings import driver_findings

        return driver_findings(self) if alpha is None else driver_findings(self, alpha=alpha)

    def plot(self, *, ax=None, **kwargs):
        """Forest plot of the hazard ratios (`workbench.plots.hazard_ratios`); returns the axes."""
        from ..plots import hazard_ratios

        return hazard_ratios(self, ax=axes(ax), **kwargs)

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return (f"<ul>{notes}</ul>" if notes else "") + tables.to_html(self.table, index=False)


#: Firth fits on at most this many design cells (deals x columns) get profile intervals for
#: every coefficient (a few seconds); larger ones only for the coefficients that needed it.
PROFILE_CELLS = 500_000
TABLE_COLUMNS = ["covariate", "coef", "se", "hazard_ratio", "ci_low", "ci_high", "z", "p_value"]


@dataclass
class _CoxDesign:
    X: pd.DataFrame
    references: dict
    notes: list[str]
    labels: dict[str, pd.Series]            # categorical covariate -> its (folded) levels
    columns: dict[str, tuple[str, str]]     # dummy column -> (covariate, level)


def _cox_design(frame: pd.DataFrame, covariates: Sequence[str], min_level: int) -> _CoxDesign:
    """`design_matrix`, with the notes on what was folded or left out and the levels behind the dummies."""
    from ..drivers.cohort import as_labels, fold_rare, other_label

    parts, references, notes, labels, columns = [], {}, [], {}, {}
    for name in covariates:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col):
            if name == "amount":
                values = np.log2(col.clip(lower=1)).rename("amount (per doubling)")
            else:
                values = col.astype(float).rename(name)
            if values.nunique() < 2:
                notes.append(f"`{name}` has the same value on every deal here, so it cannot explain anything: "
                             "left out of the model.")
                continue
            parts.append(values)
            continue
        categorical = isinstance(col.dtype, pd.CategoricalDtype)
        # Plain text labels: a categorical's unused categories would count as (empty) levels.
        levels, rare = fold_rare(as_labels(col.astype(object) if categorical else col), min_level)
        if rare:
            notes.append(f"`{name}`: {len(rare)} levels with fewer than {min_level} deals are folded into "
                         f"`{other_label(min_level)}`: {', '.join(rare[:5])}{'...' if len(rare) > 5 else ''}.")
        sizes = levels.value_counts()
        if len(sizes) < 2:
            only = f" ({sizes.index[0]!r})" if len(sizes) else ""
            notes.append(f"`{name}` has a single level here{only}, so it cannot explain anything: left out of "
                         "the model.")
            continue
        reference = sizes.index[0]  # the most common level
        references[name] = reference
        labels[name] = levels
        # Sorted, as pd.get_dummies orders text; a categorical column keeps its category order.
        order = sorted(sizes.index)
        if categorical:
            known = list(as_labels(pd.Series(col.cat.categories)))
            order = [v for v in known if v in sizes.index] + [v for v in order if v not in known]
        for level in order:
            if level != reference:
                column = f"{name}={level}"
                parts.append((levels == level).astype(float).rename(column))
                columns[column] = (name, level)
    X = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)
    return _CoxDesign(X=X, references=references, notes=notes, labels=labels, columns=columns)


def design_matrix(frame: pd.DataFrame, covariates: Sequence[str], *, min_level: int = 30
                  ) -> tuple[pd.DataFrame, dict]:
    """Dummy-code categorical covariates (reference: the most common level) and scale
    numeric ones per sensible unit: ``amount`` per doubling (log2), others as given.

    Levels with fewer than ``min_level`` deals are folded into ``other (<min_level
    deals)`` (as `workbench.drivers` does); a covariate left with a single level, or
    a number with a single value, is left out (`speed_drivers` says so in its notes).
    """
    design = _cox_design(frame, covariates, min_level)
    return design.X, design.references


def speed_drivers(dataset: Dataset, covariates: Sequence[str], *, cause: str = "won",
                  alpha: float = 0.05, min_level: int = 30) -> SpeedDrivers:
    """What speeds deals up: a cause-specific Cox model for time to ``cause``.

    Deals closed the other way are censored at their close (cause-specific hazard).
    Rows with a missing covariate are excluded and counted, never dropped silently.

    Parameters
    ----------
    min_level : int
        Levels of a categorical covariate with fewer deals are folded into
        ``other (<min_level deals)``.

    Notes
    -----
    Real data break the textbook fit; each case is handled and said in ``notes``:

    - a covariate with a single level (after folding) or a single value is left out;
    - a column that carries no information of its own (a combination of the others,
      or a level whose deals all closed before the first event) is left out;
    - a level (or the reference level) without any deal reaching ``cause``, a
      coefficient that runs off, or a fit that does not converge (monotone
      likelihood) makes the model refit with Firth's penalized partial likelihood
      (`workbench.stats.coxph`), with a `workbench.exceptions.SeparationWarning` (as the logistic
      model); ``method`` is then ``firth``.
      Its intervals and p-values are profile penalized likelihood ones (as R's
      ``coxphf``) for every coefficient when the design has at most `PROFILE_CELLS`
      cells, else for the affected coefficients only and Wald (penalized fit) for the
      others;
    - no deal reaching ``cause``, or no covariate left: an empty table and a
      `SmallSampleWarning`.

    The table never holds a hazard ratio or bound that is 0, infinite or missing:
    a row that still had one would be left out and named in ``notes``.
    """
    from ..stats.coxph import fit_cox, information_rank

    frame = durations(dataset)
    complete = frame[list(covariates)].notna().all(axis=1)
    excluded = int((~complete).sum())
    frame = frame[complete]
    design = _cox_design(frame, covariates, min_level)
    X, notes, references = design.X, design.notes, design.references
    days, event = frame["days"].to_numpy(), (frame["event"] == cause).to_numpy()
    done = dict(cause=cause, excluded=excluded, notes=notes)
    if event.any() and X.shape[1]:
        redundant = list(X.columns[information_rank(days, event, X.to_numpy())])
        notes += _redundant_notes(redundant, design, cause)
        X = X.drop(columns=redundant)
        references = {k: v for k, v in references.items()
                      if any(design.columns.get(c, ("",))[0] == k for c in X.columns)}
    if not event.any() or X.shape[1] == 0:
        notes.append(f"No deal was {cause} in this data, so there is nothing to model." if not event.any() else
                     "No covariate is left to model (see the notes above).")
        warnings.warn(notes[-1], SmallSampleWarning, stacklevel=2)
        return _empty_drivers(reference_levels={}, **done)
    names, values = list(X.columns), X.to_numpy()

    # A level without events has an infinite maximum-likelihood coefficient: go straight to Firth.
    flagged, reasons = [], []
    for name, levels in design.labels.items():
        if name not in references:
            continue
        hits = pd.Series(event, index=levels.index).groupby(levels.to_numpy()).sum()
        for level in hits.index[hits.to_numpy() == 0]:
            own = [c for c in names if design.columns.get(c) == (name, level)]
            if level == references[name]:
                own = [c for c in names if design.columns.get(c, ("",))[0] == name]
                reasons.append(f"No deal with {name} = {level} (the reference level) was {cause} in this data, so "
                               "the model was refitted with Firth's penalized likelihood, which keeps the other "
                               f"levels' hazard ratios finite; read them as 'much higher', not as exact figures.")
            elif own:
                reasons.append(f"No deal with {name} = {level} was {cause} in this data, so the model was refitted "
                               "with Firth's penalized likelihood, which keeps its hazard ratio finite; read it as "
                               "'much lower', not as an exact figure.")
            flagged += [c for c in own if c not in flagged]
    fit = None
    if not reasons:
        fit = fit_cox(days, event, values, names=names)
        runaway = fit.runaway()
        if runaway:
            flagged = runaway
            reasons.append(f"The hazard ratio of {', '.join(runaway)} ran off towards 0 or infinity in the "
                           "ordinary fit (a monotone likelihood: the deals reaching the outcome all sit at one end "
                           "of the covariate), so the model was refitted with Firth's penalized likelihood, which "
                           "keeps it finite; read it as 'much lower' or 'much higher', not as an exact figure.")
        elif not fit.converged:
            flagged = names
            reasons.append(f"The ordinary fit did not converge in {fit.iterations} iterations, so the model was "
                           "refitted with Firth's penalized likelihood.")
    method = "cox"
    if reasons:
        method = "firth"
        profile = None if values.size <= PROFILE_CELLS else flagged
        fit = fit_cox(days, event, values, names=names, firth=True, profile=profile)
        notes += reasons
        warnings.warn(" ".join(reasons), SeparationWarning, stacklevel=2)
        if not fit.converged:
            notes.append(f"Firth's fit stopped after {fit.iterations} iterations without converging: treat its "
                         "estimates as rough.")
    table = fit.summary(alpha).sort_values("p_value", ignore_index=True)
    if method == "firth":
        notes.append(_interval_note(fit))
    ratios = table[["hazard_ratio", "ci_low", "ci_high"]].to_numpy(float)
    bad = (~(np.isfinite(ratios) & (ratios > 0)).all(axis=1)
           | ~np.isfinite(table[["coef", "se", "p_value"]].to_numpy(float)).all(axis=1))
    if bad.any():  # a last guard: the table never shows a ratio of 0 or an interval of [0, inf]
        notes.append(f"No finite estimate for {', '.join(table.loc[bad, 'covariate'])}: left out of the table.")
        table = table[~bad].reset_index(drop=True)
    return SpeedDrivers(table=table, ph_test=fit.proportional_hazards_test(), fit=fit, reference_levels=references,
                        method=method, **done)


def _redundant_notes(redundant: list[str], design: _CoxDesign, cause: str) -> list[str]:
    """One note per covariate with columns the model cannot estimate."""
    why = (f"(a combination of the other covariates, or no deal of it still open when a deal was {cause}), so the "
           "model cannot estimate it")
    by_covariate: dict[str, list[str]] = {}
    for column in redundant:
        name, level = design.columns.get(column, (column, None))
        by_covariate.setdefault(name, []).append(level)
    notes = []
    for name, levels in by_covariate.items():
        if levels[0] is None or len(levels) == sum(c[0] == name for c in design.columns.values()):
            notes.append(f"`{name}` carries no information of its own here {why}: left out of the model.")
        else:
            notes.append(f"`{name}` = {', '.join(levels)}: no information of {'its' if len(levels) == 1 else 'their'}"
                         f" own here {why}; left out, so those deals count with {name} = "
                         f"{design.references[name]!r}.")
    return notes


def _interval_note(fit) -> str:
    """Which intervals and p-values a Firth fit's table shows."""
    profiled = list(fit.profiled)
    fallback = list(fit.profile.wald_fallback) if fit.profile is not None else []
    if len(profiled) == len(fit.names):
        text = ("Intervals and p-values come from the profile penalized likelihood (as R's coxphf), which suits "
                "the lopsided likelihood of the affected levels better than the usual plus-or-minus two standard "
                "errors.")
    else:
        text = (f"Intervals and p-values of {', '.join(profiled)} come from the profile penalized likelihood (as "
                "R's coxphf); the others, well informed in this large sample, are Wald ones from the penalized fit.")
    if fallback:
        text += f" For {', '.join(fallback)} the profile did not close, so the Wald interval is shown."
    return text


def _empty_drivers(**kwargs) -> SpeedDrivers:
    return SpeedDrivers(table=pd.DataFrame(columns=TABLE_COLUMNS),
                        ph_test=pd.DataFrame(columns=["covariate", "statistic", "p_value"]), fit=None, **kwargs)
