"""Triton kernels for the MLA attention ops, with wrappers shaped like the ops' semantics.

`KERNELS` maps op names to wrappers that take exactly the operands and attributes of the
functions in `mlacc.runtime.semantics.mla` (plus the cache-contract operands ``block_table``
and ``key_mask``), so an executor can swap one for the other. The launch parameters come from
the ``*_config`` heuristics below (pure functions of shapes, so a decode step stays graph-safe:
no host synchronisation, no data-dependent launch).

Caches follow docs/execution-contract.md: contiguous ``[B, L, E]`` or a paged pool
``[N, block_size, E]`` with ``block_table [B, M]`` (int32). A key is visible iff its position
is ``<=`` the query's and ``key_mask`` (when given) allows it; masked keys may also come as
positions past every query (int64 max, `semantics.mla.mask_key_positions`). A query that sees
nothing gets a zero row. Positions are trusted: a position outside the cache (or the rope
tables) is not checked on the host; its write is dropped and its table row reads as zeros.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

from ._attention_kernels import (
    cache_update_kernel,
    decoupled_attention_kernel,
    latent_attention_kernel,
    lse_combine_kernel,
)
from ._common import round_mode
from .rope import layout_code, rope_block

_LOG2E = 1.4426950408889634

# H200 / H100 SXM; used only when no CUDA device can be asked (interpreter, compile checks).
_DEFAULT_SMS = 132


def _interpreted() -> bool:
    """True when the kernels were decorated under ``TRITON_INTERPRET=1`` (bf16 dot broken)."""
    return isinstance(latent_attention_kernel, InterpretedFunction)


def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return _DEFAULT_SMS


def _run(plan: tuple[list[Launch], torch.Tensor]) -> torch.Tensor:
    """Launches a planned op in order; its output."""
    launches, out = plan
    for launch in launches:
        launch()
    return out


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """x with unit stride on the last dim (a copy only when it has none)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def _u8(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(torch.uint8) if mask.dtype == torch.bool else (mask != 0).view(torch.uint8)


def _tables(
    cos: torch.Tensor | None, sin: torch.Tensor | None, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Contiguous tables (a dummy pointer without tables) and their row count."""
    if cos is None or sin is None:
        return like, like, 0
    return cos.contiguous(), sin.contiguous(), cos.shape[0]


def _check_pool(cache: torch.Tensor, block_table: torch.Tensor | None, what: str) -> None:
    if cache.stride(-1) != 1:
        raise ValueError(f"{what}: the cache's last dim must be contiguous")
    if block_table is not None and cache.stride(0) != cache.shape[1] * cache.stride(1):
        raise ValueError(f"{what}: the paged pool must be contiguous over its blocks")


def _slots(cache: torch.Tensor, block_table: torch.Tensor | None) -> int:
    """Logical cache length: ``L`` for ``[B, L, E]``, ``M * block_size`` for a pool."""
    if block_table is None:
        return cache.shape[1]
    return block_table.shape[1] * cache.shape[1]


@dataclass
class Launch:
    """One kernel launch, kept as data so that compile-only checks can replay it (AOT)."""

    kernel: Any
    grid: tuple[int, ...]
    args: tuple[Any, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 2

    def __call__(self) -> None:
        self.kernel[self.grid](
            *self.args, **self.meta, num_warps=self.num_warps, num_stages=self.num_stages
        )


# --------------------------------------------------------------------------------------------
# mla.latent_attention


@dataclass(frozen=True)
class LatentConfig:
    """Launch parameters of the MLA decode kernel.

    ``block_r`` query rows (``S * H`` flattened) per program, ``block_n`` KV slots per tile,
    ``num_splits`` programs along the KV axis (merged by the LSE combine when > 1)."""

    block_r: int
    block_n: int
    num_splits: int
    num_warps: int
    num_stages: int


def latent_config(
    batch: int,
    rows: int,
    slots: int,
    latent: int,
    entry_bytes: int,
    sms: int = _DEFAULT_SMS,
    element_bytes: int = 2,
) -> LatentConfig:
    """Heuristic launch parameters for `rows = S*H` query rows over `slots` KV slots of
    `entry_bytes` each (latent + rope part).

    - ``block_r``: all rows of a sequence, up to 32 per program at latent 512 (64 below 512),
      16 at least (the smallest MMA M); one KV tile serves every row of the program, and the
      programs of one sequence are adjacent in the grid so that their repeated reads hit L2.
      Measured on sm_90 (compile only, bf16, 576-wide entries): 32 rows x 8 warps 175 regs, no
      spill; 64 rows x 8 warps 255 regs + 176 B stack; 16 rows x 4 warps 188 regs.
    - ``num_warps``: 8 from 16 x 512 (or 32 x 256) row-channels of fp32 accumulator or scores
      on (counted twice for fp32 cache entries: 64 rows x 64 slots x 32 channels in fp32 at 4
      warps is 255 regs + 136 B stack, at 8 warps 186 regs), else 4.
    - ``block_n``: 32 slots of 576 bf16 values (36 KiB a stage, 2 stages) at latent >= 256,
      64 below.
    - ``num_splits``: enough programs for two waves over the SMs, but no more splits than keep
      the fp32 partials' traffic (write + read, ``8 * rows * latent`` bytes per split and
      sequence) under half the KV bytes read, and chunks of at least 256 slots.
    """
    block_c = max(16, triton.next_power_of_2(latent))
    block_r = min(32 if block_c >= 512 else 64, max(16, triton.next_power_of_2(rows)))
    block_n = 32 if block_c >= 256 else 64
    tile = block_r * max(block_c, block_n) * (2 if element_bytes >= 4 else 1)
    num_warps = 8 if tile >= 16 * 512 else 4
    programs = batch * triton.cdiv(rows, block_r)
    want = triton.cdiv(2 * sms, programs)
    kv_bytes = slots * entry_bytes
    by_traffic = max(1, int(0.5 * kv_bytes / (8 * rows * (latent + 1))))
    by_length = max(1, slots // 256)
    splits = max(1, min(want, by_traffic, by_length))
    return LatentConfig(block_r, block_n, splits, num_warps, num_stages=2)


def plan_latent_attention(
    q_latent: torch.Tensor,
    q_pe: torch.Tensor,
    kv_cache: torch.Tensor,
    positions: torch.Tensor,
    rope_cos: torch.Tensor | None,
    rope_sin: torch.Tensor | None,
    block_table: torch.Tensor | None,
    key_mask: torch.Tensor | None,
    *,
    kv_lora_rank: int,
    softmax_scale: float,
    rope_layout: str,
    config: LatentConfig | None = None,
) -> tuple[list[Launch], torch.Tensor]:
    """The launches of `latent_attention` and its (unwritten) output; ``config=None``: the
    `latent_config` heuristic."""
    what = "mla.latent_attention"
    b, s, h, c = q_latent.shape
    dr = q_pe.shape[-1]
    if c != kv_lora_rank or kv_cache.shape[-1] != c + dr:
        raise ValueError(f"{what}: latent {c} / rope {dr} do not match the cache entry")
    _check_pool(kv_cache, block_table, what)
    layout, rotate = layout_code(rope_layout, rope_cos, rope_sin)
    cos, sin, n_tab = _tables(rope_cos, rope_sin, q_pe)
    q_latent, q_pe = _channels_last(q_latent), _channels_last(q_pe)
    rows, slots = s * h, _slots(kv_cache, block_table)
    if config is None:
        sms = _sm_count(q_latent.device)
        elt = kv_cache.element_size()
        config = latent_config(b, rows, slots, c, (c + dr) * elt, sms, element_bytes=elt)
    block_c = max(16, triton.next_power_of_2(c))
    chunk = triton.cdiv(triton.cdiv(slots, config.num_splits), config.block_n) * config.block_n
    n_split = triton.cdiv(slots, chunk)

    out = torch.empty((b, s, h, c), dtype=q_latent.dtype, device=q_latent.device)
    if n_split > 1:
        part = torch.empty((b, rows, n_split, c), dtype=torch.float32, device=out.device)
        lse = torch.empty((b, rows, n_split), dtype=torch.float32, device=out.device)
    else:
        part = lse = out
    bt = block_table.contiguous() if block_table is not None else positions
    km = _u8(key_mask).contiguous() if key_mask is not None else positions
    args = (
        q_latent,
        q_pe,
        kv_cache,
        positions,
        cos,
        sin,
        bt,
        km,
        out,
        part,
        lse,
        s,
        h,
        c,
        dr,
        slots,
        chunk,
        n_split,
        km.shape[-1],
        n_tab,
        kv_cache.shape[1] if block_table is not None else 1,
        *q_latent.stride()[:3],
        *q_pe.stride()[:3],
        kv_cache.stride(0),
        kv_cache.stride(1),
        *positions.stride(),
        cos.stride(0),
        bt.stride(0),
        km.stride(0),
        *out.stride()[:3],
        softmax_scale * _LOG2E,
    )
    meta = {
        "BLOCK_R": config.block_r,
        "BLOCK_N": config.block_n,
        "BLOCK_C": block_c,
        "BLOCK_DR": rope_block(dr),
        "LAYOUT": layout,
        "ROTATE": rotate,
        "PAGED": block_table is not None,
        "HAS_KM": key_mask is not None,
        "SPLIT": n_split > 1,
        "UPCAST": _interpreted(),
    }
    grid = (triton.cdiv(rows, config.block_r), b, n_split)
    launches = [
        Launch(latent_attention_kernel, grid, args, meta, config.num_warps, config.num_stages)
    ]
    if n_split > 1:
        combine_meta = {
            "BLOCK_SPLIT": max(2, triton.next_power_of_2(n_split)),
            "BLOCK_C": min(block_c, 128),
        }
        combine_args = (part, lse, out, s, h, c, n_split, *out.stride()[:3])
        launches.append(Launch(lse_combine_kernel, (rows, b), combine_args, combine_meta))
    return launches, out


def latent_attention(
    q_latent: torch.Tensor,
    q_pe: torch.Tensor,
    kv_cache: torch.Tensor,
    positions: torch.Tensor,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    key_mask: torch.Tensor | None = None,
    *,
    kv_lora_rank: int,
    softmax_scale: float,
    rope_layout: str = "none",
) -> torch.Tensor:
    """`mla.latent_attention` on the GPU: ctx ``[B, S, H, C]`` over a contiguous or paged cache."""
    return _run(
        plan_latent_attention(
            q_latent,
            q_pe,
            kv_cache,
            positions,
            rope_cos,
            rope_sin,
            block_table,
            key_mask,
            kv_lora_rank=kv_lora_rank,
            softmax_scale=softmax_scale,
            rope_layout=rope_layout,
        )
    )


# --------------------------------------------------------------------------------------------
# mla.decoupled_attention


@dataclass(frozen=True)
class PrefillConfig:
    """Launch parameters of the causal prefill kernel (queries per program, keys per tile)."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


def prefill_config(queries: int, head_dim: int) -> PrefillConfig:
    """Heuristic launch parameters for `queries` per (batch, head) and q/k/v widths <= head_dim.

    128 queries x 64 keys at 8 warps from 128 queries on (the FA2/Triton-tutorial shape for
    head dims up to 128 + 64), else the next power of two >= 16 at 4 warps; 2 stages while a
    stage of K+V fits comfortably in shared memory."""
    block_m = 128 if queries >= 128 else max(16, triton.next_power_of_2(queries))
    block_n = 64 if head_dim <= 256 else 32
    num_warps = 8 if block_m >= 128 else 4
    return PrefillConfig(block_m, block_n, num_warps, num_stages=2)


def plan_decoupled_attention(
    q_nope: torch.Tensor,
    q_pe: torch.Tensor,
    k_nope: torch.Tensor,
    k_pe: torch.Tensor,
    v: torch.Tensor,
    q_positions: torch.Tensor,
    k_positions: torch.Tensor,
    rope_cos: torch.Tensor | None,
    rope_sin: torch.Tensor | None,
    key_mask: torch.Tensor | None,
    *,
    softmax_scale: float,
    rope_layout: str,
    config: PrefillConfig | None = None,
) -> tuple[list[Launch], torch.Tensor]:
    """The launch of `decoupled_attention` and its output; ``config=None``: `prefill_config`."""
    b, s, h, dn = q_nope.shape
    t, dv, dr = k_nope.shape[1], v.shape[-1], q_pe.shape[-1]
    layout, rotate = layout_code(rope_layout, rope_cos, rope_sin)
    cos, sin, n_tab = _tables(rope_cos, rope_sin, q_pe)
    q_nope, q_pe, k_nope, k_pe, v = map(_channels_last, (q_nope, q_pe, k_nope, k_pe, v))
    q_positions, k_positions = q_positions.contiguous(), k_positions.contiguous()
    if config is None:
        config = prefill_config(s, max(dn, dv) + dr)
    out = torch.empty((b, s, h, dv), dtype=q_nope.dtype, device=q_nope.device)
    km = _u8(key_mask).contiguous() if key_mask is not None else q_positions
    grid = (triton.cdiv(s, config.block_m), b * h)
    args = (
        q_nope,
        q_pe,
        k_nope,
        k_pe,
        v,
        q_positions,
        k_positions,
        cos,
        sin,
        km,
        out,
        s,
        t,
        h,
        dn,
        dv,
        dr,
        n_tab,
        *q_nope.stride()[:3],
        *q_pe.stride()[:3],
        *k_nope.stride()[:3],
        *k_pe.stride()[:2],
        *v.stride()[:3],
        q_positions.stride(0),
        k_positions.stride(0),
        cos.stride(0),
        km.stride(0),
        *out.stride()[:3],
        softmax_scale * _LOG2E,
    )
    meta = {
        "BLOCK_M": config.block_m,
        "BLOCK_N": config.block_n,
        "BLOCK_DN": max(16, triton.next_power_of_2(dn)),
        "BLOCK_DV": max(16, triton.next_power_of_2(dv)),
        "BLOCK_DR": rope_block(dr),
        "LAYOUT": layout,
        "ROTATE": rotate,
        "HAS_KM": key_mask is not None,
        "UPCAST": _interpreted(),
        "BLOCK_SCAN": min(1024, max(16, triton.next_power_of_2(t))),
    }
    kernel = decoupled_attention_kernel
    return [Launch(kernel, grid, args, meta, config.num_warps, config.num_stages)], out


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
    key_mask: torch.Tensor | None = None,
    *,
    softmax_scale: float,
    rope_layout: str = "none",
) -> torch.Tensor:
    """`mla.decoupled_attention` on the GPU: causal-by-position prefill, out ``[B, S, H, dv]``."""
    return _run(
        plan_decoupled_attention(
            q_nope,
            q_pe,
            k_nope,
            k_pe,
            v,
            q_positions,
            k_positions,
            rope_cos,
            rope_sin,
            key_mask,
            softmax_scale=softmax_scale,
            rope_layout=rope_layout,
        )
    )


