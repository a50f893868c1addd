"""The seeded sample generator: its data as a CRM would hold it, and its ground truth."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from workbench.exceptions import WorkbenchError
from workbench.dataset.sample import COEFFICIENTS, generate
from workbench.dataset.sample_truth import Journeys, Truth
from workbench.dataset.spec import load_spec

TABLES = ("deals", "stage_history", "accounts", "contacts", "touchpoints")
CODES = {s: i for i, s in enumerate(("Lead", "Qualified", "Discovery", "Proposal", "Negotiation", "Won", "Lost"))}


@pytest.fixture(scope="module")
def sample():
    return generate(n_deals=15_000, seed="sample-tests", truth_deals=80_000)


@pytest.fixture(scope="module")
def moves(sample):
    """(from, to) stage codes of every observed move."""
    h = sample.stage_history
    code = h["stage"].map(CODES).to_numpy()
    same = h["deal_id"].to_numpy()[1:] == h["deal_id"].to_numpy()[:-1]
    return code[:-1][same], code[1:][same]


def test_same_seed_same_data_other_seed_other_data():
    """The same seed string gives identical tables and truth; another seed gives other data."""
    a, b = (generate(n_deals=2_000, seed="twice", truth_deals=5_000) for _ in range(2))
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    assert a.truth.win_probability == b.truth.win_probability
    c = generate(n_deals=2_000, seed="other", truth_deals=5_000)
    assert not a.deals.equals(c.deals)
    assert a.truth.win_probability != c.truth.win_probability


def test_api_constants(sample):
    """Stage names, cut-off and table columns are the canonical ones."""
    assert sample.stages == ("Lead", "Qualified", "Discovery", "Proposal", "Negotiation")
    assert sample.won_stages == ("Won",) and sample.lost_stages == ("Lost",)
    assert sample.as_of == pd.Timestamp("2025-06-30")
    assert list(sample.stage_history.columns) == ["deal_id", "stage", "entered_at"]
    for column in ("created_at", "closed_at"):
        assert sample.deals[column].dtype == "datetime64[ns]"
        assert (sample.deals[column].dropna().dt.normalize() == sample.deals[column].dropna()).all()
    assert (sample.deals["amount"] > 0).all()
    assert sample.deals["owner"].nunique() == 12


def test_open_share_at_cut_off(sample):
    """At least 20% of deals are still open at the cut-off."""
    assert (sample.deals["outcome"] == "open").mean() >= 0.20


def test_every_deal_enters_lead_at_creation(sample):
    """Each deal's first history row is Lead on its created_at date."""
    first = sample.stage_history.groupby("deal_id", sort=False).head(1).set_index("deal_id")
    deals = sample.deals.set_index("deal_id")
    assert first.index.equals(deals.index)
    assert (first["stage"] == "Lead").all()
    assert (first["entered_at"] == deals["created_at"]).all()


def test_nothing_after_as_of(sample):
    """No stage entry, close or touchpoint is later than the cut-off."""
    assert sample.stage_history["entered_at"].max() <= sample.as_of
    assert sample.deals["closed_at"].max() <= sample.as_of
    assert sample.touchpoints["occurred_at"].max() <= sample.as_of


def test_outcome_agrees_with_close_date_and_last_stage(sample):
    """closed_at is set iff the deal is closed, and equals the Won/Lost entry that ends its history."""
    deals = sample.deals.set_index("deal_id")
    last = sample.stage_history.groupby("deal_id", sort=False).tail(1).set_index("deal_id").loc[deals.index]
    assert (deals["closed_at"].notna() == (deals["outcome"] != "open")).all()
    assert (last["stage"] == deals["outcome"].map({"won": "Won", "lost": "Lost"}).fillna(last["stage"])).all()
    assert last.loc[deals["outcome"] == "open", "stage"].isin(sample.stages).all()
    closed = deals["outcome"] != "open"
    assert (last.loc[closed, "entered_at"] == deals.loc[closed, "closed_at"]).all()
    assert sample.deals.loc[sample.deals["outcome"] != "lost", "loss_reason"].isna().all()
    assert sample.deals.loc[sample.deals["outcome"] == "lost", "loss_reason"].notna().all()
    assert sample.deals.loc[sample.deals["outcome"] != "won", "win_reason"].isna().all()


