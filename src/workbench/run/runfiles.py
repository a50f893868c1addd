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

from ..exceptions import SpecError, WorkbenchError, fixes
from .secrets import redact

RUN_FILE = "run.json"
LOCK_FILE = ".run.lock"
#: Marks a folder as a workbench run's output: only such a folder, or an empty one, is written to.
MARKER_FILE = ".workbench-output"


def claim_output(output: Path) -> Path:
    """The run's output folder, created or confirmed as the workbench's own.

    A run writes, replaces and removes files in its folder (segments/, slices/, logs/...), so it
    only ever uses a folder that is new, empty, or was made by an earlier run (it holds
    `MARKER_FILE`, or a run.json). ``output: ..`` or ``output: /`` would otherwise replace
    someone else's files.

    Raises
    ------
    SpecError
        The folder exists, is not empty and is not a workbench output folder (or is not a folder).
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise SpecError(f"`output` is `{output}`, which is a file, not a folder. "
                        + fixes("choose a new folder for the run's output"))
    if output.is_dir() and not (output / MARKER_FILE).exists() and not (output / RUN_FILE).exists():
        if any(output.iterdir()):
            raise SpecError(f"`output` is `{output}`, a folder that is not empty and was not made by a workbench "
                            "run; a run replaces and removes files in its output folder, so it only writes to "
                            "a new or empty folder, or one an earlier run made. "
                            + fixes("choose a new folder, e.g. `output: output/my_run`",
                                    f"empty `{output}` first if nothing in it is needed"))
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER_FILE).touch()
    return output
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
    for path in (output / "logs").glob(".*.tmp-*"):
        path.unlink(missing_ok=True)
    for folder in ("segments", "slices"):
        for path in (output / folder).glob(".*.tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in (output / folder).glob(".*.old-*"):
            shutil.rmtree(path, ignore_errors=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Lock:
    """One run per output folder at a time; a lock left by a run that is gone is taken over.

    The lock file holds the run's process id and that process's start time, so a lock whose
    process id now belongs to another program (ids are reused) is seen to be stale.
    """

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(self.path)
            if holder is not None:
                pid, since = holder
                raise WorkbenchError(
                    f"Another run (process {pid}, started {since}) is writing to `{self.path.parent}`: its lock "
                    f"file is `{self.path}`. "
                    + fixes("wait for it to finish", "use another `output` folder",
                            f"if no run is going on (the process is something else now), delete `{self.path}`")
                ) from None
            self.path.unlink(missing_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, f"{os.getpid()} {_started(os.getpid())}".encode())
        os.close(fd)
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _holder(path: Path) -> tuple[int, str] | None:
    """(pid, start time as text) of the live run that holds the lock at ``path``; None for a stale lock."""
    try:
        fields = path.read_text().split()
        pid = int(fields[0])
        recorded = float(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    started = _started(pid)
    if started is None or (recorded is not None and abs(started - recorded) > 1.0):
        return None  # gone, or its id now belongs to another process
    return pid, datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- publishing a segment's folder -----------------------------------------------------------

def check_complete(folder: Path, notebooks=()) -> str | None:
    """Why ``folder`` is not a complete segment folder (``None`` if it is): its report, its summary and
    each of ``notebooks`` must be there and read back whole (a full disk leaves them cut or empty)."""
    import nbformat

    report = folder / "report.html"
    if not report.is_file() or not report.read_text(errors="replace").rstrip().endswith("</html>"):
        return "report.html is missing or cut off"
    try:
        json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return "summary.json is missing or not valid JSON"
    for name in notebooks:
        try:
            nbformat.read(str(folder / name), as_version=4)
        except Exception:  # noqa: BLE001 - any way of not reading back is a broken file
            return f"{name} is missing or not a valid notebook"
    return None


def discard(tmp: Path) -> None:
    """Remove a segment folder that will not be published (the previous one stays in place)."""
    shutil.rmtree(tmp, ignore_errors=True)
