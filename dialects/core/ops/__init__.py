"""The `mlacc` core ops."""

from .weight import WeightOp, weight

__all__ = ["WeightOp", "weight"]
