"""Folders written whole: built aside, then moved into place (the standard library only, so that a run's
worker publishes a segment's report without importing pandas)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def publish(tmp: Path, final: Path) -> None:
    """Move a completed folder into place: readers see the old folder or the new one, never a partial one.

    A directory cannot be renamed over a non-empty one, so the old one is first moved
    aside and removed after. Check the folder with `workbench.run.runfiles.check_complete` first.
    """
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
