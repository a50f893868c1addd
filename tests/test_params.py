"""Run specifications: every mistake is caught before a kernel starts, and named by file and key."""
from pathlib import Path

import pytest

from workbench.exceptions import CredentialsError, SpecError
from workbench.run.params import RunSpec, load_params, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "tests" / "data" / "notebooks"
COUNTS = NOTEBOOKS / "counts.ipynb"


@pytest.fixture
def write(tmp_path):
    """Write a parameter file (with a dataset.yaml beside it) and return its path."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.yaml").write_text("deals: {source: deals.csv}\n")

    def _write(text: str, name: str = "run.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


def _spec(extra: str = "", notebook: Path = COUNTS) -> str:
    return f"dataset: data/dataset.yaml\nnotebooks: [{notebook}]\n{extra}"


def test_minimal_file_resolves_paths(write, tmp_path):
    """`dataset` resolves against the parameter file's folder; defaults fill the rest."""
    params = load_params(write(_spec()))
    assert params.dataset == (tmp_path / "data" / "dataset.yaml").resolve()
    assert params.notebooks == [COUNTS]
    assert params.spec.overall is True and params.spec.split is None


def test_default_notebook_and_output_resolve_against_the_project():
    """In the repository, the notebooks and `output` are project-relative."""
    params = load_params(ROOT / "params" / "demo.yaml")
    assert params.project == ROOT
    assert params.notebooks == [ROOT / "notebooks" / f"{n}.ipynb" for n in (
        "cycle_time", "stage_conversion", "win_loss_drivers", "customer_profile", "journey_grid")]
    assert params.output == ROOT / "output" / "demo"
    assert params.dataset is None  # the built-in sample


@pytest.mark.parametrize("name", ["demo.yaml", "weekly_by_channel.yaml"])
def test_shipped_parameter_files_validate_against_cycle_time(name):
    """The committed params/*.yaml pass every check against their notebooks."""
    params = load_params(ROOT / "params" / name)
    assert params.spec.split is not None and params.spec.parameters


def test_unknown_key_names_file_and_key(write):
    """A misspelt key is an error naming the file, the key path and the known keys."""
    path = write(_spec("min_deal_per_segment: 5\n"))
    with pytest.raises(SpecError, match=r"(?s)run\.yaml.*`min_deal_per_segment`: unknown key.*min_deals_per_segment"):
        load_params(path)


def test_split_needs_exactly_one_of_by_or_filters(write):
    """`split` with both `by` and `filters` is refused; `by` may be one column name."""
    with pytest.raises(SpecError, match=r"`split`: give exactly one of `by`"):
        load_params(write(_spec("split: {by: [persona], filters: {A: {channel: Inbound}}}\n")))
    assert load_params(write(_spec("split: {by: persona}\n"))).spec.split.by == ["persona"]


def test_every_problem_is_listed_at_once(write):
    """An unknown parameter (with the close match) and a mistyped one (with its notebook) are both reported."""
    path = write(_spec("parameters: {min_deal: 5, label: 3}\n"))
    with pytest.raises(SpecError) as err:
        load_params(path)
    text = str(err.value)
    assert "2 problem(s)" in text
    assert "`parameters.min_deal`" in text and "no notebook of the run declares" in text
    assert "rename it to `min_deals`" in text
    assert "`parameters.label`: expected str" in text and "got int 3" in text


@pytest.mark.parametrize("value", ["7.5", "true", "'7'", "[7]"])
def test_mistyped_parameter_is_refused(write, value):
    """`min_deals: int = 30` takes neither 7.5, nor true, nor the text '7', nor a list."""
    with pytest.raises(SpecError, match=r"`parameters.min_deals`: expected int \(default 30\)"):
        load_params(write(_spec(f"parameters: {{min_deals: {value}}}\n")))


def test_parameter_of_the_declared_type_is_accepted(write):
    """An int where an int is declared, and an int where a float is declared (7 is 7.0)."""
    assert load_params(write(_spec("parameters: {min_deals: 7}\n"))).spec.parameters == {"min_deals": 7}
    sleeps = _spec("parameters: {seconds: 7}\n", NOTEBOOKS / "sleeps.ipynb")
    assert load_params(write(sleeps)).spec.parameters == {"seconds": 7}


def test_dates_stay_strings(write):
    """A YAML date (2025-01-31) reaches a `str` parameter as the text "2025-01-31"."""
    path = write(_spec("parameters: {label: 2025-01-31}\n"))
    assert load_params(path).spec.parameters == {"label": "2025-01-31"}


def test_runner_sets_dataset_path_itself(write):
    """`parameters.dataset_path` is refused: each segment gets its own slice."""
    with pytest.raises(SpecError, match=r"`parameters.dataset_path` is set by the runner"):
        load_params(write(_spec("parameters: {dataset_path: x.yaml}\n")))


