"""Fork-server kernels (`workbench.run.factory`): real kernels forked from a real factory, no mocks.

A forked kernel must be indistinguishable from one started the usual way (folder, environment, figures),
its own process (pid, random state), followed to its death like any kernel, and the factory must never
be the reason a notebook fails: when it cannot serve, kernels start the usual way.
"""
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import nbformat
import psutil
import pytest
from jupyter_core.utils import run_sync
from nbformat.v4 import new_code_cell, new_notebook

from workbench.run import factory as kernel_factory
from workbench.run.executors import WORKER_DEFAULTS
from workbench.run import factoryserver
from workbench.run.factoryserver import CallFailed, FactoryServer
from workbench.run.jobs import KERNEL, WarmKernel, execute_notebook
from workbench.run.secrets import SECRET_NAMES_VARIABLE

pytestmark = pytest.mark.skipif(not kernel_factory.supported(), reason="kernels are forked on Linux only")

#: What the factories import before forking: numpy (OpenBLAS's threads), pandas (pyarrow's allocator
#: thread) and pyplot, as the analysis notebooks' import cells do.
PRELOAD = "import numpy\nimport pandas\nimport matplotlib.pyplot as plt"

#: Prints, as JSON, what a kernel sees of its process and surroundings.
PROBE = """import json as _json, os as _os, sys as _sys, random as _random, threading as _threading
import matplotlib as _mpl, numpy as _np
print(_json.dumps({"pid": _os.getpid(), "ppid": _os.getppid(), "pgid": _os.getpgid(0), "sid": _os.getsid(0),
                   "cwd": _os.getcwd(), "env": dict(_os.environ), "path": _sys.path, "argv0": _sys.argv[0],
                   "backend": _mpl.get_backend(), "numpy": _np.random.rand(), "random": _random.random(),
                   "threads": sorted(t.name for t in _threading.enumerate()),
                   "stderr": _os.path.realpath("/proc/self/fd/2")}))"""


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    """One factory for the module's tests, started in a folder of its own, as a worker starts it in logs/."""
    started = kernel_factory.KernelFactory.start(KERNEL, PRELOAD, tmp_path_factory.mktemp("logs"))
    assert started is not None
    yield started
    started.close()
    assert started.process.poll() is not None


@contextmanager
def warm_kernel(cwd, factory=None):
    """A started `WarmKernel` in ``cwd`` (forked by ``factory`` when one is given), shut down afterwards."""
    with WarmKernel(cwd, factory=factory) as kernel:
        kernel.manager()
        yield kernel


def execute(kernel: WarmKernel, code: str, timeout: float = 60) -> tuple[str, dict]:
    """Run ``code`` on the kernel's client: (what it printed, the execute reply's content)."""
    printed = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = run_sync(kernel.kc.execute_interactive)(code, timeout=timeout, output_hook=hook)
    return "".join(printed), reply["content"]


def probe(kernel: WarmKernel) -> dict:
    printed, reply = execute(kernel, PROBE)
    assert reply["status"] == "ok", reply
    return json.loads(printed)


def notebook(tmp_path, name: str, *sources: str):
    """A notebook of code cells (after a parameters cell), written to ``tmp_path/<name>.in.ipynb``."""
    nb = new_notebook(cells=[new_code_cell('dataset_path = ""', metadata={"tags": ["parameters"]}),
                             *(new_code_cell(s) for s in sources)])
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
    path = tmp_path / f"{name}.in.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_forked_kernel_sees_what_a_kernel_started_the_usual_way_sees(factory, tmp_path):
    """Folder, environment (jupyter_client's JPY_PARENT_PID included), sys.path, launcher, matplotlib backend
    and threads are those of a kernel started the usual way; it is the factory's child in a session of its own."""
    with warm_kernel(tmp_path, factory) as forked:
        assert forked.forked
        seen = probe(forked)
    with warm_kernel(tmp_path) as usual:
        assert not usual.forked
        expected = probe(usual)
    assert seen["ppid"] == factory.process.pid and seen["pgid"] == seen["sid"] == seen["pid"]
    assert seen["env"]["JPY_PARENT_PID"] == str(os.getpid())
    for key in ("cwd", "env", "path", "argv0", "backend", "threads", "stderr"):
        assert seen[key] == expected[key], key
    assert seen["cwd"] == str(tmp_path) and seen["backend"] == kernel_factory.INLINE_BACKEND


