"""Loading a CRM export: `workbench validate` and `load_dataset` beside plain typed reads of the same files.

The sample at ``--deals`` deals (100,000 by default; ``--deals 1000000`` is the issue's 13.3
million rows in five CSVs) is written once as CSV, then each reader runs in a fresh process of its
own, so that its peak memory (the process' resident-set high-water mark, interpreter and imports
included) is its own:

- ``validate``: `workbench.dataset.loader.validate` (what ``workbench validate`` runs);
- ``load_dataset``: `workbench.dataset.loader.load_dataset` (what ``workbench run`` loads before
  the first kernel starts);
- ``pyarrow``: ``pyarrow.csv.read_csv`` of the five files with its type inference (Arrow tables);
- ``duckdb``: DuckDB's ``read_csv_auto`` of the five files handed over as pandas frames;
- ``duckdb_arrow``: the same handed over as Arrow tables (no Python objects);
- ``duckdb_tables``: the same into DuckDB tables of its own (``CREATE TABLE ... AS SELECT``), the
  typed read the issue measured against;
- ``csv_read``: only our reading of the five files into text cells (`read_csv_text`: pyarrow's reader
  for a file of one record per line), and ``csv_read_pandas``: the same through pandas' C parser
  after the line scan (`_read_any`, what every file took before and what an irregular one takes).

Each is timed ``--repeat`` times (the minimum is printed: the machine is shared) and set against
the DuckDB reads as ratios. The process' CPU time (user and system, imports included) is printed
beside the wall time: on a busy machine it moves less than the wall time does (DuckDB's and
pyarrow's readers use every core, so their CPU time can exceed their wall time).

Then, once (it takes minutes at a million deals; ``--repeat`` does not apply):

- ``run``: the real ``workbench run`` CLI on the same folder, one report per value of the deals'
  ``persona`` (five) plus one for all deals, the ``cycle_time`` notebook only, as many workers as
  cores, no PDF, its output in a temporary folder. Printed: its exit status, wall time, the
  process tree's peak memory, what each process (the run, each worker, each kernel and the
  segment it serves) held at that peak, and the run's own phase timing from ``run.json``.

The process tree (the run and every descendant: workers, kernels) is polled every 0.2 s. Two sums
are kept: resident set sizes (RSS), an upper bound that counts pages shared between processes
(the interpreter, libraries, copy-on-write pages) once per process, and proportional set sizes
(PSS, from ``/proc/<pid>/smaps_rollup`` via psutil's ``memory_full_info``), which split each
shared page among the processes sharing it, so that their sum is what the tree holds. PSS costs a
walk of each process' page tables per poll (a few milliseconds at gigabytes), affordable at this
rate. A peak shorter than the polling interval can be missed.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_load.py [--deals 1000000] [--repeat 3]
[--data FOLDER] [--only READER ...]`` (``--data`` reuses a folder written by ``workbench
sample``; ``--only run`` measures the run alone).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TABLES = ("deals", "stage_history", "accounts", "contacts", "touchpoints")

#: Each reader as a program of its own; it prints its seconds and its peak RSS in MB as JSON.
_PROGRAM = """
import json, resource, sys, time, warnings
from pathlib import Path
folder, how = Path(sys.argv[1]), sys.argv[2]
tables = {tables!r}
start = time.perf_counter()
if how == "validate":
    from workbench.dataset.loader import validate
    rows = sum(p.count for p in validate(folder / "dataset.yaml").problems)
elif how == "load_dataset":
    from workbench.exceptions import DataQualityWarning
    from workbench.dataset.loader import load_dataset
    warnings.simplefilter("ignore", DataQualityWarning)
    data = load_dataset(folder / "dataset.yaml")
    rows = sum(len(getattr(data, t)) for t in tables)
elif how == "pyarrow":
    import pyarrow.csv
    rows = sum(pyarrow.csv.read_csv(folder / f"{{t}}.csv").num_rows for t in tables)
elif how == "duckdb":
    import duckdb
    con = duckdb.connect()
    rows = sum(len(con.sql(f"SELECT * FROM read_csv_auto('{{folder / t}}.csv')").df()) for t in tables)
elif how == "duckdb_arrow":
    import duckdb
    con = duckdb.connect()
    rows = sum(con.sql(f"SELECT * FROM read_csv_auto('{{folder / t}}.csv')").to_arrow_table().num_rows
               for t in tables)
