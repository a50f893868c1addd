"""Non-linear journeys: the cleaned stage history, moves between stages, path variants.

Everything here starts from `history`: the stage history as sorted integer arrays, with
the messy parts handled and counted (`history_quality` shows the counts):

- **duplicate entries** (same deal, stage and timestamp) are dropped;
- **same-time entries** (two stages of a deal at one timestamp) are kept, in process
  order (open stages, then won, then lost), so they read as forward progress;
- a **missing closing row** (a closed deal whose history has no won or lost row) is
  added at ``closed_at``, as `workbench.funnel.progress_rows` does;
- **skipped stages**, **regressions**, **repeated stages** (a later row for the stage the
  deal is already in) and histories that **start mid-funnel** are kept as they are and
  counted.

States are the open stages ``0..K-1``, then ``Won`` (``K``; every won stage) and ``Lost``
(``K + 1``; every lost stage). A *move* is a pair of consecutive rows of a deal; it is
classified by where it goes (`KINDS`):

========  ===========================================================
advance   to the next open stage
skip      forward past at least one open stage (to an open stage)
back      to an earlier open stage (a regression)
re-enter  to the stage the deal is already in (a repeated entry)
win       from an open stage to Won (from any open stage)
lose      from an open stage to Lost
reopen    out of Won or Lost (to any other state)
========  ===========================================================

Counts of moves are counts of what happened by ``as_of``; a deal still in a stage at
``as_of`` has made no move out of it yet (``still_in`` in `TransitionMatrix.table`).

On top of the moves: `transition_matrix` (counts and row shares), `path_variants` (the
most common routes with win rates), `stage_flows` (for the Sankey diagram),
`regression_effect` (deals that went back, and their win rate) and `history_quality`.
The cleaned history is computed once per `Dataset` object and reused: a dataset is
immutable, and the benchmarks call four analyses on the same 10-million-row history.
"""
from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .exceptions import SmallSampleWarning, WorkbenchError, fixes
from .model import Dataset

OVERALL = "All deals"
WON, LOST = "Won", "Lost"
DAY_NS = 86_400 * 10**9
KINDS = ("advance", "skip", "back", "re-enter", "win", "lose", "reopen")
NO_OPEN_STAGE = "(no open stage)"
OTHER_ROUTES = "(other routes)"
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
    ids = raw["deal_id"].to_numpy()
    n_raw = len(ids)
    deal = _deal_codes(ids, deals["deal_id"])
    stage = raw["stage"]
    if isinstance(stage.dtype, pd.CategoricalDtype):
        rank = pd.Categorical(stage, categories=order).codes.astype(np.int16)
    else:
        rank = pd.Categorical(stage.to_numpy(), categories=order).codes.astype(np.int16)
    bad = (deal < 0) | (rank < 0)
    if bad.any():
        shown = raw.loc[bad, ["deal_id", "stage"]].head(5).to_dict("records")
        raise WorkbenchError(f"{int(bad.sum())} stage_history rows name a deal not in `deals` or an undeclared "
                             f"stage, e.g. {shown}. " + fixes("build the dataset with `load_dataset` or "
                                                              "`from_frames`, which exclude such rows"))
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


# --- moves ---------------------------------------------------------------------------

def kind_table(k: int) -> np.ndarray:
    """``kind_table(k)[from, to]``: index into `KINDS` of a move between two states."""
    s = k + 2
    table = np.zeros((s, s), np.int8)
    for a in range(s):
        for b in range(s):
            if a >= k:
                kind = "re-enter" if a == b else "reopen"
            elif b == k:
                kind = "win"
            elif b == k + 1:
                kind = "lose"
            elif b == a:
                kind = "re-enter"
            elif b == a + 1:
                kind = "advance"
            elif b > a:
                kind = "skip"
            else:
                kind = "back"
            table[a, b] = KINDS.index(kind)
    return table


def _move_rows(h: History) -> np.ndarray:
    """Index of the first row of every move (its second row is the next one)."""
    return np.flatnonzero(~h.last)


