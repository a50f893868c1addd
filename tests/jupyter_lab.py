"""Drive a real JupyterLab in headless Chromium: helpers for the browser tests of widget notebooks.

`jupyter_lab(root_dir)` starts this venv's JupyterLab on a free local port with a random token and
all of Jupyter's state (runtime, config, data, user settings, workspaces, IPython) in a temporary
folder, so nothing in the home directory is read or written; the kernels `.venv` holds (`workbench`,
installed with --sys-prefix) are found as usual. `chromium_page()` opens a page in Debian's
`chromium` through Playwright with every host but 127.0.0.1 unresolvable; `open_notebook` and
`run_all_cells` do what a user does. Nothing is downloaded at run time (never `playwright install`).

Skipping follows tests/test_report_browser.py: without `chromium`, skipped locally and a failure
under CI; a missing `playwright` package is treated the same way.

    with jupyter_lab(tmp_path) as lab, chromium_page() as page:
        open_notebook(page, lab, "journey_grid.ipynb")
        run_all_cells(page, wait_for=".widget-textarea textarea")

This module is not named `jupyterlab.py`: pytest puts tests/ first on sys.path, where that name
would hide the real `jupyterlab` package from every test.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Generous: the CI machine has two cores and may be running the rest of the suite beside us.
START_TIMEOUT = 180.0  # seconds for JupyterLab to answer /api/status
KERNEL_TIMEOUT = 120.0  # seconds for the notebook to open with an idle kernel
RUN_TIMEOUT = 120.0  # seconds for the cells to run and `wait_for` to appear
STOP_TIMEOUT = 30.0  # seconds for JupyterLab to shut down before it is killed

#: As tests/test_report_browser.py: no GPU, no sandbox (containers, root), and every host name but
#: 127.0.0.1 unresolvable, so a page that needed the network fails visibly instead of hanging.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
VIEWPORT = {"width": 1280, "height": 900}

#: JupyterLab user settings written for the test: no news or update checks (they would fetch from
#: the web and raise a "receive news?" toast over the page), and every cell kept in the DOM
#: (windowing off), so selectors find widgets in cells that are scrolled out of view.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

# JupyterLab 4, as used below. The DOM gives the menu and dialogs; the kernel's state and the run's
# progress are read from the application object (`--LabApp.expose_app_in_browser`), because the
# toolbar's status indicator reads "idle" for a moment before the kernel has even started.
#: The modal dialog JupyterLab opens to choose a kernel when the notebook's kernelspec is unknown.
DIALOG = ".jp-Dialog"
#: Run > Run All Cells in the main menu bar.
RUN_MENU = "#jp-MainMenu .lm-MenuBar-itemLabel:text-is('Run')"
RUN_ALL = "#jp-mainmenu-run .lm-Menu-item[data-command='runmenu:run-all']"

#: The open notebook's state: its path, kernel name and status, and whether its kernel is connected.
_NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
                 && panel.sessionContext.session.kernel;
  return {path: panel && panel.context ? panel.context.path : null,
          ready: !!(panel && panel.context && panel.context.isReady && panel.content),
          kernel: kernel ? kernel.name : null, status: kernel ? kernel.status : null,
          connected: !!kernel && kernel.connectionStatus === "connected"};
}"""
#: Count the open notebook's execute requests and replies (and the first error) from now on.
_WATCH_RUN = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session.kernel;
  const run = {sent: 0, replies: 0, error: null, cells: 0};
  run.cells = panel.content.widgets.filter(
      c => c.model.type === "code" && c.model.sharedModel.getSource().trim()).length;
  run.listener = (_, args) => {
    const type = args.msg.header.msg_type;
    if (args.direction === "send" && type === "execute_request") run.sent += 1;
    if (args.direction === "recv" && type === "execute_reply") {
      run.replies += 1;
      const c = args.msg.content;
      if (c.status === "error" && !run.error) run.error = c.ename + ": " + c.evalue;
    }
  };
  kernel.anyMessage.connect(run.listener);
  run.kernel = kernel;
  window.__labRun = run;
}"""
_RUN_STATE = """() => {
  const run = window.__labRun;
  return {sent: run.sent, replies: run.replies, error: run.error, cells: run.cells,
          status: run.kernel.status};
}"""
_UNWATCH_RUN = """() => {
  const run = window.__labRun;
  if (run) { run.kernel.anyMessage.disconnect(run.listener); delete window.__labRun; }
}"""


def in_ci() -> bool:
    """`CI` is set to anything but an explicit no, as tests/conftest.py reads it."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _skip_or_fail(what: str, hint: str) -> None:
    if in_ci():
        pytest.fail(f"CI is set but {what}, so the JupyterLab browser tests cannot run: {hint}", pytrace=False)
    pytest.skip(f"{what} ({hint}); under CI this fails")


