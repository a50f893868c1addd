"""Run specifications (`params/*.yaml`): what `workbench run` reports on, and how.

A run specification names the dataset, how to split it into segments, the notebooks
to run per segment and the analysis parameters injected into them. Unknown keys are
errors; so are injected parameters a notebook does not declare in its `parameters`
cell, or whose type differs from the declared default (Papermill only warns). Dates
stay strings. A secret is never a parameter: credentials come from the environment.

Example::

    dataset: ../examples/sample/dataset.yaml   # relative to this file; or `sample`
    split: {by: [persona]}                      # or {filters: {Big EMEA: {region: EMEA, product: [...]}}}
    notebooks: [cycle_time, stage_conversion]   # shipped notebooks by name; or paths relative to the project
    parameters: {horizon: 365, segment_by: channel}
    min_deals_per_segment: 200
    output: output/by_persona                   # relative to the project
    title: Deal cycle report
    client: Acme Corp
    branding: {primary_color: "#1f4e79", logo_text: Acme}
"""
from __future__ import annotations

import ast
import datetime as dt
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..exceptions import SpecError, fixes
from ..resources import notebooks_dir
from ..yamlio import read_yaml_mapping
from .notebooks import DEFAULT_NOTEBOOKS, code_cells, project_root, resolve_notebook, shipped_notebooks
from .secrets import check_no_secrets, credential_variables, name_secret_variables

SAMPLE = "sample"
#: The parameter the runner sets itself: the segment's slice of the data.
DATASET_PARAMETER = "dataset_path"
#: Types a notebook parameter may declare, by the name used in annotations.
PARAMETER_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}

Scalar = Union[bool, int, float, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Split(_Strict):
    """Segments: one per observed combination of the ``by`` columns, or one per named filter.

    A filter maps a deal column to a value or a list of values; a deal matches when
    every column matches (as in `Dataset.filter`).
    """

    by: list[str] | None = None
    filters: dict[str, dict[str, Union[Scalar, list[Scalar]]]] | None = None

    @field_validator("by", mode="before")
    @classmethod
    def _one_column(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_of(self):
        if (self.by is None) == (self.filters is None):
            raise ValueError("give exactly one of `by` (a list of deal columns) or `filters` (named filters)")
        if self.by is not None and not self.by:
            raise ValueError("`by` lists no column")
        if self.filters is not None:
            if not self.filters:
                raise ValueError("`filters` names no filter")
            empty = [name for name, f in self.filters.items() if not f]
            if empty:
                raise ValueError(f"filters {empty} select no column; give e.g. {{channel: Inbound}}")
        return self


class Branding(_Strict):
    """How reports look: ``primary_color`` (a CSS/matplotlib colour) and ``logo_text``."""

    primary_color: str = "#1f4e79"
    logo_text: str = ""

    @field_validator("primary_color")
    @classmethod
    def _colour(cls, v):
        from matplotlib.colors import is_color_like

        if not is_color_like(v):
            raise ValueError(f"{v!r} is not a colour; give e.g. \"#1f4e79\" or \"navy\"")
        return v


class RunSpec(_Strict):
    """The whole `params/*.yaml` file (see the module docstring)."""

    dataset: str
    sample_deals: int = Field(default=20_000, ge=1)
    sample_seed: str = "workbench"
    split: Split | None = None
    notebooks: list[str] = Field(default=list(DEFAULT_NOTEBOOKS), min_length=1)
    parameters: dict[str, Any] = {}
    min_deals_per_segment: int = Field(default=100, ge=0)
    output: str = "output/run"
    title: str = "CRM journey report"
    client: str = ""
    branding: Branding = Branding()
    workers: int | None = Field(default=None, ge=1)
    overall: bool = True
    timeout: int | None = Field(default=None, ge=1, description="seconds a notebook cell may run")
    pdf: bool = False

    @model_validator(mode="after")
    def _sample_options(self):
        if self.dataset != SAMPLE and ({"sample_deals", "sample_seed"} & self.model_fields_set):
            raise ValueError("`sample_deals` and `sample_seed` apply only to `dataset: sample`")
        if DATASET_PARAMETER in self.parameters:
            raise ValueError(f"`parameters.{DATASET_PARAMETER}` is set by the runner (each segment's slice of "
                             "the data); set `dataset` instead")
        return self


@dataclass(frozen=True)
class RunParams:
    """A validated run specification with its paths resolved.

    ``project`` is the nearest folder above the parameter file holding a
    ``pyproject.toml`` (else the file's own folder): ``notebooks`` and ``output``
    resolve against it, ``dataset`` against the parameter file's folder.
    """

    spec: RunSpec
    path: Path
    project: Path

    @property
    def dataset(self) -> Path | None:
        """The dataset.yaml to load, or None for the built-in sample."""
        return None if self.spec.dataset == SAMPLE else (self.path.parent / self.spec.dataset).resolve()

    @property
    def notebooks(self) -> list[Path]:
        return [resolve_notebook(n, self.project) for n in self.spec.notebooks]

    @property
    def output(self) -> Path:
        return (self.project / self.spec.output).resolve()


def load_params(path: str | Path) -> RunParams:
    """Read and check a run specification, including every notebook's parameters cell.

    Raises
    ------
    SpecError
        The file is missing, not YAML, names unknown keys, a notebook is missing, or a
        parameter is unknown to a notebook or has the wrong type. Every problem is listed.
    CredentialsError
        A key looks like a credential, or a value equals a secret from the environment.
    """
    path = Path(path)
    raw = _dates_as_text(read_yaml_mapping(path, "dataset", "`params/demo.yaml`"))
    dataset = raw.get("dataset")
    if isinstance(dataset, str) and dataset != SAMPLE:
        name_secret_variables(credential_variables(path.parent / dataset))
    check_no_secrets(raw, str(path))
    try:
        spec = RunSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_pydantic_message(exc, path)) from None
    params = RunParams(spec=spec, path=path.resolve(), project=project_root(path.resolve()))
    problems = []
    if params.dataset is not None and not params.dataset.exists():
        problems.append(f"`dataset`: {params.dataset} does not exist. Try 1) give a dataset.yaml path relative to "
                        f"{path.parent} 2) `dataset: sample` for the built-in sample data")
    problems += check_notebooks(params)
    if problems:
        raise SpecError(f"`{path}` has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return params


def _dates_as_text(value):
    """YAML turns 2025-06-30 into a date; dates stay text until a notebook parses them."""
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _pydantic_message(exc: ValidationError, path: Path) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key. Try 1) check its spelling 2) known keys: {sorted(RunSpec.model_fields)}"
            if loc.startswith("split."):
                msg = "unknown key. Try 1) `split` takes `by` or `filters`"
        lines.append(f"  - `{loc or '(top level)'}`: {msg}")
    return f"`{path}` has {len(lines)} problem(s):\n" + "\n".join(dict.fromkeys(lines))


