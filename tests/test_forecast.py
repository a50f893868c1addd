"""Open-pipeline forecast: a hand computation, and a backtest on the sample data."""
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from workbench.cycle.dwell import DAY_NS, visit_arrays
from workbench.exceptions import WorkbenchError
from workbench.cycle.forecast import backtest, calibration_table, forecast_open
from workbench.dataset.loader import from_frames
from workbench.dataset.sample import generate
from workbench.stats.survival import competing_risks

AS_OF = pd.Timestamp("2024-07-01")
START = pd.Timestamp("2024-01-01")  # 182 days before AS_OF


@pytest.fixture(scope="module")
def tiny():
    """Five closed deals (days to close: 10 won, 20 lost, 30 won, 50 won, 70 lost) created on
    2024-01-01 and two open ones aged 15 and 40 days at as_of; every deal sits in one stage P
    from its creation until it closes."""
    closed = [("a", 10, "won"), ("b", 20, "lost"), ("c", 30, "won"), ("e", 50, "won"), ("f", 70, "lost")]
    rows = [{"deal_id": d, "created_at": START, "closed_at": START + pd.Timedelta(days=t), "outcome": o,
             "amount": 100.0} for d, t, o in closed]
    rows += [{"deal_id": d, "created_at": AS_OF - pd.Timedelta(days=age), "closed_at": pd.NaT, "outcome": "open",
              "amount": amount} for d, age, amount in (("o1", 15, 1000.0), ("o2", 40, 3000.0))]
    deals = pd.DataFrame(rows)
    history = pd.concat([
        deals[["deal_id", "created_at"]].rename(columns={"created_at": "entered_at"}).assign(stage="P"),
        deals.loc[deals["outcome"] != "open", ["deal_id", "closed_at", "outcome"]]
        .rename(columns={"closed_at": "entered_at"})
        .assign(stage=lambda f: f["outcome"].map({"won": "W", "lost": "L"}))[["deal_id", "entered_at", "stage"]],
    ])
    return from_frames(deals, history, stages=("P",), won_stages=("W",), lost_stages=("L",), as_of=AS_OF,
                       name="tiny")


def test_age_clock_is_the_conditional_cumulative_incidence(tiny):
    """By hand (times 10W 15c 20L 30W 40c 50W 70L): S(15) = 6/7, F_won(15) = 1/7, F_won(45) = 11/35,
    S(40) = 18/35, F_won(70) = 20/35; so with a 30-day window p(15) = (6/35)/(30/35) = 0.2 and
    p(40) = (9/35)/(18/35) = 0.5."""
    result = forecast_open(tiny, window=30, by_stage=False).deals.set_index("deal_id")
    assert_allclose(result.loc[["o1", "o2"], "p_win"], [0.2, 0.5], atol=1e-12)
    assert_allclose(result.loc[["o1", "o2"], "age_days"], [15, 40])
    assert (result["basis"] == "age").all()


def test_totals_sum_independent_bernoullis(tiny):
    """Expected wins 0.2 + 0.5, variance 0.2*0.8 + 0.5*0.5; amount 1000*0.2 + 3000*0.5 with
    variance 1000^2*0.16 + 3000^2*0.25."""
    totals = forecast_open(tiny, window=30, by_stage=False).totals().set_index("quantity")
    assert_allclose(totals.loc["wins", ["expected", "sd"]], [0.7, np.sqrt(0.41)])
    assert_allclose(totals.loc["amount", ["expected", "sd"]], [1700.0, np.sqrt(2_410_000.0)])
    assert totals.loc["wins", "low"] == 0.0  # clipped
    assert_allclose(totals.loc["wins", "high"], 0.7 + 1.959963984540054 * np.sqrt(0.41))


def test_stage_clock_by_hand(tiny):
    """Stage clock, 30-day window. Follow-up (as_of - entry) is 182 days for the closed deals, 15 and
    40 for the open ones, so G(c) = P(follow-up >= c): G(15) = 1, G(30) = 6/7, G(40) = 6/7,
    G(50) = 5/7. o1 (15 days in P): 6 visits still in P at day 15 (b, c, e, f, o1, o2); c wins
    at 30, weight G(15)/G(30) = 7/6; p = (7/6)/6 = 7/36. o2 (40 days): 3 visits (e, f, o2); e wins
    at 50, weight G(40)/G(50) = 6/5; p = (6/5)/3 = 0.4."""
    result = forecast_open(tiny, window=30, min_deals=1).deals.set_index("deal_id")
    assert_allclose(result.loc[["o1", "o2"], "p_win"], [7 / 36, 0.4], atol=1e-12)
    assert list(result.loc[["o1", "o2"], "comparable"]) == [6, 3]
    assert (result["basis"] == "stage").all() and (result["stage"] == "P").all()
    # With the default min_deals (50) the stage is too small: both fall back to the age clock.
    fallback = forecast_open(tiny, window=30)
    assert (fallback.deals["basis"] == "age").all()
    assert any("fewer than 50 visits" in note for note in fallback.notes)


def test_calibration_table_counts_and_wilson_intervals():
    """Quantile bins hold (nearly) equal counts that add up; the interval is statsmodels' Wilson."""
    from statsmodels.stats.proportion import proportion_confint

    p = np.linspace(0.01, 0.99, 103)
    y = (np.arange(103) % 3 == 0).astype(int)
    table = calibration_table(p, y, bins=10)
    assert table["n"].sum() == 103 and set(table["n"]) == {10, 11}
    low, high = proportion_confint(table["actual_wins"], table["n"], alpha=0.05, method="wilson")
    assert_allclose(table["observed_low"], low)
    assert_allclose(table["observed_high"], high)
    uniform = calibration_table(np.r_[0.05, 0.05, 0.95], [0, 1, 1], bins=10, strategy="uniform")
    assert list(uniform["bin"]) == [1, 10] and list(uniform["n"]) == [2, 1]


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = generate(n_deals=20_000, seed="forecast-tests", truth_deals=20_000)
        return data.dataset()


