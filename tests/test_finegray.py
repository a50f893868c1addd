"""Fine-Gray regression (workbench.stats.finegray) against R's cmprsk::crr and against known truth."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from finegray_truth import simulate
from workbench.stats.finegray import censoring_weights, fit_fine_gray

GOLDEN = Path(__file__).parent / "golden"
COVARIATES = ["x", "referral", "size"]


@pytest.fixture(scope="module")
def golden_fit():
    data = pd.read_csv(GOLDEN / "competing_data.csv")
    return fit_fine_gray(data["time"], data["status"], data[COVARIATES].to_numpy(), COVARIATES)


def test_coefficients_and_robust_errors_match_crr(golden_fit):
    """On R's tied data (make_golden.R), coefficients, robust and naive SEs and log pseudo-likelihoods equal crr's."""
    crr = pd.read_csv(GOLDEN / "crr.csv")
    assert golden_fit.converged and golden_fit.names == tuple(crr["covariate"])
    assert_allclose(golden_fit.params, crr["coef"], rtol=1e-6)
    assert_allclose(golden_fit.bse, crr["se"], rtol=1e-6)
    assert_allclose(np.sqrt(np.diag(np.linalg.inv(golden_fit.information))), crr["naive_se"], rtol=1e-6)
    assert_allclose([golden_fit.loglik, golden_fit.loglik_null], crr[["loglik", "loglik_null"]].iloc[0], rtol=1e-10)


def test_summary_is_the_usual_table(golden_fit):
    """summary() holds coef, exp(coef), se, z, p and the interval of exp(coef), consistent with one another."""
    table = golden_fit.summary()
    assert list(table.columns) == ["coef", "exp(coef)", "se", "z", "p", "ci_low", "ci_high"]
    assert_allclose(table["exp(coef)"], np.exp(table["coef"]))
    assert_allclose(np.log(table["ci_high"] / table["ci_low"]), 2 * 1.959963984540054 * table["se"], rtol=1e-9)
    assert ((table["ci_low"] < table["exp(coef)"]) & (table["exp(coef)"] < table["ci_high"])).all()


def test_predicted_incidence_matches_predict_crr(golden_fit):
    """Predicted cumulative incidence for two profiles, and the baseline jumps, equal predict.crr's."""
    golden = pd.read_csv(GOLDEN / "crr_predict.csv")
    predicted = golden_fit.predict([[0, 0, 0], [1, 1, 0]])
    assert_allclose(predicted.index, golden["time"])
    assert_allclose(predicted.to_numpy(), golden[["cif_profile1", "cif_profile2"]], rtol=1e-6, atol=1e-12)
    assert_allclose(golden_fit.baseline["jump"], golden["jump"], rtol=1e-6)
    assert_allclose(golden_fit.baseline["cif"], golden_fit.predict([[0, 0, 0]])[0])
    between = golden_fit.cif([[1, 1, 0]], [0.5, golden["time"].iloc[3] + 0.5])
    assert between[0, 0] == 0 and between[1, 0] == pytest.approx(golden["cif_profile2"].iloc[3])


def test_censoring_weights_are_read_just_before_each_time():
    """G(t-) ignores a censoring at t itself: the first censoring leaves G at 1 for itself and its ties."""
    t = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    status = np.array([1, 0, 1, 0, 2])
    assert_allclose(censoring_weights(t, status), [1, 1, 1, 0.75, 0.375])


def test_shuffled_rows_give_the_same_fit():
    """The fit does not depend on the order of the rows."""
    sim = simulate("finegray order", 200)
    order = np.random.default_rng(0).permutation(200)
    a = fit_fine_gray(sim.durations, sim.status, sim.X)
    b = fit_fine_gray(sim.durations[order], sim.status[order], sim.X[order])
    assert_allclose(a.params, b.params, rtol=1e-10)
    assert_allclose(a.cov, b.cov, rtol=1e-8)


