"""Win/loss drivers (`notebooks/win_loss_drivers.ipynb`): the mature cohort (cohort), win rates one
attribute at a time (winrates), the logistic model (model), the Fine-Gray model on every deal (competing), loss
and win reasons (reasons)."""
from .cohort import mature_cohort
from .competing import CompetingDrivers, competing_drivers
from .model import WinDrivers, win_drivers
from .reasons import reason_pareto
from .winrates import univariate_drivers, win_rates

__all__ = ["mature_cohort", "CompetingDrivers", "competing_drivers", "WinDrivers", "win_drivers", "reason_pareto", "univariate_drivers", "win_rates"]
