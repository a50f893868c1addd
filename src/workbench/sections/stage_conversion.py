"""The sections of `notebooks/stage_conversion.ipynb`: the funnel, eventual and windowed
conversion, segments against the rest, moves and routes, going back, the Markov view, cohorts."""
from __future__ import annotations

import pandas as pd

from ..funnel import plots as funnel_plots
from . import needs
from .base import Section, section
from .common import TALL, WIDE, new_axes

SEGMENT_COLUMNS = {"segment": "Segment", "transition": "Transition", "reached": "Reached", "open": "Still in stage",
                   "conversion": "Eventual conversion", "ci_low": "95% CI low", "ci_high": "95% CI high",
                   "count_ratio": "Advanced / reached"}


@section("The stage history", needs=(needs.dates, needs.stage_history))
def history_quality(out: Section, settings):
    """What was messy in the stage history, each issue counted with how the analyses treat it."""
    from ..dataset.history import history_quality as quality

    table = quality(settings.dataset)
    out.text("What was messy in the stage history: each issue counted, and how the analyses treat it.")
    out.table(table.rename(columns={"issue": "Issue", "rows": "Rows", "deals": "Deals", "handling": "How it is handled"}),
              detail=True)
    return table


@section("The funnel", needs=(needs.dates, needs.stage_history))
def funnel(out: Section, settings):
    """The funnel chart: reach per stage, eventual and windowed conversion, drop-off."""
    from ..funnel.conversion import funnel as build

    stages = build(settings.dataset, window_days=settings.window_days, min_deals=settings.min_deals)
    out.text("Bar width: deals that reached each stage (entered it or went past it) by the cut-off. Between the "
             "bars: the *eventual* share that moves on (Aalen-Johansen: deals still in the stage count for as long "
             f"as they were watched), the share that moved on within {settings.unit(settings.window_days)} (only "
             "entries at least that old), and the share lost.")
    out.figure(funnel_plots.funnel_chart(stages, unit=settings.unit, ax=new_axes(TALL)),
               alt="Funnel of deals reaching each stage, with conversion and drop-off between stages.")
    return stages


@section("Conversion per stage", needs=(needs.dates, needs.stage_history))
def conversion(out: Section, settings):
    """Eventual conversion of each transition per segment with its interval, beside the count ratio."""
    from ..funnel.conversion import stage_conversion

    result = stage_conversion(settings.dataset, by=settings.segment_by, min_deals=settings.min_deals)
    table = result.table
    out.text("Per segment, the eventual conversion of each transition with its 95% interval, beside the plain count "
             "ratio (advanced / reached), which counts deals still in the stage as lost and is too low.")
    out.table(table[list(SEGMENT_COLUMNS)].rename(columns=SEGMENT_COLUMNS),
              percent=["Eventual conversion", "95% CI low", "95% CI high", "Advanced / reached"])
    leak = result.findings()
    if leak:
        out.sentences(leak, key=True)
    out.record(stage_conversion=result.headline())
    return result


@section("Segments against the rest", needs=(needs.dates, needs.stage_history, needs.comparison))
def segments_against_rest(out: Section, settings):
    """Each segment against all other deals, transition by transition, on the windowed conversion."""
    from ..funnel.conversion import compare_conversion

    result = compare_conversion(settings.dataset, settings.segment_by, window_days=settings.window_days,
                                min_deals=settings.min_deals)
    out.text("Each segment against all other deals, transition by transition, on the windowed conversion (a plain "
             "proportion of entries all watched for the whole window, so a two-proportion test is valid). p-values "
             "are corrected for the number of tests (Benjamini-Hochberg); a difference is only called lower or "
             "higher below 0.05.")
    out.sentences(result.findings(unit=settings.unit))
    tested = result.table[result.table["p_adjusted"].notna()]
    out.table(tested.rename(columns={"segment": "Segment", "transition": "Transition", "eligible": "Entries",
                                     "conversion": "Conversion", "rest_conversion": "Rest", "difference": "Difference",
                                     "p_value": "p", "p_adjusted": "Corrected p"})
              [["Segment", "Transition", "Entries", "Conversion", "Rest", "Difference", "Corrected p"]],
              percent=["Conversion", "Rest", "Difference"], detail=True)
    return result


@section("Moves between stages", needs=(needs.dates, needs.stage_history))
def moves(out: Section, settings):
    """The transition heatmap and the moves by kind."""
    from ..funnel.transitions import transition_matrix

    matrix = transition_matrix(settings.dataset, min_deals=settings.min_deals)
    kinds = matrix.kinds()
    if not kinds["moves"].sum():
        out.text("No deal has moved between stages yet, so there are no moves to show.")
        return matrix
    out.text("Every move from one stage (rows) to the next state (columns), as a share of the row's moves: advancing "
             "sits right of the diagonal, going back left of it, skips further right.")
    out.figure(funnel_plots.transition_heatmap(matrix, ax=new_axes((8, 4.5))),
               alt="Heatmap of the share of moves from each stage to each next state.")
    out.table(kinds.rename(columns={"kind": "Kind of move", "moves": "Moves", "share": "Share"}), percent=["Share"])
    return matrix


@section("Flows", needs=(needs.dates, needs.stage_history))
def flows(out: Section, settings):
    """The moves as flows, step by step through each deal's history."""
    from ..funnel.routes import stage_flows

    result = stage_flows(settings.dataset)
    if result.empty:
        out.text("No deal has a route through the stages yet.")
        return result
    out.text("The same moves as flows, step by step through each deal's history: column 1 is where deals started, "
             "column 2 where they went next, and so on; bands going down to an earlier stage are regressions.")
    out.figure(funnel_plots.sankey(result, ax=new_axes((10, 6))),
               alt="Flows of deals between stages, step by step.")
    return result


