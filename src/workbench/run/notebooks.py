"""Which notebooks a run executes, and what their import cells are.

Light on purpose (the standard library only): `workbench run` reads the notebooks a run specification
names before it checks the specification, to start its kernels' imports first of all
(`workbench.run.runner`).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from ..resources import notebooks_dir

#: Every shipped notebook, in report order.
DEFAULT_NOTEBOOKS = ("cycle_time", "stage_conversion", "win_loss_drivers", "customer_profile", "journey_grid")


def resolve_notebook(name: str, project: Path) -> Path:
    """A shipped notebook by its name (``cycle_time``), or a notebook file relative to ``project``.

    A name without a folder and without ``.ipynb`` is a shipped notebook, found wherever the
    run specification lives; anything else is a path.
    """
    if "/" not in name and "\\" not in name and not name.endswith(".ipynb"):
        return notebooks_dir() / f"{name}.ipynb"
    return (project / name).resolve()


def shipped_notebooks() -> list[str]:
    """Names of the notebooks that ship with the workbench."""
    return sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))


def project_root(path: Path) -> Path:
    """The folder of the nearest ``pyproject.toml`` above the run specification ``path``, else its own folder."""
    for folder in path.parents:
        if (folder / "pyproject.toml").exists():
            return folder
    return path.parent


def preload_code(notebooks: list[str]) -> str:
    """The import cells of ``notebooks`` (cells holding nothing but imports), each once, in order."""
    cells = []
    for path in notebooks:
        try:
            nb = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # the notebook's own run reports it
        for cell in nb.get("cells", []):
            source = "".join(cell.get("source", ""))
            if cell.get("cell_type") == "code" and only_imports(source) and source not in cells:
                cells.append(source)
    return "\n".join(cells)


def only_imports(source: str) -> bool:
    """Whether a cell's code is nothing but import statements."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)
