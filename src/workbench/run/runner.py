"""`workbench run`: one report per segment, unattended, safe to hand to a client.

The run checks everything first (the parameter file, every notebook's parameters
cell, the kernel), loads the dataset once and splits it into segments (`prepare`; after a
run that kept its kernels' imports warm, in a process forked from that run's factory server). Each
segment's rows are written as a slice (`workbench.dataset.store`), all of them before
the first kernel starts, and the run then lets go of the data; a segment's notebooks
execute in turn with Papermill in a `workbench` kernel of the segment's own (started
ahead by its worker), given only that slice (`workbench.run.jobs`). Jobs run in parallel on local worker processes or
on a Dask cluster (`workbench.run.executors`); one failing job does not stop the others.

Output folder::

    run.json                    parameters, versions, data fingerprints, every job's status and timing
    index.html                  links to every segment's report (`workbench.run.report.write_index`)
    slices/<slug>/              each segment's data: Parquet tables, dataset.yaml, quality.json
    segments/<slug>/            executed notebooks, report.html, summary.json
    logs/workers.log            the local workers' and kernels' own log lines

A segment folder is built in ``segments/.<slug>.tmp-<pid>`` and moved into place
only when complete, so an interrupted run never leaves a half-written report that
looks finished. Secrets of the environment are scrubbed from everything the run
writes (`workbench.run.jobs`); ``run.json``, the lock and leftovers of interrupted runs
are kept by `workbench.run.runfiles`.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from ..exceptions import DataQualityWarning, WorkbenchError, fixes
from .executors import WORKER_DEFAULTS, DaskPool, LocalPool
from .jobs import KERNEL, execute_group, finish_segment
from .notebooks import DEFAULT_NOTEBOOKS, preload_code, project_root, resolve_notebook
from .params import DATASET_PARAMETER, RunParams, check_columns, load_params, notebook_parameters, parameters_for
from .runfiles import LOCK_FILE, RUN_FILE, Lock, claim_output, previous_run, remove_leftovers, sha256, write_run_file
from .secrets import redact, redact_file

#: Where local workers' stderr goes (and so the kernels' own log lines), not the terminal.
LOG_FILE = "logs/workers.log"
#: What the data phase (`prepare`) imports as it goes: a kept-warm factory server imports these while it waits
#: for its next run, so that the process it forks for that run's data phase has nothing left to import.
WARM_IMPORTS = ("workbench.dataset.loader", "workbench.dataset.store", "workbench.dataset.model",
                "workbench.dataset.sanity", "workbench.run.segments", "workbench.run.summary",
                "workbench.sections.settings")
KERNEL_FIX = fixes("`make kernel`", f"`.venv/bin/python -m ipykernel install --sys-prefix --name {KERNEL}`")


@dataclass
class RunResult:
    """What a run did: one record per segment and per job, as written to ``run.json``."""

    output: Path
    segments: list[dict]
    jobs: list[dict]
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0: every report complete; 1: some segment (or the index) failed; 3: none failed, some partial."""
        return 1 if self.failures else 3 if self.partial else 0


# --- checks before any kernel starts ---------------------------------------------------------

def check_kernel(name: str = KERNEL) -> dict:
    """The kernelspec Papermill will start, found the way Jupyter finds it.

    Raises
    ------
    WorkbenchError
        No kernelspec of that name is installed where Jupyter looks.
    """
    from .factory import kernel_spec

    try:
        spec = kernel_spec(name)
    except (ValueError, KeyError, TypeError) as exc:  # jupyter_client's, on a kernel.json that does not read
        raise WorkbenchError(f"The Jupyter kernel `{name}` is installed, but its kernel.json does not read "
                             f"({type(exc).__name__}: {exc}). " + KERNEL_FIX) from None
    if spec is None:
        raise WorkbenchError(f"The Jupyter kernel `{name}` is not installed, so no notebook can run. "
                             + KERNEL_FIX)
    return {"name": name, "display_name": spec.display_name, "resource_dir": spec.resource_dir}


# --- the run ------------------------------------------------------------------------------------

