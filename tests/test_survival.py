"""Exact-tie Kaplan-Meier and Aalen-Johansen against lifelines, a hand computation and R (cmprsk, survival)."""
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from lifelines.utils import median_survival_times
from numpy.testing import assert_allclose

from workbench.stats.survival import competing_risks

GOLDEN = Path(__file__).parent / "golden"


def _rng(text):
    return np.random.default_rng(int.from_bytes(text.encode(), "little") % 2**32)


@pytest.fixture
def untied():
    rng = _rng("untied")
    t = rng.exponential(100, 2000)
    e = rng.choice(["won", "lost", "open"], 2000, p=[0.3, 0.4, 0.3])
    return t, e


def _codes(e):
    return np.select([e == "won", e == "lost"], [1, 2], 0)


def test_cif_matches_lifelines_on_untied_data(untied):
    """Without ties, cumulative incidence, its variance and interval equal lifelines' AalenJohansenFitter."""
    t, e = untied
    ours = competing_risks(t, e, censored="open")
    for k, cause in ((1, "won"), (2, "lost")):
        ref = AalenJohansenFitter().fit(t, _codes(e), event_of_interest=k)
        times = ref.cumulative_density_.index.to_numpy()
        assert_allclose(ours.cif(cause, times), ref.cumulative_density_.iloc[:, 0], atol=1e-12)
        assert_allclose(ours.cif_se(cause, times) ** 2, ref.variance_.to_numpy(), atol=1e-12)
        low, high = ours.cif_ci(cause, times)
        # lifelines labels its columns the other way round: the one named "upper" holds the
        # smaller bound (exp(-exp(log(-log F) + z se))). Compare by value.
        ci = ref.confidence_interval_.to_numpy()
        finite = np.isfinite(ci).all(axis=1)
        assert_allclose(low[finite], ci[finite].min(axis=1), atol=1e-12)
        assert_allclose(high[finite], ci[finite].max(axis=1), atol=1e-12)


def test_kaplan_meier_matches_lifelines_with_ties(untied):
    """On day-rounded (tied) times, survival, Greenwood band and median with CI equal lifelines'."""
    t, e = untied
    t = np.ceil(t / 7)
    ours = competing_risks(t, e, censored="open")
    ref = KaplanMeierFitter().fit(t, e != "open")
    times = ref.survival_function_.index.to_numpy()
    assert_allclose(ours.survival(times), ref.survival_function_.iloc[:, 0], atol=1e-12)
    assert_allclose(ours._at("survival_lower", times, 1.0), ref.confidence_interval_.iloc[:, 0], atol=1e-12)
    assert_allclose(ours._at("survival_upper", times, 1.0), ref.confidence_interval_.iloc[:, 1], atol=1e-12)
    med = ours.median()
    ref_ci = median_survival_times(ref.confidence_interval_)
    assert med["estimate"] == ref.median_survival_time_
    assert (med["lower"], med["upper"]) == tuple(ref_ci.iloc[0])


def test_hand_computed_tied_example():
    """A small tied example worked by hand (censoring at an event time counts as at risk).

    t:  1    1    2    2    3    4    4    5
    e:  won  lost won  open won  lost won  open
    t=1: n=8, S=6/8, F_won=1/8, F_lost=1/8
    t=2: n=6, 1 won,  S=0.75*5/6=0.625,     F_won=1/8+0.75/6=0.25
    t=3: n=4, 1 won,  S=0.625*3/4=0.46875,  F_won=0.25+0.625/4=0.40625
    t=4: n=3, 1 won 1 lost, S=0.46875/3=0.15625, F_won=0.40625+0.46875/3=0.5625,
         F_lost=0.125+0.46875/3=0.28125
    """
    t = [1, 1, 2, 2, 3, 4, 4, 5]
    e = ["won", "lost", "won", "open", "won", "lost", "won", "open"]
    fit = competing_risks(t, e, censored="open")
    assert_allclose(fit.table["at_risk"], [8, 6, 4, 3, 1])
    assert_allclose(fit.survival([1, 2, 3, 4, 5]), [0.75, 0.625, 0.46875, 0.15625, 0.15625])
    assert_allclose(fit.cif("won", [0.5, 1, 2, 3, 4, 5]), [0, 0.125, 0.25, 0.40625, 0.5625, 0.5625])
    assert_allclose(fit.cif("lost", [1, 2, 3, 4]), [0.125, 0.125, 0.125, 0.28125])
    assert_allclose(fit.cif("won", 5) + fit.cif("lost", 5) + fit.survival(5), 1.0)


def test_ties_are_deterministic_where_lifelines_jitters():
    """The same tied data gives the same answer every time and in any row order; lifelines' jitter does not."""
    rng = _rng("ties")
    t = rng.integers(1, 30, 500).astype(float)
    e = rng.choice(["won", "lost", "open"], 500)
    first = competing_risks(t, e, censored="open").cif("won", 15)
    perm = rng.permutation(500)
    assert competing_risks(t[perm], e[perm], censored="open").cif("won", 15) == first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jittered = {float(AalenJohansenFitter(seed=s).fit(t, _codes(e), 1).predict(15.0)) for s in range(5)}
    assert len(jittered) > 1


def test_cause_specific_curves_and_survival_add_to_one(untied):
    """Cumulative incidences of all causes plus survival equal 1 at every time."""
    t, e = untied
    fit = competing_risks(np.round(t), e, censored="open")
    total = fit.table["won_cif"] + fit.table["lost_cif"] + fit.table["survival"]
    assert_allclose(total, 1.0, atol=1e-12)