@pytest.mark.parametrize("key", ["db_password", "API_KEY", "access_token", "secret", "crm_credentials", "db_pwd"])
def test_secret_looking_keys_are_refused(write, key):
    """A key that looks like a credential is refused with advice to use an environment variable."""
    with pytest.raises(CredentialsError, match=rf"`parameters.{key}` looks like a credential.*environment variable"):
        load_params(write(_spec(f"parameters: {{{key}: hunter2}}\n")))


def test_filter_labels_may_contain_secret_words(write):
    """Under `split`, keys are filter labels and columns: "Secret Service" is a segment, not a credential."""
    params = load_params(write(_spec("split: {filters: {Secret Service: {industry: Government}}}\n")))
    assert list(params.spec.split.filters) == ["Secret Service"]


def test_a_value_equal_to_a_secret_in_the_environment_is_refused(write, monkeypatch):
    """A secret pasted in under an innocent name is still caught."""
    monkeypatch.setenv("WORKBENCH_TEST_DB_PASSWORD", "s3cr3t-value-41")
    with pytest.raises(CredentialsError, match=r"`parameters.label` looks like a credential"):
        load_params(write(_spec("parameters: {label: s3cr3t-value-41}\n")))


def test_missing_dataset_and_notebook_are_reported(write, tmp_path):
    """A dataset.yaml or notebook that does not exist is named, with what to do."""
    path = write("dataset: nowhere/dataset.yaml\nnotebooks: [nowhere.ipynb]\n")
    with pytest.raises(SpecError) as err:
        load_params(path)
    assert "`dataset`" in str(err.value) and "dataset: sample" in str(err.value)
    assert "notebook `" in str(err.value) and "nowhere.ipynb` does not exist" in str(err.value)


def test_notebook_without_dataset_path_is_refused(write, tmp_path):
    """A notebook that cannot be given its segment's data is an error."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("horizon: int = 365", metadata={"tags": ["parameters"]})])
    nbformat.write(nb, tmp_path / "nodata.ipynb")
    with pytest.raises(SpecError, match=r"declares no `dataset_path` parameter"):
        load_params(write(_spec(notebook=tmp_path / "nodata.ipynb")))


BROKEN_NOTEBOOKS = {
    "broken JSON": (b'{"cells": [', r"is not a Jupyter notebook: its JSON is broken at line 1, column 12"),
    "not UTF-8": (b"\xff\xfe{}", r"is not a Jupyter notebook: it is not UTF-8 text"),
    "no cells": (b'{"cells": 3}', r"is not a Jupyter notebook: it has no list of cells"),
    "a parameters cell that is not Python": (
        b'{"cells": [{"cell_type": "code", "source": ["x = (\\n"], "metadata": {"tags": ["parameters"]}}]}',
        r"the `parameters` cell is not valid Python \(line 1: '\(' was never closed\)"),
}


@pytest.mark.parametrize("case", list(BROKEN_NOTEBOOKS))
def test_a_broken_notebook_is_named_with_what_is_wrong(write, tmp_path, case, capsys):
    """A notebook that is not one (or whose parameters cell does not parse) stops `workbench run` before any kernel
    starts with an error naming it and what is wrong, not a traceback, and the run leaves no output."""
    from workbench.cli import main

    content, message = BROKEN_NOTEBOOKS[case]
    (tmp_path / "broken.ipynb").write_bytes(content)
    path = write(_spec(f"output: {tmp_path / 'out'}\n", notebook=tmp_path / "broken.ipynb"))
    with pytest.raises(SpecError, match=message) as err:
        load_params(path)
    assert f"{tmp_path / 'broken.ipynb'}" in str(err.value) and "Try 1)" in str(err.value)
    assert main(["run", str(path)]) == 2
    stderr = capsys.readouterr().err
    assert "broken.ipynb" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_a_notebook_of_nbformat_3_is_read_as_papermill_reads_it(tmp_path):
    """An old notebook (nbformat 3) is converted, as Papermill converts it, not refused."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("dataset_path: str = ''\nhorizon: int = 90",
                                           metadata={"tags": ["parameters"]})])
    with open(tmp_path / "old.ipynb", "w", encoding="utf-8") as out:
        nbformat.write(nbformat.convert(nb, 3), out, version=3)
    assert '"worksheets"' in (tmp_path / "old.ipynb").read_text()
    declared = notebook_parameters(tmp_path / "old.ipynb")
    assert declared["horizon"].default == 90 and declared["horizon"].type is int


