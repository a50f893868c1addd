"""Attribution models on journeys worked by hand, and on the sample."""
from __future__ import annotations

import warnings

import matplotlib
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from workbench.attribution import CONVERSION, MODELS, NULL, START, absorption, attribution, journeys
from workbench.exceptions import SmallSampleWarning, WorkbenchError
from workbench.loader import from_frames
from workbench.sample import generate

matplotlib.use("Agg")  # the plot tests draw off screen

D = pd.Timestamp
TOL = 1e-12  # the hand numbers are exact fractions


def _dataset(paths: dict, outcomes: dict, extra_touches=()):
    """Deals created 2024-01-01 and closed 2024-01-29 (open: not closed) with the given journeys.

    ``paths`` maps a deal to ``[(channel, days before 01-29), ...]`` in time order.
    """
    close = D("2024-01-29")
    deals = pd.DataFrame({"deal_id": list(outcomes), "created_at": D("2024-01-01"),
                          "closed_at": [pd.NaT if o == "open" else close for o in outcomes.values()],
                          "outcome": list(outcomes.values())})
    history = pd.DataFrame({"deal_id": list(outcomes), "stage": "S1", "entered_at": D("2024-01-01")})
    rows = [(deal, close - pd.Timedelta(days=age), ch, "touch") for deal, path in paths.items() for ch, age in path]
    touches = pd.DataFrame(rows + list(extra_touches), columns=["deal_id", "occurred_at", "channel", "kind"])
    return from_frames(deals, history, stages=("S1",), won_stages=("Won",), lost_stages=("Lost",),
                       as_of="2024-03-01", touchpoints=touches, name="hand")


@pytest.fixture(scope="module")
def three_won():
    """Won w1 [A, B, C] (14, 7 and 0 days before the close), w2 [A, A] (19, 9), w3 [C] (9); lost l1 [B] (24)."""
    return _dataset({"w1": [("A", 14), ("B", 7), ("C", 0)], "w2": [("A", 19), ("A", 9)], "w3": [("C", 9)],
                     "l1": [("B", 24)]},
                    {"w1": "won", "w2": "won", "w3": "won", "l1": "lost"})


def _credits(result, model):
    return result.wide().reindex(["A", "B", "C"])[model].to_numpy()


def test_first_touch_by_hand(three_won):
    """First touch: w1 -> A, w2 -> A, w3 -> C: A 2, B 0, C 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        assert_allclose(_credits(attribution(three_won), "first_touch"), [2, 0, 1], atol=TOL)


def test_last_touch_by_hand(three_won):
    """Last touch: w1 -> C, w2 -> A, w3 -> C: A 1, B 0, C 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        assert_allclose(_credits(attribution(three_won), "last_touch"), [1, 0, 2], atol=TOL)


def test_linear_by_hand(three_won):
    """Linear: w1 gives 1/3 to each of A, B, C; w2 1/2 + 1/2 to A; w3 1 to C: A 4/3, B 1/3, C 4/3."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        assert_allclose(_credits(attribution(three_won), "linear"), [4 / 3, 1 / 3, 4 / 3], atol=TOL)


def test_time_decay_by_hand(three_won):
    """Time decay, half-life 7 days back from the close.

    w1: ages 14, 7, 0 -> weights 1/4, 1/2, 1 (sum 7/4) -> A 1/7, B 2/7, C 4/7; w2: both A -> A 1;
    w3 -> C 1. Totals A 8/7, B 2/7, C 11/7. With a 14-day half-life w1's weights are
    1/2, 1/sqrt(2), 1.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        assert_allclose(_credits(attribution(three_won), "time_decay"), [8 / 7, 2 / 7, 11 / 7], atol=TOL)
        w = [0.5, 2 ** -0.5, 1.0]
        w1 = [x / sum(w) for x in w]
        got = _credits(attribution(three_won, half_life_days=14), "time_decay")
    assert_allclose(got, [w1[0] + 1, w1[1], w1[2] + 1], atol=TOL)


def test_position_based_by_hand(three_won):
    """Position-based: w1 40/20/40 -> A .4, B .2, C .4; w2 50/50 -> A 1; w3 100% -> C 1: A 1.4, B .2, C 1.4."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        assert_allclose(_credits(attribution(three_won), "position_based"), [1.4, 0.2, 1.4], atol=TOL)


def test_position_based_shares_the_middle():
    """With five touches the three in the middle share 20%: [A, B, B, B, C] -> A .4, B .2, C .4."""
    ds = _dataset({"w": [("A", 5), ("B", 4), ("B", 3), ("B", 2), ("C", 1)]}, {"w": "won"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        assert_allclose(_credits(attribution(ds), "position_based"), [0.4, 0.2, 0.4], atol=TOL)


def test_markov_three_channels_by_hand(three_won):
    """Markov removal effect on the three-channel example.

    Moves: START -> A 2, B 1, C 1; A -> A 1, B 1, CONV 1; B -> C 1, NULL 1; C -> CONV 2.
    From C: 1; from B: 1/2; from A: a = (1/2 + a + 1) / 3 -> a = 3/4.
    P = 1/2 * 3/4 + 1/4 * 1/2 + 1/4 * 1 = 3/4 (= 3 won of 4 closed).
    Without A: 1/4 * 1/2 + 1/4 = 3/8, effect 1 - (3/8)/(3/4) = 1/2.
    Without B: a = (a + 1) / 3 -> 1/2; P = 1/4 + 1/4 = 1/2, effect 1/3.
    Without C: from B 0, a = 1/2; P = 1/4, effect 2/3.
    Effects sum to 3/2; scaled to 3 conversions: A 1, B 2/3, C 4/3.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        r = attribution(three_won)
    effects = r.removal_effects.set_index("channel")
    assert_allclose(effects.loc[["A", "B", "C"], "removal_effect"], [1 / 2, 1 / 3, 2 / 3], atol=TOL)
    assert_allclose(effects.loc[["A", "B", "C"], "p_without"], [3 / 8, 1 / 2, 1 / 4], atol=TOL)
    assert_allclose(r.p_conversion, 3 / 4, atol=TOL)
    assert_allclose(_credits(r, "markov"), [1, 2 / 3, 4 / 3], atol=TOL)


