"""FP8 (float8_e4m3fn, block-scaled) kernels: quantize, dequantize, matmul, grouped matmul.

`fp8.quantize` handles 1-D blocks (per-token activation blocks, ``[128]``) and 2-D blocks
(weights, ``[128, 128]``, stacked experts included): one program per block computes
``amax / 448`` (``div_rn``: the division torch does), the optional power-of-two round-up,
``x / scale`` and the e4m3 code, the last with an explicit round-to-nearest-even in integer
ops: bit-identical to torch's cast (the plain `.to(tl.float8e4nv)` differs on ~2% of codes
under the interpreter). The GEMMs are `gemm._gemm_kernel` with ``FP8=True``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..semantics.fp8 import torch_dtype
from ._common import INTERPRET, check_device, next_pow2, round_mode, round_to
from .gemm import gemm

E4M3_MAX = 448.0
# Rows per program of the per-token (1-D block) quantize: 16 on a GPU (16 x 128 codes), 64
# under the interpreter (every program costs milliseconds there).
QUANT_ROWS = 64 if INTERPRET else 16


@triton.jit
def e4m3_bits(v):
    """The float8_e4m3fn code (uint8) of fp32 v in [-448, 448], ties to even."""
    bits = v.to(tl.int32, bitcast=True)
    sign = ((bits >> 31) & 1) << 7
    a = bits & 0x7FFFFFFF
    exp = (a >> 23) - 127
    # normal range (exp >= -6): keep 3 mantissa bits, carry may bump the exponent
    normal = ((a + 0x7FFFF + ((a >> 20) & 1)) >> 20) - (120 << 3)
    # subnormal range: multiples of 2^-9
    mant = (a & 0x7FFFFF) | 0x800000
    shift = tl.minimum(14 - exp, 25)
    q = mant >> shift
    rem = mant & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    up = ((rem > half) | ((rem == half) & ((q & 1) == 1))).to(tl.int32)
    code = tl.where(exp >= -6, normal, q + up)
    return (code | sign).to(tl.uint8)


@triton.jit
def _quantize_kernel(
    x_ptr,
    q_ptr,
    s_ptr,
    R,
    C,
    stride_xl,
    stride_xr,
    stride_sl,
    stride_sr,
    BR: tl.constexpr,
    BC: tl.constexpr,
    POW2: tl.constexpr,
    TR: tl.constexpr,
    TC: tl.constexpr,
    PER_ROW: tl.constexpr = False,
):
    """Block (rb, cb) of slice l of x viewed as [L, R, C]; q is contiguous like x. PER_ROW
    (1-D blocks, x viewed as [1, R, C]): TR rows per program, one scale per row and block."""
    sl = tl.program_id(0).to(tl.int64)
    rb = tl.program_id(1)
    cb = tl.program_id(2)
    rows = rb * TR + tl.arange(0, TR) if PER_ROW else rb * BR + tl.arange(0, TR)
    cols = cb * BC + tl.arange(0, TC)
    mask = rows[:, None] < R
    if not PER_ROW:
        mask = mask & (rows[:, None] < rb * BR + BR)
    mask = mask & (cols[None, :] < C) & (cols[None, :] < cb * BC + BC)
    offs = sl * stride_xl + rows[:, None].to(tl.int64) * stride_xr + cols[None, :]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if PER_ROW:
        amax = tl.max(tl.abs(x), 1)
        scale = tl.math.div_rn(amax, tl.zeros_like(amax) + 448.0)
    else:
        amax = tl.max(tl.max(tl.abs(x), 1), 0)
        scale = tl.math.div_rn(amax, 448.0)
    if POW2:
        sb = scale.to(tl.int32, bitcast=True)
        up = ((sb >> 23) + 1) << 23
        sb = tl.where((sb & 0x7FFFFF) == 0, sb, up)
        scale = sb.to(tl.float32, bitcast=True)
    scale = tl.where(amax > 0, scale, 1.0)
    if PER_ROW:
        y = tl.math.div_rn(x, tl.zeros_like(x) + scale[:, None])
    else:
        y = tl.math.div_rn(x, tl.zeros_like(x) + scale)
    y = tl.minimum(tl.maximum(y, -448.0), 448.0)
    tl.store(q_ptr + offs, e4m3_bits(y), mask=mask)
    if PER_ROW:
        tl.store(s_ptr + rows * stride_sr + cb, scale, mask=rows < R)
    else:
        tl.store(s_ptr + sl * stride_sl + rb * stride_sr + cb, scale)


@triton.jit
def _dequantize_kernel(
    q_ptr,
    s_ptr,
    out_ptr,
    R,
    C,
    stride_ql,
    stride_qr,
    stride_sl,
    stride_sr,
    BR: tl.constexpr,
    BC: tl.constexpr,
    ROUND: tl.constexpr,
    TR: tl.constexpr,
    TC: tl.constexpr,
):
    sl = tl.program_id(0).to(tl.int64)
    rb = tl.program_id(1)
    cb = tl.program_id(2)
    rows = rb * BR + tl.arange(0, TR)
    cols = cb * BC + tl.arange(0, TC)
    mask = (rows[:, None] < R) & (rows[:, None] < rb * BR + BR)
    mask = mask & (cols[None, :] < C) & (cols[None, :] < cb * BC + BC)
    offs = sl * stride_ql + rows[:, None] * stride_qr + cols[None, :]
    q = tl.load(q_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    scale = tl.load(s_ptr + sl * stride_sl + rb * stride_sr + cb)
    tl.store(out_ptr + offs, round_to(q * scale, ROUND), mask=mask)


def _blocks(shape: torch.Size, block_shape: list[int], what: str) -> tuple[int, int, int, int, int]:
    """(L, R, C, BR, BC): the tensor as [L, R, C] with blocks [BR, BC]."""
    if not 1 <= len(block_shape) <= min(2, len(shape)) or any(b <= 0 for b in block_shape):
        raise ValueError(f"{what}: bad block_shape {block_shape} for a tensor of rank {len(shape)}")
    c = shape[-1]
    if len(block_shape) == 2:
        r, br = shape[-2], block_shape[0]
        lead = shape[:-2]
    else:
        r, br = 1, 1
        lead = shape[:-1]
    return int(torch.Size(lead).numel()), r, c, br, block_shape[-1]


def quantize(
    x: torch.Tensor, *, block_shape: list[int], pow2_scale: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`fp8.quantize`: ``(q float8_e4m3fn, scale fp32)``, ``scale = amax / 448`` per block."""
    check_device(x)
    lead_n, r, c, br, bc = _blocks(x.shape, block_shape, "fp8.quantize")
    xc = x.contiguous()
    q = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    nrb, ncb = triton.cdiv(r, br), triton.cdiv(c, bc)
    lead = x.shape[: x.dim() - len(block_shape)]
    scale_shape = (*lead, nrb, ncb) if len(block_shape) == 2 else (*lead, ncb)
    scale = torch.empty(scale_shape, dtype=torch.float32, device=x.device)
    if x.numel() and len(block_shape) == 1:
        # one scale per row and block: x as [1, rows, C], ROWS rows per program
        rows = lead_n
        tr, tc = min(next_pow2(rows), QUANT_ROWS), next_pow2(bc)
        _quantize_kernel[(1, triton.cdiv(rows, tr), ncb)](
            xc,
            q.view(torch.uint8),
            scale,
            rows,
            c,
            0,
            c,
            0,
            ncb,
            BR=1,
            BC=bc,
            POW2=bool(pow2_scale),
            TR=tr,
            TC=tc,
            PER_ROW=True,
            num_warps=8 if tr * tc >= 8192 else 4,
        )
    elif x.numel():
        tr, tc = next_pow2(br), next_pow2(bc)
        _quantize_kernel[(lead_n, nrb, ncb)](
            xc,
            q.view(torch.uint8),
            scale,
            r,
            c,
            r * c,
            c,
            nrb * ncb,
            ncb,
            BR=br,
            BC=bc,
            POW2=bool(pow2_scale),
            TR=tr,
            TC=tc,
            num_warps=8 if tr * tc >= 8192 else 4,
        )
    return q, scale


