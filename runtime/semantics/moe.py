"""Reference semantics of the `moe` ops (DeepSeekMoE routing, experts, grouped execution).

Shapes: ``N`` tokens, ``D`` hidden size, ``I`` expert intermediate size, ``E`` routed experts,
``K`` experts per token (top_k), ``P`` rows of a dispatched buffer.

Numerics: router scores in fp32 (weights are fp32); matmuls accumulate in fp32 and return the
input's dtype; the SwiGLU product is taken in the input's dtype (as Hugging Face's and
DeepSeek's eager code do); weighted sums over a token's experts accumulate in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import semantics


def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x · w^T`` with fp32 math, in x's dtype."""
    return F.linear(x.to(torch.float32), w.to(torch.float32)).to(x.dtype)


def _check_expert_ids(indices: torch.Tensor, num_experts: int, op: str) -> None:
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_experts):
        raise ValueError(
            f"{op}: expert indices must lie in [0, {num_experts}), got "
            f"[{int(indices.min())}, {int(indices.max())}]"
        )


@semantics("moe.router")
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
    """`moe.router`: ``(weights [N,K] fp32, indices [N,K] int64)`` of the selected experts.

    Matches Hugging Face's DeepseekV3TopkRouter (sigmoid, bias, top2_sum groups) and
    DeepseekV2TopkRouter (softmax, greedy or max-scored groups) and DeepSeek's public ``Gate``.
    Unselected groups are masked with -inf. The K entries are ordered by descending selection
    score (``scores + bias``; ``torch.topk`` order). With ``norm_topk_prob`` the weights are
    divided by ``sum + 1e-20`` (Hugging Face's guard against an all-zero sum).
    """
    logits = F.linear(x.to(torch.float32), weight.to(torch.float32))
    if score_func == "sigmoid":
        scores = logits.sigmoid()
    elif score_func == "softmax":
        scores = logits.softmax(dim=-1)
    else:
        raise ValueError(f"moe.router: unknown score_func '{score_func}' (sigmoid or softmax)")
    choice = scores if bias is None else scores + bias.to(torch.float32)
    if n_groups > 1:
        n, experts = choice.shape
        grouped = choice.view(n, n_groups, experts // n_groups)
        if group_score == "top2_sum":
            group_scores = grouped.topk(2, dim=-1)[0].sum(dim=-1)
        elif group_score == "max":
            group_scores = grouped.amax(dim=-1)
        else:
            raise ValueError(f"moe.router: unknown group_score '{group_score}' (top2_sum or max)")
        kept = group_scores.topk(topk_group, dim=-1)[1]
        keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, kept, True)
        choice = grouped.masked_fill(~keep[..., None], float("-inf")).view(n, experts)
    indices = choice.topk(top_k, dim=-1)[1]
    weights = scores.gather(1, indices)
    if norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights * route_scale, indices


@semantics("moe.mlp")
def mlp(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor
) -> torch.Tensor:
    """`moe.mlp`: SwiGLU FFN ``w_down · (silu(w_gate · x) * (w_up · x))`` over x ``[..., D]``."""
    return _linear(F.silu(_linear(x, w_gate)) * _linear(x, w_up), w_down)


@semantics("moe.experts")
def experts(
    x: torch.Tensor,
    weights: torch.Tensor,
    indices: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down: torch.Tensor,
) -> torch.Tensor:
    """`moe.experts`: ``out[n] = Σ_k weights[n,k] · FFN_{indices[n,k]}(x[n])``, x's dtype;
    expert weights stacked ``[E, I, D]``, ``[E, I, D]``, ``[E, D, I]``."""
    num_experts = w_gate.shape[0]
    _check_expert_ids(indices, num_experts, "moe.experts")
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for e in range(num_experts):
        token, slot = torch.where(indices == e)
        if token.numel() == 0:
            continue
        y = mlp(x[token], w_gate[e], w_up[e], w_down[e])
        out.index_add_(0, token, y.to(torch.float32) * weights[token, slot, None].float())
    return out.to(x.dtype)


@semantics("moe.dispatch")
def dispatch(
    x: torch.Tensor, indices: torch.Tensor, *, num_experts: int, block_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`moe.dispatch`: ``(x_sorted [P,D], row_of [N,K] int64, expert_offsets [E+1] int64)``.

    Pairs (n, k) go to their expert's segment, experts ascending, pairs in (n, k) order inside
    a segment; segment e spans ``[offsets[e], offsets[e+1])`` with a length that is the
    expert's pair count rounded up to a multiple of ``block_size``;
    ``P = N*K + E*(block_size-1)`` and every row not holding a pair is zero.
    """
    _check_expert_ids(indices, num_experts, "moe.dispatch")
    n, k = indices.shape
    flat = indices.reshape(-1).long()
    counts = torch.bincount(flat, minlength=num_experts)
    padded = (counts + block_size - 1) // block_size * block_size
    offsets = torch.zeros(num_experts + 1, dtype=torch.int64, device=x.device)
    offsets[1:] = torch.cumsum(padded, dim=0)
    order = torch.sort(flat, stable=True)[1]  # pair ids, grouped by expert, (n, k) order inside
    sorted_experts = flat[order]
    group_start = torch.cumsum(counts, dim=0) - counts
    rank = torch.arange(flat.numel(), device=x.device) - group_start[sorted_experts]
    rows = torch.empty_like(flat)
    rows[order] = offsets[sorted_experts] + rank
    x_sorted = x.new_zeros((n * k + num_experts * (block_size - 1), x.shape[1]))
    x_sorted[rows] = x[torch.arange(n, device=x.device).repeat_interleave(k)]
    return x_sorted, rows.view(n, k), offsets


@semantics("moe.grouped_matmul")
def grouped_matmul(x: torch.Tensor, w: torch.Tensor, expert_offsets: torch.Tensor) -> torch.Tensor:
    """`moe.grouped_matmul`: ``out[r] = w[e] · x[r]`` for the rows of expert e; other rows 0."""
    out = x.new_zeros((x.shape[0], w.shape[1]))
    bounds = [int(o) for o in expert_offsets]
    for e in range(w.shape[0]):
        lo, hi = bounds[e], bounds[e + 1]
        if hi > lo:
            out[lo:hi] = _linear(x[lo:hi], w[e])
    return out


@semantics("moe.swiglu")
def swiglu(h: torch.Tensor) -> torch.Tensor:
    """`moe.swiglu`: ``silu(h[..., :I]) * h[..., I:]`` for h ``[..., 2I]``."""
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


@semantics("moe.combine")
def combine(y: torch.Tensor, row_of: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`moe.combine`: ``out[n] = Σ_k weights[n,k] · y[row_of[n,k]]`` (fp32 sum), y's dtype."""
    picked = y[row_of.long()].to(torch.float32)  # [N, K, D]
    out = (picked * weights.to(torch.float32)[..., None]).sum(dim=1)
    return out.to(y.dtype)
