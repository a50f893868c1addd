"""Findings state the numbers of the result objects, and call a difference real only when it is significant."""
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from workbench import findings
from workbench.cycle.times import OVERALL, compare_segments, cycle_times, speed_drivers
from workbench.dataset.problems import Problem, ValidationReport
from workbench.dataset.sample import generate

#: Phrases that claim a difference between segments.
DIFFERENCE_WORDS = ("as often", "fastest", "slowest", "more often", "faster than")


@pytest.fixture(scope="module")
def dataset():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=3_000, seed="findings-tests", truth_deals=5_000).dataset()


@pytest.fixture(scope="module")
def cycles(dataset):
    return cycle_times(dataset, by="persona")


@pytest.fixture(scope="module")
def comparison(dataset):
    return compare_segments(dataset, "persona")


@pytest.fixture(scope="module")
def drivers(dataset):
    return speed_drivers(dataset, ["persona", "channel", "amount"])


def _one(sentences, start):
    hits = [s for s in sentences if s.startswith(start)]
    assert len(hits) == 1, (start, list(sentences))
    return hits[0]


def _extremes(cycles, horizon):
    won = {k: float(f.cif("won", horizon)[0]) for k, f in cycles.fits.items() if k != OVERALL}
    return max(won, key=won.get), min(won, key=won.get), won


def _pair_rows(comparison, outcome, a, b):
    return (comparison["outcome"] == outcome) & comparison["comparison"].isin([f"{a} vs {b}", f"{b} vs {a}"])


def test_median_time_to_close_sentence_has_the_fit_numbers(cycles):
    """The median, its CI and the quartiles in the sentences are the overall fit's, in whole days."""
    fit = cycles.fits[OVERALL]
    m, q25, q75 = fit.median(), fit.quantile(0.25)["estimate"], fit.quantile(0.75)["estimate"]
    out = findings.time_to_close_findings(cycles)
    assert out[0] == (f"Half of all deals close (won or lost) within {m['estimate']:.0f} days "
                      f"(95% CI {m['lower']:.0f}-{m['upper']:.0f}).")
    assert out[1] == f"A quarter close within {q25:.0f} days, three quarters within {q75:.0f} days."


def test_open_deals_sentence_counts_them_and_says_they_are_kept(cycles):
    """The share and count of open deals come from the counts, and the sentence says they are not dropped."""
    c = cycles.counts.loc[OVERALL]
    sentence = _one(findings.time_to_close_findings(cycles), f"{round(100 * c['open'] / c['deals'])}% of deals")
    assert f"({int(c['open']):,} of {int(c['deals']):,})" in sentence
    assert sentence.endswith("their outcome is estimated, not dropped.")


def test_outcome_sentence_reads_the_curves_at_the_horizon(cycles):
    """Won (with CI), lost and open shares at the horizon are the CIFs and survival at that day."""
    fit = cycles.fits[OVERALL]
    horizon = 180
    won, lost = fit.cif("won", horizon)[0], fit.cif("lost", horizon)[0]
    low, high = (v[0] for v in fit.cif_ci("won", horizon))
    sentence = findings.outcome_findings(cycles, horizon=horizon)[0]
    assert sentence.startswith(f"Within 180 days of creation, {100 * won:.0f}% of deals are won "
                               f"(95% CI {100 * low:.0f}-{100 * high:.0f}%) and {100 * lost:.0f}% are lost")
    assert f"{findings.percent(fit.survival(horizon)[0])} are still open" in sentence


def test_significant_win_difference_is_a_ratio_of_best_and_worst(cycles, comparison):
    """With a corrected p below 0.05, best and worst segments are compared as 'N.Nx as often (a% vs b%)'."""
    best, worst, won = _extremes(cycles, 180)
    p = comparison.loc[_pair_rows(comparison, "won", best, worst), "p_adjusted"].iloc[0]
    assert p < 0.05, "the sample should make this pair differ"
    sentence = findings.segment_findings(cycles, comparison, horizon=180)[0]
    assert sentence.startswith(f"{best} deals win {won[best] / won[worst]:.1f}x as often within 180 days as "
                               f"{worst} deals ({100 * won[best]:.0f}% vs {100 * won[worst]:.0f}%")
    assert findings.p_value(p) in sentence


