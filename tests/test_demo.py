"""The sample example and the demo run specification, as a new user meets them."""
import warnings
from pathlib import Path

from workbench.cli import main
from workbench.dataset.sample import generate

ROOT = Path(__file__).resolve().parents[1]


def test_sample_example_yaml_is_what_the_generator_writes(tmp_path):
    """examples/sample/dataset.yaml is byte-identical to the one `workbench sample` writes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = generate(n_deals=500, seed="workbench").write_csv(tmp_path)
    assert written.read_text() == (ROOT / "examples" / "sample" / "dataset.yaml").read_text()


def test_sample_command_then_validate_is_clean(tmp_path, capsys):
    """`workbench sample` writes data that `workbench validate` passes with exit code 0."""
    assert main(["sample", "--output", str(tmp_path), "--deals", "800"]) == 0
    assert main(["validate", str(tmp_path / "dataset.yaml")]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_demo_run_specification_is_valid():
    """params/demo.yaml (what `make demo` runs) passes the run-spec checks, notebook parameters included."""
    from workbench.run.params import load_params

    spec = load_params(ROOT / "params" / "demo.yaml")
    assert spec.dataset is None  # the built-in sample
    assert all(path.exists() for path in spec.notebooks)
