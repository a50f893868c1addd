"""Report sections: each renders, says why it does not apply, or fails alone; settings come from the data."""
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from workbench.exceptions import SmallSampleWarning, WorkbenchError
from workbench.dataset.loader import from_frames
from workbench.dataset.sample import generate
from workbench.sections import Section, choose_settings, section
from workbench.sections import needs
from workbench.sections.base import RECORD_KEY, Need
from workbench.sections.catalog import catalog, markdown_table
from workbench.run.records import build_summary, key_findings, segment_status
from workbench.timeunits import DAYS, HOURS

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = '<img src=x onerror=alert(8)>'


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=1_500, seed="sections-tests", truth_deals=1_000).dataset()


def _bundles(out: Section) -> list[dict]:
    return [b[0] if isinstance(b, tuple) else b for b in out._bundles()]


def _appendix(out: Section) -> str:
    """The HTML a section sends to the report's methods appendix (its outputs marked `DETAIL_KEY`)."""
    from workbench.sections.base import DETAIL_KEY

    return "".join(b[0]["text/html"] for b in out._bundles() if isinstance(b, tuple) and DETAIL_KEY in b[1])


# --- the mechanism -------------------------------------------------------------------------------

@section("Never", needs=(lambda s: Need(False, f"This part needs {HOSTILE}."),))
def _unmet(out, settings):
    raise AssertionError("a section whose need is unmet must not run")


@section("Breaks")
def _breaks(out, settings):
    out.text("half-made text that must not show")
    plt.subplots()
    raise ValueError("internal detail")


@section("Refuses")
def _refuses(out, settings):
    raise WorkbenchError("`persona` has fewer than two levels with 30+ deals: nothing to compare. Try 1) lower it")


@section("Works")
def _works(out, settings, upstream=None):
    warnings.warn("only 12 deals here", SmallSampleWarning)
    warnings.warn("a library's own deprecation", DeprecationWarning)
    out.text(f"Persona {HOSTILE} wins **more**.")
    out.sentences([f"{HOSTILE} is the biggest leak."], key=True)
    out.record(win_probability=0.25, cif_won={"30": float("nan")})
    return upstream


def test_a_section_whose_data_are_missing_says_so_in_one_escaped_sentence(sample):
    """An unmet need: not applicable, not run, one output with the reason (escaped) and the record."""
    out = _unmet(choose_settings(sample))
    assert out.status == "not_applicable" and HOSTILE in out.reason
    (bundle,) = _bundles(out)
    assert "&lt;img src=x onerror=alert(8)&gt;" in bundle["text/html"] and "<img" not in bundle["text/html"]
    assert out.to_record()["status"] == "not_applicable"


def test_an_unexpected_error_fails_its_section_alone(sample, capsys):
    """A bug fails one section: a plain sentence (no detail), the error kept for run.json, nothing half-made
    shown, no figure left open; the traceback goes to stderr, which reports leave out."""
    before = plt.get_fignums()
    out = _breaks(choose_settings(sample))
    assert out.status == "failed" and out.outputs == [] and plt.get_fignums() == before
    assert "unexpected error" in out.reason and "internal detail" not in out.reason
    assert out.error == "ValueError: internal detail"
    assert "Traceback" in capsys.readouterr().err
    assert _works(choose_settings(sample)).ok


def test_the_workbench_refusing_the_data_means_the_section_does_not_apply(sample):
    """A WorkbenchError about the data (nothing to compare) is a not-applicable section with its message."""
    out = _refuses(choose_settings(sample))
    assert out.status == "not_applicable" and "nothing to compare" in out.reason and "lower it" in out.reason


def test_a_section_built_on_one_that_did_not_render_says_which(sample):
    """Passing a failed or not-applicable section on: the dependent one is not shown and says why."""
    settings = choose_settings(sample)
    after_failure = _works(settings, _breaks(settings))
    assert after_failure.status == "failed" and "builds on “Breaks”" in after_failure.reason
    after_missing = _works(settings, _unmet(settings))
    assert after_missing.status == "not_applicable" and after_missing.reason == _unmet(settings).reason
    assert _works(settings, _works(settings)).ok  # an ok upstream is passed on as its result