def test_significant_speed_difference_names_fastest_and_slowest(cycles, comparison):
    """The fastest and slowest segments by median time to close, with their medians, when significant."""
    medians = {k: f.median() for k, f in cycles.fits.items() if k != OVERALL}
    fast = min(medians, key=lambda k: medians[k]["estimate"])
    slow = max(medians, key=lambda k: medians[k]["estimate"])
    forced = comparison.assign(p_adjusted=np.where(_pair_rows(comparison, "close", fast, slow), 0.001,
                                                   comparison["p_adjusted"]))
    sentence = _one(findings.segment_findings(cycles, forced), f"{fast} deals close fastest")
    assert f"half within {medians[fast]['estimate']:.0f} days" in sentence
    assert f"against {medians[slow]['estimate']:.0f} days" in sentence and f"for {slow} deals" in sentence


@pytest.mark.parametrize("p", [0.05, 0.2, 0.9])
def test_non_significant_differences_are_never_worded_as_differences(cycles, comparison, p):
    """With every corrected p at or above 0.05, no sentence claims a difference; each says it is not significant."""
    flat = comparison.assign(p_adjusted=p)
    out = findings.segment_findings(cycles, flat, horizon=365)
    best, worst, won = _extremes(cycles, 365)
    for sentence in out:
        assert not any(word in sentence for word in DIFFERENCE_WORDS), sentence
    assert out[0] == (f"Within 365 days, {100 * won[best]:.0f}% of {best} deals and {100 * won[worst]:.0f}% of "
                      f"{worst} deals are won, but the difference is not statistically significant "
                      f"(corrected p = {p:.2g}).")
    assert sum("not statistically significant" in s for s in out) == 2
    assert _one(out, "None of the 10 pairs")


def test_just_significant_difference_is_worded_as_one(cycles, comparison):
    """A corrected p just under 0.05 is a real difference: the sentence gives the ratio."""
    out = findings.segment_findings(cycles, comparison.assign(p_adjusted=0.049))
    assert "x as often" in out[0] and "p = 0.049" in out[0]


def test_without_a_comparison_differences_are_untested(cycles):
    """No comparison table: the shares are given but no difference is claimed."""
    out = findings.segment_findings(cycles)
    assert all("not tested" in s for s in out[:2])
    for sentence in out:
        assert not any(word in sentence for word in DIFFERENCE_WORDS), sentence


def test_no_segment_sentences_without_segments(dataset):
    """Cycle times without `by` have nothing to compare."""
    assert findings.segment_findings(cycle_times(dataset)) == []


def test_driver_sentences_give_hazard_ratios_of_significant_covariates(drivers):
    """Significant covariates (BH-corrected) get their hazard ratio and CI; the others are listed as no effect."""
    from statsmodels.stats.multitest import multipletests

    table = drivers.table.assign(p_adjusted=multipletests(drivers.table["p_value"], method="fdr_bh")[1])
    out = findings.driver_findings(drivers)
    top = table.sort_values("p_adjusted").iloc[0]
    column, _, value = top["covariate"].partition("=")
    sentence = _one(out, f"Deals with {column} {value} are won at")
    assert (f"(hazard ratio {findings.ratio(top['hazard_ratio'])}, 95% CI {findings.ratio(top['ci_low'])}-"
            f"{findings.ratio(top['ci_high'])})") in sentence
    null = _one(out, "No significant effect")
    for covariate in table.loc[table["p_adjusted"] >= 0.05, "covariate"]:
        assert covariate.replace("=", " ") in null
    for covariate in table.loc[table["p_adjusted"] < 0.05, "covariate"]:
        assert covariate.replace("=", " ") not in null


def test_driver_findings_report_proportional_hazards_violations(drivers):
    """A failing Schoenfeld test shows up in words; a passing one says the ratios are constant."""
    assert "finds no sign" in findings.driver_findings(drivers)[-1]
    broken = dataclasses.replace(drivers, ph_test=drivers.ph_test.assign(p_value=1e-6))
    out = findings.driver_findings(broken)
    assert sum("changes over the life of a deal" in s for s in out) == len(drivers.ph_test)


def test_nothing_significant_in_the_model_is_said_plainly(drivers):
    """When no covariate survives the correction, the findings say so and name no effect."""
    flat = dataclasses.replace(drivers, table=drivers.table.assign(p_value=0.5))
    out = findings.driver_findings(flat)
    assert out[0] == "No covariate changes the rate of being won significantly (corrected p < 0.05)."
    assert not any("(hazard ratio" in s for s in out)


