"""`moe.router` in one kernel: logits, sigmoid/softmax, bias, group-limited top-k, weights.

One program takes ``BLOCK_T`` tokens and every expert (``BLOCK_E`` >= E, 256 for DeepSeek-V3):
the logits ``[BLOCK_T, E]`` are an fp32 GEMM over D in ``BLOCK_D`` slices (IEEE fp32, as the
semantics compute them, so near-ties resolve as there), then scores, the bias-corrected
choice, group scores (sum of the top two, or the max), the ``topk_group`` best groups, and
``top_k`` rounds of arg-max over the kept experts all stay in registers. Exact ties pick the
lowest index; `torch.topk` leaves their order unspecified (on CPU it often picks others), so
on exactly tied scores the ids may differ from the semantics' while the weights agree.

``triton.router_shared`` (a plan fusion) also writes the merged shared experts' columns (fixed
ids, weight 1) after the top-k, so no ``new_full`` + ``cat`` per call builds them.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from ._common import INTERPRET, check_device, next_pow2


@triton.jit
def _argmax_lowest(v, idx, BIG: tl.constexpr):
    """Per row: the max of v and the lowest column index holding it."""
    m = tl.max(v, 1)
    return m, tl.min(tl.where(v == m[:, None], idx[None, :], BIG), 1)


@triton.jit
def _router_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    weights_ptr,
    indices_ptr,
    N,
    D,
    E,
    group_size,
    route_scale,
    stride_xn,
    stride_we,
    SIGMOID: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    N_GROUPS: tl.constexpr,
    TOPK_GROUP: tl.constexpr,
    TOP2_SUM: tl.constexpr,
    TOP_K: tl.constexpr,
    NORM: tl.constexpr,
    N_SHARED: tl.constexpr,
    SHARED_FIRST: tl.constexpr,
    SHARED_WEIGHT: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_T + tl.arange(0, BLOCK_T)
    mask_t = rows < N
    oe = tl.arange(0, BLOCK_E)
    valid = oe < E
    logits = tl.zeros((BLOCK_T, BLOCK_E), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        mask_d = ds < D
        a = tl.load(
            x_ptr + rows[:, None] * stride_xn + ds[None, :],
            mask=mask_t[:, None] & mask_d[None, :],
            other=0.0,
        ).to(tl.float32)
        b = tl.load(
            w_ptr + oe[None, :] * stride_we + ds[:, None],
            mask=valid[None, :] & mask_d[:, None],
            other=0.0,
        ).to(tl.float32)
        logits += tl.dot(a, b, input_precision="ieee")
    neg_inf = float("-inf")
    if SIGMOID:
        scores = 1.0 / (1.0 + tl.exp(-logits))
    else:
        masked = tl.where(valid[None, :], logits, neg_inf)
        ex = tl.exp(masked - tl.max(masked, 1)[:, None])
        scores = ex / tl.sum(ex, 1)[:, None]
    scores = tl.where(valid[None, :], scores, 0.0)
    choice = scores
    if HAS_BIAS:
        choice = choice + tl.load(bias_ptr + oe, mask=valid, other=0.0).to(tl.float32)[None, :]
    choice = tl.where(valid[None, :], choice, neg_inf)
    if N_GROUPS > 1:
        group = oe // group_size
        og = tl.arange(0, BLOCK_G)
        gscores = tl.full((BLOCK_T, BLOCK_G), neg_inf, tl.float32)
        for g in tl.static_range(N_GROUPS):
            in_g = (group == g) & valid
            v = tl.where(in_g[None, :], choice, neg_inf)
            m1, first = _argmax_lowest(v, oe, BLOCK_E)
            if TOP2_SUM:
                v2 = tl.where(oe[None, :] == first[:, None], neg_inf, v)
                gs = m1 + tl.max(v2, 1)
            else:
                gs = m1
            gscores = tl.where(og[None, :] == g, gs[:, None], gscores)
        kept = tl.zeros((BLOCK_T, BLOCK_E), dtype=tl.int32)
        for _ in tl.static_range(TOPK_GROUP):
            _, best = _argmax_lowest(gscores, og, BLOCK_G)
            hit = og[None, :] == best[:, None]
            gscores = tl.where(hit, neg_inf, gscores)
            kept = tl.where(group[None, :] == best[:, None], 1, kept)
        choice = tl.where(kept != 0, choice, neg_inf)
    ok = tl.arange(0, BLOCK_K)
    top_w = tl.zeros((BLOCK_T, BLOCK_K), dtype=tl.float32)
    top_i = tl.zeros((BLOCK_T, BLOCK_K), dtype=tl.int64)
    for j in tl.static_range(TOP_K):
        _, best = _argmax_lowest(choice, oe, BLOCK_E)
        hit = oe[None, :] == best[:, None]
        w = tl.sum(tl.where(hit, scores, 0.0), 1)
        top_w = tl.where(ok[None, :] == j, w[:, None], top_w)
        top_i = tl.where(ok[None, :] == j, best[:, None].to(tl.int64), top_i)
        choice = tl.where(hit, neg_inf, choice)
    if NORM:
        top_w = top_w / (tl.sum(top_w, 1)[:, None] + 1e-20)
    top_w = top_w * route_scale
    if N_SHARED > 0:  # the shared experts' columns: fixed ids, fixed weight
        shared = ok[None, :] >= TOP_K
        top_w = tl.where(shared, SHARED_WEIGHT, top_w)
        top_i = tl.where(shared, (SHARED_FIRST - TOP_K + ok[None, :]).to(tl.int64), top_i)
    width = TOP_K + N_SHARED
    mask = mask_t[:, None] & (ok[None, :] < width)
    out = rows[:, None] * width + ok[None, :]
    tl.store(weights_ptr + out, top_w, mask=mask)
    tl.store(indices_ptr + out, top_i, mask=mask)


def _route(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    score_func: str,
    top_k: int,
    n_groups: int,
    topk_group: int,
    group_score: str,
    route_scale: float,
    norm_topk_prob: bool,
    shared: tuple[int, int, float] = (0, 0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One router launch; `shared` = (count, first id, weight) of the columns appended."""
    if score_func not in ("sigmoid", "softmax"):
        raise ValueError(f"moe.router: unknown score_func '{score_func}' (sigmoid or softmax)")
    if n_groups > 1 and group_score not in ("top2_sum", "max"):
        raise ValueError(f"moe.router: unknown group_score '{group_score}' (top2_sum or max)")
    check_device(x, weight, bias)
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    w = weight if weight.stride(-1) == 1 else weight.contiguous()
    n, d = x2.shape
    e = w.shape[0]
    n_shared, shared_first, shared_weight = shared
    width = top_k + n_shared
    weights = torch.empty((n, width), dtype=torch.float32, device=x.device)
    indices = torch.empty((n, width), dtype=torch.int64, device=x.device)
    block_e = next_pow2(e, 16)
    block_t = 16
    block_d = 32 if INTERPRET else (32 if block_e >= 256 else 64)
    _router_kernel[(triton.cdiv(n, block_t),)](
        x2,
        w,
        bias if bias is not None else w,
        weights,
        indices,
        n,
        d,
        e,
        e // max(n_groups, 1),
        float(route_scale),
        x2.stride(0),
        w.stride(0),
        SIGMOID=score_func == "sigmoid",
        HAS_BIAS=bias is not None,
        N_GROUPS=n_groups,
        TOPK_GROUP=topk_group,
        TOP2_SUM=group_score == "top2_sum",
        TOP_K=top_k,
        NORM=bool(norm_topk_prob),
        N_SHARED=n_shared,
        SHARED_FIRST=shared_first,
        SHARED_WEIGHT=float(shared_weight),
        BLOCK_T=block_t,
        BLOCK_D=block_d,
        BLOCK_E=block_e,
        BLOCK_G=next_pow2(n_groups, 2),
        BLOCK_K=next_pow2(width, 2),
        num_warps=8 if block_e >= 256 else 4,
    )
    lead = x.shape[:-1]
    return weights.reshape(*lead, width), indices.reshape(*lead, width)


def router(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    score_func: str,
    top_k: int,
    n_groups: int,
    topk_group: int,
    group_score: str,
    route_scale: float,
    norm_topk_prob: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`moe.router`: ``(weights [N,K] fp32, indices [N,K] int64)``; see the semantics."""
    return _route(
        x,
        weight,
        bias,
        score_func=score_func,
        top_k=top_k,
        n_groups=n_groups,
        topk_group=topk_group,
        group_score=group_score,
        route_scale=route_scale,
        norm_topk_prob=norm_topk_prob,
    )


def router_shared(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    shared_count: int,
    shared_first: int,
    shared_weight: float,
    **router_attrs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`moe.router` with the shared experts merged in as always-chosen experts:
    ``(weights [N, K+m], indices [N, K+m])`` whose last m columns are the ids
    ``shared_first .. shared_first+m-1`` with weight `shared_weight` (what moe-group-experts'
    ``new_full`` + ``cat`` after the router build, in the router's own store)."""
    return _route(
        x, weight, bias, shared=(shared_count, shared_first, shared_weight), **router_attrs
    )


KERNELS = {"moe.router": router}
FUSED_KERNELS = {"triton.router_shared": router_shared}