def test_recovers_true_cumulative_incidence_under_censoring():
    """On simulated exponential competing risks with censoring, the CIF is within 3 SE of the truth."""
    rng = _rng("truth")
    n, h_won, h_lost = 20000, 0.004, 0.006
    event_time = rng.exponential(1 / (h_won + h_lost), n)
    cause = np.where(rng.random(n) < h_won / (h_won + h_lost), "won", "lost")
    censor = rng.uniform(0, 400, n)
    t = np.ceil(np.minimum(event_time, censor))
    e = np.where(event_time <= censor, cause, "open")
    fit = competing_risks(t, e, censored="open")
    for day in (30, 90, 180):
        truth = h_won / (h_won + h_lost) * (1 - np.exp(-(h_won + h_lost) * day))
        est, se = fit.cif("won", day)[0], fit.cif_se("won", day)[0]
        assert abs(est - truth) < 3 * se + 0.002


def test_bad_input_is_refused():
    """Negative durations and unknown event labels raise a clear ValueError."""
    with pytest.raises(ValueError, match="non-negative"):
        competing_risks([-1, 2], ["won", "lost"])
    with pytest.raises(ValueError, match="neither a cause nor censored"):
        competing_risks([1, 2], ["won", "maybe"], censored="open")


def _golden_fit(**options):
    """Our fit of R's tied data (tests/golden/make_golden.R), status 1 won, 2 lost, 0 open."""
    data = pd.read_csv(GOLDEN / "competing_data.csv")
    return competing_risks(data["time"], data["status"].map({0: 0, 1: "won", 2: "lost"}).to_numpy(dtype=object),
                           **options)


def test_aalen_johansen_and_its_variance_match_cuminc_on_tied_data():
    """On R's tied data, both cumulative incidence curves equal cmprsk::cuminc's estimates, and with
    ``variance="cuminc"`` their variances equal cuminc's at every time. The default variance is another
    estimator (Collett's delta method, lifelines'); on these data it is within 25% of Gray's."""
    curves = pd.read_csv(GOLDEN / "cuminc_curves.csv")
    delta, gray = _golden_fit(), _golden_fit(variance="cuminc")
    for code, cause in ((1, "won"), (2, "lost")):
        # cuminc lists each jump twice (before and after): the last row at a time is the value from then on.
        curve = curves[curves["cause"] == code].drop_duplicates("time", keep="last")
        times = curve["time"].to_numpy()
        assert_allclose(delta.cif(cause, times), curve["est"], rtol=1e-10, atol=1e-14)
        assert_allclose(gray.cif(cause, times), curve["est"], rtol=1e-10, atol=1e-14)
        assert_allclose(gray.cif_se(cause, times) ** 2, curve["var"], rtol=1e-6, atol=1e-15)
        nonzero = curve[curve["var"] > 0]
        assert_allclose(delta.cif_se(cause, nonzero["time"].to_numpy()) ** 2, nonzero["var"], rtol=0.25)


def test_aalen_johansen_and_its_variance_match_survfit_multistate():
    """On R's tied data, survival::survfit(Surv(time, factor(status)) ~ 1) gives the same at-risk counts and
    state probabilities at every distinct time, and its standard errors (the infinitesimal jackknife) are
    those of the default delta method: with exact ties the two estimators coincide."""
    states = pd.read_csv(GOLDEN / "survfit_states.csv")
    fit = _golden_fit()
    assert_allclose(fit.table["time"], states["time"])
    assert_allclose(fit.table["at_risk"], states["n_risk"])
    for code, cause in ((1, "won"), (2, "lost")):
        assert_allclose(fit.table[f"{cause}_cif"], states[f"pstate_{code}"], rtol=1e-10, atol=1e-14)
        assert_allclose(fit.cif_se(cause, states["time"]), states[f"std_err_{code}"], rtol=1e-6, atol=1e-15)


def test_variances_match_r_where_everyone_left_fails_together():
    """On 11 deals with censorings tied to events and all three left at the last time failing, Gray's variance
    equals cuminc's and the default (delta-method) standard error survfit's (numbers from R 4.2, cmprsk 2.2-11, survival 3.5-3);
    like cuminc, Gray's variance of a cause holds between that cause's event times."""
    t, status = [1, 1, 2, 2, 2, 3, 3, 4, 5, 5, 5], [1, 0, 2, 1, 0, 1, 1, 0, 1, 2, 2]
    gray = competing_risks(t, status, causes=(1, 2), variance="cuminc")
    assert_allclose(gray.table["1_var"], [0.00826446280991736, 0.01673298642995612, 0.03116462039020962,
                                          0.03116462039020962, 0.04145331605114622], rtol=1e-12)
    assert_allclose(gray.table["2_var"], [0, 0.0103050709111315, 0.0103050709111315, 0.0103050709111315,
                                          0.0414533160511462], rtol=1e-12)
    delta = competing_risks(t, status, causes=(1, 2))
    assert_allclose(delta.cif_se(1, [1, 2, 3, 4, 5]), [0.0866784172041448, 0.1224976890189729, 0.1644307902428618,
                                                    0.1644307902428618, 0.1772202509683185], rtol=1e-12)
    assert_allclose(delta.cif_se(2, [1, 2, 5]), [0, 0.0957189858514034, 0.1772202509683185], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="variance must be one of"):
        competing_risks([1, 2], ["won", "lost"], variance="greenwood")
