"""What a section needs from the data, and the sentence it shows when the data lack it.

Each function takes the notebook's `Settings` and returns a `Need`. The sentence names what
is missing and the `dataset.yaml` key that adds it, so that a reader of a report on an export
without stage history, reasons, dates or touchpoints knows why a part is missing and how to
get it next time.
"""
from __future__ import annotations

from .base import Need


def label(text: str):
    """Name a need for the README's table of what each section needs (`workbench.sections.catalog`)."""
    def mark(need):
        need.label = text
        return need
    return mark

STAGE_HISTORY_FIX = ("To add one, give a `stage_history:` table in dataset.yaml (one row per entry into a stage: "
                     "`deal_id`, `stage`, `entered_at`), or `stage_history: {wide: ...}` for one date column per "
                     "stage on the deals export, and list the open stages in order under `stages:`.")
TABLE_FIXES = {
    "touchpoints": "a `touchpoints:` table in dataset.yaml (activities: `occurred_at`, `channel`, `kind`, and "
                   "`deal_id` or `account_id`)",
    "contacts": "a `contacts:` table in dataset.yaml (`contact_id`, `deal_id` or `account_id`, `role`)",
    "accounts": "an `accounts:` table in dataset.yaml (`account_id` and firmographics such as `industry`, "
                "`employees`, `revenue`)",
}
TABLE_WORDS = {"touchpoints": "touchpoints (activities such as emails, calls and meetings)",
               "contacts": "contacts with their roles", "accounts": "accounts with firmographics"}


@label("dates (`created_at`, `closed_at`)")
def dates(settings) -> Need:
    """Creation and close dates."""
    deals = settings.dataset.deals
    if deals["created_at"].notna().any():
        return Need(True)
    return Need(False, "This part needs dates, which these data do not have: map the creation and close dates "
                       "of the deals as `created_at` and `closed_at` under `deals: columns:` in dataset.yaml.")


@label("creation dates on more than one day")
def calendar(settings) -> Need:
    """Deals created on more than one day (a single constant creation date is not a calendar)."""
    created = settings.dataset.deals["created_at"].dropna()
    if created.dt.normalize().nunique() > 1:
        return Need(True)
    return Need(False, "This part needs real creation dates, and every deal here has the same one (a constant "
                       "in dataset.yaml, say): map the export's creation date as `created_at` under "
                       "`deals: columns:`.")


def _outcome(outcomes: tuple[str, ...], text: str, missing: str):
    """A need for at least one deal with one of ``outcomes``."""
    @label(text)
    def need(settings) -> Need:
        return Need(True) if settings.dataset.deals["outcome"].isin(outcomes).any() else Need(False, missing)
    need.__name__ = f"{'_'.join(outcomes)}_deals"
    return need


OUTCOME_FIX = "If they exist, check the `outcome` value map under `deals: values:` in dataset.yaml."
closed_deals = _outcome(("won", "lost"), "closed deals",
                        "No deal has closed yet in these data, so there is nothing to measure here.")
won_deals = _outcome(("won",), "won deals", "No deal was won in these data, so there is nothing to learn here "
                     f"about what wins. {OUTCOME_FIX}")
lost_deals = _outcome(("lost",), "lost deals", "No deal was lost in these data (the export may record only "
                      f"wins), so there is nothing to show here. {OUTCOME_FIX}")
open_deals = _outcome(("open",), "open deals", "No deal is still open at the cut-off, so there is no open "
                      "pipeline to score or forecast.")


@label("`stages:` and a stage history")
def stage_history(settings) -> Need:
    """Stage entries over declared stages."""
    dataset = settings.dataset
    if not dataset.stages:
        return Need(False, "This part needs the deals' stages, and dataset.yaml lists none: list the open "
                           "stages in order under `stages:` (and the closing ones under `won_stages:` and "
                           "`lost_stages:`). " + ("" if len(dataset.stage_history) else STAGE_HISTORY_FIX))
    if dataset.stage_history["stage"].isin(dataset.stages).any():
        return Need(True)
    return Need(False, "This part needs a stage history (when each deal entered each stage), which these data "
                       "do not have. " + STAGE_HISTORY_FIX)


def column(name: str, what: str, fix: str):
    """A deal column ``name`` with at least one value; ``what`` names it for a reader."""
    def need(settings) -> Need:
        deals = settings.dataset.deals
        if name in deals and deals[name].notna().any():
            return Need(True)
        return Need(False, f"This part needs {what}, which these deals do not have: {fix}")
    need.__name__ = f"column_{name}"
    need.label = f"`{name}` on deals"
    return need


loss_reasons = column("loss_reason", "loss reasons",
                      "map the export's loss-reason column as `loss_reason` under `deals: columns:` in dataset.yaml.")


def table(name: str):
    """An optional table (`accounts`, `contacts`, `touchpoints`) with rows."""
    def need(settings) -> Need:
        frame = getattr(settings.dataset, name)
        if frame is not None and len(frame):
            return Need(True)
        return Need(False, f"This part needs {TABLE_WORDS[name]}, which these data do not have: add "
                           f"{TABLE_FIXES[name]}.")
    need.__name__ = f"table_{name}"
    need.label = f"a `{name}` table"
    return need


@label("a column to compare (`segment_by`)")
def comparison(settings) -> Need:
    """A column to compare segments by (`Settings.segment_by`)."""
    if settings.segment_by is not None:
        return Need(True)
    return Need(False, f"No deal column here has two or more groups of at least {settings.min_deals} deals, so "
                       "there are no segments to compare. Set `segment_by` to a deal column, or lower "
                       "`min_deals`.")
