"""The journey builder driven through its widgets' state: values set, buttons clicked, the rendered grid and
the saved YAML checked."""
import warnings

import pandas as pd
import pytest

from workbench.cycle.times import OVERALL
from workbench.journey.model import load_journey
from workbench.journey.facts import journey_facts
from workbench.journey.render import suggestion
from workbench.dataset.sample import generate
from workbench.journey.builder import NONE, JourneyBuilder, parse_filter


@pytest.fixture(scope="module")
def dataset():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=4_000, seed="journey-widgets", truth_deals=1_000).dataset()


@pytest.fixture
def builder(dataset):
    return JourneyBuilder(dataset)


def test_it_starts_on_all_deals_with_every_persona_offered(builder, dataset):
    """Persona options: All deals, then the data's personas; the preview is the All deals grid, prefilled."""
    assert builder.persona.options[0] == OVERALL
    assert set(builder.persona.options[1:]) == set(dataset.deals["persona"].unique())
    assert f"{len(dataset.deals):,} deals reached" in builder.preview.value
    assert all(box.value for box in builder.cell_inputs.values())  # suggestions in every text cell


def test_typing_in_a_cell_re_renders_the_grid_and_is_saved(builder, tmp_path):
    """A typed cell shows in the preview at once and lands in the saved YAML of that persona."""
    builder.persona.value = "Procurement"
    stage = builder.journey().stage_labels()[1]
    builder.cell_inputs[("Thoughts and feelings", stage)].value = "Worried about the contract length"
    assert "Worried about the contract length" in builder.preview.value
    builder.save_path.value = str(tmp_path / "procurement.yaml")
    builder.save_button.click()
    saved = load_journey(tmp_path / "procurement.yaml")
    assert saved == builder.journey("Procurement")
    assert saved.persona.filter == {"persona": "Procurement"}
    assert saved.cell("Thoughts and feelings", stage) == "Worried about the contract length"
    assert "Saved" in builder.status.value


def test_switching_persona_shows_that_personas_numbers_and_keeps_each_ones_text(builder, dataset):
    """The preview follows the persona; text typed for one persona stays with it."""
    builder.persona.value = "Procurement"
    stage = builder.journey().stage_labels()[0]
    builder.cell_inputs[("What they do", stage)].value = "procurement text"
    builder.persona.value = "Executive sponsor"
    n = int((dataset.deals["persona"] == "Executive sponsor").sum())
    assert f"{n:,} deals reached" in builder.preview.value
    assert "procurement text" not in builder.preview.value
    builder.persona.value = "Procurement"
    assert builder.cell_inputs[("What they do", stage)].value == "procurement text"


def test_stage_edits_apply_to_every_persona_and_recompute_merged_numbers(builder, dataset):
    """Renaming keeps numbers; merging recomputes them as `journey_facts` does on the merged layout, keeps
    typed text and replaces untouched suggestions with ones for the merged stage."""
    builder.persona.value = "Procurement"
    builder.stage_labels[0].value = "Spotting a problem"
    assert "Spotting a problem" in builder.preview.value
    assert builder.journey(OVERALL).stage_labels()[0] == "Spotting a problem"
    second = builder.journey().stage_labels()[1]
    builder.cell_inputs[("Objections", second)].value = "Typed by hand"
    first = builder.stage_box.children[0].children[2]  # the "merge with next" button
    first.click()
    merged = builder.journey()
    assert merged.cell("Objections", "Spotting a problem") == "Typed by hand"  # the suggestion above it went
    assert merged.cell("What they do", "Spotting a problem") == suggestion(
        builder.facts, "Procurement", "Spotting a problem", "actions")  # a fresh suggestion, not two joined
    assert [s.covers for s in builder.layout.stages][0] == ["Lead", "Qualified"]
    expected = journey_facts(dataset, builder.layout, "persona").stage("Procurement", "Spotting a problem")
    assert f"{expected['reached']:,} deals reached" in builder.preview.value
    assert builder.facts.stage("Procurement", "Spotting a problem")["conversion"] == expected["conversion"]


def test_lanes_are_added_reordered_and_removed(builder):
    """Add a data lane and a suggested text lane, move one up, remove one: the grid's rows follow."""
    builder.new_lane_name.value = "Pains"
    builder.new_lane_kind.value = "text, suggest: objections"
    builder.add_lane_button.click()
    assert builder.journey().lanes[-1].name == "Pains" and builder.journey().cell("Pains", builder.journey().stage_labels()[0])
    builder.new_lane_name.value = "Roles again"
    builder.new_lane_kind.value = "data: roles"
    builder.add_lane_button.click()
    builder.edit("move_lane", "Roles again", -20)
    assert [lane.name for lane in builder.journey().lanes][0] == "Roles again"
    builder.edit("remove_lane", "Sentiment")
    assert "Sentiment" not in [lane.name for lane in builder.journey(OVERALL).lanes]
    assert "data-lane=\"Sentiment\"" not in builder.preview.value


