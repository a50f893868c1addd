"""A run's factory server: one process that imports the kernels' stack once and forks a ready kernel
factory for each local worker (`workbench.run.factory`).

`workbench run` starts it first of all, before it checks its parameters, loads the data and starts its
workers. The imports (about 2 s of CPU: scipy, matplotlib, pandas, ipykernel) then run beside what the run
does first, once for all the workers instead of once per worker after the worker has started. A worker
connects to the server's socket and gets a factory of its own, forked from the server, which forks that
worker's kernels and kills them when the worker goes, and whose kernels write to the worker's stderr (the
run's log), as a factory the worker started would.

Only the user who started the server can reach it: its socket is in a new folder only that user can enter,
and the server checks the peer's user id on every connection. It forks a factory only for a worker whose
kernels it can stand in for: the same interpreter, the same imports and the same environment (a variable
with another value means its imports may have seen another). A worker that cannot reach it starts its
own factory; the kernels of a worker it refuses, and any kernel no factory can fork, start the usual way
(the worker's log says why). A run never fails because of the server. It exits when the run closes it,
or when the run is gone.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from . import factory as kernel_factory

#: The server's program (see `workbench.run.factory.BOOTSTRAP`).
BOOTSTRAP = ("import sys\nif sys.path[:1] == ['']:\n    del sys.path[0]\n"
             "from workbench.run.factoryserver import serve\nserve(int(sys.argv[1]), int(sys.argv[2]))")

#: How long the server waits for a connecting worker's request.
REQUEST_TIMEOUT = 5.0

#: How long a closing server gives its factories to kill their kernels before it kills them.
STOP_TIMEOUT = 10.0


class FactoryServer:
    """The run's side of the server: its process, the address its workers connect to, and the socket whose
    end tells it that the run is done."""

    def __init__(self, process: subprocess.Popen, owner: socket.socket, folder: Path, preload: str):
        self.process = process
        self.owner = owner
        self.folder = folder
        self.address = str(folder / "factories")
        #: What it imported, as given to `start`.
        self.preload = preload

    @classmethod
    def start(cls, kernel_name: str, preload: str, *, defaults: dict | None = None,
              log: BinaryIO | None = None) -> FactoryServer | None:
        """Start a server for the kernel spec ``kernel_name`` that imports ``preload`` (the notebooks' import
        cells) in its private folder (no Python file of the user's, no ``matplotlibrc``). ``defaults``:
        variables a worker sets for itself unless they are set, which its kernels see, and so the server's
        imports must. The server's own lines go to ``log``, a file open for binary writing. Returns at once;
        None when kernels cannot be forked here or it fails."""
        folder = ours = None
        try:
            launch = kernel_factory.forkable_launch(kernel_name)
            if launch is None:
                return None
            prefix, env = launch[0], {**(defaults or {}), **launch[1]}
            folder = Path(tempfile.mkdtemp(prefix="workbench-kernels-"))  # 0700: only this user enters
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                listener.bind(str(folder / "factories"))
                listener.listen(64)
                # Its own session: a Ctrl-C in the terminal reaches the run and its workers, not the server.
                process = subprocess.Popen([*prefix, "-c", BOOTSTRAP, str(listener.fileno()), str(theirs.fileno())],
                                           cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL if log is None else log,
                                           pass_fds=(listener.fileno(), theirs.fileno()), start_new_session=True)
            finally:
                listener.close()
                theirs.close()
            ours.sendall(json.dumps({"preload": preload, "prefix": prefix}).encode())
            return cls(process, ours, folder, preload)
        except Exception as exc:  # noqa: BLE001 - the workers start their own factories
            _note(log, f"the kernel factory server could not start ({type(exc).__name__}: {exc}): each worker starts "
                       "its own")
            if ours is not None:
                ours.close()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            return None

    def close(self) -> None:
        """Stop the server: its factories kill their kernels, and it exits (at once, even in the middle of its
        imports when a run is stopped early). Closing it again does nothing."""
        if self.owner.fileno() < 0:
            return
        self.owner.close()
        self.process.terminate()  # as the end of the owner's socket would, without waiting for the imports
        try:
            self.process.wait(timeout=STOP_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- the server's side -------------------------------------------------------------------------------


def serve(listen_fd: int, owner_fd: int) -> None:
    """The server: import as a kernel factory does, then fork a factory for each worker that connects, until
    the run closes its end of ``owner_fd`` (or is gone). Single-threaded, as a process that forks must be."""
    listener = socket.socket(fileno=listen_fd)
    owner = socket.socket(fileno=owner_fd)
    address = listener.getsockname()
    config = json.loads(owner.recv(kernel_factory.MESSAGE_BYTES) or b"{}")
    if not config:
        _remove(address)
        return
    env = _comparable(os.environ)  # before the imports, which set MPLBACKEND
    kernel_factory.import_preload(config["preload"])
    signal.signal(signal.SIGTERM, kernel_factory.exit_on_signal)
    factories = kernel_factory.Children()
    try:
        while True:
            ready = _readable_of([listener, owner], kernel_factory.REAP_INTERVAL)
            factories.reap()
            if owner in ready and not owner.recv(1):
                break  # the run is done, or gone
            if listener in ready:
                pid = _answer(listener, [listener, owner], config, env)
                if pid is not None:
                    factories.running.add(pid)
    except SystemExit:
        pass
    finally:
        _stop_all(factories)
        _remove(address)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _answer(listener: socket.socket, own: list[socket.socket], config: dict, env: dict) -> int | None:
    """Serve one connection: fork a factory for the worker (which answers it itself), or say why not. Returns
    the factory's pid."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return None
    with conn:
        if _peer_uid(conn) != os.getuid():
            return None  # another user's process: neither served nor answered
        if not kernel_factory.readable(conn.fileno(), REQUEST_TIMEOUT):
            return None
        fds = []
        try:
            data, fds, _, _ = socket.recv_fds(conn, kernel_factory.MESSAGE_BYTES, 1)
            request = json.loads(data or b"{}").get("factory")
            if not isinstance(request, dict) or len(fds) != 1:
                return None
            refused = _refusal(request, config, env)
            if refused:
                _send(conn, {"refused": refused})
                return None
            return _fork_factory(conn, own, stderr=fds[0])
        except (OSError, ValueError, AttributeError):
            return None
        finally:
            for fd in fds:
                os.close(fd)


def _refusal(request: dict, config: dict, env: dict) -> str | None:
    """Why a worker's kernels cannot be forked from this server's imports, or None."""
    if request.get("prefix") != config["prefix"]:
        return "the kernel spec starts another interpreter"
    if request.get("preload") != config["preload"]:
        return "the notebooks import other modules"
    theirs = _comparable(request.get("env") or {})
    changed = sorted(k for k in theirs.keys() | env.keys() if theirs.get(k) != env.get(k))
    if changed:  # names only: values may be secrets
        return f"the environment differs from the server's ({', '.join(changed[:5])})"
    return None


def _fork_factory(conn: socket.socket, own: list[socket.socket], stderr: int) -> int | None:
    """Fork a factory that serves ``conn``'s worker: it writes to the worker's ``stderr`` (and so do its kernels),
    and sends the worker its pid and a pidfd of itself."""
    try:
        pid = os.fork()
    except OSError as exc:
        _send(conn, {"refused": f"the server could not fork ({exc})"})
        return None
    if pid:
        return pid
    try:  # the factory, the worker's alone from here
        for sock in own:
            sock.close()
        os.dup2(stderr, 2)
        os.close(stderr)
        pidfd = os.pidfd_open(os.getpid())
        socket.send_fds(conn, [json.dumps({"ready": os.getpid()}).encode()], [pidfd])
        os.close(pidfd)
        kernel_factory.serve_kernels(socket.socket(fileno=os.dup(conn.fileno())))  # never returns
    finally:
        os._exit(1)


def _stop_all(factories: kernel_factory.Children) -> None:
    """Ask every factory to stop (each kills its kernels first), then kill those that do not."""
    for pid in factories.running:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while factories.running and time.monotonic() < deadline:
        factories.reap()
        time.sleep(0.02)
    for pid in factories.running:
        _signal(pid, signal.SIGKILL)
    for pid in factories.running:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _remove(address: str) -> None:
    """Remove the server's socket and its private folder, also when the run that made them is gone."""
    try:
        os.unlink(address)
        os.rmdir(os.path.dirname(address))  # only when empty
    except OSError:
        pass


def _comparable(env) -> dict:
    return {k: v for k, v in env.items() if k not in kernel_factory.PER_KERNEL_VARIABLES}


def _peer_uid(conn: socket.socket) -> int | None:
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", creds)[1]


def _readable_of(sockets: list[socket.socket], timeout: float) -> list[socket.socket]:
    poller = select.poll()
    for sock in sockets:
        poller.register(sock.fileno(), select.POLLIN)
    ready = {fd for fd, _ in poller.poll(timeout * 1000)}
    return [sock for sock in sockets if sock.fileno() in ready]


def _note(log: BinaryIO | None, line: str) -> None:
    """A line in the server's log (or on stderr without one)."""
    text = f"workbench: {line}\n"
    if log is None:
        sys.stderr.write(text)
        return
    log.write(text.encode())
    log.flush()


def _send(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall(json.dumps(message).encode())
    except OSError:
        pass
