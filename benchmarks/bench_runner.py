"""`workbench run` with all five notebooks: how much of a report's time is its analysis.

Every run is ``workbench run`` in a new process, as a user starts it: its wall time runs from before that
process starts to after it exits, and so counts the interpreter, the imports, the kernels and the exit.

1. One 4,000-deal segment on one worker, ``--repeat`` times: the wall time, the notebooks' own cell time
   (cells that analyse, not the import cells) and the overhead share, and where the rest went (the first
   cell, between the notebooks, the report, the index, the exit); then the same with the kernels' imports
   kept warm by an earlier run (``--keep-warm``: the data also loaded in a process forked from its server), as
   for a user who runs again; beside it, the same five notebooks
   executed the library-default way (Papermill, a fresh kernel per notebook) against the runner's way (one
   warm kernel per segment, `workbench.run.jobs.execute_group`) on the same slice.
2. What a segment's kernel costs before its first cell, as a worker starts it ahead (the notebooks'
   imports sent to it): wall time and the kernel process's own CPU time, started the usual way and
   forked by a kernel factory (`workbench.run.factory`; beside it, the factory's own imports, which a run
   pays once, in its factory server).
3. N segments of 2,000 deals (default 40) on the given workers: wall time, cell time, overhead share,
   and how many kernels were forked.

Run: ``.venv/bin/python benchmarks/bench_runner.py [--segments 40] [--deals 2000] [--workers N] [--repeat 3]``
(``--segments 6`` for a quick check, ``--segments 0`` for the one segment only; the full run takes
several minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import yaml

from workbench.exceptions import DataQualityWarning
from workbench.run.jobs import execute_group, execute_job
from workbench.run.notebooks import DEFAULT_NOTEBOOKS, resolve_notebook
from workbench.dataset.sample import generate

ROOT = Path(__file__).resolve().parents[1]

#: Seconds the kept-warm runs keep their server (it exits that long after the benchmark's last one).
KEEP_WARM = 20


def _params(folder: Path, dataset: Path, split: dict, workers: int) -> Path:
    spec = {"dataset": str(dataset), "split": split, "overall": False, "min_deals_per_segment": 100,
            "output": str(folder / "out"), "workers": workers, "title": "Runner benchmark"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _timed_run(path: Path, *options: str) -> tuple[float, dict, float]:
    """``workbench run`` as a user runs it (a new process), its wall time from before that process starts to
    after it exits, its run.json, and when that run started (epoch seconds)."""
    started = time.time()
    done = subprocess.run([str(Path(sys.executable).with_name("workbench")), "run", str(path), *options],
                          capture_output=True, text=True)
    wall = time.time() - started
    if done.returncode:
        print("  not complete:", *done.stderr.strip().splitlines()[-5:], sep="\n    ")
    record = yaml.safe_load(path.read_text())
    return wall, json.loads((Path(record["output"]) / "run.json").read_text()), started


def _cells(record: dict) -> float:
    """The notebooks' own analysis time: every cell that is not only imports, over all jobs."""
    return sum(job.get("analysis_seconds") or 0.0 for job in record["jobs"])


def _share(wall: float, cells: float, workers: int) -> str:
    overhead = 1 - cells / workers / wall
    return f"wall {wall:6.1f} s   notebooks' own cells {cells:6.1f} s   overhead {100 * overhead:4.1f}% of the wall time"


def _one_segment(tmp: Path, repeat: int) -> None:
    data = generate(n_deals=4_000, seed="bench-runner-one", truth_deals=1_000)
    dataset = data.write_csv(tmp / "one-data")
    params = _one_params(tmp, dataset)
    print(f"one 4,000-deal segment, five notebooks, one worker (`workbench run`, {repeat} runs):")
    for _ in range(repeat):
        wall, record, started = _timed_run(params)
        print(f"    {_share(wall, _cells(record), 1)}")
        print("        " + _timeline(Path(yaml.safe_load(params.read_text())["output"]), record, started, wall))
    # Kept warm: a first run starts the server and keeps it (not shown), the runs after it lease it.
    print(f"the same, kept warm (`workbench run --keep-warm {KEEP_WARM}`: the kernels' imports done by an earlier "
          f"run, the data loaded in a process forked from its server; {repeat} runs):")
    _timed_run(params, "--keep-warm", str(KEEP_WARM))
    for _ in range(repeat):
        wall, record, started = _timed_run(params, "--keep-warm", str(KEEP_WARM))
        print(f"    {_share(wall, _cells(record), 1)}   [{record['kernel']['factory_server']}; data "
              f"{record['timing']['data_phase'].removeprefix('in ')}]")
        print("        " + _timeline(Path(yaml.safe_load(params.read_text())["output"]), record, started, wall))
    # The same slice, the five notebooks one fresh kernel each (Papermill's default) and in one warm kernel.
    slice_spec = tmp / "one" / "out" / "slices" / "overall" / "dataset.yaml"
    for label, warm in (("a fresh kernel per notebook (Papermill's default)", False),
                        ("one warm kernel per segment (workbench run)", True)):
        folder = tmp / ("warm" if warm else "fresh")
        folder.mkdir()
        jobs = [{"input": str(resolve_notebook(name, ROOT)), "output": str(folder / f"{name}.ipynb"),
                 "cwd": str(folder), "parameters": {"dataset_path": str(slice_spec)}, "timeout": None,
                 "notebook": name} for name in DEFAULT_NOTEBOOKS]
        start = time.perf_counter()
        records = execute_group({"jobs": jobs}) if warm else [execute_job(job) for job in jobs]
        took = time.perf_counter() - start
        cells = sum(r.get("analysis_seconds") or 0.0 for r in records)
        print(f"    {label:52s} {took:5.1f} s ({cells:4.1f} s of cells, overhead {100 * (1 - cells / took):4.1f}%)")


