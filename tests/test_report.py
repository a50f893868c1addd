"""Client-ready HTML reports from notebooks papermill executed in the real `workbench` kernel, and the run index."""
import datetime as dt
import io
import math
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from matplotlib.figure import Figure

from workbench.exceptions import SpecError, WorkbenchError
from workbench.run.jobs import execute_notebook
from workbench.run.report import FAILED_SECTION, NO_STATIC_VERSION, STOPPED_SECTION, format_headline, render_report, write_index

NOTEBOOKS = Path(__file__).resolve().parent / "data" / "report_notebooks"
#: Runs, draws a figure, shows a table, writes to stderr, shows a widget and a scripted chart
#: (each with a PNG) and a widget without one; the marker strings must not reach the report.
FIGURES = NOTEBOOKS / "figure_table_widgets.ipynb"
#: Raises a ValueError after printing; its section must be replaced by a plain sentence.
RAISES = NOTEBOOKS / "raises_value_error.ipynb"
INJECTED = "INJECTED-SEGMENT-VALUE"
OPTIONS = dict(
    title="Pipeline review",
    client="Acme & Co <EU>",
    branding={"primary_color": "#1f4e79", "logo_text": "Northwind Analytics"},
    segment_label="Enterprise",
    quality_note="12 rows excluded: closed before created.\n- 3 rows excluded: unknown stage `Lost?`.",
    findings=["Half of all deals close within **41 days**.", "Deals from the `partner` channel are won more often."],
    generated_on=dt.date(2025, 11, 23),
)
IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')
TOC_LINK = re.compile(r'<li class="wb-toc-(\d)"><a href="#([^"]+)">(.*?)</a></li>')


def _executed(src: Path, out: Path, **parameters) -> Path:
    # A cell that raises still gives the executed notebook, with the error marked.
    execute_notebook(src, out, parameters=parameters, cwd=out.parent, timeout=120)
    return out


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Both fixture notebooks, executed once with papermill in the `workbench` kernel."""
    folder = tmp_path_factory.mktemp("executed")
    return (_executed(FIGURES, folder / "figure_table_widgets.ipynb", segment=INJECTED),
            _executed(RAISES, folder / "raises_value_error.ipynb"))


@pytest.fixture(scope="module")
def report(executed, tmp_path_factory):
    """The report of both notebooks, as written and as text."""
    out = tmp_path_factory.mktemp("run") / "segments" / "enterprise" / "report.html"
    render_report(list(executed), out, **OPTIONS)
    return out, out.read_text(encoding="utf-8")


def _body(html: str) -> str:
    """The page after `<body`: the inlined JupyterLab CSS names every class."""
    return html.split("<body", 1)[1]


def _png() -> str:
    """A small PNG, base64, drawn without pyplot (nothing to close)."""
    import base64

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.slow
def test_papermill_marked_the_fixtures_as_expected(executed):
    """The fixtures did what the other tests rely on: parameters injected, one figure, one failure."""
    ok, failed = (nbformat.read(p, as_version=4) for p in executed)
    assert any(INJECTED in c.source for c in ok.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert not any(o.output_type == "error" for c in ok.cells for o in c.get("outputs", []))
    assert any(o.output_type == "error" for c in failed.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_figures_are_embedded_as_png_data_uris(report):
    """Every image is an inline `data:image/png;base64` URI: the bar chart and both interactive outputs' PNGs."""
    _, html = report
    sources = IMG_SRC.findall(html)
    assert len(sources) == 3
    assert all(src.startswith("data:image/png;base64,iVBOR") for src in sources)


@pytest.mark.slow
def test_no_code_prompts_or_parameters_reach_the_report(report):
    """Code sources, prompts, both parameters cells (output and all) and `remove-cell` cells are gone."""
    html = _body(report[1])
    for absent in ("CODE-MARKER-FIGURE", "import matplotlib", "PARAM-DEFAULT-SEGMENT", INJECTED,
                   "PARAMETERS-CELL-OUTPUT", "REMOVE-CELL-MARKER", "jp-InputArea-editor", "In&nbsp;[", "Out["):
        assert absent not in html, absent
    assert "STDOUT-KEPT" in html  # printed output is a result; only code is hidden


@pytest.mark.slow
def test_a_stopped_notebook_keeps_what_it_showed_and_says_the_rest_is_missing(report):
    """The raising notebook keeps its heading and the output before the failing cell, then one plain
    sentence: no traceback, nothing of the failing cell, nothing after it."""
    _, html = report
    assert html.count("The rest of this section could not be produced.") == 1
    assert STOPPED_SECTION.split("**")[2].strip() in html
    assert "BEFORE-FAILURE-MARKER" in html and "Stage conversion" in html
    for absent in ("Traceback", "ValueError", "FAILURE-MARKER:", "Never reached", "An Exception was encountered",
                   "STDERR-MARKER", "This section could not be produced."):
        assert absent not in html, absent


