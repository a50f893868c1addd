"""Figures of stage conversion and non-linear journeys, in the house style of `workbench.plots`.

Seaborn's axes-level signature: the result object (or its tidy ``table``) first,
keyword-only options, ``ax=None`` (draw on the current axes), return the axes. Nothing
here estimates anything; every number comes from the tables of `workbench.funnel`,
`workbench.funnel.transitions`, `workbench.funnel.routes` and `workbench.funnel.markov`. The theme applies inside
each function only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path
from matplotlib.ticker import PercentFormatter

from ..dataset.groups import OVERALL
from ..dataset.history import CONTINUES, KINDS, LOST, STAYS, WON
from ..plots import OUTCOME_COLORS, PALETTE, error_lengths, theme
from ..timeunits import DAYS, TimeUnit

#: Colour of each kind of move (won and lost as in every other figure).
KIND_COLORS = {
    "advance": sns.color_palette(PALETTE)[0], "skip": sns.color_palette(PALETTE)[9],
    "back": sns.color_palette(PALETTE)[4], "re-enter": (0.6, 0.6, 0.6),
    "win": OUTCOME_COLORS["won"], "lose": OUTCOME_COLORS["lost"], "reopen": sns.color_palette(PALETTE)[5],
}
STAGE_COLOR = sns.color_palette(PALETTE)[0]


def _axes(ax: Axes | None) -> Axes:
    import matplotlib.pyplot as plt

    return plt.gca() if ax is None else ax


def _table(data) -> pd.DataFrame:
    """The tidy table of a result object, or the DataFrame itself."""
    return data.table if hasattr(data, "table") else data


def _segment(table: pd.DataFrame, segment: str) -> pd.DataFrame:
    if "segment" not in table:
        return table
    part = table[table["segment"] == segment]
    if part.empty:
        raise KeyError(f"No rows for segment {segment!r}; the table has {list(dict.fromkeys(table['segment']))}.")
    return part


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.0f}%"


def funnel_chart(funnel, *, segment: str = OVERALL, windowed: bool = True, unit: TimeUnit = DAYS,
                 ax: Axes | None = None) -> Axes:
    """The funnel: one centred bar per stage, as wide as the deals that reached it.

    Between two bars, the eventual conversion to the next stage (censoring-aware) and
    the eventual drop-off (the two need not add up to 100%: deals still open at the end of
    follow-up are neither); with ``windowed``, also the share that moved on within the
    window. Right of each bar, the open deals still in the stage (not dropped).

    Parameters
    ----------
    funnel : Funnel or DataFrame
        `workbench.funnel.funnel` (or its ``table``).
    segment : str
        Which segment of the table to draw.
    unit : TimeUnit
        How the window is written (days, or hours for processes that take hours).

    Returns
    -------
    Axes
        One horizontal bar per stage, top to bottom in process order.
    """
    table = _segment(_table(funnel), segment).reset_index(drop=True)
    window = getattr(funnel, "window_days", None)
    n = len(table)
    top = float(table["reached"].max()) or 1.0
    with theme():
        ax = _axes(ax)
        y = np.arange(n)[::-1] * 1.6
        widths = table["reached"].to_numpy(float)
        ax.barh(y, widths, left=-widths / 2, height=0.9, color=STAGE_COLOR, alpha=0.85)
        for i, row in table.iterrows():
            ax.text(0, y[i], f"{row['stage']}\n{int(row['reached']):,} ({_pct(row['reach_share'])})", ha="center",
                    va="center", color="white" if row["reached"] > 0.15 * top else "0.15", fontsize="small",
                    fontweight="bold")
            ax.text(top * 0.52, y[i], f"{int(row['still_in']):,} still in stage", ha="left", va="center",
                    fontsize="x-small", color="0.35")
            nxt = str(row["transition"]).split("->")[-1] if pd.notna(row.get("transition")) else ""
            note = f"{_pct(row['conversion'])} " + ("won" if nxt == WON else f"move on to {nxt} or beyond")
            if windowed and "windowed" in row and np.isfinite(row["windowed"]) and window:
                note += f" ({_pct(row['windowed'])} within {unit(window)})"
            note += f"; {_pct(row['drop_off'])} lost"
            ax.text(0, y[i] - 0.8, note, ha="center", va="center", fontsize="x-small", color="0.15")
        ax.set_xlim(-top * 0.55, top * 0.85)
        ax.set_ylim(y.min() - 1.2, y.max() + 0.6)
        ax.set_axis_off()
        if segment != OVERALL:
            ax.set_title(segment, loc="left")
    return ax


def transition_heatmap(matrix, *, segment: str = OVERALL, value: str = "share", ax: Axes | None = None) -> Axes:
    """Moves between states: row shares (or counts) from each stage (rows) to each state (columns).

    Rows without any move out (Won and Lost, unless deals re-opened) are left out. Cells
    show the share of the row's moves and, below it, the count.

    Returns
    -------
    Axes
        A heatmap with one annotated cell per (from, to).
    """
    table = _segment(_table(matrix), segment)
    names = list(table["from"].cat.categories) if hasattr(table["from"], "cat") else list(dict.fromkeys(table["from"]))
    counts = table.pivot(index="from", columns="to", values="moves").reindex(index=names, columns=names)
    shares = table.pivot(index="from", columns="to", values="share").reindex(index=names, columns=names)
    keep = counts.sum(axis=1) > 0
    counts, shares = counts[keep], shares[keep]
    values = shares if value == "share" else counts
    annot = np.where(counts.to_numpy() > 0,
                     [[f"{100 * s:.0f}%\n{int(c):,}" if c else "" for s, c in zip(rs, rc)]
                      for rs, rc in zip(shares.to_numpy(), counts.to_numpy())], "")
    with theme():
        ax = _axes(ax)
        sns.heatmap(values.where(counts > 0), annot=annot, fmt="", cmap="Blues", cbar=True, linewidths=0.5,
                    linecolor="white", ax=ax, annot_kws={"fontsize": "x-small"},
                    cbar_kws={"label": "Share of moves out of the row's stage" if value == "share" else "Moves",
                              "format": PercentFormatter(1.0, decimals=0) if value == "share" else None})
        ax.set_xlabel("To")
        ax.set_ylabel("From")
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0)
    return ax


def path_variants_chart(variants, *, segment: str = OVERALL, ax: Axes | None = None) -> Axes:
    """The most common routes: deals won, lost and still open per route, with the win rate.

    Returns
    -------
    Axes
        One stacked horizontal bar per route, most common on top.
    """
    table = _segment(_table(variants), segment).reset_index(drop=True)
    y = np.arange(len(table))[::-1]
    with theme():
        ax = _axes(ax)
        left = np.zeros(len(table))
        for outcome in ("won", "lost", "open"):
            vals = table[outcome].to_numpy(float)
            ax.barh(y, vals, left=left, color=OUTCOME_COLORS[outcome], label=outcome, height=0.7)
            left += vals
        for yi, total, row in zip(y, left, table.itertuples()):
            if np.isfinite(row.win_rate):
                ax.text(total, yi, f"  {_pct(row.win_rate)} won", va="center", fontsize="x-small")
        ax.set_yticks(y, [str(r) for r in table["route"]], fontsize="x-small")
        ax.grid(axis="y", visible=False)
        ax.set_xlim(0, left.max() * 1.18 if len(left) else 1)
        ax.set_xlabel("Deals")
        ax.legend(loc="lower right", fontsize="small")
    return ax


def _band(ax: Axes, x0: float, x1: float, y0: tuple[float, float], y1: tuple[float, float], color, alpha: float):
    """A band from the interval ``y0`` at ``x0`` to ``y1`` at ``x1``: two cubic Bezier edges."""
    mid = (x0 + x1) / 2
    verts = [(x0, y0[0]), (mid, y0[0]), (mid, y1[0]), (x1, y1[0]),
             (x1, y1[1]), (mid, y1[1]), (mid, y0[1]), (x0, y0[1]), (x0, y0[0])]
    codes = [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4, Path.LINETO, Path.CURVE4, Path.CURVE4,
             Path.CURVE4, Path.CLOSEPOLY]
    ax.add_patch(PathPatch(Path(verts, codes), facecolor=color, edgecolor="none", alpha=alpha))


def sankey(flows: pd.DataFrame, *, kinds: dict | None = None, node_width: float = 0.12, gap: float = 0.02,
           min_label: float = 0.03, ax: Axes | None = None) -> Axes:
    """Stage flows as a Sankey diagram drawn with matplotlib only (a static image).

    Column ``s`` holds the states deals were in at step ``s`` of their history (open
    stages top to bottom in process order, then Won and Lost); a node's height is its
    number of deals, and a band joins two nodes with the deals that moved between them,
    coloured by the kind of move (advance, skip, back, win, lose). Deals with no later
    state end at their node; ``(continues)`` deals go on beyond the last column.

    Parameters
    ----------
    flows : DataFrame
        `workbench.funnel.routes.stage_flows`: ``step``, ``from``, ``to``, ``deals``.
    kinds : dict, optional
        Colour per state pair; default: by the kind of move implied by the state order.
    min_label : float
        Nodes smaller than this share of the first column get no label.

    Returns
    -------
    Axes
        One rectangle per node and one band per flow.
    """
    states = list(dict.fromkeys(list(flows["from"]) + [t for t in flows["to"] if t not in (STAYS, CONTINUES)]))
    order = {s: i for i, s in enumerate(_state_order(states))}
    nodes = flows.groupby(["step", "from"], sort=False)["deals"].sum()
    steps = sorted(flows["step"].unique())
    scale_total = max(nodes.loc[s].sum() for s in steps) if len(steps) else 1
    n_states = len(order)
    scale = (1.0 - gap * (n_states - 1)) / scale_total
    # Node boxes: top-aligned columns, states in process order.
    box = {}
    for s in steps:
        y = 1.0
        for state in sorted(nodes.loc[s].index, key=order.get):
            h = nodes.loc[(s, state)] * scale
            box[(s, state)] = (y - h, y)
            y -= h + gap
    with theme():
        ax = _axes(ax)
        out_next = {key: box[key][1] for key in box}  # next free y (from the top) on each node's right edge
        in_next = {key: box[key][1] for key in box}
        moves = flows[~flows["to"].isin([STAYS, CONTINUES])].copy()
        moves["_from"] = moves["from"].map(order)
        moves["_to"] = moves["to"].map(order)
        for row in moves.sort_values(["step", "_from", "_to"]).itertuples():
            h = row.deals * scale
            src, dst = (row.step, row[2]), (row.step + 1, row.to)
            y0 = (out_next[src] - h, out_next[src])
            out_next[src] -= h
            y1 = (in_next[dst] - h, in_next[dst])
            in_next[dst] -= h
            color = (kinds or {}).get((row[2], row.to)) or KIND_COLORS[_kind(row[2], row.to, states)]
            _band(ax, row.step - 1 + node_width / 2, row.step - node_width / 2, y0, y1, color, 0.45)
        for (s, state), (lo, hi) in box.items():
            color = OUTCOME_COLORS["won"] if state == WON else OUTCOME_COLORS["lost"] if state == LOST else "0.25"
            ax.add_patch(Rectangle((s - 1 - node_width / 2, lo), node_width, hi - lo, facecolor=color,
                                   edgecolor="none"))
            if (hi - lo) >= min_label * scale_total * scale:
                ax.text(s - 1 + node_width / 2 + 0.02, (lo + hi) / 2, f"{state} {int(nodes.loc[(s, state)]):,}",
                        va="center", ha="left", fontsize="xx-small", color="0.1")
        cont = flows[flows["to"] == CONTINUES]
        for row in cont.itertuples():
            lo, hi = box[(row.step, row[2])]
            ax.annotate("", xy=(row.step - 1 + node_width / 2 + 0.35, (lo + hi) / 2),
                        xytext=(row.step - 1 + node_width / 2, (lo + hi) / 2),
                        arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 0.8})
        ax.set_xlim(-0.3, len(steps) - 0.4)
        ax.set_ylim(min((lo for lo, _ in box.values()), default=0) - 0.02, 1.02)
        ax.set_xticks(range(len(steps)), [f"Step {s}" for s in steps])
        ax.set_yticks([])
        ax.grid(False)
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        handles = [Rectangle((0, 0), 1, 1, color=KIND_COLORS[k], alpha=0.6) for k in ("advance", "skip", "back",
                                                                                       "win", "lose")]
        ax.legend(handles, ["advance", "skip", "back", "win", "lose"], loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  fontsize="small", title="Move")
    return ax


def _state_order(states: list[str]) -> list[str]:
    """Open stages as first seen, then Won, then Lost."""
    closing = [s for s in (WON, LOST) if s in states]
    return [s for s in states if s not in closing] + closing


def _kind(a: str, b: str, states: list[str]) -> str:
    """The kind of a move between two named states, from their process order."""
    if b == WON:
        return "win"
    if b == LOST:
        return "lose"
    if a in (WON, LOST):
        return "reopen"
    order = [s for s in _state_order(states) if s not in (WON, LOST)]
    i, j = order.index(a), order.index(b)
    return "advance" if j == i + 1 else "skip" if j > i else "back" if j < i else "re-enter"


def cohort_heatmap(cohorts, *, value: str = "conversion", unit: TimeUnit = DAYS, ax: Axes | None = None) -> Axes:
    """Conversion per creation cohort (rows) and transition (columns).

    Cohorts younger than ``mature_days`` are hatched: their conversion is only what has
    happened so far.

    Returns
    -------
    Axes
        A heatmap with one annotated cell per (cohort, transition).
    """
    table = _table(cohorts)
    wide = table.pivot(index="cohort", columns="transition", values=value)
    wide = wide[list(dict.fromkeys(table["transition"]))]
    mature = table.drop_duplicates("cohort").set_index("cohort")["mature"].reindex(wide.index)
    with theme():
        ax = _axes(ax)
        sns.heatmap(wide, annot=True, fmt=".0%", cmap="viridis", vmin=0, vmax=1, linewidths=0.4, linecolor="white",
                    annot_kws={"fontsize": "xx-small"}, ax=ax,
                    cbar_kws={"label": "Eventual conversion", "format": PercentFormatter(1.0, decimals=0)})
        for i, ok in enumerate(mature.to_numpy()):
            if not ok:
                ax.add_patch(Rectangle((0, i), wide.shape[1], 1, fill=False, hatch="///", edgecolor="0.85", lw=0))
        ax.set_xlabel("")
        ax.set_ylabel("Created in")
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0, labelsize="x-small")
        days = getattr(cohorts, "mature_days", None)
        if days is not None and not mature.all():
            ax.set_title(f"Hatched: created less than {unit(days)} before the cut-off (conversion so far)",
                         loc="left", fontsize="x-small")
    return ax


def markov_vs_cohort(check: pd.DataFrame, *, segment: str = OVERALL, ax: Axes | None = None) -> Axes:
    """Probability of winning from each stage: the Markov chain against mature cohorts, with intervals.

    Parameters
    ----------
    check : DataFrame
        `workbench.funnel.markov.markov_check`.

    Returns
    -------
    Axes
        Two points per stage with their vertical intervals.
    """
    part = _segment(check, segment).reset_index(drop=True)
    x = np.arange(len(part))
    colors = sns.color_palette(PALETTE)
    with theme():
        ax = _axes(ax)
        for dx, est, low, high, color, label in (
                (-0.1, "markov_p_won", "markov_low", "markov_high", colors[0], "Markov chain (all deals)"),
                (0.1, "cohort_win_rate", "cohort_low", "cohort_high", colors[1],
                 f"Mature cohort (created {check.attrs.get('mature_days', '?')}+ days before)")):
            e = part[est].to_numpy(float)
            ax.errorbar(x + dx, e, yerr=error_lengths(e, part[low], part[high]), fmt="o",
                        color=color, capsize=2, label=label, markersize=5)
        ax.set_xticks(x, part["stage"])
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("Probability of winning from the stage")
        ax.legend(loc="upper left", fontsize="small")
    return ax


__all__ = ["funnel_chart", "transition_heatmap", "path_variants_chart", "sankey", "cohort_heatmap",
           "markov_vs_cohort", "KIND_COLORS", "KINDS"]
