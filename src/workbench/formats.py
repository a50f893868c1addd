"""How numbers read in sentences and tables: shares, days, p-values, ratios, amounts and confidence levels.

One vocabulary for the findings (`workbench.findings`), the reports and the run's index
(`workbench.run.report`, `workbench.run.headlines`). The standard library only: the run and its workers
format their figures without importing numpy or pandas.
"""
from __future__ import annotations

import math


def percent(x: float) -> str:
    """A share as a whole percentage; ``<1%`` and ``>99%`` rather than 0% or 100% when not exact."""
    if not math.isfinite(x):
        return "n/a"
    if 0 < x < 0.005:
        return "<1%"
    if 0.995 < x < 1:
        return ">99%"
    return f"{100 * x:.0f}%"


def days(x: float) -> str:
    """Whole days; ``not reached`` where a curve never gets there (infinite)."""
    return f"{x:.0f}" if math.isfinite(x) else "not reached"


def p_value(p: float) -> str:
    """``p < 0.001`` or two significant digits."""
    if not math.isfinite(p):
        return "p not available"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def ratio(x: float) -> str:
    """A multiplier: two decimals below 1, one up to 10, none above (0.38, 1.8, 12); ``<0.01`` and
    ``>999`` at the extremes (a penalized fit's ratio of a level without events)."""
    if x < 0.005:
        return "<0.01"
    if x >= 999.5:
        return ">999"
    return f"{x:.2f}" if x < 1 else f"{x:.1f}" if x < 10 else f"{x:.0f}"


def amount(x: float) -> str:
    """Money without a currency, abbreviated (7.2M, 450k)."""
    for size, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.2g}{suffix}" if abs(x) < 10 * size else f"{x / size:,.0f}{suffix}"
    return f"{x:,.0f}"


def level(alpha: float) -> str:
    """``95% CI`` for alpha 0.05."""
    return f"{100 * (1 - alpha):g}% CI"
