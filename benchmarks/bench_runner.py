"""`workbench run` throughput: N segments of 2,000 deals, against the ideal.

The ideal is the time of one report alone x N / workers. One report alone is the
median over a run of three segments on one worker, one after the other (each
report's notebook job plus its summary and HTML, as the worker timed them). The
per-report overhead (kernel start, imports, kernel shutdown, HTML) is reported
apart from the analysis time, from `run.json`.

Run: ``.venv/bin/python benchmarks/bench_runner.py [--segments 40] [--deals 2000] [--workers N]``
(``--segments 6`` for a quick check; the full run takes several minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

from workbench.exceptions import DataQualityWarning
from workbench.runner import run
from workbench.sample import generate

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "cycle_time.ipynb"
PARAMETERS = {"segment_by": "persona", "covariates": ["persona", "channel", "amount"], "horizon": 365}


def _params(folder: Path, dataset: Path, split: dict, workers: int) -> Path:
    spec = {"dataset": str(dataset), "split": split, "overall": False, "notebooks": [str(NOTEBOOK)],
            "parameters": PARAMETERS, "min_deals_per_segment": 100, "output": str(folder / "out"),
            "workers": workers, "title": "Runner benchmark"}
    path = folder / "run.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def _timed_run(path: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    result = run(path, progress=sys.stderr.isatty())
    wall = time.perf_counter() - start
    if result.failures:
        print("  failures:", *result.failures[:5], sep="\n    ")
    return wall, json.loads((result.output / "run.json").read_text())


def _report_seconds(record: dict) -> list[float]:
    """Worker-side time of each report: its notebook jobs, summary and HTML."""
    jobs = {}
    for job in record["jobs"]:
        jobs[job["slug"]] = jobs.get(job["slug"], 0.0) + job["duration_seconds"]
    times = [jobs.get(s["slug"], 0.0) + (s["summary_seconds"] or 0) + (s["report_seconds"] or 0)
             for s in record["segments"]]
    return times


def _breakdown(record: dict) -> None:
    t = record["timing"]["per_report"]
    overhead = t["kernel_start_seconds"] + t["import_seconds"] + t["teardown_seconds"] + t["html_seconds"]
    print(f"    kernel start {t['kernel_start_seconds']:6.2f} s   imports {t['import_seconds']:6.2f} s   "
          f"kernel shutdown + save {t['teardown_seconds']:5.2f} s   HTML {t['html_seconds']:5.2f} s"
          f"   -> overhead {overhead:5.2f} s")
    print(f"    analysis     {t['analysis_seconds']:6.2f} s   summary.json {t['summary_seconds']:5.2f} s")


def main(segments: int, deals: int, workers: int) -> dict:
    warnings.simplefilter("ignore", DataQualityWarning)
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        tmp = Path(tmp)
        data = generate(n_deals=segments * deals, seed="bench-runner", truth_deals=1_000)
        data.deals["bench_segment"] = [f"s{i % segments:02d}" for i in range(len(data.deals))]
        dataset = data.write_csv(tmp / "data")
        print(f"{segments} segments x {deals:,} deals, {workers} workers, {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}; notebook {NOTEBOOK.name}")

        alone = {f"s{i:02d}": {"bench_segment": f"s{i:02d}"} for i in range(min(3, segments))}
        _, single = _timed_run(_params(tmp / "single", dataset, {"filters": alone}, 1))
        times = sorted(_report_seconds(single))
        one = times[len(times) // 2]
        print(f"one report alone: {one:6.1f} s of worker time (median of {', '.join(f'{t:.1f}' for t in times)} s,"
              f" one at a time on one worker)")
        _breakdown(single)

        wall, record = _timed_run(_params(tmp / "all", dataset, {"by": ["bench_segment"]}, workers))
        ideal = one * segments / workers
        t = record["timing"]
        print(f"whole run:        {wall:6.1f} s (load {t['load_seconds']:.1f} s, slices {t['slices_seconds']:.1f} s, "
              f"index {t['index_seconds']:.1f} s)")
        print(f"ideal:            {ideal:6.1f} s = {one:.1f} s x {segments} / {workers}  -> ratio {wall / ideal:.2f} "
              "(bar: 1.30)")
        print("per report in the parallel run:")
        _breakdown(record)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        return {"wall": wall, "ideal": ideal, "ratio": wall / ideal, "one_report": one}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--deals", type=int, default=2_000, help="deals per segment")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    main(args.segments, args.deals, args.workers)