def test_a_persona_defined_by_a_filter_gets_its_own_numbers(builder, dataset):
    """region=..., channel=...: the deals matching both, and a clear message for a malformed filter."""
    region, channel = dataset.deals["region"].iloc[0], dataset.deals["channel"].iloc[0]
    builder.new_persona_name.value = "Mine"
    builder.new_persona_filter.value = f"region={region}; channel={channel}"
    builder.add_persona_button.click()
    n = int(((dataset.deals["region"] == region) & (dataset.deals["channel"] == channel)).sum())
    assert builder.persona.value == "Mine"
    assert f"{n:,} deals reached" in builder.preview.value
    builder.new_persona_name.value = "Broken"
    builder.new_persona_filter.value = "region"
    builder.add_persona_button.click()
    assert "column=value" in builder.status.value and "Broken" not in builder.persona.options


def test_comparing_two_personas_marks_where_they_differ(builder):
    """Two grids side by side, the differing cells marked, and the differences in words."""
    builder.persona.value = "Procurement"
    builder.compare.value = "Executive sponsor"
    assert builder.preview.value.count('<div class="wb-journey"') == 2
    assert "wb-differs" in builder.preview.value and "points lower than Executive sponsor" in builder.preview.value
    builder.compare.value = NONE
    assert builder.preview.value.count('<div class="wb-journey"') == 1


def test_a_bad_edit_is_shown_and_the_editors_reset(builder):
    """Renaming a stage to another's label: the message shows, the label box shows the old label again."""
    labels = builder.journey().stage_labels()
    builder.stage_labels[0].value = labels[1]
    assert "another stage has that label" in builder.status.value
    assert builder.stage_labels[0].value == labels[0]


def test_export_writes_the_chosen_format(builder, tmp_path):
    """The export button writes the grid in the chosen format next to the save path."""
    builder.save_path.value = str(tmp_path / "grid.yaml")
    builder.export_format.value = ".xlsx"
    builder.export_button.click()
    assert (tmp_path / "grid.xlsx").stat().st_size > 0


def test_filters_are_parsed_with_lists():
    """`a=1,2; b=x` -> {'a': ['1', '2'], 'b': ['x']}."""
    assert parse_filter("a=1,2; b=x") == {"a": ["1", "2"], "b": ["x"]}


def test_a_saved_journey_reopens_on_its_persona_with_its_text(builder, dataset, tmp_path):
    """Save a filter persona's journey, open a new builder with it: same persona, filter, numbers and text."""
    region = dataset.deals["region"].iloc[0]
    builder.new_persona_name.value = "Region"
    builder.new_persona_filter.value = f"region={region}"
    builder.add_persona_button.click()
    stage = builder.journey().stage_labels()[0]
    builder.cell_inputs[("Objections", stage)].value = "Budget is frozen"
    path = builder.save(tmp_path / "region.yaml")
    reopened = JourneyBuilder(dataset, load_journey(path))
    assert reopened.persona.value == "Region"
    assert reopened.journey().cell("Objections", stage) == "Budget is frozen"
    n = int((dataset.deals["region"] == region).sum())
    assert f"{n:,} deals reached" in reopened.preview.value


def test_a_filter_on_a_numeric_column_matches_numbers(dataset):
    """Typed filter values are text; on a numeric deal column they are read as numbers."""
    from dataclasses import replace

    data = replace(dataset, deals=dataset.deals.assign(tier=(dataset.deals.index % 3).astype(int)))
    builder = JourneyBuilder(data, persona_column="tier")
    assert builder.persona.options[1:] == ("0", "1", "2")
    builder.new_persona_name.value = "Tier one or two"
    builder.new_persona_filter.value = "tier=1,2"
    builder.add_persona_button.click()
    n = int(data.deals["tier"].isin([1, 2]).sum())
    assert f"{n:,} deals reached" in builder.preview.value


def test_undoing_a_merge_reuses_the_numbers_under_the_new_labels(builder):
    """Merge then split back: the facts come from the cache, relabelled, equal to the first ones."""
    first, second = builder.journey().stage_labels()[:2]
    before = builder.facts.stages.copy()
    builder.edit("merge_stages", first)
    builder.edit("split_stage", first, "Back again")
    cached = builder.facts
    assert cached.stage_labels[:2] == [first, "Back again"]
    expected = before.replace({second: "Back again"})
    pd.testing.assert_frame_equal(cached.stages, expected)


def test_saves_go_to_an_ignored_folder_named_after_the_persona(builder):
    """The save path defaults to journeys/<persona>/ (ignored by git, never the shipped notebooks' folder) and
    follows the persona until one types a path of one's own."""
    assert builder.save_path.value == "journeys/all-deals/journey.yaml"
    builder.persona.value = "Procurement"
    assert builder.save_path.value == "journeys/procurement/journey.yaml"
    builder.save_path.value = "mine.yaml"
    builder.persona.value = "Economic buyer"
    assert builder.save_path.value == "mine.yaml"
    from pathlib import Path

    assert "journeys/" in (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
