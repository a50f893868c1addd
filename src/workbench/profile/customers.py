"""The ideal customer profile: which firmographics are over-represented among won customers.

- `customer_profile`: per trait (industry, size band, revenue band, region, source
  channel), the share among *won customers* (accounts with at least one won deal)
  against the share among *all prospects* (every account with a deal), their ratio
  (the lift) with a confidence interval, and sentences for the traits whose lift is
  credibly above 1.
- `fit_scores`: an ICP fit score for open deals and their accounts: the win
  probability the drivers model (`workbench.drivers.win_drivers`) predicts from the
  open deals' covariates (`WinDrivers.predict`).
- `fit_score_backtest`: the same score fitted on the data as it looked at an earlier
  cut-off (`Dataset.cut`), checked against what the deals open then did afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .. import tables
from ..dataset.model import Dataset
from ..drivers.cohort import MISSING, as_labels
from ..drivers.model import WinDrivers, win_drivers
from ..exceptions import WorkbenchError, fixes
from ..plots import error_lengths
from ..results import Result, axes

#: Employee bands: left-closed edges [lower, upper).
EMPLOYEE_EDGES = (0, 50, 200, 1_000, 5_000, np.inf)
EMPLOYEE_LABELS = ("under 50", "50-199", "200-999", "1,000-4,999", "5,000+")
#: Annual revenue bands (currency units): left-closed edges [lower, upper).
REVENUE_EDGES = (0, 1e6, 1e7, 1e8, 1e9, np.inf)
REVENUE_LABELS = ("under 1M", "1M-10M", "10M-100M", "100M-1B", "1B+")
#: Trait -> (how the sentence names an account with the level).
PHRASES = {
    "industry": "{level} accounts",
    "size": "Accounts with {level} employees",
    "revenue_band": "Accounts with {level} revenue",
    "region": "Accounts in {level}",
    "channel": "Accounts first sourced through {level}",
}


# ------------------------------------------------------------------------------ profile


def _band(values: pd.Series, edges, labels) -> pd.Series:
    banded = pd.cut(values.astype(float), bins=list(edges), right=False, labels=list(labels))
    return banded.astype(object).where(banded.notna(), MISSING)


def account_traits(dataset: Dataset, channel: str = "channel") -> pd.DataFrame:
    """One row per account with a deal: ``won_customer`` and its traits as text levels.

    ``size`` bands ``employees`` by `EMPLOYEE_EDGES`, ``revenue_band`` bands ``revenue``
    by `REVENUE_EDGES` (both left-closed), ``channel`` is the channel of the account's
    first deal (earliest ``created_at``, then ``deal_id``). A missing value is the level
    ``(missing)``; deals without ``account_id`` belong to no account and are not counted.
    """
    deals = dataset.deals
    if "account_id" not in deals:
        raise WorkbenchError("Deals have no `account_id`: customers cannot be told apart. "
                             + fixes("map `account_id` onto deals in dataset.yaml"))
    deals = deals[deals["account_id"].notna()].sort_values(["created_at", "deal_id"], kind="stable")
    grouped = deals.groupby("account_id", sort=True)
    out = pd.DataFrame({"won_customer": grouped["outcome"].agg(lambda o: bool((o == "won").any()))})
    accounts = dataset.accounts.set_index("account_id") if dataset.accounts is not None else pd.DataFrame()
    first = grouped.first()

    def pick(name):
        if name in accounts:
            return out.index.to_series().map(accounts[name])
        if name in first:
            return first[name].reindex(out.index)
        return None

    traits = {"industry": pick("industry"), "region": pick("region")}
    employees, revenue = pick("employees"), pick("revenue")
    if employees is not None:
        traits["size"] = _band(employees, EMPLOYEE_EDGES, EMPLOYEE_LABELS)
    if revenue is not None:
        traits["revenue_band"] = _band(revenue, REVENUE_EDGES, REVENUE_LABELS)
    if channel in first:
        traits["channel"] = first[channel].reindex(out.index)
    for name, values in traits.items():
        if values is not None:
            labels = as_labels(values)
            out[name] = labels.astype(object).where(labels.notna(), MISSING)
    return out.reset_index()


def lift_interval(a, won, with_trait, total, alpha: float = 0.05):
    """Lift ``(a / won) / (with_trait / total)`` and its delta-method interval on the log scale.

    ``a``: won customers with the trait; the won customers are a subset of all, so
    the two shares are not independent. The variance of log lift comes from the four
    cells (won with / without trait, other with / without) as independent Poisson
    counts, which for a ratio of degree 0 equals the multinomial delta method.
    """
    a, won, b, n = (np.asarray(v, float) for v in (a, won, with_trait, total))
    cells = (a, won - a, b - a, n - won - b + a)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = (a / won) / (b / n)
        grads = (1 / a - 1 / won - 1 / b + 1 / n, -1 / won + 1 / n, -1 / b + 1 / n, 1 / n)
        var = sum(g ** 2 * c for g, c in zip(grads, cells))
        z = stats.norm.ppf(1 - alpha / 2)
        se = np.sqrt(var)
        low, high = lift * np.exp(-z * se), lift * np.exp(z * se)
    bad = a <= 0
    return lift, np.where(bad, np.nan, low), np.where(bad, np.nan, high)


@dataclass(frozen=True)
class CustomerProfile(Result):
    """Traits of won customers against all prospects.

    ``table``: ``trait``, ``level``, ``won_customers`` (with the level), ``share_won``
    with Wilson ``share_won_low``/``share_won_high``, ``accounts`` (with the level),
    ``share_all`` with its Wilson interval, ``lift`` = share_won / share_all with
    ``lift_low``, ``lift_high`` (see `lift_interval`), sorted by trait then lift.
    ``sentences``: traits whose lift interval lies above 1, highest lift first.
    """

    table: pd.DataFrame
    sentences: list[str]
    won_customers: int
    accounts: int
    alpha: float
    notes: list[str] = field(default_factory=list)

    def findings(self):
        """The traits over-represented among won customers (``sentences``), or a sentence saying there are none."""
        from ..findings import Findings

        return Findings(self.sentences or ["No trait is significantly more common among won customers than among "
                                           "all prospects (no lift's 95% interval lies above 1)."])

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{s}</li>" for s in self.sentences + self.notes)
        return f"<ul>{items}</ul>" + tables.to_html(self.table, index=False)

    def plot(self, *, ax=None):
        """Lift per level with its interval, one row per (trait, level); returns the axes."""
        from ..plots import theme

        with theme():
            return self._draw(axes(ax))

    def _draw(self, ax):
        """Draw on ``ax`` (in the theme already)."""
        t = self.table.dropna(subset=["lift_low"])
        y = np.arange(len(t))
        ax.errorbar(t["lift"], y, xerr=error_lengths(t["lift"], t["lift_low"], t["lift_high"]), fmt="o")
        ax.axvline(1, color="grey", lw=1)
        ax.set_yticks(y, [f"{tr}: {lv}" for tr, lv in zip(t["trait"], t["level"])])
        ax.set_xscale("log")
        ax.set_xlabel("lift (share among won customers / share among all prospects)")
        return ax


def _sentence(trait: str, level: str, lift: float) -> str:
    who = PHRASES.get(trait, f"Accounts with {trait} {{level}}").format(level=level)
    return f"{who} are {lift:.1f}x as common among won customers as among all prospects."


def customer_profile(dataset: Dataset, traits: Sequence[str] | None = None, *, alpha: float = 0.05,
                     top: int = 5) -> CustomerProfile:
    """Share of each trait level among won customers and among all prospects, and the lift.

    Parameters
    ----------
    traits : list of str, optional
        Columns of `account_traits`; default: every trait it finds.
    top : int
        At most this many sentences, for lifts whose interval lies above 1.
    """
    from statsmodels.stats.proportion import proportion_confint

    acc = account_traits(dataset)
    names = [c for c in acc.columns if c not in ("account_id", "won_customer")] if traits is None else list(traits)
    unknown = [c for c in names if c not in acc.columns or c in ("account_id", "won_customer")]
    if unknown:
        known = [c for c in acc.columns if c not in ("account_id", "won_customer")]
        raise WorkbenchError(f"No account trait {', '.join(f'`{c}`' for c in unknown[:5])}. "
                             + fixes(f"use one of {known}", "add the column to accounts in dataset.yaml"))
    won = acc["won_customer"]
    n_won, n_all = int(won.sum()), int(len(acc))
    if n_won == 0:
        raise WorkbenchError(f"None of the {n_all} accounts has a won deal: there is no customer to profile. "
                             + fixes("use data with won deals", "check the outcome mapping in dataset.yaml"))
    rows = []
    for name in names:
        counts = pd.DataFrame({"accounts": acc.groupby(name).size(),
                               "won_customers": acc[won].groupby(name).size()}).fillna(0).astype(int)
        for level, r in counts.iterrows():
            rows.append({"trait": name, "level": level, "won_customers": r["won_customers"],
                         "accounts": r["accounts"]})
    table = pd.DataFrame(rows, columns=["trait", "level", "won_customers", "accounts"])
    table["share_won"] = table["won_customers"] / n_won
    table["share_won_low"], table["share_won_high"] = proportion_confint(
        table["won_customers"], n_won, alpha=alpha, method="wilson")
    table["share_all"] = table["accounts"] / n_all
    table["share_all_low"], table["share_all_high"] = proportion_confint(
        table["accounts"], n_all, alpha=alpha, method="wilson")
    table["lift"], table["lift_low"], table["lift_high"] = lift_interval(
        table["won_customers"], n_won, table["accounts"], n_all, alpha)
    table = table.sort_values(["trait", "lift"], ascending=[True, False], ignore_index=True)
    credible = table[(table["lift_low"] > 1) & (table["level"] != MISSING)]
    credible = credible.sort_values("lift", ascending=False).head(top)
    sentences = [_sentence(r.trait, r.level, r.lift) for r in credible.itertuples()]
    notes = [f"{n_won} of {n_all} accounts with a deal ({n_won / n_all:.0%}) have a won deal. Accounts whose "
             "deals are all still open count as prospects, not customers; an account with more deals has more "
             "chances to win one."]
    notes.append(f"Sentences claim only lifts whose {1 - alpha:.0%} interval lies above 1; {len(table)} levels are "
                 "compared, so expect about one in twenty of the intervals to miss by chance.")
    if not sentences:
        notes.append("No trait is credibly more common among won customers (every lift interval includes 1).")
    return CustomerProfile(table=table, sentences=sentences, won_customers=n_won, accounts=n_all,
                           alpha=alpha, notes=notes)


# ---------------------------------------------------------------------------- fit score


def predict_win(drivers: WinDrivers, dataset: Dataset, deals: pd.DataFrame) -> tuple[pd.Series, dict[str, int]]:
    """The drivers model's win probability for ``deals`` (rows of ``dataset.deals``) as
    ``fit_score``, and per covariate the deals it could not score: `WinDrivers.predict`
    and `WinDrivers.unscored` (see there for how missing and unseen values count)."""
    return drivers.predict(dataset, deals).rename("fit_score"), drivers.unscored(dataset, deals)


@dataclass(frozen=True)
class FitScores(Result):
    """ICP fit scores: the drivers model's win probability for open deals, and per account.

    ``deals``: ``deal_id``, ``account_id``, ``fit_score`` (NaN when a covariate is
    missing; ``unscored`` counts them per column), ranked high to low. ``accounts``:
    ``account_id``, ``open_deals``, ``fit_score`` (the best of its open deals' scores),
    ``mean_score``. ``drivers`` is the `WinDrivers` the scores come from.
    """

    deals: pd.DataFrame
    accounts: pd.DataFrame
    drivers: WinDrivers
    unscored: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """``deals``: each open deal's fit score, highest first."""
        return self.deals

    def findings(self):
        """How many open deals were scored, and the best-scored account."""
        from ..findings import Findings

        if not len(self.deals):
            return Findings(["No open deal could be scored."])
        out = Findings([f"{len(self.deals):,} open deals of {len(self.accounts):,} accounts were scored with the "
                        "drivers model; a score is the model's chance that the deal wins."])
        if len(self.accounts):
            top = self.accounts.iloc[0]
            out.append(f"The best-scored account, {top['account_id']}, has a fit score of {top['fit_score']:.2f} "
                       f"({int(top['open_deals'])} open deal{'s' if top['open_deals'] != 1 else ''}).")
        return out

    def plot(self, *, ax=None):
        """Histogram of the open deals' fit scores; returns the axes."""
        from ..plots import theme

        with theme():
            ax = axes(ax)
            ax.hist(self.deals["fit_score"].dropna(), bins=20)
            ax.set_xlabel("Fit score (chance of winning)")
            ax.set_ylabel("Open deals")
        return ax

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return f"<ul>{notes}</ul>" + tables.to_html(self.deals.head(20), index=False)


def fit_scores(dataset: Dataset, covariates: Sequence[str] | None = None, *, mature_days: int | None = 365,
               drivers: WinDrivers | None = None, **options) -> FitScores:
    """Score the open deals of ``dataset`` with a drivers model fitted on its mature cohort.

    ``drivers`` reuses a fitted `WinDrivers` (it must come from this dataset's columns);
    otherwise `win_drivers(dataset, covariates, mature_days=..., **options)` is fitted.
    The score is a predicted probability of winning within ``mature_days``, read as a
    ranking: open deals are younger than the cohort, so it is not their win chance today.
    """
    drivers = drivers or win_drivers(dataset, covariates, mature_days=mature_days, **options)
    open_deals = dataset.deals[dataset.deals["outcome"] == "open"]
    score, unscored = predict_win(drivers, dataset, open_deals)
    cols = ["deal_id", "account_id"] if "account_id" in open_deals else ["deal_id"]
    deals = open_deals[cols].assign(fit_score=score.to_numpy())
    deals = deals.sort_values("fit_score", ascending=False, ignore_index=True)
    if "account_id" in deals:
        g = deals.dropna(subset=["account_id"]).groupby("account_id")["fit_score"]
        accounts = pd.DataFrame({"open_deals": g.size(), "fit_score": g.max(), "mean_score": g.mean()})
        accounts = accounts.reset_index().sort_values("fit_score", ascending=False, ignore_index=True)
    else:
        accounts = pd.DataFrame(columns=["account_id", "open_deals", "fit_score", "mean_score"])
    notes = [f"{len(deals)} open deals scored with the drivers model ({drivers.method}, "
             f"cross-validated AUC {drivers.cv_auc:.2f}) on {', '.join(drivers.covariates)}."]
    if unscored:
        notes.append("Open deals without a score: " + ", ".join(f"`{c}` missing or unusable on {k}"
                                                               for c, k in unscored.items()) + ".")
    return FitScores(deals=deals, accounts=accounts, drivers=drivers, unscored=unscored, notes=notes)


@dataclass(frozen=True)
class FitScoreBacktest(Result):
    """Did deals scored high at an earlier cut-off win more often afterwards?

    ``table``: ``quintile`` (1 = lowest scores), ``n`` (closed by ``as_of``), ``won``,
    ``win_rate`` with Wilson ``ci_low``, ``ci_high``, ``mean_score``, ``still_open``
    (open at both dates, left out). ``spearman``/``spearman_p``: rank correlation of
    score and winning over the closed deals; ``trend_p``: Cochran-Armitage trend test
    over the quintiles.
    """

    table: pd.DataFrame
    cut_at: pd.Timestamp
    as_of: pd.Timestamp
    scored: int
    spearman: float
    spearman_p: float
    trend_p: float
    scores: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def statement(self) -> str:
        """The result in one sentence."""
        t = self.table
        lo, hi = t.iloc[0], t.iloc[-1]
        way = "higher" if self.spearman > 0 else "lower"
        return (f"Deals open on {self.cut_at.date()} in the top score quintile went on to win {hi['win_rate']:.0%} "
                f"(95% CI {hi['ci_low']:.0%}-{hi['ci_high']:.0%}) against {lo['win_rate']:.0%} "
                f"({lo['ci_low']:.0%}-{lo['ci_high']:.0%}) in the bottom one by {self.as_of.date()}; "
                f"higher scores went with {way} win rates (Spearman {self.spearman:.2f}, p = {self.spearman_p:.2g}; "
                f"trend test p = {self.trend_p:.2g}).")

    def findings(self):
        """The backtest in one sentence (``statement``)."""
        from ..findings import Findings

        return Findings([self.statement])

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in [self.statement] + self.notes)
        return f"<ul>{notes}</ul>" + tables.to_html(self.table, index=False)

    def plot(self, *, ax=None):
        """Observed win rate by score quintile with Wilson intervals; returns the axes."""
        from ..plots import theme

        with theme():
            return self._draw(axes(ax))

    def _draw(self, ax):
        """Draw on ``ax`` (in the theme already)."""
        t = self.table
        ax.errorbar(t["quintile"], t["win_rate"], yerr=error_lengths(t["win_rate"], t["ci_low"], t["ci_high"]),
                    fmt="o-")
        ax.set_xlabel(f"fit-score quintile at {self.cut_at.date()} (1 = lowest)")
        ax.set_ylabel(f"won by {self.as_of.date()}")
        return ax