def require_browser() -> str:
    """The path of Debian's `chromium` once Playwright is importable: skip locally, fail under CI."""
    chromium = shutil.which("chromium")
    if chromium is None:
        _skip_or_fail("Debian's `chromium` is not installed",
                      "run the suite through `.ci/run`, which sources .ci/browser.sh (ensure_chromium), "
                      "or `apt-get install chromium`")
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError:
        _skip_or_fail("the `playwright` package is not installed",
                      "install the test extras: `pip install -c requirements.lock -e '.[test]'` (or `make venv`)")
    return chromium


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A running JupyterLab: where it listens, its token, and its log. Unpacks as (base_url, token)."""

    base_url: str
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def __iter__(self):
        return iter((self.base_url, self.token))

    def url(self, path: str = "lab") -> str:
        """`{base_url}/{path}?token=...` (the token logs the browser in)."""
        return f"{self.base_url}/{path.lstrip('/')}{'&' if '?' in path else '?'}token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 10.0):
        """Call the REST API with the token in a header; the decoded JSON (None when empty)."""
        request = urllib.request.Request(f"{self.base_url}/api/{path.lstrip('/')}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines JupyterLab (and its kernels) wrote to stdout/stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no JupyterLab log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def _jupyter_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("JUPYTER_TOKEN", "JUPYTER_PORT", "JUPYTER_PORT_RETRIES", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)  # the command line decides these
    dirs = {"JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
            "JUPYTERLAB_SETTINGS_DIR": "lab-settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython"}
    for name, sub in dirs.items():
        (state / sub).mkdir()
        env[name] = str(state / sub)
    # The user data dir moved into `state` holds no kernels; the venv's share/jupyter (and
    # JUPYTER_PATH, if set) still does, and is preferred, so `workbench` is this venv's kernel.
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    env["JUPYTER_PLATFORM_DIRS"] = "1"  # silences jupyter_core's deprecation warning; paths are set above
    env["PYTHONUNBUFFERED"] = "1"
    for name, settings in LAB_SETTINGS.items():
        path = state / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return env


def _stop(server: LabServer) -> None:
    """Shut JupyterLab and its kernels down; kill whatever is left of them after STOP_TIMEOUT."""
    process = server.process
    try:
        import psutil
        family = psutil.Process(process.pid).children(recursive=True)  # kernels run in their own sessions
    except Exception:  # psutil missing or the process already gone
        family = []
    if process.poll() is None:
        with contextlib.suppress(OSError, urllib.error.URLError):
            server.api("shutdown", method="POST")  # graceful: the server shuts its kernels down too
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
    # A kernel the server started that outlived it goes too (psutil checks it is still that process).
    for child in family:
        with contextlib.suppress(Exception):
            if child.is_running():
                child.kill()
    if family:
        import psutil
        psutil.wait_procs(family, timeout=STOP_TIMEOUT)


def _wait_until_up(server: LabServer, deadline: float, timeout: float) -> bool:
    """True once /api/status answers; False if the server exited first (e.g. its port was taken)."""
    status = f"{server.base_url}/api/status?token={server.token}"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(status, timeout=5) as response:
                if response.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {server.base_url}/api/status within {timeout:.0f} s")


@contextlib.contextmanager
def jupyter_lab(root_dir, *, start_timeout: float = START_TIMEOUT) -> Iterator[LabServer]:
    """Run `python -m jupyter lab` (this venv) serving `root_dir`; yield a LabServer.

    The server runs in its own process group with its log in a file; on exit it and its kernels
    are shut down and waited for. An exception raised inside the block gets the tail of the log
    added as a note, so a failing test shows what the server and kernel said.
    """
    root_dir = Path(root_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="jupyter-lab-") as tmp:
        state = Path(tmp)
        env = _jupyter_env(state)
        log_path = state / "jupyter-lab.log"
        token = secrets.token_hex(24)
        server = None
        try:
            deadline = time.monotonic() + start_timeout
            for _attempt in range(5):  # a port taken between free_port() and the bind: try another
                port = free_port()
                command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                           f"--port={port}", "--ServerApp.port_retries=0",
                           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
                           "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
                           "--ServerApp.terminals_enabled=False",
                           f"--LabApp.workspaces_dir={state / 'workspaces'}",
                           f"--LabApp.user_settings_dir={state / 'lab-settings'}",
                           "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
                           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                           "--LabApp.expose_app_in_browser=True",
                           # jupyter_lsp would look for language servers by running `npm` at start.
                           "--LanguageServerManager.autodetect=False"]
                with open(log_path, "ab") as log:
                    log.write(f"$ {' '.join(command)}\n".encode())
                    log.flush()
                    process = subprocess.Popen(command, cwd=root_dir, env=env, stdin=subprocess.DEVNULL,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                server = LabServer(f"http://127.0.0.1:{port}", token, root_dir, log_path, process)
                if _wait_until_up(server, deadline, start_timeout):
                    break
                if "is not available" not in server.log_tail(5):
                    raise RuntimeError(f"JupyterLab exited with code {process.returncode} before it answered")
            else:
                raise RuntimeError("JupyterLab found no free port in 5 attempts")
            yield server
        except BaseException as exc:
            if not isinstance(exc, (pytest.skip.Exception, GeneratorExit, KeyboardInterrupt)):
                exc.add_note(f"--- JupyterLab log ({log_path.name}, last lines) ---\n"
                             + (server.log_tail() if server else log_path.read_text(errors="replace")[-5000:]))
            raise
        finally:
            if server is not None:
                _stop(server)


@contextlib.contextmanager
def chromium_page(*, viewport: dict | None = None, timeout: float = 60.0,
                  screenshot_on_failure: Path | None = None):
    """A Playwright page in headless Debian Chromium (skipped or failed as `require_browser` says).

    Every Playwright wait defaults to `timeout` seconds. The browser's console errors and, when
    `screenshot_on_failure` is given, a screenshot are added as notes to an exception from the block.
    """
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chromium-") as home, sync_playwright() as playwright:
        # Chromium's crash reports and caches go to XDG dirs; keep them out of the home directory.
        env = {**os.environ, "XDG_CONFIG_HOME": f"{home}/config", "XDG_CACHE_HOME": f"{home}/cache"}
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                                             env=env)
        try:
            context = browser.new_context(viewport=viewport or VIEWPORT)
            context.set_default_timeout(timeout * 1000)
            page = context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            try:
                yield page
            except BaseException as exc:
                if not isinstance(exc, (pytest.skip.Exception, GeneratorExit, KeyboardInterrupt)):
                    if screenshot_on_failure is not None:
                        with contextlib.suppress(Exception):
                            page.screenshot(path=str(screenshot_on_failure))
                            exc.add_note(f"screenshot of the page at the failure: {screenshot_on_failure}")
                    if console:
                        exc.add_note("--- browser console (errors, warnings) ---\n" + "\n".join(console[-30:]))
                raise
        finally:
            browser.close()


def open_notebook(page, lab: LabServer, path: str, *, timeout: float = KERNEL_TIMEOUT) -> str:
    """Open `path` (relative to the server's root) in JupyterLab; wait until its kernel is connected
    and idle. Returns the kernel's name (e.g. "workbench").

    A "Select Kernel" dialog (only shown if the notebook's kernelspec were unknown) is accepted with
    "Python (workbench)" when offered, else with JupyterLab's default choice.
    """
    page.goto(lab.url(f"lab/tree/{path}"), wait_until="domcontentloaded", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    dialog = page.locator(DIALOG)
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(_NOTEBOOK_STATE)
        if state["path"] == path and state["ready"] and state["connected"] and state["status"] == "idle":
            return state["kernel"]
        if dialog.count() and dialog.first.is_visible():
            select = dialog.locator("select")
            if select.count() and select.locator("option", has_text="Python (workbench)").count():
                select.first.select_option(label="Python (workbench)")
            dialog.locator(".jp-mod-accept").first.click()
        page.wait_for_timeout(250)
    raise TimeoutError(f"{path} did not open with a connected, idle kernel within {timeout:.0f} s; "
                       f"last state: {state}")


def run_all_cells(page, *, wait_for: str | None = None, timeout: float = RUN_TIMEOUT) -> None:
    """Run > Run All Cells on the open notebook (see `open_notebook`).

    Waits until every non-empty code cell has been executed and the kernel is idle (`timeout`),
    then until `wait_for` (a selector), if given, is visible (`timeout` again: widgets render after
    their cell ran). A cell that raises fails at once with the exception's name and message.
    """
    page.evaluate(_WATCH_RUN)
    try:
        page.locator(RUN_MENU).click()
        page.locator(RUN_ALL).click()
        deadline = time.monotonic() + timeout
        while True:
            run = page.evaluate(_RUN_STATE)
            if run["error"]:
                raise AssertionError(f"a cell raised {run['error']} (Run All Cells)")
            if run["sent"] >= run["cells"] and run["replies"] >= run["sent"] and run["status"] == "idle":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"Run All Cells did not finish within {timeout:.0f} s: {run}")
            page.wait_for_timeout(250)
    finally:
        page.evaluate(_UNWATCH_RUN)
    if wait_for is not None:
        page.locator(wait_for).first.wait_for(state="visible", timeout=timeout * 1000)
