"""Stage conversion (`notebooks/stage_conversion.ipynb`): reach and conversion (conversion), moves
between stages (transitions), routes and going back (routes), the Markov chain (markov), figures (plots)."""
from .conversion import (cohort_conversion, compare_conversion, funnel, stage_conversion, stage_reach,
                         windowed_conversion)
from .markov import markov_chain, markov_check
from .routes import path_variants, regression_effect, stage_flows
from .transitions import transition_matrix

__all__ = ["cohort_conversion", "compare_conversion", "funnel", "stage_conversion", "stage_reach",
           "windowed_conversion", "markov_chain", "markov_check", "path_variants", "regression_effect", "stage_flows",
           "transition_matrix"]
