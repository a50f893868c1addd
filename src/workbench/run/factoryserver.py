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

Kept warm (``workbench run --keep-warm SECONDS``), a server outlives its run by that long, idle, for the
next run of the same notebooks from the same interpreter and environment, which then forks its kernels
at once instead of waiting for the imports. Such a server listens in the user's own folder of kept-warm
servers (`warm_folder`), at an address named after what it imported (`warm_address`); a run holds a lease
on it (a connection) while it works, and the server exits once it has had no lease for the last run's
``keep_warm`` seconds. A server whose imported files changed on disk since it imported them serves no
new run: it gives its address up (the next run starts a fresh server) and exits with its last lease.

A run that leased a kept-warm server also has its data phase done by it (`FactoryServer.call`, `CALLS`):
a process forked from the server, which has pandas and the data layer imported (the latter while it
waited), loads, plans and slices the run's data in the run's folder, environment and umask, writing to
the run's stdout and stderr, and sends the result back; the run itself then imports no pandas at all.
"""
from __future__ import annotations

import gc
import hashlib
import importlib
import json
import os
import pickle
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import BinaryIO

from . import factory as kernel_factory

#: The server's program (see `workbench.run.factory.BOOTSTRAP`).
BOOTSTRAP = ("import sys\nif sys.path[:1] == ['']:\n    del sys.path[0]\n"
             "from workbench.run.factoryserver import serve\nserve(int(sys.argv[1]), int(sys.argv[2]))")

#: The start of the name of a server's private folder (a server kept warm listens in `warm_folder`).
PRIVATE_PREFIX = "workbench-kernels-"

#: How long the server waits for a connecting worker's request.
REQUEST_TIMEOUT = 5.0

#: How long a closing server gives its factories to kill their kernels before it kills them.
STOP_TIMEOUT = 10.0

#: What a run can have done in a process forked from a server kept warm by an earlier run
#: (`FactoryServer.call`): a name, and the function as ``module:function``. The server imports the module, and
#: the modules it names in ``WARM_IMPORTS``, while it waits for its next run.
CALLS = {"prepare": "workbench.run.runner:prepare_in_child"}

#: The largest piece of a call's arguments or answer sent as one message (each must fit the socket's buffer).
PIECE_BYTES = 1 << 16


class CallFailed(Exception):
    """A call in a process forked from a kept-warm server could not be had, or gave no answer."""


class FactoryServer:
    """The run's side of the server: its process, the address its workers connect to, and the socket whose
    end tells it that the run is done."""

    def __init__(self, process: subprocess.Popen | None, owner: socket.socket, folder: Path, preload: str,
                 address: str | None = None, kept_warm: bool = False, log: BinaryIO | None = None):
        #: The server's process when this run started it (None: a server kept warm by an earlier run).
        self.process = process
        #: This run's end of its lease: the server knows the run is done (or gone) when it closes.
        self.owner = owner
        self.folder = folder
        self.address = address or str(folder / "factories")
        #: What it imported, as given to `start`.
        self.preload = preload
        #: Whether it outlives this run (``keep_warm``): closing it then only ends this run's lease.
        self.kept_warm = kept_warm
        #: Where the run's lines about it go (`note`).
        self.log = log

    @classmethod
    def start(cls, kernel_name: str, preload: str, *, defaults: dict | None = None, log: BinaryIO | None = None,
              keep_warm: float = 0.0) -> FactoryServer | None:
        """Start a server for the kernel spec ``kernel_name`` that imports ``preload`` (the notebooks' import
        cells) in its private folder (no Python file of the user's, no ``matplotlibrc``). ``defaults``:
        variables a worker sets for itself unless they are set, which its kernels see, and so the server's
        imports must. The server's own lines go to ``log``, a file open for binary writing. Returns at once;
        None when kernels cannot be forked here or it fails.

        With ``keep_warm`` seconds, a server kept warm by an earlier run for the same imports is leased
        instead, if there is one; else the new server stays that long after this run, and its own lines go
        to a log beside its address (``<address>.log``)."""
        try:
            launch = kernel_factory.forkable_launch(kernel_name)
        except Exception as exc:  # noqa: BLE001 - the run's check of its kernel says what is wrong
            _note(log, f"the kernel factory server could not start ({type(exc).__name__}: {exc}): each worker starts "
                       "its own")
            return None
        if launch is None:
            return None
        prefix, env = launch[0], {**(defaults or {}), **launch[1]}
        if keep_warm > 0:
            server = cls._warm(prefix, preload, env, keep_warm, log)
            if server is not None:
                return server
        try:
            return cls._spawn(prefix, preload, env, log=log)
        except Exception as exc:  # noqa: BLE001 - the workers start their own factories
            _note(log, f"the kernel factory server could not start ({type(exc).__name__}: {exc}): each worker starts "
                       "its own")
            return None

    @classmethod
    def _spawn(cls, prefix: list[str], preload: str, env: dict, *, log: BinaryIO | None,
               address: str | None = None, keep_warm: float = 0.0) -> FactoryServer:
        """Start the server process: at ``address`` (kept warm for ``keep_warm`` seconds), else in a new private
        folder of its own. Raises when it cannot."""
        folder = ours = None
        made, bound = address is None, False
        try:
            folder = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX)) if made else Path(address).parent
            address = address or str(folder / "factories")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            own_log = None
            try:
                listener.bind(address)
                bound = True
                listener.listen(64)
                if keep_warm:
                    _unlink(f"{address}.log")  # a stale server's, which may still write to it
                    own_log = open(f"{address}.log", "xb")  # noqa: SIM115 - the server's from here
                    _note(log, f"kernels kept warm {keep_warm:g} s after this run by a new factory server; its log: "
                               f"{own_log.name}")
                # Its own session: a Ctrl-C in the terminal reaches the run and its workers, not the server.
                process = subprocess.Popen([*prefix, "-c", BOOTSTRAP, str(listener.fileno()), str(theirs.fileno())],
                                           cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL,
                                           stderr=own_log or (subprocess.DEVNULL if log is None else log),
                                           pass_fds=(listener.fileno(), theirs.fileno()), start_new_session=True)
            finally:
                listener.close()
                theirs.close()
                if own_log is not None:
                    own_log.close()
            ours.sendall(json.dumps({"preload": preload, "prefix": prefix, "keep_warm": keep_warm}).encode())
            return cls(process, ours, folder, preload, address=address, kept_warm=bool(keep_warm), log=log)
        except BaseException:
            if ours is not None:
                ours.close()
            if folder is not None and made:
                shutil.rmtree(folder, ignore_errors=True)
            elif bound:
                _unlink(address)
            raise

    @classmethod
    def _warm(cls, prefix: list[str], preload: str, env: dict, keep_warm: float,
              log: BinaryIO | None) -> FactoryServer | None:
        """A lease on the server kept warm for these imports, or a new server that will be kept warm; None when
        neither can be had (the run then starts a server of its own)."""
        folder = warm_folder()
        if folder is None:
            _note(log, f"no kernels are kept warm: {_warm_path()} is not a folder of this user's alone")
            return None
        address = warm_address(folder, prefix, preload, env)
        if len(address.encode()) >= 100:  # a socket's address is at most 107 bytes
            _note(log, f"no kernels are kept warm: the path {folder} is too long for a socket's address")
            return None
        owner = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            owner.connect(address)
            owner.sendall(json.dumps({"lease": {"prefix": prefix, "preload": preload, "env": env,
                                                "keep_warm": keep_warm}}).encode())
            if not kernel_factory.readable(owner.fileno(), REQUEST_TIMEOUT):
                raise TimeoutError("no answer")
            answer = json.loads(owner.recv(kernel_factory.MESSAGE_BYTES) or b"{}")
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            owner.close()
            if isinstance(exc, ConnectionRefusedError):
                _unlink(address)  # a server that is gone left its socket behind
            return cls._spawn_warm(prefix, preload, env, address, keep_warm, log)
        except (OSError, ValueError) as exc:
            owner.close()
            _note(log, f"the kernels kept warm at {address} cannot be had ({type(exc).__name__}: {exc})")
            return None
        if "leased" not in answer:
            owner.close()
            refused = str(answer.get("refused", "no answer"))
            _note(log, f"the kernels kept warm at {address} are not used: {refused}")
            if refused.startswith(STALE):  # it has given its address up: this run takes it
                return cls._spawn_warm(prefix, preload, env, address, keep_warm, log)
            return None
        _note(log, f"kernels forked by the factory server kept warm at {address} (process {answer['leased']})")
        return cls(None, owner, folder, preload, address=address, kept_warm=True, log=log)

    @classmethod
    def _spawn_warm(cls, prefix, preload, env, address, keep_warm, log) -> FactoryServer | None:
        """A new server kept warm at ``address``, or None (this run then starts a private one)."""
        try:
            return cls._spawn(prefix, preload, env, log=log, address=address, keep_warm=keep_warm)
        except Exception as exc:  # noqa: BLE001 - another run took the address first: this run has its own
            _note(log, f"no kernels are kept warm at {address} ({type(exc).__name__}: {exc})")
            return None

    def note(self, line: str) -> None:
        """A line about the server in the run's log."""
        _note(self.log, line)

    def call(self, name: str, *args):
        """``CALLS[name](*args)`` in a process forked from this server kept warm by an earlier run, which has
        imported what the call needs already: its return value. The process works in the run's folder, with its
        environment, umask, standard output and error, and its filters of built-in and workbench warnings; it
        stops when the run stops (Ctrl-C) or is gone, and then the run waits for it to be gone.

        Raises `CallFailed` when the process cannot be had (the server runs another Python or workbench than the
        run, as a kernel spec naming another interpreter makes it) or gives no answer, or when the function raised
        (its traceback's last line says what): the run then does the work itself."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pidfd, answered = None, False
        try:
            try:
                conn.connect(self.address)
                if _peer_uid(conn) != os.getuid():
                    raise CallFailed("is another user's")
                socket.send_fds(conn, [json.dumps({"call": name, "python": _python()}).encode()], [1, 2])
                if not kernel_factory.readable(conn.fileno(), REQUEST_TIMEOUT):
                    raise CallFailed("did not answer")
                data, fds, _, _ = socket.recv_fds(conn, kernel_factory.MESSAGE_BYTES, 1)
                pidfd = fds[0] if fds else None
                if pidfd is None:
                    raise CallFailed(f"refused the call ({json.loads(data or b'{}').get('refused', 'no answer')})")
                umask = os.umask(0o022)
                os.umask(umask)
                _send_blob(conn, pickle.dumps({"args": args, "cwd": os.getcwd(), "env": dict(os.environ),
                                               "umask": umask, "filters": _portable_filters()}))
                data = _recv_blob(conn)
            except (OSError, ValueError, pickle.PicklingError) as exc:
                raise CallFailed(f"could not be had ({type(exc).__name__}: {exc})") from exc
            if data is None:
                raise CallFailed("ended without an answer")
            answered = True
            try:
                outcome, value = pickle.loads(data)  # noqa: S301 - the server's child, checked to be this user's
            except Exception as exc:  # noqa: BLE001 - the run does the work itself
                raise CallFailed(f"answered what the run cannot read ({type(exc).__name__}: {exc})") from exc
            if outcome != "returned":
                raise CallFailed(f"failed ({value})")
            return value
        finally:
            conn.close()  # the process stops when the run stops early: it sees this end close
            if pidfd is not None:
                if not answered:  # e.g. Ctrl-C: what it was writing is cancelled before the run cleans up
                    kernel_factory.readable(pidfd, STOP_TIMEOUT)
                os.close(pidfd)

    def close(self) -> None:
        """Stop the server: its factories kill their kernels, and it exits (at once, even in the middle of its
        imports when a run is stopped early). A server kept warm only loses this run's lease. Closing it again
        does nothing."""
        if self.owner.fileno() < 0:
            return
        self.owner.close()
        if self.kept_warm:
            return
        self.process.terminate()  # as the end of the owner's socket would, without waiting for the imports
        try:
            self.process.wait(timeout=STOP_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- the server's side -------------------------------------------------------------------------------


#: How a kept-warm server whose imported files changed refuses a run (which then starts a fresh one).
STALE = "its imports changed on disk since it imported them"


class _Server:
    """The server's state: what it imported and for whom (``config``, ``env``), its runs' leases, its children (the
    workers' factories, the processes of runs' calls), and, kept warm, when it goes."""

    def __init__(self, listener: socket.socket, owner: socket.socket, config: dict, env: dict):
        self.listener = listener
        self.address = listener.getsockname()
        self.config = config
        self.env = env
        self.leases = [owner]
        self.children = kernel_factory.Children()  # its factories, and the processes of its calls
        self.keep_warm = float(config.get("keep_warm") or 0)
        self.idle_since = time.monotonic()
        #: The files of every module it imported, as they were then (kept warm: checked on every lease).
        self.files = _module_files() if self.keep_warm else {}
        self.stale = False
        #: Whether the modules of `CALLS` are imported (kept warm, while it waits for its next run).
        self.calls_imported = False

    def serve(self) -> None:
        """Answer workers and runs until there is no lease left, and, kept warm, for ``keep_warm`` seconds more."""
        while True:
            timeout = kernel_factory.REAP_INTERVAL
            if not self.leases:
                left = self.idle_since + self.keep_warm - time.monotonic()
                if self.stale or left <= 0:
                    return
                if not self.calls_imported:
                    self._import_calls()
                    continue
                timeout = min(timeout, left)
            ready = _readable_of([self.listener, *self.leases], timeout)
            self.children.reap()
            for lease in ready:
                if lease is not self.listener and _ended(lease):  # the run is done, or gone
                    lease.close()
                    self.leases.remove(lease)
                    self.idle_since = time.monotonic()
            if self.listener in ready:
                self._answer()

    def _answer(self) -> None:
        """Serve one connection: fork a factory for a worker (which answers it itself), lease the server to a
        run, or say why not."""
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        kept = False
        fds = []
        try:
            if _peer_uid(conn) != os.getuid():
                return  # another user's process: neither served nor answered
            if not kernel_factory.readable(conn.fileno(), REQUEST_TIMEOUT):
                return
            data, fds, _, _ = socket.recv_fds(conn, kernel_factory.MESSAGE_BYTES, 2)
            message = json.loads(data or b"{}")
            if isinstance(message.get("lease"), dict) and not fds:
                kept = self._lease(conn, message["lease"])
                return
            if "call" in message:
                if message["call"] not in CALLS or len(fds) != 2:
                    return
                refused = ("it is not kept warm" if not self.keep_warm else STALE if self.stale
                           else None if message.get("python") == _python()
                           else "its Python or workbench is not the run's (the kernel spec names another interpreter)")
                if refused:
                    _send(conn, {"refused": refused})
                    return
                pid = _fork_call(conn, [self.listener, *self.leases], CALLS[message["call"]], fds)
                if pid is not None:
                    self.children.running.add(pid)
                return
            request = message.get("factory")
            if not isinstance(request, dict) or len(fds) != 1:
                return
            refused = _refusal(request, self.config, self.env)
            if refused:
                _send(conn, {"refused": refused})
                return
            pid = _fork_factory(conn, [self.listener, *self.leases], stderr=fds[0])
            if pid is not None:
                self.children.running.add(pid)
        except (OSError, ValueError, AttributeError):
            return
        finally:
            for fd in fds:
                os.close(fd)
            if not kept:
                conn.close()

    def _import_calls(self) -> None:
        """Import what the calls a run can make need (`CALLS`), once, while no run holds a lease: the kernels
        forked first have no more than the notebooks' imports, and a call's process has nothing left to
        import. The files of the new modules are checked with the others on every lease."""
        self.calls_imported = True
        for target in CALLS.values():
            try:
                module = importlib.import_module(target.partition(":")[0])
                for name in getattr(module, "WARM_IMPORTS", ()):
                    importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - the call's process imports it, and says what is wrong
                continue
        self.files = {**_module_files(), **self.files}  # what it saw at its first imports stays as it was
        gc.freeze()

    def _lease(self, conn: socket.socket, request: dict) -> bool:
        """Lease the server to a new run (``conn`` is its end) when its kernels can stand in for that run's and
        its imported files are unchanged; else say why not. Returns whether it is leased."""
        refused = None if self.keep_warm else "it is not kept warm"
        refused = refused or (STALE if self.stale else None) or _refusal(request, self.config, self.env)
        changed = None if refused else _changed(self.files)
        if changed:
            refused = f"{STALE} ({changed})"
            self.stale = True
            _unlink(self.address)  # once only: the next run starts a fresh server there
        if refused:
            _send(conn, {"refused": refused})
            return False
        _send(conn, {"leased": os.getpid()})
        self.leases.append(conn)
        self.keep_warm = float(request.get("keep_warm") or self.keep_warm)
        return True


def serve(listen_fd: int, owner_fd: int) -> None:
    """The server: import as a kernel factory does, then fork a factory for each worker that connects, until
    the run closes its end of ``owner_fd`` (or is gone); kept warm, lease itself to later runs until it has
    been idle for ``keep_warm`` seconds. Single-threaded, as a process that forks must be."""
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
    server = _Server(listener, owner, config, env)
    try:
        server.serve()
    except SystemExit:
        pass
    finally:
        _stop_all(server.children)
        if not server.stale:  # a stale server gave its address up: it may be a new server's already
            _remove(address)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


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
    pid = _fork_for(conn, own, {2: stderr}, "ready")
    if pid != 0:
        return pid
    try:
        kernel_factory.serve_kernels(socket.socket(fileno=os.dup(conn.fileno())))  # never returns
    finally:
        os._exit(1)


def _fork_call(conn: socket.socket, own: list[socket.socket], target: str, fds: list[int]) -> int | None:
    """Fork a process that calls ``target`` (``module:function``) for the run at ``conn``, writing to the run's
    standard output and error (``fds``); it sends the run its pid and a pidfd of itself."""
    pid = _fork_for(conn, own, dict(zip((1, 2), fds)), "calling")
    if pid != 0:
        return pid
    code = 1
    try:
        _serve_call(conn, target)
        code = 0
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _fork_for(conn: socket.socket, own: list[socket.socket], streams: dict[int, int], announce: str) -> int | None:
    """Fork a child of the server for the peer at ``conn``. In the server: the child's pid, or None when it could not
    fork (the peer is told why). In the child: 0, once it closed the server's sockets (``own``), took the peer's
    descriptors as its own (``streams``: ours -> the peer's, e.g. ``{2: stderr}``), and sent the peer
    ``{announce: pid}`` with a pidfd of itself; it exits if any of that fails."""
    try:
        pid = os.fork()
    except OSError as exc:
        _send(conn, {"refused": f"the server could not fork ({exc})"})
        return None
    if pid:
        return pid
    try:  # the peer's alone from here
        for sock in own:
            sock.close()
        for to, fd in streams.items():
            os.dup2(fd, to)
            os.close(fd)
        pidfd = os.pidfd_open(os.getpid())
        socket.send_fds(conn, [json.dumps({announce: os.getpid()}).encode()], [pidfd])
        os.close(pidfd)
        return 0
    except BaseException:
        os._exit(1)


def _serve_call(conn: socket.socket, target: str) -> None:
    """Take the run's arguments, folder, environment, umask and warning filters from ``conn``, call ``target``
    with them, and answer what it returned, or its error's traceback."""
    data = _recv_blob(conn)
    if data is None:
        return
    request = pickle.loads(data)  # noqa: S301 - from the run that holds this server's lease, checked as its own
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    warnings.resetwarnings()
    warnings.filters.extend(request["filters"])
    answered = threading.Event()
    threading.Thread(target=_stop_when_gone, args=(conn, answered), daemon=True).start()
    module, _, function = target.partition(":")
    try:
        answer = ("returned", getattr(importlib.import_module(module), function)(*request["args"]))
    except Exception:  # noqa: BLE001 - the run does the work itself, and meets the error there
        answer = ("raised", traceback.format_exc().strip().splitlines()[-1])
    try:
        data = pickle.dumps(answer)
    except Exception as exc:  # noqa: BLE001
        data = pickle.dumps(("raised", f"its answer could not be sent ({type(exc).__name__}: {exc})"))
    answered.set()
    _send_blob(conn, data)


def _stop_when_gone(conn: socket.socket, answered: threading.Event) -> None:
    """Stop the call's process (as SIGTERM does: what it writes is cancelled) once the run closes its end before
    the answer: the run stopped early, or is gone."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    poller.poll()
    if not answered.is_set():
        os.kill(os.getpid(), signal.SIGTERM)


def _send_blob(sock: socket.socket, data: bytes) -> None:
    """``data`` of any size as messages: its length, then pieces of at most `PIECE_BYTES`."""
    sock.sendall(struct.pack("!Q", len(data)))
    for at in range(0, len(data), PIECE_BYTES):
        sock.sendall(data[at:at + PIECE_BYTES])


def _recv_blob(sock: socket.socket) -> bytes | None:
    """What `_send_blob` sent, or None when the other end closed first."""
    head = sock.recv(8)
    if len(head) != 8:
        return None
    (size,) = struct.unpack("!Q", head)
    parts, got = [], 0
    while got < size:
        part = sock.recv(PIECE_BYTES)
        if not part:
            return None
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _python() -> list[str]:
    """Which Python and which workbench this process runs: a call's process runs the run's code only when the
    server's are the run's (a kernel spec may name another interpreter, with another workbench installed)."""
    import workbench

    return [sys.prefix, sys.version, os.path.dirname(workbench.__file__)]


def _portable_filters() -> list[tuple]:
    """The run's warning filters that a forked process can take: those of built-in warnings and workbench's."""
    return [f for f in warnings.filters
            if f[2].__module__ == "builtins" or f[2].__module__.split(".")[0] == "workbench"]


def _stop_all(children: kernel_factory.Children) -> None:
    """Ask every factory (and call's process) to stop (a factory kills its kernels first), then kill those that do
    not."""
    for pid in children.running:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while children.running and time.monotonic() < deadline:
        children.reap()
        time.sleep(0.02)
    for pid in children.running:
        _signal(pid, signal.SIGKILL)
    for pid in children.running:
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
    """Remove the server's socket and its private folder (not the user's folder of kept-warm servers), also when
    the run that made them is gone."""
    try:
        os.unlink(address)
        if os.path.basename(os.path.dirname(address)).startswith(PRIVATE_PREFIX):
            os.rmdir(os.path.dirname(address))  # only when empty
        elif os.path.getsize(f"{address}.log") == 0:  # a kept-warm server's log, when it has nothing to say
            os.unlink(f"{address}.log")
    except OSError:
        pass


def _ended(lease: socket.socket) -> bool:
    """Whether a run's end of its lease is closed (a run sends nothing on it)."""
    try:
        return not lease.recv(1)
    except OSError:
        return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --- kept warm --------------------------------------------------------------------------------------


def _warm_path() -> Path:
    return Path(tempfile.gettempdir()) / f"workbench-warm-{os.getuid()}"


def warm_folder() -> Path | None:
    """The user's folder of kept-warm servers (made on first use, 0700), or None when it is not the user's alone:
    owned by another user, open to others, or not a folder (a symlink)."""
    folder = _warm_path()
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        return None
    return folder


def warm_address(folder: Path, prefix: list[str], preload: str, env: dict) -> str:
    """Where a server kept warm for these imports listens: named after the interpreter, the imports and the
    environment (the variables read at import), so that a run finds the one that can stand in for its kernels."""
    key = json.dumps([prefix, preload, sorted(_comparable(env).items())])
    return str(folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.sock")


def _module_files() -> dict[str, tuple[int, int]]:
    """The file of every imported module, with its modification time and size."""
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path not in files:
            try:
                info = os.stat(path)
            except OSError:
                continue
            files[path] = (info.st_mtime_ns, info.st_size)
    return files


def _changed(files: dict[str, tuple[int, int]]) -> str | None:
    """The first of ``files`` that changed (or went) since, or None."""
    for path, seen in files.items():
        try:
            info = os.stat(path)
        except OSError:
            return path
        if (info.st_mtime_ns, info.st_size) != seen:
            return path
    return None


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
