"""Multi-touch attribution of won deals to channels, every model side by side.

A deal's *journey* is its touches (with a ``deal_id``, up to its close) in time order; ties
keep the source order. Each won deal with at least one touch hands out one conversion:

- ``first_touch`` / ``last_touch``: all of it to the first / last touch.
- ``linear``: ``1/n`` to each of the ``n`` touches.
- ``time_decay``: weight ``2 ** (-age / half_life_days)``, ``age`` the days from the touch
  back from the close, scaled to sum to 1 per deal.
- ``position_based``: 40% to the first, 40% to the last and 20% shared by the touches in
  between; 50/50 with two touches, 100% with one.
- ``markov``: the removal effect of a first-order Markov chain over channel states with
  ``START``, ``CONVERSION`` and ``NULL``. Journeys of won deals end in ``CONVERSION``, of lost
  deals in ``NULL`` (open deals are left out and counted). Transition probabilities are the
  observed shares of moves out of each state (repeats of a channel are self-loops). The
  removal effect of a channel is ``1 - P_without / P``, with ``P`` the probability of reaching
  ``CONVERSION`` from ``START`` and ``P_without`` the same with every move into the channel
  redirected to ``NULL``; the effects are scaled to sum to the number of conversions.

A channel's credit under each model is the sum over deals; every model's credits add up to
the won deals with touches. Won deals without touches cannot be credited: they are counted
(``counts["won_without_touches"]``), as are touches without a deal or after the close.
First/last/linear/position ignore dates; time decay and Markov ignore deal size.

Uncertainty comes from a deal-level (cluster) bootstrap: the closed deals with touches, won and
lost together, are the independent units, resampled whole with replacement; each replicate
recomputes every model's shares (Markov from the replicate's transitions, lost journeys
included) and the percentile interval of the replicates brackets each share. A channel missing
from a replicate has share 0 there. The per-deal credits of the rule-based models and the
per-deal transition counts do not change between replicates, so a replicate is those arrays
weighted by how many times each deal was drawn (`bootstrap_shares`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from ..dataset.model import Dataset
from ..exceptions import SmallSampleWarning, WorkbenchError, fixes
from ..seeds import seeded_rng
from .touchpoints import DAY, deal_touches
from ..results import Result, axes

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov")
START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


def journeys(dataset: Dataset) -> tuple[pd.DataFrame, dict[str, int]]:
    """Touches of closed deals in journey order with ``step`` (0-based) and ``length``.

    Returns the touches (``deal_id``, ``occurred_at``, ``channel``, ``outcome``, ``closed_at``,
    ``step``, ``length``) and counts of what was left out.
    """
    t, counts = deal_touches(dataset)
    deals = dataset.deals
    closed = t[t["outcome"].isin(("won", "lost"))].reset_index(drop=True)
    g = closed.groupby("deal_id", sort=False)
    closed = closed.assign(step=g.cumcount(), length=g["deal_id"].transform("size"))
    touched = set(closed["deal_id"])
    for outcome in ("won", "lost"):
        ids = deals.loc[deals["outcome"] == outcome, "deal_id"]
        counts[outcome] = int(len(ids))
        counts[f"{outcome}_without_touches"] = int((~ids.isin(touched)).sum())
    counts["open_deals"] = int((deals["outcome"] == "open").sum())
    counts["open_touches"] = int((t["outcome"] == "open").sum())
    return closed[["deal_id", "occurred_at", "channel", "outcome", "closed_at", "step", "length"]], counts


def rule_credits(won: pd.DataFrame, half_life_days: float = 7.0) -> pd.DataFrame:
    """Per touch of won journeys, the credit of each rule-based model (columns named by model)."""
    first = won["step"] == 0
    last = won["step"] == won["length"] - 1
    n = won["length"]
    middle = 0.2 / (n - 2).where(n > 2)
    position = np.select([n == 1, n == 2, first | last], [1.0, 0.5, 0.4], default=middle)
    age = (won["closed_at"] - won["occurred_at"]) / DAY
    decay = np.power(2.0, -age.clip(lower=0) / half_life_days)
    decay = decay / decay.groupby(won["deal_id"]).transform("sum")
    return pd.DataFrame({"deal_id": won["deal_id"], "channel": won["channel"],
                         "first_touch": first.astype(float), "last_touch": last.astype(float),
                         "linear": 1.0 / n, "time_decay": decay, "position_based": position})


def transition_counts(paths: pd.DataFrame) -> pd.DataFrame:
    """Moves between states over all journeys: ``from``, ``to``, ``count``.

    Each journey runs ``START -> channel of step 0 -> ... -> CONVERSION`` (won) or ``NULL`` (lost).
    """
    prev = paths.groupby("deal_id", sort=False)["channel"].shift().fillna(START)
    moves = pd.DataFrame({"from": prev.to_numpy(), "to": paths["channel"].to_numpy()})
    ends = paths[paths["step"] == paths["length"] - 1]
    moves = pd.concat([moves, pd.DataFrame({"from": ends["channel"].to_numpy(),
                                            "to": np.where(ends["outcome"] == "won", CONVERSION, NULL)})])
    return moves.groupby(["from", "to"]).size().rename("count").reset_index()


def absorption(matrix: pd.DataFrame, removed: str | None = None) -> float:
    """P(reaching ``CONVERSION`` from ``START``) in the chain ``matrix`` (rows: from, sum to 1),
    with every move into ``removed`` redirected to ``NULL``.

    The transient states are ``START`` and the channels; solves ``(I - Q) b = r`` with
    ``numpy.linalg.solve``, ``r`` the one-step probabilities of converting.
    """
    P = matrix.copy()
    if removed is not None:
        P[NULL] += P[removed]
        P[removed] = 0.0
        P.loc[removed] = 0.0
        P.loc[removed, NULL] = 1.0
    transient = [s for s in P.index if s not in (CONVERSION, NULL)]
    Q = P.loc[transient, transient].to_numpy()
    r = P.loc[transient, CONVERSION].to_numpy()
    b = np.linalg.solve(np.eye(len(transient)) - Q, r)
    return float(b[transient.index(START)])


def markov_model(paths: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transition matrix and the removal effects of the channels.

    Returns
    -------
    matrix : DataFrame
        Transition probabilities, rows ``START`` and channels, columns the channels,
        ``CONVERSION`` and ``NULL`` (absorbing states get rows too, as self-loops).
    effects : DataFrame
        ``channel``, ``p_without`` (conversion probability with the channel removed),
        ``removal_effect``, ``markov`` (conversions credited: effects scaled to the conversions).
    """
    moves = transition_counts(paths)
    channels = sorted(paths["channel"].unique())
    states = [START] + channels + [CONVERSION, NULL]
    counts = moves.pivot(index="from", columns="to", values="count").reindex(index=states, columns=states,
                                                                            fill_value=0).fillna(0)
    counts.loc[CONVERSION, CONVERSION] = counts.loc[NULL, NULL] = 1
    matrix = counts.div(counts.sum(axis=1), axis=0)
    base = absorption(matrix)
    conversions = int(((paths["step"] == 0) & (paths["outcome"] == "won")).sum())
    effects = pd.DataFrame({"channel": channels,
                            "p_without": [absorption(matrix, c) for c in channels]})
    effects["removal_effect"] = 1 - effects["p_without"] / base if base > 0 else 0.0
    total = effects["removal_effect"].sum()
    effects["markov"] = effects["removal_effect"] / total * conversions if total > 0 else 0.0
    return matrix, effects


