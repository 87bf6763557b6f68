"""Adapter for mlacc's own reference model (`frontend.models.DeepSeekModel`)."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ...dialects.mla.rope import rope_params
from ..capture_modules import (
    AttentionSpec,
    CapturedAttention,
    CapturedBlock,
    CapturedCausalLM,
    CapturedMLP,
    CapturedMoE,
    CapturedMTP,
    CapturedRMSNorm,
    RouterSpec,
    default_positions,
)
from ..models.config import ModelConfig
from ..models.deepseek import MLA, MLP, Block, DeepSeekModel, MoE, MTPLayer, RMSNorm
from . import Bound, CausalLM, fail, need, source_of

DESCRIPTION = "mlacc's DeepSeekModel"


def matches(model: nn.Module) -> bool:
    return isinstance(model, DeepSeekModel)


def rope_of(cfg: ModelConfig) -> dict[str, Any]:
    """The `rope` attribute for a config."""
    return rope_params(
        layout=cfg.rope_layout,
        theta=cfg.rope_theta,
        factor=cfg.rope_factor if cfg.uses_yarn else 1.0,
        original_seq_len=cfg.original_seq_len,
        beta_fast=cfg.beta_fast,
        beta_slow=cfg.beta_slow,
        cos_sin_scale=1.0,
        truncate=True,
    )


def _attention(attn: MLA, cfg: ModelConfig, path: str) -> CapturedAttention:
    names = ["wkv_a", "kv_norm", "wkv_b", "wo"]
    names += ["wq_a", "q_norm", "wq_b"] if cfg.q_lora_rank else ["wq"]
    weights = {name: need(attn, path, f"{name}.weight") for name in names}
    spec = AttentionSpec(
        num_heads=cfg.n_heads,
        q_lora_rank=cfg.q_lora_rank,
        kv_lora_rank=cfg.kv_lora_rank,
        qk_nope_head_dim=cfg.qk_nope_head_dim,
        qk_rope_head_dim=cfg.qk_rope_head_dim,
        v_head_dim=cfg.v_head_dim,
        softmax_scale=cfg.softmax_scale,
        eps=cfg.norm_eps,
        rope=rope_of(cfg),
        weights=weights,
    )
    return CapturedAttention(spec, source_of(attn))


def _mlp(mlp: MLP) -> CapturedMLP:
    return CapturedMLP(mlp.w1.weight, mlp.w3.weight, mlp.w2.weight, source_of(mlp))


def _experts(module: CapturedMoE) -> tuple[list, list, list]:
    n = sum(1 for name in module._tensor_names if name.endswith(".w1"))
    return (
        [module.tensor(f"{e}.w1") for e in range(n)],
        [module.tensor(f"{e}.w3") for e in range(n)],
        [module.tensor(f"{e}.w2") for e in range(n)],
    )


def _moe(moe: MoE, cfg: ModelConfig, path: str) -> CapturedMoE:
    gate = moe.gate
    router = RouterSpec(
        weight=gate.weight,
        bias=gate.bias,
        score_func=cfg.score_func,
        top_k=cfg.n_activated_experts,
        n_groups=cfg.n_expert_groups,
        topk_group=cfg.n_limited_groups,
        group_score=cfg.group_score,
        route_scale=cfg.route_scale,
        norm_topk_prob=cfg.norm_topk_prob,
    )
    tensors = {}
    for e, expert in enumerate(moe.experts):
        for w in ("w1", "w2", "w3"):
            tensors[f"{e}.{w}"] = getattr(expert, w).weight
    shared = _mlp(moe.shared_experts) if moe.shared_experts is not None else None
    return CapturedMoE(router, tensors, _experts, shared, source_of(moe))


def _norm(norm: RMSNorm) -> CapturedRMSNorm:
    return CapturedRMSNorm(norm.weight, norm.eps, source_of(norm))


def _block(layer: Block, cfg: ModelConfig, path: str) -> CapturedBlock:
    if isinstance(layer.ffn, MoE):
        ffn: nn.Module = _moe(layer.ffn, cfg, f"{path}.ffn")
    elif isinstance(layer.ffn, MLP):
        ffn = _mlp(layer.ffn)
    else:
        raise fail(f"{path}.ffn", layer.ffn, "expected an MLP or a MoE")
    return CapturedBlock(
        _norm(layer.attn_norm),
        _attention(layer.attn, cfg, f"{path}.attn"),
        _norm(layer.ffn_norm),
        ffn,
        source_of(layer),
    )


def _mtp(model: DeepSeekModel, layer: MTPLayer, cfg: ModelConfig) -> CapturedMTP:
    """The MTP layer, sharing the main model's `embed` and `head` (keys `mtp.0.*`)."""
    return CapturedMTP(
        model.embed.weight,
        _norm(layer.enorm),
        _norm(layer.hnorm),
        layer.eh_proj.weight,
        _block(layer, cfg, "mtp.0"),
        _norm(layer.norm),
        model.head.weight,
        _source_of_function(DeepSeekModel.forward_mtp),
    )


def _source_of_function(fn: Any) -> str:
    try:
        _, line = inspect.getsourcelines(fn)
        return f"{inspect.getsourcefile(fn)}:{line}"
    except (OSError, TypeError):
        return ""


def adapt(model: DeepSeekModel) -> CausalLM:
    cfg = model.config
    blocks = [_block(layer, cfg, f"layers.{i}") for i, layer in enumerate(model.layers)]
    lm = CapturedCausalLM(
        model.embed.weight,
        blocks,
        _norm(model.norm),
        model.head.weight,
        source_of(model),
        mtp=_mtp(model, model.mtp[0], cfg) if len(model.mtp) else None,
    )

    def bind(args: tuple, kwargs: dict) -> Bound:
        tokens = kwargs.get("tokens", args[0] if args else None)
        positions = kwargs.get("positions", args[1] if len(args) > 1 else None)
        if positions is None:
            positions = default_positions(tokens)
        return Bound(tokens, positions)

    return CausalLM(
        lm=lm,
        family="reference",
        max_seq_len=cfg.max_seq_len,
        bind=bind,
        format=lambda logits: logits,
    )
