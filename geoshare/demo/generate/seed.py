"""The one random source of the demo: same seed and scale, same city, byte for byte."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy stays out of the CLI's start-up path (``demo load --if-missing``)
    import numpy as np

DEFAULT_SEED = 42
DEFAULT_SCALE = 300_000
MIN_SCALE = 1_000
MAX_SCALE = 5_000_000


def make_rng(seed: int) -> np.random.Generator:
    import numpy

    return numpy.random.default_rng(seed)


def density_factor(scale: int) -> float:
    """Road spacing shrinks as the city grows, so door numbers stay plausible at every scale."""
    return min(3.0, max(0.5, math.sqrt(DEFAULT_SCALE / scale)))
