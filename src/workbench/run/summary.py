"""`summary.json`: one segment's headline numbers, JSON-safe.

The numbers are the ones the report's sections showed, read back from the executed notebooks
(`workbench.run.records.build_summary`, which lists the keys); nothing is estimated
here. This module keeps what the runner itself writes: the summary of a segment too small
for a report, the rows the load excluded, and the data-quality sentence at the top of a report.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from ..dataset.columns import rows_label

if TYPE_CHECKING:
    from ..dataset.model import Dataset


def too_small_summary(dataset: Dataset, segment: Mapping, min_deals: int) -> dict:
    """The `summary.json` of a segment below ``min_deals`` deals: counts only, no estimates."""
    from ..dataset.model import excluded_rows  # here: a worker writing a report needs no pandas
    from .records import build_summary

    out = build_summary(segment, [], counts=dataset.counts(), excluded=excluded_rows(dataset))
    out["status"] = "too_small"
    out["warnings"] = [too_small_text(len(dataset.deals), min_deals)]
    return out


def too_small_text(n: int, min_deals: int) -> str:
    return (f"This segment has {n:,} deals, fewer than the {min_deals:,} a report needs "
            "(`min_deals_per_segment`), so nothing was estimated for it.")


def quality_note(summary: Mapping, notes: Sequence[str] = ()) -> str:
    """The data-quality box of a report: a sentence on the rows the load excluded, from a summary's
    ``excluded_rows``, then one line per export note (`workbench.dataset.sanity.quality_notes`:
    a cut extract, stale open deals, mixed UTC offsets...)."""
    excluded = summary["excluded_rows"]
    if not excluded["count"]:
        text = "No rows were excluded while loading the data."
    else:
        parts = [f"{rows_label(r['table'], r['rows'])} ({r['check']})" for r in excluded["by_reason"][:5]]
        more = f" and {len(excluded['by_reason']) - 5} more reasons" if len(excluded["by_reason"]) > 5 else ""
        text = (f"{excluded['count']:,} rows of the whole dataset were excluded while loading, before it was split "
                f"into segments, each counted with its reason: {', '.join(parts)}{more}.")
    return "\n".join([text, *(f"- {n}" for n in notes)])
