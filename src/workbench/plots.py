"""Figures of the analyses, in one house style.

Every function follows seaborn's axes-level signature: the result object first,
keyword-only options, ``ax=None`` (draw on the current axes), and it returns the
axes. Nothing here estimates anything: the numbers come from the result objects'
tables (`CycleTimes.fits`, `SpeedDrivers.table`, `StageDwell.table`,
`Backtest.calibration`). The theme is applied inside each function through
`theme()`, so importing this module changes no global state; call `set_theme()` to
make it the default for your own figures too.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, MultipleLocator, NullFormatter, NullLocator, PercentFormatter

from .dataset.groups import OVERALL
from .stats.survival import CompetingRisks
from .timeunits import DAYS, TimeUnit

STYLE = "whitegrid"
CONTEXT = "notebook"
FONT_SCALE = 0.9
PALETTE = "colorblind"
RC = {"figure.figsize": (7.0, 4.2), "axes.spines.top": False, "axes.spines.right": False,
      "legend.frameon": False, "savefig.bbox": "tight", "figure.dpi": 100,
      # Labels are CRM text: a persona or stage with `$` in it is text, never mathtext.
      "text.parse_math": False}
#: Colours that mean the same thing in every figure.
OUTCOME_COLORS = {"won": sns.color_palette(PALETTE)[2], "lost": sns.color_palette(PALETTE)[3],
                  "open": (0.78, 0.78, 0.78)}
OVERALL_COLOR = (0.2, 0.2, 0.2)
BAND_ALPHA = 0.18
NICE_RATIOS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20)


def _rc() -> dict:
    rc = {**sns.axes_style(STYLE), **sns.plotting_context(CONTEXT, font_scale=FONT_SCALE), **RC}
    rc["axes.prop_cycle"] = cycler(color=sns.color_palette(PALETTE))
    return rc


@contextmanager
def theme() -> Iterator[None]:
    """Apply the house theme inside a ``with`` block only.

    Only the theme's own settings are restored afterwards. ``matplotlib.rc_context``
    would restore every setting, including ``interactive``, which IPython's inline
    backend switches on when the first figure is made: later figures would then never
    be shown, and ``plt.gca()`` would keep drawing on the first one.
    """
    rc = _rc()
    saved = {key: mpl.rcParams[key] for key in rc}
    mpl.rcParams.update(rc)
    try:
        yield
    finally:
        mpl.rcParams.update(saved)


def set_theme() -> None:
    """Make the house theme the default for every later figure (seaborn's ``set_theme``)."""
    sns.set_theme(style=STYLE, context=CONTEXT, palette=PALETTE, font_scale=FONT_SCALE, rc=RC)


def _segment_palette(n: int) -> list[tuple]:
    """The palette without the colours reserved for lost (vermillion) and All deals (grey)."""
    base = sns.color_palette(PALETTE)
    usable = [base[i] for i in (0, 1, 2, 4, 5, 9, 6, 8)]
    return [usable[i % len(usable)] for i in range(n)]


def segment_colors(labels: Sequence[str]) -> dict[str, tuple]:
    """Colour per segment label: ``All deals`` dark grey, the others the palette in order."""
    others = [label for label in labels if label != OVERALL]
    colors = dict(zip(others, _segment_palette(len(others))))
    if OVERALL in labels:
        colors[OVERALL] = OVERALL_COLOR
    return colors


def _axes(ax: Axes | None) -> Axes:
    return plt.gca() if ax is None else ax


#: Steps between time ticks when a time axis reads in hours.
HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 72)


def _time_axis(axis, until: float, unit: TimeUnit) -> None:
    """Ticks of a time axis (its data in days) read in ``unit``: at whole hours when in hours."""
    if unit.per_day == 1:
        return
    span = until * unit.per_day
    step = next((h for h in HOUR_STEPS if span / h <= 8), HOUR_STEPS[-1])
    axis.set_major_locator(MultipleLocator(step / unit.per_day))
    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * unit.per_day:g}"))


def _pick(fits: dict[str, CompetingRisks], segments: Sequence[str] | None) -> dict[str, CompetingRisks]:
    if segments is None:
        return fits
    missing = [s for s in segments if s not in fits]
    if missing:
        raise KeyError(f"No fit for segment(s) {missing}; the fits are {list(fits)}.")
    return {s: fits[s] for s in segments}