def run(params_path: str | Path, *, only_failed: bool = False, workers: int | None = None,
        executor: str = "local", scheduler: str | None = None, progress: bool = True,
        pdf: bool | None = None, keep_warm: float = 0.0) -> RunResult:
    """Run every (segment, notebook) job of a parameter file; see the module docstring.

    Parameters
    ----------
    only_failed : bool
        Rerun only the jobs that failed in the previous ``run.json`` of the same output
        folder (the inputs must be unchanged); every other segment is kept as it is.
    workers : int, optional
        Local worker processes; default: the file's ``workers``, else the number of cores.
    executor : {"local", "dask"}
        ``dask`` submits the same jobs to the Dask scheduler at ``scheduler``; its
        workers must see the output folder at the same path.
    keep_warm : float
        Seconds the local kernels' imports are kept warm after the run, for the next run of the same
        notebooks in the same environment (`workbench.run.factoryserver`); that run then uses them. 0: the
        kernel factory server exits with the run.

    Raises
    ------
    SpecError, CredentialsError
        The parameter file or a notebook's parameters are wrong (before any kernel starts).
    WorkbenchError
        The kernel is missing, the dataset does not load, or the inputs of an
        ``only_failed`` rerun differ from the previous run's.
    """
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    # The kernels' imports begin first of all, from the notebooks the specification names, and run while the
    # run checks its parameters, loads and plans its data and starts its workers. The server's own lines reach
    # the run's log at its end.
    server_log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    server = _factory_server(params_path, server_log, keep_warm) if executor == "local" else None
    try:
        return _run(params_path, only_failed, workers, executor, scheduler, progress, pdf, started, t0, server,
                    server_log)
    finally:
        if server is not None:
            server.close()  # closed already unless the run stopped before it had a log
        server_log.close()


def _run(params_path, only_failed, workers, executor, scheduler, progress, pdf, started, t0, server, server_log):
    """`run`, given its kernel factory server (None: each local worker starts its own factory) and its log."""
    params = load_params(params_path)
    if pdf is not None:
        params = replace(params, spec=params.spec.model_copy(update={"pdf": pdf}))
    kernel = {**check_kernel(), "factory_server": _server_state(server)}
    if executor not in ("local", "dask"):
        raise WorkbenchError(f"Unknown executor `{executor}`. " + fixes("use `local` or `dask`"))
    if executor == "dask" and not scheduler:
        raise WorkbenchError("`--executor dask` needs the scheduler's address. "
                             + fixes("pass `--scheduler tcp://host:8786`"))
    workers = workers or params.spec.workers or os.cpu_count() or 1
    output = claim_output(params.output)
    with Lock(output / LOCK_FILE):
        previous = previous_run(output) if only_failed else None
        remove_leftovers(output)
        # This run's worker log, moved over logs/workers.log once the run got past loading the data,
        # so that a run that stops early never wipes the last good run's log.
        log = output / LOG_FILE
        log.parent.mkdir(exist_ok=True)
        run_log = log.with_name(f".{log.name}.tmp-{os.getpid()}")
        run_log.write_text("")
        # Started before the data loads, so that local workers start and import meanwhile.
        # Local workers start each next kernel ahead, in the logs folder (no Python file there).
        spare = {"notebooks": [str(path) for path in params.notebooks], "cwd": str(log.parent)}
        pool = DaskPool(scheduler) if executor == "dask" else LocalPool(
            workers, run_log, spare=spare, factories=None if server is None else server.address)
        interrupted, reached = True, {"loaded": False}
        try:
            result = _run_locked(params, kernel, output, previous, pool, workers, executor, scheduler, progress,
                                 started, t0, reached, server)
            interrupted = False
            return result
        finally:
            pool.close(interrupted=interrupted)
            if server is not None:
                server.close()
            _append_log(server_log, run_log)
            redact_file(run_log)
            # Not by size alone: workers start their kernels at once, and a kernel's start-up lines reach
            # the log of a run that then stops on its data.
            if (reached["loaded"] and run_log.stat().st_size) or not log.exists():
                os.replace(run_log, log)  # replaces a symlink itself, never the file it points to
            else:
                run_log.unlink()
            if interrupted:
                remove_leftovers(output)  # this run's half-written segment folders and slices


