"""Win/loss drivers (`cohort`, `winrates`, `drivers`, `firth`, `reasons`): the mature cohort, univariate
win rates, the logistic model against the sample's known effects, Firth's fit under separation,
loss-reason Paretos, and an end-to-end run on IBM's real file."""
import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.outliers_influence import variance_inflation_factor
from statsmodels.stats.proportion import proportion_confint

import workbench
from workbench.dataset import sample
from workbench.drivers.cohort import mature_cohort, other_label
from workbench.drivers.model import roc_auc, variance_inflation, win_drivers
from workbench.exceptions import SeparationWarning
from workbench.exceptions import DataQualityWarning, WorkbenchError
from workbench.stats.firth import firth_logit, penalized_loglik
from workbench.drivers.reasons import last_open_stage, reason_pareto
from workbench.dataset.spec import load_spec
from workbench.drivers.winrates import univariate_drivers, win_rates

ROOT = Path(__file__).resolve().parents[1]
IBM_YAML = ROOT / "examples" / "ibm-win-loss" / "dataset.yaml"
IBM_CSV = ROOT.parent / "shared" / "data" / "ibm-sales-win-loss" / "WA_Fn-UseC_-Sales-Win-Loss.csv"
needs_ibm = pytest.mark.skipif(not IBM_CSV.exists(), reason="../shared/data/ibm-sales-win-loss is not here")
TABLE_COLUMNS = ["feature", "level", "odds_ratio", "ci_low", "ci_high", "p_value"]


def _rng(text):
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


@pytest.fixture(scope="module")
def sample_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = sample.generate(n_deals=20_000, seed="drivers-tests", truth_deals=1_000)
        return data, data.dataset()


@pytest.fixture(scope="module")
def drivers(sample_data):
    return win_drivers(sample_data[1])


def _small_dataset(levels, seed, *, as_of="2025-06-30", amount=True, name="small"):
    """Deals created a year and a half before `as_of`, closed 30 days later; `levels` maps a channel
    to (won, lost) counts."""
    rng = _rng(seed)
    channel = [c for c, (w, l) in levels.items() for _ in range(w + l)]
    outcome = [o for w, l in levels.values() for o in ["won"] * w + ["lost"] * l]
    n = len(channel)
    created = pd.Timestamp(as_of) - pd.Timedelta(days=540)
    deals = pd.DataFrame({"deal_id": [f"D{i}" for i in range(n)], "created_at": created,
                          "closed_at": created + pd.Timedelta(days=30), "outcome": outcome,
                          "channel": channel})
    if amount:
        deals["amount"] = np.round(rng.lognormal(np.log(20_000), 0.8, n), -2)
    return workbench.from_frames(deals, as_of=as_of, name=name)


# ------------------------------------------------------------------------------- cohort


def test_mature_cohort_judges_every_deal_at_the_same_horizon(sample_data):
    """Cohort: deals created mature_days+ before as_of; won = won within that many days (late wins, open: not won)."""
    _, ds = sample_data
    deals = ds.deals
    cutoff = ds.as_of - pd.Timedelta(days=365)
    expected = deals[deals["created_at"] <= cutoff]
    expected_won = (expected["outcome"] == "won") & ((expected["closed_at"] - expected["created_at"]).dt.days <= 365)
    cohort = mature_cohort(ds, 365)
    assert list(cohort["deal_id"]) == list(expected["deal_id"])
    assert cohort["won"].tolist() == expected_won.tolist()
    late = (expected["outcome"] == "won") & ~expected_won
    assert late.any() or expected["outcome"].eq("open").any()  # the rule has something to decide
    with pytest.raises(WorkbenchError, match="still open"):
        mature_cohort(ds, None)


def test_mature_cohort_too_young_says_what_to_do(sample_data):
    """A horizon longer than the data's history raises with the fixes, not an empty fit."""
    _, ds = sample_data
    with pytest.raises(WorkbenchError, match="lower `mature_days`"):
        mature_cohort(ds, 5_000)


# --------------------------------------------------------------------------- univariate


