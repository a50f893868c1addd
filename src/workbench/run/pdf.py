"""Reports as PDF, printed by the headless Chromium the report tests already open pages in.

The page layout (A4, page numbers, a running header with client and segment) is the report's own
print CSS (`@page` margin boxes), so the PDF and the browser's print preview agree.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..exceptions import WorkbenchError, fixes

#: Flags for a headless print with no network, no first-run or sync traffic, in a fresh profile.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--no-pdf-header-footer")
#: Environment variable naming the Chromium to print with, if not `chromium` on PATH.
BROWSER_VARIABLE = "WORKBENCH_CHROMIUM"


def chromium() -> str:
    """The Chromium executable, or an error saying how to install one."""
    found = os.environ.get(BROWSER_VARIABLE) or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise WorkbenchError("PDF reports are printed by headless Chromium, which is not installed. "
                             + fixes("install Debian's `chromium` (`apt-get install chromium`, or "
                                     "`source .ci/browser.sh && ensure_chromium`)",
                                     f"point `{BROWSER_VARIABLE}` at a Chromium or Chrome executable",
                                     "run without `--pdf`"))
    return found


def print_pdf(html: Path, pdf: Path, *, timeout: float = 180) -> int:
    """Print ``html`` to ``pdf`` (written whole or not at all); the number of pages."""
    html, pdf = Path(html).resolve(), Path(pdf)
    tmp = pdf.with_name(f".{pdf.name}.tmp-{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="workbench-chromium-") as profile:
        env = {**os.environ, "XDG_CONFIG_HOME": f"{profile}/config", "XDG_CACHE_HOME": f"{profile}/cache"}
        done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}/data", f"--print-to-pdf={tmp}",
                               html.as_uri()], capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise WorkbenchError(f"Chromium could not print `{html.name}` to PDF (exit {done.returncode}): "
                             f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no message'}")
    os.replace(tmp, pdf)
    return page_count(pdf)


def page_count(pdf: Path) -> int:
    """Pages of a PDF Chromium wrote (its page objects, counted without a PDF library)."""
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", Path(pdf).read_bytes()))

