"""`moe` semantics: the router against Hugging Face DeepseekV3/V2, experts against HF's experts,
and the grouped form (dispatch -> grouped_matmul -> swiglu -> grouped_matmul -> combine)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import DeepseekV2Config, DeepseekV3Config
from transformers.models.deepseek_v2.modeling_deepseek_v2 import DeepseekV2TopkRouter
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
    DeepseekV3Experts,
    DeepseekV3MLP,
    DeepseekV3TopkRouter,
)

from mlacc.runtime.semantics import get

router = get("moe.router")
mlp = get("moe.mlp")
experts = get("moe.experts")
dispatch = get("moe.dispatch")
grouped_matmul = get("moe.grouped_matmul")
swiglu = get("moe.swiglu")
combine = get("moe.combine")

N, D, INTER, E = 37, 16, 12, 8


def _v3_config(**kw) -> DeepseekV3Config:
    base = {
        "hidden_size": D,
        "moe_intermediate_size": INTER,
        "intermediate_size": 2 * INTER,
        "n_routed_experts": E,
        "n_group": 4,
        "topk_group": 2,
        "num_experts_per_tok": 2,
        "routed_scaling_factor": 2.5,
        "num_attention_heads": 4,
        "n_shared_experts": 1,
    }
    return DeepseekV3Config(**(base | kw))


def _sorted_by_index(weights: torch.Tensor, indices: torch.Tensor):
    order = indices.argsort(dim=-1)
    return weights.gather(1, order), indices.gather(1, order)


def _assert_same_routing(ours, theirs) -> None:
    w, i = _sorted_by_index(*ours)
    hw, hi = _sorted_by_index(*theirs)
    assert torch.equal(i, hi)
    torch.testing.assert_close(w, hw, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("norm_topk_prob", [True, False])
@pytest.mark.parametrize(
    ("top_k", "n_group", "topk_group"), [(2, 4, 2), (3, 4, 2), (3, 2, 1), (4, 1, 1)]
)
def test_router_matches_hf_v3(norm_topk_prob: bool, top_k, n_group, topk_group) -> None:
    config = _v3_config(
        norm_topk_prob=norm_topk_prob,
        num_experts_per_tok=top_k,
        n_group=n_group,
        topk_group=topk_group,
    )
    gate = DeepseekV3TopkRouter(config)
    with torch.no_grad():
        gate.weight.normal_()
        gate.e_score_correction_bias.uniform_(-0.3, 0.3)
    x = torch.randn(N, D)
    with torch.no_grad():
        _, hf_w, hf_i = gate(x)
    attrs = {
        "score_func": "sigmoid",
        "top_k": top_k,
        "n_groups": n_group,
        "topk_group": topk_group,
        "group_score": "top2_sum",
        "route_scale": 2.5,
        "norm_topk_prob": norm_topk_prob,
    }
    w, i = router(x, gate.weight.detach(), gate.e_score_correction_bias, **attrs)
    assert w.dtype == torch.float32 and i.dtype == torch.int64 and w.shape == (N, top_k)
    _assert_same_routing((w, i), (hf_w, hf_i))
    # the bias steers selection only: without it the choice differs, the weights are scores
    _, i_nobias = router(x, gate.weight.detach(), None, **attrs)
    assert not torch.equal(i_nobias.sort(-1)[0], i.sort(-1)[0])
    if not norm_topk_prob:
        scores = torch.sigmoid(x @ gate.weight.detach().T)
        torch.testing.assert_close(w, scores.gather(1, i) * 2.5)
    # ordering convention: descending selection score
    choice = torch.sigmoid(x @ gate.weight.detach().T) + gate.e_score_correction_bias
    picked = choice.gather(1, i)
    assert torch.all(picked[:, :-1] >= picked[:, 1:])


@pytest.mark.parametrize("method", ["greedy", "group_limited_greedy"])
def test_router_matches_hf_v2(method: str) -> None:
    config = DeepseekV2Config(
        hidden_size=D,
        n_routed_experts=E,
        num_experts_per_tok=3,
        topk_method=method,
        n_group=4,
        topk_group=2,
        routed_scaling_factor=1.5,
        num_attention_heads=4,
    )
    gate = DeepseekV2TopkRouter(config)
    with torch.no_grad():
        gate.weight.normal_()
    x = torch.randn(N, D)
    with torch.no_grad():
        _, hf_w, hf_i = gate(x)
    grouped = method == "group_limited_greedy"
    w, i = router(
        x,
        gate.weight.detach(),
        None,
        score_func="softmax",
        top_k=3,
        n_groups=4 if grouped else 1,
        topk_group=2 if grouped else 1,
        group_score="max",
        route_scale=1.5,
        norm_topk_prob=False,
    )
    _assert_same_routing((w, i), (hf_w, hf_i))


def test_group_limit_restricts_choice() -> None:
    x = torch.randn(N, D)
    weight = torch.randn(E, D)
    attrs = {
        "score_func": "sigmoid",
        "top_k": 2,
        "topk_group": 1,
        "group_score": "top2_sum",
        "route_scale": 1.0,
        "norm_topk_prob": True,
    }
    w, i = router(x, weight, None, n_groups=4, **attrs)
    assert torch.all(i[:, 0] // 2 == i[:, 1] // 2)  # both from the one kept group
    torch.testing.assert_close(w.sum(-1), torch.ones(N))
    _, i_free = router(x, weight, None, n_groups=1, **attrs)
    assert not torch.all(i_free[:, 0] // 2 == i_free[:, 1] // 2)


def _expert_weights(num_experts: int = E):
    w_gate = [torch.randn(INTER, D) / D**0.5 for _ in range(num_experts)]
    w_up = [torch.randn(INTER, D) / D**0.5 for _ in range(num_experts)]
    w_down = [torch.randn(D, INTER) / INTER**0.5 for _ in range(num_experts)]
    return w_gate, w_up, w_down


def test_mlp_matches_hf() -> None:
    hf = DeepseekV3MLP(_v3_config(), intermediate_size=INTER)
    x = torch.randn(3, 5, D)
    with torch.no_grad():
        expected = hf(x)
    out = mlp(
        x, hf.gate_proj.weight.detach(), hf.up_proj.weight.detach(), hf.down_proj.weight.detach()
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_experts_match_hf_routed_experts(rel_err) -> None:
    config = _v3_config()
    config._experts_implementation = "eager"
    hf = DeepseekV3Experts(config)
    with torch.no_grad():
        hf.gate_up_proj.normal_(std=0.3)
        hf.down_proj.normal_(std=0.3)
    gate = DeepseekV3TopkRouter(config)
    with torch.no_grad():
        gate.weight.normal_()
        gate.e_score_correction_bias.uniform_(-0.3, 0.3)
    x = torch.randn(N, D)
    with torch.no_grad():
        _, weights, indices = gate(x)
        expected = hf(x, indices, weights)
    gate_up, down = hf.gate_up_proj.detach(), hf.down_proj.detach()
    out = experts(x, weights, indices, gate_up[:, :INTER], gate_up[:, INTER:], down)
    assert rel_err(out, expected) < 1e-6


def test_experts_is_weighted_sum_of_mlps() -> None:
    w_gate, w_up, w_down = _expert_weights()
    x = torch.randn(5, D)
    indices = torch.tensor([[0, 3], [3, 1], [7, 0], [2, 2], [5, 6]])
    weights = torch.rand(5, 2)
    out = experts(x, weights, indices, *_stacked(w_gate, w_up, w_down))
    for n in range(5):
        expected = sum(
            weights[n, k] * mlp(x[n], w_gate[e], w_up[e], w_down[e])
            for k, e in enumerate(indices[n].tolist())
        )
        torch.testing.assert_close(out[n], expected, rtol=1e-5, atol=1e-6)


def _check_dispatch_layout(x, indices, block_size, x_sorted, row_of, offsets) -> None:
    n, k = indices.shape
    assert x_sorted.shape == (n * k + E * (block_size - 1), x.shape[1])
    assert row_of.shape == (n, k) and row_of.dtype == torch.int64
    assert offsets.shape == (E + 1,) and offsets.dtype == torch.int64
    assert offsets[0] == 0 and torch.all(offsets % block_size == 0)
    assert torch.all(offsets[1:] >= offsets[:-1]) and offsets[-1] <= x_sorted.shape[0]
    used = torch.zeros(x_sorted.shape[0], dtype=torch.bool)
    for e in range(E):
        pairs = [(t, s) for t in range(n) for s in range(k) if indices[t, s] == e]
        rows = [int(row_of[t, s]) for t, s in pairs]
        lo, hi = int(offsets[e]), int(offsets[e + 1])
        assert rows == list(range(lo, lo + len(pairs)))  # contiguous from the segment start
        assert hi - lo == -(-len(pairs) // block_size) * block_size
        for (t, _), r in zip(pairs, rows):
            assert torch.equal(x_sorted[r], x[t])
            used[r] = True
    assert torch.count_nonzero(x_sorted[~used]) == 0


@pytest.mark.parametrize("block_size", [1, 3, 16])
@pytest.mark.parametrize("idle_experts", [False, True])
def test_grouped_path_equals_experts(rel_err, block_size: int, idle_experts: bool) -> None:
    w_gate, w_up, w_down = _expert_weights()
    x = torch.randn(N, D)
    if idle_experts:  # experts 1, 4, 5, 7 get no tokens
        live = torch.tensor([0, 2, 3, 6])
        indices = torch.stack([live[torch.randperm(4)[:2]] for _ in range(N)])
    else:
        indices = torch.stack([torch.randperm(E)[:2] for _ in range(N)])
    weights = torch.rand(N, 2)

    expected = experts(x, weights, indices, *_stacked(w_gate, w_up, w_down))

    x_sorted, row_of, offsets = dispatch(x, indices, num_experts=E, block_size=block_size)
    _check_dispatch_layout(x, indices, block_size, x_sorted, row_of, offsets)
    w13 = torch.stack([torch.cat([g, u]) for g, u in zip(w_gate, w_up)])  # [E, 2I, D]
    w2 = torch.stack(w_down)  # [E, D, INTER]
    h = grouped_matmul(x_sorted, w13, offsets)
    assert h.shape == (x_sorted.shape[0], 2 * INTER)
    assert torch.count_nonzero(h[int(offsets[-1]) :]) == 0
    y = grouped_matmul(swiglu(h), w2, offsets)
    out = combine(y, row_of, weights)
    assert out.shape == (N, D)
    assert rel_err(out, expected) < 1e-5


def test_dispatch_example() -> None:
    x = torch.arange(5.0)[:, None].expand(5, 2)
    indices = torch.tensor([[0, 2], [2, 1], [0, 1], [3, 2], [2, 0]])
    x_sorted, row_of, offsets = dispatch(x, indices, num_experts=4, block_size=4)
    assert offsets.tolist() == [0, 4, 8, 12, 16]
    assert row_of.tolist() == [[0, 8], [9, 4], [1, 5], [12, 10], [11, 2]]
    assert x_sorted[:, 0].tolist() == [0, 2, 4, 0, 1, 2, 0, 0, 0, 1, 3, 4, 3] + [0] * 9
    with pytest.raises(ValueError, match="expert indices"):
        dispatch(x, indices, num_experts=3, block_size=4)


def test_swiglu_and_combine() -> None:
    h = torch.randn(4, 2 * INTER)
    torch.testing.assert_close(swiglu(h), F.silu(h[:, :INTER]) * h[:, INTER:])
    y = torch.randn(6, D)
    row_of = torch.tensor([[0, 5], [3, 3]])
    weights = torch.tensor([[0.25, 0.75], [1.0, 2.0]])
    out = combine(y, row_of, weights)
    torch.testing.assert_close(out[0], 0.25 * y[0] + 0.75 * y[5])
    torch.testing.assert_close(out[1], 3.0 * y[3])


def test_bf16_dtypes() -> None:
    w_gate, w_up, w_down = _expert_weights()
    x = torch.randn(N, D, dtype=torch.bfloat16)
    weights, indices = router(
        x,
        torch.randn(E, D),
        None,
        score_func="sigmoid",
        top_k=2,
        n_groups=1,
        topk_group=1,
        group_score="top2_sum",
        route_scale=1.0,
        norm_topk_prob=True,
    )
    assert weights.dtype == torch.float32
    out = experts(x, weights, indices, *_stacked(w_gate, w_up, w_down))
    assert out.dtype == torch.bfloat16
    x_sorted, row_of, offsets = dispatch(x, indices, num_experts=E, block_size=4)
    assert x_sorted.dtype == torch.bfloat16
    y = grouped_matmul(
        swiglu(
            grouped_matmul(
                x_sorted, torch.stack([torch.cat([g, u]) for g, u in zip(w_gate, w_up)]), offsets
            )
        ),
        torch.stack(w_down),
        offsets,
    )
    grouped = combine(y, row_of, weights)
    assert grouped.dtype == torch.bfloat16
    torch.testing.assert_close(grouped.float(), out.float(), rtol=3e-2, atol=3e-2)


def _stacked(*lists: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Per-expert weight lists stacked into ``[E, ...]`` tensors, as `moe.experts` takes them."""
    return tuple(torch.stack(ws) for ws in lists)
