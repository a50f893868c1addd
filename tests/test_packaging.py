"""A wheel install (not just the editable checkout) carries and finds the templates and notebooks.

The wheel is built offline from a copy of the project (pip, no build isolation, the pinned
setuptools of the test extras), installed into a folder with ``--target``, and imported from
there in a fresh interpreter started outside the checkout.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy so the checkout gets no build/ or egg-info."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("src", "templates", "notebooks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(work / "dist"), str(source)], check=True, capture_output=True)
    (built,) = (work / "dist").glob("workbench-*.whl")
    return built


@pytest.mark.parametrize("folder", ["templates", "notebooks"])
def test_the_wheel_carries_every_template_and_notebook(wheel, folder):
    """Every file under templates/ and notebooks/ is in the wheel under workbench/ (a new folder needs pyproject)."""
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith(f"workbench/{folder}/")}
    expected = {f"workbench/{folder}/" + p.relative_to(ROOT / folder).as_posix()
                for p in (ROOT / folder).rglob("*") if p.is_file() and "checkpoints" not in str(p)}
    assert expected and shipped == expected, (
        f"missing from the wheel: {sorted(expected - shipped)}; list new folders under "
        "[tool.setuptools] packages and package-data in pyproject.toml")


def test_the_wheel_carries_every_subpackage(wheel):
    """Every package folder under src/workbench/ is in the wheel (pyproject lists packages by name)."""
    shipped = {n.rsplit("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist() if n.endswith("/__init__.py")}
    expected = {p.parent.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src").rglob("__init__.py")}
    assert expected <= shipped, f"missing from the wheel: {sorted(expected - shipped)}"


def test_an_installed_wheel_renders_a_report_and_loads_a_journey_template(wheel, tmp_path):
    """Imported from the wheel's files alone: the templates resolve inside the install and work."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, capture_output=True)
    script = """
import json, sys
from pathlib import Path
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
import workbench
from workbench.journey import template
from workbench.run.report import render_report
from workbench.run.notebooks import resolve_notebook
from workbench.resources import templates_dir

nb = new_notebook(cells=[new_markdown_cell("# Cycle times"),
                         new_code_cell("x", outputs=[new_output("execute_result", {"text/plain": "42"},
                                                                execution_count=1)])])
nbformat.write(nb, "analysis.ipynb")
out = render_report([Path("analysis.ipynb")], Path("report.html"), title="Packaged", client="Client",
                    branding={}, segment_label="all deals", quality_note="", findings=[])
print(json.dumps({"module": workbench.__file__, "templates": str(templates_dir()),
                  "notebook": str(resolve_notebook("cycle_time", Path.cwd())),
                  "stages": [s.label for s in template("b2b").stages],
                  "report": out.read_text()}))
"""
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["module"]).is_relative_to(site)
    assert Path(found["templates"]) == site / "workbench" / "templates"
    assert Path(found["notebook"]) == site / "workbench" / "notebooks" / "cycle_time.ipynb"
    assert len(found["stages"]) >= 4
    assert "Cycle times" in found["report"] and "Packaged" in found["report"]
    assert (ROOT / "templates" / "report" / "static" / "report.css").read_text()[:200] in found["report"]