@pytest.mark.slow
def test_a_notebook_that_stopped_before_showing_anything_is_one_sentence(executed, tmp_path):
    """A notebook whose first cell raised is its heading and the sentence that it could not be produced."""
    nb = nbformat.read(executed[1], as_version=4)
    nb.cells = [c for c in nb.cells if "BEFORE-FAILURE" not in c.source]
    path = tmp_path / "raises_first.ipynb"
    nbformat.write(nb, path)
    html = render_report([path], tmp_path / "report.html", **OPTIONS).read_text()
    assert "This section could not be produced." in html and FAILED_SECTION.split("**")[2].strip() in html
    assert "Stage conversion" in html and "FAILURE-MARKER:" not in html


@pytest.mark.slow
def test_title_page_findings_and_quality_note_are_shown_escaped(report):
    """Title, client, segment and date head the report; findings and quality note keep `code` and bold."""
    _, html = report
    assert '<h1 class="wb-title">Pipeline review</h1>' in html
    assert "Acme &amp; Co &lt;EU&gt;" in html and "Acme & Co <EU>" not in html
    assert '<dd class="wb-segment">Enterprise</dd>' in html and "23 November 2025" in html
    assert "<li>Half of all deals close within <strong>41 days</strong>.</li>" in html
    assert "<li>Deals from the <code>partner</code> channel are won more often.</li>" in html
    assert "<p>12 rows excluded: closed before created.</p>" in html
    assert "<p>3 rows excluded: unknown stage <code>Lost?</code>.</p>" in html
    assert html.index('id="findings"') < html.index('id="data-quality"') < html.index('class="wb-body"')
    assert "<title>Pipeline review – Enterprise</title>" in html


@pytest.mark.slow
def test_table_of_contents_links_every_heading_of_both_notebooks(report):
    """The contents list the markdown headings (not `#` lines in code blocks), each linked to an anchor that exists."""
    _, html = report
    toc = TOC_LINK.findall(html)
    assert [(int(level), text) for level, _, text in toc] == [
        (1, "Deal flow"), (2, "Deals by <code>stage</code>"), (3, "Interactive outputs"), (1, "Stage conversion")]
    for _, anchor, _ in toc:
        assert html.count(f'id="{anchor}"') == 1


@pytest.mark.slow
def test_interactive_outputs_fall_back_to_static_images(report):
    """Widget and scripted-HTML outputs show their PNG; a widget without one shows a note, never a blank."""
    _, html = report
    for absent in ("widget-view+json", "WIDGET-MODEL-ID", "WIDGET-TEXT-REPR", "HTML-TEXT-REPR", "SCRIPT_MARKER",
                   "SLIDER-MARKER", "<script"):
        assert absent not in html, absent
    assert NO_STATIC_VERSION.strip("*") in html


@pytest.mark.slow
def test_report_loads_nothing_from_the_network(report):
    """No scripts, stylesheets or images from elsewhere: the file stands alone."""
    _, html = report
    assert not re.search(r'<(script|link|iframe)\b', html)
    assert not re.search(r'\b(src|href)="(https?:)?//', html)
    assert "@import" not in html


@pytest.mark.slow
def test_rendering_is_deterministic(executed, report, tmp_path):
    """The same notebooks and options give the same bytes."""
    path, _ = report
    again = render_report(list(executed), tmp_path / "report.html", **OPTIONS)
    assert again.read_bytes() == path.read_bytes()


def test_an_exporter_prepared_ahead_renders_the_same_report(executed, report, tmp_path, monkeypatch):
    """`prepare` (a worker's, while the notebooks run) builds the exporter a report then uses: the report is
    the same bytes as one rendered by an exporter built for it."""
    from workbench.run import report as report_module

    monkeypatch.setattr(report_module, "_EXPORTERS", {})
    report_module.prepare()
    assert report_module._EXPORTERS
    path, _ = report
    again = render_report(list(executed), tmp_path / "report.html", **OPTIONS)
    assert again.read_bytes() == path.read_bytes()


def test_empty_notebook_list_renders_a_short_report_saying_why(tmp_path):
    """No notebooks (a segment too small): title page, findings and quality note, and no contents."""
    out = render_report([], tmp_path / "report.html", **{
        **OPTIONS, "findings": ["This segment has 12 deals, too few to analyse (at least 50 are needed)."],
        "quality_note": "No rows were excluded."})
    html = out.read_text(encoding="utf-8")
    assert "This segment has 12 deals, too few to analyse (at least 50 are needed)." in html
    assert "No rows were excluded." in html
    assert "This report has no analysis sections" in html
    assert 'class="wb-toc"' not in _body(html) and "jp-Cell" not in _body(html)


