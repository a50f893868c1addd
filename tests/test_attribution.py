"""Attribution models on journeys worked by hand, and on the sample."""
from __future__ import annotations

import hashlib
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from workbench.profile.attribution import CONVERSION, MODELS, NULL, START, absorption, attribution, bootstrap_shares, draw_counts, journeys, markov_model, rule_credits
from workbench.exceptions import SmallSampleWarning, WorkbenchError
from workbench.dataset.loader import from_frames
from workbench.dataset.sample import generate

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
    assert list(r.table.columns) == ["channel", "model", "conversions", "share", "share_low", "share_high"]
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
        assert len(ax.collections) == len(MODELS)  # one set of interval bars per model
    finally:
        plt.close(fig)
    fig, ax = plt.subplots()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallSampleWarning)
            assert attribution(three_won, n_boot=0).plot(ax=ax) is ax
        assert len(ax.patches) == 3 * len(MODELS) and not ax.collections
    finally:
        plt.close(fig)


# --- bootstrap intervals -------------------------------------------------------------------------

CHANNELS = np.array(["A", "B", "C"])
P_FIRST = np.array([0.5, 0.3, 0.2])  # first touch of a won deal
P_LAST = np.array([0.2, 0.3, 0.5])   # last touch of a won deal, independent of the first
AGES = (20, 15, 10)                  # days before the close of the touches, in order


