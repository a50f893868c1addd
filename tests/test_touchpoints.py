"""Touchpoints by stage, channel and kind on a hand-built history, and on the sample."""
from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from workbench.exceptions import DataQualityWarning, WorkbenchError
from workbench.dataset.loader import from_frames
from workbench.dataset.sample import generate
from workbench.profile.touchpoints import ALL, BEFORE, assign_stages, deal_touches, stage_advances, touchpoint_summary

matplotlib.use("Agg")  # the plot tests draw off screen

D = pd.Timestamp


@pytest.fixture(scope="module")
def hand():
    """Three deals, stages S1 -> S2, won Won, lost Lost, as of 2024-03-01.

    d1 (won, created 01-01, closed 02-01): S1 01-01, S2 01-10, back to S1 01-15, S2 01-20,
    Won 02-01. Advances: S2 01-10, S2 01-20, Won 02-01 (the return to S1 is not one).
    Touches and the stage each belongs to:
      12-30 Web/web visit -> (before first stage)   01-01 Email/email -> S1 (entry day)
      01-09 Sales/call -> S1 (1 day before 01-10)    01-10 Email/email -> S2
      01-16 Web/web visit -> S1                      01-18 Sales/meeting -> S1 (2 days before 01-20)
      01-25 Email/email -> S2
    d2 (lost, created 01-05, closed 01-20): S1 01-05, Lost 01-20; touch 01-06 Web/web visit -> S1,
    and 01-25 Web (after the close: left out).
    d3 (open): S1 01-10; touch 01-12 Email/email -> S1.
    One account-level touch has no deal (left out). The touches are given out of order.
    """
    deals = pd.DataFrame({
        "deal_id": ["d1", "d2", "d3"],
        "created_at": [D("2024-01-01"), D("2024-01-05"), D("2024-01-10")],
        "closed_at": [D("2024-02-01"), D("2024-01-20"), pd.NaT],
        "outcome": ["won", "lost", "open"],
    })
    rows = [("d1", "S1", "2024-01-01"), ("d1", "S2", "2024-01-10"), ("d1", "S1", "2024-01-15"),
            ("d1", "S2", "2024-01-20"), ("d1", "Won", "2024-02-01"),
            ("d2", "S1", "2024-01-05"), ("d2", "Lost", "2024-01-20"), ("d3", "S1", "2024-01-10")]
    history = pd.DataFrame(rows, columns=["deal_id", "stage", "entered_at"]).assign(
        entered_at=lambda f: pd.to_datetime(f["entered_at"]))
    touches = pd.DataFrame([
        ("d1", "2024-01-25", "Email", "email"), ("d1", "2024-01-09", "Sales", "call"),
        ("d2", "2024-01-06", "Web", "web visit"), ("d1", "2023-12-30", "Web", "web visit"),
        ("d1", "2024-01-10", "Email", "email"), ("d3", "2024-01-12", "Email", "email"),
        ("d1", "2024-01-16", "Web", "web visit"), ("d1", "2024-01-01", "Email", "email"),
        ("d1", "2024-01-18", "Sales", "meeting"), ("d2", "2024-01-25", "Web", "web visit"),
        (None, "2024-01-07", "Events", "webinar"),
    ], columns=["deal_id", "occurred_at", "channel", "kind"]).assign(
        occurred_at=lambda f: pd.to_datetime(f["occurred_at"]), account_id="a1")
    return from_frames(deals, history, stages=("S1", "S2"), won_stages=("Won",), lost_stages=("Lost",),
                       as_of="2024-03-01", touchpoints=touches, name="hand")


def test_each_touch_gets_the_stage_its_deal_was_in(hand):
    """Touches map to the latest stage entry on or before them, by deal, whatever the input order."""
    t, _ = deal_touches(hand)
    got = {(r.deal_id, r.occurred_at.strftime("%m-%d")): r.stage for r in t.itertuples()}
    assert got == {
        ("d1", "12-30"): BEFORE, ("d1", "01-01"): "S1", ("d1", "01-09"): "S1", ("d1", "01-10"): "S2",
        ("d1", "01-16"): "S1", ("d1", "01-18"): "S1", ("d1", "01-25"): "S2",
        ("d2", "01-06"): "S1", ("d3", "01-12"): "S1",
    }


