"""The `fp8` dialect: DeepSeek-V3-style block-scaled float8 (e4m3) quantization."""

from __future__ import annotations

from .._mlir import ext
from ..base import op_base


class FP8(ext.Dialect, name="fp8"):
    """Block-scaled float8_e4m3fn tensors: quantize, dequantize, scaled matmul."""


Fp8Op = op_base(FP8, "Fp8Op")