elif how == "duckdb_tables":
    import duckdb
    con = duckdb.connect()
    rows = 0
    for t in tables:
        con.execute(f"CREATE TABLE {{t}} AS SELECT * FROM read_csv_auto('{{folder / t}}.csv')")
        rows += con.execute(f"SELECT count(*) FROM {{t}}").fetchone()[0]
elif how in ("csv_read", "csv_read_pandas"):
    from workbench.dataset import readers
    if how == "csv_read_pandas":
        readers._read_plain = lambda *args: None
    rows = sum(len(readers.read_csv_text(folder / f"{{t}}.csv", ",").frame) for t in tables)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,
                  "rows": rows}}))
""".format(tables=TABLES)

READERS = ("validate", "load_dataset", "csv_read", "csv_read_pandas", "pyarrow", "duckdb", "duckdb_arrow",
           "duckdb_tables")
#: Everything measured: the readers, then `workbench run` (`measure_run`).
MEASURES = (*READERS, "run")

#: The run specification of `measure_run`: all deals and one report per persona, one notebook.
_RUN_SPEC = """\
dataset: {dataset}
split: {{by: [persona]}}
overall: true
notebooks: [cycle_time]
workers: {workers}
pdf: false
output: output
"""
#: Seconds between two polls of the run's process tree.
POLL_SECONDS = 0.2


def measure(folder: Path, how: str) -> dict:
    """One read of ``folder`` by ``how`` in a fresh process: seconds, peak MB, rows."""
    out = subprocess.run([sys.executable, "-c", _PROGRAM, str(folder), how], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _role(process, root: int) -> str:
    """What a process of the run's tree is: the run, a worker, a kernel (with its segment), or else its name."""
    if process.pid == root:
        return "run (main)"
    cmdline = " ".join(process.cmdline())
    # A kernel runs in its segment's folder, segments/.<slug>.tmp-<pid>. The run's factory server
    # (`workbench.run.factoryserver`) forks each worker's kernel factory, which forks that worker's kernels:
    # both keep the server's command line, as a worker's own factory (`workbench.run.factory`) and its kernels
    # keep that factory's.
    segment = Path(process.cwd()).name.lstrip(".").split(".tmp-")[0]
    if "workbench.run.factory" in cmdline:
        depth = 0
        parent = process.parent()
        while parent is not None and "workbench.run.factory" in " ".join(parent.cmdline()):
            depth, parent = depth + 1, parent.parent()
        server = "workbench.run.factoryserver" in cmdline
        if depth == (2 if server else 1):
            return f"kernel {segment} (forked)"
        return "kernel factory server" if server and depth == 0 else "kernel factory"
    if "ipykernel_launcher" in cmdline:
        return f"kernel {segment}"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "multiprocessing" in cmdline:
        return "worker"
    return process.name()


def _tree_memory(root) -> list[dict]:
    """RSS, PSS and USS in MB of the run and each of its live descendants."""
    import psutil

    out = []
    for process in [root, *root.children(recursive=True)]:
        try:
            mem = process.memory_full_info()
            out.append({"pid": process.pid, "role": _role(process, root.pid), "rss": mem.rss / 2**20,
                        "pss": mem.pss / 2**20, "uss": mem.uss / 2**20})
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError, ProcessLookupError):
            continue  # gone between the listing and the read
    return out


def measure_run(folder: Path, tmp: Path, workers: int) -> dict:
    """`workbench run` over ``folder`` (see the module docstring): exit code, seconds, the process tree's
    peak RSS and PSS sums in MB, each process at the PSS peak, the timing of ``run.json``."""
    import psutil

    where = tmp / "run"
    where.mkdir()
    params = where / "params.yaml"
    params.write_text(_RUN_SPEC.format(dataset=json.dumps(str((folder / "dataset.yaml").resolve())), workers=workers))
    start = time.perf_counter()
    with open(where / "stdout.txt", "w") as out, open(where / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(params)], stdout=out, stderr=err)
        root = psutil.Process(proc.pid)
        peak_rss = peak_pss = 0.0
        at_peak: list[dict] = []
        at_peak_seconds = None
        while proc.poll() is None:
            tree = _tree_memory(root)
            peak_rss = max(peak_rss, sum(p["rss"] for p in tree))
            pss = sum(p["pss"] for p in tree)
            if pss > peak_pss:
                peak_pss, at_peak = pss, tree
                at_peak_seconds = time.perf_counter() - start
            time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - start
    run_file = where / "output" / "run.json"
    record = json.loads(run_file.read_text()) if run_file.exists() else {}
    return {"exit_code": proc.returncode, "seconds": seconds, "peak_rss_mb": peak_rss, "peak_pss_mb": peak_pss,
            "peak_at_seconds": at_peak_seconds, "at_peak": at_peak,
            "timing": record.get("timing", {}), "segments": len(record.get("segments", [])),
            "stdout": (where / "stdout.txt").read_text(), "stderr": (where / "stderr.txt").read_text()}