def test_cycle_findings_is_all_sections_in_order(cycles, comparison, drivers):
    """cycle_findings concatenates time to close, outcomes, segments and drivers."""
    out = findings.cycle_findings(cycles, comparison, drivers)
    parts = (findings.time_to_close_findings(cycles) + findings.outcome_findings(cycles)
             + findings.segment_findings(cycles, comparison) + findings.driver_findings(drivers))
    assert list(out) == parts
    assert isinstance(out, list) and all(isinstance(s, str) for s in out)


def test_findings_display_as_markdown_bullets(cycles):
    """In a notebook, findings render as a bulleted markdown list of the sentences."""
    out = findings.time_to_close_findings(cycles)
    assert out._repr_markdown_().splitlines() == [f"- {s}" for s in out]


def test_data_findings_count_outcomes_and_exclusions(dataset):
    """Counts by outcome and, when rows were excluded, how many and why."""
    c = dataset.counts()
    out = findings.data_findings(dataset)
    assert out[0] == (f"The data hold {c['deals']:,} deals as of {dataset.as_of.date()}: {c['won']:,} won, "
                      f"{c['lost']:,} lost and {c['open']:,} still open.")
    assert out[1] == "No rows were excluded while loading."
    report = ValidationReport([Problem("warning", "closed_before_created", "deals", "closed before created",
                                       excluded=3),
                               Problem("warning", "unknown_deal", "stage_history", "no such deal", excluded=1200)])
    out = findings.data_findings(dataclasses.replace(dataset, report=report))
    assert out[1] == ("1,203 rows were excluded while loading, each counted with its reason: "
                      "3 deals rows (closed_before_created), 1,200 stage_history rows (unknown_deal).")


@pytest.fixture(scope="module")
def dwell(dataset):
    dwell_module = pytest.importorskip("workbench.cycle.dwell")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dwell_module.stage_dwell(dataset)


def test_dwell_findings_name_longest_and_shortest_stage(dwell):
    """Longest and shortest median stay come from the overall rows; separated CIs allow 'longest'."""
    table = dwell.table.set_index("stage")
    long, short = table["median_days"].idxmax(), table["median_days"].idxmin()
    assert table.loc[long, "median_low"] > table.loc[short, "median_high"], "the sample's stages should differ"
    sentence = findings.dwell_findings(dwell)[0]
    assert sentence.startswith(f"Deals stay longest in {long} (median {table.loc[long, 'median_days']:.0f} days")
    assert f"shortest in {short} ({table.loc[short, 'median_days']:.0f} days" in sentence
    still = _one(findings.dwell_findings(dwell), f"{int(table['still_in_stage'].sum()):,} deals are still")
    assert "not dropped" in still


def test_dwell_findings_with_overlapping_intervals_claim_no_difference(dwell):
    """When the longest and shortest medians' CIs overlap, the sentence says the stages may not differ."""
    wide = dwell.table.assign(median_low=0.0, median_high=1000.0)
    sentence = findings.dwell_findings(dataclasses.replace(dwell, table=wide))[0]
    assert sentence.startswith("Median days in stage range from") and "may not really differ" in sentence
    assert "longest" not in sentence


def test_forecast_findings_state_expected_and_actual_wins(dataset):
    """Expected wins and interval come from totals(); the backtest sentence from expected and actual wins."""
    forecast = pytest.importorskip("workbench.cycle.forecast")
    fc = forecast.forecast_open(dataset, window=90)
    replay = forecast.backtest(dataset, dataset.as_of - pd.Timedelta(days=180), window=90)
    wins = fc.totals().set_index("quantity").loc["wins"]
    out = findings.forecast_findings(fc, replay)
    assert out[0].startswith(f"Of the {len(fc.deals):,} open deals, about {wins['expected']:,.0f} are expected to "
                             f"be won within the next 90 days (95% interval {wins['low']:,.0f}-{wins['high']:,.0f}")
    backtest_sentence = _one(out, f"Made at {replay.cut_at.date()}")
    assert f"expected {replay.expected_wins:,.0f} wins within 90 days; {replay.actual_wins:,} happened" in (
        backtest_sentence)
    cal = replay.calibration
    hits = int(((cal["observed_low"] <= cal["mean_predicted"]) & (cal["mean_predicted"] <= cal["observed_high"])).sum())
    _one(out, f"In {hits} of {len(cal)} bins")


