"""Non-linear journeys: the routes deals take, flows between steps, and going back a stage.

Everything here starts from the cleaned history (`workbench.dataset.history`; moves and their
kinds are in `workbench.funnel.transitions`): `path_variants` (the most common routes with win
rates), `stage_flows` (for the Sankey diagram) and `regression_effect` (deals that went
back, and their win rate).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import tables
from ..dataset.groups import segment_codes, segment_groups, wilson
from ..dataset.history import CONTINUES, STAYS, History, history, move_rows
from ..dataset.model import Dataset
from ..exceptions import WorkbenchError, fixes
from ..results import Result, axes

NO_OPEN_STAGE = "(no open stage)"
OTHER_ROUTES = "(other routes)"


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
class PathVariants(Result):
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
        """The routes as stacked bars (`workbench.funnel.plots.path_variants_chart`); returns the axes."""
        from .plots import path_variants_chart

        return path_variants_chart(self, ax=axes(ax), **kwargs)

    def findings(self):
        """The most common route and how its closed deals ended."""
        from ..findings import Findings, percent

        top = self.table.iloc[0] if len(self.table) else None
        if top is None:
            return Findings()
        return Findings([f"The most common route, {top['route']}, holds {percent(top['share'])} of closed deals "
                         f"({top['deals']:,} deals); {percent(top['win_rate'])} of its closed deals were won."])

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


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
    i = move_rows(h)
    a, b = h.state[i], h.state[i + 1]
    went_back = np.zeros(h.n_deals, bool)
    went_back[h.deal[i[(b < a) & (a < h.k)]]] = True
    out = np.zeros(n_routes, bool)
    has = route >= 0
    out[route[has & went_back]] = True
    return out


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


# --- going back a stage ------------------------------------------------------------------

@dataclass(frozen=True)
class RegressionEffect(Result):
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

    def findings(self):
        """Win rate of closed deals that went back a stage against those that never did."""
        from ..findings import Findings, p_value, percent

        out = Findings()
        for segment, part in self.table.groupby("segment", sort=False):
            rows = part.set_index("group")
            if not {"went back", "never went back"} <= set(rows.index):
                continue
            back, never = rows.loc["went back"], rows.loc["never went back"]
            test = self.tests[self.tests["segment"] == segment]
            p = f"; {p_value(float(test['p_value'].iloc[0]))}" if len(test) else ""
            among = f" among deals that reached {self.among}" if self.among else ""
            out.append(f"{segment}{among}: {percent(back['win_rate'])} of closed deals that went back a stage were "
                       f"won, against {percent(never['win_rate'])} of those that never did ({back['closed']:,} and "
                       f"{never['closed']:,} closed deals{p}).")
        return out

    def plot(self, *, ax=None):
        """Win rate of each group of closed deals, with its interval; returns the axes."""
        from ..results import interval_bars

        labels = [f"{s}: {g}" for s, g in zip(self.table["segment"], self.table["group"])]
        return interval_bars(labels, self.table["win_rate"], self.table["ci_low"], self.table["ci_high"],
                             xlabel="Win rate of closed deals", ax=ax)

    def _repr_html_(self) -> str:
        return tables.to_html(self.table, index=False)


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
    i = move_rows(h)
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