CUT = "2024-12-31"


@pytest.fixture(scope="module")
def replay(sample):
    return backtest(sample, CUT, window=90)


def test_backtest_expected_wins_within_four_sd(replay):
    """Wins expected at the cut are within 4 Bernoulli SDs of the wins that happened in the next 90 days
    (measured: 831 expected, 816 won, sd 20)."""
    assert abs(replay.expected_wins - replay.actual_wins) <= 4 * replay.wins_sd
    assert replay.actual_wins == int(replay.deals["won"].sum())


def test_backtest_beats_the_naive_baseline(replay):
    """The naive baseline (the closed deals' win rate for every open deal) ignores the window and the
    deal's age and stage: it has the worse Brier score (0.21 vs 0.14) and the bigger miss in wins."""
    assert replay.brier < replay.naive_brier - 0.03
    assert abs(replay.expected_wins - replay.actual_wins) < abs(replay.naive_expected_wins - replay.actual_wins)
    summary = replay.summary().set_index("model")
    assert_allclose(summary.loc["naive", "brier"], replay.naive_brier)


def test_stage_clock_beats_the_age_clock(sample, replay):
    """Knowing the stage sharpens the forecast: Brier 0.14 against 0.18 with age alone; the age clock
    is calibrated in total too (within 4 SD)."""
    by_age = backtest(sample, CUT, window=90, by_stage=False)
    assert replay.brier < by_age.brier - 0.02
    assert abs(by_age.expected_wins - by_age.actual_wins) <= 4 * by_age.wins_sd
    assert (replay.deals["basis"] == "stage").mean() > 0.95


def test_calibration_rows_cover_the_open_deals_and_rise(sample, replay):
    """Calibration bins add up to the deals open at the cut, and observed rates rise with the predictions."""
    open_at_cut = int((sample.cut(CUT).deals["outcome"] == "open").sum())
    assert replay.calibration["n"].sum() == open_at_cut == len(replay.deals)
    assert replay.spearman > 0.8
    assert_allclose(replay.calibration["expected_wins"].sum(), replay.expected_wins)
    assert replay.calibration["actual_wins"].sum() == replay.actual_wins


def test_stage_clock_agrees_with_landmark_aalen_johansen(sample):
    """The weighted landmark share agrees, within one standard error, with an Aalen-Johansen fit on the
    visits still in the stage at day u, run from u (the estimator it stands in for, one fit per u)."""
    forecast = forecast_open(sample, window=90)
    v = visit_arrays(sample)
    deals = sample.deals
    closed_at = deals["closed_at"].to_numpy("datetime64[ns]")
    closed = ~np.isnat(closed_at)[v.deal]
    to_close = (np.where(closed, closed_at.view("i8")[v.deal], sample.as_of.value) - v.start) / DAY_NS
    event = np.where(closed, deals["outcome"].to_numpy()[v.deal], "open").astype(object)
    for s, stage in enumerate(sample.stages):
        for u in (0, 20, 40):
            still = (v.stage == s) & np.where(v.left, v.days > u, v.days >= u)
            fit = competing_risks(to_close[still] - u, event[still], ("won", "lost"), censored="open")
            clock = forecast.stage_clocks[stage]
            assert clock.at_risk(u) == still.sum()
            # Two estimators on the same data: they differ by well under one standard error of
            # the Aalen-Johansen estimate (measured: at most 0.74 SE, 0.015 in Negotiation at u=40).
            assert abs(clock.p_win(u) - fit.cif("won", 90)[0]) < fit.cif_se("won", 90)[0], (stage, u)


def test_deals_stuck_in_a_stage_lose_their_chances(sample):
    """Conditioning on the days in stage matters: late-stage deals stuck 40 days are less likely to win
    within 90 days than fresh ones."""
    curves = forecast_open(sample, window=90).stage_curves(days=[0, 40]).set_index(["stage", "days_in_stage"])
    for stage in ("Proposal", "Negotiation"):
        assert curves.loc[(stage, 40), "p_win"] < curves.loc[(stage, 0), "p_win"] - 0.05


def test_forecast_table_and_totals_agree(sample):
    """Every open deal gets one row with 0 <= p <= 1; totals and the per-stage summary add the same p's."""
    forecast = forecast_open(sample, window=60)
    deals = forecast.deals
    assert len(deals) == sample.counts()["open"]
    assert deals["p_win"].between(0, 1).all()
    totals = forecast.totals().set_index("quantity")
    assert_allclose(totals.loc["wins", "expected"], deals["p_win"].sum())
    assert_allclose(forecast.summary()["expected_wins"].sum(), deals["p_win"].sum())
    assert_allclose(totals.loc["amount", "expected"], deals["expected_amount"].sum())
    assert "<table" in forecast._repr_html_()


def test_backtest_refuses_a_window_past_as_of(sample):
    """A cut whose window runs past as_of cannot be scored: a WorkbenchError says the latest usable cut."""
    with pytest.raises(WorkbenchError, match=r"cut at 2025-04-01 or earlier"):
        backtest(sample, "2025-05-01", window=90)
    with pytest.raises(WorkbenchError, match="positive number of days"):
        forecast_open(sample, window=0)
