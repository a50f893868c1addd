"""The settings a notebook runs with: given as parameters, or chosen from the data.

Every notebook parameter that depends on the data's time scale or columns defaults to
"choose from the data" (an empty string, 0 or an empty list), so that the shipped
notebooks give a whole report on any export that validates, and the report says what
was used and why:

- ``segment_by``: the first deal column, persona and channel first, with at least two
  groups of ``min_deals`` deals (inside a persona segment, persona has one group, so the
  split column is never chosen there); none: comparisons say there is nothing to compare.
- ``horizon``: 90% of the deals that closed did so within it (rounded up to a round
  duration, and no longer than the longest follow-up).
- ``days``: about a twelfth, a quarter, a half and the whole of the horizon, rounded down.
- ``mature_days``: the horizon, shortened while the mature cohort is too small to compare.
- ``window_days``: a sixth of the horizon; ``forecast_window``: a quarter of it.
- ``speed_covariates``: the comparison column, up to two more short categorical attributes,
  and the amount.

Durations are in days throughout; ``unit`` (hours or days) is only how they are shown.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..dataset.model import Dataset
from ..timeunits import DAYS, TimeUnit, round_down, round_up, unit_for

#: Columns tried first for comparisons, in order; then any other suitable attribute.
PREFERRED = ("persona", "channel", "segment", "region", "industry", "product", "lead_source", "source", "type")
#: A comparison column has at most this many groups of ``min_deals`` deals.
MAX_GROUPS = 12
#: A mature cohort needs this many deals, and this many on each side of the outcome.
MIN_COHORT, MIN_COHORT_EVENTS = 50, 10
#: The share of closed deals the chosen horizon covers.
HORIZON_QUANTILE = 0.9
#: Windows chosen as a fraction of the horizon: the name, how many parts, and what the window is for.
FRACTIONS = {
    "window_days": (6, "a sixth of the horizon: \"moved on within\" this long"),
    "forecast_window": (4, "a quarter of the horizon: the open pipeline is forecast this far ahead"),
    "touch_window_days": (24, "touches this long before a stage advance count as before it"),
    "half_life_days": (48, "time-decay attribution: a touch this long before the close counts half"),
}


@dataclass(frozen=True)
class Settings:
    """The dataset and every setting a notebook's sections read; ``None``: not used, or none fits.

    ``explained`` holds one sentence per setting: its value and whether it was given or
    chosen from the data (and how).
    """

    dataset: Dataset
    min_deals: int = 30
    unit: TimeUnit = DAYS
    segment_by: str | None = None
    horizon: float | None = None
    days: tuple = ()
    mature_days: float | None = None
    window_days: float | None = None
    forecast_window: float | None = None
    backtest_cut: pd.Timestamp | None = None
    speed_covariates: tuple = ()
    driver_columns: tuple | None = None
    persona_column: str | None = None
    touch_window_days: float | None = None
    half_life_days: float | None = None
    decision_role: str | None = None
    scope: str = ""
    explained: tuple = field(default=())

    @property
    def everyone(self) -> str:
        """How the report names all its deals: ``All deals``, or ``All Procurement deals`` in a segment."""
        return f"All {self.scope} deals" if self.scope else "All deals"

    def as_record(self) -> dict:
        """The settings this notebook used, for `summary.json` (durations in days; unused ones left out)."""
        values = {"segment_by": self.segment_by, "horizon_days": self.horizon, "days": list(self.days) or None,
                  "mature_days": self.mature_days, "window_days": self.window_days,
                  "forecast_window_days": self.forecast_window, "touch_window_days": self.touch_window_days,
                  "half_life_days": self.half_life_days, "speed_covariates": list(self.speed_covariates) or None,
                  "driver_columns": list(self.driver_columns) if self.driver_columns else None,
                  "backtest_cut": None if self.backtest_cut is None else str(self.backtest_cut.date()),
                  "time_unit": self.unit.name}
        return {k: v for k, v in values.items() if v is not None}


class _Unset:
    def __repr__(self):
        return "<not used>"


#: A setting this notebook does not use (distinct from "choose it from the data").
UNUSED = _Unset()


def choose_settings(dataset: Dataset, *, scope: str = "", min_deals: int = 30, segment_by=UNUSED, horizon=UNUSED, days=UNUSED,
                    mature_days=UNUSED, window_days=UNUSED, forecast_window=UNUSED, backtest_cut=UNUSED,
                    speed_covariates=UNUSED, driver_columns=UNUSED, persona_column=UNUSED, touch_window_days=UNUSED,
                    half_life_days=UNUSED, decision_role=UNUSED) -> Settings:
    """Resolve a notebook's parameters against ``dataset``: empty values are chosen from the data.

    Pass only the parameters the notebook has; ``""``, ``0`` and ``[]`` mean "choose".
    """
    closed = _closed_durations(dataset)
    unit = unit_for(closed)
    said: list[str] = []
    values: dict = {"min_deals": int(min_deals), "unit": unit, "scope": scope}
    if segment_by is not UNUSED:
        values["segment_by"] = _segment_by(dataset, segment_by, min_deals, said)
    needs_horizon = any(v is not UNUSED for v in (horizon, days, mature_days, window_days, forecast_window,
                                                  touch_window_days, half_life_days))
    h = _horizon(dataset, closed, horizon if horizon is not UNUSED else 0, unit, said,
                 quiet=horizon is UNUSED) if needs_horizon else None
    if needs_horizon:
        values["horizon"] = h
    if days is not UNUSED and h is not None:
        values["days"] = _days(days, h, unit, said)
    if mature_days is not UNUSED:
        values["mature_days"] = _mature_days(dataset, mature_days, h, unit, said)
    given_fractions = {"window_days": window_days, "forecast_window": forecast_window,
                       "touch_window_days": touch_window_days, "half_life_days": half_life_days}
    for name, given in given_fractions.items():
        if given is not UNUSED and h is not None:
            parts, why = FRACTIONS[name]
            values[name] = _fraction(name, given, h, parts, unit, said, why)
    if backtest_cut is not UNUSED and "forecast_window" in values:
        values["backtest_cut"] = _backtest_cut(dataset, backtest_cut, values["forecast_window"], said)
    if speed_covariates is not UNUSED:
        values["speed_covariates"] = _speed_covariates(dataset, speed_covariates, values.get("segment_by"), said)
    if driver_columns is not UNUSED:
        values["driver_columns"] = tuple(driver_columns) or None
        if driver_columns:
            said.append(f"Win drivers: {_names(driver_columns)} (`driver_columns`).")
    if decision_role is not UNUSED:
        values["decision_role"] = _decision_role(dataset, decision_role, said)
    if persona_column is not UNUSED:
        values["persona_column"] = persona_column if persona_column in dataset.deals else None
    return Settings(dataset=dataset, explained=tuple(said), **{k: _tidy(v) for k, v in values.items()})


def _tidy(value):
    """Whole-number durations as ints (``180``, not ``180.0``), in tuples too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
        return tuple(_tidy(v) for v in value)
    return value