def _server_state(server) -> str:
    """How the run's kernels were forked, as ``run.json`` records it."""
    if server is None:
        return "none (a local worker starts its own factory; a Dask worker forks no kernel)"
    if server.process is None:
        return "kept warm by an earlier run"
    return "started, kept warm after the run" if server.kept_warm else "started for the run"


def _factory_server(params_path: str | Path, log, keep_warm: float = 0.0):
    """The kernel factory server (`workbench.run.factoryserver`) of a run of the specification at
    ``params_path``, for the notebooks it names, read before it is checked; its lines go to ``log``. None when
    they cannot be read off it (`load_params` then says why), or the server could not start (each local worker
    then starts its own factory). Should the notebooks be others by the time the run checks them, the server
    refuses the workers, whose kernels then start the usual way."""
    from ..yamlio import read_yaml_mapping
    from .factoryserver import FactoryServer

    path = Path(params_path).resolve()
    try:
        names = read_yaml_mapping(path, "dataset", "`params/demo.yaml`").get("notebooks", DEFAULT_NOTEBOOKS)
    except (OSError, WorkbenchError):
        return None
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        return None
    notebooks = [str(resolve_notebook(name, project_root(path))) for name in names]
    return FactoryServer.start(KERNEL, preload_code(notebooks), defaults=WORKER_DEFAULTS, log=log,
                               keep_warm=keep_warm)


def _append_log(source, log: Path) -> None:
    """Add the lines written to the open file ``source`` to the end of ``log``."""
    source.seek(0)
    lines = source.read()
    if lines:
        with open(log, "ab") as out:
            out.write(lines)


def _run_locked(params, kernel, output, previous, pool, workers, executor, scheduler, progress, started, t0,
                reached, server=None):
    prepared = _prepared_by_server(server, params, output, previous, reached)
    if prepared is None:
        prepared = prepare(params, output, previous, reached)
    params, plans, inputs, notes, timing = (prepared.params, prepared.plans, prepared.inputs, prepared.notes,
                                            prepared.timing)
    timing.setdefault("data_phase", "in the run's own process")
    jobs = [job for plan in plans for job in plan["jobs"]]
    if previous is not None and all(p["reused"] for p in plans):
        notes.append("`--only-failed`: the previous run has no failed job; nothing was rerun.")
    bar = _progress_bar(sum(not p["reused"] for p in plans), progress)
    tick = time.perf_counter()
    try:
        _execute([p for p in plans if not p["reused"]], pool, bar, meanwhile=_meanwhile)
    finally:
        bar.close()
    pool.retire()  # no task is left: the workers exit while the run writes its index
    timing["execute_seconds"] = time.perf_counter() - tick
    records = [_segment_record(plan, output) for plan in plans]
    notes += [f"segments/{j['slug']}/{Path(j['output']).name}: the kernel failed ({j['retried_after']}); "
              f"started again, attempt {j['attempts']} {'succeeded' if j['status'] == 'ok' else 'failed too'}."
              for j in jobs if j.get("retried_after")]
    tick = time.perf_counter()
    _compare_segments(output, records)
    if params.spec.pdf:
        _print_pdfs(output, records, workers)
    timing["compare_pdf_seconds"] = time.perf_counter() - tick
    failures = _failures(records)
    partial = [f"segments/{r['slug']}: " + "; ".join(r["reasons"]) for r in records if r["status"] == "partial"]
    tick = time.perf_counter()
    try:
        _write_index(params, output, records)
        redact_file(output / "index.html")
    except Exception as exc:  # noqa: BLE001 - the run's other outputs stand; the failure is reported
        failures.append(f"index.html: {type(exc).__name__}: {redact(str(exc))}")
    timing["index_seconds"] = time.perf_counter() - tick
    timing["total_seconds"] = time.perf_counter() - t0
    timing["per_report"] = _report_timing(records, jobs)
    result = RunResult(output=output, segments=records, jobs=[_public_job(j) for j in jobs], failures=failures,
                       notes=notes, partial=partial)
    write_run_file(output, params, inputs, kernel, executor, workers, scheduler, started, timing, result)
    return result