def test_notebook_without_a_heading_is_titled_from_its_file_name(tmp_path):
    """A section needs a heading: `stage_conversion.ipynb` without one is headed `Stage conversion`."""
    figure = nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("draw()", outputs=[figure])])
    nbformat.write(nb, tmp_path / "stage_conversion.ipynb")
    html = render_report([tmp_path / "stage_conversion.ipynb"], tmp_path / "report.html", **OPTIONS).read_text()
    assert [text for _, _, text in TOC_LINK.findall(html)] == ["Stage conversion"]
    assert len(IMG_SRC.findall(html)) == 1 and "draw()" not in html


def test_branding_sets_the_colours_and_rejects_what_it_does_not_know(tmp_path):
    """A light primary colour gets dark text; an unknown key or a non-colour is a SpecError naming it."""
    html = render_report([], tmp_path / "report.html", **{
        **OPTIONS, "branding": {"primary_color": "gold", "logo_text": "Gold & Partners"}}).read_text()
    assert "--wb-brand: #ffd700;" in html and "--wb-on-brand: #111827;" in html
    assert '<span class="wb-logo">Gold &amp; Partners</span>' in html
    with pytest.raises(SpecError, match="`primary_colour`"):
        render_report([], tmp_path / "x.html", **{**OPTIONS, "branding": {"primary_colour": "#000000"}})
    with pytest.raises(SpecError, match="'not-a-colour' is not a colour"):
        render_report([], tmp_path / "x.html", **{**OPTIONS, "branding": {"primary_color": "not-a-colour"}})
    assert not (tmp_path / "x.html").exists()


def test_missing_notebook_is_an_error_naming_it(tmp_path):
    """A notebook path that does not exist stops the render with its path in the message."""
    with pytest.raises(WorkbenchError, match="cycle_time.ipynb` does not exist"):
        render_report([tmp_path / "cycle_time.ipynb"], tmp_path / "report.html", **OPTIONS)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    """A write that fails at the rename keeps the old file and removes its temporary file."""
    out = render_report([], tmp_path / "report.html", **OPTIONS)
    write_index(tmp_path, [], title="Run", client="Acme", branding={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "report.html"]
    before = out.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        render_report([], out, **{**OPTIONS, "title": "Changed"})
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "report.html"]


# --- the run index ---------------------------------------------------------------------

ENTRIES = [
    {"segment": "enterprise", "label": "Enterprise", "href": "segments/enterprise/report.html", "status": "ok",
     "headline": {"deals": 1234, "win_probability": 0.4237, "median_days_to_close": 41.4}},
    {"segment": "smb", "label": "SMB & self-serve", "href": "segments/smb/report.html", "status": "failed",
     "headline": {"deals": 830}},
    {"segment": "public", "label": "Public sector", "href": "segments/public/report.html", "status": "too_small",
     "headline": {"deals": 12, "win_probability": None}},
]


def _index(tmp_path, entries=ENTRIES, written=("enterprise", "smb", "public")) -> str:
    for slug in written:
        (tmp_path / "segments" / slug).mkdir(parents=True)
        (tmp_path / "segments" / slug / "report.html").write_text("report")
    out = write_index(tmp_path, entries, title="Pipeline review", client="Acme", branding=OPTIONS["branding"],
                      generated_on=dt.date(2025, 11, 23))
    assert out == tmp_path / "index.html"
    return out.read_text(encoding="utf-8")


def _rows(html: str) -> list[list[str]]:
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_index_links_every_segment_with_formatted_headlines(tmp_path):
    """One row per segment, linked, with its status and headline numbers as a reader wants them."""
    html = _index(tmp_path)
    for entry in ENTRIES:
        assert f'<a href="{entry["href"]}">' in html
    assert ">Deals<" in html and ">Win probability<" in html and ">Median days to close<" in html
    assert _rows(html) == [
        ["Enterprise", "Complete", "1,234", "42%", "41 days"],
        ["SMB &amp; self-serve", "Failed", "830", "—", "—"],
        ["Public sector", "Too few deals", "12", "n/a", "—"],
    ]
    assert 'class="wb-row wb-status-failed"' in html and 'class="wb-row wb-status-too_small"' in html
    assert "3: 1 complete, 0 partial, 1 failed, 1 too small" in html and "23 November 2025" in html


def test_index_marks_a_partial_segment_and_lists_its_reasons_escaped(tmp_path):
    """A partial segment is linked, badged "Partial" and lists why, each reason as text (never markup)."""
    entries = [{"segment": "smb", "label": "SMB", "href": "segments/smb/report.html", "status": "partial",
                "headline": {"deals": 830}, "reasons": ["cycle_time › Time in stage: <b>boom</b>", "x" * 400]}]
    html = _index(tmp_path, entries, written=("smb",))
    assert '<a href="segments/smb/report.html">' in html and 'wb-badge-partial">Partial<' in html
    assert "Time in stage: &lt;b&gt;boom&lt;/b&gt;" in html and "<b>boom" not in html
    assert "x" * 159 + "…" in html and "x" * 161 not in html
    assert "1: 0 complete, 1 partial, 0 failed, 0 too small" in html