# --------------------------------------------------------------------------------------------
# mla.cache_update


def plan_cache_update(
    cache: torch.Tensor,
    entries: torch.Tensor,
    positions: torch.Tensor,
    rope_cos: torch.Tensor | None,
    rope_sin: torch.Tensor | None,
    block_table: torch.Tensor | None,
    *,
    rope_layout: str,
    norm: tuple[torch.Tensor, float] | None = None,
) -> tuple[list[Launch], torch.Tensor]:
    """The launch of `cache_update` (into `cache` itself); with `norm` = (weight, eps) the
    channels before the rotary part are RMSNorm'd on the way.

    One program writes up to 16 entries of one sequence (a 1-2 KiB row each: a pure copy, so
    the heuristic only keeps programs few and rows many)."""
    what = "mla.cache_update"
    b, s, e = entries.shape
    _check_pool(cache, block_table, what)
    layout, rotate = layout_code(rope_layout, rope_cos, rope_sin)
    cos, sin, n_tab = _tables(rope_cos, rope_sin, entries)
    dr = 2 * rope_cos.shape[1] if rope_cos is not None else 0
    entries, positions = _channels_last(entries), positions.contiguous()
    bt = block_table.contiguous() if block_table is not None else positions
    if norm is not None and norm[0].shape != (e - dr,):
        raise ValueError(
            f"{what}: norm weight of shape {tuple(norm[0].shape)} for {e - dr} latent channels"
        )
    weight = norm[0].contiguous() if norm is not None else entries
    block_s = min(16, triton.next_power_of_2(max(s, 1)))
    grid = (triton.cdiv(s, block_s), b)
    args = (
        cache,
        entries,
        positions,
        cos,
        sin,
        bt,
        weight,
        s,
        e,
        e - dr,
        dr,
        _slots(cache, block_table),
        n_tab,
        cache.shape[1] if block_table is not None else 1,
        float(norm[1]) if norm is not None else 0.0,
        cache.stride(0),
        cache.stride(1),
        entries.stride(0),
        entries.stride(1),
        positions.stride(0),
        cos.stride(0),
        bt.stride(0),
    )
    meta = {
        "BLOCK_S": block_s,
        "BLOCK_E": triton.next_power_of_2(max(e - dr, 1)),
        "BLOCK_DR": rope_block(max(dr, 2)),
        "LAYOUT": layout,
        "ROTATE": rotate,
        "PAGED": block_table is not None,
        "NORM": norm is not None,
        "ROUND": round_mode(entries.dtype) if norm is not None else 0,
    }
    return [Launch(cache_update_kernel, grid, args, meta)], cache


