"""The shipped CRM mappings (examples/salesforce, hubspot, pipedrive) load their fixtures faithfully.

Every expectation is derived here from the raw CSV files with the csv module and strptime, never
from the workbench's own parsing, so a test fails when the mapping or the loader changes what the
fixture says.
"""
from __future__ import annotations

import csv
import hashlib
import re
import shutil
import warnings
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

import workbench
from workbench.exceptions import DataQualityWarning
from workbench.dataset.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SALESFORCE = EXAMPLES / "salesforce" / "dataset.yaml"
HUBSPOT = EXAMPLES / "hubspot" / "dataset.yaml"
PIPEDRIVE = EXAMPLES / "pipedrive" / "dataset.yaml"
ALL_SPECS = (SALESFORCE, HUBSPOT, PIPEDRIVE)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _load(path: Path):
    """The dataset and the DataQualityWarnings its load raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = workbench.load_dataset(path)
    return ds, [w for w in caught if issubclass(w.category, DataQualityWarning)]


def _sf_datetime(text: str) -> pd.Timestamp:
    """Salesforce `2024-02-05T09:12:44.000+0000` -> naive UTC."""
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    return pd.Timestamp(parsed.astimezone(timezone.utc).replace(tzinfo=None))


def _plain(text: str, fmt: str) -> pd.Timestamp:
    return pd.Timestamp(datetime.strptime(text, fmt))


def _history_by_deal(history: pd.DataFrame) -> dict[str, list[tuple[str, pd.Timestamp]]]:
    return {deal: list(zip(g["stage"], g["entered_at"])) for deal, g in history.groupby("deal_id", sort=False)}


@pytest.fixture(scope="module")
def salesforce():
    return _load(SALESFORCE)


@pytest.fixture(scope="module")
def hubspot():
    return _load(HUBSPOT)


@pytest.fixture(scope="module")
def pipedrive():
    return _load(PIPEDRIVE)


# --- Salesforce -------------------------------------------------------------------------------

SF_OUTCOME = {"Closed Won": "won", "Closed Lost": "lost"}


def _sf_collapsed_history() -> tuple[dict[str, list[tuple[str, pd.Timestamp]]], int]:
    """OpportunityHistory per opportunity in time order, consecutive same-stage rows dropped;
    and the number of rows dropped."""
    by_deal: dict[str, list[tuple[pd.Timestamp, int, str]]] = {}
    for line, row in enumerate(_rows(SALESFORCE.parent / "OpportunityHistory.csv")):
        by_deal.setdefault(row["OpportunityId"], []).append((_sf_datetime(row["CreatedDate"]), line, row["StageName"]))
    collapsed, dropped = {}, 0
    for deal, entries in by_deal.items():
        kept: list[tuple[str, pd.Timestamp]] = []
        for when, _, stage in sorted(entries):
            if kept and kept[-1][0] == stage:
                dropped += 1
                continue
            kept.append((stage, when))
        collapsed[deal] = kept
    return collapsed, dropped


def test_salesforce_deals_and_outcomes(salesforce):
    """Every opportunity is a deal; the outcome follows StageName (Closed Won/Closed Lost, else open)."""
    ds, _ = salesforce
    opps = _rows(SALESFORCE.parent / "Opportunity.csv")
    expected = {o["Id"]: SF_OUTCOME.get(o["StageName"], "open") for o in opps}
    for o in opps:  # the fixture is internally consistent: IsWon/IsClosed agree with StageName
        assert o["IsWon"] == str(expected[o["Id"]] == "won").lower()
        assert o["IsClosed"] == str(expected[o["Id"]] != "open").lower()
    assert dict(zip(ds.deals["deal_id"], ds.deals["outcome"])) == expected
    by_outcome = Counter(expected.values())
    assert ds.counts() == {"deals": len(opps), **{k: by_outcome[k] for k in ("won", "lost", "open")}}
    assert all(by_outcome[k] for k in ("won", "lost", "open"))


def test_salesforce_dates_parse_and_open_deals_lose_their_expected_close_date(salesforce):
    """CreatedDate (…T09:12:44.000+0000) is read as UTC; closed deals close on CloseDate; open ones have none."""
    ds, _ = salesforce
    opps = {o["Id"]: o for o in _rows(SALESFORCE.parent / "Opportunity.csv")}
    deals = ds.deals.set_index("deal_id")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", o["CreatedDate"]) for o in opps.values())
    for deal_id, o in opps.items():
        assert deals.loc[deal_id, "created_at"] == _sf_datetime(o["CreatedDate"])
        if o["StageName"] in SF_OUTCOME:
            assert deals.loc[deal_id, "closed_at"] == _plain(o["CloseDate"], "%Y-%m-%d")
        else:
            assert o["CloseDate"], "fixture: every open opportunity carries an expected CloseDate"
            assert pd.isna(deals.loc[deal_id, "closed_at"])
    assert not {"unparseable_dates", "mixed_date_formats", "ambiguous_dates"} & ds.report.checks()


def test_salesforce_history_collapses_repeated_stage_rows(salesforce):
    """OpportunityHistory rows that repeat the previous stage (amount/date/probability changes) are dropped and
    counted, in a note: `collapse_repeats: true` asked for it, so the export validates clean (exit 0)."""
    ds, quality = salesforce
    expected, dropped = _sf_collapsed_history()
    assert dropped > 0
    assert _history_by_deal(ds.stage_history) == expected
    assert not [p for p in ds.report.warnings if p.check == "repeat_rows"] and ds.report.exit_code == 0
    repeats = [p for p in ds.report.notes if p.check == "repeat_rows"]
    assert len(repeats) == 1 and repeats[0].excluded == dropped
    # Right for both reasons a stage repeats: a change of another field, or a rework back into the stage.
    assert "another field" in repeats[0].message and "reworked" in repeats[0].message
    assert "kept as two entries" in repeats[0].message
    assert ds.report.excluded_rows() == dropped


def test_salesforce_specific_histories_regression_kept(salesforce):
    """Initech goes back from Proposal to Needs Analysis and forward again: kept; Acme's repeat rows collapse."""
    ds, _ = salesforce
    ids = {o["Name"]: o["Id"] for o in _rows(SALESFORCE.parent / "Opportunity.csv")}
    raw = _rows(SALESFORCE.parent / "OpportunityHistory.csv")
    history = _history_by_deal(ds.stage_history)

    initech = [stage for stage, _ in history[ids["Initech - Data Migration"]]]
    assert initech == ["Prospecting", "Qualification", "Proposal/Price Quote", "Needs Analysis",
                       "Proposal/Price Quote", "Negotiation/Review", "Closed Won"]
    raw_initech = [r["StageName"] for r in raw if r["OpportunityId"] == ids["Initech - Data Migration"]]
    assert raw_initech.count("Needs Analysis") == 2 and initech.count("Needs Analysis") == 1

    acme = ids["Acme Corp - Platform License"]
    raw_acme = [r for r in raw if r["OpportunityId"] == acme]
    assert [s for s, _ in history[acme]] == list(dict.fromkeys(r["StageName"] for r in raw_acme))
    first_qualification = min(_sf_datetime(r["CreatedDate"]) for r in raw_acme if r["StageName"] == "Qualification")
    assert dict(history[acme])["Qualification"] == first_qualification  # the stage entry, not the amount change

    # the row written after Massive Dynamic was lost (amount zeroed) is not a second Closed Lost
    massive = [s for s, _ in history[ids["Massive Dynamic - Lab Rollout"]]]
    assert massive.count("Closed Lost") == 1


