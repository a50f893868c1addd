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
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .exceptions import SmallSampleWarning, WorkbenchError, fixes
from .model import Dataset
from .touchpoints import DAY, deal_touches

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


@dataclass(frozen=True)
class Attribution:
    """Conversions credited to each channel by every attribution model.

    Attributes
    ----------
    table : DataFrame
        Tidy: ``channel``, ``model``, ``conversions`` (credited won deals), ``share`` (of the
        model's total).
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
    """

    table: pd.DataFrame
    transitions: pd.DataFrame
    removal_effects: pd.DataFrame
    p_conversion: float
    half_life_days: float
    counts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def wide(self, value: str = "conversions") -> pd.DataFrame:
        """``value`` with channels as rows and models as columns."""
        return self.table.pivot(index="channel", columns="model", values=value)[list(MODELS)]

    def plot(self, *, value: str = "share", ax=None):
        """Grouped bars: ``value`` per channel, one bar per model; returns the axes."""
        import matplotlib.pyplot as plt

        from .plots import theme

        with theme():
            ax = ax if ax is not None else plt.figure().add_subplot()
            self.wide(value).plot.barh(ax=ax)
            ax.set_xlabel("Share of won deals credited" if value == "share" else "Won deals credited")
            ax.set_ylabel("Channel")
        return ax

    def _repr_html_(self) -> str:
        return self.wide("share").to_html(float_format=lambda v: f"{v:.1%}")


def attribution(dataset: Dataset, *, half_life_days: float = 7.0, min_conversions: int = 30) -> Attribution:
    """Credit won deals to channels under first touch, last touch, linear, time decay,
    position-based and Markov removal-effect attribution.

    Parameters
    ----------
    half_life_days : float
        Half-life of the time-decay weights, counted back from the close.
    min_conversions : int
        Fewer won deals with touches than this gives a `SmallSampleWarning`.

    Raises
    ------
    WorkbenchError
        When no won deal has a touch.
    """
    if not half_life_days > 0:
        raise WorkbenchError(f"`half_life_days` must be positive, got {half_life_days!r}. "
                             + fixes("pass e.g. half_life_days=7"))
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
    counts["conversions"] = conversions
    return Attribution(table=table, transitions=matrix, removal_effects=effects,
                       p_conversion=absorption(matrix), half_life_days=half_life_days, counts=counts,
                       notes=notes)
