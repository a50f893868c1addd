"""Export sanity: the traps of CRM exports that pass every row-level check and still mislead.

Each check looks at the validated deals as a whole and, when it fires, records a *note* (it
excludes nothing and leaves the exit code alone) that says what it found, what it does to the
estimates and what to do. The notes go into `workbench validate` and, through
`quality_notes`, into every report's data-quality box.

- `truncated_extract`: closes begin long after creations, judged against the closed deals'
  own time to close: deals of the first months that closed quickly are missing.
- `stale_open_deals`: deals still open far beyond the age by which 95% of closed deals had
  closed: abandoned deals nobody closed in the CRM.
- `creation_date_pile`: a large share of deals created on one day (an import or migration).
- `outcome_decided`: a column whose value is fixed by the outcome (an amount 0 on every lost
  deal, a loss reason, a copy of the outcome): `outcome_decided_columns` names them so that the
  drivers hold them out.

All of them need enough closed deals to judge by (`MIN_CLOSED`); none runs on a dateless table
except `outcome_decided`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import fixes
from .checker import Checker

#: Closed deals needed before a time-to-close distribution is trusted to judge the export by.
MIN_CLOSED = 30
#: Deals of the outcome a column is constant on, before that is taken as decided by the outcome.
MIN_DECIDED = 20
#: The checks of this module: the notes `quality_notes` carries into reports.
CHECKS = ("truncated_extract", "stale_open_deals", "stale_closed_as_lost", "creation_date_pile", "outcome_decided",
          "mixed_utc_offsets")
DAY = pd.Timedelta(days=1)


def export_checks(deals: pd.DataFrame, check: Checker, as_of: pd.Timestamp | None, attributes: list[str],
                  *, dated: bool = True, constant: frozenset = frozenset()) -> None:
    """Run every sanity check on validated deals; record a note per finding."""
    if dated:
        closed = deals[deals["outcome"].isin(["won", "lost"]) & deals["closed_at"].notna()]
        cycle = (closed["closed_at"] - closed["created_at"]) / DAY
        if len(cycle) >= MIN_CLOSED:
            truncated_extract(deals, cycle, check)
            if as_of is not None:
                stale_open_deals(deals, cycle, check, as_of)
        if "created_at" not in constant:
            creation_date_pile(deals, check)
    # Columns filled on one outcome only (loss reasons) are what they look like: no note, though
    # the drivers hold them out too.
    for column, why in outcome_decided_columns(deals, ["amount", *attributes], empty=False).items():
        check.note("outcome_decided", f"`{check.name(column)}` is decided by the outcome: {why}. As a driver it "
                   "would only restate the outcome (a near-perfect but useless model), so the win/loss drivers "
                   "hold it out.", fixes("keep it for describing closed deals (e.g. loss reasons), not for "
                                         "predicting them", "if it should be known before the close, check how "
                                         "the CRM fills it"), column=column)


def truncated_extract(deals: pd.DataFrame, cycle: pd.Series, check: Checker) -> None:
    """Closes begin long after creations: of the deals created well before the first close, the closed
    deals' own time to close says many should have closed earlier. Observing none of an expected
    ``expected`` (a sum of probabilities) has a chance of about ``exp(-expected)``."""
    first_created = deals["created_at"].min()
    closed_at = deals.loc[deals["outcome"].isin(["won", "lost"]), "closed_at"]
    first_close = closed_at.min()
    if pd.isna(first_created) or pd.isna(first_close):
        return
    lead = deals.loc[deals["created_at"] < first_close, "created_at"]
    window = ((first_close - lead) / DAY).to_numpy()
    times = np.sort(cycle.to_numpy())
    expected = float((np.searchsorted(times, window, side="right") / len(times)).sum())
    median = float(np.median(times))
    gap = (first_close - first_created) / DAY
    if expected < 10 or gap <= median:
        return
    check.note("truncated_extract",
               f"the first deal closes on {first_close.date()}, {gap:.0f} days after the first is created "
               f"({first_created.date()}), though half of the closed deals close within {median:.0f} days: of the "
               f"{len(lead):,} deals created before that first close about {expected:.0f} would have closed earlier "
               "if the export held every deal. It looks cut: deals created early that closed quickly are missing "
               "(an extract filtered on close date, or a snapshot of deals still open at some date). The early "
               "months' win rates and times to close then describe only the slow deals: times to close come out "
               "too long and the early cohorts too small.",
               fixes("export again without a date filter on the close", "or analyse only deals created after "
                     f"{first_close.date()} (a segment on `created_at`)"),
               column="closed_at", count=len(lead))


def stale_open_deals(deals: pd.DataFrame, cycle: pd.Series, check: Checker, as_of: pd.Timestamp) -> None:
    """Open deals older than the age by which 95% of the closed deals had closed."""
    p95 = float(np.quantile(cycle.to_numpy(), 0.95))
    is_open = deals["outcome"].eq("open")
    age = (as_of - deals.loc[is_open, "created_at"]) / DAY
    stale = age > max(p95, 1.0)
    n_open = int(is_open.sum())
    if stale.sum() < 10 or stale.sum() < 0.05 * n_open:
        return
    far = int((age > 2 * max(p95, 1.0)).sum())
    check.note("stale_open_deals",
               f"{int(stale.sum()):,} of {n_open:,} open deals are older than {p95:.0f} days, the age by which 95% "
               f"of the closed deals had closed ({far:,} are over twice that; the oldest {age.max():.0f} days). "
               "Deals abandoned but never closed in the CRM stay open forever: they pull win rates down (an old "
               "open deal counts as not won) and times to close up (each is a deal that has not closed yet).",
               fixes("close them as lost in the CRM (or mark them so) and export again",
                     f"or declare `stale_after_days: {int(np.ceil(p95))}` at the top of dataset.yaml: open deals older "
                     "than that are taken as lost on the day they reached that age, and counted in a note"),
               column="created_at", count=int(stale.sum()))


def close_stale(deals: pd.DataFrame, days: int, as_of: pd.Timestamp | None, check: Checker, *,
                dated: bool = True) -> pd.DataFrame:
    """`stale_after_days`: open deals older than ``days`` at ``as_of`` become lost, closed on the day
    they reached that age; a note counts them and lists their rows."""
    if not dated or as_of is None:
        check.note("stale_after_days", f"`stale_after_days: {days}` does not apply: the deals have no dates "
                   "or no cut-off to measure their age at.")
        return deals
    stale = deals["outcome"].eq("open") & ((as_of - deals["created_at"]) > days * DAY)
    if not stale.any():
        return deals
    deals = deals.copy()
    check.note("stale_closed_as_lost",
               f"{int(stale.sum()):,} open deals older than {days} days at {as_of.date()} are taken as lost, "
               f"closed {days} days after creation (`stale_after_days: {days}`). Win rates and times to close now "
               "count them as losses at that age instead of deals still open; remove the key to see them open.",
               column="created_at", frame=deals, mask=stale)
    deals.loc[stale, "outcome"] = "lost"
    deals.loc[stale, "closed_at"] = deals.loc[stale, "created_at"] + days * DAY
    return deals


def creation_date_pile(deals: pd.DataFrame, check: Checker) -> None:
    """One creation day holding far more deals than any ordinary day: an import or a migration."""
    days = deals["created_at"].dropna().dt.normalize()
    if len(days) < 50:
        return
    per_day = days.value_counts()
    top_day, top = per_day.index[0], int(per_day.iloc[0])
    typical = float(per_day.median())
    if top < 20 or top < 0.05 * len(days) or top < 10 * typical or len(per_day) < 2:
        return
    check.note("creation_date_pile",
               f"{top:,} deals ({top / len(days):.0%}) were created on {top_day.date()}, where a typical day has "
               f"{typical:.0f}: probably an import or migration day, not when those deals began. Their ages and "
               "times to close are counted from that day, so they come out too short, and the cohort of that "
               "month is inflated.",
               fixes("map the original creation date if the CRM kept one (a first-contact or legacy field)",
                     f"or analyse them apart with a segment on `created_at` (e.g. excluding {top_day.date()})"),
               column="created_at", count=top, values=[str(top_day.date())])


def outcome_decided_columns(deals: pd.DataFrame, columns: list[str], *, empty: bool = True) -> dict[str, str]:
    """Columns whose value the final outcome fixes, each with why in words.

    Among the won and lost deals, a column is decided by the outcome when one value (or being
    empty) holds on at least 99% of the `MIN_DECIDED`-or-more deals of one outcome and on at most
    half of the other's: an amount 0 on every lost deal, a reason filled only on lost deals, a
    status text that copies the outcome. Under independence the first would be a chance of at
    most 0.5 ** 20 per column. ``empty=False`` leaves out the columns decided by being empty
    (filled on one outcome only: a loss reason), whose shape says what they are.
    """
    closed = deals[deals["outcome"].isin(["won", "lost"])]
    out: dict[str, str] = {}
    if closed["outcome"].nunique() < 2:
        return out
    # Which closed deals have which outcome: compared once, not once per column (text compares cost).
    has = {outcome: closed["outcome"].eq(outcome).to_numpy() for outcome in ("lost", "won")}
    for column in columns:
        if column not in closed:
            continue
        values = closed[column]
        missing = values.isna()
        if missing.all():
            continue
        tokens = values.astype(object).where(~missing, "\0missing")
        for outcome, other in (("lost", "won"), ("won", "lost")):
            mine = tokens[has[outcome]]
            theirs = tokens[has[other]]
            if len(mine) < MIN_DECIDED or theirs.empty:
                continue
            shares = mine.value_counts(normalize=True)
            value, share = shares.index[0], float(shares.iloc[0])
            if value == "\0missing" and not empty:
                continue
            if share < 0.99:
                continue
            elsewhere = float(theirs.eq(value).mean())
            if elsewhere <= 0.5:
                shown = "empty" if value == "\0missing" else f"`{_shown(value)}`"
                out[column] = (f"it is {shown} on {share:.0%} of the {len(mine):,} {outcome} deals and on "
                               f"{elsewhere:.0%} of the {len(theirs):,} {other} ones")
                break
    return out


def _shown(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def quality_notes(report) -> list[str]:
    """The export-sanity and date notes of a load, as sentences for a report's data-quality box."""
    out = []
    for p in report.problems:
        if p.severity == "note" and p.check in CHECKS:
            where = f"`{p.column}`: " if p.column else ""
            out.append(f"{where}{p.message}")
    return out
