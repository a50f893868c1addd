"""What runs in a worker for `workbench run`: one notebook job, or one segment's finishing task.

`execute_job` executes one (segment, notebook) job in a fresh `workbench` kernel with
Papermill (`execute_notebook`, which starts a second kernel if the first one dies), given
only that segment's slice of the data. `finish_segment` writes the segment's summary.json and
report.html in its temporary folder and then moves the folder into place
(`workbench.store.publish`). Both never raise: a failure is returned as the
job's or the segment's status. They are top-level functions so that multiprocessing and
Dask can pickle them by name.

Values of environment variables whose names look like credentials are scrubbed from
every file a segment writes (`redact_file`) and from every error message (`redact`).
"""
from __future__ import annotations

import ast
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import store
from .params import secret_values

#: The kernel every notebook runs in.
KERNEL = "workbench"


#: How many times a notebook is started when its kernel dies or fails to start. Kernels
#: started side by side can lose a race for a TCP port (papermill#511, jupyter_client#154);
#: a second start almost always gets through. An error raised by a cell is never retried.
KERNEL_ATTEMPTS = 2


@dataclass(frozen=True)
class Execution:
    """How one notebook execution ended: ``status`` is ``"ok"`` or ``"failed"``."""

    status: str
    error: str | None = None
    attempts: int = 1
    #: The kernel failure that made the last attempt a retry, if any.
    retried_after: str | None = None


def execute_notebook(input_path: str | Path, output_path: str | Path, *, parameters: dict, cwd: str | Path,
                     timeout: int | None = None) -> Execution:
    """Execute a notebook with Papermill in a fresh `workbench` kernel; never raises.

    The executed notebook is written to ``output_path`` (with the error marked if a cell
    raised). A kernel that dies or fails to start is started once more (`KERNEL_ATTEMPTS`).
    """
    retried_after = None
    for attempt in range(1, KERNEL_ATTEMPTS + 1):
        error, kernel_failed = _execute_once(input_path, output_path, parameters, cwd, timeout)
        if not kernel_failed or attempt == KERNEL_ATTEMPTS:
            break
        retried_after = error
    if kernel_failed and attempt > 1:
        error = f"{error} (the kernel failed in all {attempt} attempts)"
    if error and Path(output_path).exists():
        _mark_stopped(Path(output_path))
    return Execution("failed" if error else "ok", error, attempt, retried_after)


def _mark_stopped(path: Path) -> None:
    """Mark where a notebook stopped when nothing in it says so (a cell timed out, the kernel died):
    papermill then leaves every cell "completed" and no error, and the report would show a cut-off
    notebook as if whole. The last cell that started is marked as the one that failed."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - a notebook that cannot be read is reported as missing later
        return
    if any(o.output_type == "error" for c in nb.cells for o in c.get("outputs", [])):
        return  # a cell's own error marks the place already
    started = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("papermill", {}).get("start_time")]
    if started:
        started[-1].metadata.setdefault("papermill", {})["exception"] = True
    nb.metadata.setdefault("papermill", {})["exception"] = True
    nbformat.write(nb, path)


def _execute_once(input_path, output_path, parameters, cwd, timeout) -> tuple[str | None, bool]:
    """One Papermill execution: (the error or None, whether the kernel itself failed)."""
    import papermill
    import zmq
    from papermill.exceptions import PapermillExecutionError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            papermill.execute_notebook(str(input_path), str(output_path), parameters=parameters,
                                       kernel_name=KERNEL, cwd=str(cwd), progress_bar=False, log_output=False,
                                       execution_timeout=timeout, start_timeout=120,
                                       # The notebook is complete and saved: stop the kernel without
                                       # waiting for a graceful exit (saves ~0.7 s per job).
                                       shutdown_kernel="immediate")
    except PapermillExecutionError as exc:
        return f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}", False
    except Exception as exc:  # noqa: BLE001 - this notebook's failure, never the caller's
        # nbclient's DeadKernelError and jupyter_client's "Kernel died before replying" /
        # "didn't respond" are RuntimeErrors; a lost port race can also surface as a ZMQError.
        return f"{type(exc).__name__}: {exc}", isinstance(exc, (RuntimeError, zmq.ZMQError))
    return None, False


def execute_job(job: dict) -> dict:
    """Execute one (segment, notebook) job (`execute_notebook`); never raises.

    Returns status, error, attempts (and ``retried_after`` after a kernel failure), timing, and
    ``sections``: how many of the notebook's sections rendered, did not apply, or failed (by title).
    """
    start = time.time()
    done = execute_notebook(job["input"], job["output"], parameters=job["parameters"], cwd=job["cwd"],
                            timeout=job["timeout"])
    end = time.time()
    out = Path(job["output"])
    timing = _clean_notebook(out, job["notebook"], start, end) if out.exists() else {}
    record = {"status": done.status, "error": redact(done.error) if done.error else None,
              "duration_seconds": end - start, "worker": f"{socket.gethostname()}:{os.getpid()}",
              "attempts": done.attempts, **timing}
    if out.exists():
        record["sections"] = _section_counts(out)
    if done.retried_after:
        record["retried_after"] = redact(done.retried_after)
    return record


def _section_counts(path: Path) -> dict:
    from .sections.records import read_records

    records = read_records(path)
    return {"ok": sum(r["status"] == "ok" for r in records),
            "not_applicable": sum(r["status"] == "not_applicable" for r in records),
            "failed": [r["title"] for r in records if r["status"] == "failed"]}


def _clean_notebook(path: Path, notebook: str, start: float, end: float) -> dict:
    """Drop server paths from Papermill's metadata, scrub secrets, and time the phases of the run."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("papermill", {})
    meta["input_path"], meta["output_path"] = notebook, path.name
    nbformat.write(nb, path)
    redact_file(path)
    cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("papermill", {}).get("start_time")]
    if not cells:
        return {"kernel_start_seconds": end - start}
    stamp = lambda s: datetime.fromisoformat(s).timestamp()  # noqa: E731
    imports = analysis = 0.0
    for cell in cells:
        pm = cell.metadata["papermill"]
        seconds = pm.get("duration") or 0.0
        if _only_imports(cell.source):
            imports += seconds
        else:
            analysis += seconds
    last = cells[-1].metadata["papermill"]
    return {"kernel_start_seconds": stamp(cells[0].metadata["papermill"]["start_time"]) - start,
            "import_seconds": imports, "analysis_seconds": analysis,
            "teardown_seconds": end - stamp(last["end_time"]) if last.get("end_time") else None}


