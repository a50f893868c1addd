"""Cycle time (`notebooks/cycle_time.ipynb`): time to close with won and lost competing (times),
time in stage (dwell), the open-pipeline forecast and its backtest (forecast)."""
from .dwell import stage_dwell
from .forecast import backtest, forecast_open
from .times import CycleTimes, compare_segments, cycle_times, durations, speed_drivers

__all__ = ["stage_dwell", "backtest", "forecast_open", "CycleTimes", "compare_segments", "cycle_times", "durations",
           "speed_drivers"]
