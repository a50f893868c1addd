"""Cycle times against the sample's known truth, and the naive estimates that miss it."""
import warnings

import numpy as np
import pandas as pd
import pytest

from workbench.cycle import OVERALL, compare_segments, cycle_times, durations, naive_estimates, speed_drivers
from workbench.exceptions import WorkbenchError
from workbench.sample import generate

DAYS = (90, 180, 365)


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = generate(n_deals=20_000, seed="cycle-tests", truth_deals=200_000)
        return data, data.dataset()


def _close(estimate, se, truth, truth_se=0.0, k=3.0):
    return abs(estimate - truth) <= k * np.hypot(se, truth_se) + 1e-3


def test_sample_is_heavily_censored(sample):
    """The correctness bar needs many open deals: at least a fifth are open at the cut-off."""
    _, ds = sample
    assert ds.counts()["open"] / ds.counts()["deals"] >= 0.2


@pytest.mark.parametrize("persona", [None, "Economic buyer", "Procurement", "Executive sponsor"])
def test_cumulative_incidence_of_winning_matches_truth_where_naive_misses(sample, persona):
    """CIF of winning at 90/180/365 days and the eventual win probability are within 3 SE of the truth;
    closed-only and lost-as-censored estimates are not."""
    data, ds = sample
    subset = ds.filter({"persona": persona}) if persona else ds
    truth = data.truth.segment(persona=persona) if persona else data.truth
    fit = cycle_times(subset).fits[OVERALL]
    for day in DAYS:
        est, se = fit.cif("won", day)[0], fit.cif_se("won", day)[0]
        assert _close(est, se, truth.cif_won(day)), (day, est, truth.cif_won(day))
    eventual, se = fit.cif("won", 365)[0], fit.cif_se("won", 365)[0]
    truth_se = np.sqrt(truth.win_probability * (1 - truth.win_probability) / truth.n)
    assert _close(eventual, se, truth.win_probability, truth_se)

    naive = naive_estimates(subset)
    assert not _close(naive["closed_only"]["win_probability"], se, truth.win_probability, truth_se)
    assert not _close(naive["lost_as_censored"]["win_probability"], se, truth.win_probability, truth_se)
    for day in DAYS:
        assert not _close(naive["lost_as_censored"]["cif_won"][day], fit.cif_se("won", day)[0],
                          truth.cif_won(day))


@pytest.mark.parametrize("persona", [None, "Technical evaluator", "End user champion"])
def test_median_days_to_close_matches_truth_where_closed_only_misses(sample, persona):
    """The Kaplan-Meier median's 95% CI (widened by a day for day-rounding) holds the true median;
    the median of closed deals only falls outside it."""
    data, ds = sample
    subset = ds.filter({"persona": persona}) if persona else ds
    truth = (data.truth.segment(persona=persona) if persona else data.truth).median_days_to_close
    median = cycle_times(subset).fits[OVERALL].median()
    assert median["lower"] - 1 <= truth <= median["upper"] + 1, (median, truth)
    naive = naive_estimates(subset)["closed_only"]["median_days_to_close"]
    assert not (median["lower"] - 1 <= naive <= median["upper"] + 1)


def test_per_segment_summary_agrees_with_separate_fits(sample):
    """`by=` gives each level the same numbers as fitting that level alone, and counts add up."""
    _, ds = sample
    result = cycle_times(ds, by="channel", horizon=180)
    table = result.summary().set_index("segment")
    for level in ("Referral", "Outbound"):
        alone = cycle_times(ds.filter({"channel": level}), horizon=180).summary().iloc[0]
        assert table.loc[level, "win_probability"] == pytest.approx(alone["win_probability"])
        assert table.loc[level, "median_days"] == alone["median_days"]
    levels = table.drop(index=OVERALL)
    assert levels["deals"].sum() == table.loc[OVERALL, "deals"]
    assert (table["win_probability_low"] <= table["win_probability"]).all()
    assert (table["win_probability"] <= table["win_probability_high"]).all()


def test_time_from_a_stage_counts_only_deals_that_entered_it(sample):
    """`from_stage` starts the clock at the first entry into the stage and leaves out deals that never entered."""
    _, ds = sample
    frame = durations(ds, from_stage="Proposal")
    entered = ds.stage_history.loc[ds.stage_history["stage"] == "Proposal", "deal_id"].unique()
    assert set(frame["deal_id"]) == set(entered)
    assert (frame["days"] >= 0).all()
    with pytest.raises(WorkbenchError, match="not one of the open stages"):
        durations(ds, from_stage="Won")


def test_segment_comparison_detects_real_differences(sample):
    """Personas differ in winning (true effects) and the log-rank tests say so, with corrected p-values."""
    _, ds = sample
    table = compare_segments(ds, "persona")
    overall = table[(table["comparison"] == "all")].set_index("outcome")
    assert overall.loc["won", "p_adjusted"] < 1e-6
    assert (table["p_adjusted"] >= table["p_value"]).all()
    assert len(table[table["outcome"] == "won"]) == 1 + 5 * 4 // 2


def test_speed_drivers_have_the_true_signs(sample):
    """The cause-specific Cox model for winning gives persona and channel effects the sign of the true odds effects
    where those are strong, and larger deals win more slowly."""
    data, ds = sample
    drivers = speed_drivers(ds, ["persona", "channel", "amount"]).table.set_index("covariate")
    assert drivers.loc["amount (per doubling)", "coef"] < 0
    assert drivers.loc["persona=Executive sponsor", "coef"] > 0
    assert drivers.loc["persona=Procurement", "coef"] < 0
    assert drivers.loc["channel=Outbound", "coef"] < 0
    assert (drivers["ci_low"] < drivers["hazard_ratio"]).all()


def test_missing_covariates_are_counted_not_dropped_silently(sample):
    """Deals without a covariate value are excluded from the Cox fit and the count is reported."""
    _, ds = sample
    deals = ds.deals.copy()
    deals.loc[deals.index[:25], "channel"] = None
    from dataclasses import replace

    result = speed_drivers(replace(ds, deals=deals), ["channel"])
    assert result.excluded == 25
    assert result.fit.n == len(deals) - 25


def test_quartiles_come_with_confidence_intervals(sample):
    """The summary gives each quartile and the median with a CI that brackets it, in order."""
    _, ds = sample
    row = cycle_times(ds).summary().iloc[0]
    for q in ("q25", "median", "q75"):
        assert row[f"{q}_low"] <= row[f"{q}_days"] <= row[f"{q}_high"]
    assert row["q25_days"] <= row["median_days"] <= row["q75_days"]
