"""Fork-server kernels: a worker's kernels forked, ready-imported, from one long-lived process.

A fresh `workbench` kernel costs about 2.4 s of CPU before its first cell: the interpreter, ipykernel
and IPython, then the analyses' imports (seaborn, scipy, matplotlib, pandas). A local worker of
`workbench run` needs a new kernel for every segment (a kernel never serves two segments), so on a
busy machine those starts were a fifth of a run's CPU. Each local worker therefore keeps a kernel
factory: a process started once, like the kernel would be (the kernel spec's interpreter and flags,
its environment), that imports ipykernel and the notebooks' import cells and then only forks. Each
child becomes a real ipykernel kernel (`IPKernelApp`) in its own session, in the segment's folder,
with the launch's environment: a fresh process that never saw another segment's data, for the cost
of a fork and the kernel app's start. A run forks each worker's factory, ready-imported, from one factory
server of its own (`workbench.run.factoryserver`, `KernelFactory.connect`); a worker without one starts
its factory itself (`KernelFactory.start`).

The worker's side is `KernelFactory` (the process and its control socket) and `ForkingKernelManager`
(an `AsyncKernelManager` whose `ForkProvisioner` asks the factory for the kernel). Whenever the factory
cannot serve (no `os.fork` or pidfd on this platform, a kernel spec that is not ipykernel's, it failed
to start, died, timed out, or the environment changed since it started), the kernel starts the usual
way: a run never fails because of the factory.

The factory's side is `serve`. Forking is only safe from a process with a single thread: the factory
holds no ZMQ context or socket, no event loop, no thread and no kernel app; the numerical libraries'
thread pools (OpenBLAS) shut down before a fork and start again in the child on first use. A forked
kernel watches the factory, its parent, as ipykernel's kernels watch theirs: it exits when the factory
goes, and the factory kills its kernels when the worker goes (its control socket closes), so that no
process outlives the run.
"""
from __future__ import annotations

import ast
import functools
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

#: The factory process's program: nothing is imported from the folder it starts in (``-c`` puts it first
#: on ``sys.path`` unless the spec's options say not to), as ipykernel_launcher does for a kernel.
BOOTSTRAP = ("import sys\nif sys.path[:1] == ['']:\n    del sys.path[0]\n"
             "from workbench.run.factory import serve\nserve(int(sys.argv[1]))")

#: The modules a kernel spec may launch for the factory to stand in for it.
LAUNCHERS = ("ipykernel_launcher", "ipykernel")

#: ipykernel's own default backend (`IPKernelApp.init_gui_pylab`), set in the factory before the imports
#: load matplotlib, which reads it once.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

#: Launch variables read when the kernel runs, not when it imports: those that differ from one kernel to the
#: next (pytest's names the test phase); the names of a run's secret variables, which `workbench run` sets
#: once it has read its specification, after its factory server started (`workbench.run.secrets.
#: SECRET_NAMES_VARIABLE`); and the terminal's size, which readline puts in the C environment of a process
#: that imports it (IPython, pytest), where a worker started from that process sees it and ``os.environ``
#: does not; and the shell's own bookkeeping, which no import reads and which the kept-warm server of one run
#: would otherwise refuse to the next: ``_``, the command it ran last (``workbench`` for one run, ``python``
#: for another), ``PWD`` and ``OLDPWD``, its working folder and the one before (a ``cd`` between two runs),
#: and ``SHLVL``, how deep it is nested (a run from a script). Any other difference between a launch's
#: environment and the factory's means that the factory's imports may have seen another environment: that
#: kernel starts the usual way.
PER_KERNEL_VARIABLES = frozenset({"JPY_PARENT_PID", "JPY_SESSION_NAME", "PYTEST_CURRENT_TEST", "_", "PWD",
                                  "OLDPWD", "SHLVL", "WORKBENCH_SCRUB_VARIABLES", "COLUMNS", "LINES"})

#: How long the worker waits for the factory's imports (as long as for a kernel to start), for a fork,
#: and for an answer about a kernel's exit.
READY_TIMEOUT = 120.0
FORK_TIMEOUT = 30.0
STATUS_TIMEOUT = 10.0