def _names(columns) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def _closed_durations(dataset: Dataset) -> np.ndarray:
    deals = dataset.deals
    closed = deals[deals["outcome"].isin(("won", "lost")) & deals["closed_at"].notna() & deals["created_at"].notna()]
    return ((closed["closed_at"] - closed["created_at"]) / pd.Timedelta(days=1)).clip(lower=0).to_numpy()


def comparable_columns(dataset: Dataset, min_deals: int) -> list[str]:
    """Deal attributes with 2 to `MAX_GROUPS` groups of ``min_deals`` deals, preferred ones first.

    Columns whose names mark them as measured during the sale (reasons, stages, days...) are
    left out, as the win/loss models leave them out.
    """
    from ..drivers.cohort import leaky_word

    deals = dataset.deals
    found = []
    for name in dataset.attributes:
        values = deals[name]
        if leaky_word(name) or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            continue
        sizes = values.value_counts()
        groups = int((sizes >= min_deals).sum())
        if 2 <= groups <= MAX_GROUPS:
            found.append(name)
    rank = {name: i for i, name in enumerate(PREFERRED)}
    return sorted(found, key=lambda n: (rank.get(n.lower(), len(rank)), found.index(n)))


def _segment_by(dataset, given, min_deals, said) -> str | None:
    if given:
        said.append(f"Segments are compared by `{given}` (`segment_by`).")
        return given
    found = comparable_columns(dataset, min_deals)
    if not found:
        said.append(f"No deal column has two or more groups of at least {min_deals} deals, so the comparisons of "
                    "segments are left out (set `segment_by` to choose a column).")
        return None
    said.append(f"Segments are compared by `{found[0]}`, the first deal column with two or more groups of at least "
                f"{min_deals} deals (set `segment_by` to choose another).")
    return found[0]


def run_horizon(dataset: Dataset) -> float | None:
    """The horizon `choose_settings` picks on all of ``dataset`` (``None`` when no deal closed): a run
    gives it to every segment, so that their shares won are read at the same point and compare."""
    closed = _closed_durations(dataset)
    return _horizon(dataset, closed, 0, unit_for(closed), [], quiet=True)


def _horizon(dataset, closed, given, unit, said, *, quiet: bool) -> float | None:
    if given:
        if not quiet:
            said.append(f"Horizon: {unit(given)} (`horizon`).")
        return float(given)
    if not len(closed):
        return None
    covering = float(np.quantile(closed, HORIZON_QUANTILE))
    deals = dataset.deals
    follow_up = float(((deals["closed_at"].fillna(dataset.as_of) - deals["created_at"]) / pd.Timedelta(days=1)).max())
    chosen = round_up(covering)
    if chosen > follow_up > 0:
        chosen = round_down(follow_up)
    if not quiet:
        said.append(f"Horizon: {unit(chosen)}; {100 * HORIZON_QUANTILE:.0f}% of the deals that closed did so within "
                    f"{unit(covering)} (set `horizon` to change it).")
    return chosen


