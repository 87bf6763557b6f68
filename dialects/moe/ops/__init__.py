"""The `moe` ops, one per module."""

from .combine import CombineOp, combine
from .dispatch import DispatchOp, dispatch, padded_rows
from .experts import ExpertsOp, experts
from .grouped_matmul import GroupedMatmulOp, grouped_matmul
from .mlp import MlpOp, mlp
from .router import RouterOp, router
from .swiglu import SwigluOp, swiglu

__all__ = [
    "CombineOp",
    "DispatchOp",
    "ExpertsOp",
    "GroupedMatmulOp",
    "MlpOp",
    "RouterOp",
    "SwigluOp",
    "combine",
    "dispatch",
    "experts",
    "grouped_matmul",
    "mlp",
    "padded_rows",
    "router",
    "swiglu",
]
