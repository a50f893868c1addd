"""Journey grids: the model of one persona's journey map, saved and loaded as YAML.

A journey map is a grid: the persona above it, the stages of buying across (named from
the customer's side, each covering one or more CRM stages), and lanes down. A lane is
either free text (``kind: text``: what the customer does, thinks and feels, objects)
or computed from the data (``kind: data`` with a ``metric`` from `DATA_METRICS`).
A text lane may name a metric in ``suggest``: its empty cells start with a suggestion
written from that metric (see `workbench.journey.facts`).

The model holds no numbers: `workbench.journey.facts` computes them per persona, and
`workbench.journey.render` and `workbench.journey.export` draw the grid. Templates live
in ``templates/journeys/`` (`template`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..dataset.groups import OVERALL
from ..dataset.model import Dataset
from ..exceptions import WorkbenchError, fixes
from ..resources import templates_dir
from ..yamlio import read_yaml_mapping

#: What a data lane can show, and what a text lane can take suggestions from.
DATA_METRICS = {
    "deals": "deals reaching the stage and the eventual conversion onward",
    "days": "median days in the stage (Kaplan-Meier, deals still in it censored)",
    "touchpoints": "the most frequent touchpoint channels and kinds while deals are in the stage",
    "objections": "the most frequent loss reasons of deals lost in the stage",
    "roles": "contact roles on the deals that reached the stage",
    "sentiment": "the tone of the notes and reasons of deals that ended or sit in the stage",
    "actions": "what the customer does: the most frequent touchpoint kinds (text lanes only)",
    "thoughts": "how the stage feels: its pace, its drop-out and the tone of notes (text lanes only)",
}
TEXT_ONLY_METRICS = ("actions", "thoughts")
TEMPLATES = templates_dir() / "journeys"


class JourneyError(WorkbenchError):
    """A journey grid file, template or edit is invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Persona(_Strict):
    """Who the map is for: a name, a description, and the deal filter selecting their deals."""

    name: str = Field(min_length=1)
    description: str = ""
    filter: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(default_factory=dict)


class JourneyStage(_Strict):
    """A stage of buying as the customer sees it, and the CRM stages it covers."""

    label: str = Field(min_length=1)
    covers: list[str] = Field(default_factory=list)
    description: str = ""


class Lane(_Strict):
    """A row of the grid: free text (optionally seeded from a metric) or a data lane."""

    name: str = Field(min_length=1)
    kind: Literal["text", "data"] = "text"
    metric: str | None = None
    suggest: str | None = None

    @field_validator("metric", "suggest")
    @classmethod
    def _known_metric(cls, v):
        if v is not None and v not in DATA_METRICS:
            raise ValueError(f"unknown metric {v!r}; known: {sorted(DATA_METRICS)}")
        return v

    @model_validator(mode="after")
    def _fits_kind(self):
        if self.kind == "data" and self.metric is None:
            raise ValueError(f"data lane {self.name!r} needs a `metric`, one of {sorted(set(DATA_METRICS) - set(TEXT_ONLY_METRICS))}")
        if self.kind == "data" and self.metric in TEXT_ONLY_METRICS:
            raise ValueError(f"`{self.metric}` only seeds text lanes: use `kind: text` and `suggest: {self.metric}`")
        if self.kind == "text" and self.metric is not None:
            raise ValueError(f"text lane {self.name!r} takes `suggest`, not `metric`")
        return self


