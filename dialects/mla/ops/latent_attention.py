"""`mla.latent_attention`."""

from ..._mlir import ext, ir
from ...base import (
    AnyTensor,
    build,
    expect,
    expect_dim,
    expect_dtype,
    expect_float,
    expect_rank,
    positive,
)
from ...types import INT_DTYPES, TensorInfo
from ..cache import cache_slots
from ..dialect import MlaOp
from ..rope import check_rope_tables


class LatentAttentionOp(MlaOp, name="latent_attention"):
    """Absorbed MLA attention over the latent KV cache; no per-head K or V exists.

    ``kv_cache`` is ``[B, T, C + dr]``: per token the normalized latent ``c`` (``C =
    kv_lora_rank``) and the rotated shared key ``k_pe``. With ``q_latent`` ``[B, S, H, C]``
    (from `mla.absorb_query`) and ``q_pe`` ``[B, S, H, dr]``:
    ``score[b,h,i,j] = (q_latent·c_j + q_pe·k_pe_j) * softmax_scale`` for cache slots
    ``j <= positions[b,i]``, softmax in fp32, ``ctx[b,i,h] = Σ_j p · c_j`` (``[B, S, H, C]``).
    The value up-projection follows in `mla.absorb_output`.

    Fused rotary embedding (`--mla-fuse-rope`): with ``rope_cos``/``rope_sin`` (fp32
    ``[P, dr/2]`` tables from `mla.rope_tables`) and ``rope_layout`` ("interleaved" or
    "rotate_half"), ``q_pe`` is un-rotated and the op rotates it by the tables' row
    ``positions[b,i]`` as it loads it; ``rope_layout = "none"`` (the default) takes no tables.

    Paged layout: with ``block_table`` ``[B, M]``, ``kv_cache`` is a pool ``[N, block_size,
    C + dr]`` read through the table (docs/execution-contract.md).
    """

    q_latent: ext.Operand[AnyTensor]
    q_pe: ext.Operand[AnyTensor]
    kv_cache: ext.Operand[AnyTensor]
    positions: ext.Operand[AnyTensor]
    kv_lora_rank: ir.IntegerAttr
    softmax_scale: ir.FloatAttr
    ctx: ext.Result[AnyTensor]
    rope_cos: ext.Operand[AnyTensor] | None = None
    rope_sin: ext.Operand[AnyTensor] | None = None
    block_table: ext.Operand[AnyTensor] | None = None
    rope_layout: ir.StringAttr = ext.attribute(default_factory=lambda: ir.StringAttr.get("none"))

    @staticmethod
    def infer(
        *,
        q_latent: TensorInfo,
        q_pe: TensorInfo,
        kv_cache: TensorInfo,
        positions: TensorInfo,
        kv_lora_rank: int,
        softmax_scale: float,
        rope_cos: TensorInfo | None = None,
        rope_sin: TensorInfo | None = None,
        block_table: TensorInfo | None = None,
        rope_layout: str = "none",
    ) -> list[TensorInfo]:
        positive(kv_lora_rank, "kv_lora_rank")
        expect(
            softmax_scale > 0, f"attribute 'softmax_scale' must be positive, got {softmax_scale}"
        )
        for name, t, rank in (("q_latent", q_latent, 4), ("q_pe", q_pe, 4)):
            expect_float(t, name)
            expect_rank(t, name, rank)
        b, s, h, c = q_latent.shape
        expect_dim(c, kv_lora_rank, "q_latent last dim (kv_lora_rank)")
        expect_dim(q_pe.shape[0], b, "q_pe batch size")
        expect_dim(q_pe.shape[1], s, "q_pe sequence length")
        expect_dim(q_pe.shape[2], h, "q_pe heads")
        dr = q_pe.shape[3]
        entry = None if dr is None else kv_lora_rank + dr
        batch, _ = cache_slots(kv_cache, block_table, entry)
        expect_dim(batch, b, "kv_cache batch size")
        expect_rank(positions, "positions", 2)
        expect_dtype(positions, "positions", INT_DTYPES)
        expect_dim(positions.shape[0], b, "positions batch size")
        expect_dim(positions.shape[1], s, "positions sequence length")
        check_rope_tables(rope_cos, rope_sin, rope_layout, dr)
        return [q_latent]


def latent_attention(
    q_latent: ir.Value,
    q_pe: ir.Value,
    kv_cache: ir.Value,
    positions: ir.Value,
    *,
    kv_lora_rank: int,
    softmax_scale: float,
    rope_cos: ir.Value | None = None,
    rope_sin: ir.Value | None = None,
    block_table: ir.Value | None = None,
    rope_layout: str = "none",
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `mla.latent_attention`."""
    return build(
        LatentAttentionOp,
        q_latent=q_latent,
        q_pe=q_pe,
        kv_cache=kv_cache,
        positions=positions,
        kv_lora_rank=kv_lora_rank,
        softmax_scale=softmax_scale,
        rope_cos=rope_cos,
        rope_sin=rope_sin,
        block_table=block_table,
        rope_layout=rope_layout,
        loc=loc,
    ).result