def test_win_rates_agree_with_a_direct_count_and_statsmodels_wilson(sample_data):
    """Per persona, n, wins, Wilson CIs, lift and the chi-square test equal a direct count and statsmodels/scipy."""
    _, ds = sample_data
    result = win_rates(ds, "persona")
    cohort = mature_cohort(ds, 365)
    direct = cohort.groupby("persona")["won"].agg(["size", "sum"])
    table = result.table.set_index("level")
    assert_allclose(table.loc[direct.index, "n"], direct["size"])
    assert_allclose(table.loc[direct.index, "won"], direct["sum"])
    low, high = proportion_confint(direct["sum"], direct["size"], alpha=0.05, method="wilson")
    assert_allclose(table.loc[direct.index, "ci_low"], low, rtol=1e-12)
    assert_allclose(table.loc[direct.index, "ci_high"], high, rtol=1e-12)
    assert_allclose(table["lift"], table["win_rate"] / cohort["won"].mean(), rtol=1e-12)
    crosstab = pd.crosstab(cohort["persona"], cohort["won"])
    chi2 = stats.chi2_contingency(crosstab, correction=False)
    assert result.test == "chi-square"
    assert_allclose([result.statistic, result.p_value], [chi2.statistic, chi2.pvalue], rtol=1e-10)


def test_rare_levels_fold_into_other_with_the_threshold_in_the_label(sample_data):
    """Levels under min_level deals become one `other (<k deals)` row, and a note lists them."""
    _, ds = sample_data
    sizes = mature_cohort(ds, 365)["persona"].value_counts()
    threshold = int(sizes.median()) + 1  # folds the smaller half
    rare = sorted(sizes[sizes < threshold].index)
    result = win_rates(ds, "persona", min_level=threshold)
    table = result.table.set_index("level")
    assert set(table.index) == set(sizes[sizes >= threshold].index) | {other_label(threshold)}
    assert table.loc[other_label(threshold), "n"] == sizes[rare].sum()
    assert str(threshold) in other_label(threshold)
    assert any(all(level in note for level in rare) for note in result.notes)


def test_univariate_drivers_correct_for_testing_many_attributes(sample_data):
    """One test per default attribute, BH-adjusted as statsmodels does, leaky reasons held out, sorted."""
    _, ds = sample_data
    result = univariate_drivers(ds)
    table = result.table
    assert {"loss_reason", "win_reason"} <= set(result.held_out)
    assert not {"loss_reason", "win_reason"} & set(table["column"])
    assert {"persona", "channel", "amount"} <= set(table["column"])
    assert_allclose(table["p_adjusted"], multipletests(table["p_value"], method="fdr_bh")[1], rtol=1e-12)
    assert table["p_adjusted"].is_monotonic_increasing
    assert result.rates["amount"].table["level"].str.startswith("Q").all()  # many values: quintiles
    # region and industry have no effect on the sample's deals, persona and channel do
    adjusted = table.set_index("column")["p_adjusted"]
    assert adjusted["persona"] < 0.05 and adjusted["channel"] < 0.05


def test_fisher_exact_for_a_sparse_two_by_two():
    """Two levels with an expected count under 5 use Fisher's exact test, with scipy's p-value."""
    ds = _small_dataset({"Inbound": (3, 57), "Referral": (6, 34)}, "fisher", amount=False)
    result = win_rates(ds, "channel", min_level=10)
    assert result.test == "fisher"
    expected = stats.fisher_exact([[3, 57], [6, 34]])
    assert_allclose(result.p_value, expected.pvalue, rtol=1e-10)


# ------------------------------------------------------------------------- multivariate


@pytest.mark.parametrize("variable", ["persona", "channel"])
def test_drivers_rank_persona_and_channel_in_the_true_order_with_true_signs(drivers, variable):
    """Estimated effects order the levels as sample.COEFFICIENTS do, each with its true sign against the reference."""
    truth = sample.COEFFICIENTS.query("variable == @variable").set_index("level")["coefficient"]
    reference = drivers.reference_levels[variable]
    truth = truth - truth[reference]
    rows = drivers.table[drivers.table["feature"] == variable].set_index("level")
    estimate = rows["coef"].reindex(truth.index).fillna(0.0)  # the reference is 0 by definition
    assert rows.index.size == truth.size - 1
    assert list(estimate.sort_values().index) == list(truth.sort_values().index), estimate
    assert (np.sign(estimate.drop(reference)) == np.sign(truth.drop(reference))).all(), estimate


def test_larger_amounts_win_less_per_doubling(drivers):
    """The generator lowers the odds with log amount: OR per doubling and its upper CI limit are below 1."""
    assert sample.LOG_AMOUNT_EFFECT < 0
    row = drivers.table.query("feature == 'amount' and level == 'per doubling'").iloc[0]
    assert row["odds_ratio"] < 1 and row["ci_high"] < 1


