"""Numbers as JSON takes them: what the run writes (summary.json, section records) never holds NaN."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def json_safe(value):
    """Numbers, mappings and lists as plain JSON: NaN and infinity become None, numpy scalars Python."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
