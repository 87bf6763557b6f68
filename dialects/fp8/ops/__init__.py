"""The `fp8` ops, one per module."""

from .dequantize import DequantizeOp, dequantize
from .grouped_matmul import GroupedMatmulOp, grouped_matmul
from .matmul import MatmulOp, matmul
from .quantize import QuantizeOp, quantize

__all__ = [
    "DequantizeOp",
    "GroupedMatmulOp",
    "MatmulOp",
    "QuantizeOp",
    "dequantize",
    "grouped_matmul",
    "matmul",
    "quantize",
]