def _steps(time: np.ndarray, *columns: np.ndarray, start: float, until: float) -> tuple[np.ndarray, ...]:
    """Step-function points from time 0 (value ``start``) to ``until``, for ``where='post'``."""
    keep = time <= until
    x = np.r_[0.0, time[keep], until]
    out = [x]
    for col in columns:
        y = np.r_[start, col[keep]]
        out.append(np.r_[y, y[-1]])
    return tuple(out)


def _curves(ax: Axes, fits: dict[str, CompetingRisks], columns: tuple[str, str, str], flip: bool,
            until: float, legend: str, overall_label: str = OVERALL) -> None:
    colors = segment_colors(list(fits))
    for label, fit in fits.items():
        t = fit.table
        est, low, high = (t[c].to_numpy() for c in columns)
        if flip:  # 1 - S: the band flips too
            est, low, high = 1 - est, 1 - high, 1 - low
        x, y, lo, hi = _steps(t["time"].to_numpy(), est, low, high, start=0.0, until=until)
        n = f"{fit.n:,}"
        ax.step(x, y, where="post", color=colors[label], lw=2.2 if label == OVERALL else 1.6,
                label=f"{overall_label if label == OVERALL else label} (n={n})")
        ax.fill_between(x, lo, hi, step="post", color=colors[label], alpha=BAND_ALPHA, lw=0)
    ax.set_xlim(0, until)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.legend(loc=legend, fontsize="small")


def _at_risk_table(ax: Axes, fits: dict[str, CompetingRisks], ticks: np.ndarray) -> None:
    """Deals still open and observed ("at risk") at each tick, under the x-axis, one row per segment
    (as lifelines' ``add_at_risk_counts``)."""
    colors = segment_colors(list(fits))
    size = mpl.rcParams["xtick.labelsize"]
    below, left = -42.0, -24.0  # points under the axis, left of it (clear of the first column)
    ax.annotate("At risk", xy=(0, 0), xycoords="axes fraction", xytext=(left, below), textcoords="offset points",
                ha="right", va="top", fontsize=size, fontweight="bold")
    for i, (label, fit) in enumerate(fits.items(), start=1):
        y = below - 13.0 * i
        ax.annotate(label, xy=(0, 0), xycoords="axes fraction", xytext=(left, y), textcoords="offset points",
                    ha="right", va="top", fontsize=size, color=colors[label])
        for tick, n in zip(ticks, fit.at_risk(ticks)):
            ax.annotate(f"{int(n):,}", xy=(tick, 0), xycoords=("data", "axes fraction"), xytext=(0, y),
                        textcoords="offset points", ha="center", va="top", fontsize=size, color=colors[label])


def survival_curves(cycle_times, *, segments: Sequence[str] | None = None, at_risk: bool = True,
                    max_days: float | None = None, unit: TimeUnit = DAYS, overall_label: str = OVERALL,
    ax: Axes | None = None) -> Axes:
    """Share of deals closed (won or lost) over time: 1 - Kaplan-Meier, per segment.

    Parameters
    ----------
    cycle_times : CycleTimes
        From `workbench.cycle.cycle_times`.
    segments : list of str, optional
        Labels of ``cycle_times.fits`` to draw (default: all, ``All deals`` first).
    at_risk : bool
        Print, under the x-axis, how many deals were still open and observed at each tick.
    max_days : float, optional
        Right end of the x-axis (default: ``cycle_times.horizon``).
    unit : TimeUnit
        How the time axis reads (`workbench.timeunits`: days, or hours); the data stay in days.
    ax : matplotlib Axes, optional
        Draw here instead of the current axes.

    Returns
    -------
    Axes
        One step line and one confidence band per segment.
    """
    fits = _pick(cycle_times.fits, segments)
    until = float(max_days if max_days is not None else cycle_times.horizon)
    with theme():
        ax = _axes(ax)
        _curves(ax, fits, ("survival", "survival_lower", "survival_upper"), flip=True, until=until,
                legend="lower right", overall_label=overall_label)
        _time_axis(ax.xaxis, until, unit)
        ax.set_xlabel(unit.label(cycle_times.clock))
        ax.set_ylabel("Share of deals closed (won or lost)")
        if at_risk:
            ticks = np.array([t for t in ax.get_xticks() if 0 <= t <= until])
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            _at_risk_table(ax, fits, ticks)
    return ax


