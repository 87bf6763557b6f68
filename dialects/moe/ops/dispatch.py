"""`moe.dispatch`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dim, expect_dtype, expect_float, expect_rank, positive
from ...types import INT_DTYPES, TensorInfo
from ..dialect import MoeOp


def padded_rows(
    tokens: int | None, top_k: int | None, num_experts: int, block_size: int
) -> int | None:
    """Static row count of a dispatched buffer: every (token, slot) pair plus worst-case padding."""
    if tokens is None or top_k is None:
        return None
    return tokens * top_k + num_experts * (block_size - 1)


class DispatchOp(MoeOp, name="dispatch"):
    """Sorts token copies by expert into one buffer with block-aligned expert segments.

    For ``x`` ``[N, D]`` and ``indices`` ``[N, K]``, each (token, slot) pair becomes one row of
    ``x_sorted`` ``[P, D]`` (``P = N*K + E*(block_size-1)``), grouped by expert in ascending
    order, tokens in ascending order inside a group; each expert's segment starts at
    ``expert_offsets[e]`` (a multiple of ``block_size``; ``expert_offsets[E]`` is the end of the
    last segment) and unused rows are zero. ``row_of[n, k]`` is the row holding pair (n, k),
    which `moe.combine` reads back.
    """

    x: ext.Operand[AnyTensor]
    indices: ext.Operand[AnyTensor]
    num_experts: ir.IntegerAttr
    block_size: ir.IntegerAttr
    x_sorted: ext.Result[AnyTensor]
    row_of: ext.Result[AnyTensor]
    expert_offsets: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *, x: TensorInfo, indices: TensorInfo, num_experts: int, block_size: int
    ) -> list[TensorInfo]:
        positive(num_experts, "num_experts")
        positive(block_size, "block_size")
        expect_float(x, "x")
        expect_rank(x, "x", 2)
        expect_rank(indices, "indices", 2)
        expect_dtype(indices, "indices", INT_DTYPES)
        n, d = x.shape
        expect_dim(indices.shape[0], n, "indices rows (tokens)")
        rows = padded_rows(n, indices.shape[1], num_experts, block_size)
        return [
            TensorInfo((rows, d), x.dtype),
            TensorInfo(indices.shape, "int64"),
            TensorInfo((num_experts + 1,), "int64"),
        ]


def dispatch(
    x: ir.Value,
    indices: ir.Value,
    *,
    num_experts: int,
    block_size: int,
    loc: ir.Location | None = None,
) -> tuple[ir.Value, ir.Value, ir.Value]:
    """Builds `moe.dispatch`; returns (x_sorted, row_of, expert_offsets)."""
    op = build(
        DispatchOp, x=x, indices=indices, num_experts=num_experts, block_size=block_size, loc=loc
    )
    return op.x_sorted, op.row_of, op.expert_offsets
