"""`torch.aten.embedding`: rows of a table gathered by index, one program per ``ROWS`` indices
and ``BLOCK_D`` columns (a pure copy, so the result equals torch's bit for bit).

Indices out of ``[0, num_embeddings)`` are one error (as torch's): checked on the host, except
while a CUDA graph is being captured (no host synchronization there; such rows read zeros)
and on ``meta`` tensors (the compile-time sm_90 check).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import INTERPRET, check_device, next_pow2


@triton.jit
def _embedding_kernel(
    w_ptr,
    idx_ptr,
    out_ptr,
    n_idx,
    n_rows,
    d,
    stride_w,
    ROWS: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    idx = tl.load(idx_ptr + i, mask=i < n_idx, other=0).to(tl.int64)
    ok = (i < n_idx) & (idx >= 0) & (idx < n_rows)
    mask = ok[:, None] & (cols < d)[None, :]
    row = tl.load(w_ptr + idx[:, None] * stride_w + cols[None, :], mask=mask, other=0.0)
    tl.store(
        out_ptr + i[:, None] * d + cols[None, :],
        row,
        mask=(i < n_idx)[:, None] & (cols < d)[None, :],
    )


def embedding(
    weight: torch.Tensor,
    indices: torch.Tensor,
    padding_idx: int = -1,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> torch.Tensor:
    """`torch.aten.embedding` (forward): ``weight[indices]``; the training-only arguments
    (padding_idx, scale_grad_by_freq, sparse) change nothing in a forward pass."""
    check_device(weight, indices)
    n_rows, d = weight.shape
    w = weight if weight.stride(-1) == 1 else weight.contiguous()
    idx = indices.reshape(-1).contiguous()
    capturing = weight.is_cuda and torch.cuda.is_current_stream_capturing()
    if idx.numel() and not capturing and idx.device.type != "meta":  # meta: no values
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n_rows:
            raise IndexError(f"embedding index out of range: [{lo}, {hi}] for {n_rows} rows")
    out = torch.empty((idx.numel(), d), dtype=weight.dtype, device=weight.device)
    if idx.numel() and d:
        block_d = min(next_pow2(d, 16), 4096 if INTERPRET else 1024)
        rows = min(next_pow2(idx.numel()), max(1, 8192 // block_d)) if INTERPRET else 1
        grid = (triton.cdiv(idx.numel(), rows), triton.cdiv(d, block_d))
        _embedding_kernel[grid](
            w, idx, out, idx.numel(), n_rows, d, w.stride(0), ROWS=rows, BLOCK_D=block_d
        )
    return out.reshape(*indices.shape, d)


KERNELS = {"torch.aten.embedding": embedding}
