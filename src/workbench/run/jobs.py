"""What runs in a worker for `workbench run`: one notebook job, or one segment's finishing task.

`execute_job` executes one (segment, notebook) job in a fresh `workbench` kernel with
Papermill (`execute_notebook`, which starts a second kernel if the first one dies), given
only that segment's slice of the data. `finish_segment` writes the segment's summary.json and
report.html in its temporary folder and then moves the folder into place
(`workbench.dataset.folders.publish`). Both never raise: a failure is returned as the
job's or the segment's status. They are top-level functions so that multiprocessing and
Dask can pickle them by name.

Values of environment variables whose names look like credentials are scrubbed from
every file a segment writes (`redact_file`) and from every error message (`redact`).
"""
from __future__ import annotations

import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from queue import Empty

from . import runfiles
from .notebooks import only_imports, preload_code
from .secrets import redact, redact_file, redact_text

#: The kernel every notebook runs in.
KERNEL = "workbench"


#: How long a warm kernel's client waits for the last preload's "idle" on IOPub once its reply is in (it comes
#: right after the reply, unless the kernel published it before the client's subscription took), and for the
#: "idle" of each of at most `PROBES` empty cells sent to probe, before the client's own `wait_for_ready`
#: (which always waits 0.2 s more for IOPub to fall silent).
IDLE_WAIT = 0.05
PROBE_WAIT = 0.5
PROBES = 3

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


#: Run in a warm kernel before each notebook but the first: a clean namespace and no open figure,
#: with the imports kept (they are what a kernel per notebook would pay again). The garbage collector
#: then freezes what survives (the imported modules), so that later collections no longer walk
#: through them (a reset took 0.3 s, 0.02 s so).
RESET_CODE = ("%reset -f\nimport matplotlib.pyplot as _plt\n_plt.close('all')\ndel _plt\n"
              "import gc as _gc\n_ = _gc.collect()\n_gc.freeze()\ndel _gc, _\nget_ipython().execution_count = 1")

#: Run with each reset: the notebook works in its segment's folder (a kernel started ahead, before
#: its segment was known, began elsewhere).
CHDIR_CODE = "import os as _os\n_os.chdir({cwd!r})\ndel _os"


#: No IPython history: a warm kernel's reset execution count would clash with the lines it logged
#: ("Session/line number was not unique in database" printed into a report), and the cells' code and
#: parameters have no business in ~/.ipython.
KERNEL_ARGUMENTS = ("--HistoryManager.enabled=False",)


