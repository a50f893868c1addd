"""`workbench demo` / `make demo`: the main job on the bundled sample data."""
from __future__ import annotations

import json
from pathlib import Path

from .loader import load_dataset, validate
from .sample import generate


def run_demo(output: Path) -> int:
    """Write the sample data, validate it, run the first analyses, print where things are."""
    output.mkdir(parents=True, exist_ok=True)
    spec = generate(n_deals=20_000, seed="workbench").write_csv(output / "sample")
    report = validate(spec)
    (output / "validation.txt").write_text(report.to_text() + "\n")
    dataset = load_dataset(spec)
    overview = overview_table(dataset)
    overview.to_csv(output / "overview_by_persona.csv", index=False)
    (output / "summary.json").write_text(json.dumps({"counts": dataset.counts(), "as_of": str(dataset.as_of.date()),
                                                     "excluded_rows": report.excluded_rows()}, indent=2))
    print(repr(dataset))
    print(overview.to_string(index=False))
    print(f"\nsample data and its dataset.yaml: {spec}")
    print(f"validation report:               {output / 'validation.txt'}")
    print(f"overview by persona:             {output / 'overview_by_persona.csv'}")
    return 0


def overview_table(dataset, by: str = "persona"):
    """Deals, outcomes and Kaplan-Meier median days to close per segment."""
    from lifelines import KaplanMeierFitter

    deals = dataset.deals
    end = deals["closed_at"].fillna(dataset.as_of)
    days = (end - deals["created_at"]).dt.total_seconds() / 86400
    closed = deals["outcome"].ne("open")
    rows = []
    for level, idx in deals.groupby(by, dropna=False).groups.items():
        km = KaplanMeierFitter().fit(days[idx], closed[idx])
        counts = deals.loc[idx, "outcome"].value_counts()
        rows.append({by: level, "deals": len(idx), "won": int(counts.get("won", 0)),
                     "lost": int(counts.get("lost", 0)), "open": int(counts.get("open", 0)),
                     "median_days_to_close": float(km.median_survival_time_)})
    return __import__("pandas").DataFrame(rows)
