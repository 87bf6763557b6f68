"""Shared fixtures of the reference-semantics tests: seeding, error measures, the public
DeepSeek-V3 rotary code, and random MLA weights."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def rel_err() -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``||a - b|| / ||b||`` in float64."""

    def measure(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.to(torch.float64), b.to(torch.float64)
        return float((a - b).norm() / b.norm().clamp_min(1e-300))

    return measure


@pytest.fixture
def make_rope() -> Callable[..., dict[str, Any]]:
    """A complete `rope` attribute value; DeepSeek-V3's defaults, overridable by keyword."""

    def make(**overrides: Any) -> dict[str, Any]:
        rope = {
            "layout": "interleaved",
            "theta": 10000.0,
            "factor": 1.0,
            "original_seq_len": 4096,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "cos_sin_scale": 1.0,
            "truncate": True,
        }
        rope.update(overrides)
        return rope

    return make


# --- DeepSeek-V3's public inference code (inference/model.py), rotary part, as published ---


def _public_precompute_freqs_cis(args: SimpleNamespace) -> torch.Tensor:
    dim = args.qk_rope_head_dim
    seqlen = args.max_seq_len
    beta_fast = args.beta_fast
    beta_slow = args.beta_slow
    base = args.rope_theta
    factor = args.rope_factor

    def find_correction_dim(num_rotations, dim, base, max_seq_len):
        return dim * math.log(max_seq_len / (num_rotations * 2 * math.pi)) / (2 * math.log(base))

    def find_correction_range(low_rot, high_rot, dim, base, max_seq_len):
        low = math.floor(find_correction_dim(low_rot, dim, base, max_seq_len))
        high = math.ceil(find_correction_dim(high_rot, dim, base, max_seq_len))
        return max(low, 0), min(high, dim - 1)

    def linear_ramp_factor(lo, hi, dim):
        if lo == hi:
            hi += 0.001
        linear_func = (torch.arange(dim, dtype=torch.float32) - lo) / (hi - lo)
        return torch.clamp(linear_func, 0, 1)

    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if seqlen > args.original_seq_len:
        low, high = find_correction_range(beta_fast, beta_slow, dim, base, args.original_seq_len)
        smooth = 1 - linear_ramp_factor(low, high, dim // 2)
        freqs = freqs / factor * (1 - smooth) + freqs * smooth

    t = torch.arange(seqlen)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def _public_apply_rotary_emb(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """x ``[B, S, H, d]``, freqs_cis ``[S, d/2]`` (the rows of the positions 0..S-1 or a slice)."""
    dtype = x.dtype
    x = torch.view_as_complex(x.float().view(*x.shape[:-1], -1, 2))
    freqs_cis = freqs_cis.view(1, x.size(1), 1, x.size(-1))
    y = torch.view_as_real(x * freqs_cis).flatten(3)
    return y.to(dtype)


@pytest.fixture
def public_rope() -> SimpleNamespace:
    """``precompute_freqs_cis(args)`` and ``apply_rotary_emb(x, freqs_cis)`` of DeepSeek-V3."""
    return SimpleNamespace(
        precompute_freqs_cis=_public_precompute_freqs_cis,
        apply_rotary_emb=_public_apply_rotary_emb,
    )


@pytest.fixture
def mla_weights() -> Callable[..., dict[str, torch.Tensor]]:
    """Random MLA weights (fp32) keyed by the `mla.attention` operand names."""

    def make(
        *, dim: int, heads: int, q_lora_rank: int, kv_lora_rank: int, dn: int, dr: int, dv: int
    ) -> dict[str, torch.Tensor]:
        def lin(out_f: int, in_f: int) -> torch.Tensor:
            return torch.randn(out_f, in_f) / math.sqrt(in_f)

        w: dict[str, torch.Tensor] = {}
        if q_lora_rank:
            w["wq_a"] = lin(q_lora_rank, dim)
            w["q_norm"] = 1 + 0.1 * torch.randn(q_lora_rank)
            w["wq_b"] = lin(heads * (dn + dr), q_lora_rank)
        else:
            w["wq"] = lin(heads * (dn + dr), dim)
        w["wkv_a"] = lin(kv_lora_rank + dr, dim)
        w["kv_norm"] = 1 + 0.1 * torch.randn(kv_lora_rank)
        w["wkv_b"] = lin(heads * (dn + dv), kv_lora_rank)
        w["wo"] = lin(dim, heads * dv)
        return w

    return make
