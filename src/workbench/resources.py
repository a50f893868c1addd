"""Where the files shipped beside the code are: the report and journey templates, and the notebooks.

The repository keeps them in its top-level ``templates/`` and ``notebooks/``; a wheel carries
the same folders inside the package as ``workbench/templates`` and ``workbench/notebooks``
(pyproject.toml maps one onto the other).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """``workbench/templates`` in a wheel install, else the checkout's ``templates/`` (editable install)."""
    packaged = _PACKAGE / "templates"
    return packaged if packaged.is_dir() else _PACKAGE.parents[1] / "templates"


def notebooks_dir() -> Path:
    """``workbench/notebooks`` in a wheel install, else the checkout's ``notebooks/`` (editable install)."""
    packaged = _PACKAGE / "notebooks"
    return packaged if packaged.is_dir() else _PACKAGE.parents[1] / "notebooks"
