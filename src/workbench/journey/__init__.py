"""Journey grids (`notebooks/journey_grid.ipynb`): the grid model and templates (model), prefill from
the data (facts), cells, HTML and Markdown (render), files (export), the ipywidgets builder (builder)."""
from .export import export
from .facts import journey_facts, own_facts, persona_facts, personas_from_data
from .model import Journey, JourneyError, Persona, fit_to_dataset, load_journey, template
from .render import compare_personas, prefill, to_html, to_markdown

__all__ = ["export", "journey_facts", "own_facts", "persona_facts", "personas_from_data", "Journey", "JourneyError",
           "Persona", "fit_to_dataset", "load_journey", "template", "compare_personas", "prefill", "to_html",
           "to_markdown"]