class WarmKernel:
    """One `workbench` kernel that executes several notebooks of one segment in turn.

    Starting a kernel and importing the analyses costs about 3 s, more than many a notebook's own
    cells; a segment's notebooks share one kernel instead, each starting from a clean namespace
    (`RESET_CODE`). A kernel never serves two segments: each only ever sees its own slice. After a
    kernel failure the next notebook gets a new one. Use as a context manager (it shuts down).

    A worker can start its next kernel ahead (`prestart`), before it knows the segment: the kernel
    boots and runs the notebooks' import cells while the worker waits for work or finishes the last
    segment's report; `execute_group` then takes it and the first notebook starts at once, in the
    segment's folder, from a clean namespace.

    With a kernel ``factory`` (a local worker's, `workbench.run.factory`), each kernel is forked from a
    process that has the imports done already, and starts the usual way whenever the factory cannot serve.
    """

    def __init__(self, cwd: str | Path, factory=None):
        self.cwd = str(cwd)
        self.km = self.kc = None
        self.used = False
        self.preload_ids: list[str] = []
        #: This worker's kernel factory (`start_factory`) unless another is given.
        self.factory = factory if factory is not None else _factory
        #: Whether the last kernel started was forked by the factory (job records say which).
        self.forked = False
        #: Whether another notebook of the segment follows the one running: it is then reset for it as soon as
        #: its cells are done, while the worker writes the notebook (`reset_ahead`).
        self.more = False
        #: The request of a reset sent ahead, whose reply the next notebook awaits.
        self.reset_sent: str | None = None

    def manager(self) -> dict:
        """What the next notebook runs on: the kernel's manager and client (started if needed), and the
        code that first resets the namespace and the working folder (every notebook after the first, and
        the first on a kernel started ahead), or the reset sent ahead whose reply it awaits."""
        from jupyter_core.utils import run_sync

        if self.km is None or not run_sync(self.km.is_alive)():
            self._start()
        elif self.preload_ids:
            self._finish_preload()
        reset, self.used = self.used, True
        sent, self.reset_sent = self.reset_sent, None
        return {"km": self.km, "shared_kc": self.kc, "warm_kernel": self, "reset_sent": sent,
                "reset_code": self._reset_code() if reset and not sent else None}

    def _reset_code(self) -> str:
        return RESET_CODE + "\n" + CHDIR_CODE.format(cwd=self.cwd)

    def reset_ahead(self) -> None:
        """Send the next notebook's reset now, without waiting: the kernel clears the last notebook's namespace
        while the worker writes that notebook (0.02-0.1 s a notebook); the next one awaits its reply."""
        if self.kc is not None:
            self.reset_sent = self.kc.execute(self._reset_code(), store_history=False)

    def _start(self) -> None:
        self._launch(self.cwd)
        from jupyter_core.utils import run_sync

        run_sync(self.kc.wait_for_ready)(timeout=120)
        self.used = False

    def _launch(self, cwd: str) -> None:
        """Start the kernel process and its client without waiting for it to be ready."""
        # Asynchronous, as nbclient's own: a blocking client would block its event loop while it waits
        # for output, so that a kernel that dies mid-cell would never be noticed.
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        self.close()
        self.reset_sent = None
        if self.factory is not None and not self.factory.broken:
            from .factory import forking_kernel_manager

            self.km = forking_kernel_manager(self.factory, kernel_name=KERNEL)
        else:
            self.km = AsyncKernelManager(kernel_name=KERNEL)
        run_sync(self.km.start_kernel)(cwd=cwd, extra_arguments=list(KERNEL_ARGUMENTS))
        from .factory import is_forked

        self.forked = is_forked(self.km)
        # One client for every notebook: a new one waits for the kernel and flushes its messages (~0.5 s).
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.allow_stdin = False

    def prestart(self, preload: str) -> None:
        """Start the kernel now and send it ``preload`` (the notebooks' imports) without waiting; the
        first notebook that runs on it waits for both and starts from a clean namespace."""
        self._launch(self.cwd)
        self.preload_ids = [self.kc.execute(preload, silent=True, store_history=False),
                            self.kc.execute("import gc as _gc\n_gc.collect()\n_gc.freeze()\ndel _gc",
                                            silent=True, store_history=False)]
        self.used = True  # the preload's names are cleared before the first notebook

    def _finish_preload(self) -> None:
        """Wait for the preload's replies (a kernel that dies or hangs meanwhile is started afresh), and
        make sure the client hears the kernel's output channel before a notebook runs on it."""
        from jupyter_core.utils import run_sync

        async def replies():
            waiting, deadline = set(self.preload_ids), time.monotonic() + 120
            while waiting:
                if time.monotonic() > deadline or not await self.km.is_alive():
                    return False
                try:
                    msg = await self.kc.get_shell_msg(timeout=1)
                except Empty:
                    continue
                waiting.discard(msg["parent_header"].get("msg_id"))
            # An "idle" on IOPub proves that output reaches us: the last preload's, which is lost when the kernel
            # published it before our subscription took (a forked kernel runs its preload at once), else that of
            # an empty cell sent to probe.
            heard, probes = await _answer(self.kc.get_iopub_msg, self.preload_ids[-1], IDLE_WAIT, _is_idle), []
            while not heard and len(probes) < PROBES:
                probes.append(self.kc.execute("", silent=True, store_history=False))
                heard = await _answer(self.kc.get_iopub_msg, probes[-1], PROBE_WAIT, _is_idle)
            for probe in probes:  # their replies, which no notebook must take for its own
                await _answer(self.kc.get_shell_msg, probe, PROBE_WAIT)
            if not heard:
                await self.kc.wait_for_ready(timeout=120)
            return True

        self.preload_ids, ready = [], run_sync(replies)()
        if not ready:
            self._start()

    def discard(self) -> None:
        """Drop the kernel after it failed: the next notebook starts a new one."""
        self.close()

    def close(self) -> None:
        from jupyter_core.utils import run_sync

        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        if self.km is not None:
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.km = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


async def _answer(get, msg_id: str, timeout: float, wanted=lambda msg: True) -> dict | None:
    """The first message a kernel client's ``get`` (``get_shell_msg``, ``get_iopub_msg``) gives that answers the
    request ``msg_id`` and is ``wanted``, passing over the others; None after ``timeout`` seconds."""
    from jupyter_core.utils import ensure_async

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ensure_async(get(timeout=left))
        except Empty:
            return None
        if msg["parent_header"].get("msg_id") == msg_id and wanted(msg):
            return msg
    return None


def _is_idle(msg: dict) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"


