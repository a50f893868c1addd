"""`summary.json`: one segment's headline numbers, JSON-safe, read off the analyses.

Keys (missing or not estimable values are ``null``, never NaN):

- ``segment``: the filter as a mapping (``{}`` for all deals)
- ``counts``: ``deals``, ``won``, ``lost``, ``open``
- ``win_probability``: Aalen-Johansen cumulative incidence of winning at ``horizon`` days
- ``cif_won``: ``{"30": p, "90": p, ...}``, the same at each of ``days``
- ``median_days_to_close``: Kaplan-Meier median days to close, won or lost (null: not reached)
- ``stage_conversion``: ``{"A->B": conversion}`` from `workbench.funnel.stage_conversion`
- ``median_days_in_stage``: ``{stage: days}`` from `workbench.dwell.stage_dwell`
- ``drivers``: ``[{feature, level, odds_ratio, ci_low, ci_high, p_value}]`` from
  `workbench.drivers.win_drivers` when that module exists
- ``excluded_rows``: ``{"count": n, "by_reason": [{table, check, reason, rows}]}`` from
  the load's validation report (rows excluded from the whole dataset)
- ``warnings``: plain-language caveats (small samples, analyses not computed, ...)

Nothing is estimated here: the numbers are the analysis functions' own results.
"""
from __future__ import annotations

import importlib.util
import math
import warnings
from typing import Mapping, Sequence

import numpy as np

from . import findings
from .cycle import cycle_times
from .exceptions import WorkbenchError
from .groups import OVERALL
from .model import Dataset

DEFAULT_DAYS = (30, 90, 180, 365)
DRIVER_COLUMNS = ("feature", "level", "odds_ratio", "ci_low", "ci_high", "p_value")


def json_safe(value):
    """Numbers, mappings and lists as plain JSON: NaN and infinity become None, numpy scalars Python."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _empty(segment: Mapping, dataset: Dataset, days: Sequence[float]) -> dict:
    return {"segment": dict(segment), "counts": {k: dataset.counts()[k] for k in ("deals", "won", "lost", "open")},
            "win_probability": None, "cif_won": {str(int(d)): None for d in days}, "median_days_to_close": None,
            "stage_conversion": {}, "median_days_in_stage": {}, "drivers": [],
            "excluded_rows": excluded_rows(dataset), "warnings": []}


def excluded_rows(dataset: Dataset) -> dict:
    """Rows the load excluded: the total and one entry per (table, reason)."""
    table = dataset.exclusions
    return {"count": int(table["rows"].sum()) if len(table) else 0,
            "by_reason": [{"table": r.table, "check": r.check, "reason": r.reason, "rows": int(r.rows)}
                          for r in table.itertuples()]}


def build_summary(dataset: Dataset, segment: Mapping | None = None, *, horizon: float = 365,
                  days: Sequence[float] = DEFAULT_DAYS) -> dict:
    """The `summary.json` of ``dataset`` (already restricted to ``segment``); see the module docstring.

    Warnings the analyses raise are caught and listed under ``warnings``.
    """
    out = _empty(segment or {}, dataset, days)
    notes = out["warnings"]
    if dataset.deals.empty:
        notes.append("The segment has no deals; nothing was estimated.")
        return json_safe(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = cycle_times(dataset, horizon=horizon).fits[OVERALL]
        out["win_probability"] = float(fit.cif("won", horizon)[0])
        out["cif_won"] = {str(int(d)): float(fit.cif("won", d)[0]) for d in days}
        out["median_days_to_close"] = fit.median()["estimate"]
        out["stage_conversion"] = _try(notes, "Stage conversion", _conversion, dataset, default={})
        out["median_days_in_stage"] = _try(notes, "Time in stage", _dwell, dataset, default={})
        out["drivers"] = _drivers(dataset, notes)
    # UserWarning subclasses only: small samples, separation, convergence; not ResourceWarnings from
    # garbage collection that happens to run meanwhile.
    notes.extend(str(w.message) for w in caught if issubclass(w.category, UserWarning))
    out["warnings"] = list(dict.fromkeys(notes))
    return json_safe(out)


def too_small_summary(dataset: Dataset, segment: Mapping, min_deals: int, *,
                      days: Sequence[float] = DEFAULT_DAYS) -> dict:
    """The `summary.json` of a segment below ``min_deals`` deals: counts only, no estimates."""
    out = _empty(segment, dataset, days)
    out["warnings"].append(too_small_text(len(dataset.deals), min_deals))
    return json_safe(out)


def too_small_text(n: int, min_deals: int) -> str:
    return (f"This segment has {n:,} deals, fewer than the {min_deals:,} a report needs "
            "(`min_deals_per_segment`), so nothing was estimated for it.")


def _try(notes, what, fn, dataset, default):
    try:
        return fn(dataset)
    except WorkbenchError as exc:
        notes.append(f"{what} was not computed: {exc}")
        return default


def _conversion(dataset):
    from .funnel import stage_conversion

    return stage_conversion(dataset).headline()


def _dwell(dataset):
    from .dwell import stage_dwell

    return stage_dwell(dataset).medians()


def _drivers(dataset: Dataset, notes: list[str]) -> list[dict]:
    """Win drivers from `workbench.drivers.win_drivers`, when that module exists."""
    if importlib.util.find_spec("workbench.drivers") is None:
        notes.append("Win drivers were not computed: this version of the workbench has no `workbench.drivers`.")
        return []
    from .drivers import win_drivers

    try:
        result = win_drivers(dataset)
    except Exception as exc:  # noqa: BLE001 - an optional analysis must not cost the segment its summary
        detail = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        notes.append(f"Win drivers were not computed: {detail}")
        return []
    table = getattr(result, "table", result)
    present = [c for c in DRIVER_COLUMNS if c in table.columns]
    return [{c: row.get(c) for c in DRIVER_COLUMNS} for row in table[present].to_dict("records")]


def key_findings(dataset: Dataset, *, horizon: float = 365) -> list[str]:
    """The report's opening sentences: the data, time to close, and outcomes at the horizon."""
    if dataset.deals.empty:
        return ["The segment has no deals."]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct = cycle_times(dataset, horizon=horizon)
    return [*findings.data_findings(dataset), *findings.time_to_close_findings(ct), *findings.outcome_findings(ct)]


def quality_note(summary: Mapping) -> str:
    """One sentence on the rows the load excluded, from a summary's ``excluded_rows``."""
    excluded = summary["excluded_rows"]
    if not excluded["count"]:
        return "No rows were excluded while loading the data."
    parts = [f"{r['rows']:,} {r['table']} rows ({r['check']})" for r in excluded["by_reason"][:5]]
    more = f" and {len(excluded['by_reason']) - 5} more reasons" if len(excluded["by_reason"]) > 5 else ""
    return (f"{excluded['count']:,} rows of the whole dataset were excluded while loading, before it was split "
            f"into segments, each counted with its reason: {', '.join(parts)}{more}.")
