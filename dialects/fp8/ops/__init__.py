"""The `fp8` ops, one per module."""

from .dequantize import DequantizeOp, dequantize
from .matmul import MatmulOp, matmul
from .quantize import QuantizeOp, quantize

__all__ = ["DequantizeOp", "MatmulOp", "QuantizeOp", "dequantize", "matmul", "quantize"]
