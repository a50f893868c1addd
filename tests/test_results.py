"""Every public analysis result follows one protocol (`workbench.results`): ``table``, ``notes``,
``findings()``, ``plot(*, ax=None)`` and ``_repr_html_``."""
import importlib
import inspect
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from workbench.dataset.sample import generate  # noqa: E402
from workbench.results import Result  # noqa: E402

#: The modules whose public classes are analysis results.
MODULES = ["cycle.dwell", "cycle.forecast", "cycle.times", "funnel.conversion", "funnel.markov", "funnel.routes",
           "funnel.transitions", "drivers.competing", "drivers.model", "drivers.reasons", "drivers.winrates",
           "profile.attribution", "profile.customers", "profile.roles", "profile.touchpoints", "journey.facts",
           "journey.render"]
#: Public classes of those modules that are helpers, not results.
HELPERS = {"Entries", "Visits", "StageClock"}
#: Results that display their table wide, and the column of ``table`` that names the wide rows.
WIDE_DISPLAY = {"TransitionMatrix": "from"}


def _build(name, ds):
    """The result class ``name`` computed on the shared sample."""
    from workbench.cycle import dwell, forecast, times
    from workbench.drivers import competing, model, reasons, winrates
    from workbench.funnel import conversion, markov, routes, transitions
    from workbench.journey import facts, render
    from workbench.journey.model import fit_to_dataset, template
    attribution, customers, roles, touchpoints = (importlib.import_module(f"workbench.profile.{m}") for m in
                                                  ("attribution", "customers", "roles", "touchpoints"))

    cut = ds.as_of - pd.Timedelta(days=240)
    journey = lambda: fit_to_dataset(template("b2b"), ds)
    persona_facts = lambda: facts.journey_facts(ds, journey(), "persona")
    build = {
        "StageDwell": lambda: dwell.stage_dwell(ds, "persona"),
        "PipelineForecast": lambda: forecast.forecast_open(ds),
        "Backtest": lambda: forecast.backtest(ds, cut),
        "CycleTimes": lambda: times.cycle_times(ds, "persona"),
        "SpeedDrivers": lambda: times.speed_drivers(ds, ["persona", "channel", "amount"]),
        "StageConversion": lambda: conversion.stage_conversion(ds),
        "WindowedConversion": lambda: conversion.windowed_conversion(ds),
        "StageReach": lambda: conversion.stage_reach(ds),
        "Funnel": lambda: conversion.funnel(ds),
        "CohortConversion": lambda: conversion.cohort_conversion(ds, freq="Q", min_deals=10),
        "ConversionComparison": lambda: conversion.compare_conversion(ds, "persona"),
        "MarkovChain": lambda: markov.markov_chain(ds),
        "PathVariants": lambda: routes.path_variants(ds),
        "RegressionEffect": lambda: routes.regression_effect(ds, min_deals=1),
        "TransitionMatrix": lambda: transitions.transition_matrix(ds),
        "CompetingDrivers": lambda: competing.competing_drivers(ds, ["persona", "channel"]),
        "WinDrivers": lambda: model.win_drivers(ds, ["persona", "channel"]),
        "ReasonPareto": lambda: reasons.reason_pareto(ds),
        "WinRates": lambda: winrates.win_rates(ds, "persona"),
        "UnivariateDrivers": lambda: winrates.univariate_drivers(ds),
        "Attribution": lambda: attribution.attribution(ds),
        "CustomerProfile": lambda: customers.customer_profile(ds),
        "FitScores": lambda: customers.fit_scores(ds),
        "FitScoreBacktest": lambda: customers.fit_score_backtest(ds),
        "BuyingRoles": lambda: roles.buying_roles(ds),
        "TouchpointSummary": lambda: touchpoints.touchpoint_summary(ds),
        "JourneyFacts": persona_facts,
        "PersonaComparison": lambda: render.compare_personas(persona_facts(), "Procurement", "Executive sponsor"),
    }
    return build[name]()


def _result_classes() -> dict[str, type]:
    """Every public class defined in the result modules, helpers aside."""
    out = {}
    for module in MODULES:
        mod = importlib.import_module(f"workbench.{module}")
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__ and not name.startswith("_") and name not in HELPERS \
                    and not issubclass(cls, (Exception, Warning)):
                out[name] = cls
    return out


NAMES = sorted(_result_classes())


@pytest.fixture(scope="module")
def ds():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=1_500, seed="results-protocol", truth_deals=1_000).dataset()


@pytest.fixture(scope="module")
def results(ds):
    cache = {}

    def get(name):
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[name] = _build(name, ds)
        return cache[name]

    return get


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_every_result_class_follows_the_protocol():
    """A new public class in a result module is a `Result` (or a named helper), so it cannot skip the protocol."""
    classes = _result_classes()
    assert len(classes) >= 28
    assert not [n for n, c in classes.items() if not issubclass(c, Result)]


@pytest.mark.parametrize("name", NAMES)
def test_result_has_a_tidy_table_notes_and_findings(name, results):
    """``table`` is a non-empty DataFrame, ``notes`` a list of str, ``findings()`` a list of non-empty str."""
    result = results(name)
    assert type(result).__name__ == name
    assert isinstance(result.table, pd.DataFrame) and not result.table.empty
    assert isinstance(result.notes, list) and all(isinstance(n, str) for n in result.notes)
    said = result.findings()
    assert isinstance(said, list) and said
    assert all(isinstance(s, str) and s.strip() for s in said)


@pytest.mark.parametrize("name", NAMES)
def test_result_plots_on_the_given_axes_or_a_new_one(name, results):
    """``plot(ax=ax)`` draws on ``ax`` and returns it; ``plot()`` returns a new axes."""
    result = results(name)
    _, ax = plt.subplots()
    assert result.plot(ax=ax) is ax
    assert ax.lines or ax.patches or ax.collections or ax.images or ax.texts
    new = result.plot()
    assert new is not ax and new.figure is not ax.figure


@pytest.mark.parametrize("name", NAMES)
def test_result_displays_its_table(name, results):
    """``_repr_html_()`` shows the table (its first column name is in it, or the wide display's rows' name)."""
    result = results(name)
    assert WIDE_DISPLAY.get(name, str(result.table.columns[0])) in result._repr_html_()
