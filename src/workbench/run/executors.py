"""Where `workbench run`'s tasks run: worker processes on this machine, or a Dask cluster.

Both executors offer the same small interface to the runner: ``capacity`` (tasks that can run
at once), ``submit(fn, arg, tag)``, ``pending``, ``next_done()`` returning ``(tag, result,
error)``, ``retire()`` once no task is left, and ``close()``. A task that raises comes back as
``(tag, None, error)``, so the runner records it as that task's failure. Local workers are
spawned fresh (not forked from the run) and send their stderr, and so the kernels' own log lines,
to the run's log file (``logs/workers.log``), not the terminal.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path


#: Environment variables a local worker sets for itself unless they are set, and so its kernels see:
#: nbformat's own faster validator (a dependency of nbformat): each executed notebook is read and
#: written, and so validated, several times (reading and writing a report's five notebooks once:
#: 0.24 s with jsonschema, 0.16 s with it).
WORKER_DEFAULTS = {"NBFORMAT_VALIDATOR": "fastjsonschema"}


#: Optional imports of Papermill's that a worker skips (`_init_worker`): its HDFS handler (pyarrow's file
#: systems, 0.1-0.2 s of a worker's start). The run hands Papermill local files only.
PAPERMILL_SKIPS = ("pyarrow.fs",)

#: How long a starting worker waits for its kernel factory to say it is ready before it imports Papermill
#: (`_init_worker`): a factory forked by a kept-warm server says so within milliseconds.
EARLY_KERNEL_WAIT = 0.1


class LocalPool:
    """Worker processes on this machine (started fresh, not forked from the run)."""

    def __init__(self, workers: int, log: Path, spare: dict | None = None, factories: str | None = None):
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(str(log), spare, factories))
        #: How each worker starts its next kernel ahead (`workbench.run.jobs.prestart_spare`'s arguments).
        self.spare = spare
        self.capacity = workers
        self.futures = {}
        #: The thread that shuts the pool down once no task is left (`retire`).
        self.retiring: threading.Thread | None = None
        for _ in range(workers):  # one no-op task per worker starts them all now
            self.pool.submit(int)

    def submit(self, fn, arg, tag):
        self.futures[self.pool.submit(fn, arg)] = tag

    @property
    def pending(self) -> int:
        return len(self.futures)

    def next_done(self):
        done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        tag = self.futures.pop(future)
        try:
            return tag, future.result(), None
        except Exception as exc:  # noqa: BLE001 - a crashed worker fails its job only
            return tag, None, exc

    def retire(self):
        """Let the workers exit once their tasks are done, without waiting for them here (`close` waits)."""
        if self.retiring is None:
            self.retiring = threading.Thread(target=self.pool.shutdown, name="workbench-retire", daemon=True)
            self.retiring.start()

    def close(self, interrupted: bool = False):
        """Wait for the workers to finish; when the run was interrupted, stop their tasks first (each
        worker stops its notebook and shuts its kernel down, as on Ctrl-C) so that no process is left."""
        if interrupted:
            for process in list((self.pool._processes or {}).values()):  # noqa: SLF001 - no public handle
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        if self.retiring is not None:
            self.retiring.join()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _stop_once(signum, frame):
    """A worker's first SIGINT or SIGTERM stops its task (its kernel is shut down on the way out); later
    ones are ignored, so that the cleanup is not cut short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _init_worker(log: str, spare: dict | None, factories: str | None) -> None:
    """Send a worker's stderr, inherited by the kernels it starts, to the run's log file; stop cleanly on
    SIGTERM (and on SIGINT unless the run ignores it); start the worker's kernel factory, which forks its
    kernels (`workbench.run.jobs.start_factory`), and its first kernel with the notebooks' imports
    (`workbench.run.jobs.prestart_spare` with ``spare``); both are shut down when the worker exits. The
    factory is forked by the run's factory server at ``factories`` when there is one.

    The factory imports while the worker imports Papermill, which its first task needs, and the first
    kernel is forked from it while the run loads its data; a factory ready at once (kept warm) forks it
    first, and the kernel starts while the worker imports Papermill. The worker leaves what it needs only once a
    segment's notebooks are done (the report, the records) to a background thread, which imports them
    while the first notebooks run.
    """
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    signal.signal(signal.SIGTERM, _stop_once)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _stop_once)
    for name, value in WORKER_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from multiprocessing.util import Finalize

    from . import jobs

    Finalize(None, _exit_at_once, exitpriority=0)  # last of all
    Finalize(None, jobs.close_spare, exitpriority=10)
    Finalize(None, jobs.close_factory, exitpriority=5)  # after the spare (higher priorities go first)
    if spare:
        jobs.start_factory(**spare, factories=factories)
    # A factory whose imports are done (kept warm by an earlier run) forks the first kernel now, which then
    # starts beside Papermill's imports; one still importing would keep the worker waiting: Papermill first.
    early = bool(spare) and jobs.factory_ready(EARLY_KERNEL_WAIT)
    if early:
        jobs.prestart_spare(**spare)
    with _unimportable(PAPERMILL_SKIPS):
        import papermill  # noqa: F401

    if spare and not early:
        jobs.prestart_spare(**spare)
    gc.freeze()  # see `_import_for_reports`
    threading.Thread(target=_import_for_reports, name="workbench-imports", daemon=True).start()


@contextmanager
def _unimportable(names):
    """Within the block, importing one of ``names`` that is not imported yet fails with ImportError (as if it were
    not installed), so that a library's optional import of it is skipped; after it, they import as usual."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def _exit_at_once() -> None:
    """A worker's last step, once its kernel and factory are shut down: leave without the interpreter's
    teardown of all it imported (0.3-0.4 s, which every run waits for at its end)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _import_for_reports() -> None:
    """Import and prepare what a worker needs once a segment's notebooks are done, then freeze what the
    worker holds: the garbage collector no longer walks through the imported modules, which a collection
    of every generation did in 0.05-0.2 s (250,000 objects), at moments as ill-chosen as between a
    segment's last cell and its report. Objects frozen while a notebook runs are freed as usual once
    unreferenced; only a reference cycle among them would be kept."""
    import nbconvert  # noqa: F401

    from ..dataset import folders  # noqa: F401
    from . import records, report, summary  # noqa: F401

    try:
        report.prepare()
    except Exception:  # noqa: BLE001, S110 - the segment's own report says what is wrong
        pass
    gc.freeze()


class DaskPool:
    """The same jobs on a Dask cluster."""

    #: A Dask worker runs tasks on several threads at once: no kernel is started ahead.
    spare = None

    def __init__(self, address: str):
        from distributed import Client, as_completed

        self.client = Client(address, set_as_default=False)
        self.capacity = max(1, sum(self.client.nthreads().values()))
        self.done = as_completed(loop=self.client.loop)
        self.tags = {}

    def submit(self, fn, arg, tag):
        future = self.client.submit(fn, arg, pure=False)
        self.tags[future.key] = tag
        self.done.add(future)

    @property
    def pending(self) -> int:
        return self.done.count()

    def next_done(self):
        future = next(self.done)
        tag = self.tags.pop(future.key)
        try:
            return tag, future.result(), None
        except Exception as exc:  # noqa: BLE001
            return tag, None, exc

    def retire(self):
        """The cluster's workers are not the run's: nothing to do."""

    def close(self, interrupted: bool = False):
        self.client.close()
