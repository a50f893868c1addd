"""Every shape of real export gives a whole report through `workbench run`, with all five notebooks.

Each test builds a small export of one shape (tests/shapes.py), runs `workbench run` on it with no
parameters (everything chosen from the data) and the five shipped notebooks, and checks that
every segment is complete or partial with named reasons, never failed; that sections missing
their data say so and name the dataset.yaml key; and that summary.json says what the report says.
The two real datasets in ../shared/data run through their examples.
"""
import html
import json
import re
from pathlib import Path

import pytest
import yaml

import shapes
from workbench.cli import main
from workbench.findings import percent
from workbench.tables import format_number, format_share
from workbench.timeunits import DAYS, HOURS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.slow


def _run(folder: Path, dataset: Path, capsys, **spec) -> tuple[int, dict, str]:
    """`workbench run` with every shipped notebook and no parameters; (exit code, run.json, stderr)."""
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(dataset), "output": str(folder / "out"), "workers": 2,
                                    "title": "Shapes", "client": "Tests", "min_deals_per_segment": 50, **spec}))
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    return code, json.loads((folder / "out" / "run.json").read_text()), err


def _segment(folder: Path, slug: str = "overall") -> tuple[dict, str]:
    """(summary.json, report.html as text) of one segment."""
    out = folder / "out" / "segments" / slug
    return json.loads((out / "summary.json").read_text()), (out / "report.html").read_text()


def _sections(summary: dict) -> dict:
    return {(s["notebook"], s["title"]): s for s in summary["sections"]}


def _check_whole(run: dict) -> None:
    """Every segment complete or partial with reasons, never failed; every job ran the notebook through."""
    for segment in run["segments"]:
        assert segment["status"] in ("ok", "partial", "too_small"), segment
        if segment["status"] == "partial":
            assert segment["reasons"], segment
    assert all(job["status"] == "ok" for job in run["jobs"]), [j for j in run["jobs"] if j["status"] != "ok"]
    assert {Path(j["notebook"]).stem for j in run["jobs"]} == {
        "cycle_time", "stage_conversion", "win_loss_drivers", "customer_profile", "journey_grid"}


def _check_no_leftovers(report: str) -> None:
    """What a client reads holds no traceback, repr or notebook instruction."""
    for absent in ("Traceback", "Error:", "<workbench.", "<Section", "Run top to bottom", "nan%", ">inf<",
                   "0 days (95% CI 0-0)", "No description has been provided", "[&#x27;", "[&#39;", "['", ">{}<",
                   "(table)", "<pre>"):
        assert absent not in report, absent
    assert not re.search(r"(?<![\d.,])(0|1) days", report), re.search(r".{80}(?<![\d.,])(0|1) days", report)
    images = re.findall(r"<img\b[^>]*>", report)
    assert images and all(re.search(r'\balt="[^"]+"', i) for i in images), [i[:120] for i in images if 'alt="' not in i]


def test_an_opportunities_export_without_stage_history_or_reasons(tmp_path, capsys):
    """The most common CRM export: cycle times, drivers and profile render; the stage sections, the journey and
    loss reasons say what is missing and the dataset.yaml key that adds it."""
    code, run, _ = _run(tmp_path, shapes.opportunities_without_history(tmp_path / "data"), capsys)
    _check_whole(run)
    assert code == 0 and run["segments"][0]["status"] == "ok"
    summary, report = _segment(tmp_path)
    sections = _sections(summary)
    for title in ("Time to close", "Won and lost as competing outcomes", "Segment comparison", "Drivers of speed",
                  "Open-pipeline forecast"):
        assert sections[("cycle_time", title)]["status"] == "ok", title
    assert sections[("win_loss_drivers", "All attributes together")]["status"] == "ok"
    for key in [("stage_conversion", "The funnel"), ("cycle_time", "Time in stage"), ("journey_grid", "The journey")]:
        assert sections[key]["status"] == "not_applicable" and "`stage_history:`" in sections[key]["reason"]
    assert "`loss_reason`" in sections[("win_loss_drivers", "Why deals are lost")]["reason"]
    assert "`touchpoints:`" in sections[("customer_profile", "Touchpoints")]["reason"]
    assert html.escape("`stage_history:`").replace("`", "") in report.replace("<code>", "").replace("</code>", "")
    _check_no_leftovers(report)


def test_a_stage_history_without_reasons_or_other_tables(tmp_path, capsys):
    """Stage sections render; reasons, roles and touchpoints say they need data the export lacks."""
    code, run, _ = _run(tmp_path, shapes.history_without_reasons(tmp_path / "data"), capsys)
    _check_whole(run)
    assert code == 0
    summary, report = _segment(tmp_path)
    sections = _sections(summary)
    assert all(s["status"] == "ok" for (nb, _), s in sections.items() if nb == "stage_conversion")
    assert summary["stage_conversion"] and summary["median_days_in_stage"]
    assert sections[("win_loss_drivers", "Why deals are lost")]["status"] == "not_applicable"
    assert "`contacts:`" in sections[("customer_profile", "Buying roles")]["reason"]
    _check_no_leftovers(report)


