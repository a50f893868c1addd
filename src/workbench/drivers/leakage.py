"""Which columns may not explain winning, judged by name and by content.

A driver must be known before the deal closes. Three ways a column fails that:

- *its name* says it is measured during the sale or at its close (`leaky_word`): the words of
  `LEAKY_WORDS` are matched against the name's words (``stage_change_count`` holds ``count``;
  ``country`` and ``account_revenue`` do not), so that a word inside another is no match;
- *its content* is decided by the outcome (`workbench.dataset.sanity.outcome_decided_columns`):
  an amount 0 on every lost deal, a reason filled only on lost deals, a copy of the outcome
  under another name. A name cannot tell these, so the values are read;
- *its gaps* are: a value the CRM fills as a deal progresses (an account linked at the close,
  a sector from the joined accounts file) is empty mostly on deals still open, so an empty
  value says "still open", not what the deal is. `missing_by_openness` finds such columns; the
  univariate comparison then leaves those deals out of that column's comparison (with a note)
  rather than show a ``(missing)`` level that wins 0% by construction. (The logistic model
  drops every deal missing a covariate anyway, and counts them.)

The owner (sales rep) and account id are never silent: `role_held_out` gives the reason they
are left out of the default drivers.
"""
from __future__ import annotations

import re
from typing import Sequence

import pandas as pd

from ..dataset.model import Dataset
from ..dataset.sanity import outcome_decided_columns

#: Column names holding one of these words are held out by default: they are measured during
#: the sale or at its close, so they leak the outcome.
LEAKY_WORDS = ("reason", "stage", "days", "duration", "count", "closed", "won", "lost", "outcome", "ratio")
#: A count of the company's people is a firmographic, known before any deal: with one of these
#: words beside it, `count` is no leaky word (``Client Size By Employee Count``, ``EmployeeCount``).
HEADCOUNT_WORDS = ("employee", "employees", "headcount", "staff", "fte")
#: Open deals among a column's empty values, at least, for the gaps to be taken as "still open".
OPEN_SHARE = 0.5


def words(name: str) -> list[str]:
    """A column name's words, lower case: split at anything not a letter or digit and at camelCase
    humps (``StageChangeCount`` -> ``stage``, ``change``, ``count``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(name))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def leaky_word(name: str, exclude: Sequence[str] = LEAKY_WORDS) -> str | None:
    """The first of ``exclude`` that is one of ``name``'s words (or that word plus ``s``/``es``),
    case-insensitive; ``None`` when there is none. A word of several (``days in stage``) must
    appear as consecutive words. ``count`` beside a word for the company's people
    (`HEADCOUNT_WORDS`) is a firmographic, not a leak."""
    found = words(name)
    for word in exclude:
        target = words(word)
        if not target or (target == ["count"] and set(found) & set(HEADCOUNT_WORDS)):
            continue
        for i in range(len(found) - len(target) + 1):
            window = found[i: i + len(target)]
            if window[:-1] == target[:-1] and window[-1] in (target[-1], target[-1] + "s", target[-1] + "es"):
                return word
    return None


def role_held_out(name: str) -> str | None:
    """Why a canonical column with a role of its own is left out of the default drivers."""
    if name == "owner":
        return ("the deal owner (sales rep): who works a deal, not what the deal is, and reps are often "
                "assigned by size, region or stage, so the effect would mix skill with assignment; compare reps "
                "on their own (win rates by owner), or name the column in `driver_columns` to use it")
    if name == "account_id":
        return "an identifier of the account, not an attribute: one level per account"
    return None


def decided_by_outcome(dataset: Dataset, names: Sequence[str]) -> dict[str, str]:
    """Column -> why its values are fixed by the final outcome, over the dataset's closed deals."""
    deals = dataset.deals
    present = [n for n in names if n in deals]
    return outcome_decided_columns(deals, present)


def missing_by_openness(values: pd.Series, cohort: pd.DataFrame) -> str | None:
    """Why a column's empty values say "still open" rather than anything about the deal, or None.

    The gaps are taken as explained by openness when at least half of the cohort's deals missing
    the value are still open at the cut-off, and open deals are at least twice as common among
    them as among the deals that have it.
    """
    missing = values.isna().to_numpy()
    if not missing.any() or missing.all() or "outcome" not in cohort:
        return None
    is_open = cohort["outcome"].eq("open").to_numpy()
    open_missing = float(is_open[missing].mean())
    open_filled = float(is_open[~missing].mean())
    if open_missing < OPEN_SHARE or open_missing < 2 * open_filled:
        return None
    return (f"empty on {int(missing.sum()):,} deals of the cohort, {open_missing:.0%} of them still open (against "
            f"{open_filled:.0%} of the deals that have it): the CRM fills it as a deal progresses, so an empty "
            "value says the deal is still open, not what it is")