def test_entries_of_a_deal_are_on_increasing_days(sample):
    """Within a deal, stage entries are strictly increasing in time (no ambiguous same-day order)."""
    h = sample.stage_history
    same = h["deal_id"].to_numpy()[1:] == h["deal_id"].to_numpy()[:-1]
    assert (np.diff(h["entered_at"].to_numpy().view("i8"))[same] > 0).all()


def test_regressions_and_skips_occur(sample, moves):
    """Regressions and skips are each 1-8% of observed moves; nothing moves out of Won or Lost."""
    a, b = moves
    assert (a <= 4).all()
    regress, skip = (b < a).mean(), ((b == a + 2) & (b <= 5)).mean()
    assert 0.01 < regress < 0.08 and 0.01 < skip < 0.08, (regress, skip)


def test_related_tables_reference_existing_rows(sample):
    """Contacts and touchpoints belong to existing deals, accounts and (for touches) the deal's contacts."""
    deal_ids = set(sample.deals["deal_id"])
    assert set(sample.deals["account_id"]) <= set(sample.accounts["account_id"])
    assert set(sample.contacts["deal_id"]) == deal_ids
    assert set(sample.touchpoints["deal_id"]) <= deal_ids
    per_deal = sample.contacts.groupby("deal_id").size()
    assert per_deal.between(1, 6).all()
    owner = sample.contacts.set_index("contact_id")["deal_id"]
    assert (owner.loc[sample.touchpoints["contact_id"]].to_numpy() == sample.touchpoints["deal_id"]).all()
    assert sample.contacts["contact_id"].is_unique and sample.deals["deal_id"].is_unique


def test_truth_agrees_with_independent_uncut_simulation(sample):
    """Per persona and channel, the population truth is within 4 SE of the won share of the
    sample's own full journeys (an independent simulation of the same process)."""
    pop, own = sample.truth.outcomes(), sample.sample_truth.outcomes()
    assert (pop[["by", "level"]] == own[["by", "level"]]).all().all()
    z = (pop["win_probability"] - own["win_probability"]) / np.hypot(pop["se"], own["se"])
    assert (z.abs() < 4).all(), pd.concat([pop[["by", "level"]], z.rename("z")], axis=1)


def test_cumulative_incidence_is_consistent(sample):
    """CIFs rise with time, cif_won(365) <= win probability, and won + lost reach 1."""
    t = sample.truth
    days = np.arange(0, 3000, 7)
    assert (np.diff(t.cif_won(days)) >= 0).all() and (np.diff(t.cif_lost(days)) >= 0).all()
    assert t.cif_won(365) <= t.win_probability
    assert t.cif_won(10_000) == pytest.approx(t.win_probability)
    assert t.cif_won(10_000) + t.cif_lost(10_000) == pytest.approx(1.0)
    table = t.cif()
    assert set(table["days"]) == {30, 60, 90, 180, 365} and len(table) == 11 * 2 * 5


def test_stage_conversions_are_proper_shares(sample):
    """Every stage conversion is strictly between 0 and 1, overall and per segment."""
    conv = sample.truth.stage_conversion
    assert list(conv.index) == ["Lead->Qualified", "Qualified->Discovery", "Discovery->Proposal",
                                "Proposal->Negotiation", "Negotiation->Won"]
    assert ((conv > 0) & (conv < 1)).all()
    rates = sample.truth.conversions()["rate"]
    assert ((rates > 0) & (rates < 1)).all()


def test_win_order_follows_true_coefficients(sample):
    """Ordering personas and channels by their true coefficient orders their win probabilities too."""
    table = sample.truth.outcomes().set_index(["by", "level"])["win_probability"]
    for variable in ("persona", "channel"):
        coef = COEFFICIENTS[COEFFICIENTS["variable"] == variable].sort_values("coefficient")
        assert table.loc[variable].loc[coef["level"]].is_monotonic_increasing, variable
    with_dm = sample.truth.segment(decision_maker=True).win_probability
    assert with_dm > sample.truth.segment(decision_maker=False).win_probability


