"""Grouped DeepSeekMoE kernels: dispatch, grouped GEMM (+ fused SwiGLU / routed weight),
SwiGLU, combine.

The `--moe-group-experts` pass emits ``dispatch -> grouped_matmul(w13) -> swiglu ->
grouped_matmul(w_down) -> combine``. Each op has a kernel with the op's exact signature
(`KERNELS`); the `triton` target also fuses the chain on its plan (`FUSED_KERNELS`):

- ``triton.grouped_matmul_swiglu`` = grouped_matmul + swiglu (gate and up accumulators in
  one program, ``silu(gate) * up`` in the epilogue: h ``[P, 2I]`` never reaches memory);
- ``triton.grouped_matmul_weighted`` = the down grouped_matmul with each row's routed weight
  applied in the epilogue (fp32 rows), and ``triton.combine_weighted`` then sums a token's
  rows. Rounding happens where the unfused ops round, so the result equals theirs.

Dispatch is two kernels with no host synchronization: a one-program "align" kernel (ranks of
each (token, slot) pair inside its expert, padded segment offsets, and for every row of the
sorted buffer the pair it holds) and a row gather that writes each sorted row once: its
token's values, or zeros for block padding (no separate zero fill of the buffer).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import INTERPRET, check_device, next_pow2, round_mode, round_to
from .gemm import gemm


@triton.jit
def _align_kernel(
    idx_ptr,
    rows_ptr,
    offsets_ptr,
    pair_of_row_ptr,
    num_pairs,
    num_experts,
    block_size,
    BLOCK: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    """rows[p] = offsets[e_p] + rank of pair p among its expert's pairs; offsets[E+1];
    pair_of_row[rows[p]] = p (rows no pair holds keep their -1)."""
    oe = tl.arange(0, BLOCK_E)
    expert_cols = oe < num_experts  # an id outside [0, E) matches no column
    running = tl.zeros((BLOCK_E,), dtype=tl.int64)
    for p0 in range(0, num_pairs, BLOCK):
        p = p0 + tl.arange(0, BLOCK)
        mask = p < num_pairs
        e = tl.load(idx_ptr + p, mask=mask, other=-1).to(tl.int64)
        onehot = ((e[:, None] == oe[None, :]) & expert_cols[None, :]).to(tl.int64)
        before = tl.cumsum(onehot, 0) - onehot + running[None, :]
        rank = tl.sum(onehot * before, 1)
        tl.store(rows_ptr + p, rank, mask=mask)
        running += tl.sum(onehot, 0)
    padded = (running + block_size - 1) // block_size * block_size
    ends = tl.cumsum(padded, 0)
    starts = ends - padded
    tl.store(offsets_ptr + 1 + oe, ends, mask=oe < num_experts)
    tl.store(offsets_ptr + oe, tl.zeros((BLOCK_E,), dtype=tl.int64), mask=oe == 0)
    tl.debug_barrier()
    for p0 in range(0, num_pairs, BLOCK):
        p = p0 + tl.arange(0, BLOCK)
        mask = p < num_pairs
        e = tl.load(idx_ptr + p, mask=mask, other=-1).to(tl.int64)
        mine = (e[:, None] == oe[None, :]) & expert_cols[None, :]
        start = tl.sum(tl.where(mine, starts[None, :], 0), 1)
        row = tl.load(rows_ptr + p, mask=mask, other=0) + start
        tl.store(rows_ptr + p, row, mask=mask)
        tl.store(pair_of_row_ptr + row, p.to(tl.int32), mask=mask & (e >= 0) & (e < num_experts))


@triton.jit
def _gather_rows_kernel(
    x_ptr, pair_of_row_ptr, out_ptr, D, TOP_K, stride_x, stride_o, BLOCK_D: tl.constexpr
):
    """out[r] = x[pair_of_row[r] // TOP_K], or zeros where no pair holds row r (program axis
    0: the row; axis 1: BLOCK_D columns)."""
    r = tl.program_id(0).to(tl.int64)  # r * stride_o passes 2^31 at ~35k V3 tokens
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    pair = tl.load(pair_of_row_ptr + r) + tl.zeros((BLOCK_D,), dtype=tl.int32)
    held = pair >= 0
    token = (tl.where(held, pair, 0) // TOP_K).to(tl.int64)
    mask = cols < D
    v = tl.load(x_ptr + token * stride_x + cols, mask=mask & held, other=0.0)
    tl.store(out_ptr + r * stride_o + cols, v, mask=mask)


@triton.jit
def _scatter_weights_kernel(rows_ptr, w_ptr, out_ptr, num_pairs, BLOCK: tl.constexpr):
    """out[rows[p]] = weights[p] (the routed weight of each dispatched row)."""
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = p < num_pairs
    rows = tl.load(rows_ptr + p, mask=mask, other=0)
    tl.store(out_ptr + rows, tl.load(w_ptr + p, mask=mask, other=0.0).to(tl.float32), mask=mask)


@triton.jit
def _swiglu_kernel(
    h_ptr, out_ptr, M, inter, stride_h, stride_o, ROUND: tl.constexpr, BLOCK: tl.constexpr
):
    """out[r, j] = silu(h[r, j]) * h[r, inter + j] in h's dtype (ROUND)."""
    r = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < inter
    g = tl.load(h_ptr + r * stride_h + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(h_ptr + r * stride_h + inter + cols, mask=mask, other=0.0).to(tl.float32)
    s = round_to(g / (1.0 + tl.exp(-g)), ROUND)
    tl.store(out_ptr + r * stride_o + cols, round_to(s * u, ROUND), mask=mask)


@triton.jit
def _combine_kernel(
    y_ptr,
    rows_ptr,
    w_ptr,
    out_ptr,
    D,
    TOP_K,
    stride_y,
    stride_o,
    WEIGHTED: tl.constexpr,
    ROUND: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """out[n] = Σ_k weights[n,k] · y[rows[n,k]] in fp32, k in order (y pre-weighted: Σ_k y)."""
    n = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = cols < D
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for k in range(0, TOP_K):
        row = tl.load(rows_ptr + n * TOP_K + k)
        y = tl.load(y_ptr + row * stride_y + cols, mask=mask, other=0.0).to(tl.float32)
        if WEIGHTED:
            acc += y
        else:
            acc += y * tl.load(w_ptr + n * TOP_K + k).to(tl.float32)
    tl.store(out_ptr + n * stride_o + cols, round_to(acc, ROUND), mask=mask)


def _block_d(d: int) -> int:
    return min(next_pow2(d, 16), 128 if INTERPRET else 1024)


def dispatch(
    x: torch.Tensor, indices: torch.Tensor, *, num_experts: int, block_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`moe.dispatch`: ``(x_sorted [P,D], row_of [N,K] int64, expert_offsets [E+1] int64)``.

    Indices are trusted to lie in ``[0, E)`` (checking would synchronize with the host; the
    router kernel cannot produce others); a pair with another id gets no row of its own: its
    ``row_of`` entry is 0 and nothing is written for it."""
    check_device(x, indices)
    n, k = indices.shape
    d = x.shape[1]
    idx = indices.contiguous()
    xc = x if x.stride(-1) == 1 else x.contiguous()
    pairs = n * k
    rows = torch.empty((n, k), dtype=torch.int64, device=x.device)
    offsets = torch.empty(num_experts + 1, dtype=torch.int64, device=x.device)
    padded_rows = pairs + num_experts * (block_size - 1)
    pair_of_row = torch.full((padded_rows,), -1, dtype=torch.int32, device=x.device)
    block_e = next_pow2(num_experts + 1, 16)
    _align_kernel[(1,)](
        idx,
        rows,
        offsets,
        pair_of_row,
        pairs,
        num_experts,
        block_size,
        BLOCK=max(16, min(64, 8192 // block_e)),
        BLOCK_E=block_e,
        num_warps=16 if block_e >= 256 else 4,
    )
    x_sorted = torch.empty((padded_rows, d), dtype=x.dtype, device=x.device)
    if padded_rows:
        bd = _block_d(d)
        _gather_rows_kernel[(padded_rows, triton.cdiv(d, bd))](
            xc, pair_of_row, x_sorted, d, k, xc.stride(0), x_sorted.stride(0), BLOCK_D=bd
        )
    return x_sorted, rows, offsets


def grouped_matmul(x: torch.Tensor, w: torch.Tensor, expert_offsets: torch.Tensor) -> torch.Tensor:
    """`moe.grouped_matmul`: ``out[r] = w[e] · x[r]`` for the rows of expert e; other rows 0."""
    out = torch.empty((x.shape[0], w.shape[1]), dtype=x.dtype, device=x.device)
    return gemm(x, w, out, offsets=expert_offsets)


def swiglu(h: torch.Tensor) -> torch.Tensor:
    """`moe.swiglu`: ``silu(h[..., :I]) * h[..., I:]`` for h ``[..., 2I]``."""
    check_device(h)
    h2 = h.reshape(-1, h.shape[-1])
    if h2.stride(-1) != 1:
        h2 = h2.contiguous()
    m, two_i = h2.shape
    i = two_i // 2
    out = torch.empty((m, i), dtype=h.dtype, device=h.device)
    if m:
        block = _block_d(i)
        _swiglu_kernel[(m, triton.cdiv(i, block))](
            h2, out, m, i, h2.stride(0), out.stride(0), ROUND=round_mode(h.dtype), BLOCK=block
        )
    return out.reshape(*h.shape[:-1], i)


def _combine(
    y: torch.Tensor, row_of: torch.Tensor, weights: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    check_device(y, row_of)
    n, k = row_of.shape
    d = y.shape[1]
    rows = row_of.contiguous()
    out = torch.empty((n, d), dtype=dtype, device=y.device)
    if n:
        bd = _block_d(d)
        _combine_kernel[(n, triton.cdiv(d, bd))](
            y,
            rows,
            weights.contiguous() if weights is not None else y,
            out,
            d,
            k,
            y.stride(0),
            out.stride(0),
            WEIGHTED=weights is None,
            ROUND=round_mode(dtype),
            BLOCK_D=bd,
        )
    return out


def combine(y: torch.Tensor, row_of: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`moe.combine`: ``out[n] = Σ_k weights[n,k] · y[row_of[n,k]]`` (fp32 sum), y's dtype."""
    return _combine(y, row_of, weights, y.dtype)


# --- fused forms (the `triton` target's plan rewrites; see backends/triton/fusion.py) ---


def _gm_args(args: tuple) -> dict:
    """Keyword arguments of `gemm` for (x, w, offsets) or fp8 (x_q, x_s, w_q, w_s, offsets)."""
    if len(args) == 3:
        x, w, offsets = args
        return {"x": x, "w": w, "offsets": offsets}
    x_q, x_s, w_q, w_s, offsets = args
    return {"x": x_q, "w": w_q, "offsets": offsets, "x_scale": x_s, "w_scale": w_s}


def _out_dtype(gm: dict, out_dtype: str | None) -> torch.dtype:
    if out_dtype is None:
        return gm["x"].dtype
    from ..semantics.fp8 import torch_dtype

    return torch_dtype(out_dtype)


def grouped_matmul_swiglu(
    *args: torch.Tensor,
    block_n: int = 128,
    block_k: int = 128,
    out_dtype: str | None = None,
) -> torch.Tensor:
    """``moe.swiglu(grouped_matmul(...))`` (or of `fp8.grouped_matmul`) in one kernel."""
    gm = _gm_args(args)
    dtype = _out_dtype(gm, out_dtype)
    x, w = gm["x"], gm["w"]
    out = torch.empty((x.shape[0], w.shape[1] // 2), dtype=dtype, device=x.device)
    return gemm(**gm, out=out, swiglu=True, block_n=block_n, block_k=block_k)


def grouped_matmul_weighted(
    *args: torch.Tensor,
    block_n: int = 128,
    block_k: int = 128,
    out_dtype: str | None = None,
) -> torch.Tensor:
    """The down grouped matmul of a combine: fp32 rows ``round(w[e] · x[r]) * weight(r)``.

    ``args`` = the grouped matmul's operands, then the combine's ``row_of`` and ``weights``."""
    gm = _gm_args(args[:-2])
    row_of, weights = args[-2:]
    dtype = _out_dtype(gm, out_dtype)
    x, w = gm["x"], gm["w"]
    check_device(row_of, weights)
    row_weight = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
    pairs = row_of.numel()
    if pairs:
        _scatter_weights_kernel[(triton.cdiv(pairs, 256),)](
            row_of.contiguous(), weights.contiguous(), row_weight, pairs, BLOCK=256
        )
    out = torch.empty((x.shape[0], w.shape[1]), dtype=torch.float32, device=x.device)
    return gemm(
        **gm,
        out=out,
        row_weight=row_weight,
        block_n=block_n,
        block_k=block_k,
        round_dtype=dtype,
    )


def combine_weighted(y: torch.Tensor, row_of: torch.Tensor, *, out_dtype: str) -> torch.Tensor:
    """`moe.combine` of rows that already carry their routed weight (fp32 ``y``)."""
    from ..semantics.fp8 import torch_dtype

    return _combine(y, row_of, None, torch_dtype(out_dtype))


def mlp(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor):
    """`moe.mlp`: SwiGLU FFN ``w_down · (silu(w_gate · x) * (w_up · x))`` over x ``[..., D]``,
    rounding where the semantics round (each GEMM and the SwiGLU in x's dtype): the gate and
    up GEMMs write the two halves of one ``[M, 2I]`` buffer, `swiglu` reads it, a dense GEMM
    projects down (4 launches, no weight copies)."""
    check_device(x, w_gate, w_up, w_down)
    x2 = x.reshape(-1, x.shape[-1])
    inter = w_gate.shape[0]
    h = torch.empty((x2.shape[0], 2 * inter), dtype=x.dtype, device=x.device)
    gemm(x2, w_gate, h[:, :inter])
    gemm(x2, w_up, h[:, inter:])
    out = torch.empty((x2.shape[0], w_down.shape[0]), dtype=x.dtype, device=x.device)
    gemm(swiglu(h), w_down, out)
    return out.reshape(*x.shape[:-1], w_down.shape[0])


KERNELS = {
    "moe.mlp": mlp,
    "moe.dispatch": dispatch,
    "moe.grouped_matmul": grouped_matmul,
    "moe.swiglu": swiglu,
    "moe.combine": combine,
}

FUSED_KERNELS = {
    "triton.grouped_matmul_swiglu": grouped_matmul_swiglu,
    "triton.grouped_matmul_weighted": grouped_matmul_weighted,
    "triton.combine_weighted": combine_weighted,
}
