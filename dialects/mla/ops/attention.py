"""`mla.attention`."""

from typing import Any

from ..._mlir import ext, ir
from ...base import (
    AnyTensor,
    build,
    expect,
    expect_dim,
    expect_dtype,
    expect_float,
    expect_matrix,
    expect_rank,
    expect_same_dtype,
    expect_vector,
    positive,
)
from ...types import INT_DTYPES, TensorInfo
from ..cache import cache_slots
from ..dialect import MlaOp
from ..rope import check_rope


class AttentionOp(MlaOp, name="attention"):
    """One whole Multi-head Latent Attention block, as captured (un-absorbed).

    With ``H = num_heads``, ``dn/dr/dv`` the nope/rope/value head dims, ``C = kv_lora_rank``:
    the query is ``wq_b · rms_norm(wq_a · x, q_norm)`` (or ``wq · x`` when
    ``q_lora_rank = 0``), split per head into ``q_nope`` and ``q_pe``; ``[c_kv; k_pe] = wkv_a · x``
    with ``c_kv`` RMS-normalized by ``kv_norm``; ``q_pe`` and the head-shared ``k_pe`` get the
    rotary embedding ``rope``; ``wkv_b`` expands ``c_kv`` into per-head ``k_nope`` and ``v``;
    causal softmax attention (a key at position ``j`` is visible to a query at ``i`` iff
    ``j <= i``) with ``softmax_scale``; the heads' outputs go through ``wo``. With
    ``kv_cache`` (``[B, T, C + dr]``: normalized latent and rotated ``k_pe`` per token), the
    new tokens' latents are written at their ``positions`` first, keys come from the cache,
    and ``new_cache`` is the updated cache (paged with ``block_table``, see `mla.cache_update`).

    ``key_mask`` (``[B, S]``, bool; only without a cache) hides padded keys: a query sees key
    ``j`` iff ``positions[b, j] <= positions[b, i]`` and ``key_mask[b, j]`` (Hugging Face's
    ``attention_mask``).
    """

    x: ext.Operand[AnyTensor]
    positions: ext.Operand[AnyTensor]
    wkv_a: ext.Operand[AnyTensor]
    kv_norm: ext.Operand[AnyTensor]
    wkv_b: ext.Operand[AnyTensor]
    wo: ext.Operand[AnyTensor]
    num_heads: ir.IntegerAttr
    q_lora_rank: ir.IntegerAttr
    kv_lora_rank: ir.IntegerAttr
    qk_nope_head_dim: ir.IntegerAttr
    qk_rope_head_dim: ir.IntegerAttr
    v_head_dim: ir.IntegerAttr
    softmax_scale: ir.FloatAttr
    eps: ir.FloatAttr
    rope: ir.DictAttr
    out: ext.Result[AnyTensor]
    wq: ext.Operand[AnyTensor] | None = None
    wq_a: ext.Operand[AnyTensor] | None = None
    q_norm: ext.Operand[AnyTensor] | None = None
    wq_b: ext.Operand[AnyTensor] | None = None
    kv_cache: ext.Operand[AnyTensor] | None = None
    new_cache: ext.Result[AnyTensor] | None = None
    key_mask: ext.Operand[AnyTensor] | None = None
    block_table: ext.Operand[AnyTensor] | None = None

    @staticmethod
    def infer(
        *,
        x: TensorInfo,
        positions: TensorInfo,
        wkv_a: TensorInfo,
        kv_norm: TensorInfo,
        wkv_b: TensorInfo,
        wo: TensorInfo,
        num_heads: int,
        q_lora_rank: int,
        kv_lora_rank: int,
        qk_nope_head_dim: int,
        qk_rope_head_dim: int,
        v_head_dim: int,
        softmax_scale: float,
        eps: float,
        rope: dict[str, Any],
        wq: TensorInfo | None = None,
        wq_a: TensorInfo | None = None,
        q_norm: TensorInfo | None = None,
        wq_b: TensorInfo | None = None,
        kv_cache: TensorInfo | None = None,
        key_mask: TensorInfo | None = None,
        block_table: TensorInfo | None = None,
    ) -> list[TensorInfo | None]:
        for name in (
            "num_heads",
            "kv_lora_rank",
            "qk_nope_head_dim",
            "qk_rope_head_dim",
            "v_head_dim",
        ):
            positive(locals()[name], name)
        expect(q_lora_rank >= 0, f"attribute 'q_lora_rank' must be >= 0, got {q_lora_rank}")
        expect(
            softmax_scale > 0 and eps > 0, "attributes 'softmax_scale' and 'eps' must be positive"
        )
        check_rope(rope, qk_rope_head_dim)
        h, c, dr = num_heads, kv_lora_rank, qk_rope_head_dim
        q_dim = h * (qk_nope_head_dim + dr)

        expect_float(x, "x")
        expect_rank(x, "x", 3)
        batch, seq, dim = x.shape
        expect_rank(positions, "positions", 2)
        expect_dtype(positions, "positions", INT_DTYPES)
        expect_dim(positions.shape[0], batch, "positions batch size")
        expect_dim(positions.shape[1], seq, "positions sequence length")

        if q_lora_rank == 0:
            expect(wq is not None, "'wq' is required when q_lora_rank = 0")
            expect(
                wq_a is None and q_norm is None and wq_b is None,
                "'wq_a', 'q_norm', 'wq_b' must be absent when q_lora_rank = 0",
            )
            expect_matrix(wq, "wq", q_dim, dim)
        else:
            expect(wq is None, "'wq' must be absent when q_lora_rank > 0 (use wq_a/q_norm/wq_b)")
            expect(
                wq_a is not None and q_norm is not None and wq_b is not None,
                "'wq_a', 'q_norm' and 'wq_b' are required when q_lora_rank > 0",
            )
            expect_matrix(wq_a, "wq_a", q_lora_rank, dim)
            expect_vector(q_norm, "q_norm", q_lora_rank)
            expect_matrix(wq_b, "wq_b", q_dim, q_lora_rank)
        expect_matrix(wkv_a, "wkv_a", c + dr, dim)
        expect_vector(kv_norm, "kv_norm", c)
        expect_matrix(wkv_b, "wkv_b", h * (qk_nope_head_dim + v_head_dim), c)
        expect_matrix(wo, "wo", dim, h * v_head_dim)

        if kv_cache is None:
            expect(block_table is None, "'block_table' needs a 'kv_cache'")
            if key_mask is not None:
                expect_rank(key_mask, "key_mask", 2)
                expect_dtype(key_mask, "key_mask", {"bool"})
                expect_dim(key_mask.shape[0], batch, "key_mask batch size")
                expect_dim(key_mask.shape[1], seq, "key_mask length")
            return [x, None]
        expect(key_mask is None, "'key_mask' is only supported without a 'kv_cache'")
        expect_same_dtype(x, "x", kv_cache, "kv_cache")
        cache_batch, _ = cache_slots(kv_cache, block_table, c + dr)
        expect_dim(cache_batch, batch, "kv_cache batch size")
        return [x, kv_cache]


def attention(
    x: ir.Value,
    positions: ir.Value,
    *,
    weights: dict[str, ir.Value],
    kv_cache: ir.Value | None = None,
    key_mask: ir.Value | None = None,
    block_table: ir.Value | None = None,
    loc: ir.Location | None = None,
    **attrs: Any,
) -> ir.OpView:
    """Builds `mla.attention`; `weights` maps wq|wq_a,q_norm,wq_b, wkv_a, kv_norm, wkv_b, wo."""
    return build(
        AttentionOp,
        x=x,
        positions=positions,
        kv_cache=kv_cache,
        key_mask=key_mask,
        block_table=block_table,
        loc=loc,
        **weights,
        **attrs,
    )
