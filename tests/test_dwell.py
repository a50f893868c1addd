"""Time in stage: a hand-built history with known dwells, and the sample's known truth."""
import warnings
from dataclasses import replace

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from workbench.cycle.dwell import OVERALL, stage_dwell, visits
from workbench.exceptions import SmallSampleWarning, WorkbenchError
from workbench.dataset.loader import from_frames
from workbench.dataset.sample import generate

D = pd.Timestamp


@pytest.fixture(scope="module")
def hand():
    """Six deals, stages A -> B -> C, won W, lost L, as of 2024-03-01 (2024 is a leap year).

    d1 skips B; d2 goes back (A, B, A, B, C, L: only first visits count); d3 is still in B
    at as_of; d4 closed lost with no terminal row; d5 is open with no history; d6 repeats
    its A row (the repeat continues the visit) and is still in B.
    """
    deals = pd.DataFrame({
        "deal_id": ["d1", "d2", "d3", "d4", "d5", "d6"],
        "created_at": [D("2024-01-01"), D("2024-01-01"), D("2024-02-01"), D("2024-01-01"), D("2024-02-15"),
                       D("2024-01-01")],
        "closed_at": [D("2024-01-31"), D("2024-02-20"), pd.NaT, D("2024-01-25"), pd.NaT, pd.NaT],
        "outcome": ["won", "lost", "open", "lost", "open", "open"],
        "team": ["x", "x", "x", "x", "y", "y"],
    })
    rows = [("d1", "A", "2024-01-01"), ("d1", "C", "2024-01-11"), ("d1", "W", "2024-01-31"),
            ("d2", "A", "2024-01-01"), ("d2", "B", "2024-01-06"), ("d2", "A", "2024-01-16"),
            ("d2", "B", "2024-01-21"), ("d2", "C", "2024-02-05"), ("d2", "L", "2024-02-20"),
            ("d3", "A", "2024-02-01"), ("d3", "B", "2024-02-11"),
            ("d4", "A", "2024-01-01"), ("d4", "B", "2024-01-05"),
            ("d6", "A", "2024-01-01"), ("d6", "A", "2024-01-03"), ("d6", "B", "2024-01-08")]
    history = pd.DataFrame(rows, columns=["deal_id", "stage", "entered_at"]).assign(
        entered_at=lambda f: pd.to_datetime(f["entered_at"]))
    return from_frames(deals, history, stages=("A", "B", "C"), won_stages=("W",), lost_stages=("L",),
                       as_of="2024-03-01", name="hand")


# (deal, stage): (days, event), counted on a calendar by hand.
EXPECTED = {
    ("d1", "A"): (10, "left"), ("d1", "C"): (20, "left"),
    ("d2", "A"): (5, "left"), ("d2", "B"): (10, "left"), ("d2", "C"): (15, "left"),
    ("d3", "A"): (10, "left"), ("d3", "B"): (19, "in_stage"),
    ("d4", "A"): (4, "left"), ("d4", "B"): (20, "left"),
    ("d6", "A"): (7, "left"), ("d6", "B"): (53, "in_stage"),
}


def test_first_visits_match_a_hand_count(hand):
    """First visit only, re-entries ignored, repeats continued, open deals censored at as_of,
    a close without a terminal row ends the visit, deals without history are in no stage."""
    frame = visits(hand)
    got = {(r.deal_id, r.stage): (r.days, r.event) for r in frame.itertuples()}
    assert got == EXPECTED


def test_every_visit_is_listed_when_asked(hand):
    """`first_only=False` also lists d2's second visits to A (5 days) and B (15 days)."""
    frame = visits(hand, first_only=False)
    again = frame[~frame["first"]]
    assert list(zip(again["deal_id"], again["stage"], again["days"])) == [("d2", "A", 5.0), ("d2", "B", 15.0)]


