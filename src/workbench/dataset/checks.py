"""Cross-row and cross-table checks on mapped, typed tables.

Each check either records an error (the load stops) or excludes the offending rows
with a warning. Rows of other tables that belong to an excluded deal follow it out,
and are counted too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import fixes
from .checker import Checker
from .columns import DEAL_DATE_COLUMNS, OUTCOMES, REQUIRED_COLUMNS
from .problems import ValidationReport
from .readers import ROW


def is_dateless(deals: pd.DataFrame) -> bool:
    """Whether a mapped deals table leaves out both `created_at` and `closed_at`: a drivers-only
    table (one row per deal with its outcome and attributes, e.g. a win/loss survey)."""
    return not any(c in deals.columns for c in DEAL_DATE_COLUMNS)


def require_columns(frame: pd.DataFrame, table: str, check: Checker) -> bool:
    """Record an error for each required canonical column the table lacks.

    Deals may leave out both dates (`is_dateless`), not only one of them: one date
    without the other is a mapping mistake, not a drivers-only table.
    """
    required = REQUIRED_COLUMNS[table]
    if table == "deals" and is_dateless(frame):
        required = tuple(c for c in required if c not in DEAL_DATE_COLUMNS)
    missing = [c for c in required if c not in frame.columns]
    for column in missing:
        present = sorted(c for c in frame.columns if c != ROW)
        steps = [f"map a source column onto it under `columns: {{{column}: <source column>}}`",
                 f"the table has {present[:12]}"]
        if table == "deals" and column in DEAL_DATE_COLUMNS:
            other = next(c for c in DEAL_DATE_COLUMNS if c != column)
            steps.append(f"leave out `{other}` too if the export has no dates: a dateless, drivers-only deals "
                         "table (outcomes and attributes only) needs neither `created_at` nor `closed_at`")
        check.error("missing_column", f"required column `{column}` is missing.", fixes(*steps), column=column)
    return not missing


def add_missing_dates(deals: pd.DataFrame) -> pd.DataFrame:
    """A dateless deals table with both date columns, all NaT, right after `deal_id` (where the
    canonical order has them), so that every analysis finds the columns it names."""
    deals = deals.copy()
    at = deals.columns.get_loc("deal_id") + 1 if "deal_id" in deals else 0
    for offset, column in enumerate(DEAL_DATE_COLUMNS):
        deals.insert(at + offset, column, pd.Series(pd.NaT, index=deals.index, dtype="datetime64[ns]"))
    return deals


def dateless_note(check: Checker) -> None:
    """The one note a dateless dataset gets: what its analyses can and cannot say."""
    check.note("no_dates", "the deals have no dates (neither `created_at` nor `closed_at` is mapped), so time to "
               "close, stage conversion, cohorts and forecasts will not apply; only outcomes and attributes "
               "can be analysed.",
               fixes("map `created_at` and `closed_at` under `columns:` if the export has them"))


def check_deals(deals: pd.DataFrame, check: Checker, as_of: pd.Timestamp | None, *,
                dated: bool = True) -> pd.DataFrame:
    """Exclude (and record) the deals that cannot be analysed; record errors that stop the load.

    ``dated=False`` (a dateless table, `is_dateless`) runs no date check: no deal can
    have a date, so none is missing one.
    """
    if deals.empty:
        check.error("empty_table", "the deals table has no rows.", fixes("check the source and its filter"))
        return deals
    deals = check.exclude(deals, deals["deal_id"].isna(), "missing_deal_id", "rows have no `deal_id`.",
                          fixes("fill the id in the source", "map another column onto `deal_id`"),
                          column="deal_id")
    deals = _duplicate_ids(deals, check)
    if dated and not check.unusable("created_at"):
        deals = check.exclude(deals, deals["created_at"].isna(), "missing_created_at",
                              "deals have no creation date.", fixes(f"fill `{check.name('created_at')}` in the source"),
                              column="created_at")
    outcome = deals["outcome"]
    unknown = outcome.notna() & ~outcome.isin(OUTCOMES)
    if unknown.any():
        check.error("unknown_outcome", "outcome values are not `won`, `lost` or `open`.",
                    fixes("map them under `values: {outcome: {'Closed Won': won, 'Closed Lost': lost, '*': open}}`",
                          "map a value to ~ (null) to exclude those deals on purpose"),
                    column="outcome", frame=deals, mask=unknown, values=outcome[unknown].unique()[:5])
        # Already an error: the checks below look at the other deals, and these stay in the
        # table so that their stage history is not reported again as belonging to no deal.
        flagged, deals = deals[unknown], deals[~unknown]
    else:
        flagged = deals.iloc[:0]
    deals = check.exclude(deals, deals["outcome"].isna(), "missing_outcome", "deals have no outcome.",
                          fixes("fill the outcome", "derive it in dataset.yaml (see the README's `derive:`)"),
                          column="outcome")
    if dated:
        deals = _check_close_dates(deals, check, as_of)
    if "amount" in deals:
        deals = check.exclude(deals, deals["amount"] < 0, "negative_amount",
                              f"deals have a negative `{check.name('amount')}`.",
                              fixes("correct the amounts", "map credit notes out of the deals table"),
                              column="amount")
    return pd.concat([deals, flagged]) if len(flagged) else deals


def _check_close_dates(deals: pd.DataFrame, check: Checker, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Close dates against outcomes and creation dates, and both dates against the cut-off.

    A deal created after the cut-off is reported as such first: whatever its close date says,
    it does not exist yet at `as_of` (and a close date before it is then no second problem).
    """
    closed_name = check.name("closed_at")
    if as_of is not None:
        late = deals["created_at"] > as_of
        closed_earlier = late & (deals["closed_at"] < deals["created_at"])
        n = int(closed_earlier.sum())
        also = (f" {'It closes' if n == 1 == int(late.sum()) else f'{n} of them close'} before that creation date, "
                "so the creation date is probably the wrong one." if n else "")
        deals = check.exclude(deals, late, "created_after_as_of",
                              f"deals are created after the cut-off `as_of` {as_of.date()}, so they do not exist "
                              f"yet at the cut-off.{also}",
                              fixes(f"check `{check.name('created_at')}` of these deals in the source",
                                    "move `as_of` later", "leave `as_of` out to use the latest date in the data"),
                              column="created_at")
    if not check.unusable("closed_at"):
        closed = deals["outcome"].isin(["won", "lost"])
        deals = check.exclude(deals, closed & deals["closed_at"].isna(), "outcome_without_close_date",
                              f"deals are won or lost but have no `{closed_name}`.",
                              fixes("fill the close date in the source", "map the right column onto `closed_at`"),
                              column="closed_at")
    is_open = deals["outcome"].eq("open")
    deals = check.exclude(deals, is_open & deals["closed_at"].notna(), "open_with_close_date",
                          f"deals are open but have a `{closed_name}` (often an expected close date).",
                          fixes("add `derive: {closed_at: clear_when_open}` under deals if it is an expected date",
                                "correct the outcome in the source"), column="closed_at")
    # A date-only close (Salesforce's CloseDate reads as midnight) on the creation day is not early.
    same_day_date_only = (deals["closed_at"] == deals["closed_at"].dt.normalize()) & (
        deals["closed_at"] == deals["created_at"].dt.normalize())
    deals = check.exclude(deals, (deals["closed_at"] < deals["created_at"]) & ~same_day_date_only,
                          "closed_before_created", "deals close before they were created.",
                          fixes("correct the dates in the source", "check that both columns use the same date order"),
                          column="closed_at")
    if as_of is not None:
        deals = check.exclude(deals, deals["closed_at"] > as_of, "after_as_of",
                              f"deals close after the cut-off `as_of` {as_of.date()}.",
                              fixes("move `as_of` later", "use Dataset.cut() to look at an earlier date on purpose"),
                              column="closed_at")
    return deals


