"""Load a dataset: `dataset.yaml` -> sources -> mapped tables -> checks -> `Dataset`.

`load_dataset` raises `DataValidationError` when the data has errors and warns
(`DataQualityWarning`) when rows were excluded; `validate` only reports.
`from_frames` runs the same checks on canonical frames built in Python.

A deals table that maps neither ``created_at`` nor ``closed_at`` loads as *dateless*
(a drivers-only table): both columns are all NaT, no date check runs, ``as_of`` is NaT
unless given, and the report carries a ``no_dates`` note.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import DataQualityWarning, DataValidationError, SpecError, fixes
from . import checks, mapping, sanity
from .checker import Checker
from .columns import DEAL_COLUMNS, TABLES
from .dates import parse_timestamp
from .model import Dataset
from .problems import ValidationReport
from .readers import ROW, RawTable, read_source
from .spec import AddDaysRule, DatasetSpec, HistorySpec, PresentRule, load_spec
from .store import SPEC_FILE, is_typed, read_quality, read_table

OPTIONAL_TABLES = ("accounts", "contacts", "touchpoints")


def load_dataset(path: str | Path, *, as_of=None) -> Dataset:
    """Read, map and validate the dataset described by a `dataset.yaml`.

    Raises
    ------
    SpecError
        The YAML is malformed or names unknown keys.
    SourceError
        A source cannot be read (missing file, unreachable database, unset credential).
    DataValidationError
        The data has errors; ``.report`` lists every problem found.
    """
    dataset, report = _load(path, as_of=as_of)
    return _finish(dataset, report)


def validate(path: str | Path, *, as_of=None) -> ValidationReport:
    """Every problem in a dataset, without raising for data errors."""
    return _load(path, as_of=as_of)[1]


def from_frames(deals: pd.DataFrame, stage_history: pd.DataFrame | None = None, *, stages=(), won_stages=(),
                lost_stages=(), as_of=None, accounts=None, contacts=None, touchpoints=None,
                name: str = "dataset") -> Dataset:
    """Validate canonical frames built in Python (e.g. the sample) into a `Dataset`."""
    report = ValidationReport(source=name)
    tables = {"deals": deals, "stage_history": stage_history, "accounts": accounts,
              "contacts": contacts, "touchpoints": touchpoints}
    tables = {k: _with_rows(v) for k, v in tables.items() if v is not None}
    sources = {k: k for k in tables}
    dataset = _assemble(tables, sources, tuple(stages), tuple(won_stages), tuple(lost_stages),
                        None if as_of is None else pd.Timestamp(as_of), name, report)
    return _finish(dataset, report)


def _finish(dataset: Dataset | None, report: ValidationReport) -> Dataset:
    if report.errors or dataset is None:
        raise DataValidationError(report)
    if report.excluded_rows():
        warnings.warn(f"{report.excluded_rows()} row(s) excluded while loading {report.scope or report.source}; "
                      "see dataset.report.to_text()", DataQualityWarning, stacklevel=3)
    return dataset


def _with_rows(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True).copy()
    frame[ROW] = range(1, len(frame) + 1)
    return frame


def _load(path, *, as_of=None) -> tuple[Dataset | None, ValidationReport]:
    spec, base = load_spec(path)
    report = ValidationReport(source=str(path))
    if as_of is None and spec.quality is not None and is_typed(base / spec.quality):
        # A cut-off of the caller's own is checked against the rows: only the slice's own is read as is.
        return _read_typed(spec, base, path)
    if as_of is None and spec.as_of is not None:
        try:
            as_of = parse_timestamp(spec.as_of, spec.dates, "`as_of`")
        except ValueError as exc:
            raise SpecError(f"`{path}`: {exc}.") from None
    tables, sources = {}, {}
    deals_raw = read_source(spec.deals.source, base)
    deals = _map_table(deals_raw, spec.deals, "deals", spec, report)
    if deals is not None:
        for join in spec.deals.join:
            deals = _join(deals, join, spec, base, report)
    tables["deals"], sources["deals"] = deals, deals_raw.label
    if spec.stage_history is not None:
        tables["stage_history"], sources["stage_history"] = _history(spec.stage_history, deals_raw, spec, base, report)
    for name in OPTIONAL_TABLES:
        table_spec = getattr(spec, name)
        if table_spec is not None:
            raw = read_source(table_spec.source, base)
            tables[name], sources[name] = _map_table(raw, table_spec, name, spec, report), raw.label
    if any(t is None for t in tables.values()):
        return None, report
    if tables["deals"] is not None:
        tables["deals"] = _derive(tables["deals"], tables.get("stage_history"), spec, report, sources["deals"])
    dataset = _assemble(tables, sources, tuple(spec.stages), tuple(spec.won_stages), tuple(spec.lost_stages),
                        as_of, spec.name, report, stale_after_days=spec.stale_after_days)
    if spec.quality is not None and dataset is not None and not report.errors:
        report = read_quality(base / spec.quality, source=str(path))
        dataset = replace(dataset, report=report)
    if dataset is not None and spec.currency:
        dataset = replace(dataset, currency=spec.currency)
    return dataset, report


def _read_typed(spec: DatasetSpec, base: Path, path) -> tuple[Dataset, ValidationReport]:
    """A folder `save_dataset` wrote (a segment's slice): its Parquet tables as written, typed and
    validated when the whole dataset was loaded, so that a kernel neither parses nor checks them again.
    The result equals what mapping and checking them again gives (`tests/test_store.py`)."""
    tables = {}
    for name in TABLES:
        table_spec = getattr(spec, name)
        if table_spec is not None:
            tables[name] = read_table(base / table_spec.source.path)
    deals = tables.pop("deals")
    if checks.is_dateless(deals):
        deals = checks.add_missing_dates(deals)
    history = tables.pop("stage_history", None)
    if history is None:
        history = pd.DataFrame({"deal_id": pd.Series(dtype=object), "stage": pd.Series(dtype=object),
                                "entered_at": pd.Series(dtype="datetime64[ns]")})
    report = read_quality(base / spec.quality, source=str(path))
    # A slice carries its dataset's cut-off, written as ISO, unless that dataset had none (dateless).
    as_of = pd.NaT if spec.as_of is None else parse_timestamp(spec.as_of, "iso", "`as_of`")
    return Dataset(deals=deals, stage_history=history, stages=tuple(spec.stages), won_stages=tuple(spec.won_stages),
                   lost_stages=tuple(spec.lost_stages), as_of=as_of, report=report, name=spec.name,
                   currency=spec.currency, **tables), report


def _map_table(raw: RawTable, table_spec, table: str, spec: DatasetSpec, report,
               filed_as: str | None = None) -> pd.DataFrame | None:
    """Map one source onto canonical ``table``; problems are filed under ``filed_as`` (a joined
    file's own name) or ``table``."""
    check = Checker(report, filed_as or table, raw.label, kind=table)
    for issue in raw.issues:
        check.source_issue(issue)
    if any(issue.fatal for issue in raw.issues):
        return None
    frame = mapping.map_columns(raw, table_spec.columns, table_spec.keep_other_columns, check)
    if frame is None:
        return None
    frame = mapping.clean_text(frame, mapping.stripped_columns(raw, table_spec.columns))
    frame = mapping.map_values(frame, table_spec.values, check)
    frame = mapping.parse_date_columns(frame, table, spec.dates, table_spec.date_formats, check,
                                       timezone=spec.timezone)
    return mapping.convert_numbers(frame, table, check)


def _join(deals: pd.DataFrame, join, spec: DatasetSpec, base: Path, report) -> pd.DataFrame:
    """Left-join an attribute table onto deals; its values fill gaps, never overwrite."""
    raw = read_source(join.source, base)
    (deal_key, source_key), = join.on.items()
    columns = {deal_key: source_key, **join.columns}
    # The joined file's rows are not deals: its problems are filed under its own name.
    filed_as = joined_table(raw.label)
    check = Checker(report, filed_as, raw.label, kind="deals")
    extra = _map_table(raw, join.model_copy(update={"columns": columns}), "deals", spec, report, filed_as)
    for table, column in list(report.unusable):
        if table == filed_as:
            report.unusable.add(("deals", column))
    if extra is None:
        return deals
    for column in extra.columns:
        if column not in deals and (filed_as, column) in report.column_files:
            report.column_files[("deals", column)] = report.column_files[(filed_as, column)]
    extra = check.exclude(extra, extra[deal_key].duplicated(keep="first"), "duplicate_join_key",
                          f"join rows repeat a `{source_key}`; the first is kept.",
                          fixes("make the key unique in the joined source"), column=source_key)
    unmatched = ~extra[deal_key].isin(deals[deal_key])
    hint = checks.leading_zeros_hint(extra.loc[unmatched, deal_key], deals[deal_key], "the deals table") \
        if unmatched.any() else None
    zeros, steps = hint or ("", [])
    extra = check.exclude(extra, unmatched, "join_unmatched",
                          f"joined rows match no deal on `{source_key}`.{zeros}",
                          fixes(*steps, "check the ids match between the two sources"), column=source_key)
    extra = extra.drop(columns=[ROW])
    merged = deals.merge(extra, on=deal_key, how="left", suffixes=("", "__joined"))
    for column in [c for c in merged.columns if c.endswith("__joined")]:
        base_col = column[: -len("__joined")]
        merged[base_col] = merged[base_col].where(merged[base_col].notna(), merged[column])
        merged = merged.drop(columns=[column])
    return merged


def joined_table(label: str) -> str:
    """What a joined file's problems are filed under: the file's name (`sectors.csv`), not `deals`."""
    return Path(label.split(" (sheet")[0]).name or label


def _history(hspec: HistorySpec, deals_raw: RawTable, spec: DatasetSpec, base: Path, report):
    if hspec.source is not None:
        raw = read_source(hspec.source, base)
    else:
        raw = _wide_to_long(deals_raw, hspec, spec, report)
        if raw is None:
            return None, deals_raw.label
    frame = _map_table(raw, hspec, "stage_history", spec, report)
    if frame is not None and hspec.collapse_repeats:
        frame = _collapse_repeats(frame, Checker(report, "stage_history", raw.label))
    return frame, raw.label


def _wide_to_long(deals_raw: RawTable, hspec: HistorySpec, spec: DatasetSpec, report) -> RawTable | None:
    """One date column per stage (HubSpot's `Date entered "<stage>"`) -> one row per entry."""
    check = Checker(report, "stage_history", deals_raw.label)
    id_column = hspec.wide.deal_id or _source_of(spec.deals.columns, "deal_id")
    pattern = re.compile("^" + re.escape(hspec.wide.entered).replace(re.escape("{stage}"), "(?P<stage>.+?)") + "$")
    stage_columns = {c: m.group("stage") for c in deals_raw.frame.columns if (m := pattern.match(c))}
    if id_column not in deals_raw.frame.columns:
        check.error("missing_column", f"deal id column `{id_column}` is not in the deals source.",
                    fixes("set `wide: {deal_id: <column>}`"), column=id_column)
        return None
    if not stage_columns:
        check.error("missing_column", f"no column matches the pattern `{hspec.wide.entered}`.",
                    fixes("copy a column name from the export and put {stage} where the stage label stands"))
        return None
    frame = deals_raw.frame[[id_column, ROW, *stage_columns]].melt(
        id_vars=[id_column, ROW], var_name="stage", value_name="entered_at")
    frame["stage"] = frame["stage"].map(stage_columns)
    frame = frame[frame["entered_at"].notna() & (frame["entered_at"].astype(str).str.strip() != "")]
    frame = frame.rename(columns={id_column: "deal_id"})
    return RawTable(frame.reset_index(drop=True), deals_raw.label)


def _source_of(columns: dict, canonical: str) -> str:
    ref = columns.get(canonical, canonical)
    return ref if isinstance(ref, str) else ref[0]


def _collapse_repeats(history: pd.DataFrame, check: Checker) -> pd.DataFrame:
    """Drop rows that repeat the deal's previous stage (Salesforce logs amount and date changes too)."""
    history = history.sort_values(["deal_id", "entered_at", ROW], kind="stable")
    same = history["deal_id"].eq(history["deal_id"].shift()) & history["stage"].eq(history["stage"].shift())
    return check.exclude(history, same, "repeat_rows",
                         "rows repeat the stage the deal was already in, so they are not new stage entries "
                         "(`collapse_repeats: true`): each run of rows in one stage counts as one entry, at its "
                         "first date. Such rows log a change of another field (amount, close date, probability), "
                         "or a deal sent back into the stage it was in (a reworked proposal); a loop through "
                         "other stages (Proposal, Negotiation, Proposal) is kept as two entries.",
                         column="stage", severity="note")  # asked for: counted, not a warning


def _derive(deals: pd.DataFrame, history, spec: DatasetSpec, report, label) -> pd.DataFrame:
    check = Checker(report, "deals", label)
    for column, rule in spec.deals.derive.items():
        if isinstance(rule, PresentRule):
            if rule.present not in deals:
                check.error("missing_column", f"`derive: {column}` looks at `{rule.present}`, which deals lack.",
                            fixes("map that column first"), column=rule.present)
                continue
            deals[column] = deals[rule.present].notna().map({True: rule.then, False: rule.otherwise})
        elif isinstance(rule, AddDaysRule):
            missing = [c for c in (rule.add_days, rule.to) if c not in deals]
            if missing:
                check.error("missing_column", f"`derive: {column}` needs `{missing[0]}`, which deals lack.",
                            fixes("map that column under `columns:` first"), column=missing[0])
                continue
            days = pd.to_numeric(deals[rule.add_days], errors="coerce")
            deals[column] = deals[rule.to] + pd.to_timedelta(days, unit="D")
        elif rule == "clear_when_open":
            if column not in deals:
                # Clearing would invent the column, and a half-made date pair hides a dateless table.
                check.error("missing_column", f"`derive: {column}: clear_when_open` clears `{column}`, which "
                            "deals lack.", fixes(f"map `{column}` under `columns:` first",
                                                 "remove the rule if the export has no dates (a dateless, "
                                                 "drivers-only table)"), column=column)
                continue
            deals.loc[deals["outcome"].eq("open"), column] = pd.NaT
        elif rule == "final_stage":
            if history is None:
                check.error("missing_table", f"`derive: {column}: final_stage` needs `stage_history`.",
                            fixes("add a stage_history table"), column=column)
                continue
            deals = _from_final_stage(deals, history, column, spec)
    return deals


def _from_final_stage(deals, history, column, spec):
    rank = {s: i for i, s in enumerate(spec.stages + spec.won_stages + spec.lost_stages)}
    ordered = history.assign(_rank=history["stage"].map(rank)).sort_values(["deal_id", "entered_at", "_rank"])
    last = ordered.groupby("deal_id").tail(1).set_index("deal_id")
    outcome = last["stage"].map(lambda s: "won" if s in spec.won_stages else "lost" if s in spec.lost_stages else "open")
    if column == "outcome":
        deals["outcome"] = deals["deal_id"].map(outcome).fillna("open")
    else:
        closed_at = last["entered_at"].where(outcome != "open")
        deals[column] = deals["deal_id"].map(closed_at)
    return deals


def _assemble(tables, sources, stages, won, lost, as_of, name, report, *,
              stale_after_days: int | None = None) -> Dataset | None:
    checkers = {t: Checker(report, t, sources.get(t, t)) for t in TABLES}
    # A table without its required columns cannot be checked further; the others still are,
    # so one error never hides the problems after it.
    usable = {table: checks.require_columns(frame, table, checkers[table]) for table, frame in tables.items()}
    if not usable["deals"]:
        return None
    deals = tables["deals"].copy()
    dated = not checks.is_dateless(deals)
    if not dated:
        deals = checks.add_missing_dates(deals)
    for optional, dtype in (("amount", float), ("owner", object), ("account_id", object)):
        if optional not in deals:
            # NaN, as `mapping.clean_text` leaves a missing text cell from every source, so that a
            # slice written to Parquet and read back holds the same values (`workbench.dataset.store`).
            deals[optional] = pd.Series(np.nan, index=deals.index, dtype=dtype)
    if as_of is None:
        # Without deal dates there is no cut-off to infer: the latest stage entry or touchpoint
        # would be one the deals never had.
        as_of = checks.default_as_of(tables) if dated else pd.NaT
    cutoff = None if pd.isna(as_of) else as_of
    deals = checks.check_deals(deals, checkers["deals"], cutoff, dated=dated)
    if stale_after_days is not None:
        deals = sanity.close_stale(deals, stale_after_days, cutoff, checkers["deals"], dated=dated)
    history = tables.get("stage_history")
    if history is not None and not usable["stage_history"]:
        history = None
    if history is None:
        history = pd.DataFrame({"deal_id": pd.Series(dtype=object), "stage": pd.Series(dtype=object),
                                "entered_at": pd.Series(dtype="datetime64[ns]"), ROW: pd.Series(dtype=int)})
    elif stages:
        history = checks.check_history(history, deals, stages + won + lost, checkers["stage_history"], cutoff)
    related = {}
    for table in OPTIONAL_TABLES:
        if table in tables and usable[table]:
            related[table] = checks.check_related(tables[table], table, deals, checkers[table], cutoff)
    if report.errors:
        return None
    if not dated:
        checks.dateless_note(checkers["deals"])
    attributes = [c for c in deals.columns if c not in DEAL_COLUMNS and c != ROW]
    checks.profile_notes(deals, history, checkers["deals"], attributes)
    sanity.export_checks(deals, checkers["deals"], cutoff, attributes, dated=dated,
                         constant=frozenset(c for t, c in report.constants if t == "deals"))
    history = _without_rows(_in_deal_order(history, stages + won + lost))
    return Dataset(deals=_without_rows(deals), stage_history=history, stages=stages, won_stages=won,
                   lost_stages=lost, as_of=as_of, report=report, name=name,
                   **{k: _without_rows(v) for k, v in related.items()})


def _in_deal_order(history: pd.DataFrame, stage_order: tuple[str, ...]) -> pd.DataFrame:
    """Stage entries by deal, then date, then the stage's place in the process (a stable sort);
    as they are when they already come so, as most exports do (a check costs a tenth of the sort)."""
    keys = pd.DataFrame({"deal_id": history["deal_id"].to_numpy(), "entered_at": history["entered_at"].to_numpy(),
                         "_rank": history["stage"].map({s: i for i, s in enumerate(stage_order)}).to_numpy()})
    if _in_order(keys):
        return history
    return history.take(keys.sort_values(["deal_id", "entered_at", "_rank"], kind="stable").index)


def _in_order(keys: pd.DataFrame) -> bool:
    """Whether every row's (deal, date, rank) is at least the row's before; False where a key is missing."""
    ids, dates, ranks = (keys[c].to_numpy() for c in ("deal_id", "entered_at", "_rank"))
    if len(ids) < 2:
        return True
    try:
        later = ids[1:] > ids[:-1]
        same = ids[1:] == ids[:-1]
    except TypeError:  # ids of several types: the sort decides
        return False
    if not (later | same).all():
        return False
    after = (dates[1:] > dates[:-1]) | ((dates[1:] == dates[:-1]) & (ranks[1:] >= ranks[:-1]))
    return bool((later | (same & after)).all())


def _without_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The loaded table without `_row`, indexed 0..n-1. In place: the table is the loader's own
    (mapped, or copied by `from_frames`), and a copy of millions of text cells costs seconds."""
    if ROW in frame:
        del frame[ROW]
    frame.index = pd.RangeIndex(len(frame))
    return frame


def load_slice(folder: str | Path) -> Dataset:
    """Load a folder written by `save_dataset` (its report is the original load's), without the
    warning about excluded rows: they were reported when the whole dataset was loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return load_dataset(Path(folder) / SPEC_FILE)
