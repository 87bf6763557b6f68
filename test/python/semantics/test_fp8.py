"""`fp8` semantics: block-scaled e4m3 quantization error bounds, scale shapes, scaled matmul."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlacc.runtime.semantics import fp8, get

quantize = get("fp8.quantize")
dequantize = get("fp8.dequantize")
matmul = get("fp8.matmul")

# (shape, block_shape, expected scale shape): ragged edges make partial blocks
CASES = [
    ((300, 260), [128, 128], (3, 3)),
    ((4, 5, 300), [128], (4, 5, 3)),
    ((3, 70, 45), [32, 16], (3, 3, 3)),
    ((2, 3, 40, 33), [2, 8, 16], (2, 2, 5, 3)),
    ((128, 256), [128, 128], (1, 2)),
]


def _spread(shape) -> torch.Tensor:
    """Random data whose magnitudes span many binades (exercises subnormals too)."""
    return torch.randn(shape) * torch.exp(torch.randn(shape) * 3)


@pytest.mark.parametrize(("shape", "block_shape", "scale_shape"), CASES)
@pytest.mark.parametrize("pow2_scale", [False, True])
def test_roundtrip_error_is_within_e4m3_precision(shape, block_shape, scale_shape, pow2_scale):
    """e4m3 keeps 3 mantissa bits, so rounding to nearest moves a normal value v by at most
    2^-4 |v|; below the smallest normal 2^-6 the spacing is 2^-9, an error of at most 2^-10.
    With v = x / s and x' = q * s: |x' - x| <= max(2^-4 |x|, 2^-10 s) (+ fp32 rounding)."""
    x = _spread(shape)
    q, scale = quantize(x, block_shape=block_shape, pow2_scale=pow2_scale)
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape
    assert scale.dtype == torch.float32 and tuple(scale.shape) == scale_shape
    x_hat = dequantize(q, scale, block_shape=block_shape, out_dtype="float32")
    assert x_hat.dtype == torch.float32 and x_hat.shape == x.shape
    s = fp8.expand_blocks(scale, x.shape, block_shape)
    bound = torch.maximum(2.0**-4 * x.abs(), 2.0**-10 * s) + 2.0**-20 * x.abs()
    err = (x_hat - x).abs()
    assert torch.all(err <= bound), float((err / bound).max())
    assert float((err / bound).max()) > 0.5  # the bound is not slack by orders of magnitude
    # and per block, relative to the block's amax: (2^-4 + 2^-10 / 448 * [2 if pow2]) * amax
    amax = fp8.expand_blocks(fp8.block_amax(x, block_shape), x.shape, block_shape)
    slack = 2.0 if pow2_scale else 1.0
    assert torch.all(err <= amax * (2.0**-4 + slack * 2.0**-10 / 448) * (1 + 2.0**-20))


@pytest.mark.parametrize(("shape", "block_shape", "scale_shape"), CASES)
def test_scale_is_amax_over_448_and_amax_maps_to_448(shape, block_shape, scale_shape):
    x = _spread(shape)
    q, scale = quantize(x, block_shape=block_shape, pow2_scale=False)
    amax = fp8.block_amax(x, block_shape)
    assert tuple(amax.shape) == scale_shape
    torch.testing.assert_close(scale, amax / 448.0, rtol=0, atol=0)
    # the largest element of each block lands on +-448 exactly
    qmax = fp8.block_amax(q.to(torch.float32), block_shape)
    assert torch.all(qmax == 448.0)


@pytest.mark.parametrize(("shape", "block_shape", "scale_shape"), CASES)
def test_pow2_scales_are_powers_of_two(shape, block_shape, scale_shape):
    x = _spread(shape)
    _, scale = quantize(x, block_shape=block_shape, pow2_scale=True)
    mantissa, _ = torch.frexp(scale)
    assert torch.all(mantissa == 0.5)
    exact = fp8.block_amax(x, block_shape) / 448.0
    assert torch.all(scale >= exact) and torch.all(scale < 2 * exact)


def test_round_up_pow2_keeps_exact_powers() -> None:
    s = torch.tensor([1.0, 0.25, 3.0, 0.3, 2.0**-130, 1000.0])
    assert fp8.round_up_pow2(s).tolist() == [1.0, 0.25, 4.0, 0.5, 2.0**-130, 1024.0]


@pytest.mark.parametrize("pow2_scale", [False, True])
def test_all_zero_block_has_scale_one(pow2_scale: bool) -> None:
    x = torch.randn(256, 200)
    x[128:, :128] = 0
    q, scale = quantize(x, block_shape=[128, 128], pow2_scale=pow2_scale)
    assert scale[1, 0] == 1.0 and torch.all(scale[0] != 1.0)
    assert torch.count_nonzero(q[128:, :128].to(torch.float32)) == 0
    x_hat = dequantize(q, scale, block_shape=[128, 128], out_dtype="bfloat16")
    assert x_hat.dtype == torch.bfloat16
    assert torch.count_nonzero(x_hat[128:, :128]) == 0


def _quantized_linear(x, w, block_k=128, block_n=128):
    x_q, x_s = quantize(x, block_shape=[block_k], pow2_scale=False)
    w_q, w_s = quantize(w, block_shape=[block_n, block_k], pow2_scale=False)
    return x_q, x_s, w_q, w_s


@pytest.mark.parametrize(("n", "k"), [(256, 384), (200, 300), (64, 100)])
def test_matmul_equals_dequantized_matmul(rel_err, n: int, k: int) -> None:
    x = torch.randn(3, 5, k)
    w = torch.randn(n, k) / k**0.5
    x_q, x_s, w_q, w_s = _quantized_linear(x, w)
    assert x_s.shape == (3, 5, -(-k // 128)) and w_s.shape == (-(-n // 128), -(-k // 128))
    y = matmul(x_q, x_s, w_q, w_s, block_n=128, block_k=128, out_dtype="float32")
    assert y.shape == (3, 5, n) and y.dtype == torch.float32
    x_dq = dequantize(x_q, x_s, block_shape=[128], out_dtype="float32")
    w_dq = dequantize(w_q, w_s, block_shape=[128, 128], out_dtype="float32")
    assert rel_err(y, F.linear(x_dq.double(), w_dq.double())) < 1e-5
    exact = F.linear(x, w)
    cosine = F.cosine_similarity(y.flatten(), exact.flatten(), dim=0)
    assert cosine > 0.999
    y16 = matmul(x_q, x_s, w_q, w_s, block_n=128, block_k=128, out_dtype="bfloat16")
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16, y.to(torch.bfloat16), rtol=0, atol=0)


def test_matmul_scales_each_k_block_separately() -> None:
    """Blocks with very different ranges: per-block scales keep both accurate."""
    k = 256
    x = torch.randn(4, k)
    x[:, 128:] *= 1e-3
    w = torch.randn(8, k)
    x_q, x_s, w_q, w_s = _quantized_linear(x, w)
    y = matmul(x_q, x_s, w_q, w_s, block_n=128, block_k=128, out_dtype="float32")
    small_only = matmul(
        x_q[:, 128:],
        x_s[:, 1:],
        w_q[:, 128:],
        w_s[:, 1:],
        block_n=128,
        block_k=128,
        out_dtype="float32",
    )
    large_only = matmul(
        x_q[:, :128],
        x_s[:, :1],
        w_q[:, :128],
        w_s[:, :1],
        block_n=128,
        block_k=128,
        out_dtype="float32",
    )
    torch.testing.assert_close(y, large_only + small_only, rtol=1e-6, atol=1e-6)
    exact_small = x[:, 128:] @ w[:, 128:].T
    cosine = F.cosine_similarity(small_only.flatten(), exact_small.flatten(), dim=0)
    assert cosine > 0.99


def test_grouped_matmul_is_per_segment_matmul_and_close_to_fp32() -> None:
    """`fp8.grouped_matmul` == `fp8.matmul` per expert segment; rows past offsets[E] zero;
    close to the fp32 grouped matmul."""
    grouped = get("fp8.grouped_matmul")
    gen = torch.Generator().manual_seed(0)
    experts, n, k, rows = 3, 200, 300, 40
    x = torch.randn(rows, k, generator=gen)
    w = torch.randn(experts, n, k, generator=gen) / k**0.5
    offsets = torch.tensor([0, 7, 7, 31])  # expert 1 empty, rows 31.. padding
    x_q, x_s = quantize(x, block_shape=[128], pow2_scale=False)
    w_q, w_s = quantize(w, block_shape=[128, 128], pow2_scale=False)
    assert tuple(w_s.shape) == (experts, 2, 3)
    y = grouped(x_q, x_s, w_q, w_s, offsets, block_n=128, block_k=128, out_dtype="float32")
    assert y.shape == (rows, n) and y.dtype == torch.float32
    want = torch.zeros(rows, n)
    for e in range(experts):
        lo, hi = int(offsets[e]), int(offsets[e + 1])
        seg = matmul(
            x_q[lo:hi], x_s[lo:hi], w_q[e], w_s[e], block_n=128, block_k=128, out_dtype="float32"
        )
        torch.testing.assert_close(y[lo:hi], seg, rtol=0, atol=0)
        want[lo:hi] = x[lo:hi] @ w[e].T
    assert torch.all(y[31:] == 0)
    cos = F.cosine_similarity(y[:31].flatten(), want[:31].flatten(), dim=0)
    assert cos > 0.998, float(cos)
    bf16 = grouped(x_q, x_s, w_q, w_s, offsets, block_n=128, block_k=128, out_dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
