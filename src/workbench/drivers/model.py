"""What separates won deals from lost ones, all attributes at once: a logistic model.

- `win_drivers`: logistic regression of winning on several attributes at once, with
  odds ratios, variance inflation factors, cross-validated AUC and calibration; a
  fit with separation is redone with Firth's penalized likelihood (`workbench.stats.firth`).
  `WinDrivers.predict` scores other deals (e.g. the open ones) with the fitted model.
- `roc_auc`, `variance_inflation`: two of its checks, usable on their own.

The outcome is winning within ``mature_days`` of creation on the mature cohort, and the
default covariates are `workbench.drivers.cohort.candidate_columns` (see `workbench.drivers.cohort`).
One attribute at a time: `workbench.drivers.winrates`. Loss and win reasons are in
`workbench.drivers.reasons`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from .. import tables
from ..dataset.model import Dataset
from ..exceptions import SeparationWarning, SmallSampleWarning, WorkbenchError, fixes
from ..seeds import seeded_rng
from ..stats.firth import firth_logit, logit_newton
from .cohort import (LEAKY_WORDS, MAX_LEVELS, UNITS, as_labels, candidate_columns, cohort_note, deal_column, fold_rare,
                     leaky_word, mature_cohort, other_label)
from .leakage import decided_by_outcome
from ..results import Result, axes

VIF_NOTE = 10.0


@dataclass(frozen=True)
class WinDrivers(Result):
    """A logistic regression of winning (within ``mature_days``) on deal attributes.

    Attributes
    ----------
    table : DataFrame
        One row per effect, ranked by p-value, then by the size of the effect:
        ``feature``, ``level``, ``odds_ratio``, ``ci_low``, ``ci_high``, ``p_value``,
        ``coef`` (log odds ratio), ``se``, ``n`` (deals at the level; all deals for a
        numeric effect). A level is compared with ``reference_levels[feature]``; a
        numeric effect is per the unit in ``level`` (``per doubling``, ``per 100``).
    vif : DataFrame
        Variance inflation factor of every design column (``feature``, ``level``, ``vif``).
    cv_auc : float
        Mean AUC over stratified cross-validation folds (0.5 = chance); ``cv_folds``
        holds each fold's.
    calibration : DataFrame
        Deciles of the out-of-fold predicted probability: ``decile``, ``n``,
        ``mean_predicted``, ``observed_rate`` and its Wilson ``ci_low``, ``ci_high``.
    held_out : dict
        Column considered and not used -> why.
    dropped : dict
        Column -> deals of the cohort missing it (dropped; ``excluded`` in total).
    method : str
        ``maximum likelihood`` or ``Firth penalized likelihood`` (after separation).
    fit : object
        The statsmodels results, or the `workbench.stats.firth.FirthFit`.
    """

    table: pd.DataFrame
    vif: pd.DataFrame
    cv_auc: float
    cv_folds: tuple[float, ...]
    calibration: pd.DataFrame
    notes: list[str]
    held_out: dict[str, str]
    reference_levels: dict[str, str]
    dropped: dict[str, int]
    excluded: int
    n: int
    won: int
    method: str
    mature_days: int | None
    alpha: float
    covariates: tuple[str, ...]
    fit: object = field(repr=False, default=None)

    def findings(self, *, alpha: float | None = None):
        """The strongest significant effects in words (`workbench.findings.win_driver_findings`)."""
        from ..findings import win_driver_findings

        return win_driver_findings(self, alpha=self.alpha if alpha is None else alpha)

    def plot(self, *, ax=None):
        """Forest plot of the odds ratios (`workbench.plots.odds_ratios`); returns the axes."""
        from ..plots import odds_ratios

        return odds_ratios(self, alpha=self.alpha, ax=axes(ax))

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return f"<ul>{notes}</ul>" + tables.to_html(self.table, index=False)

    def predict(self, dataset: Dataset, deals: pd.DataFrame | None = None) -> pd.Series:
        """The model's probability that each deal wins within ``mature_days`` of creation.

        Parameters
        ----------
        dataset : Dataset
            The data the deals come from, with the covariates' columns (account columns
            such as ``employees`` are joined on ``account_id``).
        deals : DataFrame, optional
            Rows of ``dataset.deals`` to score, e.g. the open ones; default: every deal.

        Returns
        -------
        Series
            ``win_probability`` on the index of ``deals``. NaN where a covariate is
            missing, or is 0 or less where the model takes its log2; `unscored` counts
            those deals per covariate.

        Notes
        -----
        The linear predictor is rebuilt from ``table`` (one coefficient per level or
        unit) and the fit's intercept, with the transforms `win_drivers` uses:
        categorical levels by label (the reference level and levels the fit never saw
        add 0, except that a fit with an ``other (<k deals)`` level gives unseen levels
        its coefficient), ``per doubling`` as log2, ``per 100`` as /100, ``per 1`` as is.
        On the deals the model was fitted on it equals the fit's own predictions.
        """
        eta, _ = self._linear_predictor(dataset, dataset.deals if deals is None else deals)
        return pd.Series(expit(eta), index=eta.index, name="win_probability")

    def unscored(self, dataset: Dataset, deals: pd.DataFrame | None = None) -> dict[str, int]:
        """Covariate -> how many of ``deals`` (default: every deal) `predict` leaves without a
        probability because that covariate is missing or unusable there; covariates with
        none are left out."""
        return self._linear_predictor(dataset, dataset.deals if deals is None else deals)[1]

    def _linear_predictor(self, dataset: Dataset, deals: pd.DataFrame) -> tuple[pd.Series, dict[str, int]]:
        table = self.table
        eta = pd.Series(_intercept(self.fit), index=deals.index, dtype=float)
        unscored: dict[str, int] = {}
        for name in self.covariates:
            rows = table[table["feature"] == name]
            values = deal_column(dataset, deals, name)
            values.index = deals.index
            missing = values.isna()
            units = set(rows["level"]) & {"per doubling", "per 100", "per 1"}
            if units:
                unit = units.pop()
                coef = float(rows.loc[rows["level"] == unit, "coef"].iloc[0])
                x = values.astype(float)
                if unit == "per doubling":
                    bad = x <= 0
                    missing |= bad
                    x = np.log2(x.where(~bad))
                elif unit == "per 100":
                    x = x / 100
                eta += coef * x
            else:
                coefs = dict(zip(rows["level"], rows["coef"]))
                fallback = next((c for lv, c in coefs.items() if lv.startswith("other (<")), 0.0)
                labels = as_labels(values)
                known = set(coefs) | {self.reference_levels.get(name)}
                eta += labels.map(lambda v: coefs.get(v, 0.0 if v in known else fallback)).astype(float)
            eta[missing] = np.nan
            if missing.any():
                unscored[name] = int(missing.sum())
        return eta, unscored


def _intercept(fit) -> float:
    names = list(getattr(fit, "names", ()) or getattr(fit.model, "exog_names", []))
    if not names or names[0] != "Intercept":
        raise WorkbenchError("The drivers fit has no leading `Intercept`: cannot score new deals. "
                             + fixes("refit with `win_drivers`"))
    return float(np.asarray(fit.params)[0])


@dataclass
class _Design:
    frame: pd.DataFrame                 # x0, x1, ... z0 ... and won, complete rows only
    formula: str
    labels: dict[str, tuple[str, str]]  # design column name -> (feature, level)
    counts: dict[str, int]
    references: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    excluded: int = 0
    notes: list[str] = field(default_factory=list)
    categorical: dict[str, pd.Series] = field(default_factory=dict)  # feature -> labels (complete rows)
    complete: np.ndarray | None = None  # which rows of the deals given to `_design` are in ``frame``


def _design(dataset: Dataset, cohort: pd.DataFrame, covariates: Sequence[str], min_level: int) -> _Design:
    """Transform, drop incomplete rows (counted), fold rare levels, code the reference level as 0."""
    columns, kinds, notes = {}, {}, []
    for name in covariates:
        values = deal_column(dataset, cohort, name)
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and (name in UNITS or values.nunique() > MAX_LEVELS):
            transform, unit = UNITS.get(name, ("unit", "per 1"))
            values = values.astype(float)
            if transform == "log2":
                zero = values <= 0
                if 0 < zero.sum() < min_level:
                    notes.append(f"`{name}` is 0 on {int(zero.sum())} deals (fewer than {min_level}): "
                                 "counted as missing, since its doubling is undefined.")
                    values = values.where(~zero)
                transform = "log2+zero" if zero.sum() >= min_level else "log2"
            kinds[name] = (transform, unit)
            columns[name] = values
        else:
            kinds[name] = ("categorical", None)
            columns[name] = as_labels(values)
    raw = pd.DataFrame(columns)
    missing = raw.isna()
    complete = ~missing.any(axis=1).to_numpy()
    design = _Design(frame=pd.DataFrame({"won": cohort["won"].to_numpy()[complete].astype(int)}),
                     formula="", labels={}, counts={},
                     dropped={c: int(m) for c, m in missing.sum().items() if m},
                     excluded=int((~complete).sum()), notes=notes, complete=complete)
    raw = raw[complete].reset_index(drop=True)
    terms = []
    for i, name in enumerate(covariates):
        kind, unit = kinds[name]
        values = raw[name]
        key = f"x{i}"
        if kind == "categorical":
            values, rare = fold_rare(values, min_level)
            if rare:
                design.notes.append(f"`{name}`: {len(rare)} levels with fewer than {min_level} deals are folded "
                                    f"into `{other_label(min_level)}`: {', '.join(rare[:5])}"
                                    f"{'...' if len(rare) > 5 else ''}.")
            sizes = values.value_counts()
            order = sorted(sizes.index, key=lambda v: (-sizes[v], v))  # reference: the most common level
            design.references[name] = order[0]
            design.categorical[name] = values
            # Integer-coded categoricals, reference first: patsy sniffs a pandas Categorical
            # at once (C() on 78,000 text cells took 4 s), and odd level names stay out of the formula.
            codes = values.map({v: c for c, v in enumerate(order)}).to_numpy()
            design.frame[key] = pd.Categorical(codes, categories=range(len(order)))
            terms.append(key)
            for code, level in enumerate(order[1:], 1):
                design.labels[f"{key}[T.{code}]"] = (name, level)
                design.counts[f"{key}[T.{code}]"] = int(sizes[level])
            continue
        if kind.startswith("log2"):
            positive = values > 0
            logs = np.log2(values.where(positive))
            if kind == "log2+zero":
                center = float(logs.median())
                design.frame[f"z{i}"] = (~positive).astype(int).to_numpy()
                design.labels[f"z{i}"] = (name, f"= 0 (vs a deal of median {name})")
                design.counts[f"z{i}"] = int((~positive).sum())
                terms.append(f"z{i}")
                logs = logs.fillna(center)
            values = logs
        elif kind == "per100":
            values = values / 100
        design.frame[key] = values.to_numpy(dtype=float)
        design.labels[key] = (name, unit)
        design.counts[key] = int(len(values))
        terms.append(key)
    design.formula = "won ~ " + " + ".join(terms)
    return design


def _columns(design: _Design) -> tuple[np.ndarray, list[str]]:
    """The design as a numeric matrix without intercept, columns named as patsy names them in the
    logistic model (``x0[T.1]`` for a level, ``x1`` for a number, ``z1`` for a zero indicator)."""
    columns, names = [], []
    for term in design.formula.split("~", 1)[1].split("+"):
        term = term.strip()
        values = design.frame[term]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            for code in range(1, len(values.cat.categories)):
                columns.append((codes == code).astype(float))
                names.append(f"{term}[T.{code}]")
        else:
            columns.append(values.to_numpy(dtype=float))
            names.append(term)
    return np.column_stack(columns) if columns else np.empty((len(design.frame), 0)), names


def _separated_levels(design: _Design) -> list[str]:
    """Levels (and 0/1 indicators) whose deals all won or all did not."""
    out = []
    won = design.frame["won"]
    for name, labels in design.categorical.items():
        rates = won.groupby(labels.to_numpy()).mean()
        out += [f"`{name}` = {level!r} ({'only wins' if r == 1 else 'no win'})"
                for level, r in rates.items() if r in (0.0, 1.0)]
    for key, (name, level) in design.labels.items():
        if key.startswith("z"):
            r = won[design.frame[key] == 1].mean()
            if r in (0.0, 1.0):
                out.append(f"`{name}` {level} ({'only wins' if r == 1 else 'no win'})")
    return out


def _check_rank(X: np.ndarray, names: Sequence[str], labels) -> None:
    """Refuse a design whose columns are linearly dependent, naming the aliased ones."""
    from scipy.linalg import qr

    # Pivoted QR of a square root of X'X finds the same dependencies as on X, at k x k cost.
    values, vectors = np.linalg.eigh(X.T @ X)
    root = np.sqrt(np.clip(values, 0, None))[:, None] * vectors.T
    _, r, pivots = qr(root, pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int((diag > diag[0] * 1e-7).sum())
    if rank < X.shape[1]:
        aliased = [labels.get(names[j], (names[j], "")) for j in pivots[rank:]]
        shown = ", ".join(f"`{f}` {lv}".strip() for f, lv in aliased[:5])
        verb = "is a combination" if len(aliased) == 1 else "are combinations"
        raise WorkbenchError(f"The covariates are collinear: {shown} {verb} of the others, so the effects "
                             "cannot be told apart. "
                             + fixes("drop one of the nested columns (e.g. a group and its subgroup)",
                                     "leave `covariates=None` to let the default choice hold such columns out"))


def _diverged(res, caught) -> bool:
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    bse = np.asarray(res.bse, float)
    return (any(issubclass(w.category, PerfectSeparationWarning) for w in caught)
            or not res.mle_retvals.get("converged", True)
            or not np.all(np.isfinite(bse)) or np.max(np.abs(np.asarray(res.params))) > 15 or np.max(bse) > 100)


def _fit_arrays(X, y, firth: bool, start: np.ndarray) -> np.ndarray:
    """Coefficients on a training fold, from the full fit's; columns constant in the fold get 0."""
    keep = np.ptp(X, axis=0) > 0
    keep[0] = True
    params = np.zeros(X.shape[1])
    fitted = None if firth else logit_newton(X[:, keep], y, start=start[keep])
    if fitted is None:
        try:
            fitted = firth_logit(X[:, keep], y, start=start[keep]).params
        except np.linalg.LinAlgError:  # columns collinear within this fold only: score it with the full fit
            return start
    params[keep] = fitted
    return params


