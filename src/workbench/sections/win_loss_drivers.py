"""The sections of `notebooks/win_loss_drivers.ipynb`: win rates one attribute at a time, the model of all
attributes together (the mature-cohort logistic model, or Fine-Gray on every deal when that cohort is small), and
the reasons deals are lost and won."""
from __future__ import annotations

import pandas as pd

from .. import plots
from . import needs
from .base import Section, section
from .common import WIDE, new_axes, require_columns

#: Attributes whose win rates are shown level by level (the most significant first).
SHOWN_ATTRIBUTES = 3


@section("One attribute at a time", needs=(needs.won_deals,))
def win_rates(out: Section, settings, min_level: int = 30):
    """Per attribute, a chi-square (or Fisher) test of the win rate, corrected; the top ones level by level."""
    from ..drivers.winrates import univariate_drivers

    result = univariate_drivers(settings.dataset, mature_days=settings.mature_days, min_level=min_level)
    table = result.table
    out.text("The win rate of each level against the overall rate (lift), with chi-square or Fisher tests corrected "
             "for testing many attributes.")
    significant = table[table["p_adjusted"] < 0.05]
    out.sentences(result.findings(alpha=0.05))
    out.table(table.rename(columns={"column": "Attribute", "levels": "Levels", "n": "Deals", "test": "Test",
                                    "statistic": "Statistic", "df": "df", "p_value": "p",
                                    "p_adjusted": "Corrected p"}))
    for column in list(significant["column"])[:SHOWN_ATTRIBUTES]:
        rates = result.rates[column].table
        out.table(rates.rename(columns={"level": column, "n": "Deals", "won": "Won", "win_rate": "Win rate",
                                        "ci_low": "95% CI low", "ci_high": "95% CI high", "lift": "Lift"}),
                  caption=f"Win rate by `{column}`:")
    out.notes.extend(result.notes)
    return result


@section("All attributes together", needs=(needs.won_deals,))
def model(out: Section, settings, min_level: int = 30):
    """The model that fits the data: the mature-cohort logistic model when that cohort is large enough, else a
    Fine-Gray model of winning on every deal (`workbench.drivers.competing.choose_model`); both side by side in
    the methods detail."""
    from ..drivers.competing import choose_model, competing_drivers
    from ..drivers.model import win_drivers

    dataset = settings.dataset
    columns = settings.driver_columns
    if columns:
        require_columns(dataset, columns, "driver_columns")
    covariates = list(columns) if columns else None

    def logistic():
        return win_drivers(dataset, covariates, mature_days=settings.mature_days, min_level=min_level)

    def fine_gray():
        return competing_drivers(dataset, covariates, min_level=min_level)

    choice, reason = choose_model(dataset, settings.mature_days)
    if choice == "logistic":
        drivers, other = logistic(), _quietly(fine_gray)
        _show_logistic(out, drivers, reason)
        both = (drivers, other)
    else:
        drivers, other = fine_gray(), _quietly(logistic)
        _show_fine_gray(out, drivers, reason)
        both = (other, drivers)
    if other is None:
        out.text(f"{reason} The other model cannot be fitted on these data, so there is no comparison.")
    else:
        out.table(side_by_side(*both), detail=True,
                  caption=f"Methods: both models side by side. {reason} The logistic regression compares deals old "
                          "enough to judge (won within the horizon or not); the Fine-Gray model uses every deal.")
    cohort = {"model": choice, "reason": reason, "mature_days": settings.mature_days, "deals": drivers.n,
              "won": drivers.won, "method": drivers.method}
    if choice == "logistic":
        cohort["cv_auc"] = drivers.cv_auc
    else:
        cohort.update(lost=drivers.lost, open=drivers.open)
    key = "odds_ratio" if choice == "logistic" else "ratio"
    named = "odds_ratio" if choice == "logistic" else "subdistribution_hazard_ratio"
    out.record(drivers=[{"feature": row["feature"], "level": row["level"], named: row[key], "ci_low": row["ci_low"],
                         "ci_high": row["ci_high"], "p_value": row["p_value"]}
                        for row in drivers.table.to_dict("records")],
               drivers_cohort=cohort)
    return drivers


def _quietly(fit):
    """The other model, its caveats kept out of this section's notes; None when it cannot be fitted (it is only
    the comparison in the methods detail, so its failure must not take the shown model down with it)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fit()
        except Exception:  # noqa: BLE001 - the comparison is optional; the sentence says it is missing
            return None


def side_by_side(logistic, fine_gray) -> pd.DataFrame:
    """The two models' ratios per attribute level, with their intervals (a level one model lacks is empty)."""
    frames = []
    for result, prefix, key in ((fine_gray, "Fine-Gray", "ratio"), (logistic, "Logistic", "odds_ratio")):
        if result is None:
            continue
        frames.append(result.table[["feature", "level", key, "ci_low", "ci_high"]].rename(columns={
            key: f"{prefix}: {'rate ratio' if key == 'ratio' else 'odds ratio'}", "ci_low": f"{prefix}: 95% CI low",
            "ci_high": f"{prefix}: 95% CI high"}))
    table = frames[0]
    for frame in frames[1:]:
        table = table.merge(frame, on=["feature", "level"], how="outer", sort=False)
    return table.rename(columns={"feature": "Attribute", "level": "Level"})