#: How often a worker looks whether a kernel it killed is gone.
KILLED_POLL = 0.005

#: How often the factory reaps its exited kernels when no request comes.
REAP_INTERVAL = 0.5

#: The exit code reported for a forked kernel whose factory is gone (and so is its exit status): a kernel
#: outliving its factory exits with 1 (ipykernel's parent watcher).
UNKNOWN_EXIT = 1

#: One control message; a launch's environment is a few kilobytes.
MESSAGE_BYTES = 1 << 20


def supported() -> bool:
    """Whether kernels can be forked here: POSIX ``fork`` and Linux's pidfd (5.3 and later; the worker follows a
    kernel that is not its own child by a pidfd, which, unlike a pid, never comes to name another process)."""
    if not (hasattr(os, "fork") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an older kernel
        return False
    return True


# --- the worker's side -------------------------------------------------------------------------


class KernelFactory:
    """A worker's kernel factory: the process and the socket that asks it for kernels.

    `start` returns at once; the first `fork` waits for the factory's imports. Every method is safe to
    call from several threads (nbclient polls a kernel from its own event loop) and never raises.
    """

    def __init__(self, process: subprocess.Popen, control: socket.socket, prefix: list[str], env: dict):
        self.process = process
        self.control = control
        #: The interpreter and its options, as the kernel spec starts them (``argv`` before ``-m``).
        self.prefix = prefix
        #: The environment the factory started with, which its imports saw.
        self.env = env
        #: Why the factory no longer serves (it died, timed out, or was closed), or None.
        self.broken: str | None = None
        self._ready = False
        self._lock = threading.Lock()
        self._noted: set[str] = set()

    @classmethod
    def start(cls, kernel_name: str, preload: str, cwd: str | os.PathLike) -> KernelFactory | None:
        """Start a factory for the kernel spec ``kernel_name``, importing ``preload`` (the notebooks' import
        cells), in ``cwd``: a folder with no Python file of the user's, as a kernel's imports look in its
        working folder first. None when kernels cannot be forked here (`supported`) or it fails to start."""
        try:
            launch = forkable_launch(kernel_name)
            if launch is None:
                return None
            prefix, env = launch
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                # Its own session: a Ctrl-C in the terminal reaches the run and its workers, which shut their
                # kernels down, but must not kill the factory in the middle of a fork.
                process = subprocess.Popen([*prefix, "-c", BOOTSTRAP, str(theirs.fileno())], cwd=os.fspath(cwd),
                                           env=env, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                                           start_new_session=True)
            finally:
                theirs.close()
            factory = cls(process, ours, prefix, env)
            factory._send({"preload": preload})
            return factory
        except Exception as exc:  # noqa: BLE001 - the kernels start the usual way
            _log(f"the kernel factory could not start ({type(exc).__name__}: {exc}): kernels start the usual way")
            return None

    @classmethod
    def connect(cls, address: str, kernel_name: str, preload: str) -> KernelFactory | None:
        """A factory of this worker's own, forked ready-imported by the factory server at ``address``
        (`workbench.run.factoryserver`), which imported ``preload`` for the kernel spec ``kernel_name``
        under this worker's environment; None when there is no such server (the worker then starts its
        own factory). A server that imported something else answers so on the first `fork`, which then
        starts the kernel the usual way."""
        try:
            launch = forkable_launch(kernel_name)
            if launch is None:
                return None
            prefix, env = launch
            control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                control.connect(address)
                factory = cls(None, control, prefix, env)
                # With this worker's stderr (the run's log), which its factory and kernels write to.
                message = json.dumps({"factory": {"prefix": prefix, "env": env, "preload": preload}}).encode()
                socket.send_fds(control, [message], [2])
            except BaseException:
                control.close()
                raise
            return factory
        except Exception as exc:  # noqa: BLE001 - the worker starts its own factory
            _log(f"no kernel factory from {address} ({type(exc).__name__}: {exc})")
            return None

    def fork(self, cmd: list[str], env: dict, cwd: str) -> ForkedKernel | None:
        """A kernel forked for the launch command ``cmd`` (the kernel spec's, formatted), with the launch's
        ``env`` and ``cwd``; None when the factory cannot serve it (the kernel then starts the usual way)."""
        with self._lock:
            if self.broken:
                return None
            reason = self._refusal(cmd, env)
            if reason:
                self._note(reason)
                return None
            if not self._ready:
                if not self._await_ready():
                    return None
                self._ready = True
            answer = self._exchange({"fork": {"argv": cmd[len(self.prefix) + 2:], "env": env, "cwd": cwd}},
                                    "pid", FORK_TIMEOUT, refusal="error")
            if answer is None:
                return None
            reply, fds = answer
            if "error" in reply or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                self._note(f"a fork failed ({reply.get('error')})")
                return None
            return ForkedKernel(reply["pid"], fds[0], self)

    def ready_soon(self, timeout: float) -> bool:
        """Whether the factory has said it is ready (its imports done), or says so within ``timeout`` seconds: a
        factory forked by a kept-warm server does at once. Nothing is read: the first `fork` reads it."""
        with self._lock:
            if self._ready:
                return True
            try:
                return not self.broken and readable(self.control.fileno(), timeout)
            except (OSError, ValueError):
                return False

    def _await_ready(self) -> bool:
        """Wait for the factory's imports; a factory forked by a server comes with a pidfd of its process, or
        with the server's refusal (it imported something else: this worker's kernels start the usual way)."""
        answer = self._exchange(None, "ready", READY_TIMEOUT, refusal="refused")
        if answer is None:
            return False
        reply, fds = answer
        if "refused" in reply:
            for fd in fds:
                os.close(fd)
            self._note(f"the kernel factory server cannot serve this worker ({reply['refused']})")
            self._stop(reply["refused"], kill=False)
            return False
        if self.process is None:
            if len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                self._break("the factory server sent no handle on its factory")
                return False
            self.process = FactoryProcess(reply["ready"], fds[0])
        return True

    def exit_status(self, pid: int) -> int | None:
        """The exit code of a forked kernel that has exited (negative: the signal that killed it), from the
        factory that reaped it; None when the factory can no longer tell."""
        with self._lock:
            answer = None if self.broken else self._exchange({"status": pid}, "status", STATUS_TIMEOUT)
            return None if answer is None else answer[0]["status"]

    def close(self) -> None:
        """Stop the factory: it kills any kernel of its own still running, reaps them and exits."""
        with self._lock:
            self._stop("closed", kill=False)

    def _refusal(self, cmd: list[str], env: dict) -> str | None:
        n = len(self.prefix)
        if cmd[:n + 1] != [*self.prefix, "-m"] or len(cmd) < n + 2 or cmd[n + 1] not in LAUNCHERS:
            return "the launch command is not the kernel spec's"
        changed = sorted(k for k in env.keys() | self.env.keys()
                         if k not in PER_KERNEL_VARIABLES and env.get(k) != self.env.get(k))
        if changed:  # names only: values may be secrets
            return f"the environment changed since the factory started ({', '.join(changed[:5])})"
        return None

    def _send(self, message: dict) -> None:
        self.control.sendall(json.dumps(message).encode())  # one datagram: a whole message or an error

    def _exchange(self, message: dict | None, key: str, timeout: float, refusal: str | None = None):
        """Send ``message`` (if any) and return the factory's answer holding ``key`` (or ``refusal``) and the
        file descriptors that came with it; None, with the factory given up, when it cannot answer."""
        try:
            if message is not None:
                self._send(message)
            if not readable(self.control.fileno(), timeout):
                raise TimeoutError(f"the kernel factory did not answer within {timeout:.0f} s")
            data, fds, _, _ = socket.recv_fds(self.control, MESSAGE_BYTES, 1)
            if not data:
                raise ValueError("the control socket closed")
            reply = json.loads(data)
            if key not in reply and refusal not in reply:
                for fd in fds:
                    os.close(fd)
                raise ValueError(f"the kernel factory answered {sorted(reply)} instead of {key!r}")
            return reply, fds
        except (OSError, TimeoutError, ValueError) as exc:
            self._break(f"{type(exc).__name__}: {exc}")
            return None
        except BaseException:  # a stop (SIGTERM, Ctrl-C) mid-exchange: an answer may still be on its way
            self._break("interrupted")
            raise

    def _break(self, reason: str) -> None:
        code = None if self.process is None else self.process.poll()
        exited = "" if code is None else f"; it exited with {code}"
        _log(f"the kernel factory stopped serving ({reason}{exited}): kernels start the usual way")
        self._stop(reason, kill=True)

    def _stop(self, reason: str, kill: bool) -> None:
        if self.broken:
            return
        self.broken = reason
        self.control.close()  # the factory sees the end of its control socket, kills its kernels and exits
        if self.process is None:
            return  # a server's factory that never answered: the server's own end goes with the server
        try:
            if kill:
                self.process.kill()
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        except OSError:
            pass

    def _note(self, reason: str) -> None:
        if reason not in self._noted:
            self._noted.add(reason)
            _log(f"a kernel starts the usual way: {reason}")


class PidfdProcess:
    """A process that is not this process's child, as `subprocess.Popen` looks to its users: ``pid``, `poll`,
    `wait`, `send_signal`, `kill`, `terminate`. It is followed by a pidfd (readable once the process has
    exited, and never naming another process) and signalled through it; its exit code is `exit_code`'s."""

    #: What it is, in a timeout's message.
    what = "process"

    def __init__(self, pid: int, pidfd: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._lock = threading.Lock()

    def exit_code(self) -> int:
        """The exit code of the process, once it has exited: unknown here unless a subclass can ask."""
        return UNKNOWN_EXIT

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None and readable(self._pidfd, 0):
                self.returncode = self.exit_code()
                os.close(self._pidfd)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"{self.what} {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        with self._lock:
            if self.returncode is None:
                try:
                    signal.pidfd_send_signal(self._pidfd, signum)
                except ProcessLookupError:
                    pass  # exited; `poll` collects its status

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class FactoryProcess(PidfdProcess):
    """A factory forked by a factory server, as `KernelFactory` uses a `subprocess.Popen`. It is the server's
    child, not this worker's: its exit code is not known here (`UNKNOWN_EXIT` once it has exited)."""

    what = "kernel factory"


class ForkedKernel(PidfdProcess):
    """A forked kernel as jupyter_client's provisioner sees a `subprocess.Popen`. The kernel is the factory's
    child, not this process's: its exit code is asked of the factory, which reaped it."""

    what = "kernel"
    stdin = stdout = stderr = None

    def __init__(self, pid: int, pidfd: int, factory: KernelFactory):
        super().__init__(pid, pidfd)
        self._factory = factory

    def exit_code(self) -> int:
        status = self._factory.exit_status(self.pid)
        return UNKNOWN_EXIT if status is None else status


def interpreter_prefix(argv: list[str]) -> list[str] | None:
    """The interpreter and its options from a kernel spec's ``argv`` (``[python, -X..., -m, ipykernel_launcher,
    -f, {connection_file}]``), or None when the spec does not launch ipykernel as a module."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m":
            return list(argv[:i]) if argv[i + 1] in LAUNCHERS and i > 0 else None
    return None


@dataclass(frozen=True)
class KernelSpec:
    """What a run needs of a kernel spec: how it launches (``argv``, ``env``), its name shown to people, its folder."""

    argv: list[str]
    env: dict
    display_name: str
    resource_dir: str


def kernel_spec(name: str) -> KernelSpec | None:
    """The kernel spec ``name`` as jupyter_client finds it, or None when there is none.

    A spec in the folders Jupyter looks in (`jupyter_core.paths.jupyter_path`) is read here, as jupyter_client
    reads it, without importing jupyter_client (0.15-0.25 s of a run's start, before its first cell); any other
    (in IPython's folder, one that names a provisioner, one that does not read) is left to jupyter_client
    itself, whose errors are its own."""
    from jupyter_core.paths import jupyter_path

    wanted = name.lower()
    for folder in jupyter_path("kernels"):
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(folder, entry)
            if entry.lower() != wanted or not os.path.isfile(os.path.join(path, "kernel.json")):
                continue
            try:
                with open(os.path.join(path, "kernel.json"), encoding="utf-8") as file:
                    data = json.load(file)
                if not (data.get("metadata") or {}).get("kernel_provisioner"):
                    return KernelSpec(list(data["argv"]), dict(data.get("env") or {}),
                                      str(data.get("display_name", "")), path)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
            return _kernel_spec_by_jupyter_client(name)
    return _kernel_spec_by_jupyter_client(name)


def _kernel_spec_by_jupyter_client(name: str) -> KernelSpec | None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return KernelSpec(list(spec.argv), dict(spec.env or {}), spec.display_name, spec.resource_dir)


def forkable_launch(kernel_name: str) -> tuple[list[str], dict] | None:
    """The interpreter prefix and the environment a kernel of ``kernel_name`` is launched with from this
    process (`interpreter_prefix`, `kernel_environment`); None when kernels cannot be forked here
    (`supported`), there is no such kernel spec, or it does not start ipykernel."""
    if not supported():
        return None
    spec = kernel_spec(kernel_name)
    if spec is None:
        return None
    prefix = interpreter_prefix(spec.argv)
    if prefix is None:
        _log(f"kernel spec `{kernel_name}` does not start ipykernel: kernels start the usual way")
        return None
    return prefix, kernel_environment(spec)


def kernel_environment(spec: KernelSpec) -> dict:
    """The environment jupyter_client gives a kernel of ``spec`` launched from this process (without the
    launch's own `PER_KERNEL_VARIABLES`): ours, the spec's ``env`` with our values substituted, and no
    ``PYTHONEXECUTABLE`` (`KernelProvisionerBase.pre_launch`)."""
    from string import Template

    env = dict(os.environ)
    env.update({k: Template(v).safe_substitute(env) for k, v in (spec.env or {}).items()})
    env.pop("PYTHONEXECUTABLE", None)
    for name in PER_KERNEL_VARIABLES:
        env.pop(name, None)
    return env


def readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` can be read (a pidfd: its process has exited) within ``timeout`` seconds (`select.poll`:
    no limit on descriptor numbers, unlike `select.select`)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _log(line: str) -> None:
    """A line in the worker's log (a local worker's stderr is the run's ``logs/workers.log``)."""
    print(f"workbench: {line}", file=sys.stderr, flush=True)


@functools.cache
def _manager_classes():
    """`ForkProvisioner` and `ForkingKernelManager`, defined on first use: the factory, and so every kernel,
    imports no more of jupyter_client than ipykernel does."""
    import pathlib
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):
        """jupyter_client's local provisioner, whose kernel the worker's factory forks when it can.

        Everything but the launch is the local provisioner's own (ports, connection file, the process
        group signalled on interrupt and kill, the wait), on a `ForkedKernel` in place of a Popen.
        """

        factory: KernelFactory | None = None

        async def launch_kernel(self, cmd: list[str], **kwargs) -> dict:
            forked = None
            extra = {k for k, v in kwargs.items() if v is not None} - {"env", "cwd", "kernel_id", "extra_arguments"}
            if self.factory is not None and not extra:
                # As `jupyter_client.launcher.launch_kernel` sets it for a kernel it starts. The fork blocks this
                # event loop for a few milliseconds (the first one until the factory's imports are done),
                # as starting a process does.
                env = {**kwargs.get("env", os.environ), "JPY_PARENT_PID": str(os.getpid())}
                forked = self.factory.fork(cmd, env, os.fspath(kwargs.get("cwd") or os.getcwd()))
            if forked is None:
                return await super().launch_kernel(cmd, **kwargs)
            # The child made itself a session and process group leader before the factory answered.
            self.process, self.pid, self.pgid = forked, forked.pid, forked.pid
            self.cwd = kwargs.get("cwd", pathlib.Path.cwd())
            return self.connection_info

        async def send_signal(self, signum: int) -> None:
            if isinstance(self.process, ForkedKernel) and self.process.poll() is not None:
                return  # reaped by the factory: its pid and process group may name another process by now
            await super().send_signal(signum)

    class ForkingKernelManager(AsyncKernelManager):
        """An `AsyncKernelManager` whose kernels ``factory`` forks (or that start the usual way when it cannot)."""

        def __init__(self, *, factory: KernelFactory, **kwargs):
            super().__init__(**kwargs)
            self.factory = factory

        async def start_kernel(self, **kw) -> None:
            if self.provisioner is None:  # as `pre_start_kernel` would make it, with the factory's launch
                self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
                self.provisioner = ForkProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
                self.provisioner.factory = self.factory
            await super().start_kernel(**kw)

        async def _async_wait(self, pollinterval: float = 0.1) -> None:
            """Wait for a killed kernel to be gone, looking every `KILLED_POLL` seconds, not jupyter_client's 0.1 s
            (which a run waited after every segment's kernel: a killed kernel is gone within milliseconds)."""
            await super()._async_wait(pollinterval=min(pollinterval, KILLED_POLL))

    return ForkProvisioner, ForkingKernelManager


def forking_kernel_manager(factory: KernelFactory, **kwargs):
    """A `ForkingKernelManager` (``kwargs`` as for `AsyncKernelManager`) whose kernels ``factory`` forks."""
    _, manager_class = _manager_classes()
    return manager_class(factory=factory, **kwargs)


def is_forked(km) -> bool:
    """Whether the kernel ``km`` manages was forked by a factory (rather than started the usual way)."""
    return isinstance(getattr(getattr(km, "provisioner", None), "process", None), ForkedKernel)


# --- the factory's side ------------------------------------------------------------------------


def serve(control_fd: int) -> None:
    """The factory: import ipykernel and the preload, then fork a kernel for each request until the worker's
    socket closes; then kill the kernels still running and exit."""
    control = socket.socket(fileno=control_fd)
    hello = _read(control)
    if hello is None:
        return
    import_preload(hello.get("preload", ""))
    control.sendall(json.dumps({"ready": os.getpid()}).encode())
    serve_kernels(control)


def import_preload(code: str) -> None:
    """What every kernel needs first (ipykernel, matplotlib's inline backend), then the notebooks' imports;
    then the objects that exist are left to the forked kernels, untouched by the collector."""
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    import ipykernel.kernelapp  # noqa: F401

    _preload(code)
    # Objects that exist now are shared by every kernel until written: the collector leaves them alone
    # (copy-on-write pages stay shared, and the first collections in a kernel have less to walk).
    gc.collect()
    gc.freeze()


def serve_kernels(control: socket.socket) -> None:
    """Fork a kernel for each request on ``control`` until it closes (or SIGTERM comes); then kill the kernels
    still running and exit at once, without the interpreter's teardown of everything imported."""
    signal.signal(signal.SIGTERM, exit_on_signal)
    kernels = Children()
    try:
        while True:
            asked = readable(control.fileno(), REAP_INTERVAL)
            kernels.reap()
            if not asked:
                continue
            request = _read(control)
            if request is None:
                break  # the worker is gone
            if "fork" in request:
                _answer_fork(control, request["fork"], kernels)
            elif "status" in request:
                control.sendall(json.dumps({"status": kernels.status(request["status"])}).encode())
    except (OSError, SystemExit):
        pass  # the worker's socket broke, or a stop: the kernels go with the factory
    finally:
        kernels.kill_all()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def exit_on_signal(signum, frame):
    raise SystemExit(0)


def _read(control: socket.socket) -> dict | None:
    data = control.recv(MESSAGE_BYTES)
    return json.loads(data) if data else None


def _preload(code: str) -> None:
    """Import what the notebooks import, statement by statement, in a namespace of its own (a statement that
    fails, such as an import of a module in the segment's folder, is left to the notebook to report)."""
    try:
        statements = ast.parse(code).body
    except SyntaxError:
        return
    namespace = {"__name__": "__workbench_preload__"}
    for statement in statements:
        try:
            exec(compile(ast.Module([statement], type_ignores=[]), "<preload>", "exec"), namespace)  # noqa: S102
        except Exception:  # noqa: BLE001, S110 - the notebook's own import cell reports it
            pass


class Children:
    """A process's forked children (a factory's kernels, a server's factories): running, and exited with the
    status not yet asked for."""

    def __init__(self):
        self.running: set[int] = set()
        self.exited: dict[int, int] = {}

    def reap(self) -> None:
        for pid in list(self.running):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self.running.discard(pid)
                self.exited[pid] = os.waitstatus_to_exitcode(status)

    def status(self, pid: int) -> int | None:
        self.reap()  # the worker asks once its pidfd says the kernel has exited: a zombie, reaped now
        return self.exited.pop(pid, None)

    def kill_all(self) -> None:
        for pid in self.running:
            for kill in (os.killpg, os.kill):  # its group: the kernel and whatever it started
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for pid in self.running:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.running.clear()


def _answer_fork(control: socket.socket, request: dict, kernels: Children) -> None:
    """Fork a kernel for ``request`` and send the worker its pid and a pidfd, or why not."""
    # Only the thread that calls fork exists in the child: any other thread's locks would stay held for ever.
    # The factory starts none; a library that did (an import in the preload) makes forking unsafe.
    if threading.active_count() != 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.current_thread())
        control.sendall(json.dumps({"error": f"the factory runs other threads ({names})"}).encode())
        return
    sys.stdout.flush()  # or the child would write what the factory had buffered once more
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:  # out of processes or memory: this kernel starts the usual way
        os.close(read_end)
        os.close(write_end)
        control.sendall(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    if pid == 0:
        os.close(read_end)
        control.close()
        _become_kernel(write_end, request)  # never returns
    os.close(write_end)
    kernels.running.add(pid)
    pidfd = os.pidfd_open(pid)  # before any reaping: the pid is still this child's
    report = _read_to_end(read_end, FORK_TIMEOUT)
    if report != b"ok":
        _kill_and_close(pidfd)
        error = report.decode(errors="replace") or "the kernel exited as it started"
        control.sendall(json.dumps({"error": error}).encode())
        return
    try:
        socket.send_fds(control, [json.dumps({"pid": pid}).encode()], [pidfd])
    finally:
        os.close(pidfd)


def _kill_and_close(pidfd: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    os.close(pidfd)


def _read_to_end(fd: int, timeout: float) -> bytes:
    """What the child wrote to ``fd`` before closing it (empty if it died first); closes ``fd``."""
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not readable(fd, max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _become_kernel(ready_fd: int, request: dict) -> None:
    """In the forked child: become a kernel as jupyter_client would have started it, then run it; never
    returns (the factory's loop must never run in a kernel)."""
    code = 1
    try:
        try:
            # Its own session and process group, as jupyter_client starts kernels: interrupts and kills
            # sent to the group reach this kernel (and what it starts) only.
            os.setsid()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a kernel's own, not the factory's
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            _reseed()
            sys.argv = [_launcher_path(), *request["argv"]]
        except BaseException as exc:
            os.write(ready_fd, f"{type(exc).__name__}: {exc}".encode())
            raise
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
        code = _run_kernel(request["argv"], factory=os.getppid())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - printed to the worker's log, as a kernel's own crash would be
        import traceback

        traceback.print_exc()
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()  # noqa: SLF001 - what the interpreter would run at a kernel's exit
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reseed() -> None:
    """Give the child random generators of its own: `random` reseeds itself after a fork, numpy's global
    generator does not (every kernel would draw the same "random" numbers)."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(int.from_bytes(os.urandom(4), "little"))


def _launcher_path() -> str:
    """``sys.argv[0]`` of a kernel started as ``python -m ipykernel_launcher``."""
    import importlib.util

    spec = importlib.util.find_spec("ipykernel_launcher")
    return spec.origin if spec and spec.origin else "ipykernel_launcher"


def _run_kernel(argv: list[str], factory: int) -> int:
    from ipykernel.kernelapp import IPKernelApp

    # The kernel watches the factory, its parent (ipykernel read JPY_PARENT_PID when the factory imported it,
    # and the launch's value names the worker, which is not this process's parent): it exits if the factory
    # dies, and the factory kills it when the worker goes.
    app = IPKernelApp.instance()
    app.initialize([*argv, f"--IPKernelApp.parent_handle={factory}"])
    _enable_inline_figures()
    app.start()
    return 0


def _enable_inline_figures() -> None:
    """Hook the inline backend into the shell when the factory's imports already loaded it: the backend does
    so when it is imported inside a kernel, which did not exist yet in the factory."""
    backend = sys.modules.get("matplotlib_inline.backend_inline")
    enable = getattr(backend, "_enable_matplotlib_integration", None)
    if enable is not None:
        enable()
