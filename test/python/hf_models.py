"""Tiny random Hugging Face DeepseekV3 / DeepseekV2 models shared by the tests.

Weights are re-drawn at unit scale (HF's init, std 0.02, leaves attention nearly uniform and
would hide rope/layout errors); the V3 correction bias is random.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    DeepseekV2Config,
    DeepseekV2ForCausalLM,
    DeepseekV3Config,
    DeepseekV3ForCausalLM,
)

VOCAB = 128


def yarn(**over: Any) -> dict[str, Any]:
    rope = {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 64,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
    }
    return rope | over


def _common(**over: Any) -> dict[str, Any]:
    return (
        dict(
            vocab_size=VOCAB,
            hidden_size=64,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            n_shared_experts=1,
            n_routed_experts=8,
            num_experts_per_tok=3,
            first_k_dense_replace=1,
            q_lora_rank=32,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            max_position_embeddings=256,
            rope_parameters=yarn(),
        )
        | over
    )


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Unit-scale weights (fan-in scaled), norms near 1, a random V3 correction bias."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
    return model.eval()


def hf_v3(seed: int = 0, **over: Any) -> DeepseekV3ForCausalLM:
    cfg = DeepseekV3Config(
        **_common(
            n_group=4,
            topk_group=2,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            rope_interleave=True,
        )
        | over
    )
    torch.manual_seed(seed)
    return randomize(DeepseekV3ForCausalLM(cfg), seed)


def hf_v2(seed: int = 0, **over: Any) -> DeepseekV2ForCausalLM:
    cfg = DeepseekV2Config(
        **_common(
            q_lora_rank=None,
            n_shared_experts=2,
            n_group=4,
            topk_group=2,
            routed_scaling_factor=1.5,
            topk_method="greedy",
            rope_parameters=yarn(mscale=0.707, mscale_all_dim=0.707),
        )
        | over
    )
    torch.manual_seed(seed)
    return randomize(DeepseekV2ForCausalLM(cfg), seed)


def tokens(batch: int = 2, seq: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))