def cumulative_incidence(cycle_times, *, cause: str = "won", segments: Sequence[str] | None = None,
                         max_days: float | None = None, unit: TimeUnit = DAYS, overall_label: str = OVERALL,
    ax: Axes | None = None) -> Axes:
    """Share of deals closed as ``cause`` by each day (Aalen-Johansen), per segment, with CI bands.

    The other outcome competes: a lost deal can no longer be won, and open deals
    count with what their segment's curve says about them.

    Returns
    -------
    Axes
        One step line and one confidence band per segment.
    """
    fits = _pick(cycle_times.fits, segments)
    causes = next(iter(fits.values())).causes
    if cause not in causes:
        raise KeyError(f"Unknown cause {cause!r}; the fits have {list(causes)}.")
    until = float(max_days if max_days is not None else cycle_times.horizon)
    with theme():
        ax = _axes(ax)
        _curves(ax, fits, (f"{cause}_cif", f"{cause}_lower", f"{cause}_upper"), flip=False, until=until,
                legend="upper left", overall_label=overall_label)
        _time_axis(ax.xaxis, until, unit)
        ax.set_xlabel(unit.label(cycle_times.clock))
        ax.set_ylabel(f"Share of deals {cause} (cumulative incidence)")
    return ax


def outcome_areas(fit_or_cycle_times, *, segment: str = OVERALL, max_days: float | None = None,
                  unit: TimeUnit = DAYS, overall_label: str = OVERALL, ax: Axes | None = None) -> Axes:
    """Where deals stand on each day: won, still open, lost, stacked to 100%.

    Won and lost are the Aalen-Johansen cumulative incidences, open is the
    Kaplan-Meier survival; the three add up to 1 on every day.

    Parameters
    ----------
    fit_or_cycle_times : CompetingRisks or CycleTimes
        A single fit, or cycle times of which ``segment`` is drawn.
    segment : str
        Which fit of a `CycleTimes` to draw.
    max_days : float, optional
        Right end of the x-axis (default: the horizon of a `CycleTimes`, else the last time).

    Returns
    -------
    Axes
        Three filled areas, bottom to top: won, open, lost.
    """
    if isinstance(fit_or_cycle_times, CompetingRisks):
        fit, default_until, title = fit_or_cycle_times, float(fit_or_cycle_times.table["time"].max()), None
        clock = "Days"
    else:
        fit, default_until = fit_or_cycle_times.fits[segment], fit_or_cycle_times.horizon
        title = overall_label if segment == OVERALL else segment
        clock = fit_or_cycle_times.clock
    until = float(max_days if max_days is not None else default_until)
    t = fit.table
    x, won, lost = _steps(t["time"].to_numpy(), t["won_cif"].to_numpy(), t["lost_cif"].to_numpy(),
                          start=0.0, until=until)
    _, still_open = _steps(t["time"].to_numpy(), t["survival"].to_numpy(), start=1.0, until=until)
    with theme():
        ax = _axes(ax)
        ax.stackplot(x, won, still_open, lost, step="post", labels=["won", "still open", "lost"],
                     colors=[OUTCOME_COLORS["won"], OUTCOME_COLORS["open"], OUTCOME_COLORS["lost"]],
                     alpha=0.85, lw=0)
        ax.set_xlim(0, until)
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        _time_axis(ax.xaxis, until, unit)
        ax.set_xlabel(unit.label(clock))
        ax.set_ylabel("Share of deals")
        if title:
            ax.set_title(title, loc="left")
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.grid(False)
    return ax


def _covariate_label(name: str, references: dict) -> str:
    column, sep, level = name.partition("=")
    if sep and column in references:
        return f"{column}: {level} (vs {references[column]})"
    return name


def _effect_labels(drivers) -> list[str]:
    """``feature: level (vs reference)`` for each row of a drivers model's table."""
    references = getattr(drivers, "reference_levels", {}) or {}
    return [f"{f}: {lvl}" + (f" (vs {references[f]})" if f in references else "")
            for f, lvl in zip(drivers.table["feature"], drivers.table["level"])]


def hazard_ratios(speed_drivers, *, alpha: float = 0.05, ax: Axes | None = None) -> Axes:
    """Forest plot of the Cox model's hazard ratios with their confidence intervals.

    A hazard ratio above 1 means deals with that value reach the outcome
    (``speed_drivers.cause``) faster. Points with ``p_value < alpha`` are coloured;
    the others are grey. Rows keep the order of ``speed_drivers.table``. A row
    whose ratio or bound is missing, infinite or not above 0 cannot sit on a log axis:
    it is left out and named in a note above the axes; with nothing left to draw the
    axes say "No estimates to show".

    Returns
    -------
    Axes
        One horizontal interval line and one point per covariate; log x-axis; a
        reference line at 1.
    """
    table = speed_drivers.table
    references = getattr(speed_drivers, "reference_levels", {}) or {}
    cause = getattr(speed_drivers, "cause", "won")
    return _forest(table["hazard_ratio"], table["ci_low"], table["ci_high"], table["p_value"],
                   [_covariate_label(n, references) for n in table["covariate"]],
                   f"Hazard ratio of being {cause} (log scale; > 1: faster)", alpha=alpha, ax=ax)