@section("Routes", needs=(needs.dates, needs.stage_history))
def routes(out: Section, settings):
    """The most common routes through the open stages and how their closed deals ended."""
    from ..funnel.routes import path_variants

    variants = path_variants(settings.dataset, min_deals=settings.min_deals)
    out.text("The most common routes through the open stages (repeats collapsed) and how the closed deals on each "
             "ended. Open deals are still on their route: they are counted as open but not in the win rate.")
    out.figure(funnel_plots.path_variants_chart(variants, ax=new_axes(WIDE)),
               alt="The most common routes through the stages, with their deals won, lost and open.")
    table = variants.table.drop(columns=["segment"], errors="ignore")
    out.table(table.rename(columns={"route": "Route", "stages": "Stages", "regressed": "Goes back", "deals": "Deals",
                                    "won": "Won", "lost": "Lost", "open": "Open", "share": "Share of closed",
                                    "win_rate": "Win rate", "ci_low": "95% CI low", "ci_high": "95% CI high"}),
              percent=["Share of closed", "Win rate", "95% CI low", "95% CI high"], detail=True)
    return variants


@section("Going back a stage", needs=(needs.dates, needs.stage_history, needs.closed_deals))
def going_back(out: Section, settings):
    """Win rates of closed deals that went back a stage against those that never did."""
    from ..funnel.routes import regression_effect

    dataset = settings.dataset
    overall = regression_effect(dataset, min_deals=settings.min_deals)
    late = regression_effect(dataset, among=dataset.stages[-1], min_deals=settings.min_deals)
    out.text("Closed deals that went back a stage at least once against those that never did. Over all deals this "
             "mixes in survival (a deal must get past the first stage to go back), so the second table compares "
             f"only deals that reached {dataset.stages[-1]}.")
    columns = {"segment": "Segment", "went_back": "Went back", "share_went_back": "Share went back",
               "difference": "Win-rate difference", "odds_ratio": "Odds ratio", "p_value": "p",
               "p_adjusted": "Corrected p"}
    keep = [c for c in columns if c in overall.tests]
    out.table(overall.tests[keep].rename(columns=columns), caption="All deals:", detail=True)
    out.table(late.table.rename(columns={"segment": "Segment", "group": "Group", "deals": "Deals",
                                         "closed": "Closed", "won": "Won", "win_rate": "Win rate",
                                         "ci_low": "95% CI low", "ci_high": "95% CI high"}),
              caption=f"Deals that reached {dataset.stages[-1]}:", percent=["Win rate", "95% CI low", "95% CI high"])
    out.table(late.tests[keep].rename(columns=columns), detail=True)
    return overall, late


@section("From each stage: the odds of winning and the days left", needs=(needs.dates, needs.stage_history))
def markov(out: Section, settings):
    """The absorbing Markov chain per segment: P(win) and expected days left from each stage."""
    from ..funnel.markov import markov_chain

    unit = settings.unit
    chain = markov_chain(settings.dataset, by=settings.segment_by, min_deals=settings.min_deals)
    out.text("An absorbing Markov chain estimated from the observed moves (censoring-aware): from each stage, the "
             "probability of ending won, and the expected time until the deal closes. The chain is memoryless, so "
             "it gives every deal in a stage the same odds whatever its path.")
    table = chain.table
    shown = pd.DataFrame({"Segment": table["segment"], "Stage": table["stage"], "Visits": table["visits"],
                          "Win probability": table["p_won"], "95% CI low": table["ci_low"],
                          "95% CI high": table["ci_high"],
                          unit.label("Expected days to close"): table["expected_days"] * unit.per_day})
    said = chain.findings(unit=unit)
    if said:
        out.sentences(said)
    out.table(shown, percent=["Win probability", "95% CI low", "95% CI high"], detail=True)
    return chain


@section("The chain against mature cohorts", needs=(needs.dates, needs.stage_history, needs.closed_deals),
         builds_on="From each stage: the odds of winning and the days left")
def markov_against_cohorts(out: Section, settings, chain):
    """The chain's win probability from each stage against what mature cohorts did."""
    from ..funnel.markov import markov_check

    if settings.mature_days is None:
        out.text("There is no mature cohort to check the chain against.")
        return None
    check = markov_check(settings.dataset, by=settings.segment_by, mature_days=settings.mature_days,
                         min_deals=settings.min_deals, chain=chain)
    out.text(f"The chain against what mature cohorts (created at least {settings.unit(settings.mature_days)} before "
             "the cut-off) actually did.")
    out.figure(funnel_plots.markov_vs_cohort(check, ax=new_axes(WIDE)),
               alt="Win probability from each stage: Markov chain against the mature cohort's win rate.")
    return check


@section("Cohorts", needs=(needs.dates, needs.stage_history, needs.calendar))
def cohorts(out: Section, settings):
    """Eventual conversion by creation month."""
    from ..funnel.conversion import cohort_conversion

    mature = settings.mature_days if settings.mature_days is not None else settings.horizon
    result = cohort_conversion(settings.dataset, mature_days=mature, min_deals=settings.min_deals)
    if result.table.empty:
        out.text(f"No creation month has {settings.min_deals} deals or more, so there are no cohorts to compare.")
        return result
    out.text("Eventual conversion by the month deals were created, so that a change in the process shows up as a "
             f"change down the rows. Hatched months are younger than {settings.unit(mature)}: their numbers are "
             "conversions so far.")
    out.figure(funnel_plots.cohort_heatmap(result, unit=settings.unit, ax=new_axes((9, 7))),
               alt="Heatmap of eventual conversion per transition by creation month.")
    return result
