"""The deals and columns the win/loss analyses compare: the mature cohort and the default attributes.

`workbench.drivers.winrates` (one attribute at a time) and `workbench.drivers` (all at once)
read the same outcome on the same deals, the *mature cohort*: deals created at least
``mature_days`` before ``as_of``, counted as won when they were won within
``mature_days`` of creation. Every deal in the cohort has been watched for that long,
so deals still open do not bias the rate: an open deal old enough to be in the cohort
has simply not won in time. (Dropping open deals, or counting them as lost, would bias
the comparison of segments that close at different speeds.) ``mature_days=None`` uses
every deal's final outcome instead, which is right only when no deal is open. A
dateless dataset (`Dataset.has_dates` False) has no horizon to judge by: its cohort is
every closed deal by final outcome, and its open deals are left out.

- `mature_cohort`: the deals and the 0/1 outcome both views use; `cohort_note` says
  in a sentence which deals they are.
- `candidate_columns`: the attributes both views consider by default, and for every
  one held out the reason (its name leaks the outcome, it is mostly empty, has one
  value or too many levels, or another column determines it).
- `deal_column`, `as_labels`, `fold_rare`: a deal (or account) column, its values as
  text levels, and rare levels folded into `other_label`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..dataset.model import Dataset
from ..exceptions import WorkbenchError, fixes
from ..timeunits import span
from .leakage import LEAKY_WORDS, decided_by_outcome, leaky_word, role_held_out  # noqa: F401 - re-exported

#: More distinct values than this: too many levels for a category (numbers are binned or taken per unit).
MAX_LEVELS = 20
#: The level a missing value gets.
MISSING = "(missing)"
#: Numeric covariates with a known unit: (transform, label of one unit).
UNITS = {"amount": ("log2", "per doubling"), "revenue": ("log2", "per doubling"),
         "employees": ("per100", "per 100")}
DAY = pd.Timedelta(days=1)


# ------------------------------------------------------------------------------- cohort


def other_label(min_level: int) -> str:
    """The level rare levels are folded into; the label states the threshold."""
    return f"other (<{min_level} deals)"


def mature_cohort(dataset: Dataset, mature_days: int | None = 365) -> pd.DataFrame:
    """The deals old enough to judge, with ``won``: won within ``mature_days`` of creation.

    Deals created at least ``mature_days`` before ``as_of`` form the cohort; a deal
    won later than ``mature_days`` after creation, lost, or still open counts as not
    won. ``mature_days=None`` takes every deal and its final outcome, and is refused
    when some deal is still open. On a dateless dataset ``mature_days`` does not apply:
    the cohort is every won or lost deal, by final outcome, and open deals are left out
    (`cohort_note` counts them), since when they will close, and how, is unknown.

    Raises
    ------
    WorkbenchError
        Deals are still open with ``mature_days=None`` (dated data), or the cohort is
        empty or holds a single outcome.
    """
    deals = dataset.deals
    if not dataset.has_dates:
        closed = deals[deals["outcome"].isin(["won", "lost"])]
        cohort = closed.assign(won=closed["outcome"].eq("won").to_numpy())
        if cohort.empty or cohort["won"].nunique() < 2:
            what = "no deal" if cohort.empty else ("only won deals" if cohort["won"].all() else "no won deal")
            raise WorkbenchError(f"The data have no dates, so the cohort is every closed deal, and it has {what}: "
                                 "there is nothing to compare. "
                                 + fixes("check the `outcome` mapping under `values:` in dataset.yaml",
                                         "choose a segment with both won and lost deals"))
        return cohort.reset_index(drop=True)
    if mature_days is None:
        still_open = int(deals["outcome"].eq("open").sum())
        if still_open:
            raise WorkbenchError(f"{still_open} deals are still open, so final outcomes are not known yet. "
                                 + fixes("pass `mature_days=` (e.g. 365) to judge deals by a fixed horizon"))
        cohort = deals.assign(won=deals["outcome"].eq("won").to_numpy())
    else:
        cutoff = dataset.as_of - mature_days * DAY
        cohort = deals[deals["created_at"] <= cutoff]
        in_time = (cohort["closed_at"] - cohort["created_at"]) <= mature_days * DAY
        cohort = cohort.assign(won=(cohort["outcome"].eq("won") & in_time).to_numpy())
    if cohort.empty or cohort["won"].nunique() < 2:
        what = "no deal" if cohort.empty else ("only won deals" if cohort["won"].all() else "no won deal")
        since = "" if mature_days is None else f" created {span(mature_days)} or more before {dataset.as_of.date()}"
        raise WorkbenchError(f"The cohort of deals{since} has {what}: there is nothing to compare. "
                             + fixes("lower `mature_days`",
                                     "pass `mature_days=None` when the data has no open deals"))
    return cohort.reset_index(drop=True)


def cohort_note(dataset: Dataset, cohort: pd.DataFrame, mature_days: int | None) -> str:
    """One sentence for the notes: which deals the cohort holds and how many of them won."""
    won = int(cohort["won"].sum())
    if not dataset.has_dates:
        still_open = int(dataset.deals["outcome"].eq("open").sum())
        left_out = (f"; the {still_open} open deal{'s are' if still_open != 1 else ' is'} left out because "
                    f"{'their' if still_open != 1 else 'its'} outcome is not known yet" if still_open else "")
        return (f"The data have no dates, so the cohort is every closed deal ({len(cohort)}){left_out}: "
                f"{won} ({won / len(cohort):.0%}) won.")
    if mature_days is None:
        return f"All {len(cohort)} deals (none open), by final outcome: {won} ({won / len(cohort):.0%}) won."
    horizon = span(mature_days)
    return (f"{len(cohort)} deals created at least {horizon} before {dataset.as_of.date()}: "
            f"{won} ({won / len(cohort):.0%}) won within {horizon} of creation.")


# ------------------------------------------------------------------------------ columns


def deal_column(dataset: Dataset, deals: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` of ``deals`` (rows of ``dataset.deals``, e.g. the cohort), or the
    account column of that name joined on ``account_id``; an error names the known ones."""
    if name in deals:
        return deals[name]
    accounts = dataset.accounts
    if accounts is not None and name in accounts and "account_id" in deals:
        return deals["account_id"].map(accounts.set_index("account_id")[name]).rename(name)
    extra = [] if accounts is None else [c for c in accounts.columns if c != "account_id"]
    known = list(dict.fromkeys(dataset.attributes + ["amount"] + extra))
    raise WorkbenchError(f"Deals have no column `{name}`" + (" and neither do accounts" if accounts is not None else "")
                         + ". " + fixes(f"use one of {known}"))


