"""Windowed conversion, reach, moves, path variants, the Markov chain, cohorts, segment tests and
messy histories: hand-built histories counted by hand, and the sample with its known process."""
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402
from scipy.stats import chi2_contingency, norm  # noqa: E402
from statsmodels.stats.multitest import multipletests  # noqa: E402

from workbench.funnel import plots as funnel_plots
from workbench.exceptions import SmallSampleWarning
from workbench.funnel.conversion import OVERALL, cohort_conversion, compare_conversion, funnel, stage_conversion, stage_reach, windowed_conversion
from workbench.dataset.loader import from_frames
from workbench.funnel.markov import markov_chain, markov_check
from workbench.dataset.history import history, history_quality
from workbench.funnel.routes import path_variants, regression_effect, stage_flows
from workbench.funnel.transitions import moves, transition_matrix
from workbench.dataset.sample import generate

T0 = pd.Timestamp("2024-01-01")


def _build(journeys: dict, outcomes: dict, *, stages=("A", "B", "C", "D"), as_of_day=100, extra=None):
    """A dataset from ``{deal: [(stage, day), ...]}`` and ``{deal: (outcome, closed_day or None)}``;
    days count from 2024-01-01; every deal is created on day 0 unless ``extra`` says otherwise."""
    day = lambda n: T0 + pd.Timedelta(days=n)  # noqa: E731
    deals = pd.DataFrame({
        "deal_id": list(outcomes),
        "created_at": [day(0)] * len(outcomes),
        "closed_at": [day(c) if c is not None else pd.NaT for _, c in outcomes.values()],
        "outcome": [o for o, _ in outcomes.values()],
    })
    for column, values in (extra or {}).items():
        deals[column] = [values[d] for d in outcomes]
    rows = [(d, s, day(n)) for d, steps in journeys.items() for s, n in steps]
    history_frame = pd.DataFrame(rows, columns=["deal_id", "stage", "entered_at"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_frames(deals, history_frame, stages=stages, won_stages=("Won",), lost_stages=("Lost",),
                           as_of=day(as_of_day), name="hand")


# --- windowed conversion -------------------------------------------------------------------

WINDOW_JOURNEYS = {
    "w1": [("A", 0), ("B", 5), ("Won", 40)],   # A->B within 10; B->C: won after 35 days, not within 10
    "w2": [("A", 0), ("B", 15)],               # A->B after 15 days: not within 10
    "w3": [("A", 85), ("B", 88)],              # A entered day 85 <= 90: eligible, converted in 3
    "w4": [("A", 95)],                         # A entered day 95 > 90: too recent
    "w5": [("A", 0), ("Lost", 4)],             # lost: not converted
    "w6": [("A", 50)],                         # still in A: not converted (and not lost)
    "w7": [("A", 0), ("C", 10)],               # skip past B on day 10: converted (the window is inclusive)
    "w8": [("A", 92), ("B", 93)],              # too recent, although it converted
    "w9": [("A", 0), ("B", 2), ("C", 8)],      # A->B in 2, B->C in 6
}
WINDOW_OUTCOMES = {"w1": ("won", 40), "w2": ("open", None), "w3": ("open", None), "w4": ("open", None),
                   "w5": ("lost", 4), "w6": ("open", None), "w7": ("open", None), "w8": ("open", None),
                   "w9": ("open", None)}


def _direct_windowed_count(journeys, stages, window, as_of_day):
    """Per transition A->B: (eligible, converted), counted deal by deal in plain Python."""
    out = {}
    order = {s: i for i, s in enumerate(stages)} | {"Won": len(stages)}
    for i, stage in enumerate(stages):
        eligible = converted = 0
        for steps in journeys.values():
            entries = [n for s, n in steps if s == stage]
            if not entries or entries[0] > as_of_day - window:
                continue
            eligible += 1
            later = [n for s, n in steps if order.get(s, -1) > i and n >= entries[0]]
            converted += bool(later) and min(later) - entries[0] <= window
        out[stage] = (eligible, converted)
    return out


def test_windowed_conversion_equals_a_direct_count():
    """Eligible entries (old enough for the window) and conversions within it equal a deal-by-deal count:
    A->B 7 eligible (w4, w8 too recent), 4 converted (w1, w3, w7 by a skip on day 10, w9)."""
    ds = _build(WINDOW_JOURNEYS, WINDOW_OUTCOMES)
    table = windowed_conversion(ds, 10, min_deals=1).table.set_index("transition")
    direct = _direct_windowed_count(WINDOW_JOURNEYS, ds.stages, 10, 100)
    assert direct["A"] == (7, 4)
    for transition, stage in zip(table.index, ds.stages):
        assert (table.loc[transition, "eligible"], table.loc[transition, "converted"]) == direct[stage]
        eligible, converted = direct[stage]
        if eligible:
            assert table.loc[transition, "conversion"] == converted / eligible
            assert table.loc[transition, "ci_low"] <= converted / eligible <= table.loc[transition, "ci_high"]
    assert table.loc["A->B", "too_recent"] == 2


def test_windowed_conversion_has_wilson_intervals():
    """The interval is statsmodels' Wilson interval of converted / eligible."""
    from statsmodels.stats.proportion import proportion_confint

    ds = _build(WINDOW_JOURNEYS, WINDOW_OUTCOMES)
    row = windowed_conversion(ds, 10, min_deals=1).table.iloc[0]
    low, high = proportion_confint(row["converted"], row["eligible"], method="wilson")
    assert_allclose([row["ci_low"], row["ci_high"]], [low, high])


# --- moves and their kinds ------------------------------------------------------------------

def test_every_kind_of_move_is_classified():
    """A, B (advance), B again (re-enter), A (back), C (skip past B), Won (win, past D), B (reopen), Lost (lose)."""
    ds = _build({"c1": [("A", 0), ("B", 1), ("B", 2), ("A", 3), ("C", 4), ("Won", 5), ("B", 6), ("Lost", 7)]},
                {"c1": ("lost", 7)})
    m = moves(ds)
    assert list(m["kind"]) == ["advance", "re-enter", "back", "skip", "win", "reopen", "lose"]
    assert list(m["skipped"]) == [0, 0, 0, 1, 1, 0, 0]
    assert list(m["days"]) == [1.0] * 7


def test_transition_matrix_counts_moves_and_row_shares():
    """Counts equal the moves; shares of each row with moves add up to 1; deals still in a stage are `still_in`."""
    ds = _build(WINDOW_JOURNEYS, WINDOW_OUTCOMES)
    tm = transition_matrix(ds, min_deals=1)
    m = moves(ds)
    counts = tm.counts()
    assert counts.to_numpy().sum() == len(m)
    by_pair = m.groupby(["from", "to"], observed=True).size()
    for (a, b), n in by_pair.items():
        assert counts.loc[a, b] == n
    shares = tm.shares().dropna(how="all")
    assert_allclose(shares.sum(axis=1), 1.0)
    # A->B moves: w1, w2, w3, w8, w9; A->C: w7; A->Lost: w5.
    assert counts.loc["A", "B"] == 5 and counts.loc["A", "C"] == 1 and counts.loc["A", "Lost"] == 1
    still = tm.table.drop_duplicates("from").set_index("from")["still_in"]
    assert still["A"] == 2 and still["B"] == 3 and still["C"] == 2  # w4, w6 | w2, w3, w8 | w7, w9
    kinds = tm.kinds().set_index("kind")["moves"]
    assert kinds["skip"] == 1 and kinds["win"] == 1 and kinds["lose"] == 1


# --- path variants, regressions, flows --------------------------------------------------------

CHAIN = {"d1": [("A", 0), ("B", 10), ("Won", 30)],
         "d2": [("A", 0), ("B", 10), ("B", 12), ("Won", 30)],
         "d3": [("A", 0), ("Lost", 10)],
         "d4": [("A", 0), ("B", 10), ("A", 30), ("B", 40), ("Lost", 60)],
         "d5": [("A", 0), ("B", 10)]}
CHAIN_OUTCOMES = {"d1": ("won", 30), "d2": ("won", 30), "d3": ("lost", 10), "d4": ("lost", 60),
                  "d5": ("open", None)}


def test_path_variants_collapse_repeats_and_keep_open_deals_out_of_win_rates():
    """Routes: A > B (d1, d2 with its repeated B collapsed: 2 won; d5 open), A (d3 lost), A > B > A > B (d4 lost)."""
    ds = _build(CHAIN, CHAIN_OUTCOMES, stages=("A", "B"))
    table = path_variants(ds, min_deals=1).table.set_index("route")
    assert table.loc["A > B", ["won", "lost", "open"]].tolist() == [2, 0, 1]
    assert table.loc["A > B", "win_rate"] == 1.0
    assert table.loc["A", "win_rate"] == 0.0
    assert bool(table.loc["A > B > A > B", "regressed"]) and table.loc["A > B > A > B", "stages"] == 4
    assert_allclose(table.loc[["A > B", "A", "A > B > A > B"], "share"], [2 / 4, 1 / 4, 1 / 4])


def test_regression_effect_counts_and_its_test():
    """One deal of five went back (d4, lost): win rate 0/1 against 2/3 without; the z-test equals the 2x2 chi-square."""
    ds = _build(CHAIN, CHAIN_OUTCOMES, stages=("A", "B"))
    effect = regression_effect(ds, min_deals=1)
    table = effect.table.set_index("group")
    assert table.loc["went back", ["deals", "closed", "won"]].tolist() == [1, 1, 0]
    assert table.loc["never went back", ["deals", "closed", "won"]].tolist() == [4, 3, 2]
    test = effect.tests.iloc[0]
    assert test["went_back"] == 1 and test["share_went_back"] == 1 / 5
    assert_allclose(test["difference"], 0 - 2 / 3)
    expected = chi2_contingency(np.array([[0, 1], [2, 1]]), correction=False)[1]
    assert_allclose(test["p_value"], expected)


def test_stage_flows_follow_each_deal_step_by_step():
    """Step 1: five deals in A (four to B, one to Lost); step 2 holds the same five deals; d4 continues past step 3."""
    ds = _build(CHAIN, CHAIN_OUTCOMES, stages=("A", "B"))
    flows = stage_flows(ds, max_steps=3)
    step1 = flows[flows["step"] == 1].set_index("to")["deals"]
    assert step1.to_dict() == {"B": 4, "Lost": 1}
    assert flows.loc[flows["step"] == 2, "deals"].sum() == 5
    last = flows[flows["step"] == 3].set_index(["from", "to"])["deals"]
    assert last[("A", "(continues)")] == 1 and last[("Won", "(stays)")] == 2


# --- reach ---------------------------------------------------------------------------------

def test_reach_counts_skips_as_reaching_and_still_in_stage():
    """Reach counts deals that entered a stage or went past it (skips, wins); still_in counts open deals there."""
    ds = _build(WINDOW_JOURNEYS, WINDOW_OUTCOMES)
    table = stage_reach(ds, min_deals=1).table.set_index("stage")
    # B or beyond: w1 (B, Won), w2, w3, w7 (skips to C), w8, w9 = 6; C or beyond: w1 (won), w7, w9 = 3; D: w1 = 1.
    assert table["reached"].to_dict() == {"A": 9, "B": 6, "C": 3, "D": 1}
    assert table["entered"].to_dict() == {"A": 9, "B": 5, "C": 2, "D": 0}
    assert table["still_in"].to_dict() == {"A": 2, "B": 3, "C": 2, "D": 0}
    assert_allclose(table["share"], table["reached"] / 9)


# --- messy histories -------------------------------------------------------------------------

MESSY = {
    "q1": [("A", 0), ("A", 0), ("B", 5), ("B", 5), ("D", 10), ("Won", 30)],  # 2 duplicates; B->D skips C
    "q2": [("A", 0), ("B", 10), ("C", 10), ("B", 20), ("B", 25), ("Lost", 40)],  # same time; back; repeated B
    "q3": [("C", 3), ("Lost", 50)],                          # starts mid-funnel
    "q4": [("A", 0), ("B", 10), ("C", 20), ("D", 30)],       # won, but no Won row
    "q6": [("A", 0), ("Lost", 20)],                          # a Lost row, but the deal is open
    "q7": [("A", 0), ("B", 5), ("Lost", 45)],                # history says lost, deals say won
    "q8": [("A", 0), ("Lost", 10), ("B", 20), ("Lost", 70)],  # re-opened after a loss
}
MESSY_OUTCOMES = {"q1": ("won", 30), "q2": ("lost", 40), "q3": ("lost", 50), "q4": ("won", 60),
                  "q5": ("open", None), "q6": ("open", None), "q7": ("won", 45), "q8": ("lost", 70)}
# (rows, deals) per issue, counted by hand from the comments above.
MESSY_COUNTS = {
    "duplicate entries": (2, 1), "same-time entries": (1, 1), "skipped stages": (1, 1),
    "went back a stage": (1, 1), "repeated stage": (1, 1), "starts mid-funnel": (1, 1),
    "missing closing row": (1, 1), "no stage history": (1, 1), "closing row but deal open": (1, 1),
    "history outcome differs from deals.outcome": (1, 1), "re-opened after close": (1, 1),
}


@pytest.fixture(scope="module")
def messy():
    return _build(MESSY, MESSY_OUTCOMES, extra={"team": {d: "x" if d < "q5" else "y" for d in MESSY_OUTCOMES}})


def test_history_quality_counts_are_exact(messy):
    """Every kind of mess is counted, in rows and deals, exactly as counted by hand."""
    table = history_quality(messy).set_index("issue")
    got = {issue: (int(row.rows), int(row.deals)) for issue, row in table.iterrows()}
    assert got == MESSY_COUNTS
    assert (table["handling"].str.len() > 0).all()


def test_messy_history_is_cleaned_as_documented(messy):
    """Duplicates dropped, the missing Won row added at closed_at, same-time entries in process order."""
    h = history(messy)
    assert h.quality["duplicate_rows"] == 2 and h.quality["added_closing_rows"] == 1
    ids = messy.deals["deal_id"].to_numpy()
    q2 = h.state[ids[h.deal] == "q2"]
    assert [h.names[s] for s in q2] == ["A", "B", "C", "B", "B", "Lost"]
    q4 = h.state[ids[h.deal] == "q4"]
    assert h.names[q4[-1]] == "Won"


def test_no_analysis_crashes_on_a_messy_history(messy):
    """Every analysis and figure runs on the messy history."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        results = [funnel(messy, by="team", min_deals=1), windowed_conversion(messy, 10, min_deals=1),
                   cohort_conversion(messy, min_deals=1), transition_matrix(messy, by="team", min_deals=1),
                   path_variants(messy, by="team", min_deals=1), regression_effect(messy, min_deals=1),
                   markov_chain(messy, min_deals=1), markov_check(messy, min_deals=1, mature_days=10),
                   compare_conversion(messy, "team", window_days=10, min_deals=1), stage_flows(messy)]
    assert all(r is not None for r in results)
    for draw, data in ((funnel_plots.funnel_chart, results[0]), (funnel_plots.transition_heatmap, results[3]),
                       (funnel_plots.path_variants_chart, results[4]), (funnel_plots.sankey, results[9]),
                       (funnel_plots.cohort_heatmap, results[2]), (funnel_plots.markov_vs_cohort, results[7])):
        fig, ax = plt.subplots()
        assert draw(data, ax=ax) is ax
        plt.close(fig)


# --- the Markov chain --------------------------------------------------------------------------

CHAIN_DAYS = {"d1": [("A", 0), ("B", 10), ("Won", 30)],
              "d2": [("A", 0), ("B", 10), ("Won", 30)],
              "d3": [("A", 0), ("Lost", 10)],
              "d4": [("A", 0), ("B", 10), ("A", 30), ("B", 40), ("Lost", 60)]}


def test_markov_chain_matches_a_hand_computation():
    """Visits to A: 4 to B, 1 lost -> P(A->B) = 4/5; to B: 2 won, 1 back, 1 lost. Then h_B = 1/2 + h_A / 4 and
    h_A = 4/5 h_B give h_A = 1/2, h_B = 5/8; N = [[1.25, 1], [0.3125, 1.25]]; with mean dwells 10 (A) and 20 (B)
    the expected days are 1.25 * 10 + 20 = 32.5 from A and 0.3125 * 10 + 1.25 * 20 = 28.125 from B."""
    ds = _build(CHAIN_DAYS, {d: CHAIN_OUTCOMES[d] for d in CHAIN_DAYS}, stages=("A", "B"))
    chain = markov_chain(ds, min_deals=1)
    P = chain.matrix()
    assert_allclose(P.loc["A", ["B", "Lost"]], [4 / 5, 1 / 5])
    assert_allclose(P.loc["B", ["A", "Won", "Lost"]], [1 / 4, 1 / 2, 1 / 4])
    table = chain.table.set_index("stage")
    assert_allclose(table["p_won"], [1 / 2, 5 / 8])
    assert_allclose(table["expected_visits"], [2.25, 1.5625])
    assert_allclose(table["mean_dwell_days"], [10, 20])
    assert_allclose(table["expected_days"], [32.5, 28.125])


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=20_000, seed="funnel-more-tests", truth_deals=1_000).dataset()


def test_markov_absorption_probabilities_sum_to_one(sample):
    """From every stage and segment the chain ends Won or Lost: p_won + p_lost = 1; rows of P sum to 1."""
    chain = markov_chain(sample, by="persona")
    assert_allclose(chain.table["p_won"] + chain.table["p_lost"], 1.0)
    for P in chain.matrices.values():
        assert_allclose(P.sum(axis=1), 1.0)
        assert (P.to_numpy() >= 0).all()


def test_markov_chain_agrees_with_mature_cohorts(sample):
    """From each stage, overall and per persona, the chain's win probability lies within the range a mature cohort
    (created 180+ days before as_of) allows: [won / deals, (won + open) / deals], which holds whatever its still-open
    deals do, widened by z * sqrt(SE_chain^2 + SE_cohort^2) with z for a 99% Bonferroni family over the comparisons.
    For all deals the band is narrower than the gap between adjacent stages, so the check can tell stages apart.

    The chain is memoryless; in the sample a deal's odds depend on its persona, channel and amount but not on its
    path given those, so pooling is the only source of history dependence and differences stay within sampling error."""
    check = markov_check(sample, by="persona", mature_days=180)
    closed = check["won"] + check["lost"]
    se_cohort = np.sqrt(check["cohort_win_rate"] * (1 - check["cohort_win_rate"]) / closed)
    se = np.hypot(check["markov_se"], se_cohort)
    z = norm.ppf(1 - 0.01 / (2 * len(check)))
    tolerance = z * se
    low, high = check["lower_bound"] - tolerance, check["upper_bound"] + tolerance
    assert ((check["markov_p_won"] >= low) & (check["markov_p_won"] <= high)).all(), check
    overall = (check["segment"] == OVERALL).to_numpy()
    assert (high - low)[overall].max() < np.diff(check.loc[overall, "markov_p_won"].to_numpy()).min()


# --- segment comparison --------------------------------------------------------------------------

def test_bh_adjusted_p_values_are_at_least_raw_and_sentences_need_them(sample):
    """Adjusted p >= raw p, equal to statsmodels' Benjamini-Hochberg; a sentence says lower/higher only below
    0.05, and Procurement (the lowest advance log-odds in the sample) converts Lead->Qualified lower."""
    comparison = compare_conversion(sample, "persona", window_days=60)
    table = comparison.table.dropna(subset=["p_value"])
    assert (table["p_adjusted"] >= table["p_value"] - 1e-15).all()
    assert_allclose(table["p_adjusted"], multipletests(table["p_value"], method="fdr_bh")[1])
    sentences = comparison.findings(limit=None)
    significant = table[table["p_adjusted"] < 0.05]
    assert sum(("lower than the rest" in s) or ("higher than the rest" in s) for s in sentences) == len(significant)
    assert any(s.startswith("Procurement converts Lead->Qualified") and " lower " in s for s in sentences)
    for row in table[table["p_adjusted"] >= 0.05].itertuples():
        assert not any(s.startswith(f"{row.segment} converts {row.transition} ") for s in sentences)
    assert (comparison.overall["p_adjusted"] >= comparison.overall["p_value"] - 1e-15).all()


def test_segment_tests_use_windowed_counts(sample):
    """The z-test compares the windowed counts of `windowed_conversion` for the level and for the other deals."""
    comparison = compare_conversion(sample, "persona", window_days=60).table
    windowed = windowed_conversion(sample, 60, by="persona").table.set_index(["segment", "transition"])
    row = comparison.iloc[0]
    assert row["eligible"] == windowed.loc[(row["segment"], row["transition"]), "eligible"]
    total = windowed.loc[(OVERALL, row["transition"])]
    assert row["rest_eligible"] == total["eligible"] - row["eligible"]


# --- funnel, cohorts, and the headline ---------------------------------------------------------

def test_funnel_table_joins_reach_and_both_conversions(sample):
    """The funnel's columns are the reach, eventual and windowed tables' own numbers, stage by stage."""
    table = funnel(sample, window_days=60).table.set_index("stage")
    eventual = stage_conversion(sample).table.set_index("transition")
    for stage, row in table.iterrows():
        assert row["conversion"] == eventual.loc[row["transition"], "conversion"]
        assert row["reached"] >= row["entered"]
        assert_allclose(row["conversion"] + row["drop_off"], 1.0, atol=0.02)  # what is left is still open at the end
    assert table["reached"].is_monotonic_decreasing


def test_cohort_row_equals_the_conversion_of_that_cohort_alone(sample):
    """A cohort's cell is `stage_conversion` of the deals created in that month; young cohorts are not mature."""
    cohorts = cohort_conversion(sample, mature_days=180)
    first = cohorts.table["cohort"].iloc[0]
    ids = sample.deals.loc[sample.deals["created_at"].dt.to_period("M").astype(str) == first, "deal_id"]
    alone = stage_conversion(sample.filter({"deal_id": list(ids)})).table.set_index("transition")["conversion"]
    mine = cohorts.table[cohorts.table["cohort"] == first].set_index("transition")["conversion"]
    assert_allclose(mine[alone.index], alone)
    young = cohorts.table[cohorts.table["follow_up_days"] < 180]
    assert len(young) and not young["mature"].any()


def test_history_is_cleaned_once_per_dataset(sample):
    """Repeated analyses reuse the cleaned history; a filtered dataset gets its own."""
    assert history(sample) is history(sample)
    part = sample.filter({"persona": "Procurement"})
    assert history(part) is not history(sample) and history(part).n_deals == len(part.deals)


# --- figures ------------------------------------------------------------------------------------

def test_figures_draw_what_the_tables_say(sample):
    """One bar per stage in the funnel, one band per flow between two states in the Sankey, one heatmap cell per
    (from, to) with moves, one bar stack per route; each returns its axes and leaves no figure behind."""
    from matplotlib.patches import PathPatch

    fig, ax = plt.subplots()
    result = funnel(sample)
    assert result.plot(ax=ax) is ax
    assert len(ax.patches) == len(sample.stages)
    plt.close(fig)

    flows = stage_flows(sample, max_steps=4)
    fig, ax = plt.subplots()
    funnel_plots.sankey(flows, ax=ax)
    bands = [p for p in ax.patches if isinstance(p, PathPatch)]
    assert len(bands) == (~flows["to"].isin(["(stays)", "(continues)"])).sum()
    plt.close(fig)

    matrix = transition_matrix(sample)
    fig, ax = plt.subplots()
    matrix.plot(ax=ax)
    overall = matrix.table[matrix.table["segment"] == OVERALL]
    assert sum(bool(t.get_text()) for t in ax.texts) == int((overall["moves"] > 0).sum())
    plt.close(fig)

    variants = path_variants(sample, top=5)
    fig, ax = plt.subplots()
    variants.plot(ax=ax)
    assert len(ax.patches) == 3 * len(variants.table)  # won, lost, open per route
    plt.close(fig)
    assert not plt.get_fignums()
