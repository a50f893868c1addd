"""Random generators seeded from strings, so every random step is reproducible and named.

``seeded_rng("attribution")`` always gives the same stream; different strings give
independent streams (the first 8 bytes of the string's SHA-256 seed numpy's PCG64).
"""
from __future__ import annotations

import hashlib

import numpy as np


def seeded_rng(text: str) -> np.random.Generator:
    """A numpy generator seeded from ``text``."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
