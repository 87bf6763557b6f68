"""`mla.absorb_output`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dim, expect_float, expect_rank
from ...types import TensorInfo
from ..dialect import MlaOp
from ..heads import expect_head_dims, expect_wkv_b


class AbsorbOutputOp(MlaOp, name="absorb_output"):
    """Applies the value up-projection after attention: ``o[h] = W_UV,h · ctx[h]``.

    ``ctx`` is the attention-weighted latent ``[B, S, H, C]`` from `mla.latent_attention`;
    ``wkv_b`` is ``[H * (dn + dv), C]`` (W_UV,h is rows ``[h*(dn+dv)+dn, (h+1)*(dn+dv))``).
    Result ``[B, S, H, dv]``, equal to attending over per-head values.
    """

    ctx: ext.Operand[AnyTensor]
    wkv_b: ext.Operand[AnyTensor]
    num_heads: ir.IntegerAttr
    qk_nope_head_dim: ir.IntegerAttr
    v_head_dim: ir.IntegerAttr
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *,
        ctx: TensorInfo,
        wkv_b: TensorInfo,
        num_heads: int,
        qk_nope_head_dim: int,
        v_head_dim: int,
    ) -> list[TensorInfo]:
        expect_head_dims(num_heads, qk_nope_head_dim, v_head_dim)
        expect_float(ctx, "ctx")
        expect_rank(ctx, "ctx", 4)
        b, s, h, c = ctx.shape
        expect_dim(h, num_heads, "ctx heads")
        expect_wkv_b(wkv_b, c, num_heads, qk_nope_head_dim, v_head_dim)
        return [TensorInfo((b, s, num_heads, v_head_dim), ctx.dtype)]


def absorb_output(
    ctx: ir.Value,
    wkv_b: ir.Value,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `mla.absorb_output`."""
    return build(
        AbsorbOutputOp,
        ctx=ctx,
        wkv_b=wkv_b,
        num_heads=num_heads,
        qk_nope_head_dim=qk_nope_head_dim,
        v_head_dim=v_head_dim,
        loc=loc,
    ).result
