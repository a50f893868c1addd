"""The sections of `notebooks/cycle_time.ipynb`: time to close, competing outcomes, segments,
speed drivers, time in stage, and the open-pipeline forecast with its backtest."""
from __future__ import annotations

import pandas as pd

from .. import findings, plots
from ..dataset.groups import OVERALL
from . import needs
from .base import Section, section
from .common import SQUARE, WIDE, new_axes, require_columns


@section("Time to close", needs=(needs.dates, needs.closed_deals))
def time_to_close(out: Section, settings):
    """Kaplan-Meier of time to close per segment: curves, quartiles, sentences."""
    from ..cycle.times import cycle_times

    unit = settings.unit
    cycles = cycle_times(settings.dataset, by=settings.segment_by, horizon=settings.horizon,
                         min_deals=settings.min_deals)
    out.text("The share of deals closed, won or lost, over the time since creation (one minus Kaplan-Meier), with "
             "95% confidence bands. Deals still open count for as long as they have been watched. The numbers "
             "under the axis are the deals still open and observed then: where they are few, the curve is "
             "uncertain.")
    out.figure(plots.survival_curves(cycles, unit=unit, overall_label=settings.everyone, ax=new_axes(WIDE)),
               alt="Share of deals closed over time since creation, per segment, with confidence bands.")
    table = cycles.summary(settings.days)
    shown = pd.DataFrame({
        "Segment": table["segment"], "Deals": table["deals"], "Still open": table["open"],
        unit.label("Quarter closed within (days)"): table["q25_days"] * unit.per_day,
        unit.label("Half closed within (days)"): table["median_days"] * unit.per_day,
        unit.label("95% CI low (days)"): table["median_low"] * unit.per_day,
        unit.label("95% CI high (days)"): table["median_high"] * unit.per_day,
        unit.label("Three quarters within (days)"): table["q75_days"] * unit.per_day,
    })
    out.table(shown, caption="Time to close per segment: quartiles, and the median with its 95% confidence interval "
                             "(empty where the curve has not got there yet).")
    out.sentences(findings.time_to_close_findings(cycles, unit=unit), key=1)
    overall = cycles.fits[OVERALL].median()["estimate"]
    out.record(median_days_to_close=overall)
    return cycles


@section("Won and lost as competing outcomes", builds_on="Time to close")
def competing_outcomes(out: Section, settings, cycles):
    """Cumulative incidence of winning per segment, and where all deals stand over time."""
    h = settings.horizon
    out.text("The share of deals won over the time since creation (Aalen-Johansen cumulative incidence). A lost deal "
             "can no longer "
             "be won: treating lost deals as if they might still win would overstate this share.")
    out.figure(plots.cumulative_incidence(cycles, cause="won", unit=settings.unit, overall_label=settings.everyone,
                                           ax=new_axes(WIDE)),
               alt="Share of deals won over time since creation, per segment, with confidence bands.")
    out.text("Where all deals stand at each point in time: won, still open or lost. The three add up to 100%.")
    out.figure(plots.outcome_areas(cycles, unit=settings.unit, overall_label=settings.everyone, ax=new_axes(WIDE)),
               alt="Stacked shares of deals won, still open and lost over time since creation.")
    out.sentences(findings.outcome_findings(cycles, unit=settings.unit), key=True)
    fit = cycles.fits[OVERALL]
    low, high = fit.cif_ci("won", h)
    out.record(win_probability=float(fit.cif("won", h)[0]), win_probability_interval=[float(low[0]), float(high[0])],
               horizon_days=h,
               cif_won={f"{d:g}": float(fit.cif("won", d)[0]) for d in settings.days})
    return cycles


@section("Win probability at the horizon", builds_on="Time to close")
def win_probability(out: Section, settings, cycles):
    """Per segment: won and lost within the horizon, and the share won at each of ``days``."""
    unit = settings.unit
    table = cycles.summary(settings.days)
    shown = pd.DataFrame({"Segment": table["segment"], "Deals": table["deals"],
                          f"Won within {unit(settings.horizon)}": table["win_probability"],
                          "95% CI low": table["win_probability_low"], "95% CI high": table["win_probability_high"],
                          f"Lost within {unit(settings.horizon)}": table["loss_probability"]})
    for d in settings.days:
        shown[f"Won by {unit(d)}"] = [float(fit.cif("won", d)[0]) for fit in cycles.fits.values()]
    out.table(shown, caption=f"Per segment, the share of deals won within {unit(settings.horizon)} with its 95% "
                             "interval, the share lost, and the share won by each earlier point.",
              percent=[c for c in shown.columns if c not in ("Segment", "Deals")])
    return cycles


