"""Journey grids as text: cell contents, suggestions, HTML, Markdown and persona comparisons.

`grid` turns a journey and its persona's facts into a table of cell texts (lanes down,
stages across); every output format draws from it, so the HTML, Markdown, XLSX and
image of a grid say the same thing. Data lanes are written from `JourneyFacts`; text
lanes show what the analyst typed, and `prefill` seeds their empty cells with
suggestions written from the same facts.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from .. import tables
from ..dataset.groups import OVERALL
from ..findings import p_value, percent
from ..markup import markdown_text
from ..timeunits import span
from .facts import JourneyFacts
from .model import Journey, Persona
from ..results import Result, axes

NO_ESTIMATE = "too few deals to estimate"
SEPARATOR = " · "


# --- cell texts ------------------------------------------------------------------------------

def _deals_text(row: dict) -> str:
    head = f"{row['reached']:,} deals reached ({percent(row['reach_share'])} of {row['deals']:,})"
    if not np.isfinite(row["conversion"]):
        return f"{head}\nconversion onward: {NO_ESTIMATE}"
    return (f"{head}\n{percent(row['conversion'])} go on to {row['next']} "
            f"({percent(row['conversion_low'])}–{percent(row['conversion_high'])})")


def _days_text(row: dict) -> str:
    still = f"{row['still_in']:,} still in it"
    if not np.isfinite(row["median_days"]):
        return f"median: {NO_ESTIMATE} or fewer than half have left\n{still}"
    return f"median {span(row['median_days'])} ({span(row['median_low'])}–{span(row['median_high'])})\n{still}"


def _shares(top: pd.DataFrame) -> str:
    return SEPARATOR.join(f"{r.label} {percent(r.share)}" for r in top.itertuples())


def _touch_text(facts: JourneyFacts, persona: str, stage: str) -> str:
    channels, kinds = facts.top(persona, stage, "channel"), facts.top(persona, stage, "kind")
    if channels.empty and kinds.empty:
        return "no touchpoints recorded in this stage"
    base = int((channels if len(channels) else kinds)["base"].iloc[0])
    return "\n".join(t for t in (_shares(channels), _shares(kinds), f"of {base:,} touches") if t)


def _objection_text(facts: JourneyFacts, persona: str, stage: str) -> str:
    top = facts.top(persona, stage, "objection")
    if top.empty:
        return "no deals lost in this stage" if facts.stage(persona, stage)["lost_here"] == 0 \
            else "no loss reasons recorded"
    return f"{_shares(top)}\nof {int(top['base'].iloc[0]):,} deals lost here"


def _role_text(facts: JourneyFacts, persona: str, stage: str) -> str:
    top = facts.top(persona, stage, "role")
    if top.empty:
        return "no contact roles recorded"
    return f"{_shares(top)}\nof the {int(top['base'].iloc[0]):,} deals reaching it have one"


def _sentiment_text(facts: JourneyFacts, persona: str, stage: str) -> str:
    tone = facts.tone(persona, stage)
    if tone is None:
        return "no notes or reasons to read"
    return f"{tone['tone']} ({tone['score']:+.2f} on -1..+1)\nfrom {tone['texts']:,} notes and reasons"


DATA_TEXT = {"deals": lambda f, p, s: _deals_text(f.stage(p, s)),
             "days": lambda f, p, s: _days_text(f.stage(p, s)),
             "touchpoints": _touch_text, "objections": _objection_text, "roles": _role_text,
             "sentiment": _sentiment_text}


def data_cell(facts: JourneyFacts, persona: str, stage: str, metric: str) -> str:
    """The text of a data lane's cell."""
    return DATA_TEXT[metric](facts, persona, stage)


# --- suggestions for text lanes -----------------------------------------------------------------

def suggestion(facts: JourneyFacts, persona: str, stage: str, metric: str) -> str:
    """A first draft for a text lane's cell, written from the facts of ``metric``."""
    if metric == "actions":
        kinds = facts.top(persona, stage, "kind")
        if kinds.empty:
            return ""
        listed = [f"{r.label}s ({percent(r.share)})" for r in kinds.itertuples()]
        return "Mostly " + (", ".join(listed[:-1]) + " and " + listed[-1] if len(listed) > 1 else listed[0]) + \
            " of the touches here."
    if metric == "thoughts":
        return _thoughts(facts, persona, stage)
    if metric == "objections":
        top = facts.top(persona, stage, "objection")
        top = top[~top["label"].str.startswith("(")]
        listed = [f"“{r.label}” ({percent(r.share)})" for r in top.itertuples()]
        return f"{', '.join(listed)} of the deals lost here." if listed else ""
    return data_cell(facts, persona, stage, metric)