@dataclass
class Prepared:
    """The run's data phase done (`prepare`): the parameters (with the shared horizon), each segment's plan with
    its slice written, the inputs ``run.json`` records, the notes for the run's summary, and its timing."""

    params: RunParams
    plans: list[dict]
    inputs: dict
    notes: list[str]
    timing: dict


def prepare(params: RunParams, output: Path, previous: dict | None, reached: dict, run_pid: int | None = None
            ) -> Prepared:
    """Load the dataset, check it against the parameters, split it into segments, plan each segment's jobs and
    write its slice; ``reached["loaded"]`` is set once the data loaded and checked. Each segment's temporary
    folder is named after ``run_pid``, the run's process (default: this one)."""
    from ..dataset import store  # the data layer, imported once the kernels' own imports have begun (`run`)
    from .segments import plan_segments

    spec = params.spec
    timing = {}
    tick = time.perf_counter()
    dataset, notes = _load(params)
    check_columns(params, dataset)
    reached["loaded"] = True
    timing["load_seconds"] = time.perf_counter() - tick
    tick = time.perf_counter()
    segments, split_notes = plan_segments(dataset, spec.split, overall=spec.overall)
    notes += split_notes
    # Each row hashed once: a segment's fingerprint takes its rows' hashes from these.
    hashes = store.row_hashes(dataset)
    inputs = {"params": spec.model_dump(mode="json", exclude={"workers", "pdf"}),
              "data_fingerprint": store.fingerprint(dataset, rows=hashes),
              "notebooks": {rel: sha256(path) for rel, path in zip(spec.notebooks, params.notebooks)}}
    if previous is not None and previous.get("inputs") != inputs:
        raise WorkbenchError(f"`--only-failed`: the parameters, notebooks or data changed since the run recorded in "
                             f"`{output / RUN_FILE}`, so its outputs cannot be reused. "
                             + fixes("run again without `--only-failed`"))
    params, horizon_notes = _shared_horizon(params, dataset)
    notes += horizon_notes
    stale = sorted(p.name for p in (output / "segments").glob("[!.]*") if p.name not in {s.slug for s in segments})
    if stale:
        notes.append(f"segments/ holds folders that are not part of this run (left untouched): {stale}")

    # Every slice is written before the first kernel starts, one segment at a time, and then the run lets
    # go of the data: the kernels, each holding its own slice, never run beside a run holding all of it.
    plans, slices_seconds = [], 0.0
    # Segments find their related rows by position: each text id looked up once, not once per segment.
    links = dataset.links() if sum(bool(seg.filter) for seg in segments) > 1 else None
    written = time.perf_counter()
    slices = store.SliceWriter(dataset)  # the slices are written on a thread while the next segment is planned
    slices_seconds += time.perf_counter() - written
    try:
        for seg in segments:
            plan = _plan_segment(params, dataset, seg, previous, whole_fingerprint=inputs["data_fingerprint"],
                                 whole_hashes=hashes, links=links, run_pid=run_pid)
            written = time.perf_counter()
            _prepare(plan, slices)
            slices_seconds += time.perf_counter() - written
            plans.append(plan)
    except BaseException:  # e.g. Ctrl-C: the slices being written end, the others are not begun
        slices.close(cancel=True)
        raise
    written = time.perf_counter()
    slices.close()
    slices_seconds += time.perf_counter() - written
    del dataset, hashes, links, slices  # their memory is handed back while the kernels work (`_meanwhile`)
    # plan: the fingerprints, the shared horizon and each segment's rows; slices: writing them.
    timing["plan_seconds"] = time.perf_counter() - tick - slices_seconds
    timing["slices_seconds"] = slices_seconds
    return Prepared(params=params, plans=plans, inputs=inputs, notes=notes, timing=timing)