def test_index_shows_a_null_median_of_a_complete_segment_as_not_reached(tmp_path):
    """`summary.json` writes an infinite median as null: `not reached` when complete, `n/a` when too small."""
    entries = [{**ENTRIES[0], "headline": {"median_days_to_close": None}},
               {**ENTRIES[2], "headline": {"median_days_to_close": None}}]
    html = _index(tmp_path, entries=entries, written=())
    assert [row[-1] for row in _rows(html)] == ["not reached", "n/a"]


def test_index_lists_a_segment_without_a_report_unlinked(tmp_path):
    """A report that is not on disk is listed, marked, and not linked (no dead links for a client)."""
    html = _index(tmp_path, written=("enterprise", "public"))
    assert 'href="segments/smb/report.html"' not in html
    assert "SMB &amp; self-serve <span class=\"wb-missing\">(no report)</span>" in html


def test_index_rejects_malformed_entries_all_at_once(tmp_path):
    """An unknown status, an absolute link and a missing key are reported together, and nothing is written."""
    entries = [{**ENTRIES[0], "status": "done"}, {**ENTRIES[1], "href": "/tmp/smb.html"},
               {"segment": "x", "label": "X", "status": "ok"}]
    with pytest.raises(WorkbenchError) as raised:
        write_index(tmp_path, entries, title="Run", client="Acme", branding={})
    message = str(raised.value)
    assert "status 'done'" in message and "'/tmp/smb.html'" in message and "entry 3 (`x`) misses `href`" in message
    assert not (tmp_path / "index.html").exists()


@pytest.mark.parametrize(("key", "value", "text"), [
    ("win_probability", 0.4237, "42%"),
    ("win_probability", 0.001, "<1%"),
    ("conversion_rate", 1, "100%"),
    ("median_days_to_close", 41.6, "42 days"),
    ("median_days_to_close", 1, "1 day"),
    ("median_days_to_close", math.inf, "not reached"),
    ("deals", 12500, "12,500"),
    ("deals", np.int64(7), "7"),
    ("pipeline_value", 7.2e6, "7.2M"),
    ("hazard_ratio", 1.2345, "1.23"),
    ("deals", None, "n/a"),
    ("win_probability", math.nan, "n/a"),
    ("note", "see report", "see report"),
])
def test_format_headline(key, value, text):
    """Shares as percentages, days in whole days, counts with separators, money abbreviated, gaps as n/a."""
    assert format_headline(key, value) == text


def test_format_headline_rejects_a_share_above_one():
    """A share given as a percentage (42 for 42%) is an error, not `4200%` in front of a client."""
    with pytest.raises(WorkbenchError, match="between 0 and 1"):
        format_headline("win_probability", 42)


@pytest.mark.slow
def test_a_notebook_cut_off_by_a_timeout_says_the_rest_could_not_be_produced(tmp_path):
    """A cell that runs past the run's `timeout` leaves no error output of its own: the report still cuts
    the notebook there and says the rest could not be produced."""
    sleeps = Path(__file__).resolve().parent / "data" / "notebooks" / "sleeps.ipynb"
    out = tmp_path / "sleeps.ipynb"
    done = execute_notebook(sleeps, out, parameters={"seconds": 60}, cwd=tmp_path, timeout=3)
    assert done.status == "failed" and "Timeout" in (done.error or "")
    html = render_report([out], tmp_path / "report.html", **OPTIONS).read_text()
    assert "could not be produced" in html and "Timeout" not in html and "Traceback" not in html


@pytest.mark.parametrize("color", ["#1f4e79", "#ABCDEF", "#abc", "#FFF", "#000000", "#abcd", "navy", "C0", "tab:orange",
                                   (0.2, 0.4, 0.6)])
def test_a_branding_colour_reads_as_matplotlib_reads_it(color):
    """The report reads ``#rrggbb`` and ``#rgb`` itself (a worker need not import matplotlib for them) to the same
    red, green and blue as matplotlib, which reads every other colour."""
    import matplotlib.colors as mcolors

    from workbench.run.report import _rgb

    assert _rgb(color) == pytest.approx(mcolors.to_rgb(color), abs=1e-12)


@pytest.mark.parametrize("color", ["#abcde", "#ggg", "not a colour", "#12345"])
def test_a_branding_colour_matplotlib_cannot_read_is_refused(color):
    from workbench.run.report import _rgb

    with pytest.raises(ValueError):
        _rgb(color)