def _days(given, horizon, unit, said) -> tuple:
    if given:
        return tuple(float(d) for d in given)
    chosen = tuple(dict.fromkeys(round_down(horizon * f) for f in (1 / 12, 1 / 4, 1 / 2)))
    chosen = tuple(d for d in chosen if d < horizon) + (horizon,)
    said.append(f"The share won is read at {', '.join(unit(d) for d in chosen)} (set `days` to change them).")
    return chosen


def _mature_days(dataset, given, horizon, unit, said) -> float | None:
    if given:
        said.append(f"Mature cohort: deals created at least {unit(given)} before the cut-off (`mature_days`).")
        return float(given)
    if not dataset.deals["created_at"].notna().any():
        said.append("The data have no dates, so the win/loss comparisons use every closed deal; deals still open "
                    "are left out.")
        return None
    deals = dataset.deals
    if not deals["outcome"].eq("open").any():
        said.append("Every deal here is closed, so the win/loss comparisons use every deal's final outcome "
                    "(set `mature_days` to judge deals by a fixed horizon instead).")
        return None
    if horizon is None:
        return None
    age = (dataset.as_of - deals["created_at"]) / pd.Timedelta(days=1)
    took = (deals["closed_at"] - deals["created_at"]) / pd.Timedelta(days=1)
    for candidate in [horizon] + [d for d in reversed(_ladder_below(horizon))]:
        mature = age >= candidate
        won = (deals["outcome"].eq("won") & (took <= candidate))[mature]
        if mature.sum() >= MIN_COHORT and won.sum() >= MIN_COHORT_EVENTS and (~won).sum() >= MIN_COHORT_EVENTS:
            reason = "the horizon" if candidate == horizon else (
                f"shorter than the horizon, so that enough deals are old enough ({int(mature.sum()):,})")
            said.append(f"Mature cohort: deals created at least {unit(candidate)} before the cut-off, outcome "
                        f"\"won within {unit(candidate)}\" ({reason}; set `mature_days` to change it).")
            return float(candidate)
    said.append(f"Too few deals are old enough for a mature cohort at any horizon up to {unit(horizon)}; "
                "the win/loss comparisons say so.")
    return float(horizon)


def _ladder_below(horizon: float) -> list[float]:
    from ..timeunits import LADDER

    return [d for d in LADDER if d < horizon and d >= horizon / 12]


def _fraction(name, given, horizon, parts, unit, said, why) -> float:
    if given:
        said.append(f"`{name}`: {unit(given)}.")
        return float(given)
    chosen = round_down(horizon / parts)
    said.append(f"`{name}`: {unit(chosen)}, {why} (set `{name}` to change it).")
    return chosen


def _backtest_cut(dataset, given, window, said) -> pd.Timestamp | None:
    if given:
        return pd.Timestamp(given)
    if pd.isna(dataset.as_of):
        return None
    return dataset.as_of - pd.Timedelta(days=2 * window)


def _decision_role(dataset, given, said) -> str:
    """The contact role that marks a decision maker: given, or the role whose name says "decision"."""
    from ..profile.roles import DECISION_MAKER

    if given:
        said.append(f"Decision makers are contacts with the role `{given}` (`decision_role`).")
        return given
    contacts = dataset.contacts
    roles = [] if contacts is None or "role" not in contacts else list(contacts["role"].dropna().unique())
    found = [r for r in roles if "decision" in str(r).lower()]
    chosen = found[0] if found else DECISION_MAKER
    if found:
        said.append(f"Decision makers are contacts with the role `{chosen}` (its name says so; set "
                    "`decision_role` to choose another).")
    return chosen


def _speed_covariates(dataset, given, segment_by, said) -> tuple:
    if given:
        said.append(f"Speed model covariates: {_names(given)} (`speed_covariates`).")
        return tuple(given)
    from ..drivers.cohort import candidate_columns

    chosen, _ = candidate_columns(dataset, dataset.deals)
    short = [c for c in chosen if c != "amount" and c in dataset.deals and dataset.deals[c].nunique() <= 8]
    ordered = [c for c in dict.fromkeys(([segment_by] if segment_by in short else []) + short)]
    picked = ordered[:3] + (["amount"] if "amount" in chosen else [])
    if picked:
        said.append(f"Speed model covariates: {_names(picked)} (chosen from the data: the comparison column, up to "
                    "two more deal attributes with few levels, and the amount; set `speed_covariates` to choose).")
    return tuple(picked)
