"""The cleaned stage history: integer arrays with the messy parts handled and counted.

`history` turns ``dataset.stage_history`` into sorted integer arrays (`History`) that the
funnel, transition, path and Markov analyses all start from. What is messy is handled and
counted (`history_quality` shows the counts):

- **duplicate entries** (same deal, stage and timestamp) are dropped;
- **same-time entries** (two stages of a deal at one timestamp) are kept, in process
  order (open stages, then won, then lost), so they read as forward progress;
- a **missing closing row** (a closed deal whose history has no won or lost row) is
  added at ``closed_at``, as `workbench.funnel.progress_rows` does;
- **skipped stages**, **regressions**, **repeated stages** (a later row for the stage the
  deal is already in) and histories that **start mid-funnel** are kept as they are and
  counted.

States are the open stages ``0..K-1``, then ``Won`` (``K``; every won stage) and ``Lost``
(``K + 1``; every lost stage). A *move* is a pair of consecutive rows of a deal (classified
in `workbench.funnel.transitions`).

The cleaned history is computed once per `Dataset` object and reused: a dataset is
immutable, and the benchmarks call four analyses on the same 10-million-row history.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import WorkbenchError, fixes
from .model import Dataset

WON, LOST = "Won", "Lost"
DAY_NS = 86_400 * 10**9
#: The kinds of move between two stage entries (`workbench.funnel.transitions` classifies every move).
KINDS = ("advance", "skip", "back", "re-enter", "win", "lose", "reopen")
#: Flow states after a deal's last move: still in its stage (open), or on beyond the steps drawn.
STAYS, CONTINUES = "(stays)", "(continues)"


@dataclass(frozen=True)
class History:
    """The cleaned history as arrays sorted by deal, time, then process order.

    ``deal`` is the row of ``dataset.deals``; ``state`` codes the open stages ``0..K-1``,
    Won ``K`` and Lost ``K + 1`` (named in ``names``); ``time`` is nanoseconds since the
    epoch; ``first`` marks each deal's first row. ``quality`` holds the counts made while
    cleaning (rows, duplicate rows and their deals, added closing rows).
    """

    deal: np.ndarray
    state: np.ndarray
    time: np.ndarray
    first: np.ndarray
    names: tuple[str, ...]
    n_deals: int
    quality: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of open stages."""
        return len(self.names) - 2

    @property
    def last(self) -> np.ndarray:
        """True on each deal's last row."""
        out = np.ones(len(self.deal), bool)
        out[:-1] = self.first[1:]
        return out


_CACHE: dict[int, tuple] = {}


def history(dataset: Dataset) -> History:
    """The cleaned history of ``dataset`` (see the module docstring), cached per dataset object.

    Raises
    ------
    WorkbenchError
        History rows name a deal missing from ``deals`` or a stage that is not declared.
    """
    key = id(dataset)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is dataset.stage_history and hit[1] is dataset.deals:
        return hit[2]
    result = _clean(dataset)
    _CACHE[key] = (dataset.stage_history, dataset.deals, result)
    weakref.finalize(dataset, _CACHE.pop, key, None)
    return result


