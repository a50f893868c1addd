"""Which notebooks a run executes, and what their import cells are.

Light on purpose (the standard library only): `workbench run` reads the notebooks a run specification
names before it checks the specification, to start its kernels' imports first of all
(`workbench.run.runner`).
"""
from __future__ import annotations

import ast
import functools
import json
import os
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


def code_cells(path: str | os.PathLike) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The code cells of the notebook at ``path``: each cell's source and tags, in order. Read as JSON, not
    with nbformat (whose import and validation cost a run 0.1-0.2 s before its first cell); a notebook of
    nbformat 3 is converted by nbformat, as Papermill will.

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        It is not a Jupyter notebook (the message says why).
    """
    stat = os.stat(path)
    return _code_cells(os.fspath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _code_cells(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`code_cells` of the file as it was at ``mtime_ns`` and ``size`` (a run reads each notebook several times)."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"its JSON is broken at line {exc.lineno}, column {exc.colno} ({exc.msg})") from None
    if isinstance(nb, dict) and isinstance(nb.get("nbformat"), int) and nb["nbformat"] < 4:
        import nbformat

        nb = nbformat.reads(json.dumps(nb), as_version=4)
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        raise ValueError("it has no list of cells")
    out = []
    for cell in cells:
        source, tags = cell.get("source", ""), (cell.get("metadata") or {}).get("tags") or []
        if isinstance(source, list):
            source = "".join(str(line) for line in source)
        if cell.get("cell_type") == "code":
            out.append((str(source), tuple(str(tag) for tag in tags) if isinstance(tags, list) else ()))
    return tuple(out)


def preload_code(notebooks: list[str]) -> str:
    """The import cells of ``notebooks`` (cells holding nothing but imports), each once, in order."""
    cells = []
    for path in notebooks:
        try:
            sources = [source for source, _ in code_cells(path)]
        except (OSError, ValueError):
            continue  # the run's check of its notebooks reports it
        for source in sources:
            if source not in cells and only_imports(source):
                cells.append(source)
    return "\n".join(cells)


def only_imports(source: str) -> bool:
    """Whether a cell's code is nothing but import statements."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)