def _duplicate_ids(deals: pd.DataFrame, check: Checker) -> pd.DataFrame:
    if check.table in check.report.numbered:
        # Ids are row numbers: rows alike in everything else are deals alike, all kept and counted.
        alike = deals.duplicated(subset=[c for c in deals.columns if c not in (ROW, "deal_id")], keep="first")
        if alike.any():
            check.note("identical_rows_kept", f"{int(alike.sum())} rows repeat an earlier row in every column; "
                       "with `deal_id: {row_number: true}` each row is a deal of its own, so all are kept (two "
                       "deals may share every attribute).",
                       fixes("remove the rows from the export if they are copies of one deal"),
                       column="deal_id", count=int(alike.sum()))
        return deals
    content = [c for c in deals.columns if c != ROW]
    # Rows that repeat exactly repeat their id: only the rows whose id repeats are compared whole.
    repeated = deals["deal_id"].duplicated(keep=False)
    exact = deals[repeated].duplicated(subset=content, keep="first").reindex(deals.index, fill_value=False)
    deals = check.exclude(deals, exact, "duplicate_rows",
                          "rows repeat an earlier row exactly; the first copy is kept.",
                          fixes("remove the duplicates from the export",
                                "if the export has no real ids (a `concat` of attributes is not one) and two deals "
                                "may share every column, number the rows instead: `deal_id: {row_number: true}`"),
                          column="deal_id")
    clash = deals["deal_id"].duplicated(keep=False)
    return check.exclude(deals, clash, "duplicate_deal_id",
                         "deal ids appear on several rows that differ; none of them is kept, since it is "
                         "unclear which is right.",
                         fixes("make `deal_id` unique in the source",
                               "map a column that is unique per deal onto `deal_id`"),
                         column="deal_id")