def test_caveats_become_notes_and_the_record_travels_in_the_first_output(sample):
    """Workbench warnings become notes (library warnings do not); the record (JSON-safe) is the first
    output's metadata; text and sentences are escaped, light Markdown kept."""
    from IPython.core.interactiveshell import InteractiveShell

    out = _works(choose_settings(sample))
    assert out.notes == ["only 12 deals here"]
    assert out.findings == [f"{HOSTILE} is the biggest leak."]
    assert out.figures == {"win_probability": 0.25, "cif_won": {"30": None}}
    html = "".join(b.get("text/html", "") for b in _bundles(out))
    assert "<strong>more</strong>" in html and "<img" not in html and html.count("&lt;img") == 2
    shown = []
    shell = InteractiveShell.instance()
    shell.display_pub.publish = lambda data, metadata=None, **kw: shown.append((data, metadata))
    out._ipython_display_()
    assert shown[0][1][RECORD_KEY]["key"] == "_works" and all(not m for _, m in shown[1:])


# --- needs and settings ---------------------------------------------------------------------------

def test_needs_name_the_missing_data_and_the_dataset_yaml_key(sample):
    """Each unmet need's sentence names the dataset.yaml key that would add the data."""
    bare = from_frames(sample.deals.drop(columns=["loss_reason"]).assign(outcome="lost", closed_at=sample.deals[
        "created_at"]), as_of=sample.as_of)
    settings = choose_settings(bare)
    assert "`stage_history:`" in needs.stage_history(settings).reason
    assert "`loss_reason`" in needs.loss_reasons(settings).reason
    assert "`touchpoints:`" in needs.table("touchpoints")(settings).reason
    assert not needs.won_deals(settings).ok and not needs.open_deals(settings).ok
    assert needs.stage_history(choose_settings(sample)).ok and needs.dates(choose_settings(sample)).ok


def test_segment_by_is_chosen_from_the_data_and_never_the_split_column(sample):
    """All deals compare personas; inside one persona (one level) the next column is chosen; with no
    column of two big enough groups there is nothing to compare, and the settings say so."""
    assert choose_settings(sample, segment_by="").segment_by == "persona"
    one_persona = sample.filter({"persona": "Procurement"})
    chosen = choose_settings(one_persona, segment_by="")
    assert chosen.segment_by == "channel" and "`channel`" in chosen.explained[0]
    tiny = choose_settings(sample.filter({"persona": "Procurement", "channel": "Inbound"}), segment_by="",
                           min_deals=500)
    assert tiny.segment_by is None and "left out" in tiny.explained[0]
    assert choose_settings(sample, segment_by="region").segment_by == "region"


def test_horizon_and_windows_follow_the_data_time_scale(sample):
    """The horizon covers 90% of closes, rounded up; days, windows and the unit follow; hours for a
    process that closes within hours."""
    settings = choose_settings(sample, horizon=0, days=[], window_days=0, forecast_window=0)
    closed = sample.deals[sample.deals["outcome"] != "open"]
    took = (closed["closed_at"] - closed["created_at"]).dt.days
    assert took.quantile(0.9) <= settings.horizon and settings.unit == DAYS
    assert settings.days[-1] == settings.horizon and list(settings.days) == sorted(settings.days)
    assert settings.forecast_window <= settings.horizon / 4 and settings.window_days <= settings.horizon / 6
    fast = sample.deals.assign(closed_at=sample.deals["created_at"] + (sample.deals["closed_at"]
                                                                         - sample.deals["created_at"]) / 48)
    hourly = choose_settings(from_frames(fast, as_of=sample.as_of), horizon=0)
    assert hourly.unit == HOURS and hourly.horizon < 7
    assert choose_settings(sample, horizon=365).horizon == 365


def test_mature_days_shrink_until_the_cohort_has_enough_deals(sample):
    """With a young pipeline, the mature cohort uses a shorter horizon rather than an empty cohort."""
    young = sample.cut(sample.deals["created_at"].min() + pd.Timedelta(days=200))
    settings = choose_settings(young, mature_days=0)
    age = (young.as_of - young.deals["created_at"]).dt.days
    assert settings.mature_days is not None and (age >= settings.mature_days).sum() >= 50