def test_forked_kernels_are_processes_of_their_own_with_their_own_random_state(factory, tmp_path):
    """Two kernels forked from one factory differ in pid and in numpy's and Python's random draws."""
    with warm_kernel(tmp_path, factory) as first, warm_kernel(tmp_path, factory) as second:
        one, two = probe(first), probe(second)
    assert one["pid"] != two["pid"]
    assert one["numpy"] != two["numpy"] and one["random"] != two["random"]


def test_blas_threads_and_the_arrow_allocator_work_after_the_fork(factory, tmp_path):
    """A matrix product (OpenBLAS's thread pool, shut down in the factory at each fork) and an Arrow-backed
    frame (pyarrow's allocator) work in a forked kernel."""
    code = ("import numpy as np, pandas as pd\na = np.random.default_rng(1).random((600, 600))\n"
            "print(round(float((a @ a.T).trace()), 3))\n"
            "print(pd.DataFrame({'x': ['a', 'b'] * 50_000}, dtype='string[pyarrow]')['x'].str.len().sum())")
    with warm_kernel(tmp_path, factory) as kernel:
        printed, reply = execute(kernel, code)
    assert reply["status"] == "ok", reply
    assert printed.split()[1] == "100000"


@pytest.mark.parametrize("preload", ["pyplot", "inline backend"])
def test_figures_reach_the_executed_notebook_as_png(factory, tmp_path, preload):
    """A figure a cell draws is an image/png output, whether the factory imported pyplot only or the inline
    backend itself (which hooks into the shell only when imported inside a kernel)."""
    source = notebook(tmp_path, "figure", "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])")
    used = factory
    if preload == "inline backend":
        used = kernel_factory.KernelFactory.start(KERNEL, "import matplotlib.pyplot\nimport matplotlib_inline.backend_inline",
                                                  tmp_path)
    try:
        with WarmKernel(tmp_path, factory=used) as kernel:
            done = execute_notebook(source, tmp_path / "figure.ipynb", parameters={}, cwd=tmp_path, timeout=60,
                                    kernel=kernel)
            assert kernel.forked
    finally:
        if used is not factory:
            used.close()
    assert done.status == "ok", done
    outputs = nbformat.read(tmp_path / "figure.ipynb", as_version=4).cells[-1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs), outputs