def _prepared_by_server(server, params: RunParams, output: Path, previous: dict | None, reached: dict):
    """The data phase (`prepare`) done in a process forked from a factory server kept warm by an earlier run,
    which has pandas and the data layer imported already; None when there is no such server, or when that
    process could not be had or gave no answer (the run then prepares the data itself, and the log says why).
    The data phase's own errors are raised here, as in the run."""
    if server is None or server.process is not None:  # none, or its imports are not done: the run loads itself
        return None
    from .factoryserver import CallFailed

    tick = time.perf_counter()
    try:
        prepared, loaded, error = server.call("prepare", params, output, previous, os.getpid())
    except CallFailed as exc:
        server.note(f"the run loads its data itself: a process forked from the kept-warm server {exc}")
        return None
    reached["loaded"] = loaded
    if error is not None:
        raise error
    prepared.timing["data_phase"] = "in a process forked from the kernels' kept-warm factory server"
    prepared.timing["fork_seconds"] = (time.perf_counter() - tick - prepared.timing["load_seconds"]
                                       - prepared.timing["plan_seconds"] - prepared.timing["slices_seconds"])
    return prepared


def prepare_in_child(params: RunParams, output: Path, previous: dict | None,
                     run_pid: int) -> tuple[Prepared | None, bool, Exception | None]:
    """`prepare` for the run ``run_pid``, in a process forked from a kept-warm factory server
    (`_prepared_by_server`): the prepared run, whether the data loaded, and the error the run reports as its own
    (`WorkbenchError`, `OSError`). Any other error is raised, and the run then prepares the data itself, where
    it is raised again with its traceback (and replaces what this process left in the segments' folders)."""
    reached = {"loaded": False}
    try:
        return prepare(params, output, previous, reached, run_pid), reached["loaded"], None
    except (WorkbenchError, OSError) as exc:
        return None, reached["loaded"], exc


def _shared_horizon(params: RunParams, dataset) -> tuple[RunParams, list[str]]:
    """Give every segment the horizon chosen on all deals when the run leaves it to the data, so that the
    segments' shares won are read at the same point (each segment would otherwise choose its own)."""
    from ..sections.settings import run_horizon

    declares = any("horizon" in notebook_parameters(path) for path in params.notebooks)
    if not declares or params.spec.parameters.get("horizon"):
        return params, []
    horizon = run_horizon(dataset)
    if horizon is None:
        return params, []
    parameters = {**params.spec.parameters, "horizon": int(horizon) if float(horizon).is_integer() else horizon}
    return replace(params, spec=params.spec.model_copy(update={"parameters": parameters})), [
        f"`horizon` was chosen from all deals ({horizon:g} days) and used for every segment, so that their "
        "figures compare; set `horizon` in the run specification to choose another."]


def _groups(pending: list[dict], parts: int) -> list[list[dict]]:
    """A segment's pending notebooks shared out over ``parts`` warm kernels, round robin (in report order)."""
    parts = max(1, min(parts, len(pending)))
    return [pending[i::parts] for i in range(parts)]