def _show_logistic(out: Section, drivers, reason: str) -> None:
    out.text("Odds ratios from a logistic regression: above 1, deals with that level win more often than deals at "
             "the reference level, other things equal. Grey intervals are not significant. Columns measured during "
             "the sale leak the outcome and are held out.", reason)
    out.figure(plots.odds_ratios(drivers, ax=new_axes(WIDE)),
               alt="Odds ratios of winning with 95% confidence intervals, one row per attribute level.")
    out.sentences(drivers.findings(alpha=0.05), key=True)
    out.table(drivers.table[["feature", "level", "odds_ratio", "ci_low", "ci_high", "p_value", "n"]].rename(
        columns={"feature": "Attribute", "level": "Level", "odds_ratio": "Odds ratio", "ci_low": "95% CI low",
                 "ci_high": "95% CI high", "p_value": "p", "n": "Deals"}))
    _held_out(out, drivers)
    out.text(f"How far to trust the model: a cross-validated AUC of {drivers.cv_auc:.2f} (0.5 is a coin flip, 1 a "
             "perfect ranking of won above other deals), and predicted against observed win rates by decile:")
    out.table(drivers.calibration.rename(columns={"decile": "Decile", "n": "Deals", "mean_predicted": "Predicted",
                                                  "observed_rate": "Observed", "ci_low": "95% CI low",
                                                  "ci_high": "95% CI high"}))
    out.notes.extend(n for n in drivers.notes if "held out" not in n)


def _show_fine_gray(out: Section, drivers, reason: str) -> None:
    out.text("How much faster the share of deals won rises with each attribute level, against the reference level, "
             "other things equal: above 1, those deals win sooner or more often (a ratio of the rates of winning "
             "from a Fine-Gray model). Every deal counts: a lost deal can no longer win, and an open deal counts for "
             "as long as it has been open. Grey intervals are not significant. Columns measured during the sale leak "
             "the outcome and are held out.", reason)
    out.figure(drivers.plot(ax=new_axes(WIDE)),
               alt="Ratios of the rate of winning with 95% confidence intervals, one row per attribute level.")
    out.sentences(drivers.findings(), key=True)
    out.table(drivers.table[["feature", "level", "ratio", "ci_low", "ci_high", "p_value", "n"]].rename(
        columns={"feature": "Attribute", "level": "Level", "ratio": "Rate ratio", "ci_low": "95% CI low",
                 "ci_high": "95% CI high", "p_value": "p", "n": "Deals"}))
    _held_out(out, drivers)
    out.notes.extend(n for n in drivers.notes if "held out" not in n)


def _held_out(out: Section, drivers) -> None:
    if drivers.held_out:
        out.table(pd.DataFrame({"Column": list(drivers.held_out), "Why it is held out": list(drivers.held_out.values())}),
                  caption="Columns considered and held out:")


def _pareto(out: Section, settings, column: str, outcome: str):
    from ..drivers.reasons import reason_pareto

    overall = reason_pareto(settings.dataset, column)
    table = overall.table
    if len(table):
        out.sentences(overall.findings(), key=True)
    names = {"reason": "Reason", "count": "Deals", "share": "Share", "cumulative_share": "Cumulative share",
             "deals": "Of", "stage": "Stage"}
    out.table(table.rename(columns=names))
    if needs.stage_history(settings).ok:
        by_stage = reason_pareto(settings.dataset, column, by="stage")
        out.table(by_stage.table.rename(columns=names), caption="By the stage the deal was in when it closed:")
    out.notes.extend(overall.notes)
    return overall


@section("Why deals are lost", needs=(needs.lost_deals, needs.loss_reasons))
def loss_reasons(out: Section, settings):
    """Loss reasons ranked, overall and by the stage the deal was lost in."""
    out.text("Loss reasons ranked, overall and by the stage the deal was lost in. Lost deals without a reason count "
             "as “(missing)”, so the shares add up to all lost deals.")
    return _pareto(out, settings, "loss_reason", "lost")


@section("Why deals are won", needs=(needs.won_deals, needs.column("win_reason", "win reasons",
                                                                  "map the export's win-reason column as "
                                                                  "`win_reason` under `deals: columns:` in "
                                                                  "dataset.yaml.")))
def win_reasons(out: Section, settings):
    """Win reasons ranked, overall and by the stage."""
    out.text("Win reasons ranked. Won deals without a reason count as “(missing)”.")
    return _pareto(out, settings, "win_reason", "won")