def moves(dataset: Dataset) -> pd.DataFrame:
    """One row per move between consecutive history rows of a deal.

    Returns
    -------
    DataFrame
        ``deal_id``, ``from``, ``to`` (state names, categorical), ``kind`` (see `KINDS`),
        ``skipped`` (open stages jumped over, for forward moves and wins), ``at`` (time of
        the move: the entry into ``to``) and ``days`` in ``from`` before the move.
    """
    h = history(dataset)
    i = _move_rows(h)
    a, b = h.state[i], h.state[i + 1]
    kinds = kind_table(h.k)[a, b]
    names = pd.Categorical.from_codes
    return pd.DataFrame({
        "deal_id": dataset.deals["deal_id"].to_numpy()[h.deal[i]],
        "from": names(a, h.names), "to": names(b, h.names),
        "kind": names(kinds, KINDS),
        "skipped": _skipped(a, b, h.k),
        "at": h.time[i + 1].view("datetime64[ns]"),
        "days": (h.time[i + 1] - h.time[i]) / DAY_NS,
    })


def _skipped(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Open stages a move jumps over: forward moves between open stages and wins (Won is
    stage ``K``); zero for every other move."""
    forward = (a < k) & (b <= k) & (b > a)
    return np.where(forward, b.astype(np.int64) - a - 1, 0)


def segment_codes(dataset: Dataset, by: str | None) -> tuple[np.ndarray, list[str]]:
    """Per deal, the code of its ``by`` level (-1: missing), and the level labels (sorted)."""
    if by is None:
        return np.zeros(len(dataset.deals), np.int64), []
    if by not in dataset.deals:
        raise WorkbenchError(f"Deals have no column `{by}`. " + fixes(f"use one of {dataset.attributes}"))
    levels = pd.Categorical(dataset.deals[by])
    return levels.codes.astype(np.int64), [str(c) for c in levels.categories]


def segment_groups(labels: list[str], sizes: np.ndarray, min_deals: int) -> list[tuple[str, int | None]]:
    """(label, level code) for All deals (code None) and each level with at least ``min_deals``
    deals; the smaller levels are left out with a `SmallSampleWarning`."""
    out: list[tuple[str, int | None]] = [(OVERALL, None)]
    for j, label in enumerate(labels):
        if sizes[j] >= min_deals:
            out.append((label, j))
        elif sizes[j]:
            warnings.warn(f"{label!r} has {sizes[j]} deals (< {min_deals}); left out (it counts in {OVERALL!r}).",
                          SmallSampleWarning, stacklevel=3)
    return out


@dataclass(frozen=True)
class TransitionMatrix:
    """Moves between states, overall and per segment.

    ``table``: ``segment``, ``from``, ``to``, ``kind``, ``moves``, ``share`` (of the moves out
    of ``from`` in that segment), ``still_in`` (deals of the segment in ``from`` at ``as_of``,
    repeated on each row of ``from``: censored, they have made no move out yet).
    """

    table: pd.DataFrame
    by: str | None

    def counts(self, segment: str = OVERALL) -> pd.DataFrame:
        """Wide: moves from (rows) to (columns) for one segment."""
        return self._wide("moves", segment)

    def shares(self, segment: str = OVERALL) -> pd.DataFrame:
        """Wide: row shares of the moves, from (rows) to (columns), for one segment."""
        return self._wide("share", segment)

    def kinds(self, segment: str = OVERALL) -> pd.DataFrame:
        """Moves and their share of all moves per kind (advance, skip, back, ...)."""
        part = self.table[self.table["segment"] == segment]
        out = part.groupby("kind", observed=False)["moves"].sum().reindex(KINDS).fillna(0).astype(np.int64)
        return pd.DataFrame({"kind": out.index, "moves": out.to_numpy(),
                             "share": out.to_numpy() / max(out.sum(), 1)})

    def _wide(self, value: str, segment: str) -> pd.DataFrame:
        part = self.table[self.table["segment"] == segment]
        names = list(part["from"].cat.categories)
        wide = part.pivot(index="from", columns="to", values=value)
        return wide.reindex(index=names, columns=names)

    def plot(self, *, ax=None, **kwargs):
        """The transition heatmap (`workbench.funnel_plots.transition_heatmap`); returns the axes."""
        from .funnel_plots import transition_heatmap

        return transition_heatmap(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        return self.counts().to_html()


def transition_matrix(dataset: Dataset, by: str | None = None, *, min_deals: int = 30) -> TransitionMatrix:
    """Counts and row shares of every move between states (vectorized: one `bincount`).

    Parameters
    ----------
    by : str, optional
        A deal column; levels with fewer than ``min_deals`` deals are left out (they
        still count in ``All deals``).
    """
    h = history(dataset)
    s = h.k + 2
    codes, labels = segment_codes(dataset, by)
    i = _move_rows(h)
    pair = h.state[i].astype(np.int64) * s + h.state[i + 1]
    open_last = h.last & (dataset.deals["outcome"].to_numpy()[h.deal] == "open")
    sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
    seg_of_move = codes[h.deal[i]]
    seg_of_still = codes[h.deal[open_last]]
    still_states = h.state[open_last]
    kinds = kind_table(h.k).ravel()
    frames = []
    names = list(h.names)
    for label, j in segment_groups(labels, sizes, min_deals):
        sel = slice(None) if j is None else seg_of_move == j
        counts = np.bincount(pair[sel], minlength=s * s).reshape(s, s)
        still = np.bincount(still_states[slice(None) if j is None else seg_of_still == j], minlength=s)
        out = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(out > 0, counts / out, np.nan)
        frames.append(pd.DataFrame({
            "segment": label,
            "from": pd.Categorical.from_codes(np.repeat(np.arange(s), s), names),
            "to": pd.Categorical.from_codes(np.tile(np.arange(s), s), names),
            "kind": pd.Categorical.from_codes(kinds, KINDS),
            "moves": counts.ravel(), "share": share.ravel(), "still_in": np.repeat(still, s)}))
    return TransitionMatrix(table=pd.concat(frames, ignore_index=True), by=by)


# --- path variants -------------------------------------------------------------------

def route_ids(h: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per deal, an id of its route: the sequence of open stages it entered, consecutive
    repeats collapsed (Won/Lost rows left out). Exact, vectorized: a trie built one
    position at a time. Returns (route id per deal, -1 for none; a deal holding each route;
    route length)."""
    rows = np.flatnonzero(h.state < h.k)
    deal, state = h.deal[rows], h.state[rows].astype(np.int64)
    keep = np.ones(len(rows), bool)
    keep[1:] = (deal[1:] != deal[:-1]) | (state[1:] != state[:-1])
    deal, state = deal[keep], state[keep]
    route = np.full(h.n_deals, -1, np.int64)
    length = np.zeros(h.n_deals, np.int64)
    if not len(deal):
        return route, np.zeros(0, np.int64), length
    starts = np.r_[True, deal[1:] != deal[:-1]]
    start_of = np.flatnonzero(starts)
    pos = np.arange(len(deal)) - np.repeat(start_of, np.diff(np.r_[start_of, len(deal)]))
    order = np.argsort(pos.astype(np.int16 if pos.max() < 2**15 else np.int64), kind="stable")  # int16: radix
    bounds = np.searchsorted(pos[order], np.arange(int(pos.max()) + 2))
    s = h.k + 2
    prev = np.zeros(h.n_deals, np.int64)
    for j in range(len(bounds) - 1):
        at = order[bounds[j]:bounds[j + 1]]
        d = deal[at]
        codes, _ = pd.factorize(prev[d] * s + state[at] + 1, sort=False)
        prev[d] = codes + 1  # 0 is "no prefix yet"
        route[d] = codes + (j << 40)  # (length, prefix code): unique across lengths
        length[d] = j + 1
    ids, route_code = np.unique(route, return_inverse=True)
    route_code = route_code.astype(np.int64) - (1 if ids[0] == -1 else 0)
    route_code[route < 0] = -1
    n_routes = len(ids) - (1 if ids[0] == -1 else 0)
    holder = np.full(n_routes, -1, np.int64)
    has = route_code >= 0
    holder[route_code[has]] = np.flatnonzero(has)  # any deal with the route will do: they share it
    return route_code, holder, length


def route_labels(h: History, holders: np.ndarray, sep: str = " > ") -> list[str]:
    """Readable routes of the deals ``holders`` (a few: one string per deal)."""
    rows = np.flatnonzero(h.state < h.k)
    starts = np.searchsorted(h.deal[rows], holders, side="left")
    ends = np.searchsorted(h.deal[rows], holders, side="right")
    out = []
    for a, b in zip(starts, ends):
        seq = h.state[rows[a:b]]
        seq = seq[np.r_[True, seq[1:] != seq[:-1]]] if len(seq) else seq
        out.append(sep.join(h.names[x] for x in seq) if len(seq) else NO_OPEN_STAGE)
    return out


@dataclass(frozen=True)
class PathVariants:
    """The most common routes through the open stages, with outcomes.

    ``table``: ``segment``, ``route`` (open stages in the order entered, repeats collapsed;
    ``(other routes)`` sums the rest), ``stages`` (length), ``regressed`` (route goes back),
    ``deals``, ``won``, ``lost``, ``open``, ``share`` (of the segment's closed deals that took
    this route), ``win_rate`` (won / closed) with a Wilson ``ci_low``/``ci_high``.
    """

    table: pd.DataFrame
    by: str | None
    distinct_routes: dict[str, int]
    mature_days: float | None
    alpha: float

    def plot(self, *, ax=None, **kwargs):
        """The routes as stacked bars (`workbench.funnel_plots.path_variants_chart`); returns the axes."""
        from .funnel_plots import path_variants_chart

        return path_variants_chart(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda v: f"{v:.3g}")


def path_variants(dataset: Dataset, by: str | None = None, *, top: int = 10, mature_days: float | None = None,
                  alpha: float = 0.05, min_deals: int = 30) -> PathVariants:
    """The ``top`` routes by number of closed deals, per segment, with win rates.

    Open deals are still on their way: their route so far is counted in ``open`` but they
    are in neither ``share`` nor ``win_rate``, which are over closed deals only (a route is
    known in full only once the deal closes). Closed deals over-represent short journeys
    among recent deals; ``mature_days`` keeps only deals created at least that many days
    before ``as_of``, where nearly every deal has closed.
    """
    h = history(dataset)
    route, holder, length = route_ids(h)
    deals = dataset.deals
    outcome = deals["outcome"].to_numpy()
    keep = np.ones(len(deals), bool)
    if mature_days is not None:
        keep = (deals["created_at"] <= dataset.as_of - pd.Timedelta(days=mature_days)).to_numpy()
    codes, labels = segment_codes(dataset, by)
    sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
    n_routes = len(holder)
    rid = np.where(route >= 0, route, n_routes)  # the last slot: no open stage
    back = _route_regressed(h, n_routes, route)
    kinds = {"won": outcome == "won", "lost": outcome == "lost", "open": outcome == "open"}
    frames, distinct = [], {}
    for label, j in segment_groups(labels, sizes, min_deals):
        sel = keep if j is None else keep & (codes == j)
        counts = {k: np.bincount(rid[sel & m], minlength=n_routes + 1) for k, m in kinds.items()}
        closed = counts["won"] + counts["lost"]
        distinct[label] = int(((closed + counts["open"]) > 0).sum())
        ranked = np.argsort(-closed, kind="stable")
        best = ranked[:top][closed[ranked[:top]] > 0]
        rest = np.setdiff1d(np.arange(n_routes + 1), best)
        names = route_labels(h, holder[best[best < n_routes]])
        it = iter(names)
        rows = []
        for r in best:
            rows.append({"route": next(it) if r < n_routes else NO_OPEN_STAGE,
                         "stages": int(length[holder[r]]) if r < n_routes else 0,
                         "regressed": bool(back[r]) if r < n_routes else False,
                         **{k: int(v[r]) for k, v in counts.items()}})
        if len(rest):
            rows.append({"route": OTHER_ROUTES, "stages": np.nan, "regressed": np.nan,
                         **{k: int(v[rest].sum()) for k, v in counts.items()}})
        part = pd.DataFrame(rows, columns=["route", "stages", "regressed", "won", "lost", "open"])
        frames.append(part.assign(segment=label))
    table = pd.concat(frames, ignore_index=True)
    table["deals"] = table["won"] + table["lost"] + table["open"]
    closed = table["won"] + table["lost"]
    table["share"] = closed / closed.groupby(table["segment"], sort=False).transform("sum").replace(0, np.nan)
    table["win_rate"] = (table["won"] / closed.replace(0, np.nan)).astype(float)
    table["ci_low"], table["ci_high"] = wilson(table["won"], closed, alpha)
    table = table[["segment", "route", "stages", "regressed", "deals", "won", "lost", "open", "share", "win_rate",
                   "ci_low", "ci_high"]]
    return PathVariants(table=table, by=by, distinct_routes=distinct, mature_days=mature_days, alpha=alpha)


def _route_regressed(h: History, n_routes: int, route: np.ndarray) -> np.ndarray:
    """Per route: does it go back to an earlier open stage?"""
    i = _move_rows(h)
    a, b = h.state[i], h.state[i + 1]
    went_back = np.zeros(h.n_deals, bool)
    went_back[h.deal[i[(b < a) & (a < h.k)]]] = True
    out = np.zeros(n_routes, bool)
    has = route >= 0
    out[route[has & went_back]] = True
    return out


def wilson(count, n, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``count / n`` (NaN where ``n`` is 0), vectorized."""
    from statsmodels.stats.proportion import proportion_confint

    count = np.asarray(count, float)
    n = np.asarray(n, float)
    ok = n > 0
    low, high = np.full(n.shape, np.nan), np.full(n.shape, np.nan)
    if ok.any():
        low[ok], high[ok] = proportion_confint(count[ok], n[ok], alpha=alpha, method="wilson")
    return low, high


# --- flows for the Sankey diagram ----------------------------------------------------

def stage_flows(dataset: Dataset, *, max_steps: int = 6) -> pd.DataFrame:
    """Deals flowing between states from one step of their history to the next.

    Step 1 is the first state a deal entered, step 2 the next (repeats of a state
    collapsed), and so on up to ``max_steps``. Tidy: ``step`` (of ``from``), ``from``,
    ``to``, ``deals``; ``to`` is ``(stays)`` where the deal had no later state by
    ``as_of`` (still open there, or closed), ``(continues)`` for moves after the last step
    shown. The deals of a (step, state) node add up over its rows.
    """
    h = history(dataset)
    keep = np.ones(len(h.deal), bool)
    keep[1:] = h.first[1:] | (h.state[1:] != h.state[:-1])
    deal, state = h.deal[keep], h.state[keep].astype(np.int64)
    first = np.r_[True, deal[1:] != deal[:-1]] if len(deal) else np.zeros(0, bool)
    start_of = np.flatnonzero(first)
    pos = np.arange(len(deal)) - np.repeat(start_of, np.diff(np.r_[start_of, len(deal)]))
    last = np.r_[first[1:], True] if len(deal) else first
    s = h.k + 2
    names = list(h.names) + [STAYS, CONTINUES]
    rows = np.flatnonzero(pos < max_steps)
    nxt = np.where(last[rows], s, np.where(pos[rows] == max_steps - 1, s + 1,
                                           state[np.minimum(rows + 1, len(state) - 1)]))
    width = s + 2
    counts = np.bincount((pos[rows] * s + state[rows]) * width + nxt, minlength=max_steps * s * width)
    step, rest = np.divmod(np.flatnonzero(counts), s * width)
    a, b = np.divmod(rest, width)
    return pd.DataFrame({"step": step + 1, "from": np.asarray(names, object)[a],
                         "to": np.asarray(names, object)[b], "deals": counts[counts > 0]})


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
    i = _move_rows(h)
    a, b = h.state[i], h.state[i + 1]
    move_deal = h.deal[i]
    same_time = h.time[i + 1] == h.time[i]
    skipped = _skipped(a, b, k) > 0
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


# --- going back a stage ------------------------------------------------------------------

@dataclass(frozen=True)
class RegressionEffect:
    """How many deals go back a stage, and the win rate of closed deals with and without.

    ``table``: one row per segment and group (``went back`` / ``never went back``):
    ``deals``, ``closed``, ``won``, ``win_rate`` (won / closed) with a Wilson
    ``ci_low``/``ci_high``. ``tests``: one row per segment: ``went_back`` (deals with at least
    one move back), ``share_went_back`` with its Wilson interval, ``difference`` (win rate
    with minus without), ``odds_ratio`` with a Woolf (log) interval, and ``statistic`` /
    ``p_value`` of the pooled two-proportion z-test (equal to Pearson's chi-square on the
    2x2 table), ``p_adjusted`` (Benjamini-Hochberg over the rows).

    Read it as an association, not an effect: a deal must have reached a second stage to go
    back, and deals still in play longer have more chances both to go back and to be lost.
    ``among`` restricts to deals that reached a given stage, which removes part of that.
    """

    table: pd.DataFrame
    tests: pd.DataFrame
    by: str | None
    among: str | None
    mature_days: float | None
    alpha: float

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda v: f"{v:.3g}")


def regression_effect(dataset: Dataset, by: str | None = None, *, among: str | None = None,
                      mature_days: float | None = None, alpha: float = 0.05, min_deals: int = 30) -> RegressionEffect:
    """Win rate of closed deals that went back a stage against those that never did.

    Parameters
    ----------
    among : str, optional
        Only deals that reached this open stage (entered it or a later one, or won).
    mature_days : float, optional
        Only deals created at least this many days before ``as_of``.
    """
    from scipy.stats import norm
    from statsmodels.stats.proportion import proportions_ztest

    h = history(dataset)
    k = h.k
    i = _move_rows(h)
    back = np.zeros(h.n_deals, bool)
    back[h.deal[i[(h.state[i] < k) & (h.state[i + 1] < h.state[i])]]] = True
    deals = dataset.deals
    outcome = deals["outcome"].to_numpy()
    keep = np.ones(h.n_deals, bool)
    if mature_days is not None:
        keep &= (deals["created_at"] <= dataset.as_of - pd.Timedelta(days=mature_days)).to_numpy()
    if among is not None:
        if among not in dataset.stages:
            raise WorkbenchError(f"`{among}` is not one of the open stages {list(dataset.stages)}. "
                                 + fixes("pick a stage from the dataset's `stages`"))
        progress = np.where(h.state == k + 1, -1, h.state.astype(np.int64))
        furthest = np.full(h.n_deals, -1, np.int64)
        starts = np.flatnonzero(h.first)
        if len(starts):
            furthest[h.deal[starts]] = np.maximum.reduceat(progress, starts)
        keep &= furthest >= dataset.stages.index(among)
    codes, labels = segment_codes(dataset, by)
    sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
    z = norm.ppf(1 - alpha / 2)
    rows, tests = [], []
    for label, j in segment_groups(labels, sizes, min_deals):
        sel = keep if j is None else keep & (codes == j)
        counts = {}
        for group, mask in (("went back", sel & back), ("never went back", sel & ~back)):
            won, lost = int((mask & (outcome == "won")).sum()), int((mask & (outcome == "lost")).sum())
            counts[group] = (won, won + lost)
            rows.append({"segment": label, "group": group, "deals": int(mask.sum()), "closed": won + lost,
                         "won": won})
        (w1, n1), (w0, n0) = counts["went back"], counts["never went back"]
        row = {"segment": label, "deals": int(sel.sum()), "went_back": int((sel & back).sum()),
               "difference": np.nan, "odds_ratio": np.nan, "or_low": np.nan, "or_high": np.nan,
               "statistic": np.nan, "p_value": np.nan}
        if n1 and n0:
            row["difference"] = w1 / n1 - w0 / n0
            if 0 < w1 + w0 < n1 + n0:
                row["statistic"], row["p_value"] = proportions_ztest([w1, w0], [n1, n0])
            cells = np.array([w1, n1 - w1, w0, n0 - w0], float)
            if (cells > 0).all():
                log_or = np.log(cells[0] * cells[3] / (cells[1] * cells[2]))
                spread = z * np.sqrt((1 / cells).sum())
                row.update(odds_ratio=float(np.exp(log_or)), or_low=float(np.exp(log_or - spread)),
                           or_high=float(np.exp(log_or + spread)))
        tests.append(row)
    table = pd.DataFrame(rows)
    table["win_rate"] = table["won"] / table["closed"].replace(0, np.nan)
    table["ci_low"], table["ci_high"] = wilson(table["won"], table["closed"], alpha)
    tests = pd.DataFrame(tests)
    p = tests["p_value"].to_numpy(float)
    tests["p_adjusted"] = np.nan
    if (~np.isnan(p)).any():
        from statsmodels.stats.multitest import multipletests

        tests.loc[~np.isnan(p), "p_adjusted"] = multipletests(p[~np.isnan(p)], method="fdr_bh")[1]
    tests.insert(3, "share_went_back", tests["went_back"] / tests["deals"].replace(0, np.nan))
    low, high = wilson(tests["went_back"], tests["deals"], alpha)
    tests.insert(4, "share_low", low)
    tests.insert(5, "share_high", high)
    return RegressionEffect(table=table, tests=tests, by=by, among=among, mature_days=mature_days, alpha=alpha)