def _execute(plans: list[dict], pool, bar, meanwhile=None) -> None:
    """Run the plans' jobs, then each segment's finishing task as soon as its jobs are done.

    A segment's notebooks run in one warm kernel, in turn (`workbench.run.jobs.execute_group`): the
    kernel start and the imports are paid once per segment, not once per notebook. With fewer
    segments than workers, a segment's notebooks are shared out over several kernels so that
    every worker has work. At most ``pool.capacity`` tasks are in flight, finishing tasks first:
    a segment is published as early as possible (an interrupted run keeps what it finished).
    Each plan's slice is written already (`_prepare`). While more segments are to come, a worker
    starts its next kernel ahead as soon as it shut the last one down (``pool.spare``: the arguments
    of `workbench.run.jobs.prestart_spare`; none on Dask). ``meanwhile`` runs on a thread of its own once
    the first tasks are submitted.
    """
    todo = deque(plans)
    jobs, finishes = deque(), deque()
    left = {}
    parts = max(1, pool.capacity // max(1, len(plans)))

    def next_task():
        if finishes:
            return finishes.popleft()
        if not jobs and todo:
            plan = todo.popleft()
            groups = _groups(plan["pending"], parts)
            left[plan["segment"].slug] = len(groups) if plan["pending"] else 0
            if not plan["pending"]:
                return finish_segment, plan["finish"], ("finish", plan)
            jobs.extend((execute_group, {"jobs": group}, ("group", (plan, group))) for group in groups)
        if not jobs:
            return None
        fn, task, tag = jobs.popleft()
        more = bool(jobs) or any(p["pending"] for p in todo)
        return fn, {**task, "spare": pool.spare if more else None}, tag

    while True:
        while pool.pending < pool.capacity and (task := next_task()) is not None:
            pool.submit(*task)
        if meanwhile is not None:  # once the first tasks are on their way, not before
            threading.Thread(target=meanwhile, name="workbench-meanwhile", daemon=True).start()
            meanwhile = None
        if not pool.pending:
            return
        (kind, item), result, error = pool.next_done()
        failed = None if error is None else {"status": "failed",
                                             "error": f"the worker failed: {type(error).__name__}: {error}"}
        if kind == "group":
            plan, group = item
            for job, record in zip(group, result if failed is None else [failed] * len(group)):
                job.update(record)
            left[plan["segment"].slug] -= 1
            if not left[plan["segment"].slug]:
                plan["finish"]["job_errors"] = {Path(j["output"]).name: j.get("error") or "failed"
                                                for j in plan["jobs"] if j["status"] != "ok"}
                finishes.append((finish_segment, plan["finish"], ("finish", plan)))
        else:
            item["result"] = result if failed is None else failed
            bar.update(1)


def _load(params: RunParams):
    """The whole dataset, and the load's warnings as notes."""
    from ..dataset.loader import load_dataset
    from ..dataset.sample import generate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        if params.dataset is None:
            dataset = generate(n_deals=params.spec.sample_deals, seed=params.spec.sample_seed,
                               truth_deals=1_000).dataset()
        else:
            dataset = load_dataset(params.dataset)
    return dataset, [str(w.message) for w in caught if issubclass(w.category, DataQualityWarning)]


def _plan_segment(params: RunParams, dataset, segment, previous: dict | None, *,
                  whole_fingerprint: str | None = None, whole_hashes: dict | None = None,
                  links=None, run_pid: int | None = None) -> dict:
    """A segment's jobs, which of them must run, and its finishing task.

    ``whole_fingerprint`` is ``store.fingerprint(dataset)`` when known: the overall segment's own
    (seconds at a million deals); ``whole_hashes``, ``store.row_hashes(dataset)``: the segment's
    fingerprint takes its rows' hashes from them instead of hashing its rows again; ``links``,
    ``dataset.links()``, finds the segment's rows by position (`Dataset.segment_rows`).
    """
    from ..dataset import store
    from ..dataset.model import excluded_rows
    from ..dataset.sanity import quality_notes
    from .segments import SCOPE_PARAMETER
    from .summary import too_small_summary

    spec, output = params.spec, params.output
    rows = dataset.segment_rows(segment.filter, links=links) if segment.filter else None
    part = dataset if rows is None else dataset.with_rows(rows)
    n = len(part.deals)
    too_small = n < max(spec.min_deals_per_segment, 1)
    final = output / "segments" / segment.slug
    tmp = output / "segments" / f".{segment.slug}.tmp-{run_pid or os.getpid()}"
    slice_dir = output / "slices" / segment.slug
    relative_data = os.path.relpath(slice_dir / store.SPEC_FILE, tmp)
    jobs = [] if too_small else [
        {"id": f"{segment.slug}/{path.stem}", "segment": segment.key, "slug": segment.slug, "notebook": rel,
         "input": str(path), "output": str(tmp / f"{path.stem}.ipynb"), "cwd": str(tmp),
         "parameters": {**parameters_for(params, path), DATASET_PARAMETER: relative_data,
                        **({SCOPE_PARAMETER: segment.scope} if SCOPE_PARAMETER in notebook_parameters(path) else {})},
         "timeout": spec.timeout,
         "status": "pending"}
        for rel, path in zip(spec.notebooks, params.notebooks)]
    before = {j["id"]: j for j in previous["jobs"]} if previous else {}
    seg_before = next((s for s in previous["segments"] if s["slug"] == segment.slug), None) if previous else None
    reused = (seg_before is not None and seg_before["status"] not in ("failed", "partial")
              and (final / "report.html").exists() and all(_done(before.get(j["id"])) for j in jobs))
    if reused:
        for job in jobs:
            job.update({k: v for k, v in before[job["id"]].items() if k not in ("input", "output", "cwd")},
                       reused=True)
        pending = []
    else:
        pending = [j for j in jobs if not _done(before.get(j["id"])) or not (final / Path(j["output"]).name).exists()]
        for job in jobs:
            if job not in pending:
                job.update({k: v for k, v in before[job["id"]].items() if k not in ("input", "output", "cwd")},
                           reused=True)
    finish = {"slug": segment.slug, "key": segment.key, "label": segment.label, "filter": segment.filter,
              "tmp": str(tmp), "final": str(final), "slice": None if too_small else str(slice_dir),
              "notebooks": [Path(j["output"]).name for j in jobs],
              "counts": part.counts(), "excluded_rows": excluded_rows(dataset),
              "quality_notes": quality_notes(dataset.report), "title": spec.title,
              "client": spec.client,
              "branding": spec.branding.model_dump(), "too_small": too_small}
    if too_small:
        finish["summary"] = too_small_summary(part, segment.filter, spec.min_deals_per_segment)
    if part is dataset and whole_fingerprint:
        fingerprint = whole_fingerprint
    elif rows is not None and whole_hashes is not None:
        fingerprint = store.fingerprint(part, rows={table: whole_hashes[table][at] for table, at in rows.items()})
    else:
        fingerprint = store.fingerprint(part)
    return {"segment": segment, "data": part, "rows": rows, "deals": n, "too_small": too_small, "jobs": jobs,
            "pending": pending, "finish": finish, "reused": reused, "fingerprint": fingerprint, "previous": seg_before,
            "result": None}


def _prepare(plan: dict, slices) -> None:
    """Write the segment's slice (with ``slices``) and its temporary folder (with the notebooks kept from a
    previous run), unless the segment is kept from the previous run; either way the plan lets go of its data."""
    data, rows = plan.pop("data"), plan.pop("rows")  # written once; the run need not hold every segment's copy
    if plan["reused"]:
        return
    finish = plan["finish"]
    tmp, final = Path(finish["tmp"]), Path(finish["final"])
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for job in plan["jobs"]:
        if job not in plan["pending"]:
            shutil.copy2(final / Path(job["output"]).name, job["output"])
    if not plan["too_small"]:
        slices.write(data, rows, finish["slice"])


def release_memory() -> None:
    """Hand the memory of freed tables back to the system: collected, pyarrow's pool's unused pages
    released (its strings), and glibc's free lists trimmed (pandas' and numpy's arrays), so that the
    kernels started next have it."""
    import ctypes
    import gc

    gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator keeps what it keeps
        pass


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="report", desc="workbench run", disable=not enabled, file=sys.stderr)


