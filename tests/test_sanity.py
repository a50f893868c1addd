"""Export sanity notes: a cut extract, stale open deals, an import day, columns decided by the outcome.

Each test writes a small export with one trap into tmp_path, and the same export without it; the
note must name the trap, count it from the data written here, and exclude nothing (exit 0).
"""
from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np

import workbench
from workbench.dataset.sanity import quality_notes
from workbench.run.summary import quality_note

START = date(2023, 10, 1)


def _write(tmp_path: Path, rows: list[dict], as_of: str = "2025-06-30") -> Path:
    with open(tmp_path / "deals.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "dataset.yaml").write_text(f'name: sanity\nas_of: "{as_of}"\ndeals:\n  source: deals.csv\n')
    return tmp_path / "dataset.yaml"


def _deals(days: int = 240, cut: date | None = None, open_every: int = 0) -> list[dict]:
    """One deal a day from START; closes 5 to 40 days later (every fourth 150 to 199 days), won and
    lost in turn; every ``open_every``-th deal open; with ``cut``, deals closed before it are missing."""
    rows = []
    for i in range(days):
        created = START + timedelta(days=i)
        closed = created + timedelta(days=150 + i % 50 if i % 4 == 0 else 5 + (i * 7) % 36)
        is_open = open_every and i % open_every == 0
        if cut and not is_open and closed < cut:
            continue
        rows.append({"deal_id": f"D{i:04d}", "created_at": created.isoformat(),
                     "closed_at": "" if is_open else closed.isoformat(),
                     "outcome": "open" if is_open else ("won" if i % 2 else "lost"),
                     "amount": 1000 + 10 * i, "region": ("North", "South", "East")[i % 3]})
    return rows


def _note(report, check):
    found = [p for p in report.notes if p.check == check]
    return found[0] if found else None


def test_a_cut_extract_is_noted(tmp_path):
    """Closes beginning months after creations, while most deals close within 5-40 days, give `truncated_extract`."""
    cut = date(2024, 3, 1)
    rows = _deals(cut=cut)
    report = workbench.validate(_write(tmp_path, rows))
    note = _note(report, "truncated_extract")
    first_close = min(r["closed_at"] for r in rows if r["closed_at"])
    assert note is not None and first_close in note.message
    assert note.count == sum(r["created_at"] < first_close for r in rows)
    assert "too long" in note.message and "export again" in note.fix
    assert report.exit_code == 0 and report.excluded_rows() == 0
    assert _note(workbench.validate(_write(tmp_path, _deals())), "truncated_extract") is None


def test_stale_open_deals_are_counted(tmp_path):
    """Open deals far older than the age by which 95% of closed deals closed are counted as stale."""
    rows = _deals(days=120)
    ages = (200, 250, 300, 350, 400, 180, 190, 210, 220, 230, 260)
    as_of = START + timedelta(days=430)
    rows += [{"deal_id": f"S{k}", "created_at": (as_of - timedelta(days=a)).isoformat(), "closed_at": "",
              "outcome": "open", "amount": 500, "region": "North"} for k, a in enumerate(ages)]
    rows += [{"deal_id": f"N{k}", "created_at": (as_of - timedelta(days=3)).isoformat(), "closed_at": "",
              "outcome": "open", "amount": 500, "region": "South"} for k in range(3)]
    report = workbench.validate(_write(tmp_path, rows, as_of.isoformat()))
    note = _note(report, "stale_open_deals")
    cycles = [(date.fromisoformat(r["closed_at"]) - date.fromisoformat(r["created_at"])).days
              for r in rows if r["closed_at"]]
    p95 = float(np.quantile(cycles, 0.95))
    stale = sum(a > p95 for a in ages)
    assert note is not None and note.count == stale and 0 < stale < len(ages)
    assert f"{stale} of {len(ages) + 3} open deals are older than {p95:.0f} days" in note.message
    assert "win rates down" in note.message and "close them" in note.fix
    fresh = [r for r in rows if not r["deal_id"].startswith("S")]
    assert _note(workbench.validate(_write(tmp_path, fresh, as_of.isoformat())), "stale_open_deals") is None


def test_an_import_day_is_noted(tmp_path):
    """Sixty deals created on one day among one a day gives `creation_date_pile`, naming the day."""
    rows = _deals(days=100)
    pile = START + timedelta(days=50)
    rows += [{"deal_id": f"I{k}", "created_at": pile.isoformat(), "closed_at": (pile + timedelta(days=9)).isoformat(),
              "outcome": "won", "amount": 700, "region": "East"} for k in range(60)]
    note = _note(workbench.validate(_write(tmp_path, rows)), "creation_date_pile")
    assert note is not None and note.values == (pile.isoformat(),)
    assert note.count == sum(r["created_at"] == pile.isoformat() for r in rows)
    assert _note(workbench.validate(_write(tmp_path, _deals(days=100))), "creation_date_pile") is None


def test_columns_decided_by_the_outcome_are_noted(tmp_path):
    """An amount 0 on every lost deal and a copy of the outcome are `outcome_decided`; region is not, nor a
    column filled on lost deals only (a reason, which the drivers hold out without a note here)."""
    rows = _deals(days=120)
    for r in rows:
        r["amount"] = 0 if r["outcome"] == "lost" else r["amount"]
        r["status_text"] = {"won": "Closed Won", "lost": "Closed Lost", "open": "Open"}[r["outcome"]]
        # filled on one outcome only, as a reason is: its shape says what it is
        r["objection"] = ("price", "timing")[int(r["deal_id"][1:]) % 4 // 2] if r["outcome"] == "lost" else ""
    report = workbench.validate(_write(tmp_path, rows))
    decided = {p.column for p in report.notes if p.check == "outcome_decided"}
    assert decided == {"amount", "status_text"}
    (amount,) = [p for p in report.notes if p.check == "outcome_decided" and p.column == "amount"]
    lost = sum(r["outcome"] == "lost" for r in rows)
    assert f"`0` on 100% of the {lost} lost deals" in amount.message
    assert report.exit_code == 0


def test_report_quality_box_carries_the_notes(tmp_path):
    """The data-quality box of a report lists the sanity notes below the excluded-rows sentence."""
    report = workbench.validate(_write(tmp_path, _deals(cut=date(2024, 3, 1))))
    notes = quality_notes(report)
    assert len(notes) == 1 and "looks cut" in notes[0]
    text = quality_note({"excluded_rows": {"count": 0, "by_reason": []}}, notes)
    assert text.splitlines()[0] == "No rows were excluded while loading the data."
    assert text.splitlines()[1] == f"- {notes[0]}"


def test_stale_after_days_closes_old_open_deals_as_lost(tmp_path):
    """`stale_after_days: N` makes open deals older than N days lost, closed N days after creation, in a note
    listing their lines; the stale note then no longer fires."""
    as_of = START + timedelta(days=430)
    rows = _deals(days=120)
    rows += [{"deal_id": f"S{k}", "created_at": (as_of - timedelta(days=a)).isoformat(), "closed_at": "",
              "outcome": "open", "amount": 500, "region": "North"} for k, a in enumerate(range(200, 420, 20))]
    rows += [{"deal_id": "N1", "created_at": (as_of - timedelta(days=3)).isoformat(), "closed_at": "",
              "outcome": "open", "amount": 500, "region": "South"}]
    spec = _write(tmp_path, rows, as_of.isoformat())
    assert "stale_after_days" in _note(workbench.validate(spec), "stale_open_deals").fix
    spec.write_text(spec.read_text().replace("deals:\n", "stale_after_days: 150\ndeals:\n", 1))
    report = workbench.validate(spec)
    note = _note(report, "stale_closed_as_lost")
    stale = [i for i, r in enumerate(rows, start=2) if r["outcome"] == "open"
             and (as_of - date.fromisoformat(r["created_at"])).days > 150]
    assert note is not None and note.rows == tuple(stale) and note.count == len(stale)
    assert _note(report, "stale_open_deals") is None and report.exit_code == 0
    ds = workbench.load_dataset(spec)
    closed = ds.deals.set_index("deal_id").loc[[r["deal_id"] for r in rows if r["deal_id"].startswith("S")]]
    assert (closed["outcome"] == "lost").all()
    assert ((closed["closed_at"] - closed["created_at"]).dt.days == 150).all()
    assert ds.deals.set_index("deal_id").loc["N1", "outcome"] == "open"
