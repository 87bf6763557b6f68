"""`fp8.matmul`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect, expect_dim, expect_rank
from ...types import TensorInfo
from ..blocks import ceil_div, check_scaled_matmul_operands
from ..dialect import Fp8Op


class MatmulOp(Fp8Op, name="matmul"):
    """Block-scaled FP8 linear layer: ``y = x · w^T`` from quantized operands, fp32 accumulation.

    ``x_q`` ``[..., K]`` with per-token scales ``x_scale`` ``[..., ceil(K/block_k)]``;
    ``w_q`` ``[N, K]`` with block scales ``w_scale`` ``[ceil(N/block_n), ceil(K/block_k)]``.
    Each K block's partial product is scaled by ``x_scale * w_scale`` and accumulated in fp32
    (the DeepSeek-V3 / DeepGEMM recipe). The result ``[..., N]`` has element type ``out_dtype``.
    """

    x_q: ext.Operand[AnyTensor]
    x_scale: ext.Operand[AnyTensor]
    w_q: ext.Operand[AnyTensor]
    w_scale: ext.Operand[AnyTensor]
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
        block_n: int,
        block_k: int,
        out_dtype: str,
    ) -> list[TensorInfo]:
        check_scaled_matmul_operands(x_q, x_scale, w_q, w_scale, block_n, block_k, out_dtype)
        expect(x_q.rank >= 1, f"x_q must have rank >= 1, got {x_q}")
        expect_rank(w_q, "w_q", 2)
        n, k = w_q.shape
        expect_dim(x_q.shape[-1], k, "x_q last dim (K)")
        expect_rank(x_scale, "x_scale", x_q.rank)
        for i, d in enumerate(x_q.shape[:-1]):
            expect_dim(x_scale.shape[i], d, f"x_scale dim {i}")
        expect_dim(x_scale.shape[-1], ceil_div(k, block_k), "x_scale last dim (K blocks)")
        expect_rank(w_scale, "w_scale", 2)
        expect_dim(w_scale.shape[0], ceil_div(n, block_n), "w_scale rows (N blocks)")
        expect_dim(w_scale.shape[1], ceil_div(k, block_k), "w_scale columns (K blocks)")
        return [TensorInfo((*x_q.shape[:-1], n), out_dtype)]


def matmul(
    x_q: ir.Value,
    x_scale: ir.Value,
    w_q: ir.Value,
    w_scale: ir.Value,
    *,
    block_n: int = 128,
    block_k: int = 128,
    out_dtype: str = "float32",
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `fp8.matmul`."""
    return build(
        MatmulOp,
        x_q=x_q,
        x_scale=x_scale,
        w_q=w_q,
        w_scale=w_scale,
        block_n=block_n,
        block_k=block_k,
        out_dtype=out_dtype,
        loc=loc,
    ).result
