"""The prefill of journey grids: a hand-computed small history, the funnel and dwell modules on
one-to-one journeys, VADER itself for the sentiment, and the sample's truth for merged stages."""
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from workbench import from_frames
from workbench.cycle.times import OVERALL
from workbench.cycle.dwell import stage_dwell
from workbench.funnel.conversion import stage_conversion, stage_reach
from workbench.journey.model import Journey, JourneyError, Persona, fit_to_dataset, template
from workbench.journey.facts import journey_dataset, journey_facts, persona_facts, personas_from_data
from workbench.dataset.sample import generate

T0 = pd.Timestamp("2024-01-01")
STAGES = ["Lead", "Qualified", "Discovery", "Proposal"]


def day(n):
    return T0 + pd.Timedelta(days=n)


def _hand():
    """Six deals, personas A (D1-D3) and B (D4-D6); `as_of` is day 100.

    D1 A: Lead 0, Qualified 5, Discovery 12, Proposal 20, Won 30 (win reason "Great fit")
    D2 A: Lead 0, Qualified 4, Lost 10 ("Price")
    D3 A: Lead 0, Discovery 3 (skip), Qualified 8 (back), Lost 20 ("Timing")
    D4 B: Lead 90, Qualified 92, Discovery 96, open at 100
    D5 B: Qualified 0 (starts mid-funnel), Proposal 10, Lost 15 ("Price")
    D6 B: Lead 0, won at 9 with no closing row in the history
    """
    deals = pd.DataFrame({
        "deal_id": ["D1", "D2", "D3", "D4", "D5", "D6"],
        "created_at": [day(0)] * 3 + [day(90), day(0), day(0)],
        "closed_at": [day(30), day(10), day(20), pd.NaT, day(15), day(9)],
        "outcome": ["won", "lost", "lost", "open", "lost", "won"],
        "persona": ["A"] * 3 + ["B"] * 3,
        "loss_reason": [None, "Price", "Timing", None, "Price", None],
        "win_reason": ["Great fit", None, None, None, None, None],
    })
    rows = [("D1", "Lead", 0), ("D1", "Qualified", 5), ("D1", "Discovery", 12), ("D1", "Proposal", 20),
            ("D1", "Won", 30), ("D2", "Lead", 0), ("D2", "Qualified", 4), ("D2", "Lost", 10),
            ("D3", "Lead", 0), ("D3", "Discovery", 3), ("D3", "Qualified", 8), ("D3", "Lost", 20),
            ("D4", "Lead", 90), ("D4", "Qualified", 92), ("D4", "Discovery", 96),
            ("D5", "Qualified", 0), ("D5", "Proposal", 10), ("D5", "Lost", 15), ("D6", "Lead", 0)]
    history = pd.DataFrame(rows, columns=["deal_id", "stage", "entered_at"]).assign(
        entered_at=lambda h: h["entered_at"].map(day))
    contacts = pd.DataFrame({"contact_id": ["C1", "C2", "C3", "C4"], "deal_id": ["D1", "D1", "D3", "D5"],
                             "role": ["Decision maker", "Influencer", "User", "Decision maker"]})
    touchpoints = pd.DataFrame({
        "deal_id": ["D1", "D1", "D1", "D4", "D2", None, "D4"],
        "occurred_at": [day(6), day(13), day(13), day(97), day(11), day(1), day(89)],
        "channel": ["Email", "Sales", "Sales", "Sales", "Email", "Web", "Web"],
        "kind": ["email", "meeting", "meeting", "call", "email", "web visit", "web visit"],
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_frames(deals, history, stages=STAGES, won_stages=["Won"], lost_stages=["Lost"], as_of=day(100),
                           contacts=contacts, touchpoints=touchpoints, name="hand")


def _hand_journey() -> Journey:
    return Journey.model_validate({
        "persona": {"name": "Everyone"},
        "stages": [{"label": "Looking", "covers": ["Lead", "Qualified"]}, {"label": "Comparing", "covers": ["Discovery"]},
                   {"label": "Deciding", "covers": ["Proposal"]}],
        "lanes": [{"name": "Numbers", "kind": "data", "metric": "deals"}]})


@pytest.fixture(scope="module")
def hand():
    return journey_facts(_hand(), _hand_journey(), "persona", min_deals=1)


def test_reach_and_conversion_of_merged_stages_by_hand(hand):
    """Looking (Lead+Qualified): 6 reach it, 5 of 6 move on; Comparing: D4 censored at 4 days, D1 on at 8,
    D3 out at 17, so 1/2 (the count ratio says 1/3); Deciding: D5 out at 5, D1 won at 10: 1/2."""
    rows = hand.stages[hand.stages["persona"] == OVERALL].set_index("stage")
    assert rows["reached"].tolist() == [6, 5, 3]
    assert rows["entered"].tolist() == [6, 3, 2]
    assert rows["next"].tolist() == ["Comparing", "Deciding", "Won"]
    assert_allclose(rows["conversion"], [5 / 6, 1 / 2, 1 / 2], atol=1e-12)
    assert_allclose(rows["drop_off"], [1 / 6, 1 / 2, 1 / 2], atol=1e-12)
    assert rows.loc["Comparing", "advanced"] == 1 and rows.loc["Comparing", "dropped"] == 1
    assert rows["still_in"].tolist() == [0, 1, 0]
    assert rows["lost_here"].tolist() == [2, 0, 1]


def test_time_in_a_merged_stage_runs_until_the_deal_leaves_it(hand):
    """Looking visits last 12, 10, 3, 6, 10 and 9 days (Lead then Qualified is one visit): median 9."""
    rows = hand.stages[hand.stages["persona"] == OVERALL].set_index("stage")
    assert rows.loc["Looking", "median_days"] == 9


def test_objections_touchpoints_and_roles_by_hand(hand):
    """Loss reasons by the stage lost in; touches by the stage at the time (deal-less, after close and before
    the first stage left out and noted); roles as shares of the deals reaching each stage."""
    objections = hand.top(OVERALL, "Looking", "objection")
    assert objections[["label", "count", "base"]].values.tolist() == [["Price", 1, 2], ["Timing", 1, 2]]
    assert hand.top(OVERALL, "Deciding", "objection")[["label", "share"]].values.tolist() == [["Price", 1.0]]
    channels = hand.top(OVERALL, "Comparing", "channel")
    assert channels[["label", "count", "base"]].values.tolist() == [["Sales", 3, 3]]
    kinds = hand.top(OVERALL, "Comparing", "kind")
    assert kinds[["label", "count"]].values.tolist() == [["meeting", 2], ["call", 1]]
    assert hand.top(OVERALL, "Looking", "channel")[["label", "count"]].values.tolist() == [["Email", 1]]
    assert "Touchpoints in no stage: 1 without a known deal, 1 after their deal closed, 1 before the deal's first " \
           "stage." in hand.notes
    roles = {s: hand.top(OVERALL, s, "role", n=5).set_index("label")["share"].to_dict() for s in hand.stage_labels}
    assert roles["Looking"] == pytest.approx({"Decision maker": 2 / 6, "Influencer": 1 / 6, "User": 1 / 6})
    assert roles["Comparing"] == pytest.approx({"Decision maker": 2 / 5, "Influencer": 1 / 5, "User": 1 / 5})
    assert roles["Deciding"] == pytest.approx({"Decision maker": 2 / 3, "Influencer": 1 / 3})


def test_sentiment_is_vaders_mean_over_the_stage_texts(hand):
    """Deciding holds D1's win reason and D5's loss reason: the mean of VADER's own compound scores."""
    vader = SentimentIntensityAnalyzer()
    expected = np.mean([vader.polarity_scores(t)["compound"] for t in ("Great fit", "Price")])
    tone = hand.tone(OVERALL, "Deciding")
    assert tone["texts"] == 2 and tone["score"] == pytest.approx(expected)
    assert tone["tone"] == ("positive" if expected >= 0.05 else "neutral")
    assert hand.tone(OVERALL, "Comparing") is None  # no deal ended or sits there with a text


def test_personas_split_the_same_numbers(hand):
    """Persona B: D4, D5, D6 reach Looking and Comparing (D5 and D6 past it), D5 and D6 Deciding; a filter persona gives the same facts as the column level."""
    b = hand.stages[hand.stages["persona"] == "B"].set_index("stage")
    assert b["reached"].tolist() == [3, 3, 2]
    by_filter = persona_facts(_hand(), _hand_journey(), Persona(name="B", filter={"persona": "B"}), min_deals=1)
    pd.testing.assert_frame_equal(by_filter.stages, hand.persona("B").stages)
    pd.testing.assert_frame_equal(by_filter.items, hand.persona("B").items)
    with pytest.raises(JourneyError, match="selects no deals"):
        persona_facts(_hand(), _hand_journey(), Persona(name="none", filter={"persona": "Z"}))


def test_labels_that_clash_with_won_or_lost_are_refused():
    """A journey stage called like the data's won stage would merge with it: refused with the fix."""
    journey = _hand_journey()
    journey.rename_stage("Deciding", "Won")
    with pytest.raises(JourneyError, match="rename those journey stages"):
        journey_dataset(_hand(), journey)


# --- the sample ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = generate(n_deals=20_000, seed="journey-facts", truth_deals=200_000)
        return data, data.dataset()


def test_a_one_to_one_journey_has_the_funnel_and_dwell_numbers(sample):
    """One journey stage per CRM stage: reach, conversion and median days equal the funnel and dwell
    modules' own figures, overall and per persona."""
    _, ds = sample
    journey = fit_to_dataset(template("b2b"), ds)
    facts = journey_facts(ds, journey, "persona")
    names = dict(zip(ds.stages, journey.stage_labels()))
    conv = stage_conversion(ds, "persona").table
    reach = stage_reach(ds, "persona").table
    dwell = stage_dwell(ds, "persona").table
    for frame in (conv, reach, dwell):
        if "stage" not in frame:
            frame["stage"] = frame["transition"].str.split("->").str[0]
        frame["stage"] = frame["stage"].map(names)
    got = facts.stages.rename(columns={"persona": "segment"}).set_index(["segment", "stage"])
    for frame, pairs in ((conv, [("conversion", "conversion"), ("ci_low", "conversion_low")]),
                         (reach, [("reached", "reached"), ("share", "reach_share")]),
                         (dwell, [("median_days", "median_days"), ("median_high", "median_high")])):
        ref = frame.set_index(["segment", "stage"])
        for theirs, ours in pairs:
            assert_allclose(got[ours].to_numpy(float), ref.loc[got.index, theirs].to_numpy(float), rtol=1e-12)


@pytest.mark.parametrize("persona", [None, "Procurement", "Executive sponsor"])
def test_merged_stage_conversion_holds_the_truth_where_count_ratio_misses(sample, persona):
    """Journey stages covering several CRM stages: each conversion's 95% CI holds the true grouped conversion
    from the uncut simulation (`Truth.grouped_conversion`); the plain count ratio falls outside."""
    data, ds = sample
    groups = [["Lead", "Qualified"], ["Discovery"], ["Proposal", "Negotiation"]]
    journey = Journey.model_validate({
        "persona": {"name": "x"}, "lanes": [{"name": "n", "kind": "data", "metric": "deals"}],
        "stages": [{"label": f"J{i}", "covers": g} for i, g in enumerate(groups)]})
    facts = journey_facts(ds, journey, "persona")
    truth = data.truth.grouped_conversion(groups, **({"persona": persona} if persona else {}))
    rows = facts.stages[facts.stages["persona"] == (persona or OVERALL)]
    missed = 0
    for row, true_rate in zip(rows.itertuples(), truth.to_numpy()):
        assert row.conversion_low - 0.005 <= true_rate <= row.conversion_high + 0.005, (row, true_rate)
        ratio = row.advanced / row.entered
        missed += not (row.conversion_low - 0.005 <= ratio <= row.conversion_high + 0.005)
    assert missed >= 2, "the count ratio should miss the truth where deals are still open"


def test_personas_from_data_are_the_big_levels_largest_first(sample):
    """Every level with enough deals, largest first, with its size and win rate in the description."""
    _, ds = sample
    personas = personas_from_data(ds, "persona", min_deals=3_000)
    sizes = ds.deals["persona"].value_counts()
    assert [p.name for p in personas] == [str(k) for k, n in sizes.items() if n >= 3_000]
    assert personas[0].filter == {"persona": personas[0].name}
    assert f"{sizes.iloc[0]:,} deals" in personas[0].description


def test_touch_and_objection_counts_agree_with_the_pandas_modules(sample):
    """On a one-to-one journey the array counts equal `touchpoints.deal_touches` (a merge_asof) and
    `reasons.last_open_stage` grouped with pandas, overall and per persona."""
    from workbench.drivers.reasons import last_open_stage
    from workbench.profile.touchpoints import deal_touches

    _, ds = sample
    journey = fit_to_dataset(template("b2b"), ds)
    facts = journey_facts(ds, journey, "persona")
    names = dict(zip(ds.stages, journey.stage_labels()))
    touches, _ = deal_touches(ds)
    touches = touches[touches["stage"].isin(ds.stages)].merge(ds.deals[["deal_id", "persona"]], on="deal_id")
    lost = ds.deals[ds.deals["outcome"] == "lost"].assign(stage=lambda d: d["deal_id"].map(last_open_stage(ds)))
    lost = lost.dropna(subset=["stage"])
    for metric, frame, column in (("channel", touches, "channel"), ("kind", touches, "kind"),
                                  ("objection", lost, "loss_reason")):
        for persona in (OVERALL, "Procurement"):
            part = frame if persona == OVERALL else frame[frame["persona"] == persona]
            expected = part.groupby([part["stage"].map(names), column]).size()
            got = facts.items[(facts.items["metric"] == metric) & (facts.items["persona"] == persona)]
            got = got.set_index(["stage", "label"])["count"]
            assert got.sort_index().to_dict() == expected.sort_index().to_dict(), (metric, persona)