def test_a_drivers_only_table_without_dates(tmp_path, capsys):
    """Without any date, win rates, the logistic model and loss reasons render (every closed deal is the
    cohort); everything that needs time says it needs `created_at` and `closed_at`."""
    code, run, _ = _run(tmp_path, shapes.drivers_only(tmp_path / "data"), capsys)
    _check_whole(run)
    assert code == 0
    summary, report = _segment(tmp_path)
    sections = _sections(summary)
    for title in ("One attribute at a time", "All attributes together", "Why deals are lost"):
        assert sections[("win_loss_drivers", title)]["status"] == "ok", title
    assert summary["drivers"] and summary["drivers_cohort"]["deals"] == summary["counts"]["deals"]
    timed = [s for (nb, _), s in sections.items() if nb in ("cycle_time", "stage_conversion", "journey_grid")]
    assert timed and all(s["status"] == "not_applicable" and "`created_at`" in s["reason"] for s in timed)
    assert summary["as_of"] is None and summary["win_probability"] is None
    assert "without dates" in report
    _check_no_leftovers(report)


def test_a_process_log_with_loops_same_time_events_and_durations_of_hours(tmp_path, capsys):
    """A loan-application log: every notebook renders; durations read in hours; the level that never wins
    (Education) gets a finite, penalized hazard ratio and a note instead of [0, inf]."""
    code, run, _ = _run(tmp_path, shapes.process_log(tmp_path / "data"), capsys)
    _check_whole(run)
    assert code == 0
    summary, report = _segment(tmp_path)
    sections = _sections(summary)
    for notebook in ("cycle_time", "stage_conversion"):
        assert all(s["status"] == "ok" for (nb, _), s in sections.items() if nb == notebook), notebook
    assert summary["settings"]["cycle_time"]["time_unit"] == "hours" and summary["horizon_days"] <= 3
    assert f"within {HOURS(summary['median_days_to_close'])} (95% CI" in report
    assert "Hours since created" not in report  # figures are images; their alt text and the tables carry words
    assert "(hours)" in report
    assert any("loan_goal = Education" in w and "Firth" in w for w in summary["warnings"])
    same_time = "same-time" in report or "two stages at one timestamp" in report.lower() or "Same" in report
    assert same_time
    _check_no_leftovers(report)


def test_a_level_without_wins_in_one_segment(tmp_path, capsys):
    """In EMEA no Partner deal wins: the speed model refits with Firth (a note says so), its table and the
    figure hold only finite ratios, and the segment is complete."""
    code, run, _ = _run(tmp_path, shapes.level_without_wins(tmp_path / "data"), capsys,
                        split={"filters": {"EMEA": {"region": "EMEA"}}},
                        parameters={"speed_covariates": ["channel", "persona", "amount"]})
    _check_whole(run)
    assert code == 0 and [s["status"] for s in run["segments"]] == ["ok", "ok"]
    summary, report = _segment(tmp_path, "emea")
    assert _sections(summary)[("cycle_time", "Drivers of speed")]["status"] == "ok"
    assert any("channel = Partner" in w and "Firth" in w for w in summary["warnings"])
    assert "channel = Partner" in report
    _check_no_leftovers(report)


def _table_rows(report: str) -> list[list[str]]:
    """Every table row of the report, as cell texts."""
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", report, re.S)]


def _summary_is_the_report(summary: dict, report: str, everyone: str = "All deals") -> None:
    """Each summary.json figure is the figure the report shows for the segment (whose deals are ``everyone``)."""
    c = summary["counts"]
    assert f"The data hold {c['deals']:,} deals" in report
    assert f"{c['won']:,} won, {c['lost']:,} lost and {c['open']:,} still open" in report
    h = summary["horizon_days"]
    assert f"Within {DAYS(h)} of creation, {percent(summary['win_probability'])} of deals are won" in report
    assert f"Half of a{everyone[1:]} close (won or lost) within {DAYS(summary['median_days_to_close'])}" in report
    rows = _table_rows(report)
    overall = [r for r in rows if r and r[0] == everyone]
    for day, value in summary["cif_won"].items():
        assert any(format_share(value) in r for r in overall), (day, value)
    for transition, value in summary["stage_conversion"].items():
        assert any(r[:2] == [everyone, transition] and r[4] == format_share(value) for r in rows), transition
    model = summary["drivers_cohort"]["model"] if summary["drivers_cohort"] else None
    ratio = "odds_ratio" if model == "logistic" else "subdistribution_hazard_ratio"
    for driver in summary["drivers"]:
        assert any(r[:2] == [driver["feature"], driver["level"]] and r[2] == format_number(driver[ratio])
                   for r in rows), driver
    if model:
        assert html.escape(summary["drivers_cohort"]["reason"], quote=False) in report
    excluded = summary["excluded_rows"]["count"]
    assert ("No rows were excluded" in report) == (excluded == 0)