class Journey(_Strict):
    """One persona's journey grid: persona, stages across, lanes down, and the text cells.

    ``cells`` maps a text lane's name to ``{stage label: text}``. Edit through the methods
    (`rename_stage`, `merge_stages`, `move_lane`, ...), which keep the cells attached to
    their lane and stage.
    """

    title: str = "Buying journey"
    persona: Persona
    stages: list[JourneyStage] = Field(min_length=1)
    lanes: list[Lane] = Field(min_length=1)
    cells: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self):
        labels = [s.label for s in self.stages]
        names = [lane.name for lane in self.lanes]
        for what, values in (("stage label", labels), ("lane name", names)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"{what}s must be unique; repeated: {twice}")
        covered = [c for s in self.stages for c in s.covers]
        twice = sorted({c for c in covered if covered.count(c) > 1})
        if twice:
            raise ValueError(f"a CRM stage can be covered by one journey stage only; covered twice: {twice}")
        text_lanes = {lane.name for lane in self.lanes if lane.kind == "text"}
        for lane, row in self.cells.items():
            if lane not in text_lanes:
                raise ValueError(f"`cells` has lane {lane!r}, which is not a text lane of this journey "
                                 f"(text lanes: {sorted(text_lanes)})")
            unknown = sorted(set(row) - set(labels))
            if unknown:
                raise ValueError(f"`cells.{lane}` has stage(s) {unknown} that are not stage labels ({labels})")
        return self

    # --- reading ------------------------------------------------------------------------

    def stage_labels(self) -> list[str]:
        return [s.label for s in self.stages]

    def lane(self, name: str) -> Lane:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise JourneyError(f"No lane {name!r}. " + fixes(f"use one of {[lane.name for lane in self.lanes]}"))

    def cell(self, lane: str, stage: str) -> str:
        """The text of a text lane's cell ('' when empty)."""
        return self.cells.get(lane, {}).get(stage, "")

    def stage_index(self, label: str) -> int:
        labels = self.stage_labels()
        if label not in labels:
            raise JourneyError(f"No stage {label!r}. " + fixes(f"use one of {labels}"))
        return labels.index(label)

    def for_persona(self, persona: Persona) -> "Journey":
        """A copy for another persona: same stages and lanes, no text yet."""
        return self.model_copy(update={"persona": persona.model_copy(), "cells": {}}, deep=True)

    # --- editing (each returns None and leaves a valid journey) ---------------------------

    def set_cell(self, lane: str, stage: str, text: str) -> None:
        """Write a text cell; an empty text clears it."""
        if self.lane(lane).kind != "text":
            raise JourneyError(f"Lane {lane!r} is computed from the data; its cells cannot be typed. "
                               + fixes("edit a text lane", "add a text lane for notes"))
        self.stage_index(stage)
        row = dict(self.cells.get(lane, {}))
        if text:
            row[stage] = text
        else:
            row.pop(stage, None)
        self.cells = {**self.cells, lane: row}

    def rename_stage(self, old: str, new: str) -> None:
        """Give a stage a new label; its cells follow."""
        i = self.stage_index(old)
        new = new.strip()
        if new == old:
            return
        if not new or new in self.stage_labels():
            raise JourneyError(f"Cannot rename stage {old!r} to {new!r}: "
                               + ("the label is empty." if not new else "another stage has that label.")
                               + " " + fixes("choose another label"))
        stages = [s.model_copy() for s in self.stages]
        stages[i] = stages[i].model_copy(update={"label": new})
        cells = {lane: {(new if k == old else k): v for k, v in row.items()} for lane, row in self.cells.items()}
        self._replace(stages=stages, cells=cells)

    def merge_stages(self, label: str) -> None:
        """Merge a stage with the next one: CRM stages and cell texts are joined, the first label kept."""
        i = self.stage_index(label)
        if i + 1 >= len(self.stages):
            raise JourneyError(f"Stage {label!r} is the last one: there is no next stage to merge it with. "
                               + fixes("merge the stage before it instead"))
        a, b = self.stages[i], self.stages[i + 1]
        merged = JourneyStage(label=a.label, covers=a.covers + b.covers,
                              description="\n".join(t for t in (a.description, b.description) if t))
        cells = {}
        for lane, row in self.cells.items():
            row = dict(row)
            texts = [t for t in (row.pop(a.label, ""), row.pop(b.label, "")) if t]
            if texts:
                row[a.label] = "\n".join(texts)
            cells[lane] = row
        self._replace(stages=self.stages[:i] + [merged] + self.stages[i + 2:], cells=cells)

    def split_stage(self, label: str, new_label: str | None = None) -> None:
        """Split a stage covering several CRM stages: its last CRM stage becomes a stage of its own."""
        i = self.stage_index(label)
        stage = self.stages[i]
        if len(stage.covers) < 2:
            raise JourneyError(f"Stage {label!r} covers {len(stage.covers)} CRM stage(s): nothing to split. "
                               + fixes("split a stage that covers two or more CRM stages"))
        new_label = new_label or stage.covers[-1]
        if new_label in self.stage_labels():
            raise JourneyError(f"Cannot split off {new_label!r}: a stage has that label. " + fixes("pass `new_label`"))
        first = stage.model_copy(update={"covers": stage.covers[:-1]})
        second = JourneyStage(label=new_label, covers=stage.covers[-1:])
        self._replace(stages=self.stages[:i] + [first, second] + self.stages[i + 1:])

    def add_lane(self, name: str, kind: str = "text", *, metric: str | None = None,
                 suggest: str | None = None, position: int | None = None) -> None:
        """Add a lane (at the bottom unless ``position`` is given)."""
        try:
            lane = Lane(name=name.strip(), kind=kind, metric=metric, suggest=suggest)
        except ValidationError as exc:
            raise JourneyError(f"Cannot add lane {name!r}: {_messages(exc)}") from None
        lanes = list(self.lanes)
        lanes.insert(len(lanes) if position is None else position, lane)
        self._replace(lanes=lanes)

    def remove_lane(self, name: str) -> None:
        """Remove a lane and its cells."""
        self.lane(name)
        if len(self.lanes) == 1:
            raise JourneyError("A journey needs at least one lane. " + fixes("add another lane first"))
        self._replace(lanes=[lane for lane in self.lanes if lane.name != name],
                      cells={k: v for k, v in self.cells.items() if k != name})

    def rename_lane(self, old: str, new: str) -> None:
        """Give a lane a new name; its cells follow."""
        lane = self.lane(old)
        new = new.strip()
        if new == old:
            return
        if not new or new in [item.name for item in self.lanes]:
            raise JourneyError(f"Cannot rename lane {old!r} to {new!r}: "
                               + ("the name is empty." if not new else "another lane has that name.")
                               + " " + fixes("choose another name"))
        lanes = [item.model_copy(update={"name": new}) if item is lane else item for item in self.lanes]
        cells = {(new if k == old else k): v for k, v in self.cells.items()}
        self._replace(lanes=lanes, cells=cells)

    def move_lane(self, name: str, offset: int) -> None:
        """Move a lane up (negative ``offset``) or down, stopping at the edges."""
        names = [lane.name for lane in self.lanes]
        i = names.index(self.lane(name).name)
        j = int(np.clip(i + offset, 0, len(names) - 1))
        lanes = list(self.lanes)
        lanes.insert(j, lanes.pop(i))
        self._replace(lanes=lanes)

    def _replace(self, **fields) -> None:
        """Set several fields at once and validate the result as a whole."""
        data = self.model_dump()
        data.update({k: [v.model_dump() if isinstance(v, BaseModel) else v for v in value]
                     if isinstance(value, list) else value for k, value in fields.items()})
        try:
            checked = Journey.model_validate(data)
        except ValidationError as exc:
            raise JourneyError(f"That edit would leave the journey invalid: {_messages(exc)}") from None
        for name in type(self).model_fields:
            object.__setattr__(self, name, getattr(checked, name))

    # --- files ------------------------------------------------------------------------

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(exclude_defaults=False), sort_keys=False, allow_unicode=True, width=100)

    def save(self, path: str | Path) -> Path:
        """Write the journey as YAML (atomically: a temporary file moved into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)
        return path


def _messages(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"`{loc or '(top level)'}`: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(dict.fromkeys(parts))


def load_journey(path: str | Path) -> Journey:
    """Read a journey (or a template) from YAML, with every problem named at once."""
    path = Path(path)
    raw = read_yaml_mapping(path, "stages", str(TEMPLATES / "b2b.yaml"))
    try:
        return Journey.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  - {m}" for m in _messages(exc).split("; ")]
        raise JourneyError(f"`{path}` is not a valid journey grid ({len(lines)} problem(s)):\n" + "\n".join(lines)
                           + "\n" + fixes("fix the keys named above", f"compare with {TEMPLATES / 'b2b.yaml'}")) from None


def template(name: str = "b2b") -> Journey:
    """A default grid from ``templates/journeys/<name>.yaml`` (``b2b`` or ``b2c``)."""
    path = TEMPLATES / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in TEMPLATES.glob("*.yaml"))
        raise JourneyError(f"No journey template {name!r}. " + fixes(f"use one of {known}",
                                                                     "pass a path to `load_journey`"))
    return load_journey(path)


# --- fitting a journey to a dataset ---------------------------------------------------------

def all_deals(dataset: Dataset) -> Persona:
    """The persona of every deal in ``dataset`` (no filter)."""
    return Persona(name=OVERALL, description=f"All {len(dataset.deals):,} deals in the data.")


def fit_to_dataset(journey: Journey, dataset: Dataset) -> Journey:
    """The journey laid over the dataset: stages covering its open stages, and a persona
    without a filter (a template's placeholder) read as `all_deals`. Text is kept.

    When no stage names ``covers`` (a template), the dataset's stages are shared out in
    order: one each while there are enough labels (spare labels are dropped), otherwise
    contiguous groups as even as possible, earlier groups taking the extra. When covers
    are given they are checked with `check_covers`.
    """
    persona = journey.persona if journey.persona.filter else all_deals(dataset)
    if any(s.covers for s in journey.stages):
        check_covers(journey, dataset)
        return journey.model_copy(update={"persona": persona}, deep=True)
    crm = list(dataset.stages)
    if not crm:
        raise JourneyError("The dataset declares no stages, so a journey cannot be laid over it. "
                           + fixes("list `stages` in dataset.yaml"))
    n = min(len(journey.stages), len(crm))
    groups = [list(g) for g in np.array_split(np.asarray(crm, dtype=object), n)]
    stages = [s.model_copy(update={"covers": [str(c) for c in g]}) for s, g in zip(journey.stages, groups)]
    kept = {s.label for s in stages}
    cells = {lane: {k: v for k, v in row.items() if k in kept} for lane, row in journey.cells.items()}
    return Journey.model_validate({**journey.model_dump(), "persona": persona.model_dump(),
                                   "stages": [s.model_dump() for s in stages], "cells": cells})


def check_covers(journey: Journey, dataset: Dataset) -> None:
    """Raise `JourneyError` unless the journey's stages cover every open stage of the
    dataset, each once, in process order."""
    crm = list(dataset.stages)
    covered = [c for s in journey.stages for c in s.covers]
    unknown = [c for c in covered if c not in crm]
    missing = [c for c in crm if c not in covered]
    problems = []
    if unknown:
        problems.append(f"covers stage(s) the data does not have: {unknown} (its stages: {crm})")
    if missing:
        problems.append(f"leaves CRM stage(s) {missing} uncovered")
    if not problems and covered != crm:
        problems.append(f"covers the CRM stages out of process order: {covered} (process order: {crm})")
    empty = [s.label for s in journey.stages if not s.covers]
    if empty:
        problems.append(f"has stage(s) covering no CRM stage: {empty}")
    if problems:
        raise JourneyError(f"Journey {journey.persona.name!r} " + "; ".join(problems) + ". "
                           + fixes("list every CRM stage under exactly one journey stage's `covers`, in order",
                                   "leave `covers` out everywhere to share the stages out automatically"))