# --- records ------------------------------------------------------------------------------

def _segment_record(plan: dict, output: Path) -> dict:
    seg = plan["segment"]
    record = {"segment": seg.key, "label": seg.label, "scope": seg.scope, "slug": seg.slug, "filter": seg.filter,
              "deals": plan["deals"],
              "fingerprint": plan["fingerprint"], "href": f"segments/{seg.slug}/report.html"}
    if plan["reused"]:
        return {**plan["previous"], **record, "reused": True}
    result = plan["result"] or {"status": "failed", "error": "the segment was never finished"}
    failed_jobs = [j["id"] for j in plan["jobs"] if j["status"] != "ok"]
    status = "too_small" if plan["too_small"] and result["status"] == "ok" else result["status"]
    reasons = result.get("reasons") or ([result["error"]] if result.get("error") else [])
    return {**record, "status": status, "error": result.get("error"), "reasons": reasons,
            "not_applicable": result.get("not_applicable", []), "failed_jobs": failed_jobs,
            "headline": result.get("headline", {}), "summary_seconds": result.get("summary_seconds"),
            "report_seconds": result.get("report_seconds"), "pdf_pages": result.get("pdf_pages"), "reused": False}


def _done(job: dict | None) -> bool:
    """A previous job that need not run again: it finished and none of its sections failed."""
    return bool(job) and job.get("status") == "ok" and not (job.get("sections") or {}).get("failed")