def as_labels(values: pd.Series) -> pd.Series:
    """``values`` as text labels (missing stays missing); whole numbers (codes read as floats)
    print without ``.0``."""
    def label(v):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)
    return values.map({v: label(v) for v in values.dropna().unique()})


def fold_rare(labels: pd.Series, min_level: int) -> tuple[pd.Series, list[str]]:
    """Levels under ``min_level`` deals become `other_label`; ``(missing)`` stays itself."""
    sizes = labels.value_counts()
    rare = sorted(level for level in sizes[sizes < min_level].index if level != MISSING)
    if not rare:
        return labels, []
    return labels.where(~labels.isin(rare), other_label(min_level)), rare


# --------------------------------------------------------------------- covariate choice


def candidate_columns(dataset: Dataset, cohort: pd.DataFrame, exclude: Sequence[str] = LEAKY_WORDS,
                      prune: bool = True) -> tuple[list[str], dict[str, str]]:
    """Default covariates and, for every column considered and not used, the reason.

    Considered: the deal attributes, ``amount``, ``owner`` and ``account_id`` when filled, and
    the account columns with a known unit (`UNITS`). Held out: names holding a word of
    ``exclude`` (`workbench.drivers.leakage.leaky_word`), the owner and account id (their role,
    `role_held_out`), columns whose values the outcome decides (`decided_by_outcome`), columns
    filled on under half of ``cohort``, with a single value, or with more than `MAX_LEVELS`
    levels (numbers with a known unit excepted); with ``prune``, also a categorical column
    another chosen one determines (a grouping of it, or a binning of ``amount``).
    """
    names = list(dataset.attributes) + ["amount"]
    if dataset.accounts is not None:
        names += [c for c in UNITS if c in dataset.accounts and c not in names]
    roles = [c for c in ("owner", "account_id") if dataset.deals[c].notna().any()]
    chosen, held_out = [], {c: role_held_out(c) for c in roles}
    decided = decided_by_outcome(dataset, [n for n in names if leaky_word(n, exclude) is None])
    for name in names:
        word = leaky_word(name, exclude)
        if word is not None:
            held_out[name] = (f"its name holds the word `{word}`: measured during the sale or at its close, "
                              "it would leak the outcome")
            continue
        if name in decided:
            held_out[name] = (f"decided by the outcome ({decided[name]}): it would restate the outcome, "
                              "not explain it")
            continue
        values = deal_column(dataset, cohort, name)
        filled = values.notna().mean()
        levels = values.nunique()
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if filled < 0.5:
            held_out[name] = (f"filled on {filled:.0%} of the cohort's deals: the model would drop the "
                              "rest (pass it in `covariates=` to do that anyway)")
        elif levels < 2:
            held_out[name] = "a single value in the cohort: nothing to compare"
        elif levels > MAX_LEVELS and not (numeric and name in UNITS):
            held_out[name] = (f"{levels} distinct values and no known unit: pass it in `covariates=` to use it "
                              "per unit" if numeric else
                              f"{levels} levels (more than {MAX_LEVELS}): too many for one effect each; "
                              "map them to fewer levels in dataset.yaml")
        else:
            chosen.append(name)
    if prune:
        chosen, held_out = _prune_redundant(dataset, cohort, chosen, held_out)
    return chosen, held_out


def _prune_redundant(dataset, cohort, chosen, held_out):
    """Hold out categorical columns another chosen column determines (a coarser grouping of
    it, or a binning of ``amount``): their effects cannot be told apart."""
    categorical = [c for c in chosen if c not in UNITS]
    codes = {c: pd.factorize(deal_column(dataset, cohort, c))[0] for c in categorical}  # -1: missing
    sizes = {c: int(codes[c].max()) + 1 for c in categorical}
    for coarse in sorted(categorical, key=lambda c: sizes[c]):
        for fine in categorical:
            if fine == coarse or fine in held_out or coarse in held_out:
                continue
            both = (codes[fine] >= 0) & (codes[coarse] >= 0)
            pairs = np.unique(codes[fine][both] * sizes[coarse] + codes[coarse][both])
            if both.any() and len(pairs) == len(np.unique(codes[fine][both])):
                held_out[coarse] = (f"determined by `{fine}` (each `{fine}` level lies within one `{coarse}` "
                                    f"level): its effect cannot be told apart from `{fine}`'s")
        if coarse not in held_out and "amount" in chosen and sizes[coarse] >= 3:
            ranges = cohort["amount"].groupby(codes[coarse]).agg(["min", "max"]).drop(index=-1, errors="ignore")
            ranges = ranges.sort_values("min")
            if (ranges["max"].to_numpy()[:-1] < ranges["min"].to_numpy()[1:]).all():
                held_out[coarse] = ("a binning of `amount` (its levels cover disjoint amount ranges): "
                                    "amount enters per doubling instead")
    return [c for c in chosen if c not in held_out], held_out

