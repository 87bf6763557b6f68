"""`moe.combine`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dtype, expect_float, expect_rank
from ...types import INT_DTYPES, TensorInfo
from ..dialect import MoeOp
from ..routing import expect_routing


class CombineOp(MoeOp, name="combine"):
    """Weighted sum of each token's expert outputs: ``out[n] = Σ_k weights[n,k] · y[row_of[n,k]]``.

    ``y`` is ``[P, D]`` (rows in dispatch order), ``row_of`` ``[N, K]`` from `moe.dispatch`,
    ``weights`` ``[N, K]`` from `moe.router`. Accumulates in fp32; the result ``[N, D]`` has
    y's element type.
    """

    y: ext.Operand[AnyTensor]
    row_of: ext.Operand[AnyTensor]
    weights: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, y: TensorInfo, row_of: TensorInfo, weights: TensorInfo) -> list[TensorInfo]:
        expect_float(y, "y")
        expect_rank(y, "y", 2)
        expect_rank(row_of, "row_of", 2)
        expect_dtype(row_of, "row_of", INT_DTYPES)
        expect_routing(weights, row_of, row_of.shape[0])
        return [TensorInfo((row_of.shape[0], y.shape[1]), y.dtype)]


def combine(
    y: ir.Value, row_of: ir.Value, weights: ir.Value, *, loc: ir.Location | None = None
) -> ir.Value:
    """Builds `moe.combine`."""
    return build(CombineOp, y=y, row_of=row_of, weights=weights, loc=loc).result
