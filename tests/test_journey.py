"""The journey grid model: YAML in and out, clear errors, edits that keep cells attached, templates."""
from pathlib import Path

import pytest

from workbench.journey.model import Journey, JourneyError, Persona, check_covers, fit_to_dataset, load_journey, template
from workbench.dataset.sample import generate

BROKEN = Path(__file__).parent / "data" / "journeys"


@pytest.fixture(scope="module")
def dataset():
    return generate(n_deals=600, seed="journey-model", truth_deals=1_000).dataset()


def _journey() -> Journey:
    return Journey.model_validate({
        "persona": {"name": "Buyers", "filter": {"persona": "Procurement"}},
        "stages": [{"label": "Looking", "covers": ["Lead", "Qualified"]}, {"label": "Comparing", "covers": ["Discovery"]},
                   {"label": "Deciding", "covers": ["Proposal", "Negotiation"]}],
        "lanes": [{"name": "Numbers", "kind": "data", "metric": "deals"}, {"name": "Doing", "suggest": "actions"},
                  {"name": "Feeling"}],
        "cells": {"Doing": {"Looking": "reads reviews", "Comparing": "asks for a demo"}, "Feeling": {"Deciding": "nervous"}},
    })


def test_yaml_round_trip_keeps_everything(tmp_path):
    """Saving and loading gives the same journey, persona filter, covers and cells included."""
    journey = _journey()
    path = journey.save(tmp_path / "sub" / "j.yaml")
    assert load_journey(path) == journey
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("name, words", [
    ("duplicate_stage_label.yaml", ["stage labels must be unique", "Researching"]),
    ("data_lane_without_metric.yaml", ["needs a `metric`", "unknown metric 'moods'"]),
    ("cell_of_unknown_stage.yaml", ["Deciding", "not stage labels"]),
    ("unknown_key.yaml", ["stages.0.colour", "Extra inputs are not permitted"]),
])
def test_a_broken_file_names_the_file_and_every_problem(name, words):
    """Each broken journey file fails with its path, the key at fault and what to do."""
    with pytest.raises(JourneyError) as err:
        load_journey(BROKEN / name)
    text = str(err.value)
    assert name in text and "Try 1)" in text
    for word in words:
        assert word in text


def test_renaming_a_stage_or_lane_moves_its_cells():
    """Cells follow a renamed stage and a renamed lane; nothing else changes."""
    journey = _journey()
    journey.rename_stage("Looking", "Noticing a need")
    journey.rename_lane("Doing", "What they do")
    assert journey.cell("What they do", "Noticing a need") == "reads reviews"
    assert journey.cell("What they do", "Comparing") == "asks for a demo"
    assert journey.stage_labels() == ["Noticing a need", "Comparing", "Deciding"]
    with pytest.raises(JourneyError, match="another stage has that label"):
        journey.rename_stage("Comparing", "Deciding")
    assert journey.stage_labels() == ["Noticing a need", "Comparing", "Deciding"]


def test_merging_joins_covers_and_texts_and_splitting_undoes_the_covers():
    """Merge: CRM stages concatenated, texts joined in order under the first label; split: last CRM stage off."""
    journey = _journey()
    journey.merge_stages("Looking")
    assert [(s.label, s.covers) for s in journey.stages] == [("Looking", ["Lead", "Qualified", "Discovery"]),
                                                             ("Deciding", ["Proposal", "Negotiation"])]
    assert journey.cell("Doing", "Looking") == "reads reviews\nasks for a demo"
    journey.split_stage("Looking", "Comparing")
    assert [(s.label, s.covers) for s in journey.stages][:2] == [("Looking", ["Lead", "Qualified"]),
                                                                 ("Comparing", ["Discovery"])]
    with pytest.raises(JourneyError, match="no next stage"):
        journey.merge_stages("Deciding")
    with pytest.raises(JourneyError, match="nothing to split"):
        journey.split_stage("Comparing")


def test_lanes_are_added_moved_and_removed_with_their_cells():
    """Lane order follows moves (clipped at the edges); a removed lane's cells go; data cells cannot be typed."""
    journey = _journey()
    journey.add_lane("Objections", suggest="objections", position=0)
    journey.move_lane("Feeling", -10)
    assert [lane.name for lane in journey.lanes] == ["Feeling", "Objections", "Numbers", "Doing"]
    journey.remove_lane("Feeling")
    assert "Feeling" not in journey.cells
    with pytest.raises(JourneyError, match="computed from the data"):
        journey.set_cell("Numbers", "Looking", "42")
    with pytest.raises(JourneyError, match="unknown metric"):
        journey.add_lane("Odd", "data", metric="weather")
    with pytest.raises(JourneyError, match="Extra|another lane has that name"):
        journey.rename_lane("Doing", "Numbers")


def test_templates_are_valid_and_shared_out_over_the_data_stages(dataset):
    """b2b (5 labels) covers 5 CRM stages one each; b2c (4 labels) groups them, the first group taking two."""
    b2b = fit_to_dataset(template("b2b"), dataset)
    assert [s.covers for s in b2b.stages] == [[s] for s in dataset.stages]
    b2c = fit_to_dataset(template("b2c"), dataset)
    assert [s.covers for s in b2c.stages] == [["Lead", "Qualified"], ["Discovery"], ["Proposal"], ["Negotiation"]]
    check_covers(b2c, dataset)
    with pytest.raises(JourneyError, match="use one of"):
        template("b2z")


def test_covers_must_name_every_data_stage_once_in_order(dataset):
    """Unknown, missing and out-of-order CRM stages are each named, with the fix."""
    journey = _journey()
    journey.split_stage("Deciding")
    check_covers(journey, dataset)  # the fixture's five stages, all covered
    bad = Journey.model_validate({**journey.model_dump(), "stages": [
        {"label": "A", "covers": ["Lead", "Discovery"]}, {"label": "B", "covers": ["Qualified", "Closing"]}], "cells": {}})
    with pytest.raises(JourneyError) as err:
        check_covers(bad, dataset)
    text = str(err.value)
    assert "['Closing']" in text and "['Proposal', 'Negotiation']" in text and "Try 1)" in text


def test_for_persona_keeps_the_structure_and_clears_the_text():
    """A copy for another persona has the same stages and lanes, the new persona, and no cells."""
    journey = _journey()
    other = journey.for_persona(Persona(name="Champions", filter={"persona": "End user champion"}))
    assert other.stages == journey.stages and other.lanes == journey.lanes
    assert other.persona.name == "Champions" and other.cells == {}
    assert journey.cells  # the original is untouched
