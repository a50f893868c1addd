"""The house plots draw what the result objects say, one artist per segment, and leave no global state."""
import warnings
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from workbench import plots
from workbench.cycle.times import OVERALL, cycle_times, speed_drivers
from workbench.dataset.sample import generate


@pytest.fixture(scope="module")
def dataset():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=3_000, seed="plots-tests", truth_deals=5_000).dataset()


@pytest.fixture(scope="module")
def cycles(dataset):
    return cycle_times(dataset, by="persona")


@pytest.fixture(scope="module")
def drivers(dataset):
    return speed_drivers(dataset, ["persona", "channel", "amount"])


@pytest.fixture(scope="module")
def dwell(dataset):
    dwell_module = pytest.importorskip("workbench.cycle.dwell")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dwell_module.stage_dwell(dataset, by="persona")


@pytest.fixture(scope="module")
def replay(dataset):
    forecast = pytest.importorskip("workbench.cycle.forecast")
    return forecast.backtest(dataset, dataset.as_of - pd.Timedelta(days=180), window=90)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_survival_curves_draw_one_curve_and_band_per_segment(cycles):
    """Every segment gets one step line and one CI band, labelled with its size; axes are labelled."""
    ax = plots.survival_curves(cycles, at_risk=False)
    assert len(ax.lines) == len(cycles.fits) == 6
    assert len(_bands(ax)) == len(cycles.fits)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"{OVERALL} (n={cycles.fits[OVERALL].n:,})"
    assert "closed" in ax.get_ylabel() and "Days" in ax.get_xlabel()
    assert ax.get_xlim() == (0, cycles.horizon)


def test_survival_curves_plot_one_minus_kaplan_meier(cycles):
    """The drawn steps are 1 - S(t) of the fit at its event times (0 before the first)."""
    ax = plots.survival_curves(cycles, segments=[OVERALL], at_risk=False)
    table = cycles.fits[OVERALL].table
    inside = table[table["time"] <= cycles.horizon]
    x, y = ax.lines[0].get_xdata(), ax.lines[0].get_ydata()
    assert (x[0], y[0]) == (0.0, 0.0)
    assert_allclose(x[1:-1], inside["time"])
    assert_allclose(y[1:-1], 1 - inside["survival"], atol=1e-12)


def test_survival_curves_print_at_risk_counts_under_the_axis(cycles):
    """With at_risk, the numbers under the axis are each segment's `at_risk` at the x ticks."""
    segments = [OVERALL, "Procurement"]
    ax = plots.survival_curves(cycles, segments=segments)
    ticks = ax.get_xticks()
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "At risk"
    assert len(texts) == 1 + len(segments) * (1 + len(ticks))
    for i, label in enumerate(segments):
        row = texts[1 + i * (1 + len(ticks)):1 + (i + 1) * (1 + len(ticks))]
        assert row[0] == label
        assert row[1:] == [f"{int(n):,}" for n in cycles.fits[label].at_risk(ticks)]


def test_cumulative_incidence_draws_the_chosen_cause(cycles):
    """One curve per segment, and the steps are that cause's Aalen-Johansen CIF."""
    ax = plots.cumulative_incidence(cycles, cause="lost", segments=["Procurement", "Economic buyer"])
    assert len(ax.lines) == 2 and len(_bands(ax)) == 2
    assert "lost" in ax.get_ylabel()
    table = cycles.fits["Procurement"].table
    inside = table[table["time"] <= cycles.horizon]
    assert_allclose(ax.lines[0].get_ydata()[1:-1], inside["lost_cif"])


def test_cumulative_incidence_rejects_an_unknown_cause_and_segment(cycles):
    """A cause or segment the fits do not have is a KeyError naming it."""
    with pytest.raises(KeyError, match="open"):
        plots.cumulative_incidence(cycles, cause="open")
    with pytest.raises(KeyError, match="Nobody"):
        plots.cumulative_incidence(cycles, segments=["Nobody"])


@pytest.mark.parametrize("use_fit", [False, True])
def test_outcome_areas_stack_won_open_lost_to_one(cycles, use_fit):
    """Three stacked areas (won, still open, lost) whose top edge is 1 on every day."""
    source = cycles.fits["Executive sponsor"] if use_fit else cycles
    ax = plots.outcome_areas(source, segment="Executive sponsor")
    areas = _bands(ax)
    assert len(areas) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lost", "still open", "won"]
    top = areas[-1].get_paths()[0].vertices
    highest = pd.Series(top[:, 1]).groupby(top[:, 0]).max()
    assert_allclose(highest.to_numpy(), 1.0, atol=1e-9)
    for area in areas:
        assert area.get_paths()[0].vertices[:, 1].max() <= 1 + 1e-9
    assert ax.get_ylabel() == "Share of deals"


