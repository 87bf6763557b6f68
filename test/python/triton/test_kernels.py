"""Each Triton kernel against its op's reference semantics on small random shapes."""

from __future__ import annotations

import pytest
import torch

from mlacc.runtime.semantics import fp8 as sem_fp8
from mlacc.runtime.semantics import mla as sem_mla
from mlacc.runtime.semantics import moe as sem_moe
from mlacc.runtime.triton import fp8, gemm, moe, rmsnorm, router

DTYPES = [torch.float32, torch.bfloat16]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape: int, seed: int, dtype=torch.float32, device="cpu", scale=1.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=_gen(seed)) * scale).to(dtype).to(device)


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    """fp32: 1e-5 relative; bf16: one bf16 ulp of the largest value (summation order)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-5 if want.dtype == torch.float32 else 8e-3
    scale = want.float().abs().max().clamp_min(1.0)
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol * float(scale))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm(dtype: torch.dtype, device) -> None:
    x = _rand(3, 5, 96, seed=0, dtype=dtype, device=device)
    w = _rand(96, seed=1, device=device)
    got = rmsnorm.rms_norm(x, w, eps=1e-6)
    _close(got, sem_mla.rms_norm(x, w, eps=1e-6))
    r = _rand(3, 5, 96, seed=2, dtype=dtype, device=device)
    s, normed = rmsnorm.add_rms_norm(x, r, w, eps=1e-6)
    assert torch.equal(s, x + r)  # the residual stream: exactly torch's add, RNE in bf16
    _close(normed, sem_mla.rms_norm(x + r, w, eps=1e-6))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_cat_writes_each_norm_into_its_columns(dtype: torch.dtype, device) -> None:
    """`triton.rms_norm_cat` = ``cat`` of the norms (MTP's embedding and hidden state)."""
    a = _rand(2, 3, 64, seed=0, dtype=dtype, device=device)
    b = _rand(2, 3, 48, seed=1, dtype=dtype, device=device, scale=3.0)
    wa, wb = _rand(64, seed=2, device=device), _rand(48, seed=3, device=device)
    got = rmsnorm.rms_norm_cat([a, b], [wa, wb], eps=[1e-6, 1e-5])
    want = torch.cat([sem_mla.rms_norm(a, wa, eps=1e-6), sem_mla.rms_norm(b, wb, eps=1e-5)], -1)
    _close(got, want)


ROUTERS = {
    "v3-sigmoid-groups": {
        "score_func": "sigmoid",
        "top_k": 4,
        "n_groups": 4,
        "topk_group": 2,
        "group_score": "top2_sum",
        "route_scale": 2.5,
        "norm_topk_prob": True,
    },
    "v2-softmax-greedy": {
        "score_func": "softmax",
        "top_k": 3,
        "n_groups": 1,
        "topk_group": 1,
        "group_score": "max",
        "route_scale": 1.0,
        "norm_topk_prob": False,
    },
    "v2-softmax-group-max": {
        "score_func": "softmax",
        "top_k": 2,
        "n_groups": 4,
        "topk_group": 3,
        "group_score": "max",
        "route_scale": 16.0,
        "norm_topk_prob": False,
    },
}


@pytest.mark.parametrize("name", list(ROUTERS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_router(name: str, dtype: torch.dtype, device) -> None:
    cfg = ROUTERS[name]
    x = _rand(21, 64, seed=3, dtype=dtype, device=device)
    w = _rand(16, 64, seed=4, device=device)
    bias = _rand(16, seed=5, device=device, scale=0.2) if cfg["score_func"] == "sigmoid" else None
    weights, indices = router.router(x, w, bias, **cfg)
    want_w, want_i = sem_moe.router(x, w, bias, **cfg)
    assert torch.equal(indices, want_i)
    torch.testing.assert_close(weights, want_w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shared", [1, 2])
@pytest.mark.parametrize("name", ["v3-sigmoid-groups", "v2-softmax-group-max"])
def test_router_shared_appends_the_shared_columns(name: str, shared: int, device) -> None:
    """`triton.router_shared` = the router's result + m columns of ids E, E+1, ... with
    weight 1 (what moe-group-experts' ``new_full`` + ``cat`` build)."""
    cfg = ROUTERS[name]
    x = _rand(21, 64, seed=3, device=device)
    w = _rand(16, 64, seed=4, device=device)
    bias = _rand(16, seed=5, device=device, scale=0.2) if cfg["score_func"] == "sigmoid" else None
    weights, indices = router.router_shared(
        x, w, bias, shared_count=shared, shared_first=16, shared_weight=1.0, **cfg
    )
    want_w, want_i = sem_moe.router(x, w, bias, **cfg)
    ids = torch.arange(16, 16 + shared, device=device).expand(21, shared)
    assert torch.equal(indices, torch.cat([want_i, ids], 1))
    want_w = torch.cat([want_w, torch.ones(21, shared, device=device)], 1)
    torch.testing.assert_close(weights, want_w, rtol=1e-5, atol=1e-6)


def test_router_ties_select_valid_experts(device) -> None:
    """All-equal scores (zero logits): the kernel takes the lowest indices; torch.topk's order
    among equal values is unspecified, so only the weights and the rules are compared."""
    cfg = ROUTERS["v3-sigmoid-groups"]
    x = torch.zeros(4, 32, device=device)
    w = _rand(16, 32, seed=6, device=device)
    weights, indices = router.router(x, w, None, **cfg)
    want_w, _ = sem_moe.router(x, w, None, **cfg)
    torch.testing.assert_close(weights, want_w)
    assert torch.equal(indices, torch.tensor([[0, 1, 2, 3]] * 4, device=device))


def _routing(kind: str, n: int, k: int, e: int, device) -> torch.Tensor:
    """Expert ids [n, k] (distinct per row): uniform, two experts empty, or one expert hot."""
    g = _gen(7)
    if kind == "uniform":
        ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(n)])
    elif kind == "empty-experts":  # experts 0 and e-1 get nothing
        ids = torch.stack([1 + torch.randperm(e - 2, generator=g)[:k] for _ in range(n)])
    else:  # "one-hot-expert": every token picks expert 3, the rest at random
        rest = [torch.randperm(e - 1, generator=g)[: k - 1] for _ in range(n)]
        rest = [torch.where(r >= 3, r + 1, r) for r in rest]
        ids = torch.stack([torch.cat([torch.tensor([3]), r]) for r in rest])
    return ids.to(device)


SKEWS = ["uniform", "empty-experts", "one-hot-expert"]


@pytest.mark.parametrize("kind", SKEWS)
def test_dispatch_is_exact(kind: str, device) -> None:
    ids = _routing(kind, 19, 3, 8, device)
    x = _rand(19, 40, seed=8, device=device)
    got = moe.dispatch(x, ids, num_experts=8, block_size=4)
    want = sem_moe.dispatch(x, ids, num_experts=8, block_size=4)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_dispatch_gives_out_of_range_ids_no_row(device) -> None:
    """An id outside [0, E) (never from the router) writes nothing: every valid pair's row
    holds its token, padding rows stay zero, the stray pairs' row_of is 0 and the buffer has
    only the valid pairs' segments (E = 2 < the kernel's 16 one-hot columns)."""
    ids = torch.tensor([[0, 1], [5, 1], [-1, 0]], device=device)
    x = _rand(3, 24, seed=3, device=device)
    x_sorted, row_of, offsets = moe.dispatch(x, ids, num_experts=2, block_size=4)
    assert offsets.tolist() == [0, 4, 8]
    valid = (ids >= 0) & (ids < 2)
    for n, kk in zip(*torch.nonzero(valid, as_tuple=True), strict=True):
        assert torch.equal(x_sorted[row_of[n, kk]], x[n])
    assert row_of[~valid].tolist() == [0, 0]
    written = set(row_of[valid].tolist())
    for r in range(x_sorted.shape[0]):
        if r not in written:
            assert not x_sorted[r].any(), r


@pytest.mark.parametrize("kind", SKEWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_grouped_moe_chain(kind: str, dtype: torch.dtype, device) -> None:
    """dispatch -> grouped_matmul -> swiglu -> grouped_matmul -> combine, op by op and fused."""
    n, k, e, d, inter = 19, 3, 8, 48, 24
    ids = _routing(kind, n, k, e, device)
    x = _rand(n, d, seed=9, dtype=dtype, device=device)
    weights = torch.rand(n, k, generator=_gen(10)).to(device)
    w13 = _rand(e, 2 * inter, d, seed=11, dtype=dtype, device=device, scale=0.2)
    w2 = _rand(e, d, inter, seed=12, dtype=dtype, device=device, scale=0.2)
    xs, row_of, offsets = sem_moe.dispatch(x, ids, num_experts=e, block_size=16)
    h = sem_moe.grouped_matmul(xs, w13, offsets)
    _close(moe.grouped_matmul(xs, w13, offsets), h)
    a = sem_moe.swiglu(h)
    _close(moe.swiglu(h), a)
    _close(moe.grouped_matmul_swiglu(xs, w13, offsets), a)
    y = sem_moe.grouped_matmul(a, w2, offsets)
    out = sem_moe.combine(y, row_of, weights)
    _close(moe.combine(y, row_of, weights), out)
    fused_y = moe.grouped_matmul_weighted(a, w2, offsets, row_of, weights)
    got = moe.combine_weighted(fused_y, row_of, out_dtype=str(dtype).removeprefix("torch."))
    _close(got, out)


def test_grouped_matmul_rows_outside_segments_are_zero(device) -> None:
    x = _rand(40, 32, seed=13, device=device)
    w = _rand(3, 16, 32, seed=14, device=device)
    offsets = torch.tensor([0, 5, 5, 21], device=device)  # expert 1 empty, rows 21.. unused
    got = moe.grouped_matmul(x, w, offsets)
    assert torch.equal(got, sem_moe.grouped_matmul(x, w, offsets)) or torch.allclose(
        got, sem_moe.grouped_matmul(x, w, offsets), rtol=1e-5, atol=1e-5
    )
    assert not got[21:].any() and got[:21].abs().min() >= 0 and got[5:21].any()


def _fp8_probe_values() -> torch.Tensor:
    """Every e4m3 code's value, midpoints between neighbours (ties), subnormals, randoms."""
    codes = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    codes = codes[codes.isfinite()].unique()
    mids = (codes[1:] + codes[:-1]) / 2
    rnd = torch.randn(4096, generator=_gen(15)) * torch.logspace(-4, 2, 4096)
    return torch.cat([codes, mids, -mids, rnd, torch.tensor([0.0, -0.0, 1.96, 126.5])])


@pytest.mark.parametrize("pow2", [False, True])
def test_fp8_quantize_is_bit_exact(pow2: bool, device) -> None:
    vals = _fp8_probe_values()
    cols = 256
    x = torch.cat([vals, torch.zeros(-len(vals) % cols)]).reshape(-1, cols)
    x[0, :128] = 448.0 * x[0, :128] / x[0, :128].abs().max()  # a block whose scale is exactly 1
    x[1, 128:] = 0.0  # an all-zero block (scale 1)
    x = x.to(device)
    q, s = fp8.quantize(x, block_shape=[128], pow2_scale=pow2)
    want_q, want_s = sem_fp8.quantize(x, block_shape=[128], pow2_scale=pow2)
    assert torch.equal(s, want_s)
    assert torch.equal(q.view(torch.uint8), want_q.view(torch.uint8))
    # per-token blocks of a [3, 5, 200] activation: several rows per program, ragged columns
    a = _rand(3, 5, 200, seed=19, dtype=torch.bfloat16, device=device)
    q, s = fp8.quantize(a, block_shape=[128], pow2_scale=pow2)
    want_q, want_s = sem_fp8.quantize(a, block_shape=[128], pow2_scale=pow2)
    assert torch.equal(s, want_s) and s.shape == (3, 5, 2)
    assert torch.equal(q.view(torch.uint8), want_q.view(torch.uint8))
    w = _rand(2, 160, 200, seed=16, dtype=torch.bfloat16, device=device)  # stacked, ragged
    q, s = fp8.quantize(w, block_shape=[128, 128], pow2_scale=pow2)
    want_q, want_s = sem_fp8.quantize(w, block_shape=[128, 128], pow2_scale=pow2)
    assert torch.equal(s, want_s) and s.shape == (2, 2, 2)
    assert torch.equal(q.view(torch.uint8), want_q.view(torch.uint8))
    deq = fp8.dequantize(q, s, block_shape=[128, 128], out_dtype="bfloat16")
    want = sem_fp8.dequantize(q, s, block_shape=[128, 128], out_dtype="bfloat16")
    assert torch.equal(deq, want)


def test_fp8_matmuls(device) -> None:
    x = _rand(10, 256, seed=17, device=device)
    w = _rand(3, 192, 256, seed=18, device=device)
    xq, xs = sem_fp8.quantize(x, block_shape=[128], pow2_scale=False)
    wq, ws = sem_fp8.quantize(w, block_shape=[128, 128], pow2_scale=False)
    attrs = {"block_n": 128, "block_k": 128, "out_dtype": "float32"}
    got = fp8.matmul(xq, xs, wq[0], ws[0], **attrs)
    _close(got, sem_fp8.matmul(xq, xs, wq[0], ws[0], **attrs))
    offsets = torch.tensor([0, 3, 3, 8], device=device)  # expert 1 empty, rows 8.. unused
    want = sem_fp8.grouped_matmul(xq, xs, wq, ws, offsets, **attrs)
    _close(fp8.grouped_matmul(xq, xs, wq, ws, offsets, **attrs), want)
    attrs_bf16 = {**attrs, "out_dtype": "bfloat16"}
    h = sem_fp8.grouped_matmul(xq, xs, wq, ws, offsets, **attrs_bf16)
    fused = moe.grouped_matmul_swiglu(xq, xs, wq, ws, offsets, **attrs_bf16)
    _close(fused, sem_moe.swiglu(h))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_and_mm(dtype: torch.dtype, device) -> None:
    x = _rand(2, 7, 80, seed=19, dtype=dtype, device=device)
    w = _rand(40, 80, seed=20, dtype=dtype, device=device)
    b = _rand(40, seed=21, dtype=dtype, device=device)
    _close(gemm.linear(x, w, b), torch.nn.functional.linear(x, w, b))
    _close(gemm.linear(x, w), torch.nn.functional.linear(x, w))
    _close(gemm.mm(x[0], w.t()), x[0] @ w.t())