def odds_ratios(win_drivers, *, alpha: float = 0.05, ax: Axes | None = None) -> Axes:
    """Forest plot of the win/loss model's odds ratios (``workbench.drivers.win_drivers``).

    An odds ratio above 1 means deals with that level (against the reference level, or
    per unit for numbers) are more likely to be won. Coloured where ``p_value < alpha``.
    Rows without a finite, positive ratio and bounds are left out and named, as in
    `hazard_ratios`.
    """
    table = win_drivers.table
    labels = _effect_labels(win_drivers)
    return _forest(table["odds_ratio"], table["ci_low"], table["ci_high"], table["p_value"], labels,
                   "Odds ratio of winning (log scale; > 1: wins more often)", alpha=alpha, ax=ax)


def subdistribution_ratios(competing_drivers, *, alpha: float = 0.05, ax: Axes | None = None) -> Axes:
    """Forest plot of the Fine-Gray model's ratios (``workbench.drivers.competing_drivers``).

    A ratio above 1 means the share of deals won by any day rises faster with that level
    (against the reference level, or per unit for numbers): they win sooner, more often,
    or both. Coloured where ``p_value < alpha``; drawn as `odds_ratios`.
    """
    table = competing_drivers.table
    labels = _effect_labels(competing_drivers)
    return _forest(table["ratio"], table["ci_low"], table["ci_high"], table["p_value"], labels,
                   "Rate of winning, ratio (log scale; > 1: wins sooner or more often)", alpha=alpha, ax=ax)


def _drawable_ratios(ratio, low, high) -> np.ndarray:
    """Rows a log-scale forest plot can draw: ratio and both bounds finite and above 0."""
    values = np.column_stack([np.asarray(v, dtype=float) for v in (ratio, low, high)])
    with np.errstate(invalid="ignore"):
        return np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)