def _rng(text: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _synthetic_journeys(seed: str, n: int = 150, p_won: float = 0.6) -> tuple[dict, dict]:
    """Closed deals, won with probability ``p_won``; a won journey is [first, (middle), last] with the
    first drawn from `P_FIRST`, the last from `P_LAST`, a uniform middle touch half the time; lost
    journeys are 1-3 uniform touches. Touches are `AGES` days before the close. Returns the
    ``paths`` and ``outcomes`` of `_dataset`."""
    g = _rng(seed)
    won, three = g.random(n) < p_won, g.random(n) < 0.5
    first, last, middle = g.choice(3, n, p=P_FIRST), g.choice(3, n, p=P_LAST), g.integers(0, 3, n)
    paths, outcomes = {}, {}
    for i in range(n):
        if won[i]:
            path = [first[i], middle[i], last[i]] if three[i] else [first[i], last[i]]
        else:
            path = g.integers(0, 3, g.integers(1, 4))
        paths[f"d{i:03d}"] = [(CHANNELS[c], age) for c, age in zip(path, AGES)]
        outcomes[f"d{i:03d}"] = "won" if won[i] else "lost"
    return paths, outcomes


def _synthetic(seed: str, n: int = 150):
    """`_synthetic_journeys` as a dataset."""
    return _dataset(*_synthetic_journeys(seed, n))


def _as_journeys(paths: dict, outcomes: dict) -> pd.DataFrame:
    """What `journeys` makes of ``_dataset(paths, outcomes)`` (closed deals only), built directly:
    the coverage test needs hundreds of datasets and validating each would dominate its time."""
    close = D("2024-01-29")
    rows = [(deal, close - pd.Timedelta(days=age), ch, outcomes[deal], close, step, len(path))
            for deal, path in paths.items() for step, (ch, age) in enumerate(path)]
    return pd.DataFrame(rows, columns=["deal_id", "occurred_at", "channel", "outcome", "closed_at", "step", "length"])


def _true_shares(half_life_days: float = 7.0) -> dict:
    """Long-run shares of the rule models in `_synthetic`, by construction: two and three touches
    equally likely, the middle touch uniform over the channels."""
    def mix(weights_two, weights_three):  # weights of (first, last) and of (first, middle, last)
        (f2, l2), (f3, m3, l3) = weights_two, weights_three
        return 0.5 * (f2 * P_FIRST + l2 * P_LAST) + 0.5 * (f3 * P_FIRST + m3 / 3 + l3 * P_LAST)

    decay = np.power(2.0, -np.array(AGES) / half_life_days)
    return {"first_touch": mix((1, 0), (1, 0, 0)), "last_touch": mix((0, 1), (0, 0, 1)),
            "linear": mix((1 / 2, 1 / 2), (1 / 3, 1 / 3, 1 / 3)), "position_based": mix((0.5, 0.5), (0.4, 0.2, 0.4)),
            "time_decay": mix(decay[:2] / decay[:2].sum(), decay / decay.sum())}


def _naive_shares(paths: pd.DataFrame, counts: np.ndarray, half_life_days: float = 7.0) -> np.ndarray:
    """Shares per replicate, (B, models, channels), from journeys physically copied ``counts`` times
    (each copy a new deal) and the per-model functions `rule_credits` and `markov_model`."""
    channels = sorted(paths["channel"].unique())
    by_deal = dict(tuple(paths.groupby("deal_id", sort=False)))
    out = []
    for row in counts:
        sample = pd.concat([by_deal[d].assign(deal_id=f"{d}#{k}")
                            for d, n in zip(pd.unique(paths["deal_id"]), row) for k in range(n)], ignore_index=True)
        won = sample[sample["outcome"] == "won"]
        rules = rule_credits(won, half_life_days).groupby("channel")[list(MODELS[:-1])].sum()
        markov = markov_model(sample)[1].set_index("channel")["markov"]
        credits = rules.join(markov, how="outer").reindex(channels).fillna(0.0)[list(MODELS)]
        out.append(credits.to_numpy().T / won["deal_id"].nunique())
    return np.array(out)


@pytest.fixture(scope="module")
def samples():
    """Attribution of the sample at 5,000 and 20,000 deals, same seed, default bootstrap."""
    return {n: attribution(generate(n_deals=n, seed="workbench", truth_deals=1_000).dataset())
            for n in (5_000, 20_000)}


def test_intervals_hold_the_estimate_and_narrow_with_more_deals(samples):
    """Every interval holds its share; four times the deals roughly halves the widths (1/sqrt(4))."""
    widths = {}
    for n, r in samples.items():
        t = r.table
        assert t[["share_low", "share_high"]].notna().all().all()
        assert (t["share_low"] <= t["share"]).all() and (t["share"] <= t["share_high"]).all()
        assert (t["share_high"] > t["share_low"]).all()
        widths[n] = t.set_index(["model", "channel"]).eval("share_high - share_low")
    ratio = widths[20_000] / widths[5_000]
    assert (ratio < 0.8).all(), ratio
    assert 0.4 < ratio.median() < 0.6, ratio


def test_intervals_cover_the_known_truth():
    """Over 100 synthetic datasets (~90 won deals each) the 95% percentile intervals of the rule
    models hold the true long-run shares in 90-99% of the 1,500 checks, and no model-channel pair
    falls below 85%.

    The intervals are `attribution`'s own computation (`draw_counts` -> `bootstrap_shares` ->
    percentiles, pinned by `test_weighted_bootstrap_equals_resampling_the_journeys`) on the
    journeys directly; the first dataset checks those journeys are what `journeys` finds.
    """
    truth = _true_shares()
    rules = [MODELS.index(m) for m in truth]
    expected = np.array(list(truth.values()))  # models x channels
    hits = []
    for k in range(100):
        paths = _as_journeys(*_synthetic_journeys(f"coverage/{k}"))
        if k == 0:
            found, _ = journeys(_synthetic(f"coverage/{k}"))
            pd.testing.assert_frame_equal(found, paths, check_dtype=False)
        shares = bootstrap_shares(paths, draw_counts(paths["deal_id"].nunique(), 200, seed=f"coverage/{k}"))
        low, high = np.quantile(shares[:, rules], [0.025, 0.975], axis=0)
        hits.append((low <= expected) & (expected <= high))
    hits = np.array(hits)
    assert 0.90 <= hits.mean() <= 0.99, hits.mean()
    assert (hits.mean(axis=0) >= 0.85).all(), hits.mean(axis=0)


def test_no_bootstrap_gives_nan_intervals_and_the_same_shares(three_won):
    """`n_boot=0` leaves the intervals NaN and the replicates empty; the shares do not depend on it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        off, on = attribution(three_won, n_boot=0), attribution(three_won)
    assert off.table[["share_low", "share_high"]].isna().all().all() and off.replicates.empty
    pd.testing.assert_frame_equal(off.table.drop(columns=["share_low", "share_high"]),
                                  on.table.drop(columns=["share_low", "share_high"]))
    assert len(on.replicates) == 200 * len(on.table) and on.table["share_low"].notna().all()
    assert "\u2013" not in off._repr_html_() and "\u2013" in on._repr_html_()


def test_same_seed_same_intervals():
    """The bootstrap is seeded from the string: the same seed repeats the intervals, another changes them."""
    ds = _synthetic("seeds", n=60)
    first, again, other = (attribution(ds, seed=s).table for s in ("one", "one", "two"))
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["share_low"], other["share_low"])


def test_weighted_bootstrap_equals_resampling_the_journeys():
    """Weighting per-deal credits and transitions by draw counts equals copying the drawn journeys and
    rerunning the per-model functions, replicate by replicate; the percentile bounds of `attribution`
    are those of these replicates, and a row of ones gives the point estimates."""
    ds = _synthetic("naive", n=60)
    paths, _ = journeys(ds)
    counts = draw_counts(paths["deal_id"].nunique(), 5, seed="naive")
    assert (counts.sum(axis=1) == counts.shape[1]).all() and (counts == 0).any()
    fast = bootstrap_shares(paths, counts)
    assert_allclose(fast, _naive_shares(paths, counts), atol=1e-12)

    r = attribution(ds, n_boot=5, alpha=0.2, seed="naive", min_conversions=1)
    bounds = np.quantile(fast, [0.1, 0.9], axis=0).reshape(2, -1)
    assert_allclose(r.table[["share_low", "share_high"]].to_numpy().T, bounds, atol=1e-12)
    ones = bootstrap_shares(paths, np.ones((1, counts.shape[1]), int))[0]
    assert_allclose(ones.ravel(), r.table["share"], atol=1e-12)


def test_a_channel_missing_from_a_replicate_gets_share_zero(three_won):
    """Drawing only w3 [C] and l1 [B] leaves A out: share 0 under every model, C gets all the credit;
    drawing only the lost l1 credits nothing (NaN, left out of the percentiles)."""
    paths, _ = journeys(three_won)
    order = list(pd.unique(paths["deal_id"]))
    counts = np.zeros((2, len(order)), int)
    counts[0, [order.index("w3"), order.index("l1")]] = 2
    counts[1, order.index("l1")] = 4
    shares = bootstrap_shares(paths, counts)  # replicates x models x [A, B, C]
    assert_allclose(shares[0], np.tile([0.0, 0.0, 1.0], (len(MODELS), 1)), atol=1e-12)
    assert np.isnan(shares[1]).all()


def test_difference_uses_the_paired_replicates(samples):
    """`difference` is the share difference with the percentile interval of the replicate differences."""
    r = samples[5_000]
    d = r.difference("Sales", "Web", model="last_touch")
    shares = r.wide("share")["last_touch"]
    assert_allclose(d["difference"], shares["Sales"] - shares["Web"], atol=1e-12)
    rep = r.replicates[r.replicates["model"] == "last_touch"].pivot(index="replicate", columns="channel",
                                                                    values="share")
    assert_allclose([d["low"], d["high"]], np.quantile(rep["Sales"] - rep["Web"], [0.025, 0.975]), atol=1e-12)
    assert d["low"] <= d["difference"] <= d["high"]
    with pytest.raises(WorkbenchError, match="Nowhere"):
        r.difference("Nowhere", "Web")
    with pytest.raises(WorkbenchError, match="Unknown attribution model"):
        r.difference("Sales", "Web", model="u_shaped")


def test_bootstrap_arguments_are_checked(three_won):
    """A negative or fractional `n_boot` and an `alpha` outside (0, 1) raise."""
    for kwargs, match in (({"n_boot": -1}, "n_boot"), ({"n_boot": 2.5}, "n_boot"), ({"alpha": 0}, "alpha"),
                          ({"alpha": 1.5}, "alpha")):
        with pytest.raises(WorkbenchError, match=match):
            attribution(three_won, **kwargs)