def dequantize(
    q: torch.Tensor, scale: torch.Tensor, *, block_shape: list[int], out_dtype: str
) -> torch.Tensor:
    """`fp8.dequantize`: ``float(q) * scale`` of each element's block, in ``out_dtype``."""
    check_device(q, scale)
    lead_n, r, c, br, bc = _blocks(q.shape, block_shape, "fp8.dequantize")
    dtype = torch_dtype(out_dtype)
    qc = q.contiguous()
    sc = scale.to(torch.float32).contiguous()
    out = torch.empty(q.shape, dtype=dtype, device=q.device)
    nrb, ncb = triton.cdiv(r, br), triton.cdiv(c, bc)
    if q.numel():
        tr, tc = next_pow2(br), next_pow2(bc)
        _dequantize_kernel[(lead_n, nrb, ncb)](
            qc,
            sc,
            out,
            r,
            c,
            r * c,
            c,
            nrb * ncb,
            ncb,
            BR=br,
            BC=bc,
            ROUND=round_mode(dtype),
            TR=tr,
            TC=tc,
        )
    return out


def matmul(
    x_q: torch.Tensor,
    x_scale: torch.Tensor,
    w_q: torch.Tensor,
    w_scale: torch.Tensor,
    *,
    block_n: int,
    block_k: int,
    out_dtype: str,
) -> torch.Tensor:
    """`fp8.matmul`: ``x · w^T`` from block-scaled fp8 operands (fp32 promotion per K block)."""
    n, k = w_q.shape
    lead = x_q.shape[:-1]
    x2 = x_q.reshape(-1, k)
    out = torch.empty((x2.shape[0], n), dtype=torch_dtype(out_dtype), device=x_q.device)
    gemm(
        x2,
        w_q,
        out,
        x_scale=x_scale.to(torch.float32).reshape(x2.shape[0], -1),
        w_scale=w_scale.to(torch.float32),
        block_n=block_n,
        block_k=block_k,
    )
    return out.reshape(*lead, n)


def grouped_matmul(
    x_q: torch.Tensor,
    x_scale: torch.Tensor,
    w_q: torch.Tensor,
    w_scale: torch.Tensor,
    expert_offsets: torch.Tensor,
    *,
    block_n: int,
    block_k: int,
    out_dtype: str,
) -> torch.Tensor:
    """`fp8.grouped_matmul`: `fp8.matmul` of each expert's rows with its weight; other rows 0."""
    out = torch.empty((x_q.shape[0], w_q.shape[1]), dtype=torch_dtype(out_dtype), device=x_q.device)
    return gemm(
        x_q,
        w_q,
        out,
        offsets=expert_offsets,
        x_scale=x_scale.to(torch.float32),
        w_scale=w_scale.to(torch.float32),
        block_n=block_n,
        block_k=block_k,
    )


KERNELS = {
    "fp8.quantize": quantize,
    "fp8.dequantize": dequantize,
    "fp8.matmul": matmul,
    "fp8.grouped_matmul": grouped_matmul,
}