def test_drivers_table_is_tidy_ranked_and_consistent(drivers, sample_data):
    """summary.json columns first, ranked by p, Wald OR/CI from coef and se, most common references, reasons out."""
    table = drivers.table
    assert list(table.columns[:6]) == TABLE_COLUMNS
    assert {"coef", "se"} <= set(table.columns)
    assert table["p_value"].is_monotonic_increasing
    z = stats.norm.ppf(0.975)
    assert_allclose(table["odds_ratio"], np.exp(table["coef"]), rtol=1e-12)
    assert_allclose(table["ci_low"], np.exp(table["coef"] - z * table["se"]), rtol=1e-12)
    assert_allclose(table["ci_high"], np.exp(table["coef"] + z * table["se"]), rtol=1e-12)
    assert_allclose(table["p_value"], 2 * stats.norm.sf(np.abs(table["coef"] / table["se"])), rtol=1e-9)
    assert drivers.method == "maximum likelihood"
    assert set(drivers.held_out) == {"loss_reason", "win_reason", "owner", "account_id"}
    assert all("`reason`" in drivers.held_out[c] for c in ("loss_reason", "win_reason"))
    assert "sales rep" in drivers.held_out["owner"] and "identifier" in drivers.held_out["account_id"]
    cohort = mature_cohort(sample_data[1], 365)
    for feature, reference in drivers.reference_levels.items():
        assert reference == cohort[feature].value_counts().index[0]
    assert drivers.n == len(cohort) and drivers.won == int(cohort["won"].sum())
    units = set(zip(table["feature"], table["level"]))
    assert {("amount", "per doubling"), ("revenue", "per doubling"), ("employees", "per 100")} <= units


def test_drivers_equal_a_statsmodels_logit_on_a_hand_built_design(sample_data):
    """Coefficients and SEs equal sm.Logit on a hand-built design, so every effect carries the right label."""
    _, ds = sample_data
    result = win_drivers(ds, ["persona", "channel", "amount"])
    cohort = mature_cohort(ds, 365)
    parts = [pd.Series(1.0, index=cohort.index, name="const")]
    for column in ("persona", "channel"):
        reference = cohort[column].value_counts().index[0]
        dummies = pd.get_dummies(cohort[column], dtype=float).drop(columns=reference)
        parts += [dummies[c].rename((column, c)) for c in dummies]
    parts.append(np.log2(cohort["amount"]).rename(("amount", "per doubling")))
    X = pd.concat(parts, axis=1)
    fit = sm.Logit(cohort["won"].astype(float), X).fit(disp=0)
    table = result.table.set_index(["feature", "level"])
    keys = list(X.columns[1:])
    assert_allclose(table.loc[keys, "coef"], fit.params.iloc[1:], rtol=1e-6)
    assert_allclose(table.loc[keys, "se"], fit.bse.iloc[1:], rtol=1e-6)


def test_predict_scores_any_deals_as_the_fit_does(drivers, sample_data):
    """predict() on the cohort equals the fit's own probabilities; by default it scores every deal, open ones too."""
    _, ds = sample_data
    cohort = mature_cohort(ds, 365)
    assert_allclose(drivers.predict(ds, cohort), np.asarray(drivers.fit.predict()), rtol=1e-10, atol=1e-12)
    everyone = drivers.predict(ds)
    assert everyone.index.equals(ds.deals.index) and everyone.between(0, 1).all()
    assert drivers.unscored(ds) == {}


def test_nested_explicit_covariates_raise_naming_the_aliased_levels(sample_data):
    """Owners sit within regions in the sample: asking for both raises a collinearity error naming owners."""
    _, ds = sample_data
    assert (ds.deals.groupby("owner")["region"].nunique() == 1).all()
    with pytest.raises(WorkbenchError, match="collinear: `owner`"):
        win_drivers(ds, ["region", "owner"])