def test_kaplan_meier_medians_and_counts_by_hand(hand):
    """A: 4, 5, 7, 10, 10 all left -> median 7; B: 10 left, 19 censored, 20 left, 53 censored ->
    S(10) = 3/4, S(20) = 3/4 * 1/2 -> median 20 (the naive median of finished visits is 15);
    C: 15, 20 -> median 15."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        result = stage_dwell(hand, min_deals=1)
    table = result.table.set_index("stage")
    assert table["entered"].to_dict() == {"A": 5, "B": 4, "C": 2}
    assert table["still_in_stage"].to_dict() == {"A": 0, "B": 2, "C": 0}
    assert result.medians() == {"A": 7.0, "B": 20.0, "C": 15.0}
    # Restricted means (horizon 365): A is the plain mean 7.2; B's curve is 1 to day 10,
    # 3/4 to day 20, 3/8 after, and ends at 53 where the last deal is censored (area to 53).
    assert_allclose(table.loc["A", "mean_days"], 7.2)
    assert_allclose(table.loc["B", "mean_days"], 10 + 10 * 0.75 + 33 * 0.375)
    assert_allclose(table["share_of_time"].sum(), 1.0)


def test_unsorted_history_gives_the_same_answer(hand):
    """Shuffled history rows (as a hand-built Dataset could have) are sorted first: same table."""
    shuffled = replace(hand, stage_history=hand.stage_history.sample(frac=1.0, random_state=7))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        pd.testing.assert_frame_equal(stage_dwell(shuffled, min_deals=1).table, stage_dwell(hand, min_deals=1).table)


def test_small_segments_are_left_out_with_a_warning(hand):
    """A `by` level with fewer than `min_deals` deals is left out, and a stage entered by fewer keeps
    its counts but no estimate (None in `medians()`), each with a SmallSampleWarning."""
    with pytest.warns(SmallSampleWarning) as record:
        result = stage_dwell(hand, by="team", min_deals=3)
    messages = [str(w.message) for w in record]
    assert any("'y' has 2 deals" in m for m in messages)
    assert any("All deals, C: 2 deals entered" in m for m in messages)
    assert set(result.table["segment"]) == {OVERALL, "x"}
    assert result.medians() == {"A": 7.0, "B": 20.0, "C": None}
    with pytest.raises(WorkbenchError, match="no column `nope`"):
        stage_dwell(hand, by="nope")


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = generate(n_deals=20_000, seed="dwell-tests", truth_deals=200_000)
        return data, data.dataset()


def test_sample_has_deals_still_in_stage(sample):
    """The check below means something only if every stage has deals still in it at as_of (about a tenth)."""
    _, ds = sample
    table = stage_dwell(ds).table
    assert (table["still_in_stage"] / table["entered"] > 0.05).all()


@pytest.fixture(scope="module")
def by_persona(sample):
    return stage_dwell(sample[1], by="persona")


@pytest.mark.parametrize("persona", [None, "Procurement", "Executive sponsor", "Economic buyer",
                                     "Technical evaluator", "End user champion"])
def test_median_dwell_matches_truth(sample, by_persona, persona):
    """Per stage, the Kaplan-Meier median's 95% CI, widened by a day for day-rounding, holds the
    true median first-visit dwell, overall and for every persona (fitted through `by=`)."""
    data, _ = sample
    result = by_persona
    label = persona or OVERALL
    table = result.table[result.table["segment"] == label].set_index("stage")
    truth = (data.truth.segment(persona=persona) if persona else data.truth).median_days_in_stage
    for stage, true in truth.items():
        low, high = table.loc[stage, "median_low"], table.loc[stage, "median_high"]
        assert low - 1 <= true <= high + 1, (label, stage, low, high, true)


def test_naive_median_of_finished_visits_is_too_short(sample):
    """Dropping deals still in the stage biases the median down: below the truth in every stage, and
    outside the widened CI in Discovery, the longest stage with the most deals still in it."""
    data, ds = sample
    medians = stage_dwell(ds).table.set_index("stage")
    frame = visits(ds)
    naive = frame[frame["event"] == "left"].groupby("stage")["days"].median()
    truth = data.truth.median_days_in_stage
    for stage in ds.stages:
        assert naive[stage] < truth[stage], stage
        assert naive[stage] <= medians.loc[stage, "median_days"], stage
    # Only about a tenth of each stage's visits are still running, and dwells are short next to
    # the two years of data, so the bias is 1-2 days. In Discovery (truth 26, naive 24) that is
    # outside the CI even widened by a day; in the other stages the naive lands 1 day below the
    # truth, within the day-rounding allowance, so no miss is asserted there.
    low = medians.loc["Discovery", "median_low"]
    assert naive["Discovery"] < low - 1


def test_where_the_time_goes(sample):
    """Restricted mean dwells share out the time: shares sum to 1 per segment, Discovery (the longest
    true mean dwell) takes the biggest share, and `medians()` returns the overall medians."""
    _, ds = sample
    result = stage_dwell(ds, by="channel")
    shares = result.where_time_goes()
    assert_allclose(shares.sum(axis=1), 1.0)
    assert shares.loc[OVERALL].idxmax() == "Discovery"
    overall = result.table[result.table["segment"] == OVERALL]
    assert result.medians() == dict(zip(overall["stage"], overall["median_days"]))
    assert (overall["median_low"] <= overall["median_days"]).all()
    assert (overall["median_days"] <= overall["median_high"]).all()
    assert "<table" in result._repr_html_()


def test_segment_rows_equal_a_fit_on_the_segment_alone(sample, by_persona):
    """`by=` gives each level the numbers of `stage_dwell` on that level's deals alone."""
    _, ds = sample
    alone = stage_dwell(ds.filter({"persona": "Procurement"})).table.drop(columns="segment")
    rows = by_persona.table[by_persona.table["segment"] == "Procurement"].drop(columns="segment")
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), alone.reset_index(drop=True))