def _thoughts(facts: JourneyFacts, persona: str, stage: str) -> str:
    rows = facts.stages[facts.stages["persona"] == persona]
    row = facts.stage(persona, stage)
    parts = []
    medians = rows["median_days"].to_numpy(float)
    if np.isfinite(row["median_days"]) and np.isfinite(medians).sum() > 1:
        if row["median_days"] >= np.nanmax(medians):
            parts.append(f"Takes its time: the longest stage (median {span(row['median_days'])}).")
        elif row["median_days"] <= np.nanmin(medians):
            parts.append(f"Moves quickly: the shortest stage (median {span(row['median_days'])}).")
    if np.isfinite(row["drop_off"]):
        lost = row["drop_off"]
        worst = np.nanmax(rows["drop_off"].to_numpy(float))
        where = " — the biggest drop-out of the journey" if np.isclose(lost, worst) and lost > 0 else ""
        parts.append(f"About {percent(lost)} drop out here{where}." if lost >= 0.005 else "Nearly nobody drops out here.")
    tone = facts.tone(persona, stage)
    if tone is not None and tone["tone"] != "neutral":
        parts.append(f"Notes and reasons here read {tone['tone']}.")
    return " ".join(parts)


def prefill(journey: Journey, facts: JourneyFacts, persona: str = OVERALL) -> Journey:
    """A copy of ``journey`` whose empty text cells hold suggestions for ``persona``
    (text lanes with a ``suggest`` metric only; typed text is never replaced)."""
    out = journey.model_copy(deep=True)
    for lane in journey.lanes:
        if lane.kind != "text" or lane.suggest is None:
            continue
        for stage in journey.stage_labels():
            if not out.cell(lane.name, stage):
                text = suggestion(facts, persona, stage, lane.suggest)
                if text:
                    out.set_cell(lane.name, stage, text)
    return out


# --- the grid ----------------------------------------------------------------------------------

def grid(journey: Journey, facts: JourneyFacts, persona: str | None = None) -> pd.DataFrame:
    """Cell texts: one row per lane, one column per stage label (``persona`` defaults to
    the only persona of ``facts``, or `OVERALL`)."""
    persona = persona or (facts.personas[0] if len(facts.personas) == 1 else OVERALL)
    rows = {}
    for lane in journey.lanes:
        rows[lane.name] = [data_cell(facts, persona, s, lane.metric) if lane.kind == "data" else journey.cell(lane.name, s)
                           for s in journey.stage_labels()]
    return pd.DataFrame.from_dict(rows, orient="index", columns=journey.stage_labels())


def _deal_count(facts: JourneyFacts, persona: str) -> int:
    rows = facts.stages[facts.stages["persona"] == persona]
    return int(rows["deals"].iloc[0]) if len(rows) else 0


CSS = """
.wb-journey{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;color:#222;margin:0 0 1.5em}
.wb-journey h2{margin:0 0 .2em;font-size:1.3em;color:var(--wb-brand,#1f4e79)}
.wb-journey .wb-persona{margin:0 0 .2em}
.wb-journey .wb-meta{margin:0 0 .8em;color:#666;font-size:.85em}
.wb-journey table{border-collapse:separate;border-spacing:4px;table-layout:fixed;width:100%}
.wb-journey table.wb-grid th,.wb-journey table.wb-grid td{vertical-align:top;padding:.5em .6em;font-size:.85em;
  line-height:1.35;white-space:pre-line;overflow-wrap:anywhere;text-align:left}
.wb-journey thead th{background:var(--wb-brand,#1f4e79);color:#fff;font-size:.9em}
.wb-journey thead th small{display:block;font-weight:normal;opacity:.8;font-size:.8em}
.wb-journey thead th.wb-corner{background:none}
.wb-journey tbody th{background:#eef2f7;width:11em;font-weight:600}
.wb-journey td.wb-text{background:#fffdf3;border:1px solid #eadfb4}
.wb-journey td.wb-text.wb-empty{color:#999;font-style:italic}
.wb-journey td.wb-data{background:#f6f7f9;border:1px solid #dde1e7;color:#333}
.wb-journey tbody th .wb-kind{display:block;font-weight:normal;color:#777;font-size:.8em}
.wb-journey .wb-bar{height:5px;background:#dde1e7;margin-top:.4em}
.wb-journey .wb-bar span{display:block;height:5px;background:var(--wb-brand,#1f4e79)}
.wb-journey .wb-differs{background:#fde8e6 !important;border-color:#e8a29b !important}
.wb-journey ul.wb-notes{color:#666;font-size:.8em;margin:.5em 0 0;padding-left:1.2em}
"""