def test_rejects_bad_input():
    """Unknown status codes, negative times and data without an event are refused."""
    with pytest.raises(ValueError, match="status"):
        fit_fine_gray([1, 2], [1, 3], [[0.0], [1.0]])
    with pytest.raises(ValueError, match="non-negative"):
        fit_fine_gray([-1, 2], [1, 0], [[0.0], [1.0]])
    with pytest.raises(ValueError, match="no event"):
        fit_fine_gray([1, 2], [2, 0], [[0.0], [1.0]])


def test_intervals_cover_the_true_effects():
    """Over 100 seeded samples of 300 deals (about a quarter open), the 95% intervals cover each true effect at least 90 times."""
    covered = np.zeros(2)
    for i in range(100):
        sim = simulate(f"finegray coverage {i}", 300)
        fit = fit_fine_gray(sim.durations, sim.status, sim.X)
        low, high = fit.params - 1.959963984540054 * fit.bse, fit.params + 1.959963984540054 * fit.bse
        covered += (low <= sim.beta) & (sim.beta <= high)
    assert 0.15 < (sim.status == 0).mean() < 0.35
    assert (covered >= 90).all(), covered


def test_predicted_incidence_matches_the_truth():
    """On 4,000 simulated deals, the predicted cumulative incidence of two profiles is within 0.03 of the truth."""
    sim = simulate("finegray truth", 4000)
    fit = fit_fine_gray(sim.durations, sim.status, sim.X)
    profiles = np.array([[0.0, 0.0], [1.0, -1.0]])
    days = np.array([30.0, 90.0, 180.0])
    predicted = fit.cif(profiles, days)
    truth = np.column_stack([sim.true_cif(x, days) for x in profiles])
    assert_allclose(predicted, truth, atol=0.03)
    assert (np.abs(predicted[:, 1] - predicted[:, 0]) > 0.1).all()


def test_narrower_than_the_mature_cohort_logistic():
    """With open deals kept (censored), the Fine-Gray interval is narrower, relative to the true effect, than the
    mature-cohort logistic regression's (deals at least 180 days old, won within 180 days)."""
    import statsmodels.api as sm

    sim = simulate("finegray against logistic", 2000, beta=(0.7,))
    fit = fit_fine_gray(sim.durations, sim.status, sim.X)
    horizon = 180.0
    mature = sim.age >= horizon
    won = ((sim.status == 1) & (sim.event_time <= horizon))[mature].astype(float)
    logit = sm.Logit(won, sm.add_constant(sim.X[mature]), missing="raise").fit(disp=0)
    cif = [sim.true_cif([x], horizon) for x in (0.0, 1.0)]
    true_log_odds = np.log(cif[1] / (1 - cif[1])) - np.log(cif[0] / (1 - cif[0]))
    assert mature.mean() < 0.6
    assert fit.bse[0] / sim.beta[0] < 0.8 * logit.bse[1] / true_log_odds


def test_r_script_reproduces_the_goldens(tmp_path):
    """Rerunning tests/golden/make_golden.R writes the same numbers as the stored goldens (skipped without R,
    a failure under CI, whose .ci/run installs it)."""
    if shutil.which("Rscript") is None:
        missing = "R is not installed (apt-get install r-base-core r-cran-survival r-cran-cmprsk, or .ci/r.sh)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set but {missing}: run the suite through .ci/run.", pytrace=False)
        pytest.skip(missing)
    subprocess.run(["Rscript", str(GOLDEN / "make_golden.R"), str(tmp_path)], check=True, capture_output=True)
    written = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert written == ["competing_data.csv", "coxph_efron.csv", "crr.csv", "crr_predict.csv", "cuminc_curves.csv",
                       "cuminc_tests.csv", "survfit_states.csv"]
    for name in written:
        fresh, stored = pd.read_csv(tmp_path / name), pd.read_csv(GOLDEN / name)
        pd.testing.assert_frame_equal(fresh, stored, check_exact=False, rtol=1e-9)