def _only_imports(source: str) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)


def finish_segment(task: dict) -> dict:
    """Summary, report and publication of one segment's folder; never raises.

    Nothing is recomputed: `summary.json`, the report's findings and the segment's status
    (``ok``, ``partial`` with ``reasons``, or ``failed``) come from the records the notebooks'
    sections left in their outputs (`workbench.sections.records`).
    """
    from .report import render_report
    from .sections import records as section_records
    from .summary import quality_note

    tmp, final = Path(task["tmp"]), Path(task["final"])
    out = {"status": "ok", "error": None, "reasons": [], "not_applicable": []}
    tick = time.perf_counter()
    try:
        if task["too_small"]:
            summary = task["summary"]
            found = list(summary["warnings"])
            rendered = []
        else:
            records, errors = [], dict(task.get("job_errors") or {})
            rendered = [name for name in task["notebooks"] if (tmp / name).exists()]
            for name in task["notebooks"]:
                if name not in rendered:
                    errors.setdefault(name, "the notebook was not written")
                    continue
                records += section_records.read_records(tmp / name)
                stopped = section_records.notebook_error(tmp / name)
                if stopped:
                    errors.setdefault(name, stopped)
            errors = {name: redact(error) for name, error in errors.items()}
            summary = section_records.build_summary(task["filter"], records, notebooks=rendered, counts=task["counts"],
                                                    excluded=task["excluded_rows"], notebook_errors=errors)
            found = section_records.key_findings(records)
            status, reasons = section_records.segment_status(records, errors, rendered)
            out.update(status=status, reasons=reasons, not_applicable=section_records.not_applicable(records))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        out["headline"] = {**summary["counts"], "win_probability": summary["win_probability"],
                           "median_days_to_close": summary["median_days_to_close"]}
        out["summary_seconds"] = time.perf_counter() - tick
        tick = time.perf_counter()
        render_report([tmp / name for name in rendered], tmp / "report.html",
                      title=task["title"], client=task["client"], branding=task["branding"],
                      segment_label=task["label"], quality_note=quality_note(summary), findings=found)
        out["report_seconds"] = time.perf_counter() - tick
        for path in tmp.rglob("*"):
            if path.is_file():
                redact_file(path)
        broken = store.check_complete(tmp, rendered)
    except Exception as exc:  # noqa: BLE001 - recorded as this segment's failure
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        broken = out["error"]
    out["error"] = redact(out["error"]) if out["error"] else None
    out["reasons"] = [redact(r) for r in out["reasons"]]
    if broken:
        # A folder that is not whole (a full disk, a write that failed) never replaces the last good one.
        kept = final.is_dir()
        store.discard(tmp)
        out.update(status="failed", error=redact(f"{broken}; " + ("the previous report was kept" if kept else
                                                                   "no report was published")))
        out["reasons"] = [out["error"]]
        return out
    store.publish(tmp, final)
    return out


def redact(text: str) -> str:
    """The text with every secret of the environment replaced by ``***``."""
    for secret in secret_values():
        text = text.replace(secret, "***")
    return text


def redact_file(path: Path) -> None:
    """Replace every secret of the environment in a text file (as written, JSON-escaped or HTML-escaped)."""
    import html

    if path.suffix not in (".ipynb", ".html", ".json", ".txt", ".md", ".csv", ".yaml", ".log"):
        return
    text = original = path.read_text(errors="surrogateescape")
    for secret in secret_values():
        for form in dict.fromkeys((secret, json.dumps(secret)[1:-1], html.escape(secret),
                                   json.dumps(html.escape(secret))[1:-1])):
            text = text.replace(form, "***")
    if text != original:
        path.write_text(text, errors="surrogateescape")