def _same_day_close_copy(tmp_path: Path, derive: str | None = None) -> tuple[Path, str]:
    """The Salesforce example plus one opportunity created and won on the same day."""
    folder = tmp_path / "salesforce"
    shutil.copytree(SALESFORCE.parent, folder)
    deal_id = "0068d00000Kx0Z9AAJ"
    with open(folder / "Opportunity.csv", "a", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(
            [deal_id, "0018d00000Lm0C1AAJ", "Acme Corp - Extra Seats", "Closed Won", "1200", "100", "2024-09-10",
             "Existing Customer - Upgrade", "Web", "true", "true", "Closed", "0058d00000Pq0U1AAJ",
             "2024-09-10T10:30:00.000+0000", "2024-09-10T15:00:00.000+0000"])
    with open(folder / "OpportunityHistory.csv", "a", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["0088d00000Rs9998AA", deal_id, "0058d00000Pq0U1AAJ", "2024-09-10T10:30:00.000+0000",
                         "Prospecting", "1200", "120", "2024-09-10", "10", "Pipeline"])
        writer.writerow(["0088d00000Rs9999AA", deal_id, "0058d00000Pq0U1AAJ", "2024-09-10T15:00:00.000+0000",
                         "Closed Won", "1200", "1200", "2024-09-10", "100", "Closed"])
    if derive is not None:
        spec = folder / "dataset.yaml"
        text = spec.read_text()
        old = "    closed_at: clear_when_open"
        assert old in text
        spec.write_text(text.replace(old, f"    closed_at: {derive}  #", 1))
    return folder / "dataset.yaml", deal_id


def test_salesforce_opportunity_closed_on_its_creation_day_is_kept(tmp_path):
    """An opportunity created at 10:30 and won the same day (CloseDate = that date) stays in the dataset."""
    spec, deal_id = _same_day_close_copy(tmp_path)
    report = workbench.validate(spec)
    assert "closed_before_created" not in report.checks()
    ds, _ = _load(spec)
    assert deal_id in set(ds.deals["deal_id"])


def test_salesforce_final_stage_workaround_keeps_same_day_closes(tmp_path):
    """With `derive: {closed_at: final_stage}` (the README's workaround) a same-day close is kept, open deals stay open."""
    spec, deal_id = _same_day_close_copy(tmp_path, derive="final_stage")
    ds, _ = _load(spec)
    deals = ds.deals.set_index("deal_id")
    assert deals.loc[deal_id, "outcome"] == "won"
    assert deals.loc[deal_id, "closed_at"] == _sf_datetime("2024-09-10T15:00:00.000+0000")
    assert deals.loc[deals["outcome"] == "open", "closed_at"].isna().all()
    assert "closed_before_created" not in ds.report.checks()


# --- HubSpot ----------------------------------------------------------------------------------

def _hubspot_stage_columns(header: list[str]) -> dict[str, str]:
    """Source column -> HubSpot stage label, for the `Date entered` pattern the spec declares."""
    pattern = load_spec(HUBSPOT)[0].stage_history.wide.entered
    regex = re.compile("^" + re.escape(pattern).replace(re.escape("{stage}"), "(.+)") + "$")
    return {c: m.group(1) for c in header if (m := regex.match(c))}


def _hubspot_outcome(stage_label: str) -> str:
    return {"closed won": "won", "closed lost": "lost"}.get(stage_label.lower(), "open")


def test_hubspot_deals_and_outcomes(hubspot):
    """Every exported deal is a deal; Deal Stage gives the outcome; nothing is excluded."""
    ds, quality = hubspot
    raw = _rows(HUBSPOT.parent / "deals.csv")
    expected = {r["Record ID"]: _hubspot_outcome(r["Deal Stage"]) for r in raw}
    assert dict(zip(ds.deals["deal_id"], ds.deals["outcome"])) == expected
    by_outcome = Counter(expected.values())
    assert ds.counts() == {"deals": len(raw), **{k: by_outcome[k] for k in ("won", "lost", "open")}}
    assert all(by_outcome[k] for k in ("won", "lost", "open"))
    assert not ds.report.errors and not ds.report.warnings and not quality


def test_hubspot_wide_columns_become_one_row_per_filled_stage(hubspot):
    """Each filled `Date entered "<stage> (Sales Pipeline)"` cell is one history row with its date; exits make none."""
    ds, _ = hubspot
    with open(HUBSPOT.parent / "deals.csv", newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    raw = _rows(HUBSPOT.parent / "deals.csv")
    columns = _hubspot_stage_columns(header)
    names = load_spec(HUBSPOT)[0].stage_history.values["stage"]
    assert set(columns.values()) <= set(names), "every stage label in the export is mapped"
    assert {names[label] for label in columns.values()} <= set(ds.stage_order)
    assert any(c.startswith("Date exited ") for c in header), "fixture: the export also has Date exited columns"
    expected = {(r["Record ID"], names[label], _plain(r[column], "%Y-%m-%d %H:%M"))
                for r in raw for column, label in columns.items() if r[column]}
    got = list(zip(ds.stage_history["deal_id"], ds.stage_history["stage"], ds.stage_history["entered_at"]))
    assert len(got) == len(expected)
    assert set(got) == expected


def test_hubspot_skipped_stage_and_reentries(hubspot):
    """Contoso skipped Presentation; Adventure Works' re-entries show once; Coho's re-entry puts Qualified last."""
    ds, _ = hubspot
    raw = {r["Deal Name"]: r for r in _rows(HUBSPOT.parent / "deals.csv")}
    history = _history_by_deal(ds.stage_history)

    contoso = raw["Contoso - Support plan"]
    assert [s for s, _ in history[contoso["Record ID"]]] == ["Appointment", "Qualified", "Decision maker",
                                                             "Contract", "Won"]
    assert not contoso['Date entered "Presentation scheduled (Sales Pipeline)"']
    assert dict(history[contoso["Record ID"]])["Decision maker"] == _plain(
        contoso['Date entered "Decision maker bought-in (Sales Pipeline)"'], "%Y-%m-%d %H:%M")

    adventure = [s for s, _ in history[raw["Adventure Works - Expansion"]["Record ID"]]]
    assert adventure == ["Appointment", "Qualified", "Presentation", "Won"]  # one date per stage: the latest

    coho = [s for s, _ in history[raw["Coho Winery - Inventory app"]["Record ID"]]]
    assert coho == ["Appointment", "Presentation", "Qualified"]


def test_hubspot_open_deals_have_no_close_date(hubspot):
    """Open deals' Close Date is an expected date and is cleared; closed deals close at Close Date."""
    ds, _ = hubspot
    deals = ds.deals.set_index("deal_id")
    for r in _rows(HUBSPOT.parent / "deals.csv"):
        if _hubspot_outcome(r["Deal Stage"]) == "open":
            assert r["Close Date"], "fixture: HubSpot fills Close Date on open deals too"
            assert pd.isna(deals.loc[r["Record ID"], "closed_at"])
        else:
            assert deals.loc[r["Record ID"], "closed_at"] == _plain(r["Close Date"], "%Y-%m-%d %H:%M")
            assert deals.loc[r["Record ID"], "created_at"] == _plain(r["Create Date"], "%Y-%m-%d %H:%M")


# --- Pipedrive --------------------------------------------------------------------------------

def test_pipedrive_deleted_deal_is_excluded_and_reported(pipedrive):
    """Deleted deals are excluded, counted in dataset.exclusions and named by their CSV line, as a note (a
    deliberate exclusion, not a data problem); the rest keep their status."""
    ds, quality = pipedrive
    raw = _rows(PIPEDRIVE.parent / "deals.csv")
    deleted_lines = tuple(i + 2 for i, r in enumerate(raw) if r["Deal - Status"].lower() == "deleted")
    kept = {r["Deal - ID"]: r["Deal - Status"].lower() for r in raw if r["Deal - Status"].lower() != "deleted"}
    assert deleted_lines, "fixture: at least one deleted deal"
    assert dict(zip(ds.deals["deal_id"], ds.deals["outcome"])) == kept
    by_outcome = Counter(kept.values())
    assert ds.counts() == {"deals": len(kept), **{k: by_outcome[k] for k in ("won", "lost", "open")}}

    exclusions = ds.exclusions
    assert list(exclusions["table"]) == ["deals"] and list(exclusions["check"]) == ["excluded_by_mapping"]
    assert int(exclusions["rows"].sum()) == len(deleted_lines) == ds.report.excluded_rows()
    assert not [p for p in ds.report.warnings if p.check == "excluded_by_mapping"]
    problem, = [p for p in ds.report.notes if p.check == "excluded_by_mapping"]
    assert problem.rows == deleted_lines
    assert problem.column == "Deal - Status"
    assert set(problem.values) == {r["Deal - Status"] for r in raw if r["Deal - Status"].lower() == "deleted"}
    assert "on purpose" in ds.report.to_text()
    assert quality, "the exclusion raises a DataQualityWarning"


def test_pipedrive_closed_at_is_first_filled_of_won_and_lost_time(pipedrive):
    """Won deals close at Won time, lost deals at Lost time, open deals have no closed_at."""
    ds, _ = pipedrive
    deals = ds.deals.set_index("deal_id")
    fmt = "%Y-%m-%d %H:%M:%S"
    for r in _rows(PIPEDRIVE.parent / "deals.csv"):
        status = r["Deal - Status"].lower()
        assert not (r["Deal - Won time"] and r["Deal - Lost time"])
        if status == "deleted":
            continue
        assert deals.loc[r["Deal - ID"], "created_at"] == _plain(r["Deal - Deal created"], fmt)
        if status == "won":
            assert deals.loc[r["Deal - ID"], "closed_at"] == _plain(r["Deal - Won time"], fmt)
        elif status == "lost":
            assert deals.loc[r["Deal - ID"], "closed_at"] == _plain(r["Deal - Lost time"], fmt)
        else:
            assert pd.isna(deals.loc[r["Deal - ID"], "closed_at"])


def test_pipedrive_has_no_stage_history_and_keeps_attributes(pipedrive):
    """A Pipedrive export has no stage history (reported as a note); stage and loss reason stay as attributes."""
    ds, _ = pipedrive
    raw = {r["Deal - ID"]: r for r in _rows(PIPEDRIVE.parent / "deals.csv")}
    assert ds.stage_history.empty
    assert "no_stage_history" in {p.check for p in ds.report.notes}
    assert {"current_stage", "loss_reason", "currency"} <= set(ds.attributes)
    for _, deal in ds.deals.iterrows():
        source = raw[deal["deal_id"]]
        assert deal["current_stage"] == source["Deal - Stage"]
        assert deal["amount"] == float(source["Deal - Value"])
        assert (deal["loss_reason"] if pd.notna(deal["loss_reason"]) else "") == source["Deal - Lost reason"]


# --- all three ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda p: p.parent.name)
def test_example_validates_without_errors(spec):
    """`workbench.validate` finds no errors in the shipped example (warnings only for deliberate exclusions)."""
    report = workbench.validate(spec)
    assert not report.errors, report.to_text()
    assert report.exit_code == (1 if report.warnings else 0)


def test_loading_never_modifies_the_fixture_files():
    """Every file in the three example folders hashes the same before and after validating and loading."""
    files = sorted(p for spec in ALL_SPECS for p in spec.parent.iterdir() if p.is_file())
    assert len(files) >= 10

    def digest():
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    before = digest()
    for spec in ALL_SPECS:
        workbench.validate(spec)
        _load(spec)
    assert digest() == before
