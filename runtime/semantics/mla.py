"""Reference semantics of the `mla` ops (Multi-head Latent Attention, RMSNorm, RoPE).

Shapes: ``B`` batch, ``S`` new tokens, ``T`` keys (cache slots), ``H`` heads, ``dn``/``dr``/``dv``
the nope/rope/value head dims, ``C`` the KV latent rank (kv_lora_rank). ``wkv_b`` is
``[H*(dn+dv), C]``: per head ``dn`` rows of W_UK then ``dv`` rows of W_UV.

Numerics: contractions (projections, scores, weighted sums) run in fp32 and the result is cast
to the dtype the op's ``infer`` gives; softmax and RMSNorm are fp32. A query that sees no key at
all (possible only with hand-made positions) gets an all-zero output row instead of NaN.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from . import rope as _rope
from .registry import SEMANTICS, in_place, semantics


def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x · w^T`` with fp32 math, in x's dtype."""
    return F.linear(x.to(torch.float32), w.to(torch.float32)).to(x.dtype)


def _split_wkv_b(
    wkv_b: torch.Tensor, num_heads: int, qk_nope_head_dim: int, v_head_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """W_UK ``[H, dn, C]`` and W_UV ``[H, dv, C]`` (fp32 views) from wkv_b ``[H*(dn+dv), C]``."""
    w = wkv_b.to(torch.float32).view(num_heads, qk_nope_head_dim + v_head_dim, -1)
    return w[:, :qk_nope_head_dim], w[:, qk_nope_head_dim:]


def _softmax_visible(scores: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """fp32 softmax over the last dim restricted to `visible`; rows with nothing visible give 0."""
    scores = scores.masked_fill(~visible, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return torch.where(visible.any(dim=-1, keepdim=True), p, torch.zeros_like(p))


# The key position of a masked key: after every query position, so no query sees it.
MASKED_KEY_POSITION = torch.iinfo(torch.int64).max


def mask_key_positions(positions: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Key positions with masked keys (``key_mask`` False) moved past every query."""
    if key_mask is None:
        return positions
    return torch.where(key_mask, positions.long(), MASKED_KEY_POSITION)


def _check_slots(positions: torch.Tensor, slots: int, what: str) -> None:
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= slots):
        raise ValueError(
            f"{what}: positions must lie in [0, {slots}), got "
            f"[{int(positions.min())}, {int(positions.max())}]"
        )


def _slot_index(
    block_table: torch.Tensor, block_size: int, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(block, offset) of logical slots ``positions [B, S]`` in a paged pool."""
    pos = positions.long()
    blocks = block_table.shape[1]
    if pos.numel() and int(pos.max()) >= blocks * block_size:
        raise ValueError(
            f"positions reach slot {int(pos.max())}, beyond the block table's "
            f"{blocks} x {block_size} slots"
        )
    return block_table.long().gather(1, pos // block_size), pos % block_size


def _check_block_ids(block_table: torch.Tensor, pool: torch.Tensor) -> None:
    """Block ids must name blocks of the pool (a negative id would wrap to another block)."""
    if block_table.numel() and (int(block_table.min()) < 0 or int(block_table.max()) >= len(pool)):
        raise ValueError(
            f"block_table holds block ids in [{int(block_table.min())}, "
            f"{int(block_table.max())}], outside the pool's [0, {len(pool)})"
        )


def logical_cache(cache: torch.Tensor, block_table: torch.Tensor | None) -> torch.Tensor:
    """The cache as ``[B, T, E]`` (contiguous: itself; paged: gathered through the table)."""
    if block_table is None:
        return cache
    _check_block_ids(block_table, cache)
    b, m = block_table.shape
    return cache[block_table.long()].reshape(b, m * cache.shape[1], cache.shape[2])


@semantics("mla.cache_gather")
def cache_gather(cache: torch.Tensor, block_table: torch.Tensor) -> torch.Tensor:
    """`mla.cache_gather`: ``out[b, j] = cache[block_table[b, j // bs], j % bs]``."""
    return logical_cache(cache, block_table).clone()


@semantics("mla.rms_norm")
def rms_norm(x: torch.Tensor, weight: torch.Tensor, *, eps: float) -> torch.Tensor:
    """`mla.rms_norm`: ``x / sqrt(mean(x^2, -1) + eps) * weight`` in fp32, in x's dtype."""
    xf = x.to(torch.float32)
    normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (normed * weight.to(torch.float32)).to(x.dtype)


@semantics("mla.rotary_embedding")
def rotary_embedding(
    x: torch.Tensor, positions: torch.Tensor, *, rope: dict[str, Any]
) -> torch.Tensor:
    """`mla.rotary_embedding`: rotates x ``[B,S,H,d]``/``[B,S,d]`` by ``positions`` ``[B,S]``."""
    return _rope.rotate(x, positions, rope)


@semantics("mla.rope_tables")
def rope_tables(
    *, rope: dict[str, Any], dim: int, max_positions: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`mla.rope_tables`: fp32 ``cos``/``sin`` ``[max_positions, dim/2]`` (times cos_sin_scale)."""
    return _rope.tables(rope, dim, max_positions)


def _rotate_by_tables(
    x: torch.Tensor,
    positions: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    layout: str,
    what: str,
) -> torch.Tensor:
    """Rotates x ``[B,S,H,d]``/``[B,S,d]`` by the table rows ``positions`` ``[B,S]``."""
    _check_slots(positions, cos.shape[0], f"{what} (rope tables)")
    idx = positions.long()
    c, s = cos.to(torch.float32)[idx], sin.to(torch.float32)[idx]
    if x.dim() == 4:
        c, s = c[:, :, None, :], s[:, :, None, :]
    return _rope.apply_rotary(x, c, s, layout)


@semantics("mla.kv_expand")
def kv_expand(
    latent: torch.Tensor,
    wkv_b: torch.Tensor,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`mla.kv_expand`: per-head ``k_nope`` ``[B,T,H,dn]`` and ``v`` ``[B,T,H,dv]`` from latents."""
    w_uk, w_uv = _split_wkv_b(wkv_b, num_heads, qk_nope_head_dim, v_head_dim)
    c = latent.to(torch.float32)
    k_nope = torch.einsum("btc,hdc->bthd", c, w_uk)
    v = torch.einsum("btc,hdc->bthd", c, w_uv)
    return k_nope.to(latent.dtype), v.to(latent.dtype)


@semantics("mla.decoupled_attention")
def decoupled_attention(
    q_nope: torch.Tensor,
    q_pe: torch.Tensor,
    k_nope: torch.Tensor,
    k_pe: torch.Tensor,
    v: torch.Tensor,
    q_positions: torch.Tensor,
    k_positions: torch.Tensor,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    *,
    softmax_scale: float,
    rope_layout: str,
) -> torch.Tensor:
    """`mla.decoupled_attention`: causal-by-position attention with a head-shared rotary key.

    With tables, q_pe and k_pe are rotated by the rows of their positions first."""
    f32 = torch.float32
    if rope_cos is not None:
        what = "mla.decoupled_attention"
        q_pe = _rotate_by_tables(q_pe, q_positions, rope_cos, rope_sin, rope_layout, what)
        k_pe = _rotate_by_tables(k_pe, k_positions, rope_cos, rope_sin, rope_layout, what)
    scores = torch.einsum("bshd,bthd->bhst", q_nope.to(f32), k_nope.to(f32))
    scores = scores + torch.einsum("bshr,btr->bhst", q_pe.to(f32), k_pe.to(f32))
    scores = scores * softmax_scale
    visible = k_positions[:, None, None, :] <= q_positions[:, None, :, None]
    p = _softmax_visible(scores, visible)
    out = torch.einsum("bhst,bthd->bshd", p, v.to(f32))
    return out.to(q_nope.dtype)


@semantics("mla.absorb_query")
def absorb_query(
    q_nope: torch.Tensor,
    wkv_b: torch.Tensor,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
) -> torch.Tensor:
    """`mla.absorb_query`: ``q_latent[h] = W_UK,h^T · q_nope[h]``, ``[B,S,H,C]``."""
    w_uk, _ = _split_wkv_b(wkv_b, num_heads, qk_nope_head_dim, v_head_dim)
    q_latent = torch.einsum("bshd,hdc->bshc", q_nope.to(torch.float32), w_uk)
    return q_latent.to(q_nope.dtype)


@semantics("mla.latent_attention")
def latent_attention(
    q_latent: torch.Tensor,
    q_pe: torch.Tensor,
    kv_cache: torch.Tensor,
    positions: torch.Tensor,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    *,
    kv_lora_rank: int,
    softmax_scale: float,
    rope_layout: str,
) -> torch.Tensor:
    """`mla.latent_attention`: attention over the latent cache, slots ``j <= positions[b,i]``.

    With tables, q_pe is rotated by the rows ``positions`` first; with a block table the
    cache is a paged pool."""
    f32 = torch.float32
    if rope_cos is not None:
        q_pe = _rotate_by_tables(
            q_pe, positions, rope_cos, rope_sin, rope_layout, "mla.latent_attention"
        )
    cache = logical_cache(kv_cache, block_table).to(f32)
    c, k_pe = cache[..., :kv_lora_rank], cache[..., kv_lora_rank:]
    scores = torch.einsum("bshc,btc->bhst", q_latent.to(f32), c)
    scores = scores + torch.einsum("bshr,btr->bhst", q_pe.to(f32), k_pe)
    scores = scores * softmax_scale
    slots = torch.arange(cache.shape[1], device=kv_cache.device)
    visible = slots[None, None, None, :] <= positions[:, None, :, None]
    p = _softmax_visible(scores, visible)
    ctx = torch.einsum("bhst,btc->bshc", p, c)
    return ctx.to(q_latent.dtype)


@semantics("mla.absorb_output")
def absorb_output(
    ctx: torch.Tensor,
    wkv_b: torch.Tensor,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
) -> torch.Tensor:
    """`mla.absorb_output`: ``o[h] = W_UV,h · ctx[h]``, ``[B,S,H,dv]``."""
    _, w_uv = _split_wkv_b(wkv_b, num_heads, qk_nope_head_dim, v_head_dim)
    out = torch.einsum("bshc,hdc->bshd", ctx.to(torch.float32), w_uv)
    return out.to(ctx.dtype)


@in_place("mla.cache_update", operand="cache", result="out")
def cache_update_(
    cache: torch.Tensor,
    entries: torch.Tensor,
    positions: torch.Tensor,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    *,
    rope_layout: str,
) -> torch.Tensor:
    """`mla.cache_update` written into `cache` itself (returned): the runtime's donated cache.

    With tables, the entries' last ``2 * rope_cos.shape[1]`` channels are rotated by the rows
    ``positions`` first; with a block table the cache is a paged pool."""
    slots = cache.shape[1] if block_table is None else block_table.shape[1] * cache.shape[1]
    _check_slots(positions, slots, "mla.cache_update")
    if rope_cos is not None:
        dr = 2 * rope_cos.shape[1]
        pe = _rotate_by_tables(
            entries[..., -dr:], positions, rope_cos, rope_sin, rope_layout, "mla.cache_update"
        )
        entries = torch.cat([entries[..., :-dr], pe], dim=-1)
    if block_table is None:
        rows = torch.arange(cache.shape[0], device=cache.device)[:, None].expand_as(positions)
        cache[rows, positions.long()] = entries.to(cache.dtype)
    else:
        _check_block_ids(block_table, cache)
        block, offset = _slot_index(block_table, cache.shape[1], positions)
        cache[block, offset] = entries.to(cache.dtype)
    return cache


@in_place("mla.attention", operand="kv_cache", result="new_cache")
def attention_(
    x: torch.Tensor,
    positions: torch.Tensor,
    wkv_a: torch.Tensor,
    kv_norm: torch.Tensor,
    wkv_b: torch.Tensor,
    wo: torch.Tensor,
    wq: torch.Tensor | None = None,
    wq_a: torch.Tensor | None = None,
    q_norm: torch.Tensor | None = None,
    wq_b: torch.Tensor | None = None,
    kv_cache: torch.Tensor | None = None,
    key_mask: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    *,
    num_heads: int,
    q_lora_rank: int,
    kv_lora_rank: int,
    qk_nope_head_dim: int,
    qk_rope_head_dim: int,
    v_head_dim: int,
    softmax_scale: float,
    eps: float,
    rope: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`mla.attention`, its new entries written into ``kv_cache`` itself (a donated cache):
    the whole un-absorbed MLA block; returns ``(out, new_cache)``.

    Without ``kv_cache`` the keys are the current tokens at their ``positions`` and
    ``new_cache`` is None; ``key_mask`` hides padded keys. With it, the tokens' entries
    ``[c_kv; k_pe]`` are written at their positions first and every cache slot ``j`` is a key
    at position ``j`` (a paged pool with ``block_table``).
    """
    b, s, _ = x.shape
    h, dn, dr, c = num_heads, qk_nope_head_dim, qk_rope_head_dim, kv_lora_rank
    if q_lora_rank == 0:
        if wq is None:
            raise ValueError("mla.attention: 'wq' is required when q_lora_rank = 0")
        q = _linear(x, wq)
    else:
        if wq_a is None or q_norm is None or wq_b is None:
            raise ValueError(
                "mla.attention: 'wq_a', 'q_norm' and 'wq_b' are required when q_lora_rank > 0"
            )
        q = _linear(rms_norm(_linear(x, wq_a), q_norm, eps=eps), wq_b)
    q_nope, q_pe = q.view(b, s, h, dn + dr).split([dn, dr], dim=-1)
    q_pe = rotary_embedding(q_pe, positions, rope=rope)

    c_kv, k_pe = _linear(x, wkv_a).split([c, dr], dim=-1)
    c_kv = rms_norm(c_kv, kv_norm, eps=eps)
    k_pe = rotary_embedding(k_pe, positions, rope=rope)

    heads = {"num_heads": h, "qk_nope_head_dim": dn, "v_head_dim": v_head_dim}
    new_cache = None
    if kv_cache is None:
        latent, k_positions = c_kv, mask_key_positions(positions, key_mask)
    else:
        entries = torch.cat([c_kv, k_pe], dim=-1)
        new_cache = cache_update_(
            kv_cache, entries, positions, None, None, block_table, rope_layout="none"
        )
        keys = logical_cache(new_cache, block_table)
        latent, k_pe = keys[..., :c], keys[..., c:]
        slots = torch.arange(keys.shape[1], device=x.device)
        k_positions = slots[None, :].expand(b, -1)
    k_nope, v = kv_expand(latent, wkv_b, **heads)
    o = decoupled_attention(
        q_nope,
        q_pe,
        k_nope,
        k_pe,
        v,
        positions,
        k_positions,
        softmax_scale=softmax_scale,
        rope_layout="none",
    )
    out = _linear(o.reshape(b, s, h * v_head_dim).to(x.dtype), wo)
    return out, new_cache


# The reference semantics (value forms) of the in-place ops above, by their op names.
cache_update = SEMANTICS["mla.cache_update"]
attention = SEMANTICS["mla.attention"]
