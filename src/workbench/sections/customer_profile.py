"""The sections of `notebooks/customer_profile.ipynb`: the ideal customer profile, fit scores and
their backtest, buying roles, touchpoints and attribution."""
from __future__ import annotations

import pandas as pd

from . import needs
from .base import Need, Section, section
from .common import SQUARE, WIDE, new_axes


@needs.label("`account_id` on deals")
def account_ids(settings) -> Need:
    """Deals that name their account, so that customers can be told apart."""
    deals = settings.dataset.deals
    if "account_id" in deals and deals["account_id"].notna().any():
        return Need(True)
    return Need(False, "This part needs to know which account each deal belongs to, which these deals do not "
                       "say: map the export's account or company id as `account_id` under `deals: columns:` in "
                       "dataset.yaml (and, for firmographics, add an `accounts:` table).")


@section("Who the best customers are", needs=(needs.won_deals, account_ids))
def profile(out: Section, settings):
    """Traits over-represented among won customers, with lifts and intervals."""
    from ..profile.customers import customer_profile

    result = customer_profile(settings.dataset)
    out.text("Each trait's share among won customers against its share among all prospects (lift), with 95% "
             "intervals. Only lifts whose interval lies above 1 become sentences.")
    out.sentences(result.findings(), key=2)
    out.figure(result.plot(ax=new_axes(WIDE)), alt="Lift of each trait level among won customers, with intervals.")
    shares = [c for c in result.table.columns if c.startswith("share_")]
    out.table(result.table.rename(columns={"trait": "Trait", "level": "Level", "won_customers": "Won customers"}),
              percent=shares, detail=True, caption="Each trait level among won customers and among all prospects:")
    out.notes.extend(result.notes)
    return result


@section("Fit score of open deals", needs=(needs.dates, needs.open_deals, needs.won_deals))
def fit_scores(out: Section, settings):
    """The drivers model's win probability for each open deal: the ten best."""
    from ..profile.customers import fit_scores as score

    scores = score(settings.dataset, mature_days=settings.mature_days)
    out.text("The win probability the drivers model gives each open deal (its fit with the deals that won), "
             "highest first.")
    deals = scores.deals
    out.table(deals.sort_values(deals.columns[-1], ascending=False).head(10), caption="The ten best-fitting open deals:")
    out.notes.extend(scores.notes)
    return scores


@section("Backtest of the fit score", needs=(needs.dates, needs.calendar, needs.won_deals))
def fit_score_backtest(out: Section, settings):
    """Scored at an earlier cut-off: did high-score deals win more often afterwards?"""
    from ..profile.customers import fit_score_backtest as replay

    mature = settings.mature_days or settings.horizon  # every deal closed: judge the backtest at the horizon
    cut = settings.dataset.as_of - pd.Timedelta(days=mature)
    result = replay(settings.dataset, cut, mature_days=mature)
    out.text(f"The score fitted on the data as they were {settings.unit(mature)} before the cut-off, applied to the "
             "deals open then: did high-score deals win more often afterwards?")
    out.sentences(result.findings())
    out.figure(result.plot(ax=new_axes(SQUARE)), alt="Win rate of the backtest's open deals by score quintile.")
    out.notes.extend(result.notes)
    return result


@section("Buying roles", needs=(needs.table("contacts"), needs.closed_deals))
def buying_roles(out: Section, settings):
    """Win rates of closed deals with and without a decision maker; people and roles per deal."""
    from ..profile.roles import DECISION_MAKER
    from ..profile.roles import buying_roles as roles

    role = settings.decision_role or DECISION_MAKER
    result = roles(settings.dataset, decision_role=role)
    out.text(f"Win rates of closed deals with and without a decision maker (a contact whose role is "
             f"“{role}”) among the contacts, and how many people and roles take part.")
    out.sentences(result.findings(), key=True)
    out.figure(result.plot(ax=new_axes(WIDE)), alt="Win rate of closed deals with and without a decision maker.")
    out.table(result.decision_maker, detail=True)
    out.notes.extend(result.notes)
    return result


@section("Touchpoints", needs=(needs.dates, needs.table("touchpoints"), needs.closed_deals))
def touchpoints(out: Section, settings):
    """Touches per deal by channel for won and lost deals, and what comes before a stage advance."""
    from ..profile.touchpoints import touchpoint_summary

    result = touchpoint_summary(settings.dataset, window_days=settings.touch_window_days)
    out.text("Touches per deal by channel for won and lost deals.")
    out.figure(result.plot(ax=new_axes(WIDE)), alt="Touches per deal by channel, won against lost deals.")
    if len(result.advance):
        out.text(f"Which channels come in the {settings.unit(settings.touch_window_days)} before a stage advance "
                 "more often than usual (lift above 1):")
        advance = result.advance.head(10).rename(columns={"dimension": "Attribute", "level": "Level",
                                                          "window_touches": "Touches before an advance",
                                                          "window_total": "All touches before an advance",
                                                          "window_share": "Share before an advance",
                                                          "overall_touches": "Touches overall",
                                                          "overall_total": "All touches overall",
                                                          "overall_share": "Share overall"})
        out.table(advance, percent=["Share before an advance", "ci_low", "ci_high", "Share overall"])
    return result


@section("Attribution of wins to channels", needs=(needs.dates, needs.table("touchpoints"), needs.won_deals))
def attribution(out: Section, settings):
    """Six attribution models side by side."""
    from ..profile.attribution import attribution as credit

    result = credit(settings.dataset, half_life_days=settings.half_life_days)
    out.text("Six models side by side: first touch, last touch, linear, time decay, position-based and the Markov "
             "removal effect. Where they agree, the credit is robust.")
    out.figure(result.plot(ax=new_axes(WIDE)), alt="Share of won deals credited to each channel by each model.")
    out.table(result.wide().rename(columns={"first_touch": "First touch", "last_touch": "Last touch",
                                            "time_decay": "Time decay", "position_based": "Position-based",
                                            "markov": "Markov removal"}),
              caption="Won deals credited to each channel, by model:")
    out.notes.extend(result.notes)
    return result