def _clean(dataset: Dataset) -> History:
    if not dataset.stages:
        raise WorkbenchError("The dataset declares no stages. " + fixes("list `stages` in dataset.yaml"))
    k = len(dataset.stages)
    order = list(dataset.stage_order)
    won_rank, lost_rank = k, k + len(dataset.won_stages)
    # stage_order position -> state: open stages keep theirs, won stages -> K, lost -> K+1.
    lut = np.array([min(i, k) if i < lost_rank else k + 1 for i in range(len(order))], np.int8)
    raw = dataset.stage_history
    deals = dataset.deals
    n_raw = len(raw)
    deal, rank = history_codes(dataset)
    time = raw["entered_at"].to_numpy("datetime64[ns]").view("i8")
    n = len(deals)
    outcome = deals["outcome"].to_numpy()
    won_deal, lost_deal = outcome == "won", outcome == "lost"
    has_terminal = np.bincount(deal[rank >= won_rank], minlength=n) > 0
    missing = np.flatnonzero((won_deal | lost_deal) & ~has_terminal)
    if len(missing):
        close = deals["closed_at"].to_numpy("datetime64[ns]").view("i8")[missing]
        deal = np.concatenate([deal, missing])
        rank = np.concatenate([rank, np.where(won_deal[missing], won_rank, lost_rank).astype(np.int16)])
        time = np.concatenate([time, close])
    tcode = _time_code(time)
    key = _sort_key(deal, tcode, rank, len(order))
    if key is None:
        idx = np.lexsort((rank, tcode, deal))
        keys = (deal[idx], tcode[idx], rank[idx])
        dup = np.zeros(len(idx), bool)
        dup[1:] = (keys[0][1:] == keys[0][:-1]) & (keys[1][1:] == keys[1][:-1]) & (keys[2][1:] == keys[2][:-1])
    else:
        if len(key) > 1 and not (key[1:] >= key[:-1]).all():
            idx = np.argsort(key, kind="stable")
            key = key[idx]
        else:
            idx = None
        dup = np.zeros(len(key), bool)
        dup[1:] = key[1:] == key[:-1]
    if idx is not None:
        deal, tcode, rank, time = deal[idx], tcode[idx], rank[idx], time[idx]
    dropped = int(dup.sum())
    dup_deals = int(len(np.unique(deal[dup]))) if dropped else 0
    if dropped:
        keep = ~dup
        deal, tcode, rank, time = deal[keep], tcode[keep], rank[keep], time[keep]
    state = lut[rank]
    first = np.ones(len(deal), bool)
    first[1:] = deal[1:] != deal[:-1]
    quality = {"rows": n_raw, "duplicate_rows": dropped, "duplicate_deals": dup_deals,
               "added_closing_rows": len(missing)}
    names = tuple(dataset.stages) + (WON, LOST)
    return History(deal=deal, state=state, time=time, first=first, names=names, n_deals=n, quality=quality)