def _forest(ratio, low, high, p_value, labels, xlabel: str, *, alpha: float, ax: Axes | None) -> Axes:
    ratio, low, high = (np.asarray(v, dtype=float) for v in (ratio, low, high))
    keep = _drawable_ratios(ratio, low, high)
    left_out = [label for label, ok in zip(labels, keep) if not ok]
    ratio, low, high = ratio[keep], low[keep], high[keep]
    labels = [label for label, ok in zip(labels, keep) if ok]
    y = np.arange(len(ratio))[::-1]
    with np.errstate(invalid="ignore"):
        significant = (np.asarray(p_value, dtype=float)[keep] < alpha)
    with theme():
        ax = _axes(ax)
        if left_out:
            shown = "; ".join(left_out[:5]) + (f"; and {len(left_out) - 5} more" if len(left_out) > 5 else "")
            ax.annotate(f"Not shown (no finite estimate): {shown}", xy=(0, 1), xycoords="axes fraction",
                        xytext=(0, 4), textcoords="offset points", ha="left", va="bottom", fontsize="x-small",
                        color="0.35", wrap=True)
        ax.set_xlabel(xlabel)
        if not len(ratio):
            ax.text(0.5, 0.5, "No estimates to show", transform=ax.transAxes, ha="center", va="center",
                    color="0.35")
            ax.set_xticks([])
            ax.set_yticks([])
            return ax
        color = np.where(significant[:, None], np.array([sns.color_palette(PALETTE)[0]]),
                         np.array([(0.6, 0.6, 0.6)]))
        ax.axvline(1.0, color="0.3", lw=1, ls="--", zorder=1)
        ax.hlines(y, low, high, colors=color, lw=2, zorder=2)
        ax.scatter(ratio, y, c=color, s=36, zorder=3)
        ax.set_xscale("log")
        # Room around the widest interval, and 1 always in view.
        ax.set_xlim(min(float(np.min(low)) / 1.15, 1 / 1.25), max(float(np.max(high)) * 1.15, 1.25))
        lo_x, hi_x = ax.get_xlim()
        ax.xaxis.set_major_locator(FixedLocator([v for v in NICE_RATIOS if lo_x <= v <= hi_x]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(y, labels)
        ax.yaxis.set_minor_locator(NullLocator())
        ax.grid(axis="y", visible=False)
        ax.set_ylim(-0.7, len(ratio) - 0.3)
    return ax


def dwell_bars(stage_dwell, *, unit: TimeUnit = DAYS, overall_label: str = OVERALL, ax: Axes | None = None) -> Axes:
    """Median days in each open stage with its confidence interval, one bar colour per segment.

    Stages with too few entries have no bar; an interval with no upper end (fewer
    than half left the stage by the last observation) has no error bar.

    Returns
    -------
    Axes
        One bar per (segment, stage), in stage order.
    """
    table = stage_dwell.table
    stages = list(dict.fromkeys(table["stage"]))
    segments = list(dict.fromkeys(table["segment"]))
    colors = segment_colors(segments)
    width = 0.8 / len(segments)
    with theme():
        ax = _axes(ax)
        for i, label in enumerate(segments):
            part = table[table["segment"] == label].set_index("stage").reindex(stages)
            x = np.arange(len(stages)) - 0.4 + width * (i + 0.5)
            median = part["median_days"].to_numpy(dtype=float)
            low = part["median_low"].to_numpy(dtype=float)
            high = part["median_high"].to_numpy(dtype=float)
            ok = np.isfinite(median) & np.isfinite(low) & np.isfinite(high)
            ax.bar(x, np.where(np.isfinite(median), median, 0.0), width=width * 0.92, color=colors[label],
                   label=overall_label if label == OVERALL else label)
            ax.errorbar(x[ok], median[ok], yerr=error_lengths(median[ok], low[ok], high[ok]), fmt="none",
                        ecolor="0.15", elinewidth=1, capsize=2)
        ax.set_xticks(np.arange(len(stages)), stages)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("Stage")
        _time_axis(ax.yaxis, ax.get_ylim()[1], unit)
        ax.set_ylabel(unit.label("Median days in stage (first visit)"))
        if len(segments) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return ax


def _calibration_interval(cal) -> tuple[str, str]:
    for low, high in (("observed_low", "observed_high"), ("ci_low", "ci_high")):
        if low in cal and high in cal:
            return low, high
    raise KeyError("The calibration table has no interval columns (`observed_low`/`observed_high`).")


def calibration(backtest, *, ax: Axes | None = None) -> Axes:
    """Predicted probability of winning against the share that won, per bin, with Wilson intervals.

    Points on the dashed diagonal are well calibrated; above it the forecast was too
    cautious, below it too optimistic.

    Returns
    -------
    Axes
        The diagonal line, one point per bin with its vertical interval.
    """
    cal = backtest.calibration
    low, high = (cal[c].to_numpy(dtype=float) for c in _calibration_interval(cal))
    predicted, observed = (cal[c].to_numpy(dtype=float) for c in ("mean_predicted", "observed_rate"))
    window = getattr(backtest, "window", None)
    with theme():
        ax = _axes(ax)
        ax.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--")
        ax.errorbar(predicted, observed, yerr=error_lengths(observed, low, high), fmt="o",
                    color=sns.color_palette(PALETTE)[0], ecolor=sns.color_palette(PALETTE)[0], elinewidth=1.2,
                    capsize=2, markersize=5)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        within = f" within {window:g} days" if window else ""
        ax.set_xlabel(f"Predicted probability of winning{within}")
        ax.set_ylabel("Share that won")
        cut = getattr(backtest, "cut_at", None)
        note = f"{backtest.expected_wins:,.0f} wins expected, {backtest.actual_wins:,} won"
        if cut is not None:
            note = f"Forecast made at {cut.date()}:\n{note}"
        ax.annotate(note, xy=(0.02, 0.97), xycoords="axes fraction", ha="left", va="top", fontsize="small")
        # A key in the corner where predictions above 60% would have won less than 15%: rarely anything there.
        ax.annotate("dashed: perfect calibration\npoints: bins of open deals\nbars: 95% Wilson intervals",
                    xy=(0.98, 0.03), xycoords="axes fraction", ha="right", va="bottom", fontsize="x-small",
                    color="0.35")
    return ax


def error_lengths(center, low, high) -> np.ndarray:
    """Error-bar lengths below and above ``center``; never negative (a bound equal to the estimate
    can differ from it in the last bit, and matplotlib refuses negative lengths)."""
    center, low, high = (np.asarray(v, dtype=float) for v in (center, low, high))
    return np.clip(np.vstack([center - low, high - center]), 0, None)
