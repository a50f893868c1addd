"""A run's bookkeeping in its output folder: ``run.json``, the lock, and leftovers of interrupted runs.

``run.json`` records the parameters, library versions, data fingerprints, and every
job's status and timing (the notebooks fingerprinted with `sha256`); an ``--only-failed``
rerun reads the previous one back. The lock (``.run.lock``) allows one run per output
folder at a time, and the run holding it removes what interrupted runs left behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .exceptions import WorkbenchError, fixes
from .jobs import redact

RUN_FILE = "run.json"
LOCK_FILE = ".run.lock"
KEY_LIBRARIES = ("workbench", "numpy", "pandas", "scipy", "statsmodels", "lifelines", "matplotlib", "pyarrow",
                 "papermill", "nbclient", "nbconvert", "ipykernel", "jupyter_client", "dask", "distributed")


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in KEY_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def write_run_file(output, params, inputs, kernel, executor, workers, scheduler, started, timing, result):
    record = {"format": 1, "params_file": str(params.path), "inputs": inputs, "kernel": kernel,
              "executor": {"kind": executor, "workers": workers if executor == "local" else None,
                           "scheduler": scheduler},
              "versions": _versions(), "started_at": started.isoformat(),
              "finished_at": datetime.now(timezone.utc).isoformat(), "timing": timing, "notes": result.notes,
              "status": "failed" if result.failures else "partial" if result.partial else "ok",
              "failures": result.failures, "partial": result.partial,
              "segments": result.segments, "jobs": result.jobs}
    tmp = output / f".{RUN_FILE}.tmp-{os.getpid()}"
    tmp.write_text(redact(json.dumps(record, indent=2, allow_nan=False, default=str)) + "\n")
    os.replace(tmp, output / RUN_FILE)


def previous_run(output: Path) -> dict:
    path = output / RUN_FILE
    if not path.exists():
        raise WorkbenchError(f"`--only-failed` needs a previous run, but `{path}` does not exist. "
                             + fixes("run without `--only-failed` first"))
    return json.loads(path.read_text())


def remove_leftovers(output: Path) -> None:
    """Temporary folders of interrupted runs (this run holds the lock, so none is in use)."""
    for path in output.glob(f".{RUN_FILE}.tmp-*"):
        path.unlink(missing_ok=True)
    for folder in ("segments", "slices"):
        for path in (output / folder).glob(".*.tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in (output / folder).glob(".*.old-*"):
            shutil.rmtree(path, ignore_errors=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Lock:
    """One run per output folder at a time; a lock left by a dead process is taken over."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise WorkbenchError(f"Another run (process {pid}) is writing to `{self.path.parent}`. "
                                     + fixes("wait for it to finish", "use another `output` folder")) from None
            self.path.unlink(missing_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
