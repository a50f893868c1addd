"""The demo job and the sample example, as a new user runs them."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

from workbench.cli import main
from workbench.sample import generate

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


def test_demo_command_writes_its_outputs(tmp_path):
    """`workbench demo` (a real subprocess, as `make demo` runs it) prints where its outputs are and writes them."""
    run = subprocess.run([sys.executable, "-m", "workbench.cli", "demo", "--output", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert str(tmp_path / "summary.json") in run.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"]["deals"] == 20_000
    assert summary["counts"]["open"] > 0.2 * summary["counts"]["deals"]
    assert (tmp_path / "cycle_times_by_persona.csv").exists()
