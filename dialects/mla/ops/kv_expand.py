"""`mla.kv_expand`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect_float, expect_rank
from ...types import TensorInfo
from ..dialect import MlaOp
from ..heads import expect_head_dims, expect_wkv_b


class KvExpandOp(MlaOp, name="kv_expand"):
    """Up-projects normalized KV latents into per-head keys and values (the un-absorbed path).

    ``latent`` is ``[B, T, C]``; ``wkv_b`` is ``[H * (dn + dv), C]``, per head ``dn`` rows of
    W_UK followed by ``dv`` rows of W_UV. Results: ``k_nope = W_UK,h · c`` as ``[B, T, H, dn]``
    and ``v = W_UV,h · c`` as ``[B, T, H, dv]``. This is the op weight absorption removes from
    decode: it materializes per-head K and V.
    """

    latent: ext.Operand[AnyTensor]
    wkv_b: ext.Operand[AnyTensor]
    num_heads: ir.IntegerAttr
    qk_nope_head_dim: ir.IntegerAttr
    v_head_dim: ir.IntegerAttr
    k_nope: ext.Result[AnyTensor]
    v: ext.Result[AnyTensor]

    @staticmethod
    def infer(
        *,
        latent: TensorInfo,
        wkv_b: TensorInfo,
        num_heads: int,
        qk_nope_head_dim: int,
        v_head_dim: int,
    ) -> list[TensorInfo]:
        expect_head_dims(num_heads, qk_nope_head_dim, v_head_dim)
        expect_float(latent, "latent")
        expect_rank(latent, "latent", 3)
        b, t, c = latent.shape
        expect_wkv_b(wkv_b, c, num_heads, qk_nope_head_dim, v_head_dim)
        return [
            TensorInfo((b, t, num_heads, qk_nope_head_dim), latent.dtype),
            TensorInfo((b, t, num_heads, v_head_dim), latent.dtype),
        ]


def kv_expand(
    latent: ir.Value,
    wkv_b: ir.Value,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
    loc: ir.Location | None = None,
) -> tuple[ir.Value, ir.Value]:
    """Builds `mla.kv_expand`; returns (k_nope, v)."""
    op = build(
        KvExpandOp,
        latent=latent,
        wkv_b=wkv_b,
        num_heads=num_heads,
        qk_nope_head_dim=qk_nope_head_dim,
        v_head_dim=v_head_dim,
        loc=loc,
    )
    return op.k_nope, op.v
