"""The project's set-up files agree with each other and with the tree."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(requirements):
    return {re.split(r"[=<>!~ ]", r, maxsplit=1)[0].lower(): r.replace(" ", "") for r in requirements}


def test_environment_yml_lists_the_pyproject_dependencies():
    """environment.yml pins exactly the packages and versions pyproject.toml pins."""
    project = _pyproject()
    expected = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = _pins(p for p in pip_section if not p.startswith("-e"))
    assert listed == expected


def test_every_direct_dependency_is_pinned_and_locked():
    """Direct dependencies are pinned with == and requirements.lock holds the same versions."""
    project = _pyproject()
    lock = _pins(line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement} is not pinned with =="
        assert lock[name.lower()] == f"{name.lower()}=={version}".lower() or \
            lock[name.lower()].lower() == requirement.lower(), f"{requirement} disagrees with requirements.lock"


def test_ci_runs_the_readme_test_command():
    """.ci/run calls `make test`, the test command the README gives."""
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme


def test_readme_layout_matches_the_tree():
    """Every path in the README's layout block exists."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- layout -->")[1].split("<!-- /layout -->")[0]
    paths = re.findall(r"^\s*([\w./-]+/?)\s{2,}", block, flags=re.M)
    assert paths, "the layout block lists no paths"
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README layout names paths that do not exist: {missing}"
