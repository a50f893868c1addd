"""Run a project notebook with Papermill in the real `workbench` kernel on a small seeded sample.

Shared by the notebook tests (tests/ is on sys.path under pytest, as for tests/jupyter_lab.py).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import nbformat

from workbench.run.jobs import execute_notebook
from workbench.dataset.sample import generate

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def sample_csv(folder: Path, seed: str, truth_deals: int = 5_000) -> Path:
    """A 3,000-deal sample written as CSV with its dataset.yaml; the yaml's path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=3_000, seed=seed, truth_deals=truth_deals).write_csv(folder / "data")


def run_notebook(name: str, tmp_path: Path, parameters: dict):
    """Execute ``notebooks/<name>.ipynb`` into ``tmp_path`` as `workbench run` does; the executed notebook
    and all its outputs. Fails with the exceptions' names and messages if any cell raised."""
    out = tmp_path / f"{name}.ipynb"
    done = execute_notebook(NOTEBOOKS / f"{name}.ipynb", out, parameters=parameters, cwd=tmp_path, timeout=300)
    assert out.exists(), done.error
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in code_cells(nb) for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, [f"{o.ename}: {o.evalue}" for o in errors]
    return nb, outputs


def images(outputs) -> list:
    return [o for o in outputs if "image/png" in o.get("data", {})]
