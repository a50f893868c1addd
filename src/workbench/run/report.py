"""Client-ready HTML reports rendered from executed notebooks (`render_report`), and the
index page of a run (`write_index`)."""
from __future__ import annotations

import datetime as dt
import functools
import numbers
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Sequence

from ..exceptions import MAX_SHOWN, SpecError, WorkbenchError, fixes
from ..markup import css_string, inline_markdown
from ..resources import templates_dir

# --- client-ready HTML reports ---------------------------------------------------------
#
# Executed notebooks -> one self-contained HTML page per segment (nbconvert's HTMLExporter with
# the `templates/report/` template), and an index page linking the segments of a run.

#: The shipped templates (nbconvert's layout: `templates/<name>/conf.json`, `index.html.j2`).
TEMPLATES = templates_dir()
REPORT_TEMPLATE = "report"
#: Cells a report leaves out whole, output and all: the notebook's parameters and the ones
#: papermill injected, papermill's error banners, and anything an author tags `remove-cell`.
REMOVED_CELL_TAGS = ("parameters", "injected-parameters", "papermill-error-cell-tag", "remove-cell")
REMOVED_OUTPUT_TAGS = ("remove-output",)
#: Branding keys and their defaults.
BRANDING = {"primary_color": "#1f4e79", "logo_text": ""}
#: The statuses of `write_index` entries, as the index names them.
STATUSES = {"ok": "Complete", "partial": "Partial", "failed": "Failed", "too_small": "Too few deals"}
#: Output types that need code running in a browser (widgets, JavaScript, plotting libraries).
INTERACTIVE_MIMES = ("application/vnd.jupyter.widget-view+json", "application/javascript",
                     "application/vnd.plotly.", "application/vnd.bokehjs", "application/vnd.vega")
STATIC_IMAGES = ("image/png", "image/jpeg", "image/svg+xml")
#: Headline keys whose words mark a share (a fraction shown as a percentage), days or money.
SHARE_WORDS = ("probability", "rate", "share", "conversion")
DAY_WORDS = ("day", "days")
MONEY_WORDS = ("value", "amount", "revenue", "pipeline")
TOC_DEPTH = 3
FAILED_SECTION = ("**This section could not be produced.** The analysis behind it stopped before it "
                  "showed anything. The other sections are not affected.")
STOPPED_SECTION = ("**The rest of this section could not be produced.** The analysis behind it stopped here, so "
                   "what follows is left out rather than shown incomplete; everything above it stands, and the "
                   "other sections are not affected.")
#: Sections every notebook opens with; a report shows the data once, in its first section.
SHOWN_ONCE = ("overview",)
NO_STATIC_VERSION = "*This interactive output has no static version, so the report leaves it out.*"
#: The methods words a report uses, in plain language, at the head of its appendix.
GLOSSARY = """The tables here are the evidence behind the sections above. Words the report uses:

- **Win probability** (the report's measure of winning): the share of deals won within the horizon since
  their creation, with deals still open counted for as long as they were watched. The index and the
  findings use it.
- **Win rate**: the share of *closed* deals that were won (open deals left out); tables that use it say so.
- **Conversion**: of the deals that reached a stage, the share that eventually reach the next one or beyond.
- **Censored**: a deal still open at the cut-off. It counts for as long as it was watched, never as lost.
- **Kaplan-Meier**: the share of deals still open at each point in time, counting censored deals correctly.
- **Aalen-Johansen (cumulative incidence)**: the share of deals won (or lost) by each point in time, with
  lost and won as competing outcomes: a lost deal can no longer be won.
- **Log-rank test**: whether groups of deals close at different rates over time.
- **Gray's test**: whether groups of deals differ in the share won (or lost) over time, lost and won
  competing.
- **Cox model, hazard ratio**: how much faster deals with a trait reach an outcome, other things equal.
- **Logistic model, odds ratio**: how much more often deals with a trait win, other things equal.
- **Fine-Gray model, rate ratio**: how much faster the share of deals won rises with a trait, using
  every deal (open ones for as long as they were watched, lost ones as no longer able to win).
- **Firth's penalized likelihood**: a fit that keeps estimates finite when a group never wins.
- **Mature cohort**: deals old enough for their outcome to be known within the horizon.
- **Markov chain**: the odds of winning from each stage, estimated from the moves between stages.
- **p-value, corrected**: how surprising a difference would be by chance, corrected for testing many
  (Benjamini-Hochberg); below 0.05 a difference is called real.
- **95% interval**: the range the true value lies in, 19 times out of 20."""
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")

