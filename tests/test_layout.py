"""The package is grouped by the data flow and its imports run one way (README "Where to find what")."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "workbench"
#: Floors, bottom first: a module may import from its own floor or one below, never above.
FLOORS = [
    {"exceptions", "resources", "yamlio", "seeds", "timeunits", "formats", "markup", "tables", "jsonsafe", "recordkeys",
     "lazy"},
    {"dataset"},
    {"stats"},
    {"plots", "findings", "results"},
    {"drivers"},
    {"cycle"},
    {"funnel"},
    {"profile"},
    {"journey"},
    {"sections"},
    {"run"},
    {"cli", "__init__"},
]
FLOOR = {unit: i for i, units in enumerate(FLOORS) for unit in units}
#: Analyses, which must not import widgets, the runner or the command line.
ANALYSES = {"dataset", "stats", "drivers", "cycle", "funnel", "profile"}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PKG).with_suffix("").parts): p for p in PKG.rglob("*.py")}


def _unit(module: str) -> str:
    """The group of a module (`dataset.loader` -> `dataset`), or the top-level module's own name."""
    return module.split(".")[0]


def _imports(module: str, path: Path) -> set[str]:
    """Every workbench module ``module`` imports, at the top or inside a function."""
    package = module.split(".")[:-1] if not module.endswith("__init__") else module.split(".")[:-1]
    known = _modules()
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("workbench"):
                target = node.module.removeprefix("workbench").lstrip(".")
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}" if target else alias.name
                if full in known:
                    out.add(full)
                elif target in known or f"{target}.__init__" in known:
                    out.add(target if target in known else f"{target}.__init__")
    return out


def test_imports_run_down_the_floors_and_never_back_up():
    """No module imports a group above its own; analyses import no widget, runner or CLI; the runner no
    statistics; the dataset no analysis."""
    problems = []
    for module, path in _modules().items():
        here = _unit(module)
        for target in _imports(module, path):
            there = _unit(target)
            if FLOOR[there] > FLOOR[here]:
                problems.append(f"{module} imports {target} (floor {FLOOR[there]} above {FLOOR[here]})")
            if here in ANALYSES and (target.startswith(("run.", "sections.")) or target in ("cli", "journey.builder")):
                problems.append(f"{module} is an analysis but imports {target}")
            if here == "run" and there in {"stats", "drivers", "cycle", "funnel", "profile", "journey"}:
                problems.append(f"{module} is the runner but imports statistics from {target}")
    assert not problems, "\n".join(sorted(problems))


def test_no_import_circles():
    """Between modules, imports form no circle (a group's `__init__` re-exports are not counted)."""
    graph = {m: {t for t in _imports(m, p) if not t.endswith("__init__")}
             for m, p in _modules().items() if not m.endswith("__init__")}
    seen, stack, circles = set(), [], []

    def visit(node):
        if node in stack:
            circles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in graph.get(node, ()):
            visit(nxt)
        stack.pop()

    for node in graph:
        visit(node)
    assert not circles, circles


def test_every_group_and_module_is_in_the_readme_table():
    """The README's "Where to find what" rows name every group folder and every module, and nothing else."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- where -->")[1].split("<!-- /where -->")[0]
    named = set()
    for row in [r for r in table.splitlines() if r.startswith("| `")]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        folder = re.search(r"`([^`]+)`", cells[0]).group(1)
        prefix = folder.removeprefix("src/workbench/").rstrip("/").replace("*.py", "")
        for name in re.findall(r"`([a-z_]+)`", cells[1]):
            named.add(f"{prefix}.{name}" if prefix and not prefix.endswith(".py") else name)
        if folder.endswith(".py") and "*" not in folder:
            named.add(folder.removeprefix("src/workbench/").removesuffix(".py"))
    modules = {m for m in _modules() if not m.endswith("__init__")}
    sections = {m for m in modules if m.startswith("sections.")}
    per_notebook = {f"sections.{n}" for n in ("cycle_time", "stage_conversion", "win_loss_drivers",
                                              "customer_profile", "journey_grid")}
    assert per_notebook <= sections
    missing = modules - named - per_notebook
    assert not missing, f"modules the README table does not name: {sorted(missing)}"
    assert not (named - modules - {"cli.validate", "cli.sample", "cli.run", "validate", "sample", "run"}), sorted(
        named - modules)
