"""Rotary embedding pieces shared by the attention kernels (RoPE on load / on the cache write).

The pairs are those of `mlacc.runtime.semantics.rope.apply_rotary`: ``interleaved`` pairs
channels ``(2i, 2i+1)``, ``rotate_half`` pairs ``(i, i + d/2)``; a rotated pair is
``(x1 cos - x2 sin, x2 cos + x1 sin)`` with the table row of the token's position. Rotation
keeps the channel order, so a rotated query part dots with a cached (already rotated) key part
loaded as one contiguous tile.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# `LAYOUT` constexpr values. Without tables (`rope_layout = "none"`) the kernels split a rotary
# part like rotate_half: two contiguous halves read best.
INTERLEAVED = 0
ROTATE_HALF = 1

_LAYOUTS = {"interleaved": INTERLEAVED, "rotate_half": ROTATE_HALF, "none": ROTATE_HALF}


def layout_code(
    rope_layout: str, rope_cos: torch.Tensor | None, rope_sin: torch.Tensor | None
) -> tuple[int, bool]:
    """The ``(LAYOUT, ROTATE)`` constexprs for an op's ``rope_layout`` and optional tables."""
    if rope_layout not in _LAYOUTS:
        raise ValueError(f"unknown rope layout '{rope_layout}' (interleaved, rotate_half or none)")
    rotate = rope_cos is not None
    if rotate != (rope_sin is not None):
        raise ValueError("rope_cos and rope_sin must be given together")
    if rotate == (rope_layout == "none"):
        raise ValueError(f"rope_layout '{rope_layout}' does not match the tables given")
    return _LAYOUTS[rope_layout], rotate


def rope_block(dr: int) -> int:
    """The padded rotary width: a power of two, at least 16 (the smallest sm_90 bf16 dot K)."""
    if dr % 2:
        raise ValueError(f"rotary dimension must be even, got {dr}")
    return max(16, triton.next_power_of_2(dr))


@triton.jit
def rope_pairs(c, half, LAYOUT: tl.constexpr):
    """For channels `c` of a rotary part of ``2 * half`` channels: each one's pair index (its
    frequency), its partner channel and whether it is its pair's first member."""
    if LAYOUT == 0:
        pair = c // 2
        partner = c ^ 1
        first = (c % 2) == 0
    else:
        pair = c % half
        partner = tl.where(c < half, c + half, c - half)
        first = c < half
    return pair, partner, first


@triton.jit
def load_rotated(
    ptr,
    row_off,
    row_mask,
    pos,
    cos_ptr,
    sin_ptr,
    stride_tab,
    n_tab,
    dr,
    BLOCK_DR: tl.constexpr,
    LAYOUT: tl.constexpr,
    ROTATE: tl.constexpr,
):
    """Rotary parts ``[R, BLOCK_DR]`` (fp32) at ``ptr + row_off[r]``, channels contiguous.

    With ROTATE, row ``r`` is rotated by the table row ``pos[r]``, keeping the channel order:
    ``out[c] = x[c] cos[k] -/+ x[partner(c)] sin[k]`` with ``k`` the pair of channel ``c`` and
    ``-`` for its first member. Rows whose position lies outside the table load as zeros."""
    c = tl.arange(0, BLOCK_DR)
    m = row_mask[:, None] & (c < dr)[None, :]
    base = ptr + row_off[:, None]
    x = tl.load(base + c[None, :], mask=m, other=0.0).to(tl.float32)
    if ROTATE:
        pair, partner, first = rope_pairs(c, dr // 2, LAYOUT)
        xp = tl.load(base + partner[None, :], mask=m, other=0.0).to(tl.float32)
        tm = m & (pos[:, None] >= 0) & (pos[:, None] < n_tab)
        t_off = pos.to(tl.int64)[:, None] * stride_tab + pair[None, :]
        cos = tl.load(cos_ptr + t_off, mask=tm, other=0.0)
        sin = tl.load(sin_ptr + t_off, mask=tm, other=0.0)
        x = x * cos + tl.where(first[None, :], -xp, xp) * sin
    return x
