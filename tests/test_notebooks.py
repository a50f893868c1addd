"""Notebooks are stored thin and clean, and run end to end with papermill in the real `workbench` kernel."""
import ast
import warnings
from pathlib import Path

import nbformat
import pytest

from notebook_runs import code_cells, images, run_notebook, sample_csv
from workbench.cycle.times import OVERALL, cycle_times
from workbench.dataset.loader import load_dataset
from workbench.run.records import read_records

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CYCLE_TIME = NOTEBOOKS[0].parent / "cycle_time.ipynb"
#: Cells that draw a figure in cycle_time.ipynb.
CYCLE_TIME_FIGURES = 6


def test_there_are_notebooks():
    """The glob below finds the notebooks (an empty parametrization would pass silently)."""
    assert CYCLE_TIME in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_parameterized_thin_and_stored_without_outputs(path):
    """First code cell tagged `parameters` with typed defaults; no outputs, no counts, no defs; workbench kernel."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    first = cells[0]
    assert "parameters" in first.metadata.get("tags", [])
    assert all(isinstance(node, ast.AnnAssign) for node in ast.parse(first.source).body)
    assert not any("parameters" in c.metadata.get("tags", []) for c in cells[1:])
    for cell in cells:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef, ast.Lambda))]
        assert not defined, f"logic belongs in the package, not in {path.name}: {cell.source[:60]!r}"
    assert nb.metadata["kernelspec"]["name"] == "workbench"


@pytest.mark.slow
def test_cycle_time_notebook_runs_on_a_small_sample(tmp_path):
    """papermill runs cycle_time.ipynb on a 3,000-deal sample: no errors, every figure, the findings text."""
    for module in ("workbench.cycle.dwell", "workbench.cycle.forecast"):
        pytest.importorskip(module)
    spec = sample_csv(tmp_path, "notebook-tests")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        median = cycle_times(load_dataset(spec)).fits[OVERALL].median()["estimate"]
    nb, outputs = run_notebook("cycle_time", tmp_path,
                               {"dataset_path": str(spec), "horizon": 365, "segment_by": "channel"})
    assert len(images(outputs)) == CYCLE_TIME_FIGURES
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert f"Half of all deals close (won or lost) within {median:.0f} days" in text
    assert "still open; their outcome is estimated, not dropped." in text
    assert "pairs of `channel` values" in text
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(spec) in injected[0].source
    records = read_records(tmp_path / "cycle_time.ipynb")
    assert [r["status"] for r in records] == ["ok"] * len(records) and len(records) == 10


@pytest.mark.slow
@pytest.mark.parametrize("name, figures", [("win_loss_drivers", 1), ("customer_profile", 5)])
def test_drivers_and_profile_notebooks_run_on_a_small_sample(tmp_path, name, figures):
    """papermill runs the drivers and profile notebooks on a 3,000-deal sample: no errors, every figure."""
    _, outputs = run_notebook(name, tmp_path, {"dataset_path": str(sample_csv(tmp_path, "notebook-tests"))})
    assert len(images(outputs)) == figures


@pytest.mark.slow
def test_journey_notebook_shows_grids_and_its_report_leaves_the_builder_out(tmp_path):
    """papermill runs journey_grid.ipynb: the All deals grid, one grid per persona and the builder widget;
    the HTML report keeps the grids and drops the interactive builder and its heading."""
    from workbench.run.report import render_report

    spec = sample_csv(tmp_path, "notebook-tests")
    _, outputs = run_notebook("journey_grid", tmp_path, {"dataset_path": str(spec), "journey_template": "b2c"})
    out = tmp_path / "journey_grid.ipynb"
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert html.count('<div class="wb-journey"') == 1 + 5  # all deals, then the five sample personas
    assert "Noticing" in html and "Pain points" in html  # the b2c template
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    report = render_report([out], tmp_path / "report.html", title="t", client="c", branding={}, segment_label="all",
                           quality_note="", findings=[]).read_text()
    assert report.count('<div class="wb-journey"') == 6
    assert "Build your own" not in report and "widget-view" not in report
