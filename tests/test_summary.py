"""`summary.json`: the numbers the report's sections showed, JSON-safe, with caveats in words.

The runner reads each section's record back from the executed notebooks; here the same sections
run in-process (`_summary`), so the values can be checked against the analyses called directly.
"""
import json
import warnings

import pandas as pd
import pytest

from workbench.cycle.times import OVERALL, cycle_times
from workbench.cycle.dwell import stage_dwell
from workbench.funnel.conversion import stage_conversion
from workbench.dataset.loader import from_frames
from workbench.dataset.sample import generate
from workbench.sections import choose_settings, overview
from workbench.sections import cycle_time, stage_conversion as conversion_sections
from workbench.sections import win_loss_drivers
from workbench.run.records import build_summary, key_findings
from workbench.run.summary import quality_note, too_small_summary

KEYS = {"segment", "status", "counts", "as_of", "excluded_rows", "horizon_days", "win_probability",
        "win_probability_interval", "cif_won",
        "median_days_to_close", "stage_conversion", "median_days_in_stage", "drivers", "drivers_cohort",
        "forecast", "settings", "sections", "warnings"}


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=1_500, seed="summary-tests", truth_deals=1_000)


@pytest.fixture(scope="module")
def dataset(sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample.dataset()


def _records(dataset, **given):
    """The records the cycle-time, stage-conversion and drivers sections leave, as the runner reads them."""
    out = []
    settings = choose_settings(dataset, horizon=given.get("horizon", 0), days=given.get("days", []),
                               segment_by="", mature_days=0)
    times = cycle_time.time_to_close(settings)
    for notebook, sections in (("cycle_time", [overview(settings), times, cycle_time.competing_outcomes(settings, times),
                                               cycle_time.time_in_stage(settings)]),
                               ("stage_conversion", [conversion_sections.conversion(settings)]),
                               ("win_loss_drivers", [win_loss_drivers.model(settings)])):
        out += [{**s.to_record(), "notebook": notebook} for s in sections]
    return out


def _summary(dataset, segment=None, **given):
    return build_summary(segment or {}, _records(dataset, **given))


@pytest.mark.parametrize("segment", [{}, {"persona": "Economic buyer"}, {"channel": ["Inbound", "Referral"]}])
def test_values_are_the_analyses_own_output(dataset, segment):
    """Every number equals what cycle_times, stage_conversion and stage_dwell return on the same deals."""
    part = dataset.filter(segment)
    summary = _summary(part, segment, horizon=180, days=[30, 90, 180])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = cycle_times(part, horizon=180).fits[OVERALL]
        conversion = stage_conversion(part).headline()
        dwell = stage_dwell(part).medians()
    assert set(summary) == KEYS
    assert summary["segment"] == segment and summary["status"] == "ok"
    assert summary["counts"] == {k: part.counts()[k] for k in ("deals", "won", "lost", "open")}
    assert summary["horizon_days"] == 180 and summary["win_probability"] == float(fit.cif("won", 180)[0])
    assert summary["win_probability_interval"] == [float(bound[0]) for bound in fit.cif_ci("won", 180)]
    assert summary["cif_won"] == {str(d): float(fit.cif("won", d)[0]) for d in (30, 90, 180)}
    assert summary["median_days_to_close"] == fit.median()["estimate"]
    assert summary["stage_conversion"] == conversion
    assert list(summary["stage_conversion"]) == ["Lead->Qualified", "Qualified->Discovery", "Discovery->Proposal",
                                                 "Proposal->Negotiation", "Negotiation->Won"]
    assert summary["median_days_in_stage"] == dwell


def test_json_round_trip_without_nan(dataset):
    """The summary survives json.dumps(allow_nan=False) and loads back equal."""
    summary = _summary(dataset)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def _rebuilt(sample, deals):
    """``deals`` (a changed subset of the sample's) validated again with their stage history."""
    history = sample.stage_history[sample.stage_history["deal_id"].isin(deals["deal_id"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_frames(deals, history, stages=sample.stages, won_stages=sample.won_stages,
                           lost_stages=sample.lost_stages, as_of=sample.as_of)


def test_median_not_reached_is_null(sample):
    """Deals that mostly have not closed yet give a null median, not Infinity."""
    deals = sample.deals[sample.deals["created_at"] > sample.as_of - pd.Timedelta(days=20)]
    summary = _summary(_rebuilt(sample, deals), horizon=10)
    assert summary["median_days_to_close"] is None
    json.dumps(summary, allow_nan=False)


def test_exclusions_of_the_load_are_counted_by_reason(sample):
    """Rows the load excluded appear as a count and per (table, reason), as the dataset reports them."""
    deals = sample.deals.head(300).copy()
    deals.loc[deals.index[:3], "created_at"] = sample.as_of + pd.Timedelta(days=5)  # after the cut-off
    ds = _rebuilt(sample, deals)
    summary = _summary(ds)
    by_reason = summary["excluded_rows"]["by_reason"]
    assert summary["excluded_rows"]["count"] == int(ds.exclusions["rows"].sum()) >= 3
    assert by_reason == [{"table": r.table, "check": r.check, "reason": r.reason, "rows": r.rows}
                         for r in ds.exclusions.itertuples()]
    assert ("deals", "created_after_as_of") in {(r["table"], r["check"]) for r in by_reason}
    assert "rows of the whole dataset were excluded" in quality_note(summary)


def test_no_stages_means_no_conversion_and_the_sections_say_why(sample):
    """Without declared stages, conversion and time in stage are empty, their sections do not apply, and the
    summary lists why (the same sentence the report shows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = from_frames(sample.deals.head(200), as_of=sample.as_of)
    summary = _summary(ds)
    assert summary["stage_conversion"] == {} and summary["median_days_in_stage"] == {}
    sections = {s["section"]: s for s in summary["sections"]}
    assert sections["conversion"]["status"] == sections["time_in_stage"]["status"] == "not_applicable"
    assert "`stages:`" in sections["conversion"]["reason"] and summary["status"] == "ok"


def test_drivers_are_listed_with_their_cohort(dataset):
    """Drivers: rows of {feature, level, odds_ratio, ci_low, ci_high, p_value}, and the cohort they come from."""
    summary = _summary(dataset)
    assert summary["drivers"] and set(summary["drivers"][0]) == {"feature", "level", "odds_ratio", "ci_low",
                                                                 "ci_high", "p_value"}
    assert summary["drivers_cohort"]["deals"] > 0 and summary["drivers_cohort"]["method"] == "maximum likelihood"


def test_small_sample_warnings_are_collected_in_words(dataset):
    """A tiny segment's SmallSampleWarnings end up as sentences under `warnings`."""
    tiny = dataset.filter({"deal_id": list(dataset.deals["deal_id"].head(40))})
    summary = _summary(tiny, {"deal_id": "first 40"})
    assert any("no estimate" in w or "left out" in w or "fewer than" in w for w in summary["warnings"])
    json.dumps(summary, allow_nan=False)


def test_too_small_summary_has_counts_and_no_estimates(dataset):
    """A segment below the minimum gets the same keys, counts, nulls and a sentence saying why."""
    part = dataset.filter({"persona": "Procurement"})
    summary = too_small_summary(part, {"persona": "Procurement"}, 10_000)
    assert set(summary) == KEYS and summary["status"] == "too_small"
    assert summary["counts"]["deals"] == len(part.deals)
    assert summary["win_probability"] is None and summary["cif_won"] == {}
    assert summary["warnings"] == ["This segment has {:,} deals, fewer than the 10,000 a report needs "
                                   "(`min_deals_per_segment`), so nothing was estimated for it.".format(len(part.deals))]


def test_key_findings_are_the_sections_sentences(dataset):
    """The report's opening findings are the sentences sections marked: counts, time to close, outcomes."""
    found = key_findings(_records(dataset, horizon=365))
    assert found[0].startswith("The data hold 1,500 deals")
    assert any(s.startswith("Half of all deals close") for s in found)
    assert any(s.startswith("Within 365 days of creation") for s in found)
