"""`fp8.dequantize`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, DenseI64Array, build, expect, expect_dtype
from ...types import FLOAT_DTYPES, FP8_DTYPES, TensorInfo
from ..blocks import check_block_shape, scale_shape
from ..dialect import Fp8Op


class DequantizeOp(Fp8Op, name="dequantize"):
    """Inverse of `fp8.quantize`: ``x = float(q) * scale`` of each element's block.

    ``q`` is float8, ``scale`` fp32 with one entry per ``block_shape`` block of q's trailing
    dims; the result has q's shape and element type ``out_dtype`` (float32, bfloat16, ...).
    """

    q: ext.Operand[AnyTensor]
    scale: ext.Operand[AnyTensor]
    block_shape: DenseI64Array
    out_dtype: ir.StringAttr
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *, q: TensorInfo, scale: TensorInfo, block_shape: list[int], out_dtype: str
    ) -> list[TensorInfo]:
        expect_dtype(q, "q", FP8_DTYPES)
        expect_dtype(scale, "scale", {"float32"})
        expect(
            out_dtype in FLOAT_DTYPES,
            f"attribute 'out_dtype' must be a float dtype, got '{out_dtype}'",
        )
        check_block_shape(q, "q", block_shape)
        want = scale_shape(q.shape, block_shape)
        expect(
            scale.rank == len(want)
            and all(a is None or b is None or a == b for a, b in zip(scale.shape, want)),
            f"scale shape {list(scale.shape)} does not match blocks of q: expected {list(want)}",
        )
        return [TensorInfo(q.shape, out_dtype)]


def dequantize(
    q: ir.Value,
    scale: ir.Value,
    *,
    block_shape: list[int],
    out_dtype: str = "float32",
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `fp8.dequantize`."""
    return build(
        DequantizeOp, q=q, scale=scale, block_shape=list(block_shape), out_dtype=out_dtype, loc=loc
    ).result
