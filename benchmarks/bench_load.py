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
- ``duckdb_arrow``: the same handed over as Arrow tables (no Python objects).

Each is timed ``--repeat`` times (the minimum is printed: the machine is shared) and set against
both DuckDB reads as ratios. The process' CPU time (user and system, imports included) is printed
beside the wall time: on a busy machine it moves less than the wall time does (DuckDB's and
pyarrow's readers use every core, so their CPU time can exceed their wall time).

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_load.py [--deals 1000000] [--repeat 3]
[--data FOLDER]`` (``--data`` reuses a folder written by ``workbench sample``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,
                  "rows": rows}}))
""".format(tables=TABLES)

READERS = ("validate", "load_dataset", "pyarrow", "duckdb", "duckdb_arrow")


def measure(folder: Path, how: str) -> dict:
    """One read of ``folder`` by ``how`` in a fresh process: seconds, peak MB, rows."""
    out = subprocess.run([sys.executable, "-c", _PROGRAM, str(folder), how], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sample(n_deals: int, folder: Path) -> Path:
    """The sample at ``n_deals`` deals written as CSV into ``folder``."""
    from workbench.dataset.sample import generate

    generate(n_deals=n_deals).write_csv(folder)
    return folder


def main(n_deals: int, repeat: int, data: Path | None, readers: tuple[str, ...] = READERS) -> dict:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        folder = data or sample(n_deals, Path(tmp) / "sample")
        size = sum((folder / f"{t}.csv").stat().st_size for t in TABLES)
        results = {}
        for how in readers:
            runs = [measure(folder, how) for _ in range(repeat)]
            results[how] = {"seconds": min(r["seconds"] for r in runs), "cpu": min(r["cpu"] for r in runs),
                            "peak_mb": max(r["peak_mb"] for r in runs), "rows": runs[0]["rows"]}
    rows = results.get("pyarrow", results.get("duckdb", {})).get("rows")
    print(f"{folder}: {size / 1e6:,.0f} MB of CSV" + (f", {rows:,} rows in five files" if rows else "")
          + f"; best of {repeat}")
    bases = [(name, results[how]["seconds"]) for how, name in (("duckdb", "DuckDB->pandas"),
                                                                ("duckdb_arrow", "DuckDB->Arrow")) if how in results]
    for how, r in results.items():
        ratio = "  ".join(f"{r['seconds'] / base:5.1f}x {name}" for name, base in bases)
        print(f"  {how:13s} {r['seconds']:7.2f} s  (CPU {r['cpu']:7.2f} s)  peak {r['peak_mb']:7,.0f} MB  {ratio}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, help="a folder written by `workbench sample` (skips writing one)")
    parser.add_argument("--only", nargs="+", choices=READERS, help="run only these readers")
    args = parser.parse_args()
    main(args.deals, args.repeat, args.data, tuple(args.only or READERS))