def test_missing_covariates_are_dropped_explicitly_and_counted(sample_data):
    """Deals missing a covariate leave the model, counted per column and in total, and a note says so."""
    _, ds = sample_data
    cohort_ids = mature_cohort(ds, 365)["deal_id"]
    rng = _rng("missing covariates")
    no_amount = set(rng.choice(cohort_ids, 40, replace=False))
    no_persona = set(rng.choice(cohort_ids, 25, replace=False))
    deals = ds.deals.copy()
    deals.loc[deals["deal_id"].isin(no_amount), "amount"] = np.nan
    deals.loc[deals["deal_id"].isin(no_persona), "persona"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        holed = workbench.from_frames(deals, ds.stage_history, stages=ds.stages, won_stages=ds.won_stages,
                                      lost_stages=ds.lost_stages, as_of=ds.as_of)
    result = win_drivers(holed, ["persona", "channel", "amount"])
    assert result.dropped == {"persona": len(no_persona), "amount": len(no_amount)}
    assert result.excluded == len(no_amount | no_persona)
    assert result.n == len(cohort_ids) - len(no_amount | no_persona)
    assert any(f"{result.excluded} deals dropped" in note for note in result.notes)


def test_separation_refits_with_firth_finite_odds_ratios_and_a_warning():
    """A channel that only wins gets finite Firth odds ratios (Haldane's if saturated), a SeparationWarning, a note."""
    counts = {"Inbound": (60, 140), "Outbound": (30, 120), "Referral": (40, 0)}
    ds = _small_dataset(counts, "separation")
    with pytest.warns(SeparationWarning, match="Referral") as caught:
        result = win_drivers(ds, ["channel", "amount"])
    assert caught[0].filename == __file__
    assert result.method == "Firth penalized likelihood"
    assert np.isfinite(result.table[["odds_ratio", "ci_low", "ci_high", "coef", "se"]].to_numpy()).all()
    assert any("Separation" in note and "Firth" in note for note in result.notes)
    assert 0.5 < result.cv_auc <= 1
    with pytest.warns(SeparationWarning):
        saturated = win_drivers(ds, ["channel"]).table.set_index("level")["odds_ratio"]
    odds = {c: (w + 0.5) / (l + 0.5) for c, (w, l) in counts.items()}
    assert_allclose(saturated[["Outbound", "Referral"]], [odds["Outbound"] / odds["Inbound"],
                                                          odds["Referral"] / odds["Inbound"]], rtol=1e-6)


@pytest.mark.parametrize("counts, never", [
    ({"Inbound": (60, 140), "Outbound": (30, 120), "Partner": (0, 40)}, "Partner"),
    ({"Partner": (0, 200), "Inbound": (60, 100), "Outbound": (30, 90)}, "Partner"),
    ({"Inbound": (60, 140), "Outbound": (30, 120), "Webinar": (0, 12), "Event": (0, 10)}, other_label(30)),
], ids=["level", "reference-level", "folded-level"])
def test_a_level_without_wins_never_gives_an_infinite_or_zero_odds_ratio(counts, never):
    """A level (or the reference, or rare levels folded into other) that never won: Firth, a warning naming it, and
    every odds ratio and bound finite and positive, never [0, inf]; the level's own ratio is well below 1 (or, for
    the reference, every other level's well above)."""
    with pytest.warns(SeparationWarning, match=re.escape(repr(never))):
        result = win_drivers(_small_dataset(counts, "zero-win"), ["channel", "amount"])
    assert result.method == "Firth penalized likelihood"
    values = result.table[["odds_ratio", "ci_low", "ci_high", "coef", "se", "p_value"]].to_numpy(float)
    assert np.isfinite(values).all() and (result.table[["odds_ratio", "ci_low", "ci_high"]] > 0).all().all()
    channel = result.table[result.table["feature"] == "channel"].set_index("level")
    if never == result.reference_levels["channel"]:
        assert (channel["ci_low"] > 1).all()
    else:
        assert channel.loc[never, "odds_ratio"] < 0.1 and channel.loc[never, "ci_high"] < 1


def test_firth_adds_a_half_to_every_cell_of_a_saturated_one_way_layout():
    """Hand check: saturated one-way Firth = log odds with 1/2 added to each cell, SE sqrt(1/(n p (1-p)))."""
    wins, losses = np.array([10, 12, 3]), np.array([30, 0, 20])  # level 1 separates
    group = np.repeat([0, 1, 2, 0, 1, 2], np.r_[wins, losses])
    y = np.repeat([1, 1, 1, 0, 0, 0], np.r_[wins, losses])
    X = np.column_stack([np.ones(len(y)), group == 1, group == 2]).astype(float)
    fit = firth_logit(X, y)
    p = (wins + 0.5) / (wins + losses + 1)
    logit = np.log(p / (1 - p))
    assert fit.converged
    assert_allclose(fit.params, [logit[0], logit[1] - logit[0], logit[2] - logit[0]], rtol=1e-8)
    var = 1 / ((wins + losses) * p * (1 - p))
    assert_allclose(fit.bse, np.sqrt([var[0], var[0] + var[1], var[0] + var[2]]), rtol=1e-8)


def test_firth_maximises_the_penalized_likelihood_where_the_mle_diverges():
    """Under complete separation Firth's estimate is finite and a stationary maximum of the penalized likelihood."""
    x = np.linspace(-2, 2, 41)
    y = (x > 0).astype(float)
    X = np.column_stack([np.ones_like(x), x])
    fit = firth_logit(X, y)
    assert fit.converged and np.isfinite(fit.params).all() and np.isfinite(fit.bse).all()
    best = penalized_loglik(fit.params, X, y)
    assert_allclose(best, fit.loglik, rtol=1e-12)
    for j in range(2):
        for step in (-1e-3, 1e-3):
            moved = fit.params.copy()
            moved[j] += step
            assert penalized_loglik(moved, X, y) < best
    gradient = [(penalized_loglik(fit.params + e, X, y) - penalized_loglik(fit.params - e, X, y)) / 2e-6
                for e in np.eye(2) * 1e-6]
    assert_allclose(gradient, 0, atol=1e-5)


def test_variance_inflation_equals_statsmodels_and_flags_collinear_columns(sample_data):
    """The fast VIF equals statsmodels' column by column; amount's VIF rises above 1 beside the correlated product."""
    rng = _rng("vif")
    base = rng.normal(size=(300, 2))
    X = np.column_stack([np.ones(300), base, base[:, 0] + 0.5 * rng.normal(size=300)])
    assert_allclose(variance_inflation(X), [variance_inflation_factor(X, j) for j in (1, 2, 3)], rtol=1e-8)
    _, ds = sample_data
    result = win_drivers(ds, ["product", "amount"])
    vif = result.vif.set_index(["feature", "level"])["vif"]
    assert (vif > 1).all()
    alone = win_drivers(ds, ["amount"]).vif["vif"].iloc[0]
    assert_allclose(alone, 1.0)
    assert vif[("amount", "per doubling")] > alone


def test_roc_auc_is_the_mann_whitney_statistic():
    """AUC equals U / (n1 n0) from scipy's Mann-Whitney test, ties counted half."""
    rng = _rng("auc")
    y = rng.random(500) < 0.3
    score = np.round(rng.normal(size=500) + y, 1)  # rounding makes ties
    u = stats.mannwhitneyu(score[y], score[~y]).statistic
    assert_allclose(roc_auc(y, score), u / (y.sum() * (~y).sum()), rtol=1e-12)


def test_cross_validated_auc_beats_chance_on_the_sample_and_not_on_shuffled_outcomes(drivers, sample_data):
    """CV AUC is over 0.5 + 4 null SEs on the sample, within 4 null SEs of 0.5 when shuffled; folds follow the seed."""
    n1, n0 = drivers.won, drivers.n - drivers.won
    null_se = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    assert drivers.cv_auc > 0.5 + 4 * null_se
    assert len(drivers.cv_folds) == 5
    _, ds = sample_data
    deals = ds.deals.copy()
    order = _rng("shuffle").permutation(len(deals))
    columns = ["persona", "channel", "region", "industry", "product", "amount"]
    deals[columns] = deals[columns].to_numpy()[order]
    shuffled = workbench.from_frames(deals, as_of=ds.as_of)
    result = win_drivers(shuffled, columns)
    assert abs(result.cv_auc - 0.5) < 4 * null_se, result.cv_auc
    assert win_drivers(shuffled, columns).cv_folds == result.cv_folds
    assert win_drivers(shuffled, columns, seed="another seed").cv_folds != result.cv_folds


def test_calibration_deciles_cover_every_deal_with_wilson_intervals(drivers):
    """Ten out-of-fold deciles hold every deal; predictions rise; statsmodels' Wilson CIs mostly cover them."""
    cal = drivers.calibration
    assert len(cal) == 10 and cal["n"].sum() == drivers.n
    assert cal["mean_predicted"].is_monotonic_increasing
    won = np.round(cal["observed_rate"] * cal["n"]).astype(int)
    low, high = proportion_confint(won, cal["n"], method="wilson")
    assert_allclose(cal["ci_low"], low, rtol=1e-9)
    assert_allclose(cal["ci_high"], high, rtol=1e-9)
    inside = (cal["mean_predicted"] >= cal["ci_low"]) & (cal["mean_predicted"] <= cal["ci_high"])
    assert inside.sum() >= 8  # 95% intervals: 3+ misses of 10 has probability 1.2% if calibrated


# ------------------------------------------------------------------------------ reasons


def test_loss_reason_pareto_counts_shares_and_cumulative_shares(sample_data):
    """Counts equal a direct count of lost deals, most frequent first, shares sum to 1; win_reason reads won deals."""
    _, ds = sample_data
    result = reason_pareto(ds)
    lost = ds.deals[ds.deals["outcome"] == "lost"]
    direct = lost["loss_reason"].fillna("(missing)").value_counts()
    table = result.table.set_index("reason")
    assert_allclose(table.loc[direct.index, "count"], direct)
    assert table["count"].is_monotonic_decreasing
    assert_allclose(table["share"].sum(), 1.0)
    assert_allclose(table["cumulative_share"].iloc[-1], 1.0)
    assert result.outcome == "lost"
    assert reason_pareto(ds, "win_reason").outcome == "won"


def test_loss_reasons_by_stage_follow_the_generator(sample_data):
    """By the stage before the Lost entry, each stage's reason shares are within 4 SE of sample.LOSS_BY_STAGE."""
    _, ds = sample_data
    history = ds.stage_history
    before_lost = history.groupby("deal_id")["stage"].shift(1)[history["stage"] == "Lost"]
    stage_of = pd.Series(before_lost.to_numpy(), index=history.loc[before_lost.index, "deal_id"].to_numpy())
    assert (last_open_stage(ds).reindex(stage_of.index) == stage_of).all()
    table = reason_pareto(ds, by="stage").table
    for i, stage in enumerate(sample.STAGES):
        part = table[table["stage"] == stage].set_index("reason")
        n = (stage_of == stage).sum()
        assert part["count"].sum() == part["deals"].iloc[0] == n
        truth = pd.Series(sample.LOSS_BY_STAGE[i], index=sample.LOSS_REASONS)
        share = part["share"].reindex(truth.index).fillna(0.0)
        assert (abs(share - truth) < 4 * np.sqrt(truth * (1 - truth) / n)).all(), (stage, share, truth)
        assert_allclose(part["cumulative_share"].iloc[-1], 1.0)


def test_loss_reasons_by_segment(sample_data):
    """Per persona, the Pareto counts equal a crosstab of lost deals."""
    _, ds = sample_data
    table = reason_pareto(ds, by="persona").table
    lost = ds.deals[ds.deals["outcome"] == "lost"]
    direct = pd.crosstab(lost["persona"], lost["loss_reason"]).stack()
    direct = direct[direct > 0]
    got = table.set_index(["persona", "reason"])["count"]
    assert_allclose(got.loc[direct.index], direct)
    assert len(got) == len(direct)


# ---------------------------------------------------------------------------------- IBM


@pytest.fixture(scope="module")
def ibm():
    """IBM's file through the example's dataset.yaml: one creation day, closed after the day count."""
    if not IBM_CSV.exists():
        pytest.skip("../shared/data/ibm-sales-win-loss is not here")
    with pytest.warns(DataQualityWarning):
        return workbench.load_dataset(IBM_YAML)


@needs_ibm
def test_ibm_dates_come_from_the_day_counts(ibm):
    """Every deal starts on the constant day and closes `Total Days Identified Through Closing` days later."""
    raw = pd.read_csv(IBM_CSV, keep_default_na=False).drop_duplicates()
    days = raw.groupby("Opportunity Number")["Total Days Identified Through Closing"].first()
    deals = ibm.deals.set_index("deal_id")
    assert (deals["created_at"] == pd.Timestamp("2000-01-01")).all()
    got = (deals["closed_at"] - deals["created_at"]).dt.days
    assert (got == days.rename(index=str).reindex(got.index)).all()


@needs_ibm
def test_ibm_duplicates_are_reported_as_the_validator_defines_them(ibm):
    """Exact repeats keep one copy, differing rows sharing an Opportunity Number all go, and "None" stays a level."""
    raw = pd.read_csv(IBM_CSV, keep_default_na=False)
    exact = raw.duplicated()
    clash = raw[~exact]["Opportunity Number"].duplicated(keep=False)
    excluded = {p.check: p.excluded for p in ibm.report.warnings}
    assert excluded == {"duplicate_rows": int(exact.sum()), "duplicate_deal_id": int(clash.sum())}
    kept = raw[~exact][~clash]
    assert len(ibm.deals) == len(kept) and ibm.counts()["open"] == 0
    assert (ibm.deals["competitor_type"] == "None").sum() == (kept["Competitor Type"] == "None").sum() > 0


@needs_ibm
def test_ibm_drivers_end_to_end(ibm):
    """Leaky, nested and binned columns are held out with reasons; odds ratios are finite; AUC beats chance."""
    result = win_drivers(ibm, mature_days=None)
    spec, _ = load_spec(IBM_YAML)
    during_sale = [name for name, source in spec.deals.columns.items()  # per SOURCE.md: days, stages, ratios
                   if any(word in source for word in ("Days", "Stage", "Ratio"))]
    assert during_sale and {c for c, why in result.held_out.items() if "leak the outcome" in why} == set(during_sale)
    assert "determined by `product`" in result.held_out["product_group"]
    assert "binning of `amount`" in result.held_out["deal_size_category"]
    assert not set(result.held_out) & set(result.table["feature"])
    assert np.isfinite(result.table[TABLE_COLUMNS[2:]].to_numpy()).all()
    assert result.reference_levels["route_to_market"] == "Field Sales"
    assert "None" in set(result.table.query("feature == 'competitor_type'")["level"])
    n1, n0 = result.won, result.n - result.won
    assert result.cv_auc > 0.5 + 4 * np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    assert result.n == len(ibm.deals) and result.excluded == 0


# ------------------------------------------------------------------------ dateless data


@pytest.fixture(scope="module")
def dateless(tmp_path_factory):
    """A drivers-only export (no dates): 900 deals, about a tenth still open, win chance set by channel."""
    rng = _rng("dateless drivers")
    n = 900
    channel = rng.choice(["Inbound", "Partner", "Outbound"], n, p=[0.5, 0.3, 0.2])
    chance = pd.Series(channel).map({"Inbound": 0.45, "Partner": 0.6, "Outbound": 0.25}).to_numpy()
    result = np.where(rng.random(n) < 0.1, "Pending", np.where(rng.random(n) < chance, "Won", "Lost"))
    raw = pd.DataFrame({"Id": [f"S{i:04d}" for i in range(n)], "Result": result, "Channel": channel,
                        "Industry": rng.choice(["Retail", "Banking", "Health"], n),
                        "Value": np.round(rng.lognormal(np.log(20_000), 0.8, n), -2)})
    folder = tmp_path_factory.mktemp("dateless")
    raw.to_csv(folder / "survey.csv", index=False)
    (folder / "dataset.yaml").write_text(
        "name: survey\ndeals:\n  source: survey.csv\n"
        "  columns: {deal_id: Id, outcome: Result, amount: Value, channel: Channel, industry: Industry}\n"
        "  values: {outcome: {Won: won, Lost: lost, Pending: open}}\n")
    return raw, workbench.load_dataset(folder / "dataset.yaml")


def test_dateless_cohort_is_every_closed_deal_and_drivers_match_a_direct_count(dateless):
    """Without dates the cohort is every won or lost deal (open ones left out and counted in the note), and
    win rates, `univariate_drivers` and `win_drivers` on it equal a direct count of the export."""
    raw, ds = dateless
    assert not ds.has_dates and pd.isna(ds.as_of)
    closed = raw[raw["Result"] != "Pending"]
    won, still_open = int((closed["Result"] == "Won").sum()), int((raw["Result"] == "Pending").sum())
    note = (f"The data have no dates, so the cohort is every closed deal ({len(closed)}); the {still_open} open "
            f"deals are left out because their outcome is not known yet: {won} ({won / len(closed):.0%}) won.")
    for mature_days in (365, None):  # no horizon to judge by: both read final outcomes
        cohort = mature_cohort(ds, mature_days)
        assert list(cohort["deal_id"]) == list(closed["Id"])
        assert cohort["won"].tolist() == (closed["Result"] == "Won").tolist()

    direct = closed.groupby("Channel")["Result"].agg(n="size", won=lambda r: int((r == "Won").sum()))
    table = univariate_drivers(ds).rates["channel"].table.set_index("level")
    assert_allclose(table.loc[direct.index, ["n", "won"]], direct[["n", "won"]])
    assert univariate_drivers(ds).notes[0] == note and win_rates(ds, "channel").n == len(closed)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = win_drivers(ds)
        alone = win_drivers(ds, ["channel"])
    assert full.notes[0] == note and (full.n, full.won) == (len(closed), won) and full.excluded == 0
    assert {"channel", "industry", "amount"} == set(full.table["feature"])
    # One categorical covariate: each odds ratio is the level's odds of winning over the reference level's.
    odds = direct["won"] / (direct["n"] - direct["won"])
    reference = alone.reference_levels["channel"]
    got = alone.table.set_index("level")["odds_ratio"]
    assert len(got) == 2
    assert_allclose(got, (odds / odds[reference]).drop(reference).loc[got.index], rtol=1e-6)


def test_dateless_cohort_with_one_outcome_says_so(dateless):
    """A dateless segment whose closed deals all won cannot be compared: the error says there are no dates."""
    _, ds = dateless
    only_won = ds.filter({"outcome": ["won", "open"]})
    with pytest.raises(WorkbenchError, match=r"no dates, so the cohort is every closed deal, and it has only won"):
        mature_cohort(only_won)


# ------------------------------------------------------------------------- leakage (#14)

from workbench.drivers.leakage import leaky_word, missing_by_openness  # noqa: E402


@pytest.mark.parametrize("name, word", [
    ("country", None), ("account_revenue", None), ("AccountRevenue", None), ("Discounted", None),
    ("stage_change_count", "stage"), ("Elapsed Days In Sales Stage", "stage"), ("StageChangeCount", "stage"),
    ("Loss Reasons", "reason"), ("days_to_close", "days"), ("won_date", "won"), ("ratio_days_validated", "days"),
    ("Client Size By Employee Count", None), ("EmployeeCount", None), ("activity_count", "count"),
    ("Touch Count", "count"), ("employee_stage", "stage"),
])
def test_leaky_names_are_matched_word_by_word(name, word):
    """A leaky word must be one of the name's words (plural allowed): `country` holds no `count`; a count of
    the company's employees is a firmographic, not a count of the deal's activity."""
    assert leaky_word(name) == word


def _leaky_export(tmp_path, seed="leakage"):
    """Deals over two years: `amount` 0 on every lost deal, `status_text` a copy of the outcome, `country`
    and `account_revenue` honest attributes, an owner; `sector` comes from a joined file that holds only
    closed deals, so open deals lack it."""
    rng = _rng(seed)
    n = 600
    as_of = pd.Timestamp("2025-06-30")
    created = as_of - pd.to_timedelta(rng.integers(100, 800, n), unit="D")
    country = rng.choice(["DE", "FR", "US"], n)
    sector = rng.choice(["Retail", "Energy", "Health"], n)
    p_win = np.where(country == "US", 0.5, 0.3)
    u = rng.random(n)
    outcome = np.where(u < 0.15, "open", np.where(rng.random(n) < p_win, "won", "lost"))
    closed = created + pd.to_timedelta(rng.integers(10, 60, n), unit="D")
    deals = pd.DataFrame({
        "deal_id": [f"D{i:03d}" for i in range(n)], "created_at": created.strftime("%Y-%m-%d"),
        "closed_at": np.where(outcome == "open", "", closed.strftime("%Y-%m-%d")), "outcome": outcome,
        "amount": np.where(outcome == "lost", 0, rng.integers(1, 50, n) * 1000),
        "owner": rng.choice(["Ana", "Ben", "Cleo"], n), "country": country,
        "account_revenue": rng.choice(["small", "mid", "large"], n),
        "status_text": pd.Series(outcome).map({"won": "Closed Won", "lost": "Closed Lost", "open": "Open"}),
        "objection": np.where(outcome == "lost", rng.choice(["price", "timing"], n), "")})
    deals.to_csv(tmp_path / "deals.csv", index=False)
    pd.DataFrame({"id": deals["deal_id"], "sector": sector})[outcome != "open"].to_csv(tmp_path / "sectors.csv",
                                                                                     index=False)
    (tmp_path / "dataset.yaml").write_text(
        'name: leaky\nas_of: "2025-06-30"\ndeals:\n  source: deals.csv\n'
        "  join:\n    - source: sectors.csv\n      on: {deal_id: id}\n      columns: {sector: sector}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return workbench.load_dataset(tmp_path / "dataset.yaml")


def test_outcome_decided_columns_and_the_owner_are_held_out_with_reasons(tmp_path):
    """An amount 0 on every lost deal and a copy of the outcome are held out by content; `country` and
    `account_revenue` are used; the owner is listed as held out, never silently dropped."""
    ds = _leaky_export(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = win_drivers(ds, mature_days=90, min_level=10)
    for column in ("amount", "status_text", "objection"):
        assert "decided by the outcome" in model.held_out[column]
    assert "sales rep" in model.held_out["owner"]
    assert {"country", "account_revenue"} <= set(model.covariates)
    assert "amount" not in model.covariates and model.cv_auc < 0.9
    assert any(n.startswith("`owner` held out") for n in model.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        asked = win_drivers(ds, ["country", "amount"], mature_days=90, min_level=10)
    assert any(n.startswith("`amount` is used as asked, though it is decided by the outcome") for n in asked.notes)
    uni = univariate_drivers(ds, mature_days=90, min_level=10)
    assert {"amount", "status_text", "owner"} <= set(uni.held_out) and "country" in set(uni.table["column"])


def test_gaps_of_open_deals_are_no_missing_level(tmp_path):
    """`sector`, empty only on open deals (the joined file holds closed ones), gets no `(missing)` level:
    those deals are left out of its comparison and counted in a note."""
    ds = _leaky_export(tmp_path)
    cohort = mature_cohort(ds, 90)
    missing = int(cohort["sector"].isna().sum())
    assert missing and missing_by_openness(cohort["sector"], cohort) is not None
    assert missing_by_openness(cohort["country"], cohort) is None
    rates = win_rates(ds, "sector", mature_days=90, min_level=10)
    assert "(missing)" not in set(rates.table["level"]) and rates.n == len(cohort) - missing
    assert f"those {missing} deals are left out" in rates.notes[0]
    honest = cohort.assign(gappy=cohort["country"].where(cohort.index % 7 != 0))
    assert missing_by_openness(honest["gappy"], honest) is None
