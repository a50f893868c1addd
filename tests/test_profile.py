"""Ideal customer profile: shares, lifts and their intervals on hand-counted accounts, the sentences,
the fit score against the drivers model, and its backtest on the sample's deals."""
import hashlib
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

import workbench
from workbench.dataset import sample
from workbench.drivers.cohort import MISSING, mature_cohort
from workbench.drivers.model import win_drivers
from workbench.profile.customers import account_traits, customer_profile, fit_score_backtest, fit_scores, lift_interval, predict_win

AS_OF = pd.Timestamp("2025-06-30")


def _rng(text):
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _wilson_by_hand(x, n, alpha=0.05):
    z = stats.norm.ppf(1 - alpha / 2)
    x, n = np.asarray(x, float), np.asarray(n, float)
    center = (x + z ** 2 / 2) / (n + z ** 2)
    half = z / (n + z ** 2) * np.sqrt(x * (n - x) / n + z ** 2 / 4)
    return center - half, center + half


def _hand_dataset(copies=1):
    """Four accounts (won customers: A1, A2), copied ``copies`` times with fresh ids.

    A1 Software, 100 employees, 5M revenue; deals won (Referral, first) and lost (Outbound).
    A2 Software, 300 employees, 50M; won (Inbound). A3 Retail, 20 employees, 0.5M; lost (Referral).
    A4 Retail, 2,000 employees, revenue missing; lost (Referral, first) and open (Inbound).
    """
    accounts, deals = [], []
    day = pd.Timestamp("2024-01-01")
    base = [("A1", "Software", 100, 5e6, [("won", "Referral", 0), ("lost", "Outbound", 10)]),
            ("A2", "Software", 300, 5e7, [("won", "Inbound", 0)]),
            ("A3", "Retail", 20, 5e5, [("lost", "Referral", 0)]),
            ("A4", "Retail", 2_000, np.nan, [("open", "Inbound", 20), ("lost", "Referral", 5)])]
    for c in range(copies):
        for acc, industry, employees, revenue, ds in base:
            aid = f"{acc}-{c}"
            accounts.append({"account_id": aid, "industry": industry, "employees": employees, "revenue": revenue,
                             "region": "EMEA" if acc == "A2" else "North America"})
            for k, (outcome, channel, offset) in enumerate(ds):
                created = day + pd.Timedelta(days=offset)
                closed = pd.NaT if outcome == "open" else created + pd.Timedelta(days=30)
                deals.append({"deal_id": f"D-{aid}-{k}", "created_at": created, "closed_at": closed,
                              "outcome": outcome, "amount": 10_000.0, "account_id": aid, "channel": channel})
    return workbench.from_frames(pd.DataFrame(deals), accounts=pd.DataFrame(accounts), as_of=AS_OF, name="hand")


@pytest.fixture(scope="module")
def sample_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample.generate(n_deals=20_000, seed="profile-tests", truth_deals=1_000).dataset()


# ------------------------------------------------------------------------------ profile


def test_account_traits_bands_and_first_channel():
    """Traits per account: left-closed size and revenue bands, missing as its own level, the first deal's channel."""
    t = account_traits(_hand_dataset()).set_index("account_id")
    assert t["won_customer"].to_dict() == {"A1-0": True, "A2-0": True, "A3-0": False, "A4-0": False}
    assert t["size"].to_dict() == {"A1-0": "50-199", "A2-0": "200-999", "A3-0": "under 50", "A4-0": "1,000-4,999"}
    assert t["revenue_band"].to_dict() == {"A1-0": "1M-10M", "A2-0": "10M-100M", "A3-0": "under 1M", "A4-0": MISSING}
    assert t["channel"].to_dict() == {"A1-0": "Referral", "A2-0": "Inbound", "A3-0": "Referral", "A4-0": "Referral"}