def execute_notebook(input_path: str | Path, output_path: str | Path, *, parameters: dict, cwd: str | Path,
                     timeout: int | None = None, kernel: WarmKernel | None = None,
                     recorded_as: str | None = None) -> Execution:
    """Execute a notebook with Papermill in a fresh `workbench` kernel (or ``kernel``); never raises.

    The executed notebook is written to ``output_path`` (with the error marked if a cell
    raised). A kernel that dies or fails to start is started once more (`KERNEL_ATTEMPTS`).
    With ``recorded_as``, the executed notebook's metadata names its input so (the run's name for
    it) and its output by file name, not by their paths on this machine.
    """
    paths = {} if recorded_as is None else {"input_path": recorded_as, "output_path": Path(output_path).name}
    retried_after = None
    for attempt in range(1, KERNEL_ATTEMPTS + 1):
        error, kernel_failed = _execute_once(input_path, output_path, parameters, cwd, timeout, kernel, paths)
        if kernel_failed and kernel is not None:
            kernel.discard()
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


def _execute_once(input_path, output_path, parameters, cwd, timeout, kernel, paths) -> tuple[str | None, bool]:
    """One Papermill execution: (the error or None, whether the kernel itself failed)."""
    import papermill
    import zmq
    from papermill.exceptions import PapermillExecutionError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm = {} if kernel is None else kernel.manager()
            papermill.execute_notebook(str(input_path), str(output_path), parameters=parameters,
                                       kernel_name=KERNEL, cwd=str(cwd), progress_bar=False, log_output=False,
                                       execution_timeout=timeout, start_timeout=120,
                                       # The notebook is complete and saved: stop the kernel without
                                       # waiting for a graceful exit (saves ~0.7 s per job).
                                       shutdown_kernel="immediate", engine_name=_engine(), recorded_paths=paths,
                                       **warm)
    except PapermillExecutionError as exc:
        return f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}", False
    except Exception as exc:  # noqa: BLE001 - this notebook's failure, never the caller's
        # nbclient's DeadKernelError and jupyter_client's "Kernel died before replying" /
        # "didn't respond" are RuntimeErrors; a lost port race can also surface as a ZMQError.
        return f"{type(exc).__name__}: {exc}", isinstance(exc, (RuntimeError, zmq.ZMQError))
    return None, False


ENGINE = "workbench"


def _engine() -> str:
    """Papermill's nbclient engine, registered as `ENGINE`, with three changes: the notebook is saved
    once, by Papermill when it ends (by the engine after a timeout or a dead kernel), not after every
    cell (each save rewrites the whole file: quadratic in the figures); on a `WarmKernel` it uses
    the kernel's own client and first resets the namespace; and the notebook's metadata records its
    paths as given (``recorded_paths``), so that the file is written once, as it is kept."""
    from jupyter_core.utils import ensure_async, run_sync
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class Client(PapermillNotebookClient):
        """Runs ``reset_code`` first on a warm kernel (or awaits the reply to ``reset_sent``, sent ahead), on its
        own channels (a second client costs 0.2 s)."""

        def __init__(self, nb_man, reset_code=None, reset_sent=None, shared_kc=None, **kw):
            super().__init__(nb_man, **kw)
            self.reset_code, self.reset_sent = reset_code, reset_sent
            self.kc = shared_kc  # nbclient starts its own client only when there is none

        def papermill_execute_cells(self):
            if self.reset_code or self.reset_sent:
                reply = run_sync(self._reset)()
                if reply["content"]["status"] != "ok":
                    raise RuntimeError("the warm kernel could not be reset for the next notebook")
            return super().papermill_execute_cells()

        async def _reset(self) -> dict:
            if not self.reset_sent:
                return await ensure_async(self.kc.execute_interactive(
                    self.reset_code, timeout=60, store_history=False, output_hook=lambda msg: None))
            # The reply to the reset sent ahead (nbclient passes over its output messages).
            reply = await _answer(self.kc.get_shell_msg, self.reset_sent, 60)
            if reply is None:
                raise RuntimeError("the warm kernel did not answer its reset for the next notebook")
            return reply

    class Engine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                             autosave_cell_every=30, recorded_paths=None, **kwargs):
            nb.metadata.setdefault("papermill", {}).update(recorded_paths or {})
            nb_man = NotebookExecutionManager(nb, output_path=None, progress_bar=progress_bar,
                                              log_output=log_output, autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            except BaseException:
                nb_man.output_path = output_path  # saved as far as it got (Papermill writes it otherwise)
                raise
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, reset_code=None,
                                     reset_sent=None, warm_kernel=None, shared_kc=None, **kwargs):
            # NBClientEngine.execute_managed_notebook, keeping hold of the client to close it.
            kwargs = remove_args(["input_path"], **kwargs)
            safe = remove_args(["timeout", "startup_timeout"], **kwargs)
            client = Client(nb_man, reset_code=reset_code, reset_sent=reset_sent, shared_kc=shared_kc, **merge_kwargs(
                safe, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                startup_timeout=start_timeout, kernel_name=kernel_name, log=logger, log_output=log_output,
                stdout_file=stdout_file, stderr_file=stderr_file))
            nb = client.execute()
            if warm_kernel is not None and warm_kernel.more:  # reset while Papermill writes this notebook
                warm_kernel.reset_ahead()
            return nb

    if ENGINE not in papermill_engines._engines:  # noqa: SLF001 - registered once per process
        papermill_engines.register(ENGINE, Engine)
    return ENGINE