def to_html(journey: Journey, facts: JourneyFacts, persona: str | None = None, *, standalone: bool = False,
            brand: str = "#1f4e79", highlight: set[tuple[str, str]] | frozenset = frozenset()) -> str:
    """The grid as HTML: a ``<div class="wb-journey">`` fragment with its own styles, or a
    complete page with ``standalone=True`` (no scripts, nothing loaded from elsewhere).
    ``highlight`` marks (lane, stage) cells, e.g. where two personas differ."""
    persona = persona or (facts.personas[0] if len(facts.personas) == 1 else OVERALL)
    cells = grid(journey, facts, persona)
    esc = html.escape
    head = "".join(f"<th>{esc(s.label)}<small>{esc(', '.join(s.covers))}</small></th>" for s in journey.stages)
    body = []
    for lane in journey.lanes:
        tds = []
        for stage in journey.stage_labels():
            text = cells.loc[lane.name, stage]
            cls = f"wb-{lane.kind}" + (" wb-empty" if not text else "") + \
                (" wb-differs" if (lane.name, stage) in highlight else "")
            content = esc(text) if text else "—"
            if lane.kind == "data" and lane.metric == "deals":
                share = facts.stage(persona, stage)["conversion"]
                if np.isfinite(share):
                    content += f'<div class="wb-bar" title="conversion onward"><span style="width:{100 * share:.0f}%"></span></div>'
            tds.append(f'<td class="{cls}" data-lane="{esc(lane.name)}" data-stage="{esc(stage)}">{content}</td>')
        kind = "from the data" if lane.kind == "data" else "notes"
        body.append(f'<tr><th>{esc(lane.name)}<span class="wb-kind">{kind}</span></th>{"".join(tds)}</tr>')
    notes = "".join(f"<li>{esc(n)}</li>" for n in facts.notes)
    meta = (f"{_deal_count(facts, persona):,} deals · data as of {facts.as_of.date()} · conversion: of the deals "
            "that reached a stage, the share that eventually reach the next one or beyond (open deals counted as "
            "still in play)")
    fragment = (f'<div class="wb-journey" style="--wb-brand:{esc(brand)}"><style>{CSS}</style>'
                f"<h2>{esc(journey.title)}: {esc(journey.persona.name)}</h2>"
                f'<p class="wb-persona">{esc(journey.persona.description)}</p><p class="wb-meta">{esc(meta)}</p>'
                f'<table class="wb-grid"><thead><tr><th class="wb-corner"></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
                + (f'<ul class="wb-notes">{notes}</ul>' if notes else "") + "</div>")
    if not standalone:
        return fragment
    title = esc(f"{journey.title}: {journey.persona.name}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            f'<body style="margin:2em">{fragment}</body></html>')


def to_markdown(journey: Journey, facts: JourneyFacts, persona: str | None = None) -> str:
    """The grid as a Markdown pipe table (line breaks inside cells as ``<br>``)."""
    persona = persona or (facts.personas[0] if len(facts.personas) == 1 else OVERALL)
    cells = grid(journey, facts, persona)

    def md(text: str) -> str:
        return "<br>".join(markdown_text(line) for line in str(text).split("\n")) or " "

    lines = [f"## {md(journey.title)}: {md(journey.persona.name)}", ""]
    if journey.persona.description:
        lines += [md(journey.persona.description), ""]
    lines.append(f"_{_deal_count(facts, persona):,} deals, data as of {facts.as_of.date()}._")
    lines += ["", "| | " + " | ".join(md(f"{s.label} ({', '.join(s.covers)})") for s in journey.stages) + " |",
              "|---" * (len(journey.stages) + 1) + "|"]
    for lane in journey.lanes:
        lines.append(f"| **{md(lane.name)}** | " + " | ".join(md(t) for t in cells.loc[lane.name]) + " |")
    return "\n".join(lines) + "\n"


# --- two personas side by side -----------------------------------------------------------------

@dataclass(frozen=True)
class PersonaComparison(Result):
    """Where two personas' numbers differ, stage by stage.

    ``table``: per stage, ``reach_a``/``reach_b``, ``conversion_a``/``conversion_b``, their
    ``difference`` (a minus b), ``p_value`` (two-sided z test on the difference, standard
    errors read off each estimate's confidence interval), ``p_adjusted`` (Benjamini-Hochberg
    over the stages) and ``conversion_differs``; ``median_a``/``median_b`` and
    ``days_differ`` (the two medians' confidence intervals do not overlap).
    """

    a: str
    b: str
    table: pd.DataFrame
    alpha: float

    def highlight(self, journey: Journey) -> set[tuple[str, str]]:
        """(lane, stage) cells to mark on a grid: deals lanes where conversion differs, days
        lanes where the medians differ."""
        out = set()
        for lane in journey.lanes:
            column = {"deals": "conversion_differs", "days": "days_differ"}.get(lane.metric or "")
            if lane.kind == "data" and column:
                out |= {(lane.name, r.stage) for r in self.table.itertuples() if getattr(r, column)}
        return out

    def sentences(self) -> list[str]:
        """Plain-language differences (only those significant after correction)."""
        out = []
        for r in self.table.itertuples():
            if r.conversion_differs:
                word = "higher" if r.difference > 0 else "lower"
                out.append(f"{self.a} goes on from {r.stage} {abs(100 * r.difference):.0f} points {word} than "
                           f"{self.b} ({percent(r.conversion_a)} vs {percent(r.conversion_b)}, "
                           f"{p_value(r.p_adjusted)} after correction).")
            if r.days_differ:
                word = "longer" if r.median_a > r.median_b else "shorter"
                out.append(f"{self.a} spends {word} in {r.stage}: median {span(r.median_a)} vs "
                           f"{span(r.median_b)}.")
        return out or [f"No stage differs between {self.a} and {self.b} beyond chance (level {self.alpha:g})."]

    def findings(self):
        """The significant differences in plain language (``sentences()``)."""
        from ..findings import Findings

        return Findings(self.sentences())

    def plot(self, *, ax=None):
        """Conversion from each stage for the two personas, side by side; returns the axes."""
        from matplotlib.ticker import PercentFormatter

        from ..plots import theme

        with theme():
            ax = axes(ax)
            y = np.arange(len(self.table))
            ax.barh(y - 0.2, np.nan_to_num(self.table["conversion_a"].to_numpy(float)), height=0.4, label=self.a)
            ax.barh(y + 0.2, np.nan_to_num(self.table["conversion_b"].to_numpy(float)), height=0.4, label=self.b)
            ax.set_yticks(y, [str(s) for s in self.table["stage"]])
            ax.set_ylim(len(y) - 0.5, -0.5)
            ax.set_xlabel("Conversion from the stage")
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
            ax.legend(loc="lower right")
        return ax

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(s)}</li>" for s in self.sentences())
        return f"<ul>{items}</ul>" + tables.to_html(self.table, index=False)


