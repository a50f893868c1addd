"""Durations in the unit a reader expects: hours for processes that take hours, days otherwise.

Every analysis counts time in days (floats). A process log or an inbound-lead queue closes in
hours, where "1 days (95% CI 1-1)" or "0 days" would say nothing; `unit_for` picks hours when
the typical closed deal takes under `HOURS_BELOW` days, and `TimeUnit` formats and converts.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

#: A median time to close under this many days is shown in hours.
HOURS_BELOW = 3.0
#: Round durations, in days, that horizons and windows are chosen from.
LADDER = (1 / 24, 2 / 24, 3 / 24, 4 / 24, 6 / 24, 8 / 24, 12 / 24, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90,
          120, 180, 270, 365, 540, 730, 1095, 1460, 1825)


@dataclass(frozen=True)
class TimeUnit:
    """``days`` or ``hours``: ``per_day`` units in a day."""

    name: str = "days"

    @property
    def per_day(self) -> float:
        return 24.0 if self.name == "hours" else 1.0

    @property
    def singular(self) -> str:
        return self.name[:-1]

    def value(self, days: float) -> float:
        """A duration in days, in this unit."""
        return float(days) * self.per_day

    def number(self, days: float) -> str:
        """The number alone: whole units from 10 up, one decimal below (``3.5``), ``not reached`` if infinite."""
        if days is None or not math.isfinite(days):
            return "not reached"
        x = self.value(days)
        if x >= 10 or (self.name == "days" and x >= 1):
            return f"{x:,.0f}"
        return f"{x:.1f}".rstrip("0").rstrip(".")

    def __call__(self, days: float) -> str:
        """``12 days``, ``1 day``, ``3.5 hours``, ``not reached``."""
        text = self.number(days)
        if text == "not reached":
            return text
        return f"{text} {self.singular if text == '1' else self.name}"

    def interval(self, low: float, high: float) -> str:
        """``81-88 days``, ``2.5-4.0 hours``, ``81 days to not yet reached``."""
        if high is None or not math.isfinite(high):
            return f"{self(low)} to not yet reached"
        return f"{self.number(low)}-{self.number(high)} {self.name}"

    def label(self, what: str = "Days") -> str:
        """An axis or column label with the unit: ``Days since created`` -> ``Hours since created``."""
        return what.replace("Days", self.name.capitalize()).replace("days", self.name)


DAYS, HOURS = TimeUnit("days"), TimeUnit("hours")


def unit_for(durations) -> TimeUnit:
    """Hours when the median of ``durations`` (days, e.g. of closed deals; missing and infinite ones left out) is
    under `HOURS_BELOW` days."""
    if isinstance(durations, (list, tuple)):  # a few figures (a run's headlines): no numpy to import
        values = [float(v) for v in durations if v is not None]
        values = [v for v in values if math.isfinite(v)]
        median = statistics.median(values) if values else None
    else:
        import numpy as np

        values = np.asarray(durations, dtype=float)
        values = values[np.isfinite(values)]
        median = float(np.median(values)) if len(values) else None
    return HOURS if median is not None and median < HOURS_BELOW else DAYS


def round_up(days: float) -> float:
    """The smallest round duration (`LADDER`) at or above ``days``; the largest one beyond it."""
    return next((step for step in LADDER if step >= days - 1e-9), LADDER[-1])


def round_down(days: float) -> float:
    """The largest round duration (`LADDER`) at or below ``days``; the smallest one below it."""
    return next((step for step in reversed(LADDER) if step <= days + 1e-9), LADDER[0])


def ladder_between(low: float, high: float) -> list[float]:
    """Round durations from ``low`` to ``high``, both included when round."""
    return [step for step in LADDER if low - 1e-9 <= step <= high + 1e-9]



def span(days: float) -> str:
    """One duration given in days, in the unit that reads best on its own: ``365 days``, ``1 day``,
    ``6 hours`` (hours below a day, or for a fraction of a day under `HOURS_BELOW` days)."""
    if days is None or not math.isfinite(days):
        return "not reached"
    return (HOURS if days < 1 or (days < HOURS_BELOW and days != round(days)) else DAYS)(days)
