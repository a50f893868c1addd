"""`workbench demo` / `make demo`: the main job on the bundled sample data.

Until the per-segment report runner exists, the demo writes the sample data,
its validation report and a first analysis: time to close and win probability
per persona, censoring-aware.
"""
from __future__ import annotations

import json
from pathlib import Path

from .cycle import cycle_times
from .loader import load_dataset, validate
from .sample import generate

DEMO_DEALS = 20_000


def run_demo(output: Path) -> int:
    """Write the sample data, validate it, run the first analysis, print where things are."""
    output.mkdir(parents=True, exist_ok=True)
    spec = generate(n_deals=DEMO_DEALS, seed="workbench").write_csv(output / "sample")
    report = validate(spec)
    (output / "validation.txt").write_text(report.to_text() + "\n")
    dataset = load_dataset(spec)
    summary = cycle_times(dataset, by="persona").summary()
    summary.to_csv(output / "cycle_times_by_persona.csv", index=False)
    (output / "summary.json").write_text(json.dumps(
        {"counts": dataset.counts(), "as_of": str(dataset.as_of.date()), "excluded_rows": report.excluded_rows(),
         "cycle_times": summary.to_dict(orient="records")}, indent=2, default=float))
    print(repr(dataset))
    columns = ["segment", "deals", "open", "median_days", "median_low", "median_high", "win_probability"]
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nsample data and its dataset.yaml: {spec}")
    print(f"validation report:                {output / 'validation.txt'}")
    print(f"cycle times by persona:           {output / 'cycle_times_by_persona.csv'}")
    print(f"summary:                          {output / 'summary.json'}")
    return 0
