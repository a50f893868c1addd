"""Journey grids to files: standalone HTML, XLSX, PNG/SVG (drawn with matplotlib), Markdown, YAML.

Every format is drawn from `workbench.journey.render.grid`, so they say the same thing.
Files are written to a temporary name and moved into place.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import matplotlib.colors as mcolors
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

from ..dataset.groups import OVERALL
from ..exceptions import fixes
from ..markup import is_formula_like
from .facts import JourneyFacts
from .model import Journey, JourneyError
from .render import grid, to_html, to_markdown

FORMATS = (".html", ".xlsx", ".png", ".svg", ".md", ".yaml")
BRAND = "#1f4e79"
TEXT_FILL, DATA_FILL, LANE_FILL = "#fffdf3", "#f6f7f9", "#eef2f7"
WRAP = 34  # characters per line in an image cell


def export(journey: Journey, facts: JourneyFacts, path: str | Path, persona: str | None = None, *,
           brand: str = BRAND) -> Path:
    """Write the grid to ``path``; the format follows the suffix (one of `FORMATS`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise JourneyError(f"Cannot export a journey grid to `{path}`: unknown file type {suffix!r}. "
                           + fixes(f"use one of {', '.join(FORMATS)}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    if suffix == ".html":
        tmp.write_text(to_html(journey, facts, persona, standalone=True, brand=brand), encoding="utf-8")
    elif suffix == ".md":
        tmp.write_text(to_markdown(journey, facts, persona), encoding="utf-8")
    elif suffix == ".yaml":
        tmp.write_text(journey.to_yaml(), encoding="utf-8")
    elif suffix == ".xlsx":
        to_workbook(journey, facts, persona, brand=brand).save(tmp)
    else:
        # SVG text stays text (searchable, small) and is escaped by matplotlib; CRM text with `$` is
        # never read as mathtext.
        with matplotlib.rc_context({"svg.fonttype": "none", "text.parse_math": False}):
            figure(journey, facts, persona, brand=brand).savefig(tmp, format=suffix[1:], dpi=150)
    tmp.replace(path)
    return path


def to_workbook(journey: Journey, facts: JourneyFacts, persona: str | None = None, *, brand: str = BRAND) -> Workbook:
    """The grid as an Excel workbook: a title, stages across, lanes down, text wrapped."""
    persona = _persona(facts, persona)
    cells = grid(journey, facts, persona)
    wb = Workbook()
    ws = wb.active
    ws.title = _sheet_title(journey.persona.name)
    argb = "FF" + mcolors.to_hex(brand)[1:].upper()
    thin = Side(style="thin", color="FFD0D5DD")
    box = Border(left=thin, right=thin, top=thin, bottom=thin)
    wrap = Alignment(wrap_text=True, vertical="top")
    _text(ws["A1"], f"{journey.title}: {journey.persona.name}")
    ws["A1"].font = Font(bold=True, size=14, color=argb)
    _text(ws["A2"], journey.persona.description)
    ws["A3"] = f"Data as of {facts.as_of.date()}"
    ws["A3"].font = Font(italic=True, color="FF666666")
    header = 5
    ws.cell(header, 1, "")
    for j, stage in enumerate(journey.stages, start=2):
        c = _text(ws.cell(header, j), f"{stage.label}\n({', '.join(stage.covers)})")
        c.font, c.fill, c.alignment, c.border = Font(bold=True, color="FFFFFFFF"), _fill(argb), wrap, box
        ws.column_dimensions[c.column_letter].width = 32
    ws.column_dimensions["A"].width = 24
    for i, lane in enumerate(journey.lanes, start=header + 1):
        c = _text(ws.cell(i, 1), lane.name)
        c.font, c.fill, c.alignment, c.border = Font(bold=True), _fill("FF" + LANE_FILL[1:].upper()), wrap, box
        fill = _fill("FF" + (DATA_FILL if lane.kind == "data" else TEXT_FILL)[1:].upper())
        for j, stage in enumerate(journey.stage_labels(), start=2):
            c = _text(ws.cell(i, j), cells.loc[lane.name, stage])
            c.fill, c.alignment, c.border = fill, wrap, box
        lines = max(len(textwrap.wrap(t, 30)) + t.count("\n") for t in cells.loc[lane.name]) if len(cells.columns) else 1
        ws.row_dimensions[i].height = max(30, 15 * lines)
    ws.freeze_panes = ws.cell(header + 1, 2)
    return wb


def _text(cell, value):
    """Put CRM text into a cell as text: a value typed like ``=2+3`` or ``=cmd|...`` stays a string,
    never a formula (openpyxl would store it as one)."""
    cell.value = value
    if is_formula_like(value):
        cell.data_type = "s"
    return cell


def _fill(argb: str) -> PatternFill:
    return PatternFill("solid", start_color=argb, end_color=argb)


def _sheet_title(name: str) -> str:
    """Excel sheet names: at most 31 characters, none of ``[]:*?/\\``."""
    cleaned = "".join("-" if ch in "[]:*?/\\" else ch for ch in name).strip() or "Journey"
    return cleaned[:31]


def _persona(facts: JourneyFacts, persona: str | None) -> str:
    return persona or (facts.personas[0] if len(facts.personas) == 1 else OVERALL)


def figure(journey: Journey, facts: JourneyFacts, persona: str | None = None, *, brand: str = BRAND) -> Figure:
    """The grid drawn with matplotlib: boxes with wrapped text, for PNG and SVG."""
    persona = _persona(facts, persona)
    cells = grid(journey, facts, persona)
    lanes, stages = journey.lanes, journey.stages

    def wrapped(text: str, width: int = WRAP) -> str:
        return "\n".join(textwrap.fill(part, width) if part else "" for part in text.split("\n"))

    bodies = [[wrapped(cells.loc[lane.name, s.label]) or "—" for s in stages] for lane in lanes]
    heads = [wrapped(f"{s.label}\n({', '.join(s.covers)})", 28) for s in stages]
    line = 0.17  # inches per text line at 8 pt
    lane_heights = [max(b.count("\n") + 1 for b in row) * line + 0.2 for row in bodies]
    head_height = max(h.count("\n") + 1 for h in heads) * line + 0.25
    label_width, cell_width, top = 1.7, 2.45, 0.8
    width = label_width + cell_width * len(stages) + 0.3
    height = top + head_height + sum(lane_heights) + 0.3
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    ax.text(0.15, 0.3, f"{journey.title}: {journey.persona.name}", fontsize=13, fontweight="bold", color=brand,
            va="center")
    ax.text(0.15, 0.58, f"{journey.persona.description}  (data as of {facts.as_of.date()})", fontsize=8,
            color="#555555", va="center")
    pad = 0.04
    for j, head in enumerate(heads):
        x = label_width + j * cell_width
        ax.add_patch(Rectangle((x + pad, top), cell_width - 2 * pad, head_height - pad, color=brand))
        ax.text(x + 0.1, top + 0.1, head, fontsize=8, fontweight="bold", color="white", va="top")
    y = top + head_height
    for lane, row, h in zip(lanes, bodies, lane_heights):
        ax.add_patch(Rectangle((0.1, y + pad), label_width - 0.1 - pad, h - 2 * pad, color=LANE_FILL))
        ax.text(0.18, y + 0.1, wrapped(lane.name, 20), fontsize=8, fontweight="bold", va="top")
        fill = DATA_FILL if lane.kind == "data" else TEXT_FILL
        for j, body in enumerate(row):
            x = label_width + j * cell_width
            ax.add_patch(Rectangle((x + pad, y + pad), cell_width - 2 * pad, h - 2 * pad, facecolor=fill,
                                   edgecolor="#dde1e7", linewidth=0.6))
            ax.text(x + 0.1, y + 0.1, body, fontsize=7.5, va="top", color="#222222" if body != "—" else "#999999")
        y += h
    return fig

