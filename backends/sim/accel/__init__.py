"""The `accel` dialect: the program the `sim` target runs on a parameterized accelerator."""

from .ops import ACCEL, DmaOp, KernelOp, LinkOp, MatmulOp, VectorOp

__all__ = ["ACCEL", "DmaOp", "KernelOp", "LinkOp", "MatmulOp", "VectorOp"]
