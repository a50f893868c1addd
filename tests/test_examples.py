"""The shipped dataset.yaml examples load, with the real data's quirks reported, not crashed on."""
import csv
import hashlib
import warnings
from pathlib import Path

import pandas as pd
import pytest

import workbench
from workbench.exceptions import DataQualityWarning

ROOT = Path(__file__).resolve().parents[1]
OLIST = ROOT / "examples" / "olist" / "dataset.yaml"
OLIST_DATA = ROOT.parent / "shared" / "data" / "olist-marketing-funnel"

needs_olist = pytest.mark.skipif(not OLIST_DATA.exists(), reason="../shared/data/olist-marketing-funnel is not here")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@needs_olist
def test_olist_loads_with_its_quirks_reported():
    """Every MQL is a deal, closed deals are won, the rest open; excluded rows and sparse columns are reported."""
    leads = _rows(OLIST_DATA / "olist_marketing_qualified_leads_dataset.csv")
    closed = {r["mql_id"]: r for r in _rows(OLIST_DATA / "olist_closed_deals_dataset.csv")}
    with pytest.warns(DataQualityWarning):
        ds = workbench.load_dataset(OLIST)
    report = ds.report
    assert len(ds.deals) + report.excluded_rows() == len(leads)
    assert ds.counts()["won"] + sum(p.excluded for p in report.warnings) == len(closed)
    assert ds.counts()["lost"] == 0
    assert {"no_lost", "no_stage_history", "sparse_column", "combined_values"} <= report.checks()
    # the one lead won before its first contact is excluded, named by its line in the file
    bad = [p for p in report.warnings if p.check == "closed_before_created"]
    assert len(bad) == 1 and bad[0].excluded == 1
    line = bad[0].rows[0]
    mql = leads[line - 2]["mql_id"]
    assert mql in closed
    assert mql not in set(ds.deals["deal_id"])


@needs_olist
def test_olist_day_first_dates_and_channels():
    """Day-first dates are read as such (no month above 12 appears), and `unknown` origins become empty."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        ds = workbench.load_dataset(OLIST)
    leads = pd.read_csv(OLIST_DATA / "olist_marketing_qualified_leads_dataset.csv", dtype=str)
    first = leads.set_index("mql_id")["first_contact_date"]
    sample = ds.deals.set_index("deal_id")["created_at"].head(50)
    for deal_id, created in sample.items():
        day, month, year = first[deal_id].split("-")
        assert (created.day, created.month, created.year) == (int(day), int(month), int(year))
    assert "unknown" not in set(ds.deals["channel"].dropna())
    expected_missing = int(leads["origin"].isna().sum() + (leads["origin"] == "unknown").sum())
    assert int(ds.deals["channel"].isna().sum()) == expected_missing - int(
        leads.loc[~leads["mql_id"].isin(ds.deals["deal_id"]), "origin"].isin(["unknown"]).sum()
        + leads.loc[~leads["mql_id"].isin(ds.deals["deal_id"]), "origin"].isna().sum())
    assert ds.as_of == ds.deals["closed_at"].max()


@needs_olist
def test_loading_never_modifies_the_source_files():
    """The source files hash the same before and after a load."""
    files = sorted(OLIST_DATA.glob("*.csv"))
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        workbench.load_dataset(OLIST)
    assert before == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
