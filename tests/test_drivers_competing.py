"""Fine-Gray drivers from every deal (workbench.drivers.competing): the CRM wrapper around stats.finegray."""
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from finegray_truth import simulate
from workbench import from_frames
from workbench.dataset.sample import generate
from workbench.drivers.competing import choose_model, competing_drivers
from workbench.drivers.model import win_drivers
from workbench.exceptions import SeparationWarning, WorkbenchError
from workbench.stats.finegray import fit_fine_gray

matplotlib.use("Agg")
AS_OF = pd.Timestamp("2025-06-30")


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=6_000, seed="competing-drivers", truth_deals=1_000).dataset()


def _as_dataset(sim, channel_names=("Inbound", "Referral")):
    """The simulated deals as a Dataset: created ``age`` days before the cut-off, closed after ``event_time``."""
    created = AS_OF - pd.to_timedelta(np.round(sim.age, 3), unit="D")
    closed = created + pd.to_timedelta(np.round(sim.event_time, 3), unit="D")
    outcome = np.select([sim.status == 1, sim.status == 2], ["won", "lost"], "open")
    deals = pd.DataFrame({"deal_id": [f"D{i}" for i in range(len(sim.age))], "created_at": created,
                          "closed_at": closed.where(outcome != "open"), "outcome": outcome,
                          "channel": np.where(sim.X[:, 0] == 1, channel_names[1], channel_names[0])})
    return from_frames(deals, as_of=AS_OF, name="simulated")


def test_the_ratio_is_the_fine_gray_fit_on_the_deals():
    """On simulated deals turned into a Dataset, the wrapper's ratio and interval are the Fine-Gray fit of the same
    days and outcomes, and the interval covers the true ratio."""
    sim = simulate("competing wrapper", 1500, beta=(0.7,))
    result = competing_drivers(_as_dataset(sim), ["channel"])
    row = result.table.set_index("level").loc["Referral"]
    days = np.round(sim.durations, 3)
    direct = fit_fine_gray(days, sim.status, sim.X).summary().iloc[0]
    assert_allclose([row["ratio"], row["ci_low"], row["ci_high"]], direct[["exp(coef)", "ci_low", "ci_high"]],
                    rtol=1e-6)
    assert row["ci_low"] < np.exp(0.7) < row["ci_high"]
    assert (result.won, result.lost, result.open) == tuple(int((sim.status == k).sum()) for k in (1, 2, 0))
    assert result.reference_levels == {"channel": "Inbound"} and result.method == "Fine-Gray"


def test_effects_have_the_true_signs_and_finite_intervals(sample):
    """On the sample with known effects, executive sponsors and referrals win sooner or more often, procurement and
    outbound deals less, larger deals less; every ratio and bound is finite and positive."""
    result = competing_drivers(sample)
    table = result.table.set_index(["feature", "level"])
    assert table.loc[("persona", "Executive sponsor"), "ci_low"] > 1
    assert table.loc[("channel", "Referral"), "ci_low"] > 1
    assert table.loc[("persona", "Procurement"), "ci_high"] < 1
    assert table.loc[("channel", "Outbound"), "ci_high"] < 1
    assert table.loc[("amount", "per doubling"), "ci_high"] < 1
    values = result.table[["ratio", "ci_low", "ci_high"]].to_numpy()
    assert np.isfinite(values).all() and (values > 0).all()
    assert ((result.table["ci_low"] < result.table["ratio"]) & (result.table["ratio"] < result.table["ci_high"])).all()
    assert result.n == len(sample.deals) and result.open == int(sample.deals["outcome"].eq("open").sum())


def test_narrower_than_the_logistic_model_on_the_same_export(sample):
    """With a year's horizon the mature cohort keeps a fraction of the deals: the Fine-Gray intervals are narrower
    (on the log scale) than the logistic model's for every shared effect."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logistic = win_drivers(sample, mature_days=365).table.set_index(["feature", "level"])
    fine_gray = competing_drivers(sample).table.set_index(["feature", "level"])
    shared = logistic.index.intersection(fine_gray.index)
    assert len(shared) >= 10
    assert (fine_gray.loc[shared, "se"] < logistic.loc[shared, "se"]).all()


def test_sentences_and_plot(sample):
    """findings() says which levels win sooner or more often with the ratio and its interval; plot() draws every row."""
    import matplotlib.pyplot as plt

    result = competing_drivers(sample)
    said = " ".join(result.findings())
    assert "times the rate of winning (95% CI" in said and "Deals with persona Executive sponsor win sooner" in said
    ax = result.plot()
    assert len(ax.get_yticks()) == len(result.table)
    plt.close(ax.figure)


def test_a_level_without_a_win_is_left_out_with_a_note():
    """A channel whose 60 deals never won gets no ratio of 0: its deals are left out, a SeparationWarning and a note
    say so, and the other ratios stay finite."""
    sim = simulate("competing winless", 600, beta=(0.5,))
    ds = _as_dataset(sim)
    deals = ds.deals.copy()
    partner = deals.index[:60]
    deals.loc[partner, "channel"] = "Partner"
    deals.loc[partner, "outcome"] = "lost"
    deals.loc[partner, "closed_at"] = deals.loc[partner, "created_at"]  # lost on the day, before any win
    with pytest.warns(SeparationWarning, match="Partner"):
        result = competing_drivers(from_frames(deals, as_of=AS_OF), ["channel"])
    assert result.left_out == {"channel = Partner": 60} and result.n == 540
    assert list(result.table["level"]) == ["Referral"] and np.isfinite(result.table["ratio"]).all()
    assert any("none of their deals won" in n for n in result.notes)


def test_the_model_is_chosen_by_the_size_of_the_mature_cohort(sample):
    """A year of history: the mature cohort is large, the logistic model is kept; a 150-day-old export: Fine-Gray,
    and the reason says how many deals are old enough."""
    assert choose_model(sample, 180)[0] == "logistic"
    young = sample.cut(sample.deals["created_at"].min() + pd.Timedelta(days=150))
    choice, reason = choose_model(young, 120)
    assert choice == "fine-gray" and "old enough" in reason and "Fine-Gray" in reason
    with pytest.raises(WorkbenchError):
        win_drivers(young, mature_days=365)
    assert len(competing_drivers(young, ["channel"]).table)


def test_needs_dates_and_a_win(sample):
    """A dateless dataset or one without a win is refused with a sentence."""
    deals = sample.deals.head(200).assign(outcome="lost")
    deals["closed_at"] = deals["closed_at"].fillna(deals["created_at"] + pd.Timedelta(days=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        no_win = from_frames(deals, as_of=sample.as_of)
    with pytest.raises(WorkbenchError, match="No deal is won"):
        competing_drivers(no_win, ["channel"])