def test_markov_two_channels_by_hand():
    """Markov removal effect, two channels: won [A, B], won [A], lost [B].

    Moves: START -> A 2, B 1; A -> B 1, CONV 1; B -> CONV 1, NULL 1.
    From B: 1/2; from A: 1/2 + 1/2 * 1/2 = 3/4; P = 2/3 * 3/4 + 1/3 * 1/2 = 2/3.
    Without A: 1/3 * 1/2 = 1/6, effect 1 - (1/6)/(2/3) = 3/4.
    Without B: from A 1/2, P = 2/3 * 1/2 = 1/3, effect 1/2.
    Scaled to 2 conversions: A 2 * (3/4)/(5/4) = 6/5, B 4/5.
    """
    ds = _dataset({"w1": [("A", 5), ("B", 2)], "w2": [("A", 3)], "l1": [("B", 4)]},
                  {"w1": "won", "w2": "won", "l1": "lost"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        r = attribution(ds)
    P = r.transitions
    assert_allclose(P.loc[START, ["A", "B"]], [2 / 3, 1 / 3], atol=TOL)
    assert_allclose(P.loc["A", ["B", CONVERSION, NULL]], [1 / 2, 1 / 2, 0], atol=TOL)
    assert_allclose(r.p_conversion, 2 / 3, atol=TOL)
    effects = r.removal_effects.set_index("channel")
    assert_allclose(effects.loc[["A", "B"], "removal_effect"], [3 / 4, 1 / 2], atol=TOL)
    assert_allclose(r.wide().loc[["A", "B"], "markov"], [6 / 5, 4 / 5], atol=TOL)
    assert_allclose(absorption(P, "A"), 1 / 6, atol=TOL)


def test_every_model_credits_the_won_deals(three_won):
    """Each model's credits add up to the won deals (3) and its shares to 1; the table is channel x model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        r = attribution(three_won)
    assert list(r.table.columns) == ["channel", "model", "conversions", "share"]
    assert len(r.table) == 3 * len(MODELS)
    totals = r.table.groupby("model")[["conversions", "share"]].sum()
    assert_allclose(totals["conversions"], 3, atol=1e-12)
    assert_allclose(totals["share"], 1, atol=1e-12)


def test_open_and_untouched_deals_are_counted():
    """Open deals, won deals without touches and touches after the close are left out and counted."""
    ds = _dataset({"w1": [("A", 3), ("B", -2)], "o1": [("B", 1)], "l1": [("A", 2)]},
                  {"w1": "won", "w2": "won", "o1": "open", "l1": "lost", "l2": "lost"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        r = attribution(ds)
    assert r.counts == {"without_deal": 0, "after_close": 1, "won": 2, "won_without_touches": 1, "lost": 2,
                        "lost_without_touches": 1, "open_deals": 1, "open_touches": 1, "conversions": 1}
    assert_allclose(r.wide().sum(), 1, atol=1e-12)
    assert any("1 of 2 won deals have no touchpoints" in note for note in r.notes)
    paths, _ = journeys(ds)
    assert set(paths["deal_id"]) == {"w1", "l1"}


def test_ties_keep_source_order():
    """Two touches on the same timestamp keep the order of the source rows (first touch = first row)."""
    ds = _dataset({"w": [("B", 3), ("A", 3)]}, {"w": "won"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        r = attribution(ds)
    assert r.wide().loc["B", "first_touch"] == 1 and r.wide().loc["A", "last_touch"] == 1


def test_small_sample_warns_and_nothing_to_attribute_raises(three_won):
    """Fewer won deals with touches than `min_conversions` warns; none at all raises."""
    with pytest.warns(SmallSampleWarning, match="3 won deals"):
        attribution(three_won)
    ds = _dataset({"l1": [("A", 2)]}, {"w1": "won", "l1": "lost"})
    with pytest.raises(WorkbenchError, match="No won deal has a touchpoint"):
        attribution(ds)
    with pytest.raises(WorkbenchError, match="half_life_days"):
        attribution(three_won, half_life_days=0)


def test_sample_end_to_end():
    """On the sample every model credits all won deals with touches; Markov matches the won share."""
    ds = generate(n_deals=1_500, seed="attribution", truth_deals=1_000).dataset()
    r = attribution(ds)
    won = r.counts["won"] - r.counts["won_without_touches"]
    assert r.counts["conversions"] == won > 30
    assert_allclose(r.table.groupby("model")["conversions"].sum(), won, rtol=1e-9)
    lost = r.counts["lost"] - r.counts["lost_without_touches"]
    assert_allclose(r.p_conversion, won / (won + lost), rtol=1e-9)
    assert (r.removal_effects["removal_effect"].between(0, 1)).all()
    # Sales touches crowd the late stages in the sample, so last touch favours Sales over first touch.
    wide = r.wide()
    assert wide.loc["Sales", "last_touch"] > wide.loc["Sales", "first_touch"]
    assert "<table" in r._repr_html_()


def test_plot_returns_the_axes(three_won):
    """`plot` draws one bar per channel and model on the given axes and returns them."""
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        r = attribution(three_won)
    fig, ax = plt.subplots()
    try:
        assert r.plot(ax=ax) is ax
        assert len(ax.patches) == 3 * len(MODELS)
    finally:
        plt.close(fig)
