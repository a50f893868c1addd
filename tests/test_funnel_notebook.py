"""stage_conversion.ipynb runs end to end with papermill in the real `workbench` kernel on a small sample."""
import nbformat
import pytest

from notebook_runs import NOTEBOOKS, code_cells, images, run_notebook, sample_csv
from workbench.run.records import read_records

NOTEBOOK = NOTEBOOKS / "stage_conversion.ipynb"
#: Sections of the notebook that draw one figure each: funnel, moves, flows, routes, chain vs cohorts, cohorts.
FIGURES = 6


def test_notebook_parameters_are_the_documented_ones():
    """The tagged parameters cell declares exactly the documented, typed parameters, with an empty dataset_path."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", [])
    names = [line.split(":")[0] for line in first.source.splitlines()]
    assert names == ["dataset_path", "segment_scope", "segment_by", "window_days", "mature_days", "min_deals"]
    assert 'dataset_path: str = ""' in first.source
    assert all("#" in line for line in first.source.splitlines())


@pytest.mark.slow
def test_stage_conversion_notebook_runs_on_a_small_sample(tmp_path):
    """papermill runs the notebook on a 3,000-deal sample written as CSV: no error outputs, one image per figure."""
    spec = sample_csv(tmp_path, "funnel-notebook-tests", truth_deals=1_000)
    nb, outputs = run_notebook("stage_conversion", tmp_path, {"dataset_path": str(spec), "segment_by": "channel"})
    assert len(images(outputs)) == FIGURES
    records = read_records(tmp_path / "stage_conversion.ipynb")
    assert {r["status"] for r in records} == {"ok"} and len(records) == 13
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "than the rest" in text or "no statistically significant difference" in text
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(spec) in injected[0].source