def _timeline(output: Path, record: dict, started: float, wall: float) -> str:
    """Where the run's time went: seconds from the command's start to its first cell, between the notebooks,
    from the last cell to the report, to the index, and to the command's exit."""
    import nbformat

    def stamp(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - started

    spans = []
    for path in (output / "segments").rglob("*.ipynb"):
        cells = [c for c in nbformat.read(path, as_version=4).cells
                 if c.cell_type == "code" and c.metadata.get("papermill", {}).get("end_time")]
        spans.append((stamp(cells[0].metadata.papermill.start_time), stamp(cells[-1].metadata.papermill.end_time)))
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    reports = max(p.stat().st_mtime for p in (output / "segments").rglob("report.html")) - started
    index = (output / "index.html").stat().st_mtime - started
    around = sum(j["duration_seconds"] - (j.get("analysis_seconds") or 0.0) for j in record["jobs"])
    return (f"first cell at {first:.2f} s (the data loaded in {record['timing']['load_seconds']:.2f} s meanwhile); "
            f"around the notebooks {around:.2f} s; last cell to report {reports - last:.2f} s; index "
            f"{index - reports:.2f} s; exit {wall - index:.2f} s")


def _kernel_starts(tmp: Path, n: int = 3) -> None:
    import psutil

    from workbench.run.factory import KernelFactory
    from workbench.run.jobs import KERNEL, WarmKernel
    from workbench.run.notebooks import preload_code

    preload = preload_code([str(resolve_notebook(name, ROOT)) for name in DEFAULT_NOTEBOOKS])
    folder = tmp / "starts"
    folder.mkdir()

    def start(factory) -> tuple[float, float]:
        """Wall and the kernel process's own CPU seconds, from the start to the imports done."""
        tick = time.perf_counter()
        with WarmKernel(folder, factory=factory) as kernel:
            kernel.prestart(preload)
            kernel.manager()  # waits for the imports, as the first notebook does
            times = psutil.Process(kernel.km.provisioner.pid).cpu_times()
            assert kernel.forked == (factory is not None)
            return time.perf_counter() - tick, times.user + times.system

    def show(label: str, factory) -> None:
        walls, cpus = zip(*(start(factory) for _ in range(n)))
        print(f"    a segment's kernel {label:28s} wall {min(walls):4.2f}-{max(walls):4.2f} s, "
              f"CPU {min(cpus):4.2f}-{max(cpus):4.2f} s (the kernel process's own; {n} kernels)")

    show("started the usual way:", None)
    factory = KernelFactory.start(KERNEL, preload, folder)
    if factory is None:
        print("    kernels cannot be forked here")
        return
    try:
        first, _ = start(factory)
        show("forked by a kernel factory:", factory)
        print(f"    a factory's imports, once per run (the run's factory server): "
              f"{sum(psutil.Process(factory.process.pid).cpu_times()[:2]):.2f} s CPU; "
              f"its first kernel ready {first:.2f} s after it started")
    finally:
        factory.close()


def _one_params(tmp: Path, dataset: Path) -> Path:
    spec = {"dataset": str(dataset), "overall": True, "min_deals_per_segment": 100, "workers": 1,
            "output": str(tmp / "one" / "out"), "title": "Runner benchmark"}
    (tmp / "one").mkdir(parents=True, exist_ok=True)
    path = tmp / "one" / "run.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def main(segments: int, deals: int, workers: int, repeat: int) -> None:
    warnings.simplefilter("ignore", DataQualityWarning)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        tmp = Path(tmp)
        _one_segment(tmp, repeat)
        _kernel_starts(tmp)
        if segments:
            _many_segments(tmp, segments, deals, workers)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def _many_segments(tmp: Path, segments: int, deals: int, workers: int) -> None:
    data = generate(n_deals=segments * deals, seed="bench-runner", truth_deals=1_000)
    data.deals["bench_segment"] = [f"s{i % segments:02d}" for i in range(len(data.deals))]
    dataset = data.write_csv(tmp / "data")
    wall, record, _ = _timed_run(_params(tmp / "all", dataset, {"by": ["bench_segment"]}, workers))
    print(f"{segments} segments x {deals:,} deals, five notebooks, {workers} workers: "
          f"{_share(wall, _cells(record), workers)}")
    t = record["timing"]
    kernels = [job.get("kernel", "started") for job in record["jobs"]]
    print(f"    load {t['load_seconds']:.1f} s, slices {t['slices_seconds']:.1f} s, index {t['index_seconds']:.1f} s; "
          f"per report HTML {t['per_report']['html_seconds']:.2f} s; notebooks on forked kernels "
          f"{kernels.count('forked')} of {len(kernels)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--deals", type=int, default=2_000, help="deals per segment")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the one-segment report")
    args = parser.parse_args()
    main(args.segments, args.deals, args.workers, args.repeat)