def cache_update_(
    cache: torch.Tensor,
    entries: torch.Tensor,
    positions: torch.Tensor,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    *,
    rope_layout: str = "none",
) -> torch.Tensor:
    """`mla.cache_update` in place (the form for a donated cache, `Step.in_place`): writes the
    entries (RoPE on the last dr channels with tables) into `cache` at their positions and
    returns `cache` itself."""
    return _run(
        plan_cache_update(
            cache, entries, positions, rope_cos, rope_sin, block_table, rope_layout=rope_layout
        )
    )


def _value_form(update_: Callable[..., torch.Tensor], doc: str) -> Callable[..., torch.Tensor]:
    """The value form of an in-place cache update: the same call on a copy of the cache (the
    caller's cache is left as it was). Keeps `update_`'s signature."""

    @functools.wraps(update_)
    def update(cache: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return update_(cache.clone(memory_format=torch.contiguous_format), *args, **kwargs)

    update.__name__ = update.__qualname__ = update_.__name__.rstrip("_")
    update.__doc__ = doc
    return update


def norm_cache_update_(
    cache: torch.Tensor,
    kv: torch.Tensor,
    norm_weight: torch.Tensor,
    positions: torch.Tensor,
    rope_cos: torch.Tensor | None = None,
    rope_sin: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    *,
    eps: float,
    rope_layout: str = "none",
) -> torch.Tensor:
    """``triton.norm_cache_update`` in place: the `mla.cache_update` of
    ``cat([rms_norm(kv[..., :C], norm_weight), kv[..., C:]], -1)`` (C = the weight's length,
    the rest the rotary part) written into `cache` (returned) in one kernel."""
    return _run(
        plan_cache_update(
            cache,
            kv,
            positions,
            rope_cos,
            rope_sin,
            block_table,
            rope_layout=rope_layout,
            norm=(norm_weight, eps),
        )
    )


cache_update = _value_form(
    cache_update_,
    """`mla.cache_update` with value semantics (the op's definition): a copy of `cache` with
    the entries written; executors run `cache_update_` where the plan donates the cache.""",
)
norm_cache_update = _value_form(
    norm_cache_update_,
    """``triton.norm_cache_update`` with value semantics (a written copy of `cache`).""",
)


KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "mla.latent_attention": latent_attention,
    "mla.decoupled_attention": decoupled_attention,
    "mla.cache_update": cache_update,
}

# The plan fusion of the kv norm into the cache write (`backends/triton/fusion.py`).
FUSED_KERNELS: dict[str, Callable[..., Any]] = {"triton.norm_cache_update": norm_cache_update}

# In-place forms (`semantics.registry.IN_PLACE`): what a step that updates a donated buffer
# runs (`TritonExecutor.in_place_forms`); for a fused op, the operand it updates.
IN_PLACE_KERNELS: dict[str, Callable[..., Any]] = {
    "mla.cache_update": cache_update_,
    "triton.norm_cache_update": norm_cache_update_,
}
IN_PLACE_OPERANDS = {"triton.norm_cache_update": "cache"}

__all__ = [
    "FUSED_KERNELS",
    "IN_PLACE_KERNELS",
    "IN_PLACE_OPERANDS",
    "KERNELS",
    "LatentConfig",
    "PrefillConfig",
    "cache_update",
    "cache_update_",
    "decoupled_attention",
    "latent_attention",
    "latent_config",
    "norm_cache_update",
    "norm_cache_update_",
    "prefill_config",
]