def test_a_forked_kernel_killed_mid_cell_is_a_kernel_failure_not_a_hang(factory, tmp_path):
    """A kernel that dies in a cell is noticed (a dead kernel, tried once more, on a new fork) within seconds."""
    source = notebook(tmp_path, "dies", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    start = time.monotonic()
    with WarmKernel(tmp_path, factory=factory) as kernel:
        done = execute_notebook(source, tmp_path / "dies.ipynb", parameters={}, cwd=tmp_path, timeout=60, kernel=kernel)
    assert time.monotonic() - start < 30
    assert done.status == "failed" and done.attempts == 2
    assert done.retried_after.startswith("DeadKernelError") and "the kernel failed in all 2 attempts" in done.error


def test_a_forked_kernel_is_interrupted_and_shut_down_through_its_manager(factory, tmp_path):
    """An interrupt stops the running cell only; `shutdown_kernel(now=True)` kills the kernel, whose exit the
    factory reports (-9) and reaps."""
    with warm_kernel(tmp_path, factory) as kernel:
        msg_id = kernel.kc.execute("import time\nopen('started', 'w').close()\ntime.sleep(60)")
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        run_sync(kernel.km.interrupt_kernel)()
        reply = run_sync(kernel.kc.get_shell_msg)(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["ename"] == "KeyboardInterrupt"
        # The kernel goes on: the next cell runs and its value comes back in the reply. ipykernel aborts the
        # requests that reach it just after a cell failed (`stop_on_error`, until its event loop turns): a cell
        # sent at once may come back "aborted", unrun, and is sent again.
        for _ in range(20):
            reply = run_sync(kernel.kc.execute_interactive)("answer = 6 * 7", user_expressions={"a": "answer"},
                                                            timeout=60)["content"]
            if reply["status"] != "aborted":
                break
            time.sleep(0.1)
        assert reply["status"] == "ok" and reply["user_expressions"]["a"]["data"]["text/plain"] == "42"
        process, pid = kernel.km.provisioner.process, kernel.km.provisioner.pid
        run_sync(kernel.km.shutdown_kernel)(now=True)
        assert process.returncode == -signal.SIGKILL
        assert not run_sync(kernel.km.is_alive)()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_when_the_factory_dies_its_kernels_follow_and_new_ones_start_the_usual_way(tmp_path):
    """A killed factory takes its kernels with it (they watch it, as a kernel watches its parent), which their
    managers notice; the next kernel starts the usual way and runs."""
    dying = kernel_factory.KernelFactory.start(KERNEL, "", tmp_path)
    with warm_kernel(tmp_path, dying) as orphan:
        assert orphan.forked
        pid = orphan.km.provisioner.pid
        dying.process.kill()
        deadline = time.monotonic() + 10
        while run_sync(orphan.km.is_alive)():
            assert time.monotonic() < deadline, "the forked kernel outlived its factory"
            time.sleep(0.1)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        with warm_kernel(tmp_path, dying) as usual:
            assert not usual.forked and dying.broken
            assert execute(usual, "print(6 * 7)")[0] == "42\n"


def test_a_factory_that_started_a_thread_or_saw_another_environment_forks_nothing(tmp_path, monkeypatch):
    """Forking a process with a second thread is unsafe (the factory refuses), and imports made under another
    environment may differ: either way the kernel starts the usual way."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "starts_a_thread.py").write_text("import threading, time\n"
                                                "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(modules), os.environ.get("PYTHONPATH", "")]))
    threaded = kernel_factory.KernelFactory.start(KERNEL, "import starts_a_thread", tmp_path)
    plain = kernel_factory.KernelFactory.start(KERNEL, "", tmp_path)
    try:
        with warm_kernel(tmp_path, threaded) as kernel:
            assert not kernel.forked and not threaded.broken
        monkeypatch.setenv("WORKBENCH_TEST_CHANGED", "1")
        with warm_kernel(tmp_path, plain) as kernel:
            assert not kernel.forked and not plain.broken
            assert execute(kernel, "import os\nprint(os.environ['WORKBENCH_TEST_CHANGED'])")[0] == "1\n"
    finally:
        threaded.close()
        plain.close()


def test_closing_the_factory_leaves_no_process(tmp_path):
    """The factory kills and reaps a kernel of its own still running when it is closed (a worker's exit)."""
    closing = kernel_factory.KernelFactory.start(KERNEL, "", tmp_path)
    kernel = WarmKernel(tmp_path, factory=closing)
    kernel.manager()
    pids = [closing.process.pid, kernel.km.provisioner.pid]
    closing.close()
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not run_sync(kernel.km.is_alive)()
    kernel.close()


def test_a_kernel_spec_that_does_not_launch_ipykernel_gets_no_factory():
    """The factory stands in for ``python [options] -m ipykernel_launcher`` only."""
    python = sys.executable
    assert kernel_factory.interpreter_prefix([python, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f",
                                              "{connection_file}"]) == [python, "-Xfrozen_modules=off"]
    assert kernel_factory.interpreter_prefix([python, "-m", "ipykernel", "-f", "{connection_file}"]) == [python]
    assert kernel_factory.interpreter_prefix([python, "-m", "other_kernel", "-f", "{connection_file}"]) is None
    assert kernel_factory.interpreter_prefix(["/usr/bin/R", "--slave", "-f", "{connection_file}"]) is None


def test_a_worker_killed_outright_leaves_no_factory_and_no_kernel(tmp_path):
    """SIGKILL gives a worker no time to shut anything down: its factory sees its control socket close, kills
    its kernels and exits."""
    script = ("import os, signal, sys\n"
              "from workbench.run.factory import KernelFactory\n"
              "from workbench.run.jobs import KERNEL, WarmKernel\n"
              "factory = KernelFactory.start(KERNEL, '', sys.argv[1])\n"
              "kernel = WarmKernel(sys.argv[1], factory=factory)\n"
              "kernel.manager()\n"
              "assert kernel.forked\n"
              "print(factory.process.pid, kernel.km.provisioner.pid, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    worker = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    pids = [int(pid) for pid in worker.stdout.split()]
    assert len(pids) == 2
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline() for p in alive]


def test_the_factory_imports_nothing_from_the_folder_it_starts_in(tmp_path):
    """A module in the factory's folder is not importable by its preload (the folder is not on its path), so no
    kernel inherits it; the kernel's own folder is on its path, as in a kernel started the usual way."""
    started_in, segment = tmp_path / "logs", tmp_path / "segment"
    started_in.mkdir()
    segment.mkdir()
    (started_in / "users_module.py").write_text("print('imported from the factory folder')\n")
    (segment / "segment_module.py").write_text("VALUE = 42\n")
    shadowed = kernel_factory.KernelFactory.start(KERNEL, "import users_module", started_in)
    try:
        with warm_kernel(segment, shadowed) as kernel:
            assert kernel.forked
            printed, reply = execute(kernel, "import sys, segment_module\n"
                                             "print('users_module' in sys.modules, segment_module.VALUE)")
    finally:
        shadowed.close()
    assert reply["status"] == "ok" and printed == "False 42\n", (printed, reply)


# --- a run's factory server (`workbench.run.factoryserver`) --------------------------------------------


@pytest.fixture
def server(tmp_path):
    """A factory server as a run starts it (with the workers' default variables, its lines in a log)."""
    with open(tmp_path / "server.log", "ab") as log:
        started = FactoryServer.start(KERNEL, PRELOAD, defaults=WORKER_DEFAULTS, log=log)
        assert started is not None
        started.log_path = log.name
        yield started
        started.close()


def test_a_worker_gets_a_factory_of_its_own_forked_by_the_run_s_server(server, tmp_path, monkeypatch):
    """A worker's factory is forked, ready-imported, by the server; its kernels are the factory's children and
    see what a kernel started the usual way sees: the worker's stderr (the run's log, not the server's), and
    the names of the run's secret variables, set after the server started. The server's folder is the user's
    alone."""
    for name, value in WORKER_DEFAULTS.items():
        monkeypatch.setenv(name, value)  # as the worker sets them (`workbench.run.executors`)
    monkeypatch.setenv(SECRET_NAMES_VARIABLE, "WORKBENCH_TEST_DB_PASSWORD")  # as `load_params` sets it
    assert stat.S_IMODE(os.stat(server.folder).st_mode) == 0o700
    worker_factory = kernel_factory.KernelFactory.connect(server.address, KERNEL, PRELOAD)
    try:
        with warm_kernel(tmp_path, worker_factory) as forked:
            assert forked.forked
            seen = probe(forked)
        with warm_kernel(tmp_path) as usual:
            expected = probe(usual)
        assert seen["ppid"] == worker_factory.process.pid != server.process.pid
        assert psutil.Process(worker_factory.process.pid).ppid() == server.process.pid
        for key in ("cwd", "env", "path", "argv0", "backend", "threads", "stderr"):
            assert seen[key] == expected[key], key
        assert seen["env"][SECRET_NAMES_VARIABLE] == "WORKBENCH_TEST_DB_PASSWORD"
        assert seen["stderr"] == os.path.realpath("/proc/self/fd/2") != os.path.realpath(server.log_path)
    finally:
        worker_factory.close()
    assert worker_factory.process.poll() is not None


def test_the_server_refuses_a_worker_whose_kernels_it_cannot_stand_in_for(server, tmp_path, monkeypatch):
    """Another environment or other imports: the worker's kernels start the usual way, and its log says why
    (variable names only, never values)."""
    for name, value in WORKER_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    def refused(preload: str):
        connected = kernel_factory.KernelFactory.connect(server.address, KERNEL, preload)
        try:
            with warm_kernel(tmp_path, connected) as kernel:
                assert not kernel.forked and connected.broken
                assert execute(kernel, "print(6 * 7)")[0] == "42\n"
        finally:
            connected.close()
        return connected

    other = refused("import json")
    monkeypatch.setenv("WORKBENCH_TEST_SECRET_TOKEN", "s3cr3t-value")  # a worker's own, unknown to the server
    changed = refused(PRELOAD)
    assert "WORKBENCH_TEST_SECRET_TOKEN" in changed.broken and "s3cr3t" not in changed.broken
    assert other.broken == "the notebooks import other modules"


def test_closing_the_server_or_killing_its_run_leaves_no_process(tmp_path):
    """The run closes its server, or dies outright: the server, the factories it forked and their kernels are
    all gone within seconds, and so is the server's private folder."""
    script = ("import os, signal, sys\n"
              "from workbench.run.executors import WORKER_DEFAULTS\n"
              "from workbench.run.factory import KernelFactory\n"
              "from workbench.run.factoryserver import FactoryServer\n"
              "from workbench.run.jobs import KERNEL, WarmKernel\n"
              "os.environ.update(WORKER_DEFAULTS)\n"
              "server = FactoryServer.start(KERNEL, '', defaults=WORKER_DEFAULTS)\n"
              "factory = KernelFactory.connect(server.address, KERNEL, '')\n"
              "kernel = WarmKernel(sys.argv[1], factory=factory)\n"
              "kernel.manager()\n"
              "assert kernel.forked\n"
              "print(server.folder, server.process.pid, factory.process.pid, kernel.km.provisioner.pid, flush=True)\n"
              "if sys.argv[2] == 'kill':\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "server.close()\n"
              "assert not os.path.exists(server.folder)\n")
    for how, code in (("close", 0), ("kill", -signal.SIGKILL)):
        run = subprocess.run([sys.executable, "-c", script, str(tmp_path), how], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == code, run.stderr
        folder, *pids = run.stdout.split()
        pids = [int(pid) for pid in pids]
        assert len(pids) == 3
        _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=15)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], (how, [p.cmdline() for p in alive])
        assert not os.path.exists(folder), how  # its socket's folder too, even when the run was killed


def test_a_worker_that_cannot_reach_the_server_starts_its_own_factory(tmp_path, monkeypatch):
    """No server at the address (it failed to start, or is gone): the worker's factory is its own."""
    from workbench.run import jobs

    notebook_path = notebook(tmp_path, "plain", "x = 1")
    monkeypatch.setattr(jobs, "_factory", None)
    jobs.start_factory([str(notebook_path)], tmp_path, factories=str(tmp_path / "nothing-here"))
    try:
        assert isinstance(jobs._factory.process, subprocess.Popen)
        with warm_kernel(tmp_path) as kernel:
            assert kernel.forked
    finally:
        jobs.close_factory()


def test_a_server_that_cannot_start_says_so_in_the_log_and_leaves_nothing(tmp_path, monkeypatch):
    """Its socket cannot be made (its folder's path is longer than a socket's address allows): no server, a line
    in the run's log, and the private folder it had made removed."""
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    log = tmp_path / "server.log"
    with open(log, "ab") as out:
        assert FactoryServer.start(KERNEL, "", log=out) is None
    assert "the kernel factory server could not start" in log.read_text()
    assert not list(deep.iterdir())


# --- a server kept warm for the next run --------------------------------------------------------------


@pytest.fixture
def warm_tmp(tmp_path, monkeypatch):
    """A short temporary folder for the user's folder of kept-warm servers (a socket's address is short), with
    the workers' default variables set as a worker sets them (``tmp_path`` is made first, where pytest makes
    it)."""
    short = tempfile.mkdtemp(prefix="wb-", dir="/tmp")
    monkeypatch.setattr(tempfile, "tempdir", short)
    for name, value in WORKER_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    yield short
    for pid in _servers_in(short):
        psutil.Process(pid).kill()
    subprocess.run(["rm", "-rf", short], check=False)


def _servers_in(folder: str) -> list[int]:
    """The pids of the factory servers whose socket is in ``folder``'s folder of kept-warm servers."""
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "factoryserver" in " ".join(process.info["cmdline"] or []) and process.cwd().startswith(folder):
                pids.append(process.pid)
        except psutil.Error:
            continue
    return pids


def _forks_from(server: FactoryServer, tmp_path) -> int:
    """Fork a kernel through a worker's factory from ``server``, run a cell, and return the factory's parent."""
    worker_factory = kernel_factory.KernelFactory.connect(server.address, KERNEL, PRELOAD)
    try:
        with warm_kernel(tmp_path, worker_factory) as kernel:
            assert kernel.forked and execute(kernel, "print(6 * 7)")[0] == "42\n"
        return psutil.Process(worker_factory.process.pid).ppid()
    finally:
        worker_factory.close()


def test_a_server_kept_warm_serves_the_next_run_then_exits_once_idle(warm_tmp, tmp_path):
    """The first run starts a server that outlives it; the next run of the same imports leases it (no new server)
    and its kernels are forked by it at once; once no run has held it for the last run's seconds, it exits and
    leaves no socket and no empty log behind. Its folder is the user's alone."""
    first = FactoryServer.start(KERNEL, PRELOAD, defaults=WORKER_DEFAULTS, keep_warm=30)
    assert first.kept_warm and first.process is not None
    assert stat.S_IMODE(os.stat(first.folder).st_mode) == 0o700 and first.address.startswith(warm_tmp)
    assert _forks_from(first, tmp_path) == first.process.pid
    first.close()  # the run is done: its lease ends, the server stays
    time.sleep(0.5)
    assert first.process.poll() is None

    second = FactoryServer.start(KERNEL, PRELOAD, defaults=WORKER_DEFAULTS, keep_warm=1)
    assert second.process is None and second.kept_warm and second.address == first.address
    started = time.monotonic()
    assert _forks_from(second, tmp_path) == first.process.pid
    assert time.monotonic() - started < 10
    time.sleep(2)
    assert first.process.poll() is None  # leased: not idle, whatever the seconds
    second.close()
    first.process.wait(timeout=15)  # idle for the second run's 1 s
    assert os.listdir(first.folder) == []


def test_a_call_forked_from_a_server_kept_warm_says_when_it_cannot_answer(warm_tmp, tmp_path, monkeypatch):
    """`FactoryServer.call` (a run's data phase, in a process forked from the kept-warm server): arguments larger
    than one message cross in pieces; a function that fails with an error the run does not report as its own,
    a server running another Python or workbench than the run, and a server that is not kept warm, raise
    `CallFailed` (the run then does the work itself)."""
    first = FactoryServer.start(KERNEL, PRELOAD, defaults=WORKER_DEFAULTS, keep_warm=30)
    private = FactoryServer.start(KERNEL, PRELOAD, defaults=WORKER_DEFAULTS)
    try:
        first.close()
        second = FactoryServer.start(KERNEL, PRELOAD, defaults=WORKER_DEFAULTS, keep_warm=1)
        assert second.process is None
        with pytest.raises(CallFailed, match=r"failed \(AttributeError: 'NoneType' object has no attribute 'spec'\)"):
            second.call("prepare", None, tmp_path, {"previous run": "x" * 300_000}, os.getpid())
        with monkeypatch.context() as patch:  # a kernel spec naming another interpreter, with another workbench
            patch.setattr(factoryserver, "_python", lambda: ["/elsewhere", sys.version, "/elsewhere/workbench"])
            with pytest.raises(CallFailed, match="its Python or workbench is not the run's"):
                second.call("prepare", None, tmp_path, None, os.getpid())
        second.close()
        with pytest.raises(CallFailed, match="it is not kept warm|did not answer"):
            private.call("prepare", None, tmp_path, None, os.getpid())
        first.process.wait(timeout=15)  # no process of the call's is left to hold it
    finally:
        private.close()


PROBE_VALUE = "import wb_warm_probe\nprint(wb_warm_probe.VALUE)"


def test_a_server_kept_warm_whose_imports_changed_serves_no_new_run(warm_tmp, tmp_path, monkeypatch):
    """A module the server imported is changed on disk: the next run is refused with the file named, and starts a
    fresh server at the same address; the stale one exits."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "wb_warm_probe.py").write_text("VALUE = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(modules))
    preload = "import wb_warm_probe"
    with open(tmp_path / "run.log", "w+b") as log:
        first = FactoryServer.start(KERNEL, preload, defaults=WORKER_DEFAULTS, keep_warm=30, log=log)
        connected = kernel_factory.KernelFactory.connect(first.address, KERNEL, preload)
        try:
            with warm_kernel(tmp_path, connected) as kernel:  # waits for the server's imports
                assert kernel.forked and execute(kernel, PROBE_VALUE)[0] == "1\n"
        finally:
            connected.close()
        first.close()
        (modules / "wb_warm_probe.py").write_text("VALUE = 22\n")
        second = FactoryServer.start(KERNEL, preload, defaults=WORKER_DEFAULTS, keep_warm=30, log=log)
        try:
            assert second.process is not None and second.process.pid != first.process.pid
            assert second.address == first.address
            first.process.wait(timeout=15)
            connected = kernel_factory.KernelFactory.connect(second.address, KERNEL, preload)
            try:
                with warm_kernel(tmp_path, connected) as kernel:
                    assert kernel.forked and execute(kernel, PROBE_VALUE)[0] == "22\n"
            finally:
                connected.close()
            log.seek(0)
            said = log.read().decode()
            assert "its imports changed on disk since it imported them" in said and "wb_warm_probe.py" in said
        finally:
            second.process.kill()
            second.close()


def test_the_address_of_a_server_kept_warm_names_what_it_imported_and_saw(warm_tmp):
    """Another interpreter, other imports or another variable: another server. A variable read only when a kernel
    runs (pytest's test name, the run's secret names), or the shell's bookkeeping (a ``cd`` between two runs),
    changes nothing."""
    from workbench.run.factoryserver import warm_address, warm_folder

    folder = warm_folder()
    env = {"PATH": "/usr/bin", "HOME": "/root"}
    address = warm_address(folder, ["/py"], PRELOAD, env)
    assert address != warm_address(folder, ["/py3"], PRELOAD, env)
    assert address != warm_address(folder, ["/py"], "import json", env)
    assert address != warm_address(folder, ["/py"], PRELOAD, {**env, "LANG": "C"})
    assert address == warm_address(folder, ["/py"], PRELOAD, {**env, "PYTEST_CURRENT_TEST": "x",
                                                                SECRET_NAMES_VARIABLE: "DB_PASSWORD"})
    assert address == warm_address(folder, ["/py"], PRELOAD, {**env, "PWD": "/srv", "OLDPWD": "/tmp", "SHLVL": "3"})


def test_no_server_is_kept_warm_in_a_folder_others_can_enter(warm_tmp, tmp_path):
    """The user's folder of kept-warm servers open to others, or a symlink to a folder elsewhere: nothing is kept
    warm there (the run's server is its own, and its log says why)."""
    from workbench.run.factoryserver import warm_folder

    folder = warm_folder()
    os.chmod(folder, 0o755)
    assert warm_folder() is None
    with open(tmp_path / "run.log", "w+b") as log:
        server = FactoryServer.start(KERNEL, "", defaults=WORKER_DEFAULTS, keep_warm=30, log=log)
        try:
            assert server is not None and not server.kept_warm and not server.address.startswith(str(folder))
        finally:
            server.close()
        log.seek(0)
        assert "is not a folder of this user's alone" in log.read().decode()
    os.rmdir(folder)
    os.symlink(tmp_path, folder)
    assert warm_folder() is None
