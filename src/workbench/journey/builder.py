"""The journey grid builder: ipywidgets wired to `workbench.journey` and its helpers.

No analysis or rendering happens here. The builder keeps one `Journey` per persona; stage
and lane edits apply to all of them (so personas stay comparable side by side), text
cells belong to one persona. Facts for every persona of the data are computed in one
pass when the builder starts (and again only when stages are merged or split), so
switching persona is a lookup and a render.
"""
from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path

import ipywidgets as w
import pandas as pd

from ..dataset.groups import OVERALL
from ..dataset.model import Dataset
from ..exceptions import WorkbenchError
from ..markup import slugify
from .export import FORMATS, export
from .facts import JourneyFacts, journey_facts, persona_facts, personas_from_data
from .model import DATA_METRICS, TEXT_ONLY_METRICS, Journey, Persona, all_deals, fit_to_dataset, template
from .render import compare_personas, prefill, suggestion, to_html

NONE = "—"
LANE_KINDS = ["text"] + [f"text, suggest: {m}" for m in DATA_METRICS] + \
    [f"data: {m}" for m in DATA_METRICS if m not in TEXT_ONLY_METRICS]


def parse_filter(text: str) -> dict[str, list[str]]:
    """``"channel=Referral,Partner; region=EMEA"`` -> ``{"channel": ["Referral", "Partner"], ...}``."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        column, sep, values = part.partition("=")
        if not sep or not column.strip() or not values.strip():
            raise WorkbenchError(f"Cannot read the filter part {part!r}. Try 1) write `column=value` or "
                                 "`column=value1,value2`, parts separated by `;`")
        out[column.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return out


def default_path(persona: str) -> str:
    """Where the builder saves a persona's journey unless told otherwise: `journeys/<persona>/journey.yaml`
    beside the notebook (a folder git ignores: the shipped notebooks' folder stays clean)."""
    return f"journeys/{slugify(persona, empty='persona')}/journey.yaml"


class JourneyBuilder:
    """Edit journey grids per persona and see them re-render as you type.

    Parameters
    ----------
    dataset : Dataset
    journey : Journey, optional
        The starting grid (default: the ``b2b`` template), laid over the dataset's stages. A saved
        journey opens on its persona with its text (a persona defined by a filter is added).
    persona_column : str, optional
        The deal column whose levels are the personas offered (``None``: all deals only).
    min_deals : int
        Levels with fewer deals are not offered (their deals still count in All deals).
    brand : str
        Colour of the stage headers.

    Attributes
    ----------
    persona, compare : Dropdown
        The persona shown, and an optional second one to show beside it.
    stage_labels, lane_names : list of Text
        One per stage and lane; a new value renames it (on Enter or leaving the box).
    cell_inputs : dict of (lane, stage) -> Textarea
        The text cells of the persona shown; typing re-renders the grid.
    preview : HTML
        The rendered grid (two grids and their differences when comparing).
    status : HTML
        The last message: what was saved, or what went wrong.
    """

    def __init__(self, dataset: Dataset, journey: Journey | None = None, persona_column: str | None = "persona",
                 *, min_deals: int = 30, brand: str = "#1f4e79"):
        self.dataset = dataset
        self.brand = brand
        self.min_deals = min_deals
        self.persona_column = persona_column if persona_column in dataset.deals else None
        layout = fit_to_dataset(journey or template("b2b"), dataset)
        everyone = all_deals(dataset)
        offered = personas_from_data(dataset, self.persona_column, min_deals=min_deals) if self.persona_column else []
        self.personas: dict[str, Persona] = {p.name: p for p in [everyone, *offered]}
        self.layout = layout.for_persona(everyone)
        self.journeys: dict[str, Journey] = {}
        self._custom: dict[str, Persona] = {}
        self._facts_by_layout: dict[tuple, JourneyFacts] = {}
        own = layout.persona
        if own.filter and own.name not in self.personas:  # a saved journey of a persona defined by filter
            self._custom[own.name] = own
            self.personas[own.name] = own
        self.facts = self._compute_facts()
        if journey is not None and own.name in self.personas:  # keep its text; prefill only empty cells
            self.journeys[own.name] = prefill(layout, self.facts, own.name)
        self._build_widgets()
        if own.name in self.personas:
            self.persona.value = own.name
        self._show()

    # --- state ----------------------------------------------------------------------------

    def _compute_facts(self) -> JourneyFacts:
        """Facts for the current stage layout: computed, or taken from an earlier layout with the
        same CRM stages under each stage (undoing a merge costs nothing), relabelled."""
        key = (tuple(tuple(s.covers) for s in self.layout.stages), tuple(self._custom))
        hit = self._facts_by_layout.get(key)
        if hit is None:
            hit = journey_facts(self.dataset, self.layout, self.persona_column, min_deals=self.min_deals)
            for persona in self._custom.values():
                hit = _merged(hit, persona_facts(self.dataset, self.layout, persona, min_deals=self.min_deals))
            self._facts_by_layout[key] = hit
        return _renamed(hit, dict(zip(hit.stage_labels, self.layout.stage_labels())))

    def journey(self, name: str | None = None) -> Journey:
        """The journey of a persona (default: the one shown), prefilled on first use."""
        name = name or self.persona.value
        if name not in self.journeys:
            self.journeys[name] = prefill(self.layout.for_persona(self.personas[name]), self.facts, name)
        return self.journeys[name]

    def _each(self, method: str, *args, **kwargs) -> None:
        """Apply a structural edit to the layout and to every persona's journey."""
        for journey in [self.layout, *self.journeys.values()]:
            getattr(journey, method)(*args, **kwargs)

    # --- widgets -----------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.persona = w.Dropdown(options=list(self.personas), value=OVERALL, description="Persona")
        self.compare = w.Dropdown(options=[NONE, *self.personas], value=NONE, description="Compare with")
        self.persona.observe(lambda change: self._persona_changed(change), "value")
        self.compare.observe(lambda _: self._render(), "value")
        self.new_persona_name = w.Text(placeholder="name, e.g. EMEA referrals", description="New persona")
        self.new_persona_filter = w.Text(placeholder="region=EMEA; channel=Referral,Partner", description="Filter")
        self.add_persona_button = w.Button(description="Add persona")
        self.add_persona_button.on_click(lambda _: self._guard(self.add_persona))
        self.new_lane_name = w.Text(placeholder="lane name", description="New lane")
        self.new_lane_kind = w.Dropdown(options=LANE_KINDS, value="text", description="Kind")
        self.add_lane_button = w.Button(description="Add lane")
        self.add_lane_button.on_click(lambda _: self._guard(self.add_lane))
        self.save_path = w.Text(value=default_path(OVERALL), description="Save to")
        self.save_button = w.Button(description="Save YAML", button_style="primary")
        self.save_button.on_click(lambda _: self._guard(self.save))
        self.export_format = w.Dropdown(options=[f for f in FORMATS if f != ".yaml"], value=".html", description="Export")
        self.export_button = w.Button(description="Export grid")
        self.export_button.on_click(lambda _: self._guard(self.export))
        self.stage_box, self.lane_box, self.cell_box = w.VBox(), w.VBox(), w.GridBox()
        self.preview = w.HTML()
        self.status = w.HTML()
        tabs = w.Tab(children=[
            self.cell_box,
            self.stage_box,
            w.VBox([self.lane_box, w.HBox([self.new_lane_name, self.new_lane_kind, self.add_lane_button])]),
            w.VBox([self.new_persona_name, self.new_persona_filter, self.add_persona_button]),
            w.VBox([w.HBox([self.save_path, self.save_button]), w.HBox([self.export_format, self.export_button])]),
        ])
        for i, title in enumerate(["Cells", "Stages", "Lanes", "Personas", "Save and export"]):
            tabs.set_title(i, title)
        self.ui = w.VBox([w.HBox([self.persona, self.compare]), tabs, self.status, self.preview])

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    def _editors(self) -> None:
        """(Re)build the stage, lane and cell editors for the current layout and persona."""
        journey = self.journey()
        self.stage_labels, rows = [], []
        for stage in journey.stages:
            label = w.Text(value=stage.label, continuous_update=False, layout=w.Layout(width="16em"))
            label.observe(self._on_stage_label(stage.label), "value")
            merge = w.Button(description="merge with next", disabled=stage is journey.stages[-1])
            merge.on_click(self._clicked("merge_stages", stage.label))
            split = w.Button(description="split", disabled=len(stage.covers) < 2)
            split.on_click(self._clicked("split_stage", stage.label))
            self.stage_labels.append(label)
            rows.append(w.HBox([label, w.Label(", ".join(stage.covers), layout=w.Layout(width="14em")), merge, split]))
        self.stage_box.children = rows
        self.lane_names, rows = [], []
        for lane in journey.lanes:
            name = w.Text(value=lane.name, continuous_update=False, layout=w.Layout(width="16em"))
            name.observe(self._on_lane_name(lane.name), "value")
            kind = lane.kind + (f": {lane.metric}" if lane.metric else "") + (f", suggest: {lane.suggest}" if lane.suggest else "")
            buttons = []
            for text, method, arg in (("↑", "move_lane", -1), ("↓", "move_lane", 1), ("remove", "remove_lane", None)):
                b = w.Button(description=text, layout=w.Layout(width="5em" if text != "remove" else "7em"))
                b.on_click(self._clicked(method, lane.name, *([] if arg is None else [arg])))
                buttons.append(b)
            self.lane_names.append(name)
            rows.append(w.HBox([name, w.Label(kind, layout=w.Layout(width="14em")), *buttons]))
        self.lane_box.children = rows
        self.cell_inputs = {}
        text_lanes = [lane.name for lane in journey.lanes if lane.kind == "text"]
        labels = journey.stage_labels()
        items = [w.HTML("")] + [w.HTML(f"<b>{html.escape(s)}</b>") for s in labels]
        for lane in text_lanes:
            items.append(w.HTML(f"<b>{html.escape(lane)}</b>"))
            for stage in labels:
                box = w.Textarea(value=journey.cell(lane, stage), continuous_update=True,
                                 layout=w.Layout(width="auto", height="7em"))
                box.observe(self._on_cell(lane, stage), "value")
                self.cell_inputs[(lane, stage)] = box
                items.append(box)
        self.cell_box.children = items
        self.cell_box.layout = w.Layout(grid_template_columns=f"10em repeat({len(labels)}, 1fr)", grid_gap="4px")

    # --- callbacks ---------------------------------------------------------------------------

    def _guard(self, action, *args) -> None:
        """Run a user action; show a `WorkbenchError` in ``status`` instead of raising it."""
        try:
            action(*args)
        except WorkbenchError as exc:
            self._show()  # editors back to the journey as it is
            self.status.value = f'<span style="color:#b00020">{html.escape(str(exc))}</span>'

    def _clicked(self, method: str, *args):
        return lambda _: self._guard(self.edit, method, *args)

    def _on_stage_label(self, old: str):
        return lambda change: self._guard(self.edit, "rename_stage", old, change["new"])

    def _on_lane_name(self, old: str):
        return lambda change: self._guard(self.edit, "rename_lane", old, change["new"])

    def _on_cell(self, lane: str, stage: str):
        def typed(change):
            self.journey().set_cell(lane, stage, change["new"])
            self._render()
        return typed

    # --- actions (also called directly from code and tests) -------------------------------------

    def edit(self, method: str, *args, **kwargs) -> None:
        """A structural edit for every persona: ``rename_stage``, ``merge_stages``, ``split_stage``,
        ``rename_lane``, ``move_lane``, ``remove_lane``, ``add_lane``."""
        before = [s.covers for s in self.layout.stages]
        regroups = method in ("merge_stages", "split_stage")
        if regroups:
            self._drop_untouched_suggestions()  # they describe the old stages
        self._each(method, *args, **kwargs)
        if method == "rename_stage":
            self.facts = _renamed(self.facts, {args[0]: args[1]})
        if [s.covers for s in self.layout.stages] != before:
            self.facts = self._compute_facts()
        if regroups:
            self.journeys = {name: prefill(j, self.facts, name) for name, j in self.journeys.items()}
        self.status.value = ""
        self._show()

    def _drop_untouched_suggestions(self) -> None:
        """Clear the text cells that still hold exactly their suggestion (typed text stays)."""
        for name, journey in self.journeys.items():
            for lane in journey.lanes:
                if lane.kind != "text" or lane.suggest is None:
                    continue
                for stage in journey.stage_labels():
                    text = journey.cell(lane.name, stage)
                    if text and text == suggestion(self.facts, name, stage, lane.suggest):
                        journey.set_cell(lane.name, stage, "")

    def add_lane(self) -> None:
        """Add the lane named in ``new_lane_name`` with the kind in ``new_lane_kind``."""
        kind = self.new_lane_kind.value
        if kind.startswith("data: "):
            self.edit("add_lane", self.new_lane_name.value, "data", metric=kind.removeprefix("data: "))
        else:
            suggest = kind.removeprefix("text, suggest: ") if "suggest" in kind else None
            self.edit("add_lane", self.new_lane_name.value, "text", suggest=suggest)
            if suggest:  # fill the new lane's suggestions for journeys already started
                for name, journey in self.journeys.items():
                    self.journeys[name] = prefill(journey, self.facts, name)
                self._show()
        self.new_lane_name.value = ""

    def add_persona(self) -> None:
        """Add a persona defined by a deal filter (``new_persona_name``, ``new_persona_filter``)."""
        name = self.new_persona_name.value.strip()
        if not name or name in self.personas:
            raise WorkbenchError(f"A new persona needs a name not yet taken (taken: {list(self.personas)}).")
        persona = Persona(name=name, description=f"Deals with {self.new_persona_filter.value.strip()}.",
                          filter=_typed(parse_filter(self.new_persona_filter.value), self.dataset))
        self.facts = _merged(self.facts, persona_facts(self.dataset, self.layout, persona, min_deals=self.min_deals))
        self._custom[name] = persona
        self.personas[name] = persona
        self.persona.options = list(self.personas)
        self.compare.options = [NONE, *self.personas]
        self.persona.value = name
        self.status.value = f"Added persona {html.escape(name)}."

    def save(self, path: str | Path | None = None) -> Path:
        """Save the shown persona's journey as YAML (to ``save_path`` unless ``path`` is given)."""
        out = self.journey().save(path or self.save_path.value)
        self.status.value = f"Saved {html.escape(str(out))}."
        return out

    def export(self, path: str | Path | None = None) -> Path:
        """Export the shown grid; the format follows the suffix (default: ``save_path`` with the chosen format)."""
        path = Path(path or Path(self.save_path.value).with_suffix(self.export_format.value))
        out = export(self.journey(), self.facts, path, self.persona.value, brand=self.brand)
        self.status.value = f"Exported {html.escape(str(out))}."
        return out

    # --- drawing -----------------------------------------------------------------------------

    def _show(self) -> None:
        self._editors()
        self._render()

    def _persona_changed(self, change) -> None:
        """Show the persona; a save path still at the last persona's default follows the new one."""
        if self.save_path.value == default_path(change["old"]):
            self.save_path.value = default_path(change["new"])
        self._show()

    def _render(self) -> None:
        name, other = self.persona.value, self.compare.value
        if other == NONE or other == name:
            self.preview.value = to_html(self.journey(name), self.facts, name, brand=self.brand)
            return
        comparison = compare_personas(self.facts, name, other)
        grids = "".join(
            f'<div style="flex:1;min-width:0">{to_html(self.journey(p), self.facts, p, brand=self.brand, highlight=comparison.highlight(self.journey(p)))}</div>'
            for p in (name, other))
        sentences = "".join(f"<li>{html.escape(s)}</li>" for s in comparison.sentences())
        self.preview.value = (f'<div class="wb-compare"><ul>{sentences}</ul>'
                              f'<div style="display:flex;gap:1em">{grids}</div></div>')


def _typed(spec: dict[str, list[str]], dataset: Dataset) -> dict[str, list]:
    """Filter values as numbers where the deal column is numeric (typed text is always a string)."""
    out = {}
    for column, values in spec.items():
        if column in dataset.deals and pd.api.types.is_numeric_dtype(dataset.deals[column]):
            try:
                values = pd.to_numeric(pd.Series(values)).tolist()  # plain Python numbers
            except ValueError:
                raise WorkbenchError(f"`{column}` holds numbers; cannot read {values} as numbers.") from None
        out[column] = values
    return out


def _merged(facts: JourneyFacts, extra: JourneyFacts) -> JourneyFacts:
    """``facts`` with another persona's facts added (replacing one of the same name)."""
    name = extra.personas[0]

    def join(a, b):
        return pd.concat([a[a["persona"] != name], b], ignore_index=True)

    return replace(facts, stages=join(facts.stages, extra.stages), items=join(facts.items, extra.items),
                   sentiment=join(facts.sentiment, extra.sentiment),
                   personas=[p for p in facts.personas if p != name] + [name], notes=facts.notes + extra.notes)


def _renamed(facts: JourneyFacts, labels: dict[str, str]) -> JourneyFacts:
    """``facts`` with stage labels renamed all at once (no recomputation: the numbers do not change)."""
    labels = {old: new for old, new in labels.items() if old != new}
    if not labels:
        return facts

    def rename(frame, columns=("stage",)):
        return frame.assign(**{c: frame[c].replace(labels) for c in columns if c in frame})

    return replace(facts, stages=rename(facts.stages, ("stage", "next")), items=rename(facts.items),
                   sentiment=rename(facts.sentiment), stage_labels=[labels.get(s, s) for s in facts.stage_labels])
