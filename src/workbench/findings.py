"""Plain-language findings, written from the numbers of the result objects.

Each function takes results and returns `Findings`: a list of sentences that
displays as a bulleted list in a notebook. Sentences only call a difference
between segments real when the corrected p-value of `compare_segments` is below
``alpha``; otherwise they say the difference is not statistically significant.
Nothing is re-estimated here: the numbers are read off the results (the one
exception is a Benjamini-Hochberg correction of the Cox model's p-values, so that
drivers are held to the same standard as segment comparisons).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from .dataset.columns import rows_label
from .dataset.groups import OVERALL
from .formats import amount, level, p_value, percent, ratio
from .timeunits import DAYS, TimeUnit

ALPHA = 0.05
#: Most driver sentences to write (the forest plot shows the rest).
MAX_DRIVERS = 5


class Findings(list):
    """Sentences (a plain ``list`` of ``str``) that display as a bulleted list in notebooks."""

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- {sentence}" for sentence in self) if self else "_No findings._"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))

    def __str__(self) -> str:
        return "\n".join(f"- {sentence}" for sentence in self)


# --- formatting ----------------------------------------------------------------------

def _interval(low: float, high: float, unit: TimeUnit = DAYS) -> str:
    """``81-88`` (in ``unit``), or ``81 to not yet reached``."""
    if not np.isfinite(high):
        return f"{unit.number(low)} to not yet reached"
    return f"{unit.number(low)}-{unit.number(high)}"


# --- data -----------------------------------------------------------------------------

def data_findings(dataset) -> Findings:
    """How many deals, their outcomes, and what was excluded while loading.

    A dateless dataset has no "as of" (unless dataset.yaml gives one); its first sentence
    says that only outcomes and attributes can be analysed.
    """
    c = dataset.counts()
    when = "" if pd.isna(dataset.as_of) else f" as of {dataset.as_of.date()}"
    if len(dataset.deals) and not dataset.has_dates:
        when += " without dates (only their outcomes and attributes can be analysed)"
    out = Findings([f"The data hold {c['deals']:,} deals{when}: {c['won']:,} won, "
                    f"{c['lost']:,} lost and {c['open']:,} still open."])
    exclusions = dataset.exclusions
    total = int(exclusions["rows"].sum()) if len(exclusions) else 0
    if total == 0:
        out.append("No rows were excluded while loading.")
    else:
        parts = [f"{rows_label(r.table, int(r.rows))} ({r.check})" for r in exclusions.head(5).itertuples()]
        more = f" and {len(exclusions) - 5} more reasons" if len(exclusions) > 5 else ""
        scope = f" {dataset.report.scope}" if dataset.report.scope else ""
        out.append(f"{total:,} rows were excluded while loading{scope}, each counted with its reason: "
                   f"{', '.join(parts)}{more}.")
    return out


# --- cycle times ------------------------------------------------------------------------

def time_to_close_findings(cycle_times, *, unit: TimeUnit = DAYS) -> Findings:
    """Median and quartiles of the time to close (won or lost) for all deals, and the open share;
    durations in ``unit`` (`workbench.timeunits`: days, or hours for processes that take hours)."""
    fit = cycle_times.fits[OVERALL]
    ci = level(cycle_times.alpha)
    median, q25, q75 = fit.median(), fit.quantile(0.25), fit.quantile(0.75)
    out = Findings()
    if np.isfinite(median["estimate"]):
        out.append(f"Half of all deals close (won or lost) within {unit(median['estimate'])} "
                   f"({ci} {_interval(median['lower'], median['upper'], unit)}).")
        quarter = f"A quarter close within {unit(q25['estimate'])}"
        if np.isfinite(q75["estimate"]):
            out.append(f"{quarter}, three quarters within {unit(q75['estimate'])}.")
        else:
            out.append(f"{quarter}; fewer than three quarters have closed by the last observed day.")
    else:
        out.append("Fewer than half of all deals have closed by the last observed day, so the median time to "
                   "close is not known yet.")
    counts = cycle_times.counts.loc[OVERALL]
    n_open, n = int(counts["open"]), int(counts["deals"])
    if n_open:
        out.append(f"{percent(n_open / n)} of deals ({n_open:,} of {n:,}) are still open; their outcome is "
                   "estimated, not dropped.")
    return out


def outcome_findings(cycle_times, *, horizon: float | None = None, unit: TimeUnit = DAYS) -> Findings:
    """Won, lost and still open at the horizon, for all deals (competing outcomes)."""
    h = float(cycle_times.horizon if horizon is None else horizon)
    fit = cycle_times.fits[OVERALL]
    won, lost, still = fit.cif("won", h)[0], fit.cif("lost", h)[0], fit.survival(h)[0]
    low, high = (v[0] for v in fit.cif_ci("won", h))
    sentence = (f"Within {unit(h)} of creation, {percent(won)} of deals are won "
                f"({level(cycle_times.alpha)} {percent(low).rstrip('%')}-{percent(high)}) and {percent(lost)} are lost")
    sentence += f"; {percent(still)} are still open." if still > 0 else "."
    return Findings([sentence])


def _pair_p(comparison: pd.DataFrame | None, outcome: str, a: str, b: str) -> float:
    """Corrected p-value of the pairwise test of ``a`` and ``b`` (NaN when not tested)."""
    if comparison is None:
        return float("nan")
    rows = comparison[(comparison["outcome"] == outcome)
                      & comparison["comparison"].isin([f"{a} vs {b}", f"{b} vs {a}"])]
    return float(rows["p_adjusted"].iloc[0]) if len(rows) else float("nan")


def _not_shown(p: float) -> str:
    """The clause for a difference not shown to be real: untested, or not significant."""
    return (" (whether the difference is real was not tested)" if np.isnan(p) else
            f", but the difference is not statistically significant (corrected {p_value(p)})")


def segment_findings(cycle_times, comparison: pd.DataFrame | None = None, *, horizon: float | None = None,
                     alpha: float = ALPHA, unit: TimeUnit = DAYS) -> Findings:
    """Which segments win more often, and which close faster, worded by significance.

    Parameters
    ----------
    cycle_times : CycleTimes
        Fitted with ``by`` set.
    comparison : DataFrame, optional
        `compare_segments` on the same ``by``; without it no difference is called real.
    alpha : float
        A difference is called real only when its corrected p-value is below this.
    """
    fits = {k: v for k, v in cycle_times.fits.items() if k != OVERALL}
    if cycle_times.by is None or len(fits) < 2:
        return Findings()
    h = float(cycle_times.horizon if horizon is None else horizon)
    out = Findings()

    won = {label: float(fit.cif("won", h)[0]) for label, fit in fits.items()}
    best, worst = max(won, key=won.get), min(won, key=won.get)
    p = _pair_p(comparison, "won", best, worst)
    if p < alpha and won[worst] > 0:
        out.append(f"{best} deals win {ratio(won[best] / won[worst])}x as often within {unit(h)} as {worst} "
                   f"deals ({percent(won[best])} vs {percent(won[worst])}; corrected {p_value(p)}).")
    elif won[best] == won[worst]:
        out.append(f"Within {unit(h)}, {percent(won[best])} of deals are won in every `{cycle_times.by}`.")
    else:
        out.append(f"Within {unit(h)}, {percent(won[best])} of {best} deals and {percent(won[worst])} of "
                   f"{worst} deals are won{_not_shown(p)}.")

    if comparison is not None:
        pairs = comparison[(comparison["outcome"] == "won") & (comparison["comparison"] != "all")]
        if len(pairs):
            k = int((pairs["p_adjusted"] < alpha).sum())
            share = f"{k} of the {len(pairs)}" if k else f"None of the {len(pairs)}"
            out.append(f"{share} pairs of `{cycle_times.by}` values differ significantly in their rate of "
                       f"winning (Gray's tests of the share won over time, corrected p < {alpha:g}).")

    medians = {label: fit.median() for label, fit in fits.items()}
    finite = {label: m for label, m in medians.items() if np.isfinite(m["estimate"])}
    if len(finite) >= 2:
        fast = min(finite, key=lambda s: finite[s]["estimate"])
        slow = max(finite, key=lambda s: finite[s]["estimate"])
        f, s = finite[fast], finite[slow]
        p = _pair_p(comparison, "close", fast, slow)
        ci = level(cycle_times.alpha)
        if f["estimate"] == s["estimate"]:
            out.append(f"Half of the deals close within {unit(f['estimate'])} in every `{cycle_times.by}`.")
        elif p < alpha:
            out.append(f"{fast} deals close fastest: half within {unit(f['estimate'])} "
                       f"({ci} {_interval(f['lower'], f['upper'], unit)}), against {unit(s['estimate'])} "
                       f"({_interval(s['lower'], s['upper'], unit)}) for {slow} deals (corrected {p_value(p)}).")
        else:
            out.append(f"Half of {fast} deals close within {unit(f['estimate'])} and half of {slow} deals "
                       f"within {unit(s['estimate'])}{_not_shown(p)}.")
    not_reached = sorted(set(medians) - set(finite))
    if not_reached:
        out.append(f"Fewer than half of the deals have closed so far in: {', '.join(not_reached)}; "
                   "their median time to close is not known yet.")
    return out


# --- drivers -------------------------------------------------------------------------------

def _bh(p: np.ndarray) -> np.ndarray:
    from statsmodels.stats.multitest import multipletests

    return multipletests(p, method="fdr_bh")[1] if len(p) else p


def _driver_subject(covariate: str, references: dict) -> tuple[str, str | None]:
    """(what the row is about, the reference it is compared with)."""
    column, sep, value = covariate.partition("=")
    if sep:
        return f"Deals with {column} {value}", f"those with {references.get(column, 'the reference')}"
    return covariate, None


def driver_findings(drivers, *, alpha: float = ALPHA) -> Findings:
    """The Cox model in words: which covariates speed deals to the outcome, and the PH check.

    Effects are called real when their Benjamini-Hochberg corrected p-value is
    below ``alpha``; at most `MAX_DRIVERS` of them get a sentence each.
    """
    table = drivers.table.assign(p_adjusted=_bh(drivers.table["p_value"].to_numpy()))
    references = getattr(drivers, "reference_levels", {}) or {}
    cause = getattr(drivers, "cause", "won")
    rate = f"the rate of being {cause}"
    ci = level(ALPHA)
    out = Findings()
    real = table[table["p_adjusted"] < alpha].sort_values("p_adjusted")
    for row in real.head(MAX_DRIVERS).itertuples():
        hr = f"{ratio(row.hazard_ratio)}, {ci} {ratio(row.ci_low)}-{ratio(row.ci_high)}"
        subject, reference = _driver_subject(row.covariate, references)
        if reference is not None:
            out.append(f"{subject} are {cause} at {ratio(row.hazard_ratio)}x the rate of {reference}, other things "
                       f"equal (hazard ratio {hr}).")
        elif row.covariate.startswith("amount (per doubling)"):
            out.append(f"Each doubling of the amount multiplies {rate} by {ratio(row.hazard_ratio)}, other things "
                       f"equal (hazard ratio {hr}).")
        else:
            out.append(f"Each unit more of {row.covariate} multiplies {rate} by {ratio(row.hazard_ratio)}, other "
                       f"things equal (hazard ratio {hr}).")
    if len(real) > MAX_DRIVERS:
        out.append(f"{len(real) - MAX_DRIVERS} more effects are significant; the forest plot shows them all.")
    if len(real) == 0:
        out.append(f"No covariate changes {rate} significantly (corrected p < {alpha:g}).")
    null = table[table["p_adjusted"] >= alpha]
    if len(null) and len(real):
        names = ", ".join(c.replace("=", " ") for c in null["covariate"])
        out.append(f"No significant effect on {rate} (corrected p >= {alpha:g}): {names}.")
    if getattr(drivers, "excluded", 0):
        out.append(f"{drivers.excluded:,} deals with a missing covariate were left out of this model.")
    violations = drivers.violations()
    if violations:
        out.extend(violations)
    else:
        out.append("The proportional-hazards check (Schoenfeld residuals) finds no sign that any effect changes "
                   "over the life of a deal (all p >= 0.01), so each hazard ratio can be read as a constant "
                   "multiplier.")
    return out


def competing_driver_findings(drivers, *, alpha: float = ALPHA) -> Findings:
    """The Fine-Gray model of winning in words (``workbench.drivers.competing_drivers``).

    Effects are called real when their Benjamini-Hochberg corrected p-value is below
    ``alpha``, as for the Cox model; at most `MAX_DRIVERS` get a sentence each.
    """
    table = drivers.table.assign(p_adjusted=_bh(drivers.table["p_value"].to_numpy()))
    references = getattr(drivers, "reference_levels", {}) or {}
    ci = level(alpha)
    out = Findings()
    real = table[table["p_adjusted"] < alpha].sort_values("p_adjusted", kind="stable")
    for row in real.head(MAX_DRIVERS).itertuples():
        numbers = f"{ci} {ratio(row.ci_low)}-{ratio(row.ci_high)}; corrected {p_value(row.p_adjusted)}"
        if row.feature in references:
            how = "sooner or more often" if row.ratio > 1 else "later or less often"
            out.append(f"Deals with {row.feature} {row.level} win {how} than those with {references[row.feature]}, "
                       f"other things equal: {ratio(row.ratio)} times the rate of winning ({numbers}).")
        elif row.level.startswith("= 0"):
            how = "sooner or more often" if row.ratio > 1 else "later or less often"
            out.append(f"Deals with {row.feature} 0 win {how} than deals of median {row.feature}: "
                       f"{ratio(row.ratio)} times the rate of winning ({numbers}).")
        else:
            step = "Each doubling of" if row.level == "per doubling" else f"Each {row.level.removeprefix('per ')} more of"
            out.append(f"{step} {row.feature} multiplies the rate of winning by {ratio(row.ratio)}, other things "
                       f"equal ({numbers}).")
    more = len(real) - MAX_DRIVERS
    if more > 0:
        out.append(f"{more} more effect{'s are' if more > 1 else ' is'} significant; the forest plot shows them all.")
    if not len(real):
        out.append(f"No attribute changes how soon or how often deals are won significantly (corrected p < "
                   f"{alpha:g}) once the others are taken into account.")
    return out


#: Most sentences about the logistic drivers model (the forest plot shows the rest).
MAX_WIN_DRIVERS = 4


def win_driver_findings(drivers, *, alpha: float = ALPHA) -> Findings:
    """The strongest significant effects of the logistic model of winning (`workbench.drivers.model.WinDrivers`),
    in words; at most `MAX_WIN_DRIVERS` of them."""
    table = drivers.table
    real = table[table["p_value"] < alpha]
    out = Findings()
    for row in real.head(MAX_WIN_DRIVERS).itertuples():
        odds = f"odds ratio {ratio(row.odds_ratio)}, {level(alpha)} {ratio(row.ci_low)}-{ratio(row.ci_high)}"
        if row.feature in drivers.reference_levels:
            more = "more" if row.odds_ratio > 1 else "less"
            out.append(f"Deals with {row.feature} {row.level} win {more} often than those with "
                       f"{drivers.reference_levels[row.feature]}, other things equal ({odds}; {p_value(row.p_value)}).")
        else:
            out.append(f"Each step {row.level} of {row.feature} multiplies the odds of winning by "
                       f"{ratio(row.odds_ratio)} ({odds}; {p_value(row.p_value)}).")
    if not out:
        out.append(f"No attribute changes the odds of winning significantly (p < {alpha:g}) once the others are "
                   "taken into account.")
    return out


def cycle_findings(cycle_times, comparison: pd.DataFrame | None = None, drivers=None, *,
                   horizon: float | None = None, alpha: float = ALPHA) -> Findings:
    """Every cycle-time finding: time to close, outcomes, segments, and drivers when given."""
    out = Findings(time_to_close_findings(cycle_times))
    out.extend(outcome_findings(cycle_times, horizon=horizon))
    out.extend(segment_findings(cycle_times, comparison, horizon=horizon, alpha=alpha))
    if drivers is not None:
        out.extend(driver_findings(drivers, alpha=alpha))
    return out


# --- time in stage --------------------------------------------------------------------------

def dwell_findings(stage_dwell, *, unit: TimeUnit = DAYS) -> Findings:
    """Longest and shortest median stay in an open stage (all deals), and who is still in one."""
    table = stage_dwell.table[stage_dwell.table["segment"] == OVERALL]
    ci = level(stage_dwell.alpha)
    out = Findings()
    rated = table[np.isfinite(table["median_days"].astype(float))]
    if len(rated) >= 2:
        long = rated.loc[rated["median_days"].idxmax()]
        short = rated.loc[rated["median_days"].idxmin()]
        if long["median_days"] == short["median_days"]:
            out.append(f"Deals spend a median of {unit(long['median_days'])} in every stage.")
        elif long["median_low"] > short["median_high"]:
            out.append(f"Deals stay longest in {long['stage']} (median {unit(long['median_days'])}, {ci} "
                       f"{_interval(long['median_low'], long['median_high'], unit)}) and shortest in {short['stage']} "
                       f"({unit(short['median_days'])}, {_interval(short['median_low'], short['median_high'], unit)}).")
        else:
            out.append(f"Median {unit.name} in stage range from {unit.number(short['median_days'])} ({short['stage']}) "
                       f"to {unit.number(long['median_days'])} ({long['stage']}), but their {ci}s overlap, so the stages "
                       "may not really differ.")
    elif len(rated) == 1:
        row = rated.iloc[0]
        out.append(f"Deals spend a median of {unit(row['median_days'])} in {row['stage']} ({ci} "
                   f"{_interval(row['median_low'], row['median_high'], unit)}).")
    missing = table.loc[~np.isfinite(table["median_days"].astype(float)), "stage"].tolist()
    if missing:
        out.append(f"No median for {', '.join(missing)}: too few deals entered, or fewer than half have left.")
    still = int(table["still_in_stage"].sum())
    if still:
        out.append(f"{still:,} deals are still in their stage at the cut-off; their time in stage is counted up "
                   "to then, not dropped.")
    return out


# --- forecast -----------------------------------------------------------------------------------

def forecast_findings(forecast, backtest=None, *, unit: TimeUnit = DAYS, currency: str | None = None) -> Findings:
    """Expected wins (and amount) of the open pipeline, and how the backtest went."""
    totals = forecast.totals().set_index("quantity")
    conf = f"{100 * (1 - forecast.alpha):g}%"
    wins = totals.loc["wins"]
    out = Findings([f"Of the {len(forecast.deals):,} open deals, about {wins['expected']:,.0f} are expected to be "
                    f"won within the next {unit(forecast.window)} ({conf} interval {wins['low']:,.0f}-{wins['high']:,.0f}; it "
                    "takes each deal's probability as known, so it understates the uncertainty)."])
    if "amount" in totals.index and totals.loc["amount", "deals"] > 0:
        money = totals.loc["amount"]
        label = f" {currency}" if currency else ""
        out.append(f"Their expected won amount is {amount(money['expected'])}{label} ({amount(money['low'])}-"
                   f"{amount(money['high'])}{label}), from the {int(money['deals']):,} open deals with an amount.")
    if backtest is not None:
        out.extend(backtest_findings(backtest, alpha=forecast.alpha, unit=unit))
    return out


def backtest_findings(backtest, *, alpha: float = ALPHA, unit: TimeUnit = DAYS) -> Findings:
    """Expected against actual wins of the replayed forecast, and its calibration in words."""
    expected, actual = float(backtest.expected_wins), int(backtest.actual_wins)
    cut = getattr(backtest, "cut_at", None)
    when = f"Made at {cut.date()} with the data as they were then, the" if cut is not None else "The"
    window = getattr(backtest, "window", None)
    within = f" within {unit(window)}" if window else ""
    sentence = f"{when} forecast expected {expected:,.0f} wins{within}; {actual:,} happened"
    sd = getattr(backtest, "wins_sd", None)
    if sd is not None and sd > 0:
        z = NormalDist().inv_cdf(1 - alpha / 2)
        low, high = max(expected - z * sd, 0.0), expected + z * sd
        inside = "inside" if low <= actual <= high else "outside"
        # One decimal where whole numbers would make an end look equal to what happened.
        digits = 1 if actual in (round(low), round(high)) else 0
        sentence += (f", {inside} its {100 * (1 - alpha):g}% interval of "
                     f"{low:,.{digits}f}-{high:,.{digits}f}")
    out = Findings([sentence + "."])
    brier, naive = getattr(backtest, "brier", None), getattr(backtest, "naive_brier", None)
    if brier is not None and naive is not None and math.isfinite(naive):
        better = "better than" if brier < naive else "no better than"
        out.append(f"Its Brier score is {brier:.3f}, {better} the {naive:.3f} of giving every open deal the same "
                   "historical win rate (lower is better).")
    cal = backtest.calibration
    low_col, high_col = ("observed_low", "observed_high") if "observed_low" in cal else ("ci_low", "ci_high")
    hits = int(((cal[low_col] <= cal["mean_predicted"]) & (cal["mean_predicted"] <= cal[high_col])).sum())
    out.append(f"In {hits} of {len(cal)} bins of predicted probability, the share that won is within its "
               f"{100 * (1 - alpha):g}% interval of the predicted probability.")
    return out


# --- journeys -----------------------------------------------------------------------------------

def journey_line(facts, persona: str, name: str | None = None) -> str:
    """One persona's journey in a sentence: the share of deals moving on from each stage they reached, and the
    stage most lost deals were last in. ``name`` is how the sentence calls the persona (default: its label)."""
    rows = facts.stages[facts.stages["persona"] == persona]
    steps = [f"{row.stage} {percent(row.conversion)}" for row in rows.itertuples()
             if row.conversion == row.conversion and row.entered]
    if not steps:
        return ""
    text = f"{name or persona}: of the deals that reached each stage, the share that moved on: {', '.join(steps)}"
    lost = rows[rows["lost_here"].fillna(0) > 0]
    if len(lost):
        worst = lost.loc[lost["lost_here"].idxmax()]
        share = worst["lost_here"] / lost["lost_here"].sum()
        text += f"; {percent(share)} of the lost deals were last in {worst['stage']}"
    return text + "."


def persona_findings(facts, *, alpha: float = ALPHA) -> Findings:
    """Each persona's journey in one line, then the personas that reach a win most and least often (when their
    intervals do not overlap)."""
    personas = [p for p in facts.personas if p != OVERALL]
    out = Findings(journey_line(facts, p) for p in personas)
    out = Findings(s for s in out if s)
    stages = facts.stages
    last = stages[(stages["next"] == "Won") & stages["persona"].isin(personas)].dropna(subset=["conversion"])
    if len(last) >= 2:
        best = last.loc[last["conversion"].idxmax()]
        worst = last.loc[last["conversion"].idxmin()]
        if best["conversion_low"] > worst["conversion_high"]:
            out.insert(0, f"{best['persona']} deals that reach {best['stage']} win most often "
                          f"({percent(best['conversion'])}, {level(alpha)} {percent(best['conversion_low'])} to "
                          f"{percent(best['conversion_high'])}); {worst['persona']} deals least often "
                          f"({percent(worst['conversion'])}, {percent(worst['conversion_low'])} to "
                          f"{percent(worst['conversion_high'])}).")
        else:
            out.insert(0, f"From {best['stage']}, personas win between {percent(worst['conversion'])} "
                          f"({worst['persona']}) and {percent(best['conversion'])} ({best['persona']}) of deals, but "
                          "their intervals overlap, so they may not really differ.")
    return out