def check_history(history: pd.DataFrame, deals: pd.DataFrame, stage_order: tuple[str, ...],
                  check: Checker, as_of: pd.Timestamp | None) -> pd.DataFrame:
    history = check.exclude(history, history["deal_id"].isna(), "missing_deal_id",
                            "stage entries have no `deal_id`.", fixes("fill the id in the source"), column="deal_id")
    if not check.unusable("entered_at"):
        history = check.exclude(history, history["entered_at"].isna(), "missing_entered_at",
                                "stage entries have no date.", fixes("fill the entry date in the source"),
                                column="entered_at")
    unknown = ~history["stage"].isin(stage_order)
    near = near_names(history.loc[unknown, "stage"].dropna().unique(), stage_order) if unknown.any() else []
    steps = [f"write `{found}` in dataset.yaml where it says `{name}`" for name, found, _ in near[:3]]
    differences = "".join(f"; declared `{name}` {how}, the data say `{found}`" for name, found, how in near)
    history = check.exclude(history, unknown, "unknown_stage",
                            f"stage names are not in the declared stages{differences}.",
                            fixes(*steps, "add them to `stages`, `won_stages` or `lost_stages` in process order",
                                  "rename them under `values: {stage: {'Old name': 'New name'}}`"),
                            column="stage")
    history = _orphans(history, deals, check, "stage entries")
    if as_of is not None:
        history = check.exclude(history, history["entered_at"] > as_of, "after_as_of",
                                f"stage entries are dated after the cut-off `as_of` {as_of.date()}.",
                                fixes("move `as_of` later"), column="entered_at")
    return history


