"""`mla.absorb_query`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_dim, expect_float, expect_rank
from ...types import TensorInfo
from ..dialect import MlaOp
from ..heads import expect_head_dims, expect_wkv_b


class AbsorbQueryOp(MlaOp, name="absorb_query"):
    """Moves the key up-projection onto the query: ``q_latent[h] = W_UK,h^T · q_nope[h]``.

    ``q_nope`` is ``[B, S, H, dn]``; ``wkv_b`` is ``[H * (dn + dv), C]`` (W_UK,h is rows
    ``[h*(dn+dv), h*(dn+dv)+dn)``). Result ``[B, S, H, C]``: scores against the latent cache
    then equal scores against the per-head keys, without materializing them.
    """

    q_nope: ext.Operand[AnyTensor]
    wkv_b: ext.Operand[AnyTensor]
    num_heads: ir.IntegerAttr
    qk_nope_head_dim: ir.IntegerAttr
    v_head_dim: ir.IntegerAttr
    out: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *,
        q_nope: TensorInfo,
        wkv_b: TensorInfo,
        num_heads: int,
        qk_nope_head_dim: int,
        v_head_dim: int,
    ) -> list[TensorInfo]:
        expect_head_dims(num_heads, qk_nope_head_dim, v_head_dim)
        expect_float(q_nope, "q_nope")
        expect_rank(q_nope, "q_nope", 4)
        b, s, h, dn = q_nope.shape
        expect_dim(h, num_heads, "q_nope heads")
        expect_dim(dn, qk_nope_head_dim, "q_nope head dim")
        expect_wkv_b(wkv_b, None, num_heads, qk_nope_head_dim, v_head_dim)
        return [TensorInfo((b, s, num_heads, wkv_b.shape[1]), q_nope.dtype)]


def absorb_query(
    q_nope: ir.Value,
    wkv_b: ir.Value,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `mla.absorb_query`."""
    return build(
        AbsorbQueryOp,
        q_nope=q_nope,
        wkv_b=wkv_b,
        num_heads=num_heads,
        qk_nope_head_dim=qk_nope_head_dim,
        v_head_dim=v_head_dim,
        loc=loc,
    ).result