def _failures(records: list[dict]) -> list[str]:
    return [f"segments/{r['slug']}: " + "; ".join(r["reasons"] or [r.get("error") or "failed"])
            for r in records if r["status"] == "failed"]


def _compare_segments(output: Path, records: list[dict]) -> None:
    """Each segment against all deals: first in its report's findings, and as its line on the index
    (`workbench.run.headlines`, from the segments' `summary.json`)."""
    from .headlines import insert_versus, run_headlines

    summaries = {}
    for record in records:
        if record["status"] in ("ok", "partial"):
            try:
                summaries[record["slug"]] = json.loads((output / "segments" / record["slug"] / "summary.json").read_text())
            except (OSError, ValueError):
                continue  # its report says what is missing; nothing to compare
    headlines = run_headlines(records, summaries)
    for record in records:
        record["headline_text"] = redact(headlines.get(record["slug"], ""))
        report = output / record["href"]
        if record["filter"] and record["headline_text"] and report.is_file():
            insert_versus(report, record["headline_text"])


def _print_pdfs(output: Path, records: list[dict], workers: int) -> None:
    """A PDF beside each report (`workbench.run.pdf`), printed once the reports are final; a segment whose
    PDF could not be printed is partial, with the reason."""
    from concurrent.futures import ThreadPoolExecutor

    from .pdf import print_pdf

    def one(record: dict) -> None:
        report = output / record["href"]
        try:
            record["pdf_pages"] = print_pdf(report, report.with_suffix(".pdf"))
        except Exception as exc:  # noqa: BLE001 - the HTML report stands; the segment says why there is no PDF
            record["pdf_pages"] = None
            record["reasons"] = [*record.get("reasons", []), f"report.pdf could not be printed: {redact(str(exc))}"]
            if record["status"] == "ok":
                record["status"] = "partial"

    printable = [r for r in records if r["status"] in ("ok", "partial", "too_small") and (output / r["href"]).is_file()]
    with ThreadPoolExecutor(max(1, min(workers, len(printable) or 1))) as threads:
        list(threads.map(one, printable))


def _meanwhile() -> None:
    """What the run does while its kernels work, not before their first cell nor after their last: hand the
    memory of the freed dataset back (`release_memory`), and compile what the index needs."""
    from .report import prepare_index

    release_memory()
    try:
        prepare_index()
    except Exception:  # noqa: BLE001, S110 - writing the index says what is wrong, as a failure of the run
        pass


def _write_index(params: RunParams, output: Path, records: list[dict]) -> None:
    from .report import write_index

    entries = [{"segment": r["segment"], "label": r["label"], "href": r["href"], "status": r["status"],
                "headline": r.get("headline", {}), "headline_text": r.get("headline_text", ""),
                "pdf": f"segments/{r['slug']}/report.pdf", "reasons": r.get("reasons", [])} for r in records]
    write_index(output, entries, title=params.spec.title, client=params.spec.client,
                branding=params.spec.branding.model_dump())


def _public_job(job: dict) -> dict:
    keep = ("id", "segment", "slug", "notebook", "status", "error", "attempts", "retried_after", "reused",
            "worker", "kernel", "duration_seconds", "kernel_start_seconds", "import_seconds", "analysis_seconds",
            "teardown_seconds", "parameters", "sections")
    out = {k: job[k] for k in keep if k in job}
    out["output"] = f"segments/{job['slug']}/{Path(job['output']).name}"
    return out


def _report_timing(records: list[dict], jobs: list[dict]) -> dict:
    """Mean seconds per report of each phase: overhead (kernel start, imports, teardown, HTML) vs analysis."""
    ran = [j for j in jobs if not j.get("reused") and j.get("analysis_seconds") is not None]
    built = [r for r in records if not r.get("reused") and r.get("report_seconds") is not None]
    mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
    out = {f"{k}_seconds": mean([j[f"{k}_seconds"] for j in ran if j.get(f"{k}_seconds") is not None])
           for k in ("duration", "kernel_start", "import", "analysis", "teardown")}
    out["summary_seconds"] = mean([r["summary_seconds"] for r in built])
    out["html_seconds"] = mean([r["report_seconds"] for r in built])
    out["jobs_timed"], out["reports_timed"] = len(ran), len(built)
    return out
