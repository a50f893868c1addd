"""Journey grids rendered and exported: every format says what `grid` says; suggestions come from the
facts; persona comparisons flag the sample's true differences and not its null ones."""
import warnings
from html import escape
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.image import imread
from openpyxl import load_workbook

from workbench.cycle.times import OVERALL
from workbench.findings import percent
from workbench.journey.model import JourneyError, Persona, fit_to_dataset, template
from workbench.journey.export import export
from workbench.journey.facts import journey_facts
from workbench.journey.render import compare_personas, grid, persona_grids_html, prefill, to_html, to_markdown
from workbench.dataset.sample import generate


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = generate(n_deals=8_000, seed="journey-render", truth_deals=1_000).dataset()
    journey = fit_to_dataset(template("b2b"), ds)
    return ds, journey, journey_facts(ds, journey, "persona")


@pytest.fixture
def procurement(sample):
    _, journey, facts = sample
    return prefill(journey.for_persona(Persona(name="Procurement", filter={"persona": "Procurement"})), facts,
                   "Procurement"), facts


def test_data_cells_are_written_from_the_facts(sample):
    """The deals lane states reach and conversion with its interval; the days lane the median; shares are the facts'."""
    _, journey, facts = sample
    cells = grid(journey, facts, "Procurement")
    first = journey.stage_labels()[0]
    row = facts.stage("Procurement", first)
    assert f"{row['reached']:,} deals reached" in cells.loc["Deals and conversion", first]
    assert (f"{percent(row['conversion'])} go on to {row['next']} ({percent(row['conversion_low'])}–"
            f"{percent(row['conversion_high'])})") in cells.loc["Deals and conversion", first]
    assert f"median {row['median_days']:.0f} days" in cells.loc["Time in stage", first]
    top = facts.top("Procurement", first, "channel").iloc[0]
    assert f"{top['label']} {percent(top['share'])}" in cells.loc["Touchpoints", first]
    assert cells.loc["What they do", first] == ""  # text lanes are empty until prefilled or typed


def test_prefill_suggests_from_the_data_and_never_overwrites_typed_text(sample):
    """Suggested lanes get text naming the top objection and touch kind; a typed cell stays as typed."""
    _, journey, facts = sample
    stage = journey.stage_labels()[2]
    typed = journey.for_persona(Persona(name="Procurement"))
    typed.set_cell("Objections", stage, "Our own words")
    filled = prefill(typed, facts, "Procurement")
    assert filled.cell("Objections", stage) == "Our own words"
    other = journey.stage_labels()[3]
    top = facts.top("Procurement", other, "objection").iloc[0]
    assert f"“{top['label']}” ({percent(top['share'])})" in filled.cell("Objections", other)
    kind = facts.top("Procurement", other, "kind").iloc[0]["label"]
    assert filled.cell("What they do", other).startswith(f"Mostly {kind}s")
    assert f"About {percent(facts.stage('Procurement', other)['drop_off'])} drop out here" in \
        filled.cell("Thoughts and feelings", other)
    assert typed.cell("Objections", other) == ""  # prefill returns a copy


def test_html_escapes_what_is_typed_and_loads_nothing(procurement):
    """Typed markup is shown, not run; the standalone page has no scripts and no external resources."""
    journey, facts = procurement
    stage = journey.stage_labels()[0]
    journey.set_cell("What they do", stage, '<script>alert("x")</script> & more')
    page = to_html(journey, facts, "Procurement", standalone=True)
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.replace('lang="en"', "")
    assert page.count('class="wb-data') == 5 * 5 and page.count('class="wb-text') == 3 * 5


def test_every_export_says_what_the_grid_says(procurement, tmp_path):
    """HTML, XLSX, Markdown, SVG and PNG: each written, readable back, with the grid's texts or a real image."""
    journey, facts = procurement
    cells = grid(journey, facts, "Procurement")
    html = export(journey, facts, tmp_path / "g.html", "Procurement").read_text()
    for text in cells.to_numpy().ravel():
        assert escape(text.split("\n")[0]) in html
    sheet = load_workbook(export(journey, facts, tmp_path / "g.xlsx", "Procurement")).active
    header = 5
    assert [sheet.cell(header, j).value.split("\n")[0] for j in range(2, 7)] == journey.stage_labels()
    for i, lane in enumerate(journey.lanes, start=header + 1):
        assert sheet.cell(i, 1).value == lane.name
        assert [sheet.cell(i, j).value or "" for j in range(2, 7)] == cells.loc[lane.name].tolist()
    markdown = export(journey, facts, tmp_path / "g.md", "Procurement").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| **")]
    assert len(rows) == len(journey.lanes) and rows[0].count(" | ") == len(journey.stages)
    svg = ET.parse(export(journey, facts, tmp_path / "g.svg", "Procurement")).getroot()
    texts = " ".join(t for t in svg.itertext())
    assert all(lane.name.split()[0] in texts for lane in journey.lanes)
    image = imread(export(journey, facts, tmp_path / "g.png", "Procurement"))
    assert image.shape[0] > 600 and image.shape[1] > 1500 and np.unique(image.reshape(-1, image.shape[-1]), axis=0).shape[0] > 20
    assert not list(tmp_path.glob(".*"))  # temporary names moved into place
    with pytest.raises(JourneyError, match=r"\.html, \.xlsx"):
        export(journey, facts, tmp_path / "g.docx")


def test_markdown_keeps_cells_with_pipes_and_line_breaks_in_one_row(procurement):
    """A pipe is escaped and a line break becomes <br>, so each lane stays one table row."""
    journey, facts = procurement
    journey.set_cell("Objections", journey.stage_labels()[0], "a | b\nc")
    text = to_markdown(journey, facts, "Procurement")
    assert "a \\| b<br>c" in text


def test_comparison_flags_true_differences_and_not_null_ones(sample):
    """Procurement vs Executive sponsor (true effects -0.35 vs +0.40 on advancing, dwell x1.30 vs x0.85):
    conversion and days differ at most stages; two regions (no true effect) differ nowhere."""
    ds, journey, facts = sample
    diff = compare_personas(facts, "Procurement", "Executive sponsor")
    assert diff.table["conversion_differs"].sum() >= 3 and (diff.table["difference"] < 0).all()
    assert diff.table["days_differ"].sum() >= 3
    assert any("points lower than Executive sponsor" in s for s in diff.sentences())
    highlighted = diff.highlight(journey)
    assert ("Deals and conversion", journey.stage_labels()[0]) in highlighted
    regions = journey_facts(ds, journey, "region")
    a, b = [p for p in regions.personas if p != OVERALL][:2]
    null = compare_personas(regions, a, b)
    assert not null.table["conversion_differs"].any()
    assert null.sentences() == [f"No stage differs between {a} and {b} beyond chance (level 0.05)."]


def test_persona_grids_follow_the_structure_of_the_journey(sample):
    """One grid per persona asked for, each with the journey's stages; an empty mapping gives a sentence."""
    _, journey, facts = sample
    page = persona_grids_html(journey, facts)
    assert page.count('<div class="wb-journey"') == len(facts.personas) - 1
    none = persona_grids_html(journey, facts, {})
    assert "wb-journey\"" not in none and "No grid per persona" in none
    one = persona_grids_html(journey, facts, {"Procurement": Persona(name="Procurement", description="Buyers")})
    assert one.count('<div class="wb-journey"') == 1 and "Buyers" in one