# --- notebook parameters -----------------------------------------------------------------

@dataclass(frozen=True)
class NotebookParameter:
    """One name declared in a notebook's `parameters` cell: its type (None: any) and default."""

    name: str
    type: type | None
    default: Any


def notebook_parameters(path: str | Path) -> dict[str, NotebookParameter]:
    """The parameters a notebook declares in its cell tagged `parameters`.

    The type is the annotation when it names int, float, str, bool, list or dict,
    else the type of the literal default (None: any value is accepted).

    Raises
    ------
    SpecError
        The notebook is missing, unreadable, has no `parameters` cell, or the cell is
        not plain assignments of literals.
    """
    path = Path(path)
    if not path.exists():
        if path.parent == notebooks_dir():
            raise SpecError(f"there is no shipped notebook `{path.stem}`. "
                            + fixes(f"use one of {shipped_notebooks()}",
                                    "give your own notebook as a path ending in `.ipynb` (relative to the project)"))
        raise SpecError(f"notebook `{path}` does not exist. " + fixes("check `notebooks:` (relative to the project)"))
    try:
        cells = [source for source, tags in code_cells(path) if "parameters" in tags]
    except OSError as exc:
        raise SpecError(f"notebook `{path}` cannot be read ({exc.strerror}). "
                        + fixes("check the file's permissions", "or name another notebook")) from None
    except ValueError as exc:
        raise SpecError(f"`{path}` is not a Jupyter notebook: {exc}. "
                        + fixes("open it in Jupyter and save it again", "or name another notebook")) from None
    if not cells:
        raise SpecError(f"notebook `{path}` has no cell tagged `parameters`. "
                        + fixes("tag its first code cell `parameters` (View > Cell Toolbar > Tags in Jupyter)"))
    out = {}
    try:
        body = ast.parse(cells[0]).body
    except SyntaxError as exc:
        raise SpecError(f"notebook `{path}`: the `parameters` cell is not valid Python (line {exc.lineno}: "
                        f"{exc.msg}). " + fixes("correct it in Jupyter")) from None
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation, value = node.target.id, node.annotation, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation, value = node.targets[0].id, None, node.value
        else:
            raise SpecError(f"notebook `{path}`: the `parameters` cell must hold only `name: type = literal` lines, "
                            f"not `{ast.unparse(node)[:60]}`.")
        try:
            default = None if value is None else ast.literal_eval(value)
        except ValueError:
            raise SpecError(f"notebook `{path}`: the default of `{name}` is not a literal.") from None
        declared = PARAMETER_TYPES.get(annotation.id) if isinstance(annotation, ast.Name) else None
        if declared is None and type(default) in PARAMETER_TYPES.values():
            declared = type(default)
        out[name] = NotebookParameter(name, declared, default)
    return out


