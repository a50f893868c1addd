"""Buying roles: contacts, roles and decision makers per deal counted by hand, the tests against
statsmodels and scipy, and the sample's known decision-maker effect."""
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

import workbench
from workbench.dataset import sample
from workbench.exceptions import WorkbenchError
from workbench.profile.roles import NO_STAGE, buying_roles, deal_roles

AS_OF = pd.Timestamp("2025-06-30")
STAGES = ("Lead", "Qualified", "Discovery", "Proposal", "Negotiation")


def _hand_dataset(roles_by_deal=None):
    """Six deals. Contacts (roles): D1 won: Decision maker, Influencer, Influencer; D2 lost: User;
    D3 open: Decision maker; D4 won: none; D5 lost: Decision maker, User; D6 won: Champion, (no role).
    Furthest stage: D1 Qualified, D2 Discovery (then back to Qualified), D3 Lead, D4 none, D5 Lead, D6 Negotiation."""
    outcomes = {"D1": "won", "D2": "lost", "D3": "open", "D4": "won", "D5": "lost", "D6": "won"}
    roles_by_deal = roles_by_deal or {"D1": ["Decision maker", "Influencer", "Influencer"], "D2": ["User"],
                                      "D3": ["Decision maker"], "D5": ["Decision maker", "User"],
                                      "D6": ["Champion", None]}
    paths = {"D1": ["Lead", "Qualified", "Won"], "D2": ["Lead", "Discovery", "Qualified", "Lost"], "D3": ["Lead"],
             "D5": ["Lead", "Lost"], "D6": ["Negotiation", "Won"]}
    created = pd.Timestamp("2025-01-01")
    deals = pd.DataFrame({"deal_id": list(outcomes), "created_at": created,
                          "closed_at": [pd.NaT if o == "open" else created + pd.Timedelta(days=40)
                                        for o in outcomes.values()],
                          "outcome": list(outcomes.values())})
    history = pd.DataFrame([{"deal_id": d, "stage": s, "entered_at": created + pd.Timedelta(days=10 * i)}
                            for d, path in paths.items() for i, s in enumerate(path)])
    contacts = pd.DataFrame([{"contact_id": f"C-{d}-{i}", "deal_id": d, "role": r}
                             for d, rs in roles_by_deal.items() for i, r in enumerate(rs)])
    return workbench.from_frames(deals, history, stages=STAGES, won_stages=("Won",), lost_stages=("Lost",),
                                 as_of=AS_OF, contacts=contacts, name="hand")


@pytest.fixture(scope="module")
def sample_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample.generate(n_deals=20_000, seed="roles-tests", truth_deals=1_000).dataset()


def test_deal_roles_counts_by_hand():
    """Contacts, distinct roles (a missing role is not one), decision maker and furthest stage per deal."""
    t = deal_roles(_hand_dataset()).set_index("deal_id")
    assert t["contacts"].to_dict() == {"D1": 3, "D2": 1, "D3": 1, "D4": 0, "D5": 2, "D6": 2}
    assert t["roles"].to_dict() == {"D1": 2, "D2": 1, "D3": 1, "D4": 0, "D5": 2, "D6": 1}
    assert t["decision_maker"].to_dict() == {"D1": True, "D2": False, "D3": True, "D4": False, "D5": True,
                                             "D6": False}
    assert t["stage_reached"].to_dict() == {"D1": "Qualified", "D2": "Discovery", "D3": "Lead", "D4": NO_STAGE,
                                            "D5": "Lead", "D6": "Negotiation"}


def test_win_rate_with_and_without_a_decision_maker_by_hand():
    """Closed deals: with a decision maker 1 of 2 won (D1, D5), without 2 of 3 (D2, D4, D6); D3 open is left out.
    Wilson intervals, the z-test and Newcombe's interval are statsmodels'."""
    r = buying_roles(_hand_dataset())
    t = r.decision_maker.set_index("decision_maker")
    assert (t.loc[True, "won"], t.loc[True, "n"], t.loc[False, "won"], t.loc[False, "n"]) == (1, 2, 2, 3)
    assert r.open_deals == 1
    assert_allclose([t.loc[True, "ci_low"], t.loc[True, "ci_high"]], proportion_confint(1, 2, method="wilson"))
    assert_allclose([t.loc[False, "ci_low"], t.loc[False, "ci_high"]], proportion_confint(2, 3, method="wilson"))
    assert_allclose(r.difference, 1 / 2 - 2 / 3)
    z, p = proportions_ztest([1, 2], [2, 3])
    assert_allclose([r.z, r.p_value], [z, p])
    assert_allclose([r.difference_low, r.difference_high],
                    confint_proportions_2indep(1, 2, 2, 3, method="newcomb", compare="diff"))