def test_band_edges_are_left_closed():
    """An account with exactly 200 employees and 10M revenue falls in the band starting there."""
    ds = _hand_dataset()
    accounts = ds.accounts.assign(employees=[200, 199, 50, 5_000], revenue=[1e7, 9_999_999.0, 1e9, 0.0])
    ds = workbench.from_frames(ds.deals.drop(columns="_row", errors="ignore"), accounts=accounts, as_of=AS_OF)
    t = account_traits(ds).set_index("account_id")
    assert t["size"].tolist() == ["200-999", "50-199", "50-199", "5,000+"]
    assert t["revenue_band"].tolist() == ["10M-100M", "1M-10M", "1B+", "under 1M"]


def test_shares_and_lifts_match_a_hand_count():
    """2 of 4 accounts are won customers: Software 2/2 vs 2/4 (lift 2), first channel Inbound 1/2 vs 1/4 (lift 2),
    Referral 1/2 vs 3/4 (lift 2/3), Retail 0/2 vs 2/4 (lift 0, no interval)."""
    p = customer_profile(_hand_dataset())
    t = p.table.set_index(["trait", "level"])
    assert (p.won_customers, p.accounts) == (2, 4)
    expected = {("industry", "Software"): (2, 2, 1.0, 0.5, 2.0), ("industry", "Retail"): (0, 2, 0.0, 0.5, 0.0),
                ("channel", "Inbound"): (1, 1, 0.5, 0.25, 2.0), ("channel", "Referral"): (1, 3, 0.5, 0.75, 2 / 3),
                ("region", "EMEA"): (1, 1, 0.5, 0.25, 2.0), ("revenue_band", MISSING): (0, 1, 0.0, 0.25, 0.0)}
    for key, (won, accounts, share_won, share_all, lift) in expected.items():
        row = t.loc[key]
        assert (row["won_customers"], row["accounts"]) == (won, accounts), key
        assert_allclose([row["share_won"], row["share_all"], row["lift"]], [share_won, share_all, lift], rtol=1e-12)
    assert np.isnan(t.loc[("industry", "Retail"), "lift_low"])


def test_share_intervals_are_wilson_as_statsmodels_computes_them(sample_data):
    """The share intervals equal the Wilson formula worked by hand (and statsmodels' method="wilson")."""
    from statsmodels.stats.proportion import proportion_confint

    p = customer_profile(sample_data)
    t = p.table
    for count, n, low, high in (("won_customers", p.won_customers, "share_won_low", "share_won_high"),
                                ("accounts", p.accounts, "share_all_low", "share_all_high")):
        assert_allclose(np.column_stack([t[low], t[high]]), np.column_stack(_wilson_by_hand(t[count], n)),
                        rtol=1e-10, atol=1e-14)
        assert_allclose(np.column_stack([t[low], t[high]]),
                        np.column_stack(proportion_confint(t[count], n, method="wilson")), rtol=1e-12)


def test_lift_interval_covers_the_true_lift_about_95_percent():
    """Simulated accounts (4 cells, known probabilities): the delta-method lift interval covers the true lift
    in 93-97% of 4,000 draws."""
    rng = _rng("lift-coverage")
    # cells: won with trait, won without, other with, other without
    probs = np.array([0.12, 0.18, 0.20, 0.50])
    true_lift = (probs[0] / probs[:2].sum()) / (probs[0] + probs[2])
    draws = rng.multinomial(1_000, probs, size=4_000)
    a, won, b = draws[:, 0], draws[:, 0] + draws[:, 1], draws[:, 0] + draws[:, 2]
    _, low, high = lift_interval(a, won, b, 1_000)
    coverage = np.mean((low <= true_lift) & (true_lift <= high))
    assert 0.93 <= coverage <= 0.97


def test_sentences_name_over_represented_traits_by_hand():
    """With 50 copies of the four accounts, Software (lift 2, interval above 1) gets a sentence; Referral (2/3) none."""
    p = customer_profile(_hand_dataset(copies=50), top=10)
    t = p.table.set_index(["trait", "level"])
    assert t.loc[("industry", "Software"), "lift_low"] > 1
    assert "Software accounts are 2.0x as common among won customers as among all prospects." in p.sentences
    assert not any("Referral" in s for s in p.sentences)


def test_tiny_data_claims_nothing():
    """Four accounts: every lift interval includes 1, so no sentence, and a note says so."""
    p = customer_profile(_hand_dataset())
    assert p.sentences == []
    assert any("includes 1" in n for n in p.notes)