def _type_problem(value, param: NotebookParameter) -> str | None:
    expected = param.type
    if expected is None:
        return None
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True  # 30 where 30.0 is declared
    if ok:
        return None
    return f"expected {expected.__name__} (default {param.default!r}), got {type(value).__name__} {value!r}"


def check_notebooks(params: RunParams) -> list[str]:
    """Every problem with the notebooks and the parameters injected into them, as text.

    A parameter goes to every notebook that declares it; one that no notebook declares is
    an error (a typo), and its type must match each declaring notebook's default.
    """
    problems = []
    stems = {}
    declared_anywhere: dict[str, list[str]] = {}
    for rel, path in zip(params.spec.notebooks, params.notebooks):
        try:
            declared = notebook_parameters(path)
        except SpecError as exc:
            problems.append(f"`notebooks`: {exc}")
            continue
        if path.stem in stems:
            problems.append(f"`notebooks`: `{rel}` and `{stems[path.stem]}` would both be written as "
                            f"`{path.stem}.ipynb`. Try 1) rename one of them")
        stems[path.stem] = rel
        if DATASET_PARAMETER not in declared:
            problems.append(f"`notebooks`: `{rel}` declares no `{DATASET_PARAMETER}` parameter, so it cannot be "
                            f"given its segment's data. Try 1) add `{DATASET_PARAMETER}: str = \"\"` to its "
                            "parameters cell and load the data from it")
        for name in declared:
            declared_anywhere.setdefault(name, []).append(rel)
        for key, value in params.spec.parameters.items():
            if key not in declared:
                continue
            wrong = _type_problem(value, declared[key])
            if wrong:
                problems.append(f"`parameters.{key}`: {wrong} (as declared in `{rel}`). Try 1) write the value "
                                f"as a YAML {declared[key].type.__name__}")
    for key in params.spec.parameters:
        if key not in declared_anywhere and declared_anywhere:
            known = sorted(k for k in declared_anywhere if k != DATASET_PARAMETER)
            close = difflib.get_close_matches(key, known, n=1)
            problems.append(f"`parameters.{key}`: no notebook of the run declares such a parameter. Try "
                            + (f"1) rename it to `{close[0]}` 2) " if close else "1) ")
                            + f"use one the notebooks accept: {known}")
    return problems


def parameters_for(params: RunParams, notebook: Path) -> dict:
    """The run's parameters that ``notebook`` declares (each notebook gets only its own)."""
    declared = notebook_parameters(notebook)
    return {k: v for k, v in params.spec.parameters.items() if k in declared}


#: Notebook parameters that name deal columns, checked against the data before any kernel starts.
COLUMN_PARAMETERS = ("segment_by", "persona_column", "speed_covariates", "driver_columns")


def check_columns(params: RunParams, dataset) -> None:
    """Every deal column a parameter names exists in the data (account columns too, for `driver_columns`).

    Raises
    ------
    SpecError
        Naming each parameter, its unknown columns and the known ones, before any kernel starts.
    """
    known = set(dataset.deals.columns)
    accounts = set(dataset.accounts.columns) if dataset.accounts is not None else set()
    problems = []
    for name in COLUMN_PARAMETERS:
        value = params.spec.parameters.get(name)
        if not value:
            continue
        columns = [value] if isinstance(value, str) else list(value)
        allowed = known | accounts if name == "driver_columns" else known
        missing = [c for c in columns if c not in allowed]
        if missing:
            close = {c: difflib.get_close_matches(str(c), sorted(allowed), n=1) for c in missing}
            hints = "; ".join(f"`{c}` (did you mean `{m[0]}`?)" if m else f"`{c}`" for c, m in close.items())
            problems.append(f"`parameters.{name}` names {hints}, which the deals do not have. Try 1) use "
                            f"columns the data have: {sorted(c for c in allowed if not str(c).startswith('_'))} "
                            f"2) leave `{name}` out to choose from the data")
    if problems:
        raise SpecError(f"`{params.path}` has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
