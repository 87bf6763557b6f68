"""The `mlacc` core dialect."""

from .dialect import Core
from .ops import WeightOp, weight

__all__ = ["Core", "WeightOp", "weight"]