def test_sentences_only_claim_lifts_whose_interval_excludes_one(sample_data):
    """On the sample, the sentences are exactly the top lifts with lift_low > 1, highest first."""
    p = customer_profile(sample_data, top=100)
    t = p.table
    credible = t[(t["lift_low"] > 1) & (t["level"] != MISSING)].sort_values("lift", ascending=False)
    assert len(p.sentences) == len(credible) > 0
    for sentence, row in zip(p.sentences, credible.itertuples()):
        assert str(row.level) in sentence and f"{row.lift:.1f}x" in sentence
    for row in t[~(t["lift_low"] > 1)].itertuples():
        assert not any(f" {row.level} " in f" {s} " and f"{row.lift:.1f}x" in s for s in p.sentences)


# ---------------------------------------------------------------------------- fit score


def test_predict_win_reproduces_the_drivers_fit(sample_data):
    """Rebuilt from the drivers table, the score of the cohort's deals equals statsmodels' fitted probabilities."""
    drivers = win_drivers(sample_data)
    cohort = mature_cohort(sample_data)
    score, unscored = predict_win(drivers, sample_data, cohort)
    assert unscored == {}
    assert_allclose(score.to_numpy(), np.asarray(drivers.fit.predict()), rtol=1e-10, atol=1e-12)


def test_fit_scores_rank_open_deals_and_accounts(sample_data):
    """Every open deal is scored; an account's score is the best of its open deals'."""
    scores = fit_scores(sample_data)
    open_ids = set(sample_data.deals.loc[sample_data.deals["outcome"] == "open", "deal_id"])
    assert set(scores.deals["deal_id"]) == open_ids
    assert scores.deals["fit_score"].between(0, 1).all()
    assert scores.deals["fit_score"].is_monotonic_decreasing
    best = scores.deals.groupby("account_id")["fit_score"].max()
    assert_allclose(scores.accounts.set_index("account_id")["fit_score"].reindex(best.index), best)


def test_missing_covariate_leaves_a_deal_unscored(sample_data):
    """A deal without its channel gets no score, and the count says which column."""
    drivers = win_drivers(sample_data)
    deals = sample_data.deals.head(10).copy()
    deals.loc[deals.index[:3], "channel"] = None
    score, unscored = predict_win(drivers, sample_data, deals)
    assert score.isna().sum() == 3 and unscored == {"channel": 3}


def test_backtest_top_quintile_wins_more_than_bottom(sample_data):
    """Fitted on the data cut a year earlier, high-scored open deals went on to win more often than low-scored ones."""
    b = fit_score_backtest(sample_data)
    t = b.table
    assert list(t["quintile"]) == [1, 2, 3, 4, 5]
    assert int(t["n"].sum() + t["still_open"].sum()) == b.scored
    assert t["win_rate"].iloc[-1] > t["win_rate"].iloc[0]
    assert t["ci_low"].iloc[-1] > t["ci_high"].iloc[0]
    assert b.spearman > 0 and b.spearman_p < 0.01 and b.trend_p < 0.01
    assert "top score quintile" in b.statement


def test_plots_return_their_axes(sample_data):
    """The profile and backtest plots draw on the given axes and return them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    try:
        assert customer_profile(_hand_dataset(copies=50)).plot(ax=a) is a
        assert fit_score_backtest(sample_data).plot(ax=b) is b
    finally:
        plt.close(fig)


def test_results_render_as_html(sample_data):
    """Profile, scores and backtest render as HTML with their sentences or notes."""
    p = customer_profile(sample_data)
    assert p.sentences[0] in p._repr_html_()
    assert "open deals scored" in fit_scores(sample_data)._repr_html_()
    assert "top score quintile" in fit_score_backtest(sample_data)._repr_html_()


def test_unknown_trait_is_an_error_naming_the_known_ones():
    """Asking for a trait the accounts lack raises a WorkbenchError listing the traits there are."""
    from workbench.exceptions import WorkbenchError

    with pytest.raises(WorkbenchError, match="`employees_band`.*industry"):
        customer_profile(_hand_dataset(), ["employees_band"])