def test_sample_options_only_with_the_sample(write):
    """`sample_deals` next to a dataset.yaml is a mistake; with `dataset: sample` it is read."""
    with pytest.raises(SpecError, match=r"`sample_deals` and `sample_seed` apply only to `dataset: sample`"):
        load_params(write(_spec("sample_deals: 500\n")))
    params = load_params(write(f"dataset: sample\nsample_deals: 500\nnotebooks: [{COUNTS}]\n"))
    assert params.dataset is None and params.spec.sample_deals == 500


def test_branding_keys_and_colour_are_checked(write):
    """An unknown branding key or a colour that is not one is an error before any run."""
    with pytest.raises(SpecError, match=r"`branding.logo`: unknown key"):
        load_params(write(_spec("branding: {logo: x}\n")))
    with pytest.raises(SpecError, match=r"`branding.primary_color`: 'blurple' is not a colour"):
        load_params(write(_spec("branding: {primary_color: blurple}\n")))


def test_cycle_time_parameters_are_read_with_their_types():
    """The parameters cell of notebooks/cycle_time.ipynb is parsed: names, types, defaults."""
    declared = notebook_parameters(ROOT / "notebooks" / "cycle_time.ipynb")
    assert declared["dataset_path"].type is str and declared["dataset_path"].default == ""
    assert declared["horizon"].type is float and declared["days"].type is list
    assert declared["horizon"].default == 0 and declared["segment_by"].default == ""  # 0, "": chosen from the data


def test_schema_forbids_unknown_keys_directly():
    """The pydantic model itself forbids extra keys (the file reader relies on it)."""
    with pytest.raises(Exception, match="Extra inputs are not permitted"):
        RunSpec.model_validate({"dataset": "sample", "colour": "red"})


def test_each_notebook_gets_only_the_parameters_it_declares(write):
    """With several notebooks, a parameter goes only to the notebooks that declare it."""
    from workbench.run.params import notebook_parameters, parameters_for

    params = load_params(ROOT / "params" / "demo.yaml")
    assert [n.stem for n in params.notebooks] == ["cycle_time", "stage_conversion", "win_loss_drivers",
                                                  "customer_profile", "journey_grid"]
    for notebook in params.notebooks:
        given = parameters_for(params, notebook)
        declared = notebook_parameters(notebook)
        assert set(given) == set(params.spec.parameters) & set(declared)
    assert "speed_covariates" in parameters_for(params, params.notebooks[0])
    assert "speed_covariates" not in parameters_for(params, params.notebooks[1])
    assert set(parameters_for(params, params.notebooks[4])) == {"min_deals"}


def test_shipped_notebooks_are_found_by_name_from_a_file_anywhere(tmp_path):
    """A run specification outside the checkout names shipped notebooks (`cycle_time`); its output and
    notebook paths resolve against its own folder, which has no pyproject.toml."""
    client = tmp_path / "client"
    client.mkdir()
    (client / "run.yaml").write_text("dataset: sample\nnotebooks: [cycle_time, stage_conversion]\noutput: out\n")
    params = load_params(client / "run.yaml")
    assert params.project == client
    assert params.notebooks == [ROOT / "notebooks" / "cycle_time.ipynb", ROOT / "notebooks" / "stage_conversion.ipynb"]
    assert params.output == client / "out"


def test_the_default_notebooks_are_every_shipped_notebook(tmp_path):
    """Without `notebooks:`, a run executes all five shipped notebooks, in report order."""
    (tmp_path / "run.yaml").write_text("dataset: sample\n")
    params = load_params(tmp_path / "run.yaml")
    assert [p.stem for p in params.notebooks] == ["cycle_time", "stage_conversion", "win_loss_drivers",
                                                  "customer_profile", "journey_grid"]


def test_an_unknown_notebook_name_lists_the_shipped_ones(tmp_path):
    """A misspelt notebook name is an error naming the shipped notebooks."""
    (tmp_path / "run.yaml").write_text("dataset: sample\nnotebooks: [cycle_times]\n")
    with pytest.raises(SpecError, match=r"no shipped notebook `cycle_times`.*cycle_time"):
        load_params(tmp_path / "run.yaml")


def test_the_import_cells_are_sent_once_each_in_order(tmp_path):
    """The kernels' preload holds each import cell once, in order, also when a notebook repeats one; cells
    that do more than import are left to the notebook."""
    import json

    from workbench.run.notebooks import preload_code

    cells = [{"cell_type": "code", "source": source, "metadata": {}}
             for source in ("import json", ["import os\n", "import sys"], "import json", "x = 1", "import csv")]
    (tmp_path / "repeats.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": cells}))
    assert preload_code([str(tmp_path / "repeats.ipynb")]) == "import json\nimport os\nimport sys\nimport csv"
