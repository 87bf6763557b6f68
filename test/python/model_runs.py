"""Helpers shared by the differential tests: the four model structures and cached decoding."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from mlacc.model_input import builtin_model


def pass_test_models() -> dict[str, torch.nn.Module]:
    """mlacc's V3/V2 tiny reference models and tiny random HF DeepseekV3/V2, by name."""
    from hf_models import hf_v2, hf_v3

    return {
        "reference-v3": builtin_model("deepseek-v3-tiny", seed=2),
        "reference-v2": builtin_model("deepseek-v2-tiny", seed=2),
        "hf-v3": hf_v3(),
        "hf-v2": hf_v2(),
    }


def public_layout_model(n_layers: int = 2, seed: int = 0) -> torch.nn.Module:
    """The public DeepSeek-V3 inference code's layout (`frontend/public_model.py`), tiny."""
    sys.path.insert(0, str(Path(__file__).parent / "frontend"))
    try:
        from public_model import Transformer, init_weights, tiny_args
    finally:
        sys.path.pop(0)
    torch.manual_seed(seed)
    return init_weights(Transformer(tiny_args(n_layers=n_layers)), seed).eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error of `a` against `b` (Frobenius)."""
    return ((a - b).norm() / b.norm()).item()


def prefill_then_decode(exe, tokens: torch.Tensor, prefill: int) -> torch.Tensor:
    """Logits of `prefill` over the first `prefill` tokens, then of `decode` for each of the
    rest, over zero-initialized latent caches shaped as the manifest says."""
    cache = exe.manifest["kv_cache"]
    caches = [
        torch.zeros(cache["batch"], cache["max_seq_len"], cache["entry"])
        for _ in range(cache["layers"])
    ]
    b, n = tokens.shape
    pos = torch.arange(n).expand(b, n)
    # a model with an MTP layer also returns its final hidden states, right after the logits
    skip = 1 if (cache.get("mtp") or {}).get("hidden") else 0
    logits, *rest = exe.run("prefill", tokens[:, :prefill], pos[:, :prefill].contiguous(), *caches)
    caches = rest[skip:]
    out = [logits]
    for t in range(prefill, n):
        step, *rest = exe.run(
            "decode", tokens[:, t : t + 1], pos[:, t : t + 1].contiguous(), *caches
        )
        caches = rest[skip:]
        out.append(step)
    return torch.cat(out, dim=1)