def history_codes(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per stage-history row (in the table's order): the row of its deal in ``deals`` and the
    position of its stage in ``dataset.stage_order``.

    Raises
    ------
    WorkbenchError
        History rows name a deal missing from ``deals`` or a stage that is not declared.
    """
    raw = dataset.stage_history
    deal = _deal_codes(raw["deal_id"].to_numpy(), dataset.deals["deal_id"])
    stage = raw["stage"]
    values = stage if isinstance(stage.dtype, pd.CategoricalDtype) else stage.to_numpy()
    rank = pd.Categorical(values, categories=list(dataset.stage_order)).codes.astype(np.int16)
    bad = (deal < 0) | (rank < 0)
    if bad.any():
        shown = raw.loc[bad, ["deal_id", "stage"]].head(5).to_dict("records")
        raise WorkbenchError(f"{int(bad.sum())} stage_history rows name a deal not in `deals` or an undeclared "
                             f"stage, e.g. {shown}. " + fixes("build the dataset with `load_dataset` or "
                                                              "`from_frames`, which exclude such rows"))
    return deal, rank


def _deal_codes(ids: np.ndarray, deal_ids: pd.Series) -> np.ndarray:
    """Row of ``deals`` for each history row; only run starts need a hash lookup (histories are
    usually grouped by deal)."""
    if not len(ids):
        return np.zeros(0, np.int64)
    run = np.ones(len(ids), bool)
    run[1:] = ids[1:] != ids[:-1]
    starts = np.flatnonzero(run)
    heads, known = ids[starts], deal_ids.to_numpy()
    if len(heads) == len(known) and (heads == known).all():
        codes = np.arange(len(known))  # one run per deal, in the deals' order: no hashing needed
    else:
        codes = pd.Index(known).get_indexer(heads)
    return np.repeat(codes, np.diff(np.r_[starts, len(ids)])).astype(np.int64)


def _time_code(time: np.ndarray) -> np.ndarray:
    """A compact integer with the order of ``time`` (for a sort key that cannot overflow): days
    or seconds since the first time when every time is a whole day or second, else a dense rank."""
    if not len(time):
        return time.copy()
    rel = time - time.min()
    for unit in (DAY_NS, 10**9):
        if not (rel % unit).any():
            return rel // unit
    return np.unique(time, return_inverse=True)[1].astype(np.int64)


def _sort_key(deal, tcode, rank, n_ranks) -> np.ndarray | None:
    """One int64 key ordering rows by (deal, time, rank), or None when it would overflow."""
    if not len(deal):
        return np.zeros(0, np.int64)
    span = int(tcode.max()) + 1
    if (int(deal.max()) + 1) * span * n_ranks >= 2**62:
        return None
    return (deal * span + tcode) * n_ranks + rank


# --- moves of the history (here because history_quality counts them too) -----------

def move_rows(h: History) -> np.ndarray:
    """Index of the first row of every move (its second row is the next one)."""
    return np.flatnonzero(~h.last)


def skipped_stages(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Open stages a move jumps over: forward moves between open stages and wins (Won is
    stage ``K``); zero for every other move."""
    forward = (a < k) & (b <= k) & (b > a)
    return np.where(forward, b.astype(np.int64) - a - 1, 0)


# --- history quality -----------------------------------------------------------------

def history_quality(dataset: Dataset) -> pd.DataFrame:
    """What was messy in the stage history, counted, and how each analysis treats it.

    Returns
    -------
    DataFrame
        One row per issue: ``issue``, ``rows`` (history rows or moves involved), ``deals``,
        ``handling``. Issues: duplicate entries (same deal, stage and timestamp), same-time
        entries (a deal entering two stages at one timestamp; counted: the later rows in
        process order), skipped stages (moves forward past an open stage, wins included),
        went back a stage, repeated stage (a later row for the stage the deal is in), starts
        mid-funnel (first row is not the first open stage), missing closing row, no stage
        history (open deals without any row), closing row but deal open, history outcome
        differs from ``deals.outcome``, re-opened after close.
    """
    h = history(dataset)
    q = h.quality
    k = h.k
    deals = dataset.deals
    outcome = deals["outcome"].to_numpy()
    i = move_rows(h)
    a, b = h.state[i], h.state[i + 1]
    move_deal = h.deal[i]
    same_time = h.time[i + 1] == h.time[i]
    skipped = skipped_stages(a, b, k) > 0
    back = (a < k) & (b < a)
    repeat = a == b
    reopen = (a >= k) & (a != b)
    first_rows = np.flatnonzero(h.first)
    mid = h.state[first_rows] > 0
    mid &= h.state[first_rows] < k  # closing-only histories are counted elsewhere
    has_row = np.zeros(len(deals), bool)
    has_row[h.deal] = True
    no_history_open = ~has_row & (outcome == "open")
    last_rows = np.flatnonzero(h.last)
    last_state, last_deal = h.state[last_rows], h.deal[last_rows]
    closing_but_open = (last_state >= k) & (outcome[last_deal] == "open")
    terminal = np.flatnonzero(h.state >= k)
    # The last closing row of each deal against the outcome column.
    t_deal, t_state = h.deal[terminal], h.state[terminal]
    last_t = np.r_[t_deal[1:] != t_deal[:-1], True] if len(terminal) else np.zeros(0, bool)
    t_deal, t_state = t_deal[last_t], t_state[last_t]
    says = np.where(t_state == k, "won", "lost")
    mismatch = (outcome[t_deal] != "open") & (says != outcome[t_deal])

    def n_deals(mask, of):
        return int(len(np.unique(of[mask])))

    rows = [
        ("duplicate entries", q["duplicate_rows"], q["duplicate_deals"],
         "dropped: the same deal, stage and timestamp twice is one entry"),
        ("same-time entries", int(same_time.sum()), n_deals(same_time, move_deal),
         "kept, in process order (open stages, then won, then lost): read as forward progress"),
        ("skipped stages", int(skipped.sum()), n_deals(skipped, move_deal),
         "kept: a move past a stage counts as advancing past it (the skipped stage is not entered)"),
        ("went back a stage", int(back.sum()), n_deals(back, move_deal),
         "kept: the move is 'back'; the eventual conversion looks at the first entry into each stage"),
        ("repeated stage", int(repeat.sum()), n_deals(repeat, move_deal),
         "kept as a 're-enter' move; the visit continues (routes and the Markov chain collapse it)"),
        ("starts mid-funnel", int(mid.sum()), int(mid.sum()),
         "kept: the deal is in no earlier stage's denominator"),
        ("missing closing row", q["added_closing_rows"], q["added_closing_rows"],
         "added: a Won/Lost row at closed_at for closed deals whose history has none"),
        ("no stage history", int(no_history_open.sum()), int(no_history_open.sum()),
         "open deals without any history row: in no stage's denominator"),
        ("closing row but deal open", int(closing_but_open.sum()), int(closing_but_open.sum()),
         "kept as in the history; the deal counts as open (deals.outcome decides)"),
        ("history outcome differs from deals.outcome", int(mismatch.sum()), int(mismatch.sum()),
         "deals.outcome decides outcomes and win rates; moves follow the history"),
        ("re-opened after close", int(reopen.sum()), n_deals(reopen, move_deal),
         "kept as a 'reopen' move"),
    ]
    return pd.DataFrame(rows, columns=["issue", "rows", "deals", "handling"])
