"""The canonical CRM data model: one validated, in-memory `Dataset`.

Tables and their columns (extra columns on `deals` are segment attributes):

- ``deals``: ``deal_id``, ``created_at``, ``closed_at`` (NaT while open),
  ``outcome`` (``won``, ``lost``, ``open``), ``amount``, ``owner``, ``account_id``, ...
  A *dateless* (drivers-only) deals table maps neither date: both columns are all NaT,
  `Dataset.has_dates` is False, and only outcomes and attributes can be analysed.
- ``stage_history``: ``deal_id``, ``stage``, ``entered_at``; one row per entry into
  a stage, repeats allowed.
- optional ``accounts`` (``account_id`` + firmographics), ``contacts`` (``contact_id``,
  ``account_id``, ``deal_id``, ``role``, ``persona``) and ``touchpoints``
  (``deal_id``/``account_id``/``contact_id``, ``occurred_at``, ``channel``, ``kind``).

The tables' and columns' names, which need no pandas, are in `workbench.dataset.columns`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd

from .. import tables
from ..exceptions import WorkbenchError, fixes
from .columns import DEAL_COLUMNS, OUTCOMES, TABLES
from .problems import ValidationReport


@dataclass(frozen=True)
class Dataset:
    """Validated CRM data, ready for analysis.

    Parameters
    ----------
    deals, stage_history : DataFrame
        The two core tables (``stage_history`` may be empty when a source has none).
    stages : tuple of str
        The open stages in process order.
    won_stages, lost_stages : tuple of str
        Stage names that mean the deal was won or lost.
    as_of : Timestamp
        Observation cut-off: open deals are censored here. NaT when the deals have no
        dates (see `has_dates`) and dataset.yaml gives no ``as_of:``.
    accounts, contacts, touchpoints : DataFrame or None
        Optional tables.
    report : ValidationReport
        Every problem found while loading, and the rows excluded with the reason.
    name : str
        A label for reports.
    """

    deals: pd.DataFrame
    stage_history: pd.DataFrame
    stages: tuple[str, ...]
    won_stages: tuple[str, ...]
    lost_stages: tuple[str, ...]
    as_of: pd.Timestamp
    accounts: pd.DataFrame | None = None
    contacts: pd.DataFrame | None = None
    touchpoints: pd.DataFrame | None = None
    report: ValidationReport = field(default_factory=ValidationReport)
    name: str = "dataset"
    currency: str | None = None

    @property
    def stage_order(self) -> tuple[str, ...]:
        """Open stages, then won stages, then lost stages."""
        return self.stages + self.won_stages + self.lost_stages

    @property
    def has_dates(self) -> bool:
        """Whether any deal has a creation date; False for a dateless, drivers-only table.

        Without dates only outcomes and attributes can be analysed: no time to close,
        stage conversion, mature cohort, cut-off or forecast.
        """
        return bool(self.deals["created_at"].notna().any())

    @property
    def attributes(self) -> list[str]:
        """Deal columns beyond the canonical ones: the segment attributes."""
        return [c for c in self.deals.columns if c not in DEAL_COLUMNS]

    @property
    def exclusions(self) -> pd.DataFrame:
        """Rows excluded while loading: one row per (table, reason) with a count."""
        return self.report.exclusions()

    def counts(self) -> dict[str, int]:
        """Number of deals by outcome, plus the total."""
        by = self.deals["outcome"].value_counts()
        out = {"deals": int(len(self.deals))}
        out.update({o: int(by.get(o, 0)) for o in OUTCOMES})
        return out

    def filter(self, segment: Mapping[str, object] | None = None) -> "Dataset":
        """The dataset restricted to the deals matching ``segment``.

        ``segment`` maps a deal column to a value or a list of values; related rows
        of the other tables follow their deals. An empty segment returns ``self``.
        """
        if not segment:
            return self
        return self.with_rows(self.segment_rows(segment))

    def segment_rows(self, segment: Mapping[str, object], *, links: "Links | None" = None) -> dict[str, np.ndarray]:
        """Which rows `filter` keeps for ``segment``: per table present, the positions (0-based, in order)
        of its rows. ``with_rows`` of them is ``filter(segment)``; the runner also takes the whole
        dataset's row hashes at them (`store.fingerprint`), so a segment's are not computed again.
        ``links``: this dataset's `links`, for many segments: their related rows are then found by
        position instead of by looking up each text id again.

        Raises
        ------
        WorkbenchError
            ``segment`` names a column the deals do not have.
        """
        mask = np.ones(len(self.deals), dtype=bool)
        for column, wanted in segment.items():
            if column not in self.deals.columns:
                raise WorkbenchError(
                    f"Cannot filter on `{column}`: deals have no such column. "
                    + fixes(f"use one of {sorted(self.deals.columns)}",
                            "map the column onto deals in dataset.yaml")
                )
            values = list(wanted) if isinstance(wanted, (list, tuple, set)) else [wanted]
            mask &= self.deals[column].isin(values).to_numpy()
        kept = np.flatnonzero(mask)
        if links is not None:
            return {"deals": kept, **links.rows(mask)}
        keys = self.deals[[c for c in ("deal_id", "account_id") if c in self.deals]].iloc[kept]
        return {"deals": kept, **self._related_rows(keys)}

    def links(self) -> "Links | None":
        """Where each row of the other tables points among the deals, looked up once for many
        `segment_rows`. None when the deal ids repeat or an id column is not text (a dataset built by
        hand): only `isin` then says which rows follow a deal."""
        deals = self.deals
        others = {t: getattr(self, t) for t in ("stage_history", "accounts", "contacts", "touchpoints")}
        others = {t: f for t, f in others.items() if f is not None}
        id_columns = [deals["deal_id"], deals.get("account_id")] + [
            f[c] for f in others.values() for c in ("deal_id", "account_id") if c in f]
        if any(c is not None and c.dtype != object for c in id_columns):
            return None
        ids = pd.Index(deals["deal_id"])
        if not ids.is_unique:
            return None
        if "account_id" in deals:
            account_of, values = pd.factorize(deals["account_id"].to_numpy())
        else:
            account_of, values = np.full(len(deals), -1), np.array([], dtype=object)
        accounts = pd.Index(values)
        deal_of, account_at, account_codes = {}, {}, {}
        for table, frame in others.items():
            # As `_related_rows`: stage entries follow their deal, accounts their deals' accounts, and
            # contacts and touchpoints both (by account only where they name no deal).
            if "deal_id" in frame and table != "accounts":
                deal_of[table] = ids.get_indexer(frame["deal_id"])
            if table == "stage_history":
                continue
            if table == "accounts":
                account_at[table] = np.arange(len(frame))
            elif "account_id" in frame:
                account_at[table] = np.flatnonzero(frame["deal_id"].isna().to_numpy()) if "deal_id" in frame \
                    else np.arange(len(frame))
            if table in account_at:
                account_codes[table] = accounts.get_indexer(frame["account_id"].iloc[account_at[table]])
        return Links(deal_of, account_of, account_at, account_codes, {t: len(f) for t, f in others.items()})

    def with_rows(self, rows: Mapping[str, np.ndarray]) -> "Dataset":
        """The dataset with only the given rows of each table (`segment_rows`), indexed 0..n-1."""
        return replace(self, **{table: _rows(getattr(self, table), at) for table, at in rows.items()})

    def _related_rows(self, deals: pd.DataFrame) -> dict[str, np.ndarray]:
        """Positions of the other tables' rows that follow ``deals``: those of these deals, and rows
        without a deal of these deals' accounts."""
        ids = deals["deal_id"]
        # Unique values rather than a set: `isin` turns a set into a list and then an array, a second
        # pass over up to a million ids; the membership it tests is the same.
        accounts = pd.unique(deals["account_id"].dropna().to_numpy()) if "account_id" in deals else []

        def related(table):
            keep = np.zeros(len(table), dtype=bool)
            if "deal_id" in table:
                keep |= table["deal_id"].isin(ids).to_numpy()
            if "account_id" in table and len(accounts):
                # Only rows without a deal can be kept by their account: the other rows skip the lookup.
                no_deal = table["deal_id"].isna().to_numpy() if "deal_id" in table else np.ones(len(table), bool)
                at = np.flatnonzero(no_deal)
                keep[at] |= table["account_id"].iloc[at].isin(accounts).to_numpy()
            return np.flatnonzero(keep)

        rows = {"stage_history": np.flatnonzero(self.stage_history["deal_id"].isin(ids).to_numpy())}
        if self.accounts is not None:
            rows["accounts"] = np.flatnonzero(self.accounts["account_id"].isin(accounts).to_numpy())
        for table in ("contacts", "touchpoints"):
            if getattr(self, table) is not None:
                rows[table] = related(getattr(self, table))
        return rows

    def _restrict(self, deals: pd.DataFrame) -> "Dataset":
        """The dataset with ``deals`` (a subset of its own) and the other tables' rows that follow them."""
        return replace(self.with_rows(self._related_rows(deals)), deals=deals.reset_index(drop=True))

    def cut(self, as_of) -> "Dataset":
        """The dataset as it would have looked at an earlier cut-off ``as_of``.

        Deals created after ``as_of`` disappear, deals closed after it are open again,
        and stage entries and touchpoints after it are dropped. Used for backtests.

        Raises
        ------
        WorkbenchError
            ``as_of`` is after the data's cut-off, or the deals have no dates to cut at.
        """
        # No deals (an empty segment) says nothing about dates: cutting it is harmless.
        if len(self.deals) and not self.has_dates:
            raise WorkbenchError(
                f"Cannot cut {self.name!r} at {as_of}: its deals have no dates (a drivers-only table), so there "
                "is no earlier state to go back to. "
                + fixes("map `created_at` and `closed_at` onto deals in dataset.yaml",
                        "analyse outcomes and attributes only, without a cut-off")
            )
        as_of = pd.Timestamp(as_of)
        if as_of > self.as_of:
            raise WorkbenchError(
                f"Cannot cut at {as_of.date()}: it is after the data's cut-off {self.as_of.date()}. "
                + fixes("choose an earlier date")
            )
        deals = self.deals[self.deals["created_at"] <= as_of].copy()
        reopened = deals["closed_at"] > as_of
        deals.loc[reopened, "closed_at"] = pd.NaT
        deals.loc[reopened, "outcome"] = "open"
        history = self.stage_history[self.stage_history["entered_at"] <= as_of]
        touch = self.touchpoints
        if touch is not None:
            touch = touch[touch["occurred_at"] <= as_of]
        cut = replace(self, deals=deals, stage_history=history, touchpoints=touch, as_of=as_of)
        return cut._restrict(deals)

    def summary(self) -> pd.DataFrame:
        """One row per table: rows kept and rows excluded."""
        excluded = self.exclusions.groupby("table")["rows"].sum() if len(self.exclusions) else {}
        rows = []
        for table in TABLES:
            frame = getattr(self, table)
            if frame is None:
                continue
            rows.append({"table": table, "rows": len(frame), "excluded": int(excluded.get(table, 0))})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        c = self.counts()
        when = "" if pd.isna(self.as_of) else f" as of {self.as_of.date()}"
        if len(self.deals) and not self.has_dates:
            when += ", without deal dates"
        return (f"<Dataset {self.name!r}: {c['deals']} deals ({c['won']} won, {c['lost']} lost, "
                f"{c['open']} open){when}, {len(self.stage_history)} stage entries>")

    def _repr_html_(self) -> str:
        scope = f"<p>Excluded rows are counted over {self.report.scope}.</p>" if self.report.scope else ""
        return f"<p>{repr(self)[1:-1]}</p>" + tables.to_html(self.summary(), index=False) + scope