def draw_counts(n_deals: int, n_boot: int, seed: str = "attribution") -> np.ndarray:
    """How many times each of ``n_deals`` deals is drawn in each of ``n_boot`` bootstrap replicates.

    Replicate ``b`` draws ``n_deals`` positions uniformly with replacement from the Generator
    seeded by ``seed``, one call per replicate. Returns an ``(n_boot, n_deals)`` int32 array whose
    rows sum to ``n_deals``.
    """
    rng = seeded_rng(seed)
    counts = np.empty((n_boot, n_deals), dtype=np.int32)
    for b in range(n_boot):
        counts[b] = np.bincount(rng.integers(0, n_deals, size=n_deals), minlength=n_deals)
    return counts


def _removal_shares(moves: np.ndarray, n_channels: int) -> np.ndarray:
    """Markov removal-effect shares from transition counts, one chain per row.

    ``moves`` is ``(B, S, S)`` with states ``START``, the channels, ``CONVERSION``, ``NULL``.
    Uses the fundamental matrix ``N = (I - Q)^-1`` of the transient states instead of one solve
    per removed channel: removing channel ``j`` loses exactly the conversions of paths that
    visit it, so ``P_without_j = b_START - h_j * b_j`` with ``b = N r`` the conversion
    probabilities and ``h_j = N[START, j] / N[j, j]`` the probability of ever reaching ``j``.
    A channel no journey of the replicate visits has an empty row: it is made to lead to
    ``NULL`` and gets effect 0. Chains that never convert give NaN.
    """
    n = n_channels + 1
    out = moves.sum(axis=2)
    moves = moves.copy()
    moves[:, :, -1] += out == 0  # empty rows (absent channels, absorbing states) lead to NULL
    P = moves / moves.sum(axis=2, keepdims=True)
    Q, r = P[:, :n, :n], P[:, :n, n]
    N = np.linalg.inv(np.eye(n) - Q)
    b = (N @ r[..., None])[..., 0]
    diag = np.diagonal(N, axis1=1, axis2=2)[:, 1:]
    effects = (N[:, 0, 1:] / diag) * b[:, 1:]  # = b_START - P_without_j
    with np.errstate(invalid="ignore", divide="ignore"):
        return effects / effects.sum(axis=1, keepdims=True)


