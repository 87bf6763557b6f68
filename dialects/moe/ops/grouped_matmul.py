"""`moe.grouped_matmul`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dim, expect_dtype, expect_float, expect_rank
from ...types import INT_DTYPES, TensorInfo
from ..dialect import MoeOp


class GroupedMatmulOp(MoeOp, name="grouped_matmul"):
    """One matmul over all experts' rows: ``out[r] = w[e] · x[r]`` for rows of expert ``e``.

    ``x`` is ``[P, K]`` as produced by `moe.dispatch`, ``w`` the stacked expert weights
    ``[E, N, K]``, ``expert_offsets`` ``[E + 1]``: rows ``[offsets[e], offsets[e+1])`` belong to
    expert ``e``; rows past ``offsets[E]`` are zero in the result. fp32 accumulation.
    """

    x: ext.Operand[AnyTensor]
    w: ext.Operand[AnyTensor]
    expert_offsets: ext.Operand[AnyTensor]
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(*, x: TensorInfo, w: TensorInfo, expert_offsets: TensorInfo) -> list[TensorInfo]:
        expect_float(x, "x")
        expect_rank(x, "x", 2)
        expect_float(w, "w")
        expect_rank(w, "w", 3)
        experts, n, k = w.shape
        expect_dim(x.shape[1], k, "x columns (w's K)")
        expect_rank(expert_offsets, "expert_offsets", 1)
        expect_dtype(expert_offsets, "expert_offsets", INT_DTYPES)
        expect_dim(
            expert_offsets.shape[0],
            None if experts is None else experts + 1,
            "expert_offsets size (num_experts + 1)",
        )
        return [TensorInfo((x.shape[0], n), x.dtype)]


def grouped_matmul(
    x: ir.Value, w: ir.Value, expert_offsets: ir.Value, *, loc: ir.Location | None = None
) -> ir.Value:
    """Builds `moe.grouped_matmul`."""
    return build(GroupedMatmulOp, x=x, w=w, expert_offsets=expert_offsets, loc=loc).result
