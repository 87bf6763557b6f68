"""Reference semantics of the `fp8` ops (DeepSeek-V3-style block-scaled float8_e4m3fn).

A tensor is cut into blocks of ``block_shape`` over its trailing dims (leading dims: blocks of
one); blocks at a ragged edge are partial (they cover what is left). Each block has one fp32
scale, ``amax(|block|) / 448``, and its elements are stored as ``e4m3(x / scale)``.
"""

from __future__ import annotations

import torch

from .registry import semantics

E4M3_MAX = 448.0

_FLOAT_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a float dtype name (``"float32"``, ``"bfloat16"``, ...)."""
    try:
        return _FLOAT_DTYPES[name]
    except KeyError:
        raise ValueError(f"unsupported out_dtype '{name}' ({', '.join(_FLOAT_DTYPES)})") from None


def _check_blocks(t: torch.Tensor, block_shape: list[int], what: str) -> None:
    if not 1 <= len(block_shape) <= t.dim() or any(b <= 0 for b in block_shape):
        raise ValueError(f"{what}: bad block_shape {block_shape} for a tensor of rank {t.dim()}")


def block_amax(x: torch.Tensor, block_shape: list[int]) -> torch.Tensor:
    """``amax(|x|)`` (fp32) of each block; shape ``(*lead, ceil(d_i / b_i)...)``."""
    lead = x.dim() - len(block_shape)
    trailing = x.shape[lead:]
    nblocks = [-(-d // b) for d, b in zip(trailing, block_shape)]
    pad: list[int] = []
    for d, b, nb in zip(reversed(trailing), reversed(block_shape), reversed(nblocks)):
        pad += [0, nb * b - d]
    a = torch.nn.functional.pad(x.abs().to(torch.float32), pad)
    split = [s for nb, b in zip(nblocks, block_shape) for s in (nb, b)]
    a = a.reshape(*x.shape[:lead], *split)
    inner = tuple(lead + 2 * i + 1 for i in range(len(block_shape)))
    return a.amax(dim=inner) if inner else a


def expand_blocks(scale: torch.Tensor, shape: torch.Size, block_shape: list[int]) -> torch.Tensor:
    """Per-element view of per-block values: each block's entry repeated over the block."""
    lead = len(shape) - len(block_shape)
    out = scale
    for i, b in enumerate(block_shape):
        dim = lead + i
        out = out.repeat_interleave(b, dim=dim).narrow(dim, 0, shape[dim])
    return out


def round_up_pow2(s: torch.Tensor) -> torch.Tensor:
    """The smallest power of two >= s, for positive s (exact, via the binary exponent)."""
    mantissa, exponent = torch.frexp(s)  # s = mantissa * 2^exponent, mantissa in [0.5, 1)
    exponent = torch.where(mantissa == 0.5, exponent - 1, exponent)
    return torch.ldexp(torch.ones_like(s), exponent)


@semantics("fp8.quantize")
def quantize(
    x: torch.Tensor, *, block_shape: list[int], pow2_scale: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`fp8.quantize`: ``(q float8_e4m3fn, scale fp32)``, ``scale = amax / 448`` per block.

    With ``pow2_scale`` the scale rounds up to a power of two; an all-zero block has scale 1.
    ``q = e4m3(clamp(x / scale, -448, 448))`` (round to nearest even).
    """
    _check_blocks(x, block_shape, "fp8.quantize")
    amax = block_amax(x, block_shape)
    scale = amax / E4M3_MAX
    if pow2_scale:
        scale = torch.where(amax > 0, round_up_pow2(scale), scale)
    scale = torch.where(amax > 0, scale, torch.ones_like(scale))
    scaled = x.to(torch.float32) / expand_blocks(scale, x.shape, block_shape)
    q = scaled.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, scale


@semantics("fp8.dequantize")
def dequantize(
    q: torch.Tensor, scale: torch.Tensor, *, block_shape: list[int], out_dtype: str
) -> torch.Tensor:
    """`fp8.dequantize`: ``float(q) * scale`` of each element's block, in ``out_dtype``."""
    _check_blocks(q, block_shape, "fp8.dequantize")
    x = q.to(torch.float32) * expand_blocks(scale.to(torch.float32), q.shape, block_shape)
    return x.to(torch_dtype(out_dtype))


@semantics("fp8.matmul")
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
    """`fp8.matmul`: ``x · w^T`` from block-scaled fp8 operands, as DeepGEMM computes it.

    For each K block in order: the fp32 product of the raw fp8 values (exact per term, fp32
    sums), times ``x_scale[..., kb] * w_scale[N block, kb]``, added to an fp32 accumulator.
    """
    n, k = w_q.shape
    lead = x_q.shape[:-1]
    xf = x_q.to(torch.float32).reshape(-1, k)
    xs = x_scale.to(torch.float32).reshape(-1, x_scale.shape[-1])
    wf = w_q.to(torch.float32)
    ws = w_scale.to(torch.float32).repeat_interleave(block_n, dim=0)[:n]  # [N, K blocks]
    acc = torch.zeros(xf.shape[0], n, dtype=torch.float32, device=x_q.device)
    for kb in range(-(-k // block_k)):
        lo, hi = kb * block_k, min((kb + 1) * block_k, k)
        partial = xf[:, lo:hi] @ wf[:, lo:hi].T
        acc += partial * (xs[:, kb : kb + 1] * ws[None, :, kb])
    return acc.reshape(*lead, n).to(torch_dtype(out_dtype))


@semantics("fp8.grouped_matmul")
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
    """`fp8.grouped_matmul`: `fp8.matmul` of each expert's rows with its weight; other rows 0.

    Rows ``[offsets[e], offsets[e+1])`` use ``w_q[e]`` / ``w_scale[e]``; rows past
    ``offsets[E]`` are zero.
    """
    dtype = torch_dtype(out_dtype)
    out = torch.zeros(x_q.shape[0], w_q.shape[1], dtype=dtype, device=x_q.device)
    bounds = [int(o) for o in expert_offsets]
    for e in range(w_q.shape[0]):
        lo, hi = bounds[e], bounds[e + 1]
        if hi > lo:
            out[lo:hi] = matmul(
                x_q[lo:hi],
                x_scale[lo:hi],
                w_q[e],
                w_scale[e],
                block_n=block_n,
                block_k=block_k,
                out_dtype=out_dtype,
            )
    return out