def execute_group(task: dict) -> list[dict]:
    """Execute a segment's notebooks (``task["jobs"]``) in turn in one warm kernel; never raises.

    The kernel is this worker's spare when it has one (`prestart_spare`); when ``task["spare"]`` is
    given (``{"notebooks": [...], "cwd": ...}``), a new spare is started for the next segment once
    this one's kernel is shut down. Returns one `execute_job` record per notebook, in order.
    """
    cwd, jobs = task["jobs"][0]["cwd"], task["jobs"]
    with _take_spare(cwd) or WarmKernel(cwd) as kernel:
        records = []
        for n, job in enumerate(jobs, 1):
            kernel.more = n < len(jobs)
            records.append(execute_job(job, kernel=kernel))
    if task.get("spare"):
        prestart_spare(**task["spare"])
    return records


#: This worker process's next kernel, started ahead by `prestart_spare` and taken by `execute_group`.
#: Only local workers have one: they run one task at a time (Dask's threads would share it).
_spare: WarmKernel | None = None

#: This worker process's kernel factory (`start_factory`), which forks its kernels. Only local workers have
#: one, for the same reason.
_factory = None


def start_factory(notebooks: list[str], cwd: str | Path, factories: str | None = None) -> None:
    """Start this worker's kernel factory (`workbench.run.factory.KernelFactory`): a process that has the
    import cells of ``notebooks`` imported, and forks every kernel this worker starts.

    With ``factories`` (the address of the run's factory server, `workbench.run.factoryserver`), the factory
    is forked from that server, whose imports started before this worker did; otherwise (or when there is no
    such server) the worker starts its own, which imports in ``cwd`` (a folder with no Python file in it, as
    for `prestart_spare`). Returns at once; where kernels cannot be forked, or the factory fails, they start
    the usual way."""
    global _factory
    from .factory import KernelFactory

    close_factory()
    preload = preload_code(notebooks)
    _factory = KernelFactory.connect(factories, KERNEL, preload) if factories else None
    if _factory is None:
        _factory = KernelFactory.start(KERNEL, preload, cwd)


def factory_ready(timeout: float) -> bool:
    """Whether this worker's kernel factory forks kernels at once (its imports are done, as a kept-warm server's
    are), or says so within ``timeout`` seconds."""
    return _factory is not None and _factory.ready_soon(timeout)


def close_factory() -> None:
    """Stop this worker's kernel factory (at the worker's exit): it kills any kernel of its own left."""
    global _factory
    factory, _factory = _factory, None
    if factory is not None:
        factory.close()


def prestart_spare(notebooks: list[str], cwd: str | Path) -> None:
    """Start this worker's next kernel now, with the import cells of ``notebooks`` sent to it
    (`preload_code`), without waiting for either; a kernel that fails to start is left to the next
    segment to start the usual way.

    The kernel starts in ``cwd``, a folder of the run's own with no Python file in it (the run's
    logs), since its imports look in its working folder first; each notebook then works in its
    segment's folder.
    """
    global _spare
    close_spare()
    _spare = WarmKernel(cwd)  # kept before it starts: a start cut short (SIGTERM) is still shut down
    try:
        _spare.prestart(preload_code(notebooks))
    except Exception:  # noqa: BLE001 - the next segment starts its own kernel (and reports its failure)
        close_spare()


def close_spare() -> None:
    """Shut this worker's spare kernel down (at the worker's exit, or before a new one starts)."""
    global _spare
    kernel, _spare = _spare, None
    if kernel is not None:
        kernel.close()


def _take_spare(cwd: str) -> WarmKernel | None:
    global _spare
    kernel, _spare = _spare, None
    if kernel is not None:
        kernel.cwd = str(cwd)
    return kernel


