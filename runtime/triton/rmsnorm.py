"""RMSNorm (`mla.rms_norm`) and RMSNorm with a fused residual add, one program per row (on a
GPU; ``ROWS`` rows per program under the interpreter).

As Liger's kernel: the row is read once into registers (``BLOCK`` >= D, 8192 for DeepSeek-V3's
7168), statistics in fp32, weight applied in fp32, one rounding to the output dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import INTERPRET, check_device, next_pow2, round_mode, round_to


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    res_ptr,
    w_ptr,
    out_ptr,
    res_out_ptr,
    M,
    D,
    eps,
    stride_x,
    stride_r,
    stride_o,
    stride_ro,
    HAS_RESIDUAL: tl.constexpr,
    ROUND: tl.constexpr,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr = 1,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    mask = (rows[:, None] < M) & (cols[None, :] < D)
    x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0)
    x = x.to(tl.float32)
    if HAS_RESIDUAL:
        r = tl.load(res_ptr + rows[:, None] * stride_r + cols[None, :], mask=mask, other=0.0)
        x = round_to(x + r.to(tl.float32), ROUND)  # the residual stream is stored in its dtype
        tl.store(res_out_ptr + rows[:, None] * stride_ro + cols[None, :], x, mask=mask)
    mean = tl.sum(x * x, 1) / D
    inv = tl.math.rsqrt(mean + eps)
    w = tl.load(w_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
    y = round_to(x * inv[:, None] * w[None, :], ROUND)
    tl.store(out_ptr + rows[:, None] * stride_o + cols[None, :], y, mask=mask)


def _launch(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One launch; `out`: the rows ``[N, D]`` (any row stride) to write instead of a new
    buffer."""
    check_device(x, weight, residual)
    d = x.shape[-1]
    x2 = x.reshape(-1, d)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    if out is None:
        out = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    res2 = res_out = None
    if residual is not None:
        res2 = residual.reshape(-1, d)
        if res2.stride(-1) != 1:
            res2 = res2.contiguous()
        res_out = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    rows = x2.shape[0]
    block = next_pow2(d, 16)
    # one row per program on a GPU; under the interpreter (milliseconds a program) many
    per = min(next_pow2(rows), max(1, 4096 // block)) if INTERPRET else 1
    if rows:
        _rms_norm_kernel[(triton.cdiv(rows, per),)](
            x2,
            res2 if res2 is not None else x2,
            weight,
            out,
            res_out if res_out is not None else out,
            rows,
            d,
            float(eps),
            x2.stride(0),
            res2.stride(0) if res2 is not None else 0,
            out.stride(0),
            res_out.stride(0) if res_out is not None else 0,
            HAS_RESIDUAL=residual is not None,
            ROUND=round_mode(x.dtype),
            BLOCK=block,
            ROWS=per,
            num_warps=min(max(block // 256, 1), 16),
        )
    out = out.reshape(x.shape)
    return out, None if res_out is None else res_out.reshape(x.shape)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, *, eps: float) -> torch.Tensor:
    """`mla.rms_norm`: ``x / sqrt(mean(x^2, -1) + eps) * weight`` in fp32, in x's dtype."""
    return _launch(x, None, weight, eps)[0]


def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, *, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, rms_norm(s))`` with ``s = x + residual`` in x's dtype: the residual add of a
    decoder layer fused into the next norm (one read of each input, one write of each output)."""
    out, s = _launch(x, residual, weight, eps)
    assert s is not None
    return s, out


def rms_norm_cat(
    xs: list[torch.Tensor], weights: list[torch.Tensor], *, eps: list[float]
) -> torch.Tensor:
    """``cat([rms_norm(x_i, w_i, eps_i) ...], -1)``: each norm writes its columns of the one
    result (no per-part buffers, no copy)."""
    lead, widths = xs[0].shape[:-1], [x.shape[-1] for x in xs]
    out = torch.empty((*lead, sum(widths)), dtype=xs[0].dtype, device=xs[0].device)
    rows = out.view(-1, sum(widths))
    start = 0
    for x, w, e, d in zip(xs, weights, eps, widths, strict=True):
        if x.shape[:-1] != lead or x.dtype != out.dtype:
            raise ValueError(f"rms_norm_cat: part {tuple(x.shape)} {x.dtype} does not fit")
        _launch(x, None, w, e, rows[:, start : start + d])
        start += d
    return out


KERNELS = {"mla.rms_norm": rms_norm}
FUSED_KERNELS = {"triton.add_rms_norm": add_rms_norm, "triton.rms_norm_cat": rms_norm_cat}
