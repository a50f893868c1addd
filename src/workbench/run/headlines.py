"""One line per segment: the index's headline, and in a segment's report the segment against all deals.

Written after every segment has run, from the figures their notebooks recorded (`summary.json`):
nothing is estimated here. A segment's share won is called higher or lower than all deals' only
when the overall share lies outside the segment's 95% interval; otherwise it is "about the same".
Shares read at different horizons are never compared.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

from ..formats import percent
from ..timeunits import DAYS, unit_for


def plural(column: str) -> str:
    """``persona`` -> ``personas``, ``industry`` -> ``industries``, ``business unit`` -> ``business units``."""
    word = column.replace("_", " ").strip()
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def _wins(summary: Mapping) -> tuple[float, float] | None:
    """(share won, horizon) when both were recorded."""
    share, horizon = summary.get("win_probability"), summary.get("horizon_days")
    if share is None or horizon is None:
        return None
    return float(share), float(horizon)


def _unit(*summaries: Mapping):
    """Hours when the deals close within hours (as the reports choose), else days."""
    medians = [s["median_days_to_close"] for s in summaries if s and s.get("median_days_to_close") is not None]
    return unit_for(medians) if medians else DAYS


def _closes(summary: Mapping) -> str:
    median = summary.get("median_days_to_close")
    if median is None:
        return ""
    return f"half of them close within {_unit(summary)(float(median))}"


def overall_headline(summary: Mapping) -> str:
    """All deals in one line: the share won within the horizon and the median time to close."""
    parts = []
    wins = _wins(summary)
    if wins:
        parts.append(f"{percent(wins[0])} of deals won within {_unit(summary)(wins[1])}")
    closes = _closes(summary)
    if closes:
        parts.append(closes)
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if parts else ""


def _rank(share: float, peers: Sequence[float], group: str) -> str:
    """``the highest of 5 personas``, ``the 2nd lowest of 5 personas``."""
    n = len(peers)
    if n < 3:
        return ""
    higher = sum(p > share for p in peers)
    lower = sum(p < share for p in peers)
    if higher == 0:
        return f"the highest of {n} {group}"
    if lower == 0:
        return f"the lowest of {n} {group}"
    if higher == 1:
        return f"the 2nd highest of {n} {group}"
    if lower == 1:
        return f"the 2nd lowest of {n} {group}"
    return ""


def versus_all(label: str, summary: Mapping, overall: Mapping | None, peers: Sequence[Mapping] = (),
               group: str = "segments") -> str:
    """The segment against all deals, in one sentence (``""`` when the figures to compare are missing).

    ``peers``: the summaries of the segments of the same split (this one included), for its rank.
    """
    wins, everyone = _wins(summary), _wins(overall or {})
    if not wins:
        return ""
    share, horizon = wins
    unit = _unit(summary, overall or {})
    text = f"{label} wins {percent(share)} of its deals within {unit(horizon)}"
    interval = summary.get("win_probability_interval")
    if interval and None not in interval:
        text += f" (95% interval {percent(interval[0])} to {percent(interval[1])})"
    if everyone and everyone[1] == horizon:
        base = everyone[0]
        if interval and None not in interval and interval[0] <= base <= interval[1]:
            text += f", about the same as all deals ({percent(base)})"
        else:
            word = "more" if share > base else "less"
            text += f", {word} than all deals ({percent(base)})"
        shares = [w[0] for w in map(_wins, peers) if w and w[1] == horizon]
        rank = _rank(share, shares, group)
        if rank:
            text += f": {rank}"
    mine, theirs = summary.get("median_days_to_close"), (overall or {}).get("median_days_to_close")
    if mine is not None and theirs is not None:
        text += f". Half its deals close within {unit(float(mine))}, against {unit(float(theirs))} for all deals"
    return text + "."


def run_headlines(segments: Sequence[Mapping], summaries: Mapping[str, Mapping]) -> dict[str, str]:
    """A headline per segment slug (plain text): all deals described, each other segment against them.

    ``segments``: the run's segment records (``slug``, ``label``, ``filter``, and ``scope``, the name a
    sentence gives the segment: ``Procurement`` where the label is ``persona: Procurement``); ``summaries``:
    the `summary.json` of each segment that has one, by slug.
    """
    overall = next((summaries.get(s["slug"]) for s in segments if not s["filter"]), None)
    out = {}
    for segment in segments:
        summary = summaries.get(segment["slug"])
        if summary is None:
            continue
        if not segment["filter"]:
            out[segment["slug"]] = overall_headline(summary)
            continue
        columns = tuple(segment["filter"])
        peers = [summaries[s["slug"]] for s in segments
                 if s["filter"] and tuple(s["filter"]) == columns and s["slug"] in summaries]
        group = plural(columns[0]) if len(columns) == 1 else "segments"
        out[segment["slug"]] = versus_all(segment.get("scope") or segment["label"], summary, overall, peers, group)
    return out


#: Where a segment report holds its sentence against all deals (the template writes the markers empty).
VERSUS_MARKERS = ("<!--wb-versus-->", "<!--/wb-versus-->")


def insert_versus(report: Path, sentence: str) -> bool:
    """Put ``sentence`` (plain text, escaped here) first in the report's findings, replacing what an
    earlier run put there; the file is rewritten atomically. False when the report has no place for
    it (written by an older template)."""
    page = report.read_text(encoding="utf-8")
    start, end = VERSUS_MARKERS
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(page):
        return False
    item = f'<li class="wb-versus">{html.escape(sentence)}</li>' if sentence else ""
    tmp = report.with_name(f".{report.name}.tmp-{os.getpid()}")
    tmp.write_text(pattern.sub(lambda _: start + item + end, page, count=1), encoding="utf-8")
    os.replace(tmp, report)
    return True