def test_hazard_ratios_forest_plot(drivers):
    """One interval and one point per covariate at its hazard ratio, log x-axis, a reference line at 1."""
    ax = plots.hazard_ratios(drivers)
    table = drivers.table
    assert ax.get_xscale() == "log"
    points = ax.collections[-1].get_offsets()
    assert len(points) == len(table)
    assert_allclose(np.asarray(points)[:, 0], table["hazard_ratio"])
    assert len(ax.collections[0].get_segments()) == len(table)
    assert any(np.allclose(line.get_xdata(), 1.0) for line in ax.lines)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(table)
    assert labels[0].startswith(table["covariate"].iloc[0].split("=")[0])
    assert "Hazard ratio" in ax.get_xlabel()


def test_dwell_bars_one_bar_per_segment_and_stage(dwell):
    """Bars (segments x stages) at the median days, in stage order, with a legend of segments."""
    ax = plots.dwell_bars(dwell)
    table = dwell.table
    stages, segments = table["stage"].unique(), table["segment"].unique()
    assert len(ax.patches) == len(stages) * len(segments)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(stages)
    overall = table[table["segment"] == OVERALL]
    assert_allclose([p.get_height() for p in ax.containers[0]], overall["median_days"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(segments)
    assert "Median days" in ax.get_ylabel()


def test_dwell_bars_without_segments_have_no_legend(dataset):
    """Overall only: one bar per stage and no legend."""
    dwell_module = pytest.importorskip("workbench.cycle.dwell")
    ax = plots.dwell_bars(dwell_module.stage_dwell(dataset))
    assert len(ax.patches) == len(dataset.stages)
    assert ax.get_legend() is None


def test_calibration_points_intervals_and_diagonal(replay):
    """One point per calibration bin at (mean predicted, observed), the diagonal, axes 0-1."""
    ax = plots.calibration(replay)
    cal = replay.calibration
    diagonal, points = ax.lines[0], ax.containers[0].lines[0]
    assert_allclose(diagonal.get_xydata(), [[0, 0], [1, 1]])
    assert_allclose(points.get_xdata(), cal["mean_predicted"])
    assert_allclose(points.get_ydata(), cal["observed_rate"])
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)
    assert "Predicted" in ax.get_xlabel() and "won" in ax.get_ylabel()


@pytest.mark.parametrize("name", ["survival_curves", "cumulative_incidence", "outcome_areas", "hazard_ratios",
                                  "dwell_bars", "calibration"])
def test_every_plot_draws_on_the_given_axes(name, cycles, drivers, request):
    """Each function draws on `ax=` when given and returns that axes, not a new one."""
    source = {"hazard_ratios": drivers, "dwell_bars": None, "calibration": None}.get(name, cycles)
    if name == "dwell_bars":
        source = request.getfixturevalue("dwell")
    if name == "calibration":
        source = request.getfixturevalue("replay")
    fig, (left, right) = plt.subplots(1, 2)
    assert getattr(plots, name)(source, ax=right) is right
    assert not left.has_data()


def test_plots_leave_global_style_alone(cycles):
    """The theme applies only inside the plot functions: rcParams are the same afterwards."""
    before = dict(matplotlib.rcParams)
    plots.survival_curves(cycles)
    plots.outcome_areas(cycles)
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} == set()


def test_theme_restores_only_its_own_settings():
    """Settings changed inside a plot call but outside the theme (IPython's inline backend turning on
    `interactive` at the first figure) survive; the theme's own settings are restored."""
    before = matplotlib.rcParams["interactive"], matplotlib.rcParams["axes.spines.top"]
    try:
        with plots.theme():
            assert matplotlib.rcParams["axes.spines.top"] is False
            matplotlib.rcParams["interactive"] = not before[0]
        assert matplotlib.rcParams["interactive"] is (not before[0])
        assert matplotlib.rcParams["axes.spines.top"] == before[1]
    finally:
        matplotlib.rcParams["interactive"] = before[0]


def test_set_theme_makes_the_house_style_the_default():
    """set_theme applies the theme globally, for figures made without the plot functions."""
    with matplotlib.rc_context():
        plots.set_theme()
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert tuple(matplotlib.rcParams["figure.figsize"]) == plots.RC["figure.figsize"]


def test_segment_colors_keep_overall_grey_and_others_distinct():
    """All deals is always the grey; other segments get distinct colours, none of them the lost colour."""
    colors = plots.segment_colors([OVERALL, "a", "b", "c", "d", "e"])
    assert colors[OVERALL] == plots.OVERALL_COLOR
    others = [colors[k] for k in "abcde"]
    assert len(set(others)) == 5
    assert plots.OUTCOME_COLORS["lost"] not in others