def _trend_p(won, n) -> float:
    """Two-sided Cochran-Armitage test for a linear trend of proportions over scores 1..k."""
    won, n = np.asarray(won, float), np.asarray(n, float)
    x = np.arange(1, len(n) + 1, dtype=float)
    p = won.sum() / n.sum()
    xbar = (n * x).sum() / n.sum()
    t = (x * (won - n * p)).sum()
    var = p * (1 - p) * (n * (x - xbar) ** 2).sum()
    return float(2 * stats.norm.sf(abs(t) / np.sqrt(var))) if var > 0 else float("nan")


def fit_score_backtest(dataset: Dataset, cut_at=None, covariates: Sequence[str] | None = None, *,
                       mature_days: int = 180, alpha: float = 0.05, **options) -> FitScoreBacktest:
    """Fit the score on ``dataset.cut(cut_at)``, score the deals open then, check their later outcomes.

    Parameters
    ----------
    cut_at : date, optional
        Default: 365 days before ``dataset.as_of``.
    mature_days : int
        The horizon of the model fitted on the cut data (shorter than the default 365,
        so the cut data still has a mature cohort).

    Deals open at the cut and closed by ``dataset.as_of`` are compared by score
    quintile; those still open are counted (``still_open``) and left out.
    """
    from statsmodels.stats.proportion import proportion_confint

    cut_at = dataset.as_of - pd.Timedelta(days=365) if cut_at is None else pd.Timestamp(cut_at)
    past = dataset.cut(cut_at)
    scored = fit_scores(past, covariates, mature_days=mature_days, alpha=alpha, **options)
    later = dataset.deals.set_index("deal_id")["outcome"]
    s = scored.deals.dropna(subset=["fit_score"]).copy()
    s["outcome"] = s["deal_id"].map(later).to_numpy()
    s["quintile"] = pd.qcut(s["fit_score"].rank(method="first"), 5, labels=False) + 1
    closed = s[s["outcome"] != "open"]
    g = closed.groupby("quintile")
    table = pd.DataFrame({"n": g.size(), "won": g["outcome"].agg(lambda o: int((o == "won").sum())),
                          "mean_score": g["fit_score"].mean()})
    table["still_open"] = s[s["outcome"] == "open"].groupby("quintile").size().reindex(table.index).fillna(0)
    table = table.reset_index().astype({"still_open": int})
    table["win_rate"] = table["won"] / table["n"]
    table["ci_low"], table["ci_high"] = proportion_confint(table["won"], table["n"], alpha=alpha, method="wilson")
    rho, p = stats.spearmanr(closed["fit_score"], closed["outcome"] == "won")
    notes = scored.notes + [f"{len(closed)} of the {len(s)} scored deals closed by {dataset.as_of.date()}; "
                            f"{len(s) - len(closed)} still open are left out."]
    return FitScoreBacktest(table=table, cut_at=cut_at, as_of=dataset.as_of, scored=int(len(s)),
                            spearman=float(rho), spearman_p=float(p), trend_p=_trend_p(table["won"], table["n"]),
                            scores=s, notes=notes)
