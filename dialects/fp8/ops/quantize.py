"""`fp8.quantize`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, DenseI64Array, Flag, build, expect_bool, expect_float
from ...types import TensorInfo
from ..blocks import check_block_shape, scale_shape
from ..dialect import Fp8Op


class QuantizeOp(Fp8Op, name="quantize"):
    """Block-scaled quantization to float8_e4m3fn.

    ``x`` is cut into blocks of ``block_shape`` over its trailing dims (leading dims: blocks of
    1). Per block ``scale = amax(|x|) / 448`` (rounded up to a power of two when
    ``pow2_scale``; 1 for an all-zero block) and ``q = e4m3(clamp(x / scale, ±448))``. Weights use
    ``[128, 128]`` blocks (quantized once, at compile time); activations ``[128]`` blocks,
    i.e. per token per 128 channels (at run time). Results: ``q`` (x's shape, f8E4M3FN) and
    ``scale`` (fp32, one per block).
    """

    x: ext.Operand[AnyTensor]
    block_shape: DenseI64Array
    pow2_scale: Flag
    q: ext.Result[AnyTensor]
    scale: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, x: TensorInfo, block_shape: list[int], pow2_scale: bool) -> list[TensorInfo]:
        expect_float(x, "x")
        expect_bool(pow2_scale, "pow2_scale")
        check_block_shape(x, "x", block_shape)
        return [
            TensorInfo(x.shape, "float8_e4m3fn"),
            TensorInfo(scale_shape(x.shape, block_shape), "float32"),
        ]


def quantize(
    x: ir.Value, *, block_shape: list[int], pow2_scale: bool = False, loc: ir.Location | None = None
) -> tuple[ir.Value, ir.Value]:
    """Builds `fp8.quantize`; returns (q, scale)."""
    op = build(QuantizeOp, x=x, block_shape=list(block_shape), pow2_scale=pow2_scale, loc=loc)
    return op.q, op.scale