def compare_personas(facts: JourneyFacts, a: str, b: str, *, alpha: float = 0.05) -> PersonaComparison:
    """Stage by stage, where persona ``a``'s conversion and time in stage differ from ``b``'s."""
    z = norm.ppf(1 - alpha / 2)
    ra, rb = facts.persona(a).stages, facts.persona(b).stages
    t = pd.DataFrame({"stage": ra["stage"], "reach_a": ra["reach_share"], "reach_b": rb["reach_share"].to_numpy(),
                      "conversion_a": ra["conversion"], "conversion_b": rb["conversion"].to_numpy()})
    se_a = (ra["conversion_high"] - ra["conversion_low"]).to_numpy(float) / (2 * z)
    se_b = (rb["conversion_high"] - rb["conversion_low"]).to_numpy(float) / (2 * z)
    t["difference"] = t["conversion_a"] - t["conversion_b"]
    se = np.sqrt(se_a ** 2 + se_b ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["p_value"] = 2 * norm.sf(np.abs(t["difference"].to_numpy(float)) / se)
    t["p_adjusted"] = _bh(t["p_value"].to_numpy(float))
    t["conversion_differs"] = t["p_adjusted"] < alpha
    t["median_a"], t["median_b"] = ra["median_days"].to_numpy(float), rb["median_days"].to_numpy(float)
    apart = (ra["median_low"].to_numpy(float) > rb["median_high"].to_numpy(float)) | \
            (rb["median_low"].to_numpy(float) > ra["median_high"].to_numpy(float))
    t["days_differ"] = apart
    return PersonaComparison(a=a, b=b, table=t.reset_index(drop=True), alpha=alpha)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN stays NaN."""
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return out


def persona_grids_html(journey: Journey, facts: JourneyFacts, personas=None, *, brand: str = "#1f4e79") -> str:
    """Prefilled grids of several personas one below the other (default: every persona of
    ``facts`` but `OVERALL`), each with the structure of ``journey``; ``personas`` maps a
    name to its `Persona` or lists names. With none, a sentence says so (a report section
    is never left empty)."""
    names = [p for p in facts.personas if p != OVERALL] if personas is None else list(personas)
    if not names:
        return ('<p class="wb-journey-none">No grid per persona: the deals here are one persona, or no '
                "persona has enough deals of its own.</p>")
    out = []
    for name in names:
        who = personas[name] if isinstance(personas, dict) else Persona(name=name)
        out.append(to_html(prefill(journey.for_persona(who), facts, name), facts, name, brand=brand))
    return "".join(out)
