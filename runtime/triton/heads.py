"""Per-head projections of MLA through ``wkv_b``: `mla.absorb_query`, `mla.absorb_output`,
`mla.kv_expand`, as one batched GEMM kernel over heads.

``out[r, h, n] = Σ_k x[r, h, k] · w[h, n, k]`` with fp32 accumulation and one rounding to the
output dtype; program ``(r-block, n-block, h)``. Every operand is read through its strides, so
W_UK / W_UV are strided views of ``wkv_b`` (``[H, dn + dv, C]``: per head ``dn`` rows of W_UK,
then ``dv`` of W_UV), never copies, and `kv_expand`'s latent is shared by every head (head
stride 0).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import INTERPRET, check_device, dot_precision, mma, next_pow2, round_mode, round_to


@triton.jit
def _head_gemm_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    R,
    N,
    K,
    stride_xr,
    stride_xh,
    stride_xk,
    stride_wh,
    stride_wn,
    stride_wk,
    stride_or,
    stride_oh,
    stride_on,
    ROUND: tl.constexpr,
    UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_n = tl.program_id(1)
    h = tl.program_id(2).to(tl.int64)
    rows = pid_r.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_r, mask_n = rows < R, cols < N
    x_base = x_ptr + h * stride_xh + rows[:, None] * stride_xr
    w_base = w_ptr + h * stride_wh + cols[None, :] * stride_wn
    acc = tl.zeros((BLOCK_R, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        mask_k = ks < K
        a = tl.load(
            x_base + ks[None, :] * stride_xk, mask=mask_r[:, None] & mask_k[None, :], other=0.0
        )
        b = tl.load(
            w_base + ks[:, None] * stride_wk, mask=mask_k[:, None] & mask_n[None, :], other=0.0
        )
        acc += mma(a, b, UPCAST, PRECISION)
    o_ptrs = out_ptr + rows[:, None] * stride_or + h * stride_oh + cols[None, :] * stride_on
    tl.store(o_ptrs, round_to(acc, ROUND), mask=mask_r[:, None] & mask_n[None, :])


def head_gemm(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """x ``[R, H, K]`` (any strides; head stride 0 shares x), w ``[H, N, K]``, out
    ``[R, H, N]``: ``out[r, h] = w[h] · x[r, h]`` rounded once to out's dtype; returns out."""
    check_device(x, w, out)
    r, heads, k = x.shape
    n = w.shape[1]
    if r == 0 or heads == 0 or n == 0:
        return out
    same = x.dtype == w.dtype
    # operands of another dtype than each other, and all under the interpreter (its bf16 dot
    # is wrong), multiply in fp32
    upcast = INTERPRET or not same or x.dtype == torch.float32
    if INTERPRET:
        block_r, block_n, block_k = min(next_pow2(r, 16), 64), min(next_pow2(n, 16), 128), 64
    else:
        block_r, block_n, block_k = (16 if r <= 16 else 64), 64, 64
    block_k = min(block_k, next_pow2(k, 16))
    grid = (triton.cdiv(r, block_r), triton.cdiv(n, block_n), heads)
    _head_gemm_kernel[grid](
        x,
        w,
        out,
        r,
        n,
        k,
        *x.stride(),
        *w.stride(),
        *out.stride(),
        ROUND=round_mode(out.dtype),
        UPCAST=upcast,
        PRECISION=dot_precision(x.dtype, w.dtype),
        BLOCK_R=block_r,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        num_warps=4,
        num_stages=3,
    )
    return out


def _split(wkv_b: torch.Tensor, heads: int, dn: int, dv: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W_UK ``[H, dn, C]`` and W_UV ``[H, dv, C]`` as strided views of wkv_b."""
    w = wkv_b.unflatten(0, (heads, dn + dv))
    return w[:, :dn], w[:, dn:]


def absorb_query(
    q_nope: torch.Tensor,
    wkv_b: torch.Tensor,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
) -> torch.Tensor:
    """`mla.absorb_query`: ``q_latent[h] = W_UK,h^T · q_nope[h]``, ``[B,S,H,C]``."""
    w_uk, _ = _split(wkv_b, num_heads, qk_nope_head_dim, v_head_dim)
    b, s, h, dn = q_nope.shape
    c = wkv_b.shape[-1]
    out = torch.empty((b, s, h, c), dtype=q_nope.dtype, device=q_nope.device)
    # w[h, n=c, k=d] = W_UK[h, d, c]
    head_gemm(q_nope.reshape(b * s, h, dn), w_uk.transpose(1, 2), out.view(b * s, h, c))
    return out


def absorb_output(
    ctx: torch.Tensor,
    wkv_b: torch.Tensor,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
) -> torch.Tensor:
    """`mla.absorb_output`: ``o[h] = W_UV,h · ctx[h]``, ``[B,S,H,dv]``."""
    _, w_uv = _split(wkv_b, num_heads, qk_nope_head_dim, v_head_dim)
    b, s, h, c = ctx.shape
    out = torch.empty((b, s, h, v_head_dim), dtype=ctx.dtype, device=ctx.device)
    head_gemm(ctx.reshape(b * s, h, c), w_uv, out.view(b * s, h, v_head_dim))
    return out


def kv_expand(
    latent: torch.Tensor,
    wkv_b: torch.Tensor,
    *,
    num_heads: int,
    qk_nope_head_dim: int,
    v_head_dim: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`mla.kv_expand`: per-head ``k_nope`` ``[B,T,H,dn]`` and ``v`` ``[B,T,H,dv]``."""
    w_uk, w_uv = _split(wkv_b, num_heads, qk_nope_head_dim, v_head_dim)
    b, t, c = latent.shape
    shared = latent.reshape(b * t, 1, c).expand(b * t, num_heads, c)  # head stride 0
    outs = []
    for w, d in ((w_uk, qk_nope_head_dim), (w_uv, v_head_dim)):
        out = torch.empty((b, t, num_heads, d), dtype=latent.dtype, device=latent.device)
        head_gemm(shared, w, out.view(b * t, num_heads, d))
        outs.append(out)
    return outs[0], outs[1]


KERNELS = {
    "mla.absorb_query": absorb_query,
    "mla.absorb_output": absorb_output,
    "mla.kv_expand": kv_expand,
}
