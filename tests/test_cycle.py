"""Cycle times against the sample's known truth, and the naive estimates that miss it."""
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from workbench import from_frames
from workbench.cycle.times import OVERALL, TABLE_COLUMNS, compare_segments, cycle_times, durations, naive_estimates, speed_drivers
from workbench.exceptions import SeparationWarning
from workbench.exceptions import SmallSampleWarning, WorkbenchError
from workbench.dataset.sample import generate

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


def test_winning_is_compared_with_grays_test_not_a_cause_specific_log_rank():
    """Two channels win at the same rate among open deals, but Outbound deals are lost five times as fast, so fewer
    of them are ever won: Gray's test of the share won finds it where a cause-specific log-rank test cannot; the
    rows are gray_test's numbers."""
    from lifelines.statistics import logrank_test

    from workbench.stats.gray import gray_test

    rng = np.random.default_rng(int.from_bytes(b"gray-vs-logrank", "little") % 2**32)
    n = 800
    channel = np.repeat(["Inbound", "Outbound"], n // 2)
    t_win = rng.exponential(100, n)
    t_loss = rng.exponential(np.where(channel == "Outbound", 20, 100))
    age = rng.uniform(0, 400, n)
    end = np.minimum(np.minimum(t_win, t_loss), age)
    outcome = np.where(end == age, "open", np.where(t_win < t_loss, "won", "lost"))
    as_of = pd.Timestamp("2025-06-30")
    created = as_of - pd.to_timedelta(np.round(age, 2), unit="D")
    closed = created + pd.to_timedelta(np.round(end, 2), unit="D")
    deals = pd.DataFrame({"deal_id": [f"D{i}" for i in range(n)], "created_at": created,
                          "closed_at": closed.where(outcome != "open"), "outcome": outcome, "channel": channel})
    ds = from_frames(deals, as_of=as_of, name="gray")
    table = compare_segments(ds, "channel")
    won = table[(table["outcome"] == "won") & (table["comparison"] == "all")].iloc[0]
    assert won["test"] == "Gray" and won["p_value"] < 1e-3
    frame = durations(ds)
    direct = gray_test(frame["days"], frame["event"], frame["channel"], censored="open")["won"]
    assert won["statistic"] == pytest.approx(direct.statistic, rel=1e-12)
    cause_specific = logrank_test(*(frame.loc[frame["channel"] == c, "days"] for c in ("Inbound", "Outbound")),
                                  *(frame.loc[frame["channel"] == c, "event"] == "won" for c in ("Inbound", "Outbound")))
    assert cause_specific.p_value > 0.05
    assert list(table["outcome"].unique()) == ["close", "won", "lost"]
    assert set(table.loc[table["outcome"] == "close", "test"]) == {"log-rank"}


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


# --------------------------------------------------------------- Cox on data that break it


@pytest.fixture(scope="module")
def small():
    """A 3,000-deal sample: the size of one segment of a real log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=3_000, seed="cycle-separation").dataset()


def _with(ds, **changes):
    """The dataset with its deals changed: ``column=(mask function, value)``."""
    deals = ds.deals.copy()
    for column, (where, value) in changes.items():
        deals.loc[where(deals), column] = value
    return replace(ds, deals=deals)


def _finite_and_positive(table):
    ratios = table[["hazard_ratio", "ci_low", "ci_high"]].to_numpy(float)
    rest = table[["coef", "se", "z", "p_value"]].to_numpy(float)
    return bool(np.isfinite(ratios).all() and (ratios > 0).all() and np.isfinite(rest).all())


def test_a_level_without_wins_gets_finite_firth_ratios_a_note_and_a_warning(small):
    """The observed failure: no Partner deal won. `speed_drivers` refits with Firth, warns (at the caller's line),
    names the level in a note, and every ratio and bound is finite and positive; Partner's is well below 1."""
    ds = _with(small, outcome=(lambda d: (d["channel"] == "Partner") & (d["outcome"] == "won"), "lost"))
    with pytest.warns(SeparationWarning, match="channel = Partner") as caught:
        result = speed_drivers(ds, ["persona", "channel", "amount", "region"])
    assert caught[0].filename == __file__
    assert result.method == "firth" and result.fit.method == "firth"
    assert _finite_and_positive(result.table)
    partner = result.table.set_index("covariate").loc["channel=Partner"]
    assert partner["ci_high"] < 0.1 and partner["ci_low"] > 0
    assert any("No deal with channel = Partner was won" in note and "Firth" in note for note in result.notes)
    assert any("profile penalized likelihood" in note for note in result.notes)
    assert list(result.table.columns) == TABLE_COLUMNS
    assert len(result.ph_test) == len(result.table)


def test_a_reference_level_without_wins_also_refits(small):
    """When the most common level never wins, every other level's ratio would be infinite: Firth again, named."""
    reference = small.deals["channel"].value_counts().index[0]
    ds = _with(small, outcome=(lambda d: (d["channel"] == reference) & (d["outcome"] == "won"), "lost"))
    with pytest.warns(SeparationWarning, match="reference level"):
        result = speed_drivers(ds, ["channel", "amount"])
    assert result.reference_levels["channel"] == reference
    assert _finite_and_positive(result.table)
    assert (result.table.set_index("covariate").filter(like="channel=", axis=0)["hazard_ratio"] > 10).all()


def test_well_behaved_data_keep_the_plain_fit(small):
    """Without separation the model is the maximum-likelihood Cox fit, with no warning and no notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = speed_drivers(small, ["persona", "channel", "amount"])
    assert result.method == "cox" and result.notes == [] and result.fit.profile is None


def test_rare_levels_are_folded_into_other_and_named(small):
    """Levels under `min_level` deals become one `other (<30 deals)` level, and the note lists them."""
    ids = small.deals["deal_id"]
    ds = _with(small, channel=(lambda d: d["deal_id"].isin(ids.iloc[:12]), "Webinar"))
    ds = _with(ds, channel=(lambda d: d["deal_id"].isin(ids.iloc[12:20]), "Podcast"))
    result = speed_drivers(ds, ["channel", "amount"])
    assert "channel=other (<30 deals)" in set(result.table["covariate"])
    assert not {"channel=Webinar", "channel=Podcast"} & set(result.table["covariate"])
    assert any("folded into `other (<30 deals)`: Podcast, Webinar" in note for note in result.notes)
    assert result.fit.n == len(ds.deals)
    unfolded = speed_drivers(ds, ["channel"], min_level=5).table["covariate"]
    assert {"channel=Webinar", "channel=Podcast"} <= set(unfolded)


def test_covariates_without_variation_and_redundant_columns_are_left_out_with_a_note(small):
    """A single-level column, a constant number, and a copy of another covariate are dropped and named, not fatal."""
    deals = small.deals.assign(market="Europe", score=3.0, channel_copy=small.deals["channel"])
    result = speed_drivers(replace(small, deals=deals), ["channel", "market", "score", "channel_copy", "amount"])
    assert any("`market` has a single level" in note for note in result.notes)
    assert any("`score` has the same value on every deal" in note for note in result.notes)
    copies = [c for c in result.fit.names if c.startswith("channel_copy=")]
    assert copies == []
    assert any("`channel_copy` carries no information of its own" in note for note in result.notes)
    assert "market" not in result.reference_levels and "channel_copy" not in result.reference_levels
    assert result.method == "cox" and _finite_and_positive(result.table)


def test_no_wins_at_all_gives_an_empty_table_and_a_warning(small):
    """Nothing to model: an empty table with the usual columns, a note and a SmallSampleWarning, no exception."""
    ds = _with(small, outcome=(lambda d: d["outcome"] == "won", "lost"))
    with pytest.warns(SmallSampleWarning, match="No deal was won"):
        result = speed_drivers(ds, ["channel", "amount"])
    assert result.table.empty and list(result.table.columns) == TABLE_COLUMNS
    assert result.fit is None and result.violations() == []


def test_a_small_segment_with_a_zero_win_level_from_frames():
    """A 150-deal segment built with `from_frames`: one channel (40 deals) never won; Firth keeps its interval
    finite (not [0, inf]) where the plain fit would run off."""
    rng = np.random.default_rng(int.from_bytes(b"zero-win-segment", "little") % 2**32)
    n = 150
    channel = np.repeat(["Inbound", "Outbound", "Partner"], [70, 40, 40])
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    days = rng.integers(5, 120, n)
    outcome = np.where(rng.random(n) < 0.5, "won", "lost")
    outcome[channel == "Partner"] = "lost"
    deals = pd.DataFrame({"deal_id": [f"D{i}" for i in range(n)], "created_at": created,
                          "closed_at": created + pd.to_timedelta(days, unit="D"), "outcome": outcome,
                          "channel": channel, "amount": np.round(rng.lognormal(10, 0.7, n), -2)})
    ds = from_frames(deals, as_of="2025-06-30", name="segment")
    with pytest.warns(SeparationWarning):
        result = speed_drivers(ds, ["channel", "amount"])
    assert _finite_and_positive(result.table)
    row = result.table.set_index("covariate").loc["channel=Partner"]
    assert 0 < row["hazard_ratio"] < row["ci_high"] < 1


def test_a_level_whose_deals_all_closed_before_the_first_win_is_left_out_with_a_note(small):
    """40 Webinar deals all lost on the day they were created, before any win: nothing to estimate their
    ratio from (not even with Firth), so the level is left out with a note instead of crashing the fit."""
    first_win = durations(small).query("event == 'won'")["days"].min()
    assert first_win > 0
    ids = small.deals["deal_id"].iloc[:40]
    deals = small.deals.copy()
    chosen = deals["deal_id"].isin(ids)
    deals.loc[chosen, ["channel", "outcome"]] = ["Webinar", "lost"]
    deals.loc[chosen, "closed_at"] = deals.loc[chosen, "created_at"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = speed_drivers(replace(small, deals=deals), ["channel", "amount"])
    assert "channel=Webinar" not in set(result.table["covariate"])
    assert any("`channel` = Webinar: no information of its own" in note for note in result.notes)
    assert result.method == "cox" and _finite_and_positive(result.table)
