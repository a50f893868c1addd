"""What the runner reads back from a segment's executed notebooks: each section's record.

Every displayed `Section` left a record in its first output's metadata (`RECORD_KEY`):
status, reason, the figures it showed, its key findings and caveats. From those records,
and nothing recomputed, come the segment's `summary.json` (`build_summary`), the findings at
the top of its report (`key_findings`) and its status (`segment_status`): a report and its
summary are one computation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ..jsonsafe import json_safe
from ..recordkeys import FAILED, NOT_APPLICABLE, OK, RECORD_KEY

#: summary.json keys read from section figures, with their value when no section recorded them.
FIGURES = {"counts": None, "as_of": None, "excluded_rows": {"count": 0, "by_reason": []}, "horizon_days": None,
           "win_probability": None, "win_probability_interval": None, "cif_won": {}, "median_days_to_close": None, "stage_conversion": {},
           "median_days_in_stage": {}, "drivers": [], "drivers_cohort": None, "forecast": None}
#: Where each figure comes from, for the sentence saying it is missing from a run.
SOURCES = {"win_probability": "cycle_time", "median_days_to_close": "cycle_time", "stage_conversion":
           "stage_conversion", "median_days_in_stage": "cycle_time", "drivers": "win_loss_drivers"}


def read_records(path: str | Path) -> list[dict]:
    """The section records of one executed notebook, in order, each with its ``notebook`` (the file's stem)."""
    import nbformat

    return records_in(nbformat.read(str(path), as_version=4), Path(path).stem)


def records_in(nb, name: str) -> list[dict]:
    """`read_records` of a notebook already read (``name``: its file's stem)."""
    from .report import REMOVED_CELL_TAGS

    out = []
    for cell in nb.cells:
        if set(cell.metadata.get("tags", [])) & set(REMOVED_CELL_TAGS):
            continue  # not in the report (the interactive builder), so not in its summary either
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            record = output.get("metadata", {}).get(RECORD_KEY)
            if record:
                out.append({**record, "notebook": name})
    return out


def notebook_error(nb) -> str | None:
    """The error that stopped an executed notebook (read with nbformat) outside any section (``None``: it
    ran to the end)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.output_type == "error" and not (output.ename == "SystemExit" and output.evalue in ("", "0")):
                return f"{output.ename}: {output.evalue}"
    exception = nb.metadata.get("papermill", {}).get("exception")
    return "the notebook did not finish" if exception else None


def build_summary(segment: Mapping, records: Sequence[dict], *, notebooks: Sequence[str] = (),
                  counts: Mapping | None = None, excluded: Mapping | None = None,
                  notebook_errors: Mapping[str, str] | None = None) -> dict:
    """The segment's `summary.json` from its sections' records (see the README for the keys).

    ``counts`` (deals by outcome) and ``excluded`` (the load's excluded rows), which the runner
    knows, stand in when no section recorded them (a notebook of your own without sections).
    """
    out = {"segment": dict(segment), "status": segment_status(records, notebook_errors or {}, notebooks)[0]}
    shown = [r for r in records if r["status"] == OK and r["key"] != "settings_used"]
    for key, empty in FIGURES.items():
        found = next((r["figures"][key] for r in shown if r.get("figures", {}).get(key) is not None), None)
        out[key] = found if found is not None else empty
    if out["counts"] is None and counts is not None:
        out["counts"] = {k: int(counts[k]) for k in ("deals", "won", "lost", "open")}
    if not any("excluded_rows" in r.get("figures", {}) for r in shown) and excluded is not None:
        out["excluded_rows"] = dict(excluded)
    out["settings"] = {r["notebook"]: {k: v for k, v in r["figures"].items() if v not in (None, [])}
                       for r in records if r["key"] == "settings_used" and r["status"] == OK}
    out["sections"] = [{"notebook": r["notebook"], "section": r["key"], "title": r["title"], "status": r["status"],
                        "reason": r["reason"] or None} for r in records if r["key"] not in ("overview", "settings_used")]
    ran = {r["notebook"] for r in records}
    warnings = [note for r in records for note in r.get("notes", [])]
    for key, notebook in SOURCES.items():
        if notebook not in ran:
            warnings.append(f"`{key}` is empty: the run did not include `{notebook}.ipynb`.")
    for name, error in (notebook_errors or {}).items():
        warnings.append(f"`{name}` stopped before its end: {error}")
    out["warnings"] = list(dict.fromkeys(warnings))
    return json_safe(out)


def key_findings(records: Sequence[dict]) -> list[str]:
    """The sentences sections marked for the report's findings, in report order, each once."""
    return list(dict.fromkeys(s for r in records if r["status"] == OK for s in r.get("findings", [])))


def segment_status(records: Sequence[dict], notebook_errors: Mapping[str, str],
                   notebooks: Sequence[str] = ()) -> tuple[str, list[str]]:
    """``ok`` (complete), ``partial`` or ``failed``, and the reasons for anything short of complete.

    Complete: every section rendered or says why it does not apply to these data. Partial: some
    section failed, or a notebook stopped early, but other sections (or whole notebooks of
    ``notebooks``) rendered. Failed: nothing rendered.
    """
    reasons = [f"{r['notebook']} › {r['title']}: {r.get('error') or r['reason']}" for r in records
               if r["status"] == FAILED]
    reasons += [f"{name}: {error}" for name, error in notebook_errors.items()]
    shown = (any(r["status"] in (OK, NOT_APPLICABLE) for r in records)
             or any(name not in notebook_errors for name in notebooks))
    if not reasons:
        return "ok", []
    return ("partial" if shown else "failed"), reasons


def not_applicable(records: Sequence[dict]) -> list[str]:
    """``notebook › title`` of every section that does not apply to these data."""
    return [f"{r['notebook']} › {r['title']}" for r in records if r["status"] == NOT_APPLICABLE]