def test_a_persona_split_with_no_parameters(tmp_path, capsys):
    """The most natural split: one report per persona and one for all deals, no parameters, printed to PDF.
    Every segment is complete; inside a persona segment segments are compared by another column, read at the
    horizon chosen on all deals; summary.json says what the report says; each persona report names its deals
    and opens with the persona against all deals, which the index repeats. A persona's few hundred deals leave
    a small mature cohort: its drivers come from the Fine-Gray model of every deal, with the reason in the
    report."""
    code, run, err = _run(tmp_path, shapes.full_sample(tmp_path / "data"), capsys, split={"by": ["persona"]},
                          min_deals_per_segment=190, pdf=True)
    _check_whole(run)
    ran = [s for s in run["segments"] if s["status"] != "too_small"]
    assert code == 0 and len(ran) >= 3 and all(s["status"] == "ok" for s in ran), err
    horizons = set()
    models = []
    for segment in ran:
        summary, report = _segment(tmp_path, segment["slug"])
        chosen = summary["settings"]["cycle_time"]["segment_by"]
        assert chosen == ("persona" if segment["slug"] == "overall" else "channel"), segment["slug"]
        assert all(s["status"] != "failed" for s in summary["sections"])
        horizons.add(summary["horizon_days"])
        _summary_is_the_report(summary, report, f"All {segment['scope']} deals" if segment["scope"] else "All deals")
        _check_no_leftovers(report)
        models.append(summary["drivers_cohort"]["model"])
        _check_printed(tmp_path / "out" / "segments" / segment["slug"] / "report.pdf", segment)
        if segment["slug"] != "overall":
            _check_names_its_deals(report, segment, summary)
    assert len(horizons) == 1, horizons
    assert "fine-gray" in models, models
    index = (tmp_path / "out" / "index.html").read_text()
    for segment in ran:
        assert segment["headline_text"] and html.escape(segment["headline_text"]) in index, segment["slug"]
        assert f'href="segments/{segment["slug"]}/report.pdf"' in index
    _check_print_layout(tmp_path / "out" / "segments" / ran[-1]["slug"] / "report.html")


def _check_names_its_deals(report: str, segment: dict, summary: dict) -> None:
    """A persona report calls its deals the persona's, never "All deals", and its first finding is the persona
    against all deals."""
    text = re.sub(r"<[^>]+>", " ", report)
    assert "All deals" not in text, re.search(r".{80}All deals.{40}", text, re.S)
    first = re.search(r'<li class="wb-versus">(.*?)</li>', report)
    assert first and html.unescape(first.group(1)) == segment["headline_text"]
    assert segment["headline_text"].startswith(f"{segment['scope']} wins {percent(summary['win_probability'])} ")


def _check_printed(pdf: Path, segment: dict) -> None:
    """The PDF has every page numbered ("Page i of n") under a header naming the client and the segment."""
    from pypdf import PdfReader

    pages = PdfReader(pdf).pages
    assert len(pages) == segment["pdf_pages"] > 1
    for i in (0, len(pages) - 1):
        text = " ".join(pages[i].extract_text().split())
        assert f"Page {i + 1} of {len(pages)}" in text, text[-200:]
        assert f"Tests · {segment['label']}" in text, text[:200]


#: What is left of A4 between the report's print margins (210 mm - 2 x 13 mm), in CSS pixels.
PRINTED_WIDTH = round(184 / 25.4 * 96)


def _check_print_layout(report: Path) -> None:
    """With the print styles at the printed width, no table, figure or block runs past the page's edge."""
    from jupyter_lab import chromium_page

    with chromium_page(viewport={"width": PRINTED_WIDTH, "height": 1000}) as page:
        page.emulate_media(media="print")
        page.goto(report.as_uri())
        wider = page.evaluate("""(limit) => Array.from(document.querySelectorAll('table, img, pre, .jp-OutputArea-output'))
            .filter(e => e.getBoundingClientRect().right > limit + 1)
            .map(e => e.tagName + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' + e.textContent.slice(0, 60))""",
                              PRINTED_WIDTH)
        assert not wider, wider
        assert page.evaluate("document.documentElement.scrollWidth") <= PRINTED_WIDTH + 1


@pytest.mark.parametrize("example", ["olist", "ibm-win-loss"])
def test_the_real_datasets_give_whole_reports(example, tmp_path, capsys):
    """The two real exports (neither has a stage history) run with all five notebooks through their examples:
    complete, with the stage sections saying a stage history is missing."""
    data = {"olist": "olist-marketing-funnel", "ibm-win-loss": "ibm-sales-win-loss"}[example]
    if not (SHARED / data).exists():
        pytest.skip(f"../shared/data/{data} is not here")
    code, run, err = _run(tmp_path, ROOT / "examples" / example / "dataset.yaml", capsys)
    _check_whole(run)
    assert code == 0, err
    summary, report = _segment(tmp_path)
    sections = _sections(summary)
    assert sections[("cycle_time", "Time to close")]["status"] == "ok"
    assert sections[("win_loss_drivers", "All attributes together")]["status"] == "ok"
    assert sections[("stage_conversion", "The funnel")]["status"] == "not_applicable"
    assert summary["drivers"] and summary["win_probability"] is not None
    _check_no_leftovers(report)