def test_process_hits_its_calibration_targets(sample):
    """Win rate 25-40%, median close 60-150 days, best channel wins 1.5-2x as often as the worst."""
    t = sample.truth
    assert 0.25 <= t.win_probability <= 0.40
    assert 60 <= t.median_days_to_close <= 150
    channel = t.outcomes(by="channel").query("by == 'channel'")["win_probability"]
    assert 1.5 <= channel.max() / channel.min() <= 2.0


def test_truth_definitions_on_hand_built_journeys():
    """Truth statistics on four hand-built journeys equal a hand computation (see comments)."""
    journeys = [  # (stage, day) per deal
        [("Lead", 0), ("Qualified", 10), ("Discovery", 15), ("Qualified", 20), ("Lost", 40)],
        [("Lead", 0), ("Discovery", 5), ("Qualified", 12), ("Lost", 30)],  # skip, then regress
        [("Lead", 0), ("Qualified", 3), ("Discovery", 9), ("Proposal", 20), ("Negotiation", 25), ("Won", 31)],
        [("Lead", 0), ("Lost", 7)],
    ]
    deal = np.array([i for i, j in enumerate(journeys) for _ in j])
    stage = np.array([CODES[s] for j in journeys for s, _ in j], np.int8)
    day = np.array([d for j in journeys for _, d in j])
    attrs = pd.DataFrame({"persona": pd.Categorical(["A", "B", "A", "B"]),
                          "channel": pd.Categorical(["X"] * 4)})
    t = Truth(Journeys(attrs, deal, stage, day), tuple(CODES)[:5], COEFFICIENTS)
    assert t.n == 4 and t.win_probability == 0.25
    assert t.median_days_to_close == 30.5  # of 40, 30, 31, 7
    assert (t.cif_won(30), t.cif_won(31), t.cif_lost(30)) == (0.0, 0.25, 0.5)
    # Qualified->Discovery: deal 1 reached Discovery only before it entered Qualified: 2 of 3.
    np.testing.assert_allclose(t.stage_conversion, [3 / 4, 2 / 3, 1 / 3, 1, 1])
    # First visits: Lead 10, 5, 3, 7; Qualified 5, 18, 6; Discovery 5, 7, 11; Proposal 5; Negotiation 6.
    np.testing.assert_allclose(t.median_days_in_stage, [6, 6, 7, 5, 6])
    assert t.segment(persona="A").win_probability == 0.5
    assert t.segment(persona="B").median_days_in_stage["Lead"] == 6


def test_write_csv_writes_a_loadable_description(sample, tmp_path):
    """write_csv writes the five tables with ISO dates and a dataset.yaml the spec parser accepts."""
    small = generate(n_deals=300, seed="csv", truth_deals=1_000)
    path = small.write_csv(tmp_path / "out")
    spec, base = load_spec(path)
    assert spec.name == 'Sample CRM (workbench.dataset.sample, seed "csv")' and spec.as_of == "2025-06-30"
    assert yaml.safe_load(path.read_text())["stages"] == list(small.stages)
    for table in TABLES:
        back = pd.read_csv(base / f"{table}.csv")
        assert len(back) == len(getattr(small, table)), table
    deals = pd.read_csv(base / "deals.csv", dtype=str)
    assert deals["created_at"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


def test_dataset_loads_without_problems():
    """dataset() validates through the loader with no problem and no excluded row."""
    small = generate(n_deals=1_000, seed="dataset", truth_deals=1_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = small.dataset()
    assert ds.counts()["deals"] == 1_000 and ds.exclusions.empty
    assert ds.stages == small.stages and ds.as_of == small.as_of


@pytest.mark.parametrize("bad", [{"n_deals": 0}, {"truth_deals": -5}, {"n_deals": 2.5}])
def test_bad_sizes_are_errors(bad):
    """Non-positive or non-integer sizes raise a WorkbenchError."""
    with pytest.raises(WorkbenchError, match="positive integer"):
        generate(**bad)
