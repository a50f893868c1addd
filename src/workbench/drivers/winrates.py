"""Win rates per segment: what separates won deals from lost ones, one attribute at a time.

Both read the mature cohort (`workbench.drivers.cohort.mature_cohort`): deals created at least
``mature_days`` before ``as_of``, won when won within ``mature_days`` of creation.

- `win_rates`: win rate per level of one attribute with Wilson intervals and lift.
- `univariate_drivers`: one chi-square (or Fisher's exact) test per attribute,
  Benjamini-Hochberg corrected across attributes.

All attributes at once, each adjusted for the others: `workbench.drivers`. Loss and win
reasons are in `workbench.drivers.reasons`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .. import tables
from ..dataset.model import Dataset
from .cohort import (LEAKY_WORDS, MAX_LEVELS, MISSING, as_labels, candidate_columns, cohort_note, deal_column,
                     fold_rare, mature_cohort, other_label)
from .leakage import missing_by_openness
from ..results import Result


def _quantile_bins(values: pd.Series, bins: int = 5) -> pd.Series:
    """Numeric values with many levels in (about) equal-count bins labelled by their range."""
    codes = pd.qcut(values, bins, labels=False, duplicates="drop")
    ranges = values.groupby(codes).agg(["min", "max"])
    names = {c: f"Q{i + 1}: {r['min']:,.0f} to {r['max']:,.0f}" for i, (c, r) in enumerate(ranges.iterrows())}
    return codes.map(names)


@dataclass(frozen=True)
class WinRates(Result):
    """Win rate per level of one attribute in the mature cohort, and one test of any difference.

    ``table``: ``level``, ``n``, ``won``, ``win_rate``, ``ci_low``, ``ci_high`` (Wilson),
    ``lift`` (win rate over the cohort's). ``test`` is ``chi-square`` or ``fisher``
    (2 levels with an expected count under 5), ``None`` with fewer than 2 levels.
    """

    column: str
    table: pd.DataFrame
    overall_rate: float
    n: int
    test: str | None
    statistic: float
    df: int
    p_value: float
    min_level: int
    notes: list[str] = field(default_factory=list)

    def findings(self):
        """The levels with the highest and the lowest win rate, and the test across levels."""
        from ..findings import Findings, p_value, percent

        rated = self.table.dropna(subset=["win_rate"])
        if not len(rated):
            return Findings([f"No level of {self.column} has closed deals to rate."])
        best, worst = rated.loc[rated["win_rate"].idxmax()], rated.loc[rated["win_rate"].idxmin()]
        test = f" ({self.test}, {p_value(self.p_value)})" if self.test else ""
        return Findings([f"By {self.column}, {best['level']} deals win most often ({percent(best['win_rate'])}) and "
                         f"{worst['level']} deals least often ({percent(worst['win_rate'])}), against "
                         f"{percent(self.overall_rate)} overall{test}."])

    def plot(self, *, ax=None):
        """Win rate per level with its interval, and the overall rate as a line; returns the axes."""
        from ..results import interval_bars

        ax = interval_bars(self.table["level"], self.table["win_rate"], self.table["ci_low"], self.table["ci_high"],
                           xlabel=f"Win rate by {self.column}", ax=ax)
        ax.axvline(self.overall_rate, color="0.3", lw=1, ls="--")
        return ax

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return f"<ul>{notes}</ul>" + tables.to_html(self.table, index=False)


def _levels_of(values: pd.Series, min_level: int) -> tuple[pd.Series, list[str]]:
    """Univariate levels: missing is its own level, many-valued numbers are binned, rare levels folded."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > MAX_LEVELS:
        labels = _quantile_bins(values)
    else:
        labels = as_labels(values)
    labels = labels.astype(object).where(labels.notna(), MISSING)
    return fold_rare(labels, min_level)


def _test(won: np.ndarray, n: np.ndarray) -> tuple[str | None, float, int, float]:
    if len(n) < 2:
        return None, np.nan, 0, np.nan
    table = np.column_stack([won, n - won])
    if len(n) == 2:
        expected = stats.contingency.expected_freq(table)
        if expected.min() < 5:
            res = stats.fisher_exact(table)
            return "fisher", float(res.statistic), 1, float(res.pvalue)
    res = stats.chi2_contingency(table, correction=False)
    return "chi-square", float(res.statistic), int(res.dof), float(res.pvalue)


def _win_rates(column: str, values: pd.Series, won: pd.Series, min_level: int, alpha: float) -> WinRates:
    from statsmodels.stats.proportion import proportion_confint

    labels, rare = _levels_of(values, min_level)
    grouped = pd.DataFrame({"level": labels.to_numpy(), "won": won.to_numpy()}).groupby("level")["won"]
    table = pd.DataFrame({"n": grouped.size(), "won": grouped.sum().astype(int)}).reset_index()
    tail = table["level"].isin([other_label(min_level), MISSING])
    table = (table.assign(_tail=tail).sort_values(["_tail", "n", "level"], ascending=[True, False, True])
             .drop(columns="_tail").reset_index(drop=True))
    overall = float(won.mean())
    table["win_rate"] = table["won"] / table["n"]
    table["ci_low"], table["ci_high"] = proportion_confint(table["won"], table["n"], alpha=alpha, method="wilson")
    table["lift"] = table["win_rate"] / overall
    test, statistic, df, p_value = _test(table["won"].to_numpy(), table["n"].to_numpy())
    notes = []
    if test == "chi-square" and stats.contingency.expected_freq(
            np.column_stack([table["won"], table["n"] - table["won"]])).min() < 5:
        notes.append(f"`{column}`: some expected counts are under 5, so the chi-square p-value is approximate.")
    if rare:
        notes.append(f"`{column}`: {len(rare)} levels with fewer than {min_level} deals are folded into "
                     f"`{other_label(min_level)}`: {', '.join(rare[:5])}{'...' if len(rare) > 5 else ''}.")
    if test is None:
        notes.append(f"`{column}` has a single level in the cohort: no test.")
    return WinRates(column=column, table=table, overall_rate=overall, n=int(len(won)), test=test,
                    statistic=statistic, df=df, p_value=p_value, min_level=min_level, notes=notes)


def win_rates(dataset: Dataset, column: str, *, mature_days: int | None = 365, min_level: int = 30,
              alpha: float = 0.05) -> WinRates:
    """Win rate per level of ``column`` in the mature cohort, with Wilson intervals and lift.

    Missing values form a ``(missing)`` level, unless most of them are on deals still
    open (`workbench.drivers.leakage.missing_by_openness`): those deals are then left out
    of the comparison, and a note counts them. Numeric columns with more than 20
    distinct values are cut into quintiles; other levels with fewer than
    ``min_level`` deals are folded into ``other (<min_level deals)``. Account columns
    (e.g. ``employees``) are joined on ``account_id``. The test is a chi-square test
    of independence (no continuity correction), or Fisher's exact test for two levels
    with an expected count under 5 (``statistic`` is then its sample odds ratio).
    """
    cohort = mature_cohort(dataset, mature_days)
    return _compared(column, deal_column(dataset, cohort, column), cohort, min_level, alpha)


def _compared(column: str, values: pd.Series, cohort: pd.DataFrame, min_level: int, alpha: float) -> WinRates:
    """`_win_rates` on the cohort, leaving out the deals whose empty value only says they are still
    open (`workbench.drivers.leakage.missing_by_openness`), with a note counting them."""
    why = missing_by_openness(values, cohort)
    if why is None:
        return _win_rates(column, values, cohort["won"], min_level, alpha)
    keep = values.notna().to_numpy()
    result = _win_rates(column, values[keep], cohort["won"][keep], min_level, alpha)
    result.notes.insert(0, f"`{column}` is {why}; those {int((~keep).sum()):,} deals are left out of its "
                        f"comparison, rather than shown as a `{MISSING}` level whose low win rate would only restate that.")
    return result


@dataclass(frozen=True)
class UnivariateDrivers(Result):
    """One test per attribute, Benjamini-Hochberg corrected across them.

    ``table``: ``column``, ``levels``, ``n``, ``test``, ``statistic``, ``df``, ``p_value``,
    ``p_adjusted``, sorted by ``p_adjusted``; ``rates`` maps each column to its `WinRates`.
    """

    table: pd.DataFrame
    rates: dict[str, WinRates]
    held_out: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def findings(self, *, alpha: float = 0.05):
        """Which attributes' win rates differ (corrected p below ``alpha``)."""
        from ..findings import Findings

        significant = self.table[self.table["p_adjusted"] < alpha]
        if len(significant):
            return Findings([f"Win rates differ by {', '.join(f'`{c}`' for c in significant['column'])} "
                             f"(corrected p < {alpha:g})."])
        return Findings([f"No attribute's win rates differ significantly (corrected p >= {alpha:g})."])

    def plot(self, *, ax=None):
        """Per attribute, the lowest and the highest win rate of its levels; returns the axes."""
        import numpy as np

        from ..plots import theme
        from ..results import axes

        columns = list(self.table["column"])
        low = [self.rates[c].table["win_rate"].min() if c in self.rates else np.nan for c in columns]
        high = [self.rates[c].table["win_rate"].max() if c in self.rates else np.nan for c in columns]
        with theme():
            ax = axes(ax)
            y = np.arange(len(columns))
            ax.hlines(y, low, high, color="0.6")
            ax.plot(low, y, "o", label="lowest level")
            ax.plot(high, y, "o", label="highest level")
            ax.set_yticks(y, columns)
            ax.set_ylim(len(columns) - 0.5, -0.5)
            ax.set_xlabel("Win rate of the attribute's levels")
            ax.legend(loc="lower right")
        return ax

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return f"<ul>{notes}</ul>" + tables.to_html(self.table, index=False)


def univariate_drivers(dataset: Dataset, columns: Sequence[str] | None = None, *, mature_days: int | None = 365,
                       min_level: int = 30, alpha: float = 0.05, exclude: Sequence[str] = LEAKY_WORDS
                       ) -> UnivariateDrivers:
    """Test each attribute for a difference in win rate, correcting for testing many.

    Parameters
    ----------
    columns : list of str, optional
        Default: the deal attributes that `win_drivers` would consider
        (`workbench.drivers.cohort.candidate_columns`), with nested ones kept, since each is
        tested on its own.
    """
    cohort = mature_cohort(dataset, mature_days)
    held_out: dict[str, str] = {}
    if columns is None:
        columns, held_out = candidate_columns(dataset, cohort, exclude, prune=False)
    rates = {c: _compared(c, deal_column(dataset, cohort, c), cohort, min_level, alpha) for c in columns}
    rows = [{"column": c, "levels": len(r.table), "n": r.n, "test": r.test, "statistic": r.statistic,
             "df": r.df, "p_value": r.p_value} for c, r in rates.items()]
    table = pd.DataFrame(rows, columns=["column", "levels", "n", "test", "statistic", "df", "p_value"])
    tested = table["p_value"].notna()
    table["p_adjusted"] = np.nan
    if tested.any():
        from statsmodels.stats.multitest import multipletests

        table.loc[tested, "p_adjusted"] = multipletests(table.loc[tested, "p_value"], method="fdr_bh")[1]
    table = table.sort_values(["p_adjusted", "column"], ignore_index=True)
    notes = [cohort_note(dataset, cohort, mature_days)]
    notes += [n for r in rates.values() for n in r.notes]
    notes += [f"`{c}` held out: {why}." for c, why in held_out.items()]
    return UnivariateDrivers(table=table, rates=rates, held_out=held_out, notes=notes)

