"""Rotary position embedding with YaRN, from the `rope` dictionary attribute.

The attribute (see `mlacc.dialects.mla.rope`) has ``layout``, ``theta``, ``factor``,
``original_seq_len``, ``beta_fast``, ``beta_slow``, ``cos_sin_scale`` and ``truncate``.

Frequencies follow DeepSeek-V3's public inference code (``precompute_freqs_cis``):
``inv_freq[i] = 1 / theta^(2i/d)``; when ``factor != 1`` (YaRN), with the correction range
``[low, high]`` of the dims whose wavelength lies between ``beta_fast`` and ``beta_slow``
rotations of ``original_seq_len`` (floored/ceiled to whole dims when ``truncate``, clamped to
``[0, d-1]``) and ``smooth = 1 - clamp((i - low) / (high - low), 0, 1)``:
``inv_freq = inv_freq / factor * (1 - smooth) + inv_freq * smooth``. Hugging Face's
``_compute_yarn_parameters`` computes the same blend (as ``1/(factor*p)`` rather than
``(1/p)/factor``, so the two agree to an ulp). Angles are ``position * inv_freq`` in fp32;
``cos`` and ``sin`` are both multiplied by ``cos_sin_scale`` (Hugging Face's YaRN
``attention_factor``; DeepSeek's public code uses 1 and puts the YaRN mscale into the softmax
scale instead).

Layouts, for a rotary part ``x`` of ``d`` channels and angle ``a_i`` for pair ``i``:

- ``interleaved`` (DeepSeek public code, DeepSeek-V2 on Hugging Face): pair ``(x[2i], x[2i+1])``
  is the complex number ``x[2i] + j x[2i+1]``, multiplied by ``e^{j a_i}``; the result keeps
  the interleaved order.
- ``rotate_half`` (Hugging Face ``apply_rotary_pos_emb``): pair ``(x[i], x[i + d/2])``;
  ``out = x * cos + rotate_half(x) * sin`` with ``cos = cat(cos_i, cos_i)``.

Hugging Face DeepseekV3 with ``rope_interleave=True`` (``apply_rotary_pos_emb_interleave``)
reads interleaved pairs but writes its result de-interleaved (``cat(evens', odds')``):
``hf_interleave(x) = P(interleaved(x)) = rotate_half(P x)`` with ``P`` the permutation
``[0, 2, 4, ..., 1, 3, 5, ...]``. Queries and keys get the same ``P``, so attention scores and
outputs are identical to ours; only a cached rotated key differs (by ``P``).
``rope_interleave=False`` is our ``rotate_half``.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def correction_dim(num_rotations: float, dim: int, theta: float, original_seq_len: int) -> float:
    """The (fractional) dim index whose wavelength makes `num_rotations` turns in the context."""
    return dim * math.log(original_seq_len / (num_rotations * 2 * math.pi)) / (2 * math.log(theta))


def correction_range(rope: dict[str, Any], dim: int) -> tuple[float, float]:
    """YaRN's ``(low, high)`` dim range between `beta_fast` and `beta_slow` rotations."""
    theta, orig = float(rope["theta"]), int(rope["original_seq_len"])
    low = correction_dim(float(rope["beta_fast"]), dim, theta, orig)
    high = correction_dim(float(rope["beta_slow"]), dim, theta, orig)
    if rope["truncate"]:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, dim - 1)


def linear_ramp(low: float, high: float, size: int) -> torch.Tensor:
    """``clamp((i - low) / (high - low), 0, 1)`` for ``i < size`` (fp32; high nudged if equal)."""
    if low == high:
        high += 0.001
    ramp = (torch.arange(size, dtype=torch.float32) - low) / (high - low)
    return torch.clamp(ramp, 0, 1)


def inv_freq(rope: dict[str, Any], dim: int) -> torch.Tensor:
    """The ``dim / 2`` inverse frequencies (fp32), YaRN-corrected when ``factor != 1``."""
    if dim % 2:
        raise ValueError(f"rotary dimension must be even, got {dim}")
    theta = float(rope["theta"])
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = float(rope["factor"])
    if factor == 1.0:
        return freqs
    low, high = correction_range(rope, dim)
    smooth = 1 - linear_ramp(low, high, dim // 2)
    return freqs / factor * (1 - smooth) + freqs * smooth


def cos_sin(
    rope: dict[str, Any], dim: int, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` (fp32, shape ``positions.shape + (dim/2,)``), times cos_sin_scale."""
    angles = positions.to(torch.float32)[..., None] * inv_freq(rope, dim).to(positions.device)
    scale = float(rope["cos_sin_scale"])
    return angles.cos() * scale, angles.sin() * scale


def tables(rope: dict[str, Any], dim: int, max_positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Precomputed ``cos``/``sin`` tables ``[max_positions, dim/2]`` for positions 0, 1, ..."""
    return cos_sin(rope, dim, torch.arange(max_positions))


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str
) -> torch.Tensor:
    """Rotates the channel pairs of `x` (fp32 math) by angles given as half-dim cos/sin."""
    xf = x.to(torch.float32)
    half = xf.shape[-1] // 2
    if layout == "interleaved":
        x1, x2 = xf[..., 0::2], xf[..., 1::2]
        out = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)
    elif layout == "rotate_half":
        x1, x2 = xf[..., :half], xf[..., half:]
        out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    else:
        raise ValueError(f"unknown rope layout '{layout}' (interleaved or rotate_half)")
    return out.to(x.dtype)


def rotate(x: torch.Tensor, positions: torch.Tensor, rope: dict[str, Any]) -> torch.Tensor:
    """Applies `rope` to x ``[B,S,H,d]`` or ``[B,S,d]`` at ``positions`` ``[B,S]``; x's dtype."""
    cos, sin = cos_sin(rope, x.shape[-1], positions)
    if x.dim() == 4:
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return apply_rotary(x, cos, sin, rope["layout"])