def test_a_young_export_gets_drivers_from_every_deal(sample):
    """All deals created within 200 days: the mature cohort is too small, so "All attributes together" shows
    Fine-Gray ratios (recorded as the headline drivers, with the reason), and both models sit side by side in a
    methods table of the appendix."""
    from workbench.sections import win_loss_drivers

    young = sample.cut(sample.deals["created_at"].min() + pd.Timedelta(days=200))
    out = win_loss_drivers.model(choose_settings(young, mature_days=0))
    assert out.ok, out.reason
    cohort = out.figures["drivers_cohort"]
    assert cohort["model"] == "fine-gray" and cohort["deals"] == len(young.deals) and "old enough" in cohort["reason"]
    assert out.figures["drivers"] and {"subdistribution_hazard_ratio", "ci_low", "ci_high"} <= set(out.figures["drivers"][0])
    assert all(0 < d["ci_low"] < d["subdistribution_hazard_ratio"] < d["ci_high"] < float("inf")
               for d in out.figures["drivers"])
    appendix = _appendix(out)
    assert "Fine-Gray: rate ratio" in appendix and "Methods: both models" in appendix
    assert out.findings and any("rate of winning" in f or "how soon or how often" in f for f in out.findings)


def test_a_mature_export_keeps_the_logistic_model(sample):
    """With a large mature cohort the section shows the logistic model, records odds ratios, and folds the
    Fine-Gray comparison into the methods appendix."""
    from workbench.sections import win_loss_drivers

    out = win_loss_drivers.model(choose_settings(sample, mature_days=180))
    assert out.ok and out.figures["drivers_cohort"]["model"] == "logistic"
    assert "odds_ratio" in out.figures["drivers"][0]
    assert "Logistic: odds ratio" in _appendix(out) and "Fine-Gray: rate ratio" in _appendix(out)


# --- records ------------------------------------------------------------------------------------

def _record(notebook, key, status="ok", figures=None, findings=(), reason="", error=""):
    return {"notebook": notebook, "key": key, "title": key.title(), "status": status, "reason": reason,
            "figures": figures or {}, "findings": list(findings), "notes": [], "error": error}


def test_the_summary_takes_each_figure_from_the_section_that_showed_it():
    """Figures come from the first rendered section that recorded them; settings per notebook; sections listed."""
    records = [_record("cycle_time", "overview", figures={"counts": {"deals": 9, "won": 1, "lost": 2, "open": 6}}),
               _record("cycle_time", "settings_used", figures={"horizon_days": 90}),
               _record("cycle_time", "competing", figures={"win_probability": 0.3, "horizon_days": 90},
                       findings=["Within 90 days..."]),
               _record("stage_conversion", "conversion", "failed", reason="could not", error="ValueError: x"),
               _record("win_loss_drivers", "model", "not_applicable", reason="needs won deals")]
    summary = build_summary({"persona": "A"}, records, notebooks=["cycle_time.ipynb"])
    assert summary["win_probability"] == 0.3 and summary["horizon_days"] == 90 and summary["counts"]["deals"] == 9
    assert summary["settings"] == {"cycle_time": {"horizon_days": 90}} and summary["status"] == "partial"
    assert [s["status"] for s in summary["sections"]] == ["ok", "failed", "not_applicable"]
    assert summary["stage_conversion"] == {} and summary["drivers"] == []
    assert key_findings(records) == ["Within 90 days..."]
    assert segment_status(records, {}) == ("partial", ["stage_conversion › Conversion: ValueError: x"])
    assert segment_status(records[:3], {}) == ("ok", [])
    assert segment_status([], {"a.ipynb": "cell 2: boom"}, ["a.ipynb"])[0] == "failed"


# --- the README's table ---------------------------------------------------------------------------

def test_the_readme_says_what_each_section_needs():
    """The README's table of sections and their needs is the one the code defines."""
    assert markdown_table() in (ROOT / "README.md").read_text()
    assert len(catalog()) >= 30 and {row["notebook"] for row in catalog()} == {
        "cycle_time", "stage_conversion", "win_loss_drivers", "customer_profile", "journey_grid"}


def test_the_decision_maker_role_is_found_by_its_name_or_given(sample):
    """`decision_role` empty: the contact role whose name says "decision" (any spelling); given: that role;
    a role no contact has makes the roles section say which roles there are, not fail."""
    from workbench.sections import customer_profile

    renamed = sample.contacts.assign(role=sample.contacts["role"].replace({"Decision maker": "Economic DECISION-maker"}))
    data = replace(sample, contacts=renamed)
    assert choose_settings(data, decision_role="").decision_role == "Economic DECISION-maker"
    assert customer_profile.buying_roles(choose_settings(data, decision_role="")).ok
    missing = customer_profile.buying_roles(choose_settings(data, decision_role="Budget owner"))
    assert missing.status == "not_applicable" and "Influencer" in missing.reason and "`decision_role`" in missing.reason