def check_related(frame: pd.DataFrame, table: str, deals: pd.DataFrame, check: Checker,
                  as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Contacts, touchpoints and accounts: orphans, dates after the cut-off."""
    if frame.empty:
        check.warn("empty_table", f"the {table} table has no rows.", fixes("check the source, or drop it from dataset.yaml"))
        return frame
    if "deal_id" in frame:
        frame = _orphans(frame, deals, check, f"{table} rows", optional=True)
    if "occurred_at" in frame and not check.unusable("occurred_at"):
        frame = check.exclude(frame, frame["occurred_at"].isna(), "missing_occurred_at",
                              f"{table} have no date.", fixes("fill `occurred_at` in the source"), column="occurred_at")
        if as_of is not None:
            frame = check.exclude(frame, frame["occurred_at"] > as_of, "after_as_of",
                                  f"{table} are dated after the cut-off `as_of` {as_of.date()}.",
                                  fixes("move `as_of` later"), column="occurred_at")
    if table == "accounts":
        frame = check.exclude(frame, frame["account_id"].duplicated(keep="first"), "duplicate_account_id",
                              "account ids repeat; the first row is kept.", fixes("make `account_id` unique"),
                              column="account_id")
    return frame


def _orphans(frame, deals, check, what, optional=False):
    has_id = frame["deal_id"].notna() if optional else pd.Series(True, index=frame.index)
    orphan = has_id & ~frame["deal_id"].isin(deals["deal_id"])
    zeros, steps = "", []
    if orphan.any():
        hint = leading_zeros_hint(frame.loc[orphan, "deal_id"], deals["deal_id"], "the deals table")
        if hint:
            zeros, steps = hint
    return check.exclude(frame, orphan, "unknown_deal",
                         f"{what} refer to deals that are not in the deals table (or were excluded above).{zeros}",
                         fixes(*steps, "check the deal ids match between the two sources",
                               "fix the problems reported for those deals"), column="deal_id")


def leading_zeros_hint(unmatched: pd.Series, known: pd.Series, where: str) -> tuple[str, list[str]] | None:
    """When ids that match nothing would match after dropping leading zeros (`00001` against `1`,
    or the other way round): a sentence saying so and the fix, else None."""
    def bare(ids: pd.Series) -> pd.Series:
        text = ids.astype(str).str.strip()
        stripped = text.str.lstrip("0")
        return stripped.where(stripped != "", "0").where(text != "", text)

    ids = pd.Series(unmatched.dropna().unique())
    targets = pd.Series(known.dropna().unique())
    if ids.empty or targets.empty:
        return None
    lookup = dict(zip(bare(targets), targets.astype(str)))
    matched = [(i, lookup[b]) for i, b in zip(ids.astype(str), bare(ids)) if b in lookup and lookup[b] != i]
    if not matched:
        return None
    rows = int(unmatched.astype(str).isin({i for i, _ in matched}).sum())
    mine, theirs = matched[0]
    side = "these ids carry leading zeros the others lack" if len(mine) > len(theirs) else \
        "the other table's ids carry leading zeros these lack"
    text = (f" {rows} of these rows would match if leading zeros were ignored (`{mine}` here, `{theirs}` in "
            f"{where}): {side}, as when a spreadsheet read ids as numbers.")
    return text, ["write the ids the same way in both sources: export the id column as text, keeping its "
                  "leading zeros, from the system that dropped them"]


def near_names(found, declared) -> list[tuple[str, str, str]]:
    """(declared, found, how they differ) for names in the data that match a declared name but for
    blanks or letter case: a stage declared as `'Proposal '` while the data say `Proposal`."""
    def key(name: str) -> str:
        return " ".join(str(name).split()).casefold()

    by_key = {}
    for name in declared:
        by_key.setdefault(key(name), name)
    out = []
    for value in found:
        name = by_key.get(key(value))
        if name is not None and name != value:
            out.append((name, value, _difference(name, value)))
    return out


def _difference(declared: str, found: str) -> str:
    """How a declared name differs from the one in the data, in words (`with a trailing space`)."""
    def blanks(text: str, where: str) -> str:
        word = "space" if set(text) == {" "} else "blank"
        return f"with a {where} {word}" if len(text) == 1 else f"with {len(text)} {where} {word}s"

    parts = []
    core, other = declared.strip(), found.strip()
    if declared != declared.lstrip():
        parts.append(blanks(declared[: len(declared) - len(declared.lstrip())], "leading"))
    if declared != declared.rstrip():
        parts.append(blanks(declared[len(declared.rstrip()):], "trailing"))
    if core.split() == other.split() and core != other:
        parts.append("with other blanks between words")
    if " ".join(core.split()) != " ".join(other.split()):
        parts.append("in other letter case")
    return " and ".join(parts) or "written differently"


def profile_notes(deals: pd.DataFrame, history: pd.DataFrame, check: Checker, attributes: list[str]) -> None:
    """Notes on what the analyses will not be able to see: sparse or combined attribute
    values, a missing outcome kind, no stage history."""
    n = len(deals)
    for column in attributes:
        missing = int(deals[column].isna().sum())
        if _filled_for_one_outcome(deals, column):
            continue  # e.g. loss_reason, filled on every lost deal and only there
        origin = check.report.column_files.get(("deals", column))
        elsewhere = dict(source=origin[0], column=origin[1]) if origin and origin[0] != check.source else \
            dict(column=column)
        if n and missing / n >= 0.05:
            joined = (f" (it comes from `{origin[0]}`, joined onto the deals: a deal without a row there has it "
                      "empty)" if "source" in elsewhere else "")
            check.note("sparse_column", f"`{column}` is empty on {missing} of {n} deals ({missing / n:.0%}){joined}; "
                       "segments by it leave those deals out.", count=missing, **elsewhere)
        if deals[column].dtype == object:
            codes, levels = pd.factorize(deals[column])  # each level looked at once, not each deal
            hit = pd.Series(levels, dtype=object).astype("string").str.contains(r",\s|;", regex=True, na=False)
            combined = pd.Series(np.append(hit.to_numpy(dtype=bool), False)[codes], index=deals.index)
            if combined.any():
                check.note("combined_values", f"`{column}` combines several values in one cell on "
                           f"{int(combined.sum())} deals; each combination counts as its own level.",
                           fixes(f"map combinations to one level under `values: {{{column}: ...}}`"),
                           count=int(combined.sum()), values=deals.loc[combined, column].unique()[:5],
                           **elsewhere)
    for outcome in ("won", "lost"):
        if n and not deals["outcome"].eq(outcome).any():
            check.note("no_" + outcome, f"no deal is {outcome}: {outcome} deals cannot be analysed, and "
                       "every deal not closed counts as open (censored at `as_of`).", column="outcome")
    if history.empty:
        check.note("no_stage_history", "there is no stage history: stage conversion and time in stage "
                   "are not available.")


def _filled_for_one_outcome(deals: pd.DataFrame, column: str) -> bool:
    filled = deals[column].notna()
    outcomes = deals.loc[filled, "outcome"].unique()
    if len(outcomes) != 1:
        return False
    return bool(deals.loc[deals["outcome"] == outcomes[0], column].notna().mean() >= 0.95)


def default_as_of(tables: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The latest timestamp anywhere in the data."""
    latest = []
    for frame in tables.values():
        for column in frame.columns:
            if pd.api.types.is_datetime64_any_dtype(frame[column]) and frame[column].notna().any():
                latest.append(frame[column].max())
    return max(latest) if latest else None


__all__ = ["ValidationReport", "is_dateless", "require_columns", "add_missing_dates", "dateless_note", "check_deals",
           "check_history", "check_related", "profile_notes", "default_as_of", "leading_zeros_hint", "near_names"]
