"""Ideal customer profile (`notebooks/customer_profile.ipynb`): won customers' traits and fit scores
(customers), buying roles (roles), touchpoints (touchpoints), attribution (attribution)."""
from .attribution import attribution
from .customers import customer_profile, fit_score_backtest, fit_scores
from .roles import buying_roles
from .touchpoints import touchpoint_summary

__all__ = ["attribution", "customer_profile", "fit_score_backtest", "fit_scores", "buying_roles", "touchpoint_summary"]