def execute_job(job: dict, *, kernel: WarmKernel | None = None) -> dict:
    """Execute one (segment, notebook) job (`execute_notebook`); never raises.

    Returns status, error, attempts (and ``retried_after`` after a kernel failure), which ``kernel`` it
    ran on (``forked`` by the worker's factory, or ``started`` the usual way), timing, and ``sections``:
    how many of the notebook's sections rendered, did not apply, or failed (by title).
    """
    start = time.time()
    done = execute_notebook(job["input"], job["output"], parameters=job["parameters"], cwd=job["cwd"],
                            timeout=job["timeout"], kernel=kernel, recorded_as=job["notebook"])
    end = time.time()
    out = Path(job["output"])
    finished = _finish_notebook(out, start, end) if out.exists() else {}
    record = {"status": done.status, "error": redact(done.error) if done.error else None,
              "duration_seconds": end - start, "worker": f"{socket.gethostname()}:{os.getpid()}",
              "kernel": "forked" if kernel is not None and kernel.forked else "started",
              "attempts": done.attempts, **finished}
    if done.retried_after:
        record["retried_after"] = redact(done.retried_after)
    return record


def _finish_notebook(path: Path, start: float, end: float) -> dict:
    """Scrub secrets from an executed notebook (rewritten only when it holds one), and return the timing
    of the run's phases and ``sections``: how many of the notebook's sections rendered, did not apply,
    or failed (by title)."""
    import nbformat.v4

    from .records import records_in

    text = path.read_text(encoding="utf-8")
    scrubbed = redact_text(text)
    if scrubbed != text:
        path.write_text(scrubbed.rstrip("\n") + "\n", encoding="utf-8")
    elif not text.endswith("\n"):
        with open(path, "a", encoding="utf-8") as out:
            out.write("\n")
    nb = nbformat.v4.reads(scrubbed)  # as Papermill wrote and checked it: not checked a second time
    records = records_in(nb, path.stem)
    sections = {"ok": sum(r["status"] == "ok" for r in records),
                "not_applicable": sum(r["status"] == "not_applicable" for r in records),
                "failed": [r["title"] for r in records if r["status"] == "failed"]}
    cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("papermill", {}).get("start_time")]
    if not cells:
        return {"kernel_start_seconds": end - start, "sections": sections}
    stamp = lambda s: datetime.fromisoformat(s).timestamp()  # noqa: E731
    imports = analysis = 0.0
    for cell in cells:
        pm = cell.metadata["papermill"]
        seconds = pm.get("duration") or 0.0
        if only_imports(cell.source):
            imports += seconds
        else:
            analysis += seconds
    last = cells[-1].metadata["papermill"]
    return {"kernel_start_seconds": stamp(cells[0].metadata["papermill"]["start_time"]) - start,
            "import_seconds": imports, "analysis_seconds": analysis,
            "teardown_seconds": end - stamp(last["end_time"]) if last.get("end_time") else None,
            "sections": sections}


def finish_segment(task: dict) -> dict:
    """Summary, report and publication of one segment's folder; never raises.

    Nothing is recomputed: `summary.json`, the report's findings and the segment's status
    (``ok``, ``partial`` with ``reasons``, or ``failed``) come from the records the notebooks'
    sections left in their outputs (`workbench.run.records`).
    """
    import nbformat

    from ..dataset.folders import publish
    from . import records as section_records
    from .report import render_report
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
                nb = nbformat.read(tmp / name, as_version=4)  # once, for its records and its error
                records += section_records.records_in(nb, Path(name).stem)
                stopped = section_records.notebook_error(nb)
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
                      segment_label=task["label"], quality_note=quality_note(summary, task.get("quality_notes", ())),
                      findings=found)
        out["report_seconds"] = time.perf_counter() - tick
        for path in tmp.rglob("*"):
            if path.is_file():
                redact_file(path)
        broken = runfiles.check_complete(tmp, rendered)
    except Exception as exc:  # noqa: BLE001 - recorded as this segment's failure
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        broken = out["error"]
    out["error"] = redact(out["error"]) if out["error"] else None
    out["reasons"] = [redact(r) for r in out["reasons"]]
    if broken:
        # A folder that is not whole (a full disk, a write that failed) never replaces the last good one.
        kept = final.is_dir()
        runfiles.discard(tmp)
        out.update(status="failed", error=redact(f"{broken}; " + ("the previous report was kept" if kept else
                                                                   "no report was published")))
        out["reasons"] = [out["error"]]
        return out
    publish(tmp, final)
    return out