def test_contacts_and_roles_of_won_against_lost_by_hand():
    """Won deals have 3, 0, 2 contacts and 2, 0, 1 roles, lost ones 1, 2 and 1, 2: means, t intervals, Mann-Whitney."""
    c = buying_roles(_hand_dataset()).counts.set_index(["measure", "outcome"])
    samples = {("contacts", "won"): [3, 0, 2], ("contacts", "lost"): [1, 2],
               ("roles", "won"): [2, 0, 1], ("roles", "lost"): [1, 2]}
    for key, values in samples.items():
        row = c.loc[key]
        v = np.array(values, float)
        half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
        assert row["n"] == len(v)
        assert_allclose([row["mean"], row["ci_low"], row["ci_high"]], [v.mean(), v.mean() - half, v.mean() + half])
    for measure in ("contacts", "roles"):
        res = stats.mannwhitneyu(samples[(measure, "won")], samples[(measure, "lost")], alternative="two-sided")
        assert_allclose([c.loc[(measure, "won"), "u"], c.loc[(measure, "won"), "p_value"]], [res.statistic, res.pvalue])


def test_by_stage_counts_closed_deals_per_furthest_stage():
    """Per furthest stage and decision maker: Lead with (D5, lost), Qualified with (D1, won), Discovery without
    (D2, lost), Negotiation without (D6, won), no stage without (D4, won); in process order."""
    s = buying_roles(_hand_dataset()).by_stage
    got = [(r.stage_reached, r.decision_maker, r.n, r.won) for r in s.itertuples()]
    assert got == [(NO_STAGE, False, 1, 1), ("Lead", True, 1, 0), ("Qualified", True, 1, 1),
                   ("Discovery", False, 1, 0), ("Negotiation", False, 1, 1)]


def test_no_decision_maker_anywhere_is_an_error():
    """Without any contact of the decision role there is nothing to compare: a WorkbenchError naming the roles."""
    ds = _hand_dataset({"D1": ["User"], "D2": ["Champion"]})
    with pytest.raises(WorkbenchError, match="Decision maker"):
        buying_roles(ds)


def test_sample_deals_with_a_decision_maker_win_more_often(sample_data):
    """The generator raises the odds of a deal with a decision maker: its win rate is higher, significantly."""
    r = buying_roles(sample_data)
    t = r.decision_maker.set_index("decision_maker")
    assert t.loc[True, "win_rate"] > t.loc[False, "win_rate"]
    assert t.loc[True, "ci_low"] > t.loc[False, "ci_high"]
    assert r.difference_low > 0 and r.p_value < 1e-6
    assert r.open_deals == int(sample_data.deals["outcome"].eq("open").sum())
    assert int(t["n"].sum()) == int(sample_data.deals["outcome"].isin(["won", "lost"]).sum())
    assert "decision maker" in r.statement


def test_sample_decision_maker_helps_within_the_last_stage(sample_data):
    """Among closed deals that reached Negotiation, those with a decision maker also won more often."""
    s = buying_roles(sample_data).by_stage.set_index(["stage_reached", "decision_maker"])
    assert s.loc[("Negotiation", True), "win_rate"] > s.loc[("Negotiation", False), "win_rate"]


def test_plot_draws_both_groups_on_shared_stages():
    """The plot returns its axes with one tick per stage reached and a line per decision-maker group."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        r = buying_roles(_hand_dataset())
        assert r.plot(ax=ax) is ax
        assert [t.get_text() for t in ax.get_xticklabels()] == list(dict.fromkeys(r.by_stage["stage_reached"]))
        assert len(ax.get_legend().get_texts()) == 2
    finally:
        plt.close(fig)


def test_result_renders_as_html():
    """The result renders as HTML starting with its one-sentence statement."""
    r = buying_roles(_hand_dataset())
    assert r.statement in r._repr_html_()


def test_from_stage_counts_deals_that_got_at_least_that_far():
    """From Lead on: every closed deal with a stage (D1, D2, D5 with/without); from Negotiation on: D6 only."""
    f = buying_roles(_hand_dataset()).from_stage.set_index(["stage", "decision_maker"])
    assert (f.loc[("Lead", True), "n"], f.loc[("Lead", True), "won"]) == (2, 1)  # D1 won, D5 lost
    assert (f.loc[("Lead", False), "n"], f.loc[("Lead", False), "won"]) == (2, 1)  # D2 lost, D6 won
    assert (f.loc[("Discovery", False), "n"], f.loc[("Discovery", False), "won"]) == (2, 1)  # D2, D6
    assert ("Discovery", True) not in f.index
    assert (f.loc[("Negotiation", False), "n"], f.loc[("Negotiation", False), "won"]) == (1, 1)


def test_sample_decision_maker_helps_from_every_stage(sample_data):
    """From each stage on, closed deals with a decision maker won more often than those without (the effect acts
    on every step)."""
    f = buying_roles(sample_data).from_stage.set_index(["stage", "decision_maker"])
    for stage in STAGES:
        assert f.loc[(stage, True), "win_rate"] > f.loc[(stage, False), "win_rate"], stage
