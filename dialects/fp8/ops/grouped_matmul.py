"""`fp8.grouped_matmul`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dim, expect_dtype, expect_rank
from ...types import INT_DTYPES, TensorInfo
from ..blocks import ceil_div, check_scaled_matmul_operands
from ..dialect import Fp8Op


class GroupedMatmulOp(Fp8Op, name="grouped_matmul"):
    """Block-scaled FP8 grouped matmul over stacked experts: `fp8.matmul` per expert segment.

    ``x_q`` ``[P, K]`` (rows sorted by expert, as `moe.dispatch` produces them) with per-token
    scales ``x_scale`` ``[P, ceil(K/block_k)]``; ``w_q`` ``[E, N, K]`` with block scales
    ``w_scale`` ``[E, ceil(N/block_n), ceil(K/block_k)]``; ``expert_offsets`` ``[E + 1]``: rows
    ``[offsets[e], offsets[e+1])`` belong to expert ``e``, and
    ``out[r] = x[r] · w[e]^T`` with DeepGEMM's per-K-block scaling and fp32 accumulation. Rows
    past ``offsets[E]`` are zero. The result ``[P, N]`` has element type ``out_dtype``.
    """

    x_q: ext.Operand[AnyTensor]
    x_scale: ext.Operand[AnyTensor]
    w_q: ext.Operand[AnyTensor]
    w_scale: ext.Operand[AnyTensor]
    expert_offsets: ext.Operand[AnyTensor]
    block_n: ir.IntegerAttr
    block_k: ir.IntegerAttr
    out_dtype: ir.StringAttr
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *,
        x_q: TensorInfo,
        x_scale: TensorInfo,
        w_q: TensorInfo,
        w_scale: TensorInfo,
        expert_offsets: TensorInfo,
        block_n: int,
        block_k: int,
        out_dtype: str,
    ) -> list[TensorInfo]:
        check_scaled_matmul_operands(x_q, x_scale, w_q, w_scale, block_n, block_k, out_dtype)
        expect_dtype(expert_offsets, "expert_offsets", INT_DTYPES)
        expect_rank(x_q, "x_q", 2)
        expect_rank(w_q, "w_q", 3)
        experts, n, k = w_q.shape
        rows = x_q.shape[0]
        expect_dim(x_q.shape[1], k, "x_q columns (w_q's K)")
        expect_rank(x_scale, "x_scale", 2)
        expect_dim(x_scale.shape[0], rows, "x_scale rows (x_q's rows)")
        expect_dim(x_scale.shape[1], ceil_div(k, block_k), "x_scale columns (K blocks)")
        expect_rank(w_scale, "w_scale", 3)
        expect_dim(w_scale.shape[0], experts, "w_scale dim 0 (experts)")
        expect_dim(w_scale.shape[1], ceil_div(n, block_n), "w_scale dim 1 (N blocks)")
        expect_dim(w_scale.shape[2], ceil_div(k, block_k), "w_scale dim 2 (K blocks)")
        expect_rank(expert_offsets, "expert_offsets", 1)
        expect_dim(
            expert_offsets.shape[0],
            None if experts is None else experts + 1,
            "expert_offsets size (num_experts + 1)",
        )
        return [TensorInfo((rows, n), out_dtype)]


def grouped_matmul(
    x_q: ir.Value,
    x_scale: ir.Value,
    w_q: ir.Value,
    w_scale: ir.Value,
    expert_offsets: ir.Value,
    *,
    block_n: int = 128,
    block_k: int = 128,
    out_dtype: str = "float32",
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `fp8.grouped_matmul`."""
    return build(
        GroupedMatmulOp,
        x_q=x_q,
        x_scale=x_scale,
        w_q=w_q,
        w_scale=w_scale,
        expert_offsets=expert_offsets,
        block_n=block_n,
        block_k=block_k,
        out_dtype=out_dtype,
        loc=loc,
    ).result
