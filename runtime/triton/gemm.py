"""One tiled GEMM kernel for dense, grouped (MoE) and FP8 block-scaled matmuls.

``out[r, n] = Σ_k x[r, k] · w[e(r), n, k]`` with fp32 accumulation, where ``e(r)`` is the
expert whose segment ``[offsets[e], offsets[e+1])`` holds row ``r`` (grouped) or 0 (dense).
As in vLLM's fused_moe, every M-block belongs to one expert: program ``pid_m`` finds its
expert and block from a prefix sum of the per-expert block counts (computed in the kernel
from ``offsets``: no host synchronization, so CUDA graphs can capture it); programs past the
last block zero the rows after ``offsets[E]``. Epilogues (constexpr switches):

- ``SWIGLU``: ``w`` holds ``[gate; up]`` (2I rows); each program keeps two accumulators and
  writes ``silu(gate) * up`` (`moe.swiglu` fused into the gate/up GEMM; one read of x);
- ``ROW_WEIGHT``: the result, rounded to the semantics' dtype, times a per-row fp32 weight,
  stored in fp32 (the routed weight fused into the down GEMM; `moe.combine` then only sums);
- ``FP8``: per 128-wide K block, the fp32 product of the raw fp8 values times
  ``x_scale[r, kb] * w_scale[e, n // block_n, kb]`` is added to the accumulator (DeepGEMM's
  promotion, as `fp8.matmul` defines it); ``HAS_BIAS``: ``+ bias[n]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ._common import INTERPRET, check_device, dot_precision, mma, next_pow2, round_mode, round_to


@triton.jit
def _gemm_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    offsets_ptr,
    bias_ptr,
    row_weight_ptr,
    xs_ptr,
    ws_ptr,
    M,
    N,
    K,
    num_experts,
    stride_xm,
    stride_xk,
    stride_we,
    stride_wn,
    stride_wk,
    stride_om,
    stride_on,
    stride_xsm,
    stride_xsk,
    stride_wse,
    stride_wsn,
    stride_wsk,
    GROUPED: tl.constexpr,
    SWIGLU: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ROW_WEIGHT: tl.constexpr,
    FP8: tl.constexpr,
    SCALE_BN: tl.constexpr,
    ROUND_Y: tl.constexpr,
    UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    """N is the number of output columns (I for SWIGLU, whose weight has 2I rows)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = cols < N
    if GROUPED:
        oe = tl.arange(0, BLOCK_E)
        in_e = oe < num_experts
        starts = tl.load(offsets_ptr + oe, mask=in_e, other=0).to(tl.int64)
        ends = tl.load(offsets_ptr + oe + 1, mask=in_e, other=0).to(tl.int64)
        tiles = tl.maximum((ends - starts + BLOCK_M - 1) // BLOCK_M, 0)
        cum = tl.cumsum(tiles, 0)
        e = tl.sum((cum <= pid_m).to(tl.int32), 0)
        total = tl.sum(tiles, 0)
        if e >= num_experts:
            # past the last block: zero rows [offsets[E], M), one BLOCK_M slice per program
            tail0 = tl.load(offsets_ptr + num_experts).to(tl.int64)
            rows = tail0 + (pid_m - total) * BLOCK_M + tl.arange(0, BLOCK_M)
            zero = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            o_ptrs = out_ptr + rows[:, None] * stride_om + cols[None, :] * stride_on
            tl.store(o_ptrs, zero, mask=(rows[:, None] < M) & mask_n[None, :])
            return
        sel = oe == e
        first = tl.sum(tl.where(sel, cum - tiles, 0), 0)
        row0 = tl.sum(tl.where(sel, starts, 0), 0) + (pid_m - first) * BLOCK_M
        row_end = tl.sum(tl.where(sel, ends, 0), 0)
        expert = e.to(tl.int64)
    else:
        row0 = pid_m * BLOCK_M
        row_end = M
        expert = 0
    rows = row0 + tl.arange(0, BLOCK_M)
    mask_m = (rows < row_end) & (rows < M)
    w_base = w_ptr + expert * stride_we
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        mask_k = ks < K
        a = tl.load(
            x_ptr + rows[:, None] * stride_xm + ks[None, :] * stride_xk,
            mask=mask_m[:, None] & mask_k[None, :],
            other=0.0,
        )
        b = tl.load(
            w_base + cols[None, :] * stride_wn + ks[:, None] * stride_wk,
            mask=mask_n[None, :] & mask_k[:, None],
            other=0.0,
        )
        part = mma(a, b, UPCAST, PRECISION)
        if SWIGLU:
            b_up = tl.load(
                w_base + (cols[None, :] + N) * stride_wn + ks[:, None] * stride_wk,
                mask=mask_n[None, :] & mask_k[:, None],
                other=0.0,
            )
            part_up = mma(a, b_up, UPCAST, PRECISION)
        if FP8:
            kb = k0 // BLOCK_K
            xs = tl.load(xs_ptr + rows * stride_xsm + kb * stride_xsk, mask=mask_m, other=0.0)
            ws_base = ws_ptr + expert * stride_wse + kb * stride_wsk
            ws = tl.load(ws_base + (cols // SCALE_BN) * stride_wsn, mask=mask_n, other=0.0)
            acc += part * (xs[:, None] * ws[None, :])
            if SWIGLU:
                ws_up = tl.load(
                    ws_base + ((cols + N) // SCALE_BN) * stride_wsn, mask=mask_n, other=0.0
                )
                acc_up += part_up * (xs[:, None] * ws_up[None, :])
        else:
            acc += part
            if SWIGLU:
                acc_up += part_up
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    y = acc
    if SWIGLU:
        # semantics: h = gemm in the input dtype; silu(gate) and the product in that dtype
        gate = round_to(acc, ROUND_Y)
        up = round_to(acc_up, ROUND_Y)
        silu = round_to(gate / (1.0 + tl.exp(-gate)), ROUND_Y)
        y = silu * up
    y = round_to(y, ROUND_Y)
    if ROW_WEIGHT:
        rw = tl.load(row_weight_ptr + rows, mask=mask_m, other=0.0)
        y = y * rw[:, None]
    o_ptrs = out_ptr + rows[:, None] * stride_om + cols[None, :] * stride_on
    tl.store(o_ptrs, y, mask=mask_m[:, None] & mask_n[None, :])


@dataclass(frozen=True)
class Tiles:
    """Launch configuration of one GEMM."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


def choose_tiles(rows_per_group: float, n: int, k: int, fp8_block_k: int | None) -> Tiles:
    """Tile heuristic. M-blocks follow the expected rows per expert (decode: 16, the smallest
    `tl.dot` tile, so no weight tile is read for padding rows it does not need); N/K tiles
    128/64 on a GPU (weights streamed in 128-wide slabs); under the interpreter, where every
    program costs ~ms of Python whatever its tile, large tiles and few programs. FP8 K tiles
    are the scale block (128)."""
    if rows_per_group <= 16:
        bm = 16
    elif rows_per_group <= 32:
        bm = 32
    elif rows_per_group <= 64:
        bm = 64
    else:
        bm = 128
    if INTERPRET:
        # every program costs ~ms of Python, whatever its tile: few, large tiles
        bm = 64
        bn = min(next_pow2(n, 16), 128)
        bk = min(next_pow2(k, 16), 128)
    else:
        bn = 128 if bm >= 64 else 64
        bk = 64
    if fp8_block_k is not None:
        bk = fp8_block_k
    # 8 warps for 128x128 tiles and for fp8 K slabs of 128: at 4 warps the fp8 SwiGLU GEMM
    # (two accumulators) spills on sm_90 (255 registers + 448 B stack; 239 and none at 8)
    warps = 8 if bm * bn >= 128 * 128 or bk >= 128 else 4
    return Tiles(bm, bn, bk, warps, 3 if bk <= 64 else 2)


def gemm(
    x: torch.Tensor,
    w: torch.Tensor,
    out: torch.Tensor,
    *,
    offsets: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    row_weight: torch.Tensor | None = None,
    swiglu: bool = False,
    x_scale: torch.Tensor | None = None,
    w_scale: torch.Tensor | None = None,
    block_n: int = 128,
    block_k: int = 128,
    round_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Launches `_gemm_kernel`: x ``[M, K]``, w ``[N, K]`` (dense) or ``[E, N, K]`` (grouped,
    with ``offsets`` ``[E+1]``), out ``[M, N or N/2]``; returns out."""
    check_device(x, w, out)
    grouped = offsets is not None
    fp8 = x_scale is not None
    w3 = w if grouped else w.unsqueeze(0)
    m, k = x.shape
    experts, n_w, _ = w3.shape
    n = n_w // 2 if swiglu else n_w
    if fp8 and (block_k < 16 or block_k & (block_k - 1)):
        raise ValueError(f"Triton fp8 GEMM: block_k must be a power of two >= 16, got {block_k}")
    rows_per_group = m / max(experts, 1) if grouped else m
    t = choose_tiles(rows_per_group, n, k, block_k if fp8 else None)
    grid_m = triton.cdiv(m, t.block_m) + (experts + 1 if grouped else 0)
    grid = (grid_m, triton.cdiv(n, t.block_n))
    dummy = out
    if fp8:
        xs = x_scale.reshape(m, -1)
        ws = w_scale if grouped else w_scale.unsqueeze(0)
        xs_strides = xs.stride()
        ws_strides = ws.stride()
    else:
        xs = ws = dummy
        xs_strides, ws_strides = (0, 0), (0, 0, 0)
    upcast = INTERPRET and (x.dtype != torch.float32 or w.dtype != torch.float32)
    _gemm_kernel[grid](
        x,
        w3,
        out,
        offsets if grouped else dummy,
        bias if bias is not None else dummy,
        row_weight if row_weight is not None else dummy,
        xs,
        ws,
        m,
        n,
        k,
        experts,
        x.stride(0),
        x.stride(1),
        w3.stride(0),
        w3.stride(1),
        w3.stride(2),
        out.stride(0),
        out.stride(1),
        *xs_strides,
        *ws_strides,
        GROUPED=grouped,
        SWIGLU=swiglu,
        HAS_BIAS=bias is not None,
        ROW_WEIGHT=row_weight is not None,
        FP8=fp8,
        SCALE_BN=block_n,
        ROUND_Y=round_mode(round_dtype or out.dtype),
        UPCAST=upcast,
        PRECISION=dot_precision(x.dtype, w.dtype),
        BLOCK_M=t.block_m,
        BLOCK_N=t.block_n,
        BLOCK_K=t.block_k,
        BLOCK_E=next_pow2(experts + 1, 16),
        num_warps=t.num_warps,
        num_stages=t.num_stages,
    )
    return out


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`torch.aten.linear`: ``x · weight^T + bias`` (fp32 accumulation, x's dtype)."""
    x2 = _flat(x)
    out = torch.empty((x2.shape[0], weight.shape[0]), dtype=x.dtype, device=x.device)
    gemm(x2, weight, out, bias=bias)
    return out.reshape(*x.shape[:-1], weight.shape[0])


def mm(x: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    """`torch.aten.mm`: ``x @ mat2`` (mat2 read through its strides, not copied)."""
    out = torch.empty((x.shape[0], mat2.shape[1]), dtype=x.dtype, device=x.device)
    return gemm(x, mat2.t(), out)


KERNELS = {"torch.aten.linear": linear, "torch.aten.mm": mm}