@dataclass(frozen=True)
class Links:
    """`Dataset.links`: for each other table, the position among the deals of each row's deal (-1:
    none), and each deal's account and the accounts of the rows kept by their account alone (the
    accounts table's rows, and other rows without a deal) as codes among the deals' accounts."""

    deal_of: dict[str, np.ndarray]
    account_of: np.ndarray
    account_at: dict[str, np.ndarray]
    account_codes: dict[str, np.ndarray]
    lengths: dict[str, int]

    def rows(self, deals: np.ndarray) -> dict[str, np.ndarray]:
        """The other tables' rows that follow the deals where ``deals`` (a mask over them) holds:
        what `Dataset._related_rows` finds by looking the ids up."""
        chosen_deal = np.append(deals, False)  # position -1, no deal: not chosen
        chosen_account = np.zeros(int(self.account_of.max(initial=-1)) + 2, dtype=bool)
        chosen_account[self.account_of[deals]] = True
        chosen_account[-1] = False  # code -1, no account: never chosen
        out = {}
        for table, n in self.lengths.items():
            keep = chosen_deal[self.deal_of[table]] if table in self.deal_of else np.zeros(n, dtype=bool)
            if table in self.account_at:
                keep[self.account_at[table]] |= chosen_account[self.account_codes[table]]
            out[table] = np.flatnonzero(keep)
        return out


def _rows(table: pd.DataFrame, at: np.ndarray) -> pd.DataFrame:
    """The rows of ``table`` at positions ``at``, indexed 0..n-1: what ``table[keep].reset_index(drop=True)``
    gives, without its second copy of every column (seconds at millions of text cells)."""
    out = table.take(at)
    out.index = pd.RangeIndex(len(out))
    return out


def excluded_rows(dataset: Dataset) -> dict:
    """Rows the load excluded: the total and one entry per (table, reason)."""
    table = dataset.exclusions
    return {"count": int(table["rows"].sum()) if len(table) else 0,
            "by_reason": [{"table": r.table, "check": r.check, "reason": r.reason, "rows": int(r.rows)}
                          for r in table.itertuples()]}
