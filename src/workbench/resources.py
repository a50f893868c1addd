"""Where the files shipped beside the code are: the report and journey templates.

The repository keeps them in its top-level ``templates/``; a wheel carries the same folder
inside the package as ``workbench/templates`` (pyproject.toml maps one onto the other).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """``workbench/templates`` in a wheel install, else the checkout's ``templates/`` (editable install)."""
    packaged = _PACKAGE / "templates"
    return packaged if packaged.is_dir() else _PACKAGE.parents[1] / "templates"