_HEADING = re.compile(r"^ {0,3}(?P<hashes>#{1,6})[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_SCRIPT = re.compile(r"<script\b", re.IGNORECASE)


def render_report(notebooks: Sequence[Path], out_html: Path, *, title: str, client: str,
                  branding: dict, segment_label: str, quality_note: str, findings: Sequence[str],
                  generated_on: dt.date | None = None) -> Path:
    """Render one self-contained, client-ready HTML report from executed notebooks.

    The notebooks become the report's sections, in order, after a title page, the findings, the
    data-quality note and a table of contents built from their markdown headings. Code, the
    parameters cells (papermill's injected one too), error outputs and stderr are left out; a
    notebook that failed is replaced by a plain sentence saying that its section could not be
    produced. Interactive outputs show their static image. Figures are embedded as data URIs and
    nothing is loaded from the network, so the file stands alone.

    Parameters
    ----------
    notebooks
        Executed notebooks (what papermill wrote), in report order. Empty: a short report whose
        findings and quality note say why there is no analysis (a segment too small, say).
    out_html
        Where to write; missing directories are created. The write is atomic: a reader sees the
        old file or the new one, never part of one.
    title, client, segment_label
        For the title page.
    branding
        ``primary_color`` (any matplotlib colour: ``"#1f4e79"``, ``"navy"``) and ``logo_text``.
    quality_note
        How many rows were excluded and why; each line a paragraph.
    findings
        Plain-language sentences computed from the results; ```code``` and ``**bold**`` are kept.
    generated_on
        The date on the title page; today by default.

    Returns
    -------
    Path
        `out_html`.

    Raises
    ------
    SpecError
        `branding` has an unknown key or a colour that is not one.
    WorkbenchError
        A notebook or the template is missing.
    """
    brand = _branding(branding)
    nb = _combine([Path(p) for p in notebooks], title=f"{title} – {segment_label}")
    report = {
        "title": title, "client": client, "segment_label": segment_label, "brand": brand,
        "date": _long_date(generated_on or dt.date.today()),
        "findings": [str(f) for f in findings],
        "quality_note": [line.strip().removeprefix("- ") for line in (quality_note or "").splitlines()
                         if line.strip()],
        "sections": len(notebooks),
    }
    with _EXPORTER_LOCK:  # one exporter per process: its filters are set per notebook
        body, _ = _exporter().from_notebook_node(nb, resources={"report": report})
    return _write_atomic(Path(out_html), body)


def prepare() -> None:
    """Build this process's report exporter and compile its templates before its first report: a worker does
    so on a thread while a segment's notebooks run, which takes about 0.6 s off that segment's report."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A section\n\nA *sentence* with `code`."),
        nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": "<p>A table</p>", "text/plain": "A table"})])])
    nb.metadata["title"] = "A report"
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}  # the notebooks' own
    report = {"title": "A report", "client": "", "segment_label": "", "brand": _branding({}),
              "date": _long_date(dt.date.today()), "findings": ["A finding."], "quality_note": [], "sections": 1}
    with _EXPORTER_LOCK:
        _exporter().from_notebook_node(nb, resources={"report": report})


def write_index(run_dir: Path, entries: Sequence[dict], *, title: str, client: str, branding: dict,
                generated_on: dt.date | None = None) -> Path:
    """Write `run_dir/index.html`: every segment of a run, its status and headline numbers, linked.

    Parameters
    ----------
    run_dir
        The run's directory; `href` values are relative to it.
    entries
        One per segment, in display order: ``{"segment", "label", "href", "status", "headline"}``,
        `status` one of ``ok``, ``partial``, ``failed``, ``too_small``; `headline` maps names to
        numbers, formatted by `format_headline` (shares as percentages, days, counts). Optional:
        ``headline_text``, the segment in one sentence (plain text), and ``pdf``, the href of its
        PDF. A report or PDF that is not on disk is listed without a link.
    title, client, branding, generated_on
        As for `render_report`.

    Returns
    -------
    Path
        The index written (atomically).

    Raises
    ------
    WorkbenchError
        An entry misses a key, has an unknown status, an absolute `href`, or a share outside [0, 1].
    """
    run_dir = Path(run_dir)
    brand = _branding(branding)
    _check_entries(entries)
    columns = list(dict.fromkeys(key for entry in entries for key in (entry.get("headline") or {})))
    rows = []
    for entry in entries:
        headline = entry.get("headline") or {}
        rows.append({
            "label": str(entry["label"]), "segment": str(entry["segment"]), "status": entry["status"],
            "status_text": STATUSES[entry["status"]],
            "reasons": [_short(r) for r in entry.get("reasons") or []][:MAX_SHOWN],
            "href": entry["href"] if (run_dir / entry["href"]).is_file() else None,
            "pdf": entry["pdf"] if entry.get("pdf") and (run_dir / entry["pdf"]).is_file() else None,
            "headline_text": str(entry.get("headline_text") or ""),
            "cells": [_headline_cell(k, headline, entry["status"]) for k in columns],
        })
    page = index_template().render(
        title=title, client=client, brand=brand, date=_long_date(generated_on or dt.date.today()),
        columns=[k.replace("_", " ").capitalize() for k in columns], rows=rows,
        counts={status: sum(e["status"] == status for e in entries) for status in STATUSES},
    )
    return _write_atomic(run_dir / "index.html", page)


def prepare_index() -> None:
    """Compile the index page's template before the index is written: a run's main process does so on a thread
    while its kernels work."""
    index_template()


def index_template():
    """The index page's compiled template, built once per process; jinja still reloads it if its file
    changed."""
    return _index_environment(_template_dir()).get_template("run_index.html.j2")


@functools.cache
def _index_environment(folder: Path):
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                             autoescape=False)
    env.filters["inline_markdown"] = inline_markdown
    return env


def format_headline(key: str, value) -> str:
    """A headline number as the index shows it, its format read from the words of its key.

    Shares (``win_probability``, ``conversion_rate``: fractions in [0, 1]) as percentages, days
    (``median_days_to_close``) in whole days, money (``pipeline_value``) abbreviated, other whole
    numbers with thousands separators; ``None`` and NaN as ``n/a``.

    Examples
    --------
    >>> format_headline("win_probability", 0.4237), format_headline("median_days_to_close", 41.6)
    ('42%', '42 days')
    >>> format_headline("deals", 12500)
    '12,500'
    """
    from ..formats import amount, days, percent

    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if type(value).__name__ in ("bool", "bool_"):
        return "yes" if value else "no"
    if not isinstance(value, numbers.Real):
        raise WorkbenchError(f"Headline `{key}` is {value!r}, not a number. "
                             + fixes("pass numbers (or strings already formatted) in `headline`."))
    x = float(value)
    if x != x:
        return "n/a"
    words = key.lower().split("_")
    if any(w in words for w in SHARE_WORDS):
        if not 0 <= x <= 1:
            raise WorkbenchError(
                f"Headline `{key}` is {value!r}: a share must lie between 0 and 1. "
                + fixes("pass shares as fractions (0.42 for 42%).",
                        f"rename `{key}` if it is not a share (keys with {', '.join(SHARE_WORDS)} are)."))
        return percent(x)
    if any(w in words for w in DAY_WORDS):
        text = days(x)
        return text if text == "not reached" else f"{text} day" + ("" if text == "1" else "s")
    if any(w in words for w in MONEY_WORDS):
        return amount(x)
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.3g}"


# --- rendering helpers ------------------------------------------------------------------

def _headline_cell(key: str, headline: dict, status: str) -> str:
    """One cell of the index: ``—`` when the key is absent; a null day count of a complete segment is
    a median never reached (`summary.json` writes infinity as null)."""
    if key not in headline:
        return "—"
    if headline[key] is None and status == "ok" and any(w in key.lower().split("_") for w in DAY_WORDS):
        return "not reached"
    return format_headline(key, headline[key])


def _short(reason: str, limit: int = 160) -> str:
    """A reason as the index lists it: one line, cut at ``limit`` characters."""
    text = " ".join(str(reason).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _template_dir() -> Path:
    folder = TEMPLATES / REPORT_TEMPLATE
    if not (folder / "index.html.j2").is_file():
        raise WorkbenchError(
            f"The report template is missing: no `{folder / 'index.html.j2'}`. "
            + fixes("restore `templates/report/` from version control (a checkout) or reinstall workbench "
                    "(a wheel carries it as workbench/templates/report/)."))
    return folder


def _exporter_class():
    """nbconvert's HTMLExporter without its last pass, which parses the whole page again with
    BeautifulSoup to give images without alt text a placeholder and outputs a tabindex: about 3 s of a
    4 s report (every figure of a report has its alt text from its section: tests check it); and without
    a check of the whole notebook after each preprocessor."""
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class ReportExporter(HTMLExporter):
        def from_notebook_node(self, nb, resources=None, **kw):
            language = nb.metadata.get("language_info", {})
            lexer = language.get("pygments_lexer", language.get("name", None))
            self.register_filter("highlight_code", self.filters.get(
                "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
            resources = self._init_resources(resources)
            self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

        def _validate_preprocessor(self, nbc, preprocessor):
            """Not after every preprocessor: the notebooks were checked as they were read (`_combine`), and the
            preprocessors only drop cells and outputs and rewrite headings. nbconvert checking the whole combined
            notebook after each of its ten took 0.04 s of every report."""

    return ReportExporter


#: The report exporter of this process, by template folder, and the lock its use takes.
_EXPORTERS: dict = {}
_EXPORTER_LOCK = threading.Lock()


def _exporter():
    """The report exporter (`_exporter_class`) with the `report` template: outputs only, no prompts,
    images inlined. Built once per process: its templates then compile once, not for every report
    (0.16 s of a report; jinja still reloads a template whose file changed)."""
    folder = _template_dir()
    if folder not in _EXPORTERS:
        _EXPORTERS[folder] = _new_exporter()
    return _EXPORTERS[folder]


def _new_exporter():
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(REMOVED_CELL_TAGS)
    config.TagRemovePreprocessor.remove_all_outputs_tags = set(REMOVED_OUTPUT_TAGS)
    config.HTMLExporter.exclude_input = True
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    config.HTMLExporter.embed_images = True
    # The notebook is validated once, after every preprocessor, not after each one (14 validations were
    # 0.12-0.15 s of a 0.2 s report).
    config.HTMLExporter.optimistic_validation = True
    exporter = _exporter_class()(config=config, template_name=REPORT_TEMPLATE,
                            extra_template_basedirs=[str(TEMPLATES)])
    # Registered after nbconvert's own, so they see the cells TagRemovePreprocessor kept.
    exporter.register_preprocessor(_client_outputs, enabled=True)
    exporter.register_preprocessor(_table_of_contents, enabled=True)
    exporter.register_filter("inline_markdown", inline_markdown)
    exporter.register_filter("css_string", css_string)
    return exporter


def _combine(paths: list[Path], title: str):
    """One notebook holding every notebook's cells, the data overview shown once.

    A notebook that stopped keeps its cells up to the one that raised, followed by a note that
    the rest could not be produced (only the note when nothing came before it).
    """
    import nbformat

    from ..recordkeys import RECORD_KEY

    combined = nbformat.v4.new_notebook()
    combined.metadata["title"] = title
    shown = set()
    for i, path in enumerate(paths, 1):
        if not path.is_file():
            raise WorkbenchError(f"Cannot render the report: notebook `{path}` does not exist. "
                                 + fixes("pass the executed notebooks papermill wrote (its output paths)."))
        nb = nbformat.read(path, as_version=4)
        heading = _section_heading(nb)
        cells = list(nb.cells)
        stop = _first_failed_cell(nb)
        if stop is not None:
            kept = cells[:stop]
            ran = any(c.cell_type == "code" and c.get("outputs") and not _tagged(c) for c in kept)
            note = STOPPED_SECTION if ran else FAILED_SECTION
            cells = (kept if ran else [c for c in kept if c.cell_type == "markdown" and not _tagged(c)][:1])
            cells.append(nbformat.v4.new_markdown_cell(note, metadata={"tags": ["wb-section-failed"]}))
        if heading is None or not any(c.cell_type == "markdown" and not _tagged(c) for c in cells):
            cells.insert(0, nbformat.v4.new_markdown_cell(f"# {heading or _title_from(path)}"))
        kept_cells = []
        for cell in cells:
            keys = {o.get("metadata", {}).get(RECORD_KEY, {}).get("key") for o in cell.get("outputs", [])}
            once = keys & set(SHOWN_ONCE)
            if once & shown:
                continue
            shown |= once
            kept_cells.append(cell)
        for j, cell in enumerate(kept_cells):
            cell["id"] = f"s{i}-c{j}"  # unique across notebooks, and the same on every run
            combined.cells.append(cell)
    combined.cells.extend(_appendix(combined.cells))
    return combined


def _appendix(cells) -> list:
    """Cells of the methods appendix: a glossary, then every detail table taken out of the body (the
    outputs marked `DETAIL_KEY`), under the title of the section it belongs to."""
    import nbformat

    from ..recordkeys import DETAIL_KEY

    details: dict[str, list] = {}
    for cell in cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            title = output.get("metadata", {}).get(DETAIL_KEY)
            if title:
                details.setdefault(title, []).append(output)
            else:
                kept.append(output)
        cell.outputs = kept
    if not details:
        return []
    out = [nbformat.v4.new_markdown_cell("# Methods and detail tables\n\n" + GLOSSARY)]
    for n, (title, outputs) in enumerate(details.items()):
        out.append(nbformat.v4.new_markdown_cell(f"## {title}"))
        out.append(nbformat.v4.new_code_cell("", outputs=outputs, id=f"appendix-{n}"))
    for n, cell in enumerate(out):
        cell["id"] = f"appendix-c{n}"
    return out


def _tagged(cell) -> bool:
    """A cell the report removes whole (parameters, remove-cell...)."""
    return bool(set(cell.metadata.get("tags", [])) & set(REMOVED_CELL_TAGS))


def _first_failed_cell(nb) -> int | None:
    """Index of the cell where the notebook stopped (an error output, or papermill's mark); None if it ran through."""
    if not _failed(nb):
        return None
    for n, cell in enumerate(nb.cells):
        if cell.metadata.get("papermill", {}).get("exception"):
            return n
        if any(o.output_type == "error" and not (o.ename == "SystemExit" and o.evalue in ("", "0"))
               for o in cell.get("outputs", [])):
            return n
    # Papermill marked the run failed without an error cell (a timeout, a dead kernel): cut after the
    # last cell that finished.
    finished = [n for n, c in enumerate(nb.cells) if c.metadata.get("papermill", {}).get("status") == "completed"]
    return finished[-1] + 1 if finished else 0


def _failed(nb) -> bool:
    """Papermill recorded an exception, or a cell holds an error (a clean ``sys.exit()`` aside, as papermill does)."""
    if nb.metadata.get("papermill", {}).get("exception"):
        return True
    for cell in nb.cells:
        if cell.metadata.get("papermill", {}).get("exception"):
            return True
        for out in cell.get("outputs", []):
            if out.output_type == "error" and not (out.ename == "SystemExit" and out.evalue in ("", "0")):
                return True
    return False


def _headings(source: str):
    """``(line number, level, text)`` of the ATX headings of a markdown source, fenced code skipped."""
    fence = None
    for n, line in enumerate(source.splitlines()):
        opening = _FENCE.match(line)
        if opening:
            mark = opening["fence"]
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
            continue
        match = _HEADING.match(line) if fence is None else None
        if match and match["text"]:
            yield n, len(match["hashes"]), match["text"]


def _section_heading(nb) -> str | None:
    """The first level-1 heading of the cells a report keeps."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not set(cell.metadata.get("tags", [])) & set(REMOVED_CELL_TAGS):
            for _, level, text in _headings(cell.source):
                if level == 1:
                    return text
    return None


def _title_from(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip().capitalize()


def _client_outputs(nb, resources):
    """Preprocessor: drop errors and stderr, show interactive outputs as images, drop cells left empty."""
    kept = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [_static(out) for out in cell.get("outputs", [])
                            if out.output_type != "error"
                            and not (out.output_type == "stream" and out.get("name") == "stderr")]
            if not cell.outputs:
                continue
        kept.append(cell)
    nb.cells = kept
    return nb, resources


def _static(out):
    """A display output a static page can show: an interactive one becomes its image, or a note."""
    data = out.get("data")
    if not data:
        return out
    html_text = data.get("text/html", "")
    html_text = "".join(html_text) if isinstance(html_text, list) else html_text
    interactive = any(m.startswith(INTERACTIVE_MIMES) for m in data) or bool(_SCRIPT.search(html_text))
    if not interactive:
        return out
    metadata = out.get("metadata", {})
    keep = next((m for m in STATIC_IMAGES if m in data), None)
    if keep is None and html_text and not _SCRIPT.search(html_text):
        keep = "text/html"
    if keep is None:
        out["data"], out["metadata"] = {"text/markdown": NO_STATIC_VERSION}, {}
    else:
        out["data"] = {keep: data[keep]}
        out["metadata"] = {keep: metadata[keep]} if keep in metadata else {}
    return out


def _table_of_contents(nb, resources):
    """Preprocessor: give every heading down to `TOC_DEPTH` an anchor and list them in `resources`."""
    toc = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for n, level, text in _headings(cell.source):
            if level > TOC_DEPTH:
                continue
            anchor = f"section-{len(toc) + 1}"
            toc.append({"level": level, "text": text, "anchor": anchor})
            # The span wraps the text: an empty element would come out self-closed (`<a/>`),
            # which browsers read as an open tag.
            lines[n] = f'{"#" * level} <span id="{anchor}" class="wb-anchor">{text}</span>'
        cell.source = "\n".join(lines)
    resources.setdefault("report", {})["toc"] = toc
    return nb, resources


def _branding(branding: dict | None) -> dict:
    """Validated branding, with the text colour that reads on the primary colour."""
    branding = dict(branding or {})
    unknown = sorted(set(branding) - set(BRANDING))
    if unknown:
        raise SpecError(f"Unknown branding key(s) {', '.join(f'`{k}`' for k in unknown)}: a report takes "
                        f"{' and '.join(f'`{k}`' for k in BRANDING)}. "
                        + fixes("correct the spelling.", "remove the key(s)."))
    color = branding.get("primary_color") or BRANDING["primary_color"]
    try:
        red, green, blue = _rgb(color)
    except ValueError:
        raise SpecError(f"Branding `primary_color` {color!r} is not a colour. "
                        + fixes("give a hex colour such as '#1f4e79'.", "or a named colour such as 'navy'.")) from None
    light, dark = "#ffffff", "#111827"
    on_primary = max((light, dark), key=lambda text: _contrast((red, green, blue), _rgb(text)))
    primary = "#" + "".join(f"{round(c * 255):02x}" for c in (red, green, blue))
    return {"primary": primary, "on_primary": on_primary, "logo_text": str(branding.get("logo_text") or "")}


def _rgb(color: str) -> tuple[float, float, float]:
    """A colour as red, green and blue from 0 to 1: ``#rrggbb`` and ``#rgb`` read here, any other colour
    matplotlib knows (``navy``) by matplotlib, imported only then. Raises ValueError for anything else."""
    text = color if isinstance(color, str) else ""
    if re.fullmatch(r"#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3}", text):
        digits = text[1:] if len(text) == 7 else "".join(2 * d for d in text[1:])
        return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))
    import matplotlib.colors as mcolors

    return mcolors.to_rgb(color)


def _contrast(a: tuple, b: tuple) -> float:
    """WCAG contrast ratio of two RGB colours (1 to 21)."""
    def luminance(rgb):
        return sum(w * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
                   for w, c in zip((0.2126, 0.7152, 0.0722), rgb))
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _check_entries(entries: Sequence[dict]) -> None:
    """Every problem of the index entries at once."""
    problems = []
    for n, entry in enumerate(entries, 1):
        name = f"entry {n}" + (f" (`{entry['segment']}`)" if "segment" in entry else "")
        missing = [k for k in ("segment", "label", "href", "status") if k not in entry]
        if missing:
            problems.append(f"{name} misses {', '.join(f'`{k}`' for k in missing)}")
            continue
        if entry["status"] not in STATUSES:
            problems.append(f"{name} has status {entry['status']!r}, not one of {', '.join(STATUSES)}")
        href = str(entry["href"])
        if href.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", href):
            problems.append(f"{name} has `href` {href!r}: it must be relative to the run directory")
    if problems:
        shown = "; ".join(problems[:MAX_SHOWN]) + (f" (first {MAX_SHOWN} of {len(problems)} shown)"
                                                  if len(problems) > MAX_SHOWN else "")
        raise WorkbenchError(f"Cannot write the run index: {shown}. "
                             + fixes("build entries as {'segment', 'label', 'href': 'segments/<slug>/report.html', "
                                     "'status': 'ok'|'partial'|'failed'|'too_small', 'headline': {...}}."))


def _long_date(day: dt.date) -> str:
    """``23 November 2025``, whatever the locale."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _write_atomic(path: Path, text: str) -> Path:
    """Write through a temporary file in the same directory and `os.replace` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