def bootstrap_shares(paths: pd.DataFrame, counts: np.ndarray, half_life_days: float = 7.0) -> np.ndarray:
    """Every model's share per channel in weighted copies of the closed journeys.

    Parameters
    ----------
    paths : DataFrame
        Closed journeys, as from `journeys`.
    counts : array of shape (B, D)
        Weight of each deal in each replicate (e.g. from `draw_counts`), deals in their order of
        first appearance in ``paths`` (``pd.unique(paths["deal_id"])``). A row of ones gives the
        point estimates.
    half_life_days : float

    Returns
    -------
    ndarray of shape (B, len(MODELS), C)
        Shares, channels sorted as in `markov_model` (``sorted(paths["channel"].unique())``).
        A replicate without a won deal has NaN shares.
    """
    deal, deals = pd.factorize(paths["deal_id"])
    channels = sorted(paths["channel"].unique())
    chan = pd.Index(channels).get_indexer(paths["channel"])
    D, C = len(deals), len(channels)
    counts = np.asarray(counts).reshape(-1, D)
    shares = np.empty((len(counts), len(MODELS), C))
    if not len(counts):
        return shares

    won = (paths["outcome"] == "won").to_numpy()
    rules = rule_credits(paths[won], half_life_days)[list(MODELS[:-1])].to_numpy()
    per_deal = sparse.csr_matrix((rules.ravel(), (np.repeat(deal[won], rules.shape[1]),
                                                  (np.arange(rules.shape[1]) * C + chan[won][:, None]).ravel())),
                                 shape=(D, rules.shape[1] * C))
    is_won = np.zeros(D)
    is_won[deal[won]] = 1.0

    S = C + 3  # START, channels, CONVERSION, NULL
    state = chan + 1
    last = (paths["step"] == paths["length"] - 1).to_numpy()
    prev = pd.Series(state).groupby(deal).shift().fillna(0).to_numpy(dtype=int)  # as `transition_counts`
    end = np.where(won[last], C + 1, C + 2)
    codes = np.concatenate([prev * S + state, state[last] * S + end])
    owners = np.concatenate([deal, deal[last]])
    transitions = sparse.csr_matrix((np.ones(len(codes)), (owners, codes)), shape=(D, S * S))

    for rows in np.array_split(np.arange(len(counts)), max(1, len(counts) * D // 2_000_000)):  # bounds memory
        weights = np.asarray(counts[rows], dtype=float).T
        with np.errstate(invalid="ignore", divide="ignore"):
            shares[rows, :-1] = ((per_deal.T @ weights) / (is_won @ weights)).T.reshape(-1, len(MODELS) - 1, C)
        shares[rows, -1] = _removal_shares((transitions.T @ weights).T.reshape(-1, S, S), C)
    return shares


@dataclass(frozen=True)
class Attribution(Result):
    """Conversions credited to each channel by every attribution model.

    Attributes
    ----------
    table : DataFrame
        Tidy: ``channel``, ``model``, ``conversions`` (credited won deals), ``share`` (of the
        model's total), ``share_low`` and ``share_high`` (deal-level bootstrap percentile
        interval at level ``1 - alpha``; NaN with ``n_boot=0``).
    transitions : DataFrame
        The Markov chain's transition probabilities (rows: from, columns: to).
    removal_effects : DataFrame
        Per channel: ``p_without``, ``removal_effect``, ``markov``.
    p_conversion : float
        P(conversion) of the full chain: the won share of closed deals with touches.
    half_life_days : float
    counts : dict
        Won and lost deals, those without touches, open deals and touches left out.
    notes : list of str
        Caveats in plain words (small sample, won deals without touches), for the report.
    n_boot, alpha : int, float
        Bootstrap replicates and the interval's error rate.
    replicates : DataFrame
        Tidy ``replicate``, ``model``, ``channel``, ``share``: every bootstrap replicate, for
        comparisons the marginal intervals cannot make (see `difference`). Empty with ``n_boot=0``.
    """

    table: pd.DataFrame
    transitions: pd.DataFrame
    removal_effects: pd.DataFrame
    p_conversion: float
    half_life_days: float
    counts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_boot: int = 0
    alpha: float = 0.05
    replicates: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def wide(self, value: str = "conversions") -> pd.DataFrame:
        """``value`` with channels as rows and models as columns."""
        return self.table.pivot(index="channel", columns="model", values=value)[list(MODELS)]

    def difference(self, first: str, second: str, model: str = "markov") -> pd.Series:
        """``first``'s share minus ``second``'s under ``model``, with its bootstrap percentile interval.

        Two channels' intervals can overlap while their difference is clearly not 0 (the shares
        of one replicate move together); this interval comes from the paired replicates.
        Returns ``difference``, ``low``, ``high`` (NaN without replicates).
        """
        if model not in MODELS:
            raise WorkbenchError(f"Unknown attribution model `{model}`. " + fixes(f"use one of {', '.join(MODELS)}"))
        shares = self.table[self.table["model"] == model].set_index("channel")["share"]
        missing = [c for c in (first, second) if c not in shares.index]
        if missing:
            raise WorkbenchError(f"No credited channel {', '.join(f'`{c}`' for c in missing)}. "
                                 + fixes(f"use one of {', '.join(map(str, shares.index))}"))
        low = high = float("nan")
        if len(self.replicates):
            rep = self.replicates[self.replicates["model"] == model].pivot(index="replicate", columns="channel",
                                                                          values="share")
            low, high = np.nanquantile(rep[first] - rep[second], [self.alpha / 2, 1 - self.alpha / 2])
        return pd.Series({"difference": shares[first] - shares[second], "low": low, "high": high})

    def plot(self, *, value: str = "share", ax=None):
        """Grouped bars: ``value`` per channel, one bar per model, with the bootstrap intervals
        as error bars for shares; returns the axes."""
        from ..plots import error_lengths, theme

        wide = self.wide(value)
        xerr = None
        if value == "share" and self.table["share_low"].notna().any():
            low, high = self.wide("share_low"), self.wide("share_high")
            xerr = np.stack([error_lengths(wide[m], low[m], high[m]) for m in wide.columns])
        with theme():
            ax = axes(ax)
            wide.plot.barh(ax=ax, xerr=xerr, error_kw={"elinewidth": 0.8, "capsize": 0})
            ax.set_xlabel("Share of won deals credited" if value == "share" else "Won deals credited")
            ax.set_ylabel("Channel")
        return ax

    def findings(self):
        """The channel the Markov model credits most, and whether the rule-based models agree."""
        from ..findings import Findings, percent

        shares = self.wide("share")
        if shares.empty:
            return Findings(["No won deal has touches to credit."])
        markov = shares["markov"].dropna() if "markov" in shares else shares.iloc[:, 0].dropna()
        top = markov.idxmax()
        leaders = {model: shares[model].idxmax() for model in shares.columns if shares[model].notna().any()}
        agree = [m.replace("_", " ") for m, channel in leaders.items() if channel == top]
        return Findings([f"The Markov removal effect credits {top} with the largest share of won deals "
                         f"({percent(markov[top])}); {len(agree)} of {len(leaders)} models put it first "
                         f"({', '.join(agree)})."])

    def _repr_html_(self) -> str:
        def cell(row) -> str:
            text = f"{row['share']:.1%}"
            if pd.notna(row["share_low"]):
                text += f" ({row['share_low']:.1%}\u2013{row['share_high']:.1%})"
            return text

        shown = self.table.assign(text=self.table.apply(cell, axis=1))
        shown = shown.pivot(index="channel", columns="model", values="text")[list(MODELS)]
        caption = "Share of won deals credited"
        if self.n_boot:
            caption += (f"; {1 - self.alpha:.0%} deal-level bootstrap interval in brackets "
                        f"({self.n_boot} replicates)")
        return shown.to_html() + f"<p>{caption}.</p>"


def attribution(dataset: Dataset, *, half_life_days: float = 7.0, min_conversions: int = 30,
                n_boot: int = 200, alpha: float = 0.05, seed: str = "attribution") -> Attribution:
    """Credit won deals to channels under first touch, last touch, linear, time decay,
    position-based and Markov removal-effect attribution, with bootstrap intervals.

    Parameters
    ----------
    half_life_days : float
        Half-life of the time-decay weights, counted back from the close.
    min_conversions : int
        Fewer won deals with touches than this gives a `SmallSampleWarning`.
    n_boot : int
        Deal-level bootstrap replicates for ``share_low`` / ``share_high``; 0 skips them (NaN).
    alpha : float
        The intervals are percentile intervals at level ``1 - alpha``.
    seed : str
        Seeds the bootstrap draws (`draw_counts`): same seed, same intervals.

    Raises
    ------
    WorkbenchError
        When no won deal has a touch, or an argument is out of range.

    Examples
    --------
    >>> from workbench.dataset.sample import generate
    >>> credit = attribution(generate(n_deals=2_000, truth_deals=1_000).dataset())
    >>> list(credit.table.columns)
    ['channel', 'model', 'conversions', 'share', 'share_low', 'share_high']
    """
    if not half_life_days > 0:
        raise WorkbenchError(f"`half_life_days` must be positive, got {half_life_days!r}. "
                             + fixes("pass e.g. half_life_days=7"))
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise WorkbenchError(f"`n_boot` must be a whole number >= 0, got {n_boot!r}. "
                             + fixes("pass e.g. n_boot=200", "pass n_boot=0 to skip the intervals"))
    if not 0 < alpha < 1:
        raise WorkbenchError(f"`alpha` must be between 0 and 1, got {alpha!r}. " + fixes("pass e.g. alpha=0.05"))
    paths, counts = journeys(dataset)
    won = paths[paths["outcome"] == "won"]
    conversions = int(won["deal_id"].nunique())
    if conversions == 0:
        raise WorkbenchError(f"No won deal has a touchpoint ({counts['won']} won deals, "
                             f"{counts['won_without_touches']} without touches): nothing to attribute. "
                             + fixes("check that touchpoints carry a `deal_id`", "widen the segment filter"))
    notes = []
    if conversions < min_conversions:
        notes.append(f"Only {conversions} won deals have touchpoints (< {min_conversions}); "
                     "the attribution shares are unstable.")
        warnings.warn(notes[-1], SmallSampleWarning, stacklevel=2)
    if counts["won_without_touches"]:
        notes.append(f"{counts['won_without_touches']} of {counts['won']} won deals have no touchpoints "
                     "and are not credited to any channel.")
    rules = rule_credits(won, half_life_days).groupby("channel")[list(MODELS[:-1])].sum()
    matrix, effects = markov_model(paths)
    credits = rules.join(effects.set_index("channel")["markov"], how="outer").fillna(0.0)
    table = (credits.rename_axis("channel").reset_index()
             .melt(id_vars="channel", var_name="model", value_name="conversions"))
    table["share"] = table["conversions"] / conversions
    table["model"] = pd.Categorical(table["model"], MODELS)
    table = table.sort_values(["model", "channel"], ignore_index=True)
    table["model"] = table["model"].astype(str)
    channels = sorted(paths["channel"].unique())
    shares = bootstrap_shares(paths, draw_counts(paths["deal_id"].nunique(), int(n_boot), seed), half_life_days)
    index = pd.MultiIndex.from_product([MODELS, channels], names=["model", "channel"])
    low = high = np.full(len(index), np.nan)
    if n_boot:
        with warnings.catch_warnings():  # replicates without a won deal (tiny data only) are NaN, left out
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanquantile(shares, [alpha / 2, 1 - alpha / 2], axis=0).reshape(2, -1)
    table = table.join(pd.DataFrame({"share_low": low, "share_high": high}, index=index), on=["model", "channel"])
    replicates = (pd.DataFrame({"share": shares.ravel()},
                               index=pd.MultiIndex.from_product([range(int(n_boot)), MODELS, channels],
                                                                names=["replicate", "model", "channel"]))
                  .reset_index())
    counts["conversions"] = conversions
    return Attribution(table=table, transitions=matrix, removal_effects=effects,
                       p_conversion=absorption(matrix), half_life_days=half_life_days, counts=counts,
                       notes=notes, n_boot=int(n_boot), alpha=alpha, replicates=replicates)

