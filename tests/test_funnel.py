"""Censoring-aware stage conversion against the sample's truth and hand-built messy histories."""
import warnings

import numpy as np
import pandas as pd
import pytest

from workbench.cycle.times import OVERALL
from workbench.funnel.conversion import stage_conversion, stage_outcomes
from workbench.dataset.loader import from_frames
from workbench.dataset.sample import generate

STAGES = ("Lead", "Qualified", "Discovery", "Proposal", "Negotiation")


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = generate(n_deals=20_000, seed="funnel-tests", truth_deals=200_000)
        return data, data.dataset()


@pytest.mark.parametrize("persona", [None, "Procurement", "Economic buyer"])
def test_eventual_conversion_matches_truth_where_count_ratio_misses(sample, persona):
    """Each A->B conversion's 95% CI holds the true eventual conversion; the plain count ratio falls outside."""
    data, ds = sample
    truth = (data.truth.segment(persona=persona) if persona else data.truth).stage_conversion
    table = stage_conversion(ds, by="persona").table
    rows = table[table["segment"] == (persona or OVERALL)].set_index("transition")
    for transition, true_rate in truth.items():
        row = rows.loc[transition]
        assert row["ci_low"] - 0.005 <= true_rate <= row["ci_high"] + 0.005, (transition, row, true_rate)
        assert not (row["ci_low"] - 0.005 <= row["count_ratio"] <= row["ci_high"] + 0.005), transition


def _messy():
    t = pd.Timestamp("2024-01-01")
    d = lambda n: t + pd.Timedelta(days=n)  # noqa: E731
    deals = pd.DataFrame({
        "deal_id": ["skip", "back", "tie", "mid", "nofinal", "open"],
        "created_at": [d(0)] * 6,
        "closed_at": [d(30), d(40), d(20), d(25), d(35), pd.NaT],
        "outcome": ["won", "lost", "won", "lost", "won", "open"],
    })
    history = pd.DataFrame([
        ("skip", "Lead", 0), ("skip", "Discovery", 5), ("skip", "Negotiation", 20), ("skip", "Won", 30),
        ("back", "Lead", 0), ("back", "Qualified", 5), ("back", "Discovery", 10), ("back", "Qualified", 15),
        ("back", "Lost", 40),
        ("tie", "Lead", 0), ("tie", "Qualified", 10), ("tie", "Discovery", 10), ("tie", "Won", 20),
        ("mid", "Proposal", 3), ("mid", "Lost", 25),
        ("nofinal", "Lead", 0), ("nofinal", "Negotiation", 10),
        ("open", "Lead", 0), ("open", "Qualified", 50),
    ], columns=["deal_id", "stage", "day"])
    history["entered_at"] = t + pd.to_timedelta(history.pop("day"), unit="D")
    return from_frames(deals, history, stages=STAGES, won_stages=("Won",), lost_stages=("Lost",),
                       as_of=d(60), name="messy")


def test_messy_histories_are_handled_and_counted():
    """Skips, regressions, same-time entries, mid-funnel starts and a missing final row give the
    outcomes worked out by hand, and the added closing row is counted."""
    ds = _messy()
    out = stage_outcomes(ds).set_index(["deal_id", "stage"])
    assert out.attrs["added_closing_rows"] == 1  # "nofinal" is won but has no Won row
    # skip: Lead -> Discovery counts as advancing past Qualified; it never entered Qualified.
    assert out.loc[("skip", "Lead"), "event"] == "advanced" and out.loc[("skip", "Lead"), "days"] == 5
    assert ("skip", "Qualified") not in out.index
    # back: reached Discovery, went back to Qualified, then lost: Discovery dropped at the close.
    assert out.loc[("back", "Discovery"), "event"] == "dropped"
    assert out.loc[("back", "Discovery"), "days"] == 30
    assert out.loc[("back", "Qualified"), "event"] == "advanced"
    # tie: Qualified and Discovery on the same day read as forward progress.
    assert out.loc[("tie", "Qualified"), "event"] == "advanced" and out.loc[("tie", "Qualified"), "days"] == 0
    # mid: history starts at Proposal; it is in no earlier stage's denominator.
    assert set(out.loc["mid"].index) == {"Proposal"}
    # nofinal: won at closed_at although the Won row is missing.
    assert out.loc[("nofinal", "Negotiation"), "event"] == "advanced"
    assert out.loc[("nofinal", "Negotiation"), "days"] == 25
    # open: still in Qualified at the cut-off, censored there.
    assert out.loc[("open", "Qualified"), "event"] == "open" and out.loc[("open", "Qualified"), "days"] == 10


def test_conversion_without_censoring_equals_the_count_ratio():
    """When every deal is closed, the eventual conversion is exactly advanced / reached."""
    ds = _messy()
    closed = ds.filter({"outcome": ["won", "lost"]})
    table = stage_conversion(closed, min_deals=1).table
    assert np.allclose(table["conversion"].dropna(), table["count_ratio"][table["conversion"].notna()])