@pytest.mark.parametrize("value, text", [(0.0, "0%"), (0.004, "<1%"), (0.385, "38%"), (0.996, ">99%"),
                                         (1.0, "100%")])
def test_percent_rounds_without_claiming_zero_or_all(value, text):
    """Shares round to whole percent, but a small non-zero share is '<1%', not '0%'."""
    assert findings.percent(value) == text


@pytest.mark.parametrize("value, text", [(0.0004, "p < 0.001"), (0.0123, "p = 0.012"), (0.5, "p = 0.5"),
                                         (float("nan"), "p not available")])
def test_p_values_are_rounded_to_two_digits(value, text):
    """p-values: two significant digits, floored at 'p < 0.001'."""
    assert findings.p_value(value) == text


@pytest.mark.parametrize("value, text", [(0.3, "0.30"), (2.36, "2.4"), (12.4, "12")])
def test_ratios_are_rounded_sensibly(value, text):
    """Multipliers: two decimals below 1, one below 10, none above."""
    assert findings.ratio(value) == text


def _journey_facts(rows):
    """JourneyFacts holding only a stages table: (persona, stage, next, entered, conversion, low, high, lost_here)."""
    from workbench.journey.facts import JourneyFacts

    stages = pd.DataFrame(rows, columns=["persona", "stage", "next", "entered", "conversion", "conversion_low",
                                         "conversion_high", "lost_here"])
    return JourneyFacts(stages=stages, items=pd.DataFrame(), sentiment=pd.DataFrame(),
                        personas=list(dict.fromkeys(stages["persona"])), stage_labels=["Lead", "Deal"],
                        as_of=pd.Timestamp("2025-06-30"))


def test_a_journey_in_one_line_reads_each_stage_and_where_lost_deals_stopped():
    from workbench.findings import journey_line

    facts = _journey_facts([("All deals", "Lead", "Deal", 200, 0.6, 0.53, 0.67, 60),
                            ("All deals", "Deal", "Won", 120, 0.25, 0.18, 0.33, 20)])
    assert journey_line(facts, "All deals", "All IT deals") == (
        "All IT deals: of the deals that reached each stage, the share that moved on: Lead 60%, Deal 25%; "
        "75% of the lost deals were last in Lead.")  # 60 of the 80 lost


def test_personas_are_said_to_differ_only_when_their_intervals_do_not_overlap():
    from workbench.findings import persona_findings

    rows = [("A", "Lead", "Deal", 100, 0.5, 0.4, 0.6, 10), ("A", "Deal", "Won", 50, 0.8, 0.7, 0.9, 5),
            ("B", "Lead", "Deal", 100, 0.5, 0.4, 0.6, 10), ("B", "Deal", "Won", 50, 0.3, 0.2, 0.4, 5)]
    found = persona_findings(_journey_facts(rows))
    assert found[0] == "A deals that reach Deal win most often (80%, 95% CI 70% to 90%); B deals least often (30%, 20% to 40%)."
    assert len(found) == 3 and found[1].startswith("A: ") and found[2].startswith("B: ")
    rows[3] = ("B", "Deal", "Won", 50, 0.65, 0.5, 0.75, 5)
    assert "may not really differ" in persona_findings(_journey_facts(rows))[0]


def test_the_unit_of_a_few_figures_is_chosen_as_for_an_array():
    """`unit_for` reads a list (a run's headlines) without numpy and an array with it, to the same unit: missing
    and infinite durations are left out either way, and the median decides at `HOURS_BELOW` days."""
    from workbench.timeunits import DAYS, HOURS, HOURS_BELOW, unit_for

    rng = np.random.default_rng(7)
    for _ in range(200):
        values = list(rng.choice([0.1, 1.0, 2.9, HOURS_BELOW, 3.1, 40.0, np.inf, np.nan], size=rng.integers(0, 6)))
        assert unit_for(values) == unit_for(np.asarray(values, dtype=float)), values
    assert unit_for([None, 0.5, float("inf")]) == HOURS and unit_for([]) == DAYS == unit_for([HOURS_BELOW])
