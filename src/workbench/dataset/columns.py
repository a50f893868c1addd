"""The canonical tables and their columns, by name (the standard library only, for modules that need the
names and not the data, such as a run's worker writing a report)."""
from __future__ import annotations

OUTCOMES = ("won", "lost", "open")

DEAL_COLUMNS = ("deal_id", "created_at", "closed_at", "outcome", "amount", "owner", "account_id")
REQUIRED_DEAL_COLUMNS = ("deal_id", "created_at", "closed_at", "outcome")
#: The deal dates: a deals table may leave out both (a dateless, drivers-only table), not one.
DEAL_DATE_COLUMNS = ("created_at", "closed_at")
HISTORY_COLUMNS = ("deal_id", "stage", "entered_at")
ACCOUNT_COLUMNS = ("account_id",)
CONTACT_COLUMNS = ("contact_id", "account_id", "deal_id", "role", "persona")
TOUCHPOINT_COLUMNS = ("deal_id", "account_id", "contact_id", "occurred_at", "channel", "kind")

#: Required columns per table; the rest of each table's known columns are optional.
REQUIRED_COLUMNS = {
    "deals": REQUIRED_DEAL_COLUMNS,
    "stage_history": HISTORY_COLUMNS,
    "accounts": ("account_id",),
    "contacts": ("contact_id",),
    "touchpoints": ("occurred_at",),
}
KNOWN_COLUMNS = {
    "deals": DEAL_COLUMNS,
    "stage_history": HISTORY_COLUMNS,
    "accounts": ACCOUNT_COLUMNS,
    "contacts": CONTACT_COLUMNS,
    "touchpoints": TOUCHPOINT_COLUMNS,
}
DATE_COLUMNS = {
    "deals": ("created_at", "closed_at"),
    "stage_history": ("entered_at",),
    "touchpoints": ("occurred_at",),
    "accounts": (),
    "contacts": (),
}
TABLES = tuple(REQUIRED_COLUMNS)


def rows_label(table: str, rows: int) -> str:
    """``12 deals rows`` for a canonical table, ``2 rows of sectors.csv`` for a joined file's own rows."""
    return f"{rows:,} {table} rows" if table in TABLES else f"{rows:,} rows of {table}"