def roc_auc(y, score) -> float:
    """Area under the ROC curve: P(a random won deal scores above a random other), ties half."""
    y = np.asarray(y, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if not n1 or not n0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _cross_validate(X, y, firth: bool, start: np.ndarray, seed: str, folds: int):
    """Stratified folds from a string seed; per-fold AUC and out-of-fold predictions."""
    rng = seeded_rng(seed)
    fold = np.empty(len(y), int)
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % folds
    predicted = np.empty(len(y))
    aucs = []
    for k in range(folds):
        test = fold == k
        params = _fit_arrays(X[~test], y[~test], firth, start)
        predicted[test] = expit(X[test] @ params)
        aucs.append(roc_auc(y[test], predicted[test]))
    return tuple(aucs), predicted


def _calibration(y, predicted, alpha) -> pd.DataFrame:
    from statsmodels.stats.proportion import proportion_confint

    decile = pd.qcut(predicted, 10, labels=False, duplicates="drop")
    g = pd.DataFrame({"decile": decile + 1, "p": predicted, "y": y}).groupby("decile")
    table = pd.DataFrame({"n": g.size(), "mean_predicted": g["p"].mean(), "won": g["y"].sum()}).reset_index()
    table["observed_rate"] = table["won"] / table["n"]
    table["ci_low"], table["ci_high"] = proportion_confint(table["won"], table["n"], alpha=alpha, method="wilson")
    return table.drop(columns="won")


def variance_inflation(X: np.ndarray) -> np.ndarray:
    """Variance inflation factor of every column of ``X`` but the first (the intercept).

    The diagonal of the inverse correlation matrix: the same numbers as statsmodels'
    ``variance_inflation_factor(X, j)`` (``1 / (1 - R^2)`` of column j on the others;
    the tests check they agree), which fits one least-squares regression per column:
    about a minute against a tenth of a second for IBM's 77,692 deals and 36 columns.
    """
    corr = np.atleast_2d(np.corrcoef(X[:, 1:], rowvar=False))
    return np.diag(np.linalg.inv(corr))


def _vif(X: np.ndarray, names: Sequence[str], labels) -> pd.DataFrame:
    rows = [(*labels[name], v) for name, v in zip(names[1:], variance_inflation(X))]
    return pd.DataFrame(rows, columns=["feature", "level", "vif"])


def win_drivers(dataset: Dataset, covariates: Sequence[str] | None = None, *, mature_days: int | None = 365,
                min_level: int = 30, alpha: float = 0.05, exclude: Sequence[str] = LEAKY_WORDS,
                folds: int = 5, seed: str = "win_drivers") -> WinDrivers:
    """Which attributes go with winning, each adjusted for the others: a logistic regression.

    The outcome is winning within ``mature_days`` of creation, on the deals created at
    least ``mature_days`` before ``as_of`` (`mature_cohort`): every one of them has had
    that long, so open deals neither count as lost nor get dropped in a way that
    favours fast segments. ``mature_days=None`` uses final outcomes (no open deals).

    Parameters
    ----------
    covariates : list of str, optional
        Deal (or account) columns. Default: the deal attributes with 2 to 20 levels
        whose names contain none of ``exclude`` (they would leak the outcome), plus
        ``amount`` (and ``employees``, ``revenue`` from accounts); a column another
        one determines (a group beside its subgroup, a binning of amount) is left out
        too. Every column considered and not used is in ``held_out`` with the reason.
    min_level : int
        Levels with fewer deals are folded into ``other (<min_level deals)``.
    exclude : list of str
        Words that mark a column as measured during the sale.
    folds, seed : int, str
        Cross-validation folds, stratified by outcome and drawn from ``seed``.

    Notes
    -----
    Categorical columns are dummy-coded against their most common level; numeric
    numbers with 2 to 20 values count as categories (codes). ``amount`` and
    ``revenue`` enter per doubling (log2; a zero gets its own ``= 0`` indicator
    when at least ``min_level`` deals have it, else it counts as missing),
    ``employees`` per 100, other numbers per unit. Rows missing a covariate are
    dropped and counted (``dropped``); statsmodels is called with ``missing="raise"``.
    A level with only wins or only losses (separation), or a fit that diverges, makes
    the model refit with Firth's penalized likelihood (a `SeparationWarning` and a
    note say so): every odds ratio stays finite.

    Raises
    ------
    WorkbenchError
        No usable cohort or covariate, or collinear explicit covariates.
    """
    import statsmodels.formula.api as smf

    cohort = mature_cohort(dataset, mature_days)
    if covariates is None:
        covariates, held_out = candidate_columns(dataset, cohort, exclude)
        explicit_notes = []
    else:
        covariates, held_out = list(covariates), {}
        explicit_notes = [f"`{c}` is used as asked, though its name contains `{leaky_word(c, exclude)}`: check it is "
                          "known before the deal closes." for c in covariates if leaky_word(c, exclude)]
        explicit_notes += [f"`{c}` is used as asked, though it is decided by the outcome ({why}): its effect only "
                           "restates the outcome." for c, why in decided_by_outcome(dataset, covariates).items()]
    if not covariates:
        raise WorkbenchError("No covariate to model: every column was held out ("
                             + "; ".join(f"`{c}`: {why}" for c, why in held_out.items()) + "). "
                             + fixes("pass `covariates=` explicitly", "map more deal attributes in dataset.yaml"))
    design = _design(dataset, cohort, covariates, min_level)
    frame = design.frame
    if frame["won"].nunique() < 2:
        missing = ", ".join(f"`{c}` on {k}" for c, k in design.dropped.items())
        raise WorkbenchError(f"After dropping the {design.excluded} deals missing a covariate ({missing}), the "
                             "outcome does not vary: a column filled on only won or only lost deals (a reason?) "
                             "cannot explain winning. " + fixes("leave that column out of `covariates=`"))
    model = smf.logit(design.formula, frame, missing="raise")
    names = list(model.exog_names)
    X, y = np.ascontiguousarray(model.exog, float), frame["won"].to_numpy(int)
    _check_rank(X, names, design.labels)
    fit, coef, se, separated = _fit(model, X, y, _separated_levels(design))
    if separated and not fit.converged:
        explicit_notes.append(f"Firth's fit stopped after {fit.iterations} iterations without converging: "
                              "treat its estimates as rough.")
    z = stats.norm.ppf(1 - alpha / 2)
    rows = [{"feature": design.labels[nm][0], "level": design.labels[nm][1],
             "odds_ratio": np.exp(b), "ci_low": np.exp(b - z * s), "ci_high": np.exp(b + z * s),
             "p_value": 2 * stats.norm.sf(abs(b / s)), "coef": b, "se": s, "n": design.counts[nm]}
            for nm, b, s in zip(names, coef, se) if nm != "Intercept"]
    table = pd.DataFrame(rows)
    table = (table.assign(_size=-table["coef"].abs()).sort_values(["p_value", "_size"], kind="stable")
             .drop(columns="_size").reset_index(drop=True))
    cv_folds, predicted = _cross_validate(X, y, bool(separated), coef, seed, folds)
    vif = _vif(X, names, design.labels)
    cv_auc = float(np.nanmean(cv_folds))
    notes, warn = _notes(dataset, cohort, mature_days, design, held_out, separated, y, vif, cv_auc, folds)
    notes[1:1] = explicit_notes
    for text, category in warn:
        warnings.warn(text, category, stacklevel=2)
    method = "Firth penalized likelihood" if separated else "maximum likelihood"
    return WinDrivers(table=table, vif=vif, cv_auc=cv_auc, cv_folds=cv_folds,
                      calibration=_calibration(y, predicted, alpha), notes=notes, held_out=held_out,
                      reference_levels=design.references, dropped=design.dropped, excluded=design.excluded,
                      n=int(len(y)), won=int(y.sum()), method=method, mature_days=mature_days, alpha=alpha,
                      covariates=tuple(covariates), fit=fit)


def _fit(model, X, y, separated: list[str]):
    """Maximum likelihood through statsmodels, or Firth's fit when a level separates or the fit
    diverges; returns the fit, coefficients, SEs and what separated (empty: none)."""
    from statsmodels.tools.sm_exceptions import PerfectSeparationError

    # A fast Newton start leaves statsmodels a step or two (its Hessian is slow on many deals).
    start = None if separated else logit_newton(X, y)
    res = None
    if start is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = model.fit(start_params=start, disp=0, maxiter=100)
            except (PerfectSeparationError, np.linalg.LinAlgError):
                res = None
        if res is not None and not _diverged(res, caught):
            return res, np.asarray(res.params), np.asarray(res.bse), []
    separated = separated or ["the maximum-likelihood fit diverges (coefficients grow without bound)"]
    fit = firth_logit(X, y, names=model.exog_names)
    return fit, fit.params, fit.bse, separated


def _notes(dataset, cohort, mature_days, design, held_out, separated, y, vif, cv_auc, folds):
    """Plain-language notes for the report, and the (text, warning class) pairs to warn with."""
    notes = [cohort_note(dataset, cohort, mature_days)]
    if design.excluded:
        notes.append(f"{design.excluded} deals dropped for a missing covariate ("
                     + ", ".join(f"`{c}`: {k}" for c, k in design.dropped.items()) + f"); {len(y)} modelled.")
    notes += design.notes
    notes += [f"`{c}` held out: {why}." for c, why in held_out.items()]
    notes.append("Reference levels (odds ratio 1): "
                 + ", ".join(f"`{c}` = {v!r}" for c, v in design.references.items()) + "."
                 if design.references else "No categorical covariate.")
    warn = []
    if separated:
        text = (f"Separation: {'; '.join(separated[:5])}. Ordinary logistic regression would give an infinite "
                "odds ratio; the model was refitted with Firth's penalized likelihood, which keeps every estimate "
                "finite (read the affected odds ratios as 'very large (or small), uncertain').")
        notes.append(text)
        warn.append((text, SeparationWarning))
    events, effects = int(min(y.sum(), len(y) - y.sum())), len(vif)
    if events < 10 * effects:
        text = (f"Only {events} deals in the rarer outcome for {effects} effects (fewer than 10 per effect): "
                "estimates are unstable.")
        notes.append(text)
        warn.append((text, SmallSampleWarning))
    for row in vif[vif["vif"] > VIF_NOTE].itertuples():
        notes.append(f"`{row.feature}` {row.level} has a variance inflation factor of {row.vif:.0f}: its effect is "
                     "entangled with other covariates, so its odds ratio is imprecise.")
    notes.append(f"Cross-validated AUC {cv_auc:.2f} ({folds} folds; 0.5 is chance, 1 a perfect ranking of won "
                 "above other deals).")
    return notes, warn