@section("Segment comparison", needs=(needs.dates, needs.closed_deals, needs.comparison), builds_on="Time to close")
def segment_comparison(out: Section, settings, cycles):
    """Log-rank tests of time to close and Gray's tests of winning and losing, across segments and between every
    pair, corrected, with sentences."""
    from ..cycle.times import compare_segments

    comparison = compare_segments(settings.dataset, settings.segment_by, min_deals=settings.min_deals)
    out.text("Whether segments differ, across all segments and for every pair: a log-rank test of time to close, "
             "and Gray's tests of the share of deals won, and lost, by each day (open deals count for as long as "
             "they have been open). p-values are corrected for the number of tests (Benjamini-Hochberg); a difference is called real "
             "only when the corrected p-value is below 0.05.")
    out.sentences(findings.segment_findings(cycles, comparison, unit=settings.unit))
    overall = comparison[comparison["comparison"] == "all"]
    out.table(overall.rename(columns={"outcome": "Outcome", "comparison": "Comparison", "statistic": "Chi-square",
                                      "df": "df", "p_value": "p", "p_adjusted": "Corrected p", "test": "Test"}),
              caption="Tests across all segments (log-rank for closing, Gray's test for winning and losing):",
              detail=True)
    pairs = comparison[(comparison["comparison"] != "all") & (comparison["p_adjusted"] < 0.05)]
    if len(pairs):
        out.table(pairs.rename(columns={"outcome": "Outcome", "comparison": "Pair", "statistic": "Chi-square",
                                        "df": "df", "p_value": "p", "p_adjusted": "Corrected p", "test": "Test"}),
                  caption="Pairs of segments that differ significantly:", detail=True)
    return comparison


@section("Drivers of speed", needs=(needs.dates, needs.won_deals))
def speed(out: Section, settings):
    """A cause-specific Cox model of time to winning, its forest plot and its PH check."""
    from ..cycle.times import speed_drivers

    covariates = list(settings.speed_covariates)
    if not covariates:
        out.text("No deal attribute is suited to a model here (none has a few well-filled levels, and there is no "
                 "amount), so there are no speed drivers to show. Set `speed_covariates` to choose columns.")
        return None
    require_columns(settings.dataset, covariates, "speed_covariates")
    drivers = speed_drivers(settings.dataset, covariates)
    out.text("A Cox model of the time to winning, with lost deals censored at their close (a cause-specific "
             "hazard). A hazard ratio above 1 means deals with that value are won faster, other things equal; "
             "grey intervals are not significant.")
    out.figure(plots.hazard_ratios(drivers, ax=new_axes(WIDE)),
               alt="Hazard ratios of winning with 95% confidence intervals, one row per covariate level.")
    out.sentences(drivers.findings())
    for note in getattr(drivers, "notes", []):
        out.notes.append(note)
    return drivers


@section("Time in stage", needs=(needs.dates, needs.stage_history))
def time_in_stage(out: Section, settings):
    """First-visit dwell per open stage (Kaplan-Meier), per segment."""
    from ..cycle.dwell import stage_dwell

    dwell = stage_dwell(settings.dataset, by=settings.segment_by, min_deals=settings.min_deals)
    out.text("Median time of the first visit to each open stage, with 95% confidence intervals. Deals still in a "
             "stage count up to the cut-off (Kaplan-Meier), so long visits still running are not left out.")
    out.figure(plots.dwell_bars(dwell, unit=settings.unit, overall_label=settings.everyone, ax=new_axes(WIDE)),
               alt=f"Median {settings.unit.name} in each open stage, per segment, with 95% confidence intervals.")
    out.sentences(dwell.findings(unit=settings.unit), key=1)
    out.record(median_days_in_stage=dwell.medians())
    return dwell


@section("Open-pipeline forecast", needs=(needs.dates, needs.open_deals, needs.won_deals))
def forecast(out: Section, settings):
    """Per open deal, the probability of a win within the forecast window; totals per stage."""
    from ..cycle.forecast import forecast_open

    unit = settings.unit
    result = forecast_open(settings.dataset, window=settings.forecast_window)
    out.text(f"The probability that each open deal is won within the next {unit(settings.forecast_window)}, from "
             "how deals that were as long in the same stage ended.")
    currency = settings.dataset.currency
    out.sentences(result.findings(unit=unit, currency=currency), key=1)
    per_stage = result.summary().rename(columns={"stage": "Current stage", "open_deals": "Open deals",
                                                 "mean_p_win": "Mean win probability",
                                                 "expected_wins": "Expected wins",
                                                 "expected_amount": f"Expected amount ({currency})" if currency
                                                 else "Expected amount"})
    out.table(per_stage, caption="Per current stage:")
    out.notes.extend(result.notes)
    totals = result.totals().set_index("quantity")
    out.record(forecast={"window_days": settings.forecast_window, "open_deals": len(result.deals),
                         "expected_wins": float(totals.loc["wins", "expected"]),
                         "expected_wins_low": float(totals.loc["wins", "low"]),
                         "expected_wins_high": float(totals.loc["wins", "high"])})
    return result


@section("Backtest of the forecast", needs=(needs.dates, needs.open_deals), builds_on="Open-pipeline forecast")
def backtest(out: Section, settings, forecast_result):
    """The same forecast made at an earlier cut-off against what happened next."""
    from ..cycle.forecast import backtest as replay

    cut = settings.backtest_cut
    first = settings.dataset.deals["created_at"].min()
    if cut is None or cut <= first:
        out.text(f"The data start too late for a backtest: a forecast of {settings.unit(settings.forecast_window)} "
                 "needs data from before its cut-off and two windows after it. Set `backtest_cut` to choose the "
                 "cut-off.")
        return None
    result = replay(settings.dataset, cut, window=settings.forecast_window)
    out.text("The same forecast made at an earlier cut-off, with the data as they were then, against what happened "
             "next. Points near the diagonal mean the probabilities can be taken at face value; bars are 95% "
             "Wilson intervals.")
    out.figure(plots.calibration(result, ax=new_axes(SQUARE)),
               alt="Predicted against observed win rates of the backtest, by bin of predicted probability.")
    out.sentences(result.findings(unit=settings.unit))
    return result