def test_the_x_axis_says_where_the_clock_starts(dataset, cycles):
    """Days since created by default; days since entering the stage when `from_stage` starts the clock."""
    assert plots.survival_curves(cycles, at_risk=False).get_xlabel() == "Days since created"
    from_discovery = cycle_times(dataset, from_stage="Discovery")
    for ax in (plots.survival_curves(from_discovery, at_risk=False), plots.cumulative_incidence(from_discovery),
               plots.outcome_areas(from_discovery)):
        assert ax.get_xlabel() == "Days since entering Discovery"


def _forest_source(kind, rows):
    """A stand-in result for `hazard_ratios` or `odds_ratios`: rows of (label, ratio, low, high, p)."""
    labels, ratio, low, high, p = zip(*rows)
    if kind == "hazard_ratios":
        table = pd.DataFrame({"covariate": labels, "hazard_ratio": ratio, "ci_low": low, "ci_high": high,
                              "p_value": p})
    else:
        feature, level = zip(*(label.split("=") for label in labels))
        table = pd.DataFrame({"feature": feature, "level": level, "odds_ratio": ratio, "ci_low": low,
                              "ci_high": high, "p_value": p})
    return SimpleNamespace(table=table, reference_levels={"channel": "Inbound"}, cause="won")


BROKEN_ROWS = {"nan": ("channel=Partner", np.nan, np.nan, np.nan, np.nan),
               "inf": ("channel=Partner", 3.0, 1.2, np.inf, 0.01),
               "zero": ("channel=Partner", 0.0, 0.0, 0.5, 0.02),
               "observed": ("channel=Partner", 1e-9, 0.0, np.inf, 0.99)}


@pytest.mark.parametrize("kind", ["hazard_ratios", "odds_ratios"])
@pytest.mark.parametrize("broken", list(BROKEN_ROWS))
def test_forest_plots_leave_out_rows_without_a_finite_positive_estimate_and_name_them(kind, broken):
    """A ratio or bound that is NaN, infinite or 0 (the [0, inf] of a runaway fit) is not drawn but named in a note
    above the axes; the other rows are drawn, on the given axes, and the figure renders."""
    rows = [("channel=Outbound", 1.5, 1.1, 2.0, 0.01), BROKEN_ROWS[broken], ("channel=Event", 0.9, 0.8, 1.05, 0.2)]
    fig, (left, right) = plt.subplots(1, 2)
    ax = getattr(plots, kind)(_forest_source(kind, rows), ax=right)
    assert ax is right and not left.has_data()
    fig.canvas.draw()
    assert len(ax.collections[-1].get_offsets()) == 2
    assert_allclose(np.asarray(ax.collections[-1].get_offsets())[:, 0], [1.5, 0.9])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 2 and not any("Partner" in label for label in labels)
    notes = [t.get_text() for t in ax.texts]
    assert len(notes) == 1 and notes[0].startswith("Not shown (no finite estimate): channel") and "Partner" in notes[0]
    assert np.isfinite(ax.get_xlim()).all()


@pytest.mark.parametrize("kind", ["hazard_ratios", "odds_ratios"])
@pytest.mark.parametrize("rows", [[], [BROKEN_ROWS["nan"], BROKEN_ROWS["observed"]]], ids=["empty", "all-broken"])
def test_forest_plots_with_nothing_to_draw_say_so(kind, rows):
    """An empty table, or one without a drawable row, gives axes with a centred 'No estimates to show'."""
    source = (_forest_source(kind, rows) if rows else
              _forest_source(kind, [("channel=x", 1.0, 1.0, 1.0, 1.0)]))
    if not rows:
        source.table = source.table.iloc[:0]
    ax = getattr(plots, kind)(source)
    ax.figure.canvas.draw()
    texts = {t.get_text(): t for t in ax.texts}
    assert "No estimates to show" in texts
    assert texts["No estimates to show"].get_position() == (0.5, 0.5)
    assert not ax.collections
    assert len(texts) == (2 if rows else 1)


def test_hazard_ratios_of_a_firth_fit_draw_every_row(dataset):
    """The observed failure end to end: no Partner deal won; the Firth refit's forest plot draws every row."""
    from dataclasses import replace

    from workbench.exceptions import SeparationWarning

    deals = dataset.deals.copy()
    deals.loc[(deals["channel"] == "Partner") & (deals["outcome"] == "won"), "outcome"] = "lost"
    with pytest.warns(SeparationWarning):
        drivers = speed_drivers(replace(dataset, deals=deals), ["persona", "channel", "amount"])
    ax = plots.hazard_ratios(drivers)
    ax.figure.canvas.draw()
    assert len(ax.collections[-1].get_offsets()) == len(drivers.table)
    assert not ax.texts
