"""The sections of `notebooks/journey_grid.ipynb`: the journey grid of all deals here and one per
persona, and the interactive builder (left out of reports)."""
from __future__ import annotations

from .. import findings
from . import needs
from ..dataset.groups import OVERALL
from .base import Section, escape, section


@section("The journey", needs=(needs.dates, needs.stage_history))
def journey(out: Section, settings, journey_template: str = "b2b", journey_path: str = ""):
    """The grid of the journey's persona, prefilled from the data; returns (journey, facts)."""
    from ..journey.facts import journey_facts, own_facts
    from ..journey.model import fit_to_dataset, load_journey, template
    from ..journey.render import prefill, to_html

    dataset = settings.dataset
    fitted = fit_to_dataset(load_journey(journey_path) if journey_path else template(journey_template), dataset)
    facts = journey_facts(dataset, fitted, settings.persona_column, min_deals=settings.min_deals)
    own = own_facts(dataset, fitted, min_deals=settings.min_deals)
    out.text("The grid of the journey's persona: every deal here, unless a saved journey (`journey_path`) names a "
             "persona filter. Conversion: of the deals that reached a stage, the share that eventually reach the next "
             "one or beyond; deals still open count as still in play, not as lost.")
    # The journey's own persona is every deal here: in a segment's report, the segment's deals.
    out.html(to_html(prefill(fitted, own, own.personas[0]), own).replace(OVERALL, escape(settings.everyone)))
    out.sentences([findings.journey_line(own, own.personas[0], settings.everyone)], key=True)
    return fitted, facts


@section("Per persona", builds_on="The journey")
def per_persona(out: Section, settings, built):
    """The same grid for each persona with enough deals of its own."""
    from ..journey.facts import personas_from_data
    from ..journey.render import persona_grids_html

    fitted, facts = built
    column = settings.persona_column
    if column is None:
        out.text("The deals have no persona column (`persona_column`), so there is one grid only.")
        return None
    personas = {p.name: p for p in personas_from_data(settings.dataset, column, min_deals=settings.min_deals)}
    if len(personas) < 2:
        out.text(f"The deals here are one `{column}` (or only one has {settings.min_deals} deals or more), so the "
                 "grid above is the only one.")
        return personas
    out.text("The same grid for each persona with enough deals of its own.")
    out.sentences(findings.persona_findings(facts), key=1)
    out.html(persona_grids_html(fitted, facts, personas))
    return personas


def builder(settings, built):
    """The interactive builder on this data, or a sentence saying why there is none."""
    from IPython.display import HTML

    from ..journey.builder import JourneyBuilder
    from ..markup import inline_markdown

    if isinstance(built, Section) and not built.ok:
        return HTML(f"<p>No builder: {inline_markdown(built.reason)}</p>")
    fitted, _ = built.result if isinstance(built, Section) else built
    return JourneyBuilder(settings.dataset, fitted, settings.persona_column, min_deals=settings.min_deals)