def test_assign_stages_keeps_the_callers_index(hand):
    """`assign_stages` returns a series aligned with the touches it was given, not re-sorted."""
    touches = pd.DataFrame({"deal_id": ["d1", "d2", "d1"],
                            "occurred_at": [D("2024-01-25"), D("2024-01-06"), D("2024-01-02")]},
                           index=[10, 20, 30])
    stage = assign_stages(touches, hand.stage_history)
    assert stage.to_dict() == {10: "S2", 20: "S1", 30: "S1"}


def test_touches_without_deal_or_after_close_are_counted(hand):
    """Account-level touches and touches after the close are left out and counted, open deals too."""
    r = touchpoint_summary(hand)
    assert r.counts == {"without_deal": 1, "after_close": 1, "open_deals": 1, "open_touches": 1, "touches": 9}


def test_per_stage_table_by_hand(hand):
    """Touches, means per deal and shares of deals touched match the hand count."""
    r = touchpoint_summary(hand)
    row = r.table.set_index(["outcome", "stage", "dimension", "level"])
    assert row.loc[("won", ALL, ALL, ALL), "touches"] == 7
    assert row.loc[("won", ALL, "channel", "Email"), "touches"] == 3
    assert row.loc[("won", "S1", "channel", "Sales"), "touches"] == 2
    assert row.loc[("won", "S1", "kind", "call"), "deals_touched"] == 1
    assert row.loc[("won", BEFORE, ALL, ALL), "touches"] == 1
    assert row.loc[("won", "S2", "channel", "Web"), "touches"] == 0  # the grid keeps zeros
    assert row.loc[("lost", "S1", "channel", "Web"), "mean_per_deal"] == 1.0
    # No lost deal entered S2: no denominator, no mean.
    assert row.loc[("lost", "S2", ALL, ALL), "deals"] == 0
    assert np.isnan(row.loc[("lost", "S2", ALL, ALL), "mean_per_deal"])
    assert row.loc[("lost", ALL, "channel", "Email"), "share_touched"] == 0.0
    ci = row.loc[("won", ALL, "channel", "Sales"), ["ci_low", "ci_high"]].to_numpy(float)
    assert ci[0] < 1.0 and ci[1] == pytest.approx(1.0)


def test_timing_of_first_touch_by_hand(hand):
    """d1: first touch 2 days before creation, 33 before the close; d2: 1 day after creation, 14 before."""
    timing = touchpoint_summary(hand).timing.set_index("outcome")
    assert_allclose(timing.loc["won", ["median_days_first_touch_to_created", "median_days_first_touch_to_close"]]
                    .to_numpy(float), [2, 33], atol=1e-12)
    assert_allclose(timing.loc["lost", ["median_days_first_touch_to_created", "median_days_first_touch_to_close"]]
                    .to_numpy(float), [-1, 14], atol=1e-12)
    assert timing.loc["won", "share_touched_before_created"] == 1.0
    assert timing.loc[ALL, "deals"] == 2


def test_stage_advances_skip_regressions(hand):
    """Advances are entries into a later stage than the previous one; the return to S1 and losses are not."""
    adv = stage_advances(hand)
    assert list(zip(adv["deal_id"], adv["stage"], adv["entered_at"].dt.strftime("%m-%d"))) == [
        ("d1", "S2", "01-10"), ("d1", "S2", "01-20"), ("d1", "Won", "02-01")]


def test_lift_before_advance_by_hand(hand):
    """With a 3-day window only the two Sales touches precede an advance: share 1 against 2/9 overall, lift 4.5."""
    adv = touchpoint_summary(hand, window_days=3).advance.set_index(["dimension", "level"])
    assert adv.loc[("channel", "Sales"), "window_touches"] == 2
    assert adv.loc[("channel", "Sales"), "overall_share"] == pytest.approx(2 / 9)
    assert adv.loc[("channel", "Sales"), "lift"] == pytest.approx(4.5)
    assert adv.loc[("channel", "Email"), "lift"] == 0.0
    assert adv.loc[("kind", "email"), "overall_touches"] == 4
    r = touchpoint_summary(hand, window_days=3)
    assert r.top_before_advance("channel")["level"] == "Sales"