def print_run(r: dict, load_before: tuple) -> None:
    """The run's figures, as measured by `measure_run`."""
    status = "0, every report complete" if r["exit_code"] == 0 else f"{r['exit_code']}, NOT complete"
    load = lambda la: "/".join(f"{x:.1f}" for x in la)  # noqa: E731
    print(f"  run           {r['seconds']:7.2f} s  exit {status}; {r['segments']} segments; load average "
          f"(1/5/15 min) {load(load_before)} before, {load(os.getloadavg())} after")
    print(f"    process-tree peak: PSS {r['peak_pss_mb']:,.0f} MB, RSS {r['peak_rss_mb']:,.0f} MB "
          "(RSS counts shared pages once per process: an upper bound)")
    if r["at_peak"]:
        print(f"    at the PSS peak ({r['peak_at_seconds']:.0f} s in), per process (MB):")
        for p in r["at_peak"]:
            print(f"      {p['role']:34s} pid {p['pid']:>7}  PSS {p['pss']:7,.0f}  USS {p['uss']:7,.0f}  "
                  f"RSS {p['rss']:7,.0f}")
    timing = r["timing"]
    phases = ", ".join(f"{k.removesuffix('_seconds')} {v:.1f} s" for k, v in timing.items()
                       if k.endswith("_seconds") and isinstance(v, (int, float)))
    print(f"    run.json timing: {phases or 'none (no run.json)'}")
    report = {k.removesuffix("_seconds"): v for k, v in timing.get("per_report", {}).items()
              if k.endswith("_seconds") and isinstance(v, (int, float))}
    if report:
        print("    per report (mean): " + ", ".join(f"{k} {v:.1f} s" for k, v in report.items()))
    if r["exit_code"] != 0:
        print("    its output ends:\n" + "\n".join("      " + line for line in
                                                 (r["stdout"] + r["stderr"]).strip().splitlines()[-15:]))


def sample(n_deals: int, folder: Path) -> Path:
    """The sample at ``n_deals`` deals written as CSV into ``folder``."""
    from workbench.dataset.sample import generate

    generate(n_deals=n_deals).write_csv(folder)
    return folder


def main(n_deals: int, repeat: int, data: Path | None, readers: tuple[str, ...] = MEASURES) -> dict:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        folder = data or sample(n_deals, Path(tmp) / "sample")
        size = sum((folder / f"{t}.csv").stat().st_size for t in TABLES)
        results = {}
        for how in readers:
            if how == "run":
                continue
            runs = [measure(folder, how) for _ in range(repeat)]
            results[how] = {"seconds": min(r["seconds"] for r in runs), "cpu": min(r["cpu"] for r in runs),
                            "peak_mb": max(r["peak_mb"] for r in runs), "rows": runs[0]["rows"]}
        if "run" in readers:
            load_before = os.getloadavg()
            ran = measure_run(folder, Path(tmp), os.cpu_count() or 1)
    rows = results.get("pyarrow", results.get("duckdb", {})).get("rows")
    print(f"{folder}: {size / 1e6:,.0f} MB of CSV" + (f", {rows:,} rows in five files" if rows else "")
          + (f"; best of {repeat}" if results else ""))
    bases = [(name, results[how]["seconds"]) for how, name in (("duckdb", "DuckDB->pandas"),
                                                                ("duckdb_arrow", "DuckDB->Arrow"),
                                                                ("duckdb_tables", "DuckDB tables")) if how in results]
    for how, r in results.items():
        ratio = "  ".join(f"{r['seconds'] / base:5.1f}x {name}" for name, base in bases)
        print(f"  {how:15s} {r['seconds']:7.2f} s  (CPU {r['cpu']:7.2f} s)  peak {r['peak_mb']:7,.0f} MB  {ratio}")
    if "run" in readers:
        print_run(ran, load_before)
        results["run"] = {k: v for k, v in ran.items() if k not in ("stdout", "stderr")}
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, help="a folder written by `workbench sample` (skips writing one)")
    parser.add_argument("--only", nargs="+", choices=MEASURES, help="measure only these (`run`: workbench run)")
    args = parser.parse_args()
    main(args.deals, args.repeat, args.data, tuple(args.only or MEASURES))
