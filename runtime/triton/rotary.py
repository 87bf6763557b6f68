"""`mla.rotary_embedding`: RoPE (YaRN frequencies) of a query or key part by positions.

One program rotates ``ROWS`` rows of ``d`` channels: angle ``position * inv_freq[pair]`` in fp32
(the semantics' product), ``cos``/``sin`` times ``cos_sin_scale``, then the pairs of the layout
(`mlacc.runtime.semantics.rope.apply_rotary`) in fp32, one rounding to x's dtype. The
``d / 2`` inverse frequencies are computed once per rope attribute, width and device (so a
CUDA graph capture finds them ready).
"""

from __future__ import annotations

import json
from typing import Any

import torch
import triton
import triton.language as tl

from ..semantics.rope import inv_freq
from ._common import INTERPRET, check_device, next_pow2, round_mode, round_to
from .rope import INTERLEAVED, ROTATE_HALF, rope_pairs

_freqs: dict[tuple[str, int, torch.device], torch.Tensor] = {}


@triton.jit
def _rotary_kernel(
    x_ptr,
    pos_ptr,
    freq_ptr,
    out_ptr,
    n_rows,
    heads,
    d,
    scale,
    LAYOUT: tl.constexpr,
    ROUND: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    c = tl.arange(0, BLOCK_D)
    pair, partner, first = rope_pairs(c, d // 2, LAYOUT)
    mask = (rows < n_rows)[:, None] & (c < d)[None, :]
    base = x_ptr + rows[:, None] * d
    x = tl.load(base + c[None, :], mask=mask, other=0.0).to(tl.float32)
    xp = tl.load(base + partner[None, :], mask=mask, other=0.0).to(tl.float32)
    pos = tl.load(pos_ptr + rows // heads, mask=rows < n_rows, other=0).to(tl.float32)
    freq = tl.load(freq_ptr + pair, mask=c < d, other=0.0)
    angle = pos[:, None] * freq[None, :]
    cos = tl.cos(angle) * scale
    sin = tl.sin(angle) * scale
    y = x * cos + tl.where(first[None, :], -xp, xp) * sin
    tl.store(out_ptr + rows[:, None] * d + c[None, :], round_to(y, ROUND), mask=mask)


def _inv_freq(rope: dict[str, Any], d: int, device: torch.device) -> torch.Tensor:
    key = (json.dumps(rope, sort_keys=True), d, device)
    if key not in _freqs:
        _freqs[key] = inv_freq(rope, d).to(device)
    return _freqs[key]


def rotary_embedding(
    x: torch.Tensor, positions: torch.Tensor, *, rope: dict[str, Any]
) -> torch.Tensor:
    """`mla.rotary_embedding`: rotates x ``[B,S,H,d]``/``[B,S,d]`` by ``positions`` ``[B,S]``."""
    check_device(x, positions)
    layout = {"interleaved": INTERLEAVED, "rotate_half": ROTATE_HALF}.get(rope["layout"])
    if layout is None:
        raise ValueError(f"unknown rope layout '{rope['layout']}' (interleaved or rotate_half)")
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"rotary dimension must be even, got {d}")
    heads = x.shape[2] if x.dim() == 4 else 1
    xc = x.contiguous()
    pos = positions.reshape(-1).contiguous()
    out = torch.empty_like(xc)
    n_rows = xc.numel() // d if d else 0
    if n_rows:
        block_d = next_pow2(d, 16)
        rows = min(next_pow2(n_rows), max(1, 4096 // block_d)) if INTERPRET else 4
        _rotary_kernel[(triton.cdiv(n_rows, rows),)](
            xc,
            pos,
            _inv_freq(rope, d, x.device),
            out,
            n_rows,
            heads,
            d,
            float(rope["cos_sin_scale"]),
            LAYOUT=layout,
            ROUND=round_mode(x.dtype),
            ROWS=rows,
            BLOCK_D=block_d,
        )
    return out


KERNELS = {"mla.rotary_embedding": rotary_embedding}