def test_touch_on_the_day_of_an_advance_is_not_before_it(hand):
    """The 01-10 Email touch falls on the advance day: it belongs to S2, not the window before it."""
    adv = touchpoint_summary(hand, window_days=9).advance.set_index(["dimension", "level"])
    # 9-day window: 01-01 (9 days before 01-10), 01-09, 01-16, 01-18 and 01-25 (7 before Won) are in;
    # 12-30 (11 days) is out, and so is 01-10, whose next advance is 01-20 (10 days).
    assert adv.loc[("channel", "Email"), "window_touches"] == 2
    assert adv["window_total"].iloc[0] == 5


def test_no_touchpoints_table_is_an_error():
    """A dataset without touchpoints raises a `WorkbenchError` that says how to fix it."""
    deals = pd.DataFrame({"deal_id": ["d1"], "created_at": [D("2024-01-01")], "closed_at": [pd.NaT],
                          "outcome": ["open"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        ds = from_frames(deals, None, stages=("S1",), won_stages=("Won",), lost_stages=("Lost",),
                         as_of="2024-03-01")
    with pytest.raises(WorkbenchError, match="touchpoints"):
        touchpoint_summary(ds)


def test_sample_end_to_end():
    """On the sample, won deals get more touches per deal than lost ones and every table is consistent."""
    ds = generate(n_deals=1_500, seed="touchpoints", truth_deals=1_000).dataset()
    r = touchpoint_summary(ds)
    overall = r.table[(r.table["stage"] == ALL) & (r.table["dimension"] == ALL)].set_index("outcome")
    assert overall.loc["won", "mean_per_deal"] > overall.loc["lost", "mean_per_deal"]
    closed = ds.deals["outcome"].isin(["won", "lost"]).sum()
    assert overall["deals"].sum() == closed
    per_channel = r.table[(r.table["stage"] == ALL) & (r.table["dimension"] == "channel")]
    assert per_channel["touches"].sum() == overall["touches"].sum()
    for dim in ("channel", "kind"):
        part = r.advance[r.advance["dimension"] == dim]
        assert_allclose(part["window_share"].sum(), 1.0, rtol=1e-12)
        assert_allclose(part["overall_share"].sum(), 1.0, rtol=1e-12)
    assert r.counts["open_deals"] == (ds.deals["outcome"] == "open").sum()
    assert "<table" in r._repr_html_()


def test_plot_returns_the_axes(hand):
    """`plot` draws won against lost touches per deal by channel on the given axes and returns them."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        assert touchpoint_summary(hand).plot(ax=ax) is ax
        assert ax.get_xlabel() == "Touches per deal"
        assert len(ax.patches) == 2 * 3  # won and lost bars for Email, Sales, Web
    finally:
        plt.close(fig)


def test_mean_ci_counts_untouched_deals_as_zero():
    """The CI of touches per deal is mean +- z * sd / sqrt(n) over every deal of the cell, zeros included."""
    from scipy.stats import norm

    ds = generate(n_deals=600, seed="touch-ci", truth_deals=500).dataset()
    r = touchpoint_summary(ds, alpha=0.1)
    row = r.table.set_index(["outcome", "stage", "dimension", "level"]).loc[("won", ALL, "channel", "Email")]
    t, _ = deal_touches(ds)
    won = ds.deals.loc[ds.deals["outcome"] == "won", "deal_id"]
    counts = t[t["channel"] == "Email"].groupby("deal_id").size().reindex(won, fill_value=0)
    half = norm.ppf(0.95) * counts.std(ddof=1) / np.sqrt(len(counts))
    assert_allclose([row["mean_per_deal"], row["mean_ci_low"], row["mean_ci_high"]],
                    [counts.mean(), counts.mean() - half, counts.mean() + half], rtol=1e-10)
