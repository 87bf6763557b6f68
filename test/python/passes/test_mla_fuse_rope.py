"""`--mla-fuse-rope`: numerics before/after on real model structures, and the IR shape."""

from __future__ import annotations

import pytest
import torch

import mlacc
from mlacc.model_input import builtin_model

BASE = "mla-absorb-weights"
FUSED = "mla-absorb-weights,mla-fuse-rope"


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def models():
    from hf_models import hf_v2, hf_v3

    return {
        "reference-v3": builtin_model("deepseek-v3-tiny", seed=2),
        "reference-v2": builtin_model("deepseek-v2-tiny", seed=2),
        "hf-v3": hf_v3(),
        "hf-v2": hf_v2(),
    }


def _decode_logits(exe, tokens: torch.Tensor, prefill: int) -> torch.Tensor:
    cache = exe.manifest["kv_cache"]
    caches = [
        torch.zeros(cache["batch"], cache["max_seq_len"], cache["entry"])
        for _ in range(cache["layers"])
    ]
    b, n = tokens.shape
    pos = torch.arange(n).expand(b, n)
    logits, *caches = exe.run(
        "prefill", tokens[:, :prefill], pos[:, :prefill].contiguous(), *caches
    )
    out = [logits]
    for t in range(prefill, n):
        step, *caches = exe.run(
            "decode", tokens[:, t : t + 1], pos[:, t : t + 1].contiguous(), *caches
        )
        out.append(step)
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("name", ["reference-v3", "reference-v2", "hf-v3", "hf-v2"])
def test_fused_rope_keeps_the_numbers(models, name: str) -> None:
    model = models[name]
    tokens = torch.randint(
        0, model.config.vocab_size, (2, 10), generator=torch.Generator().manual_seed(5)
    )
    kwargs = {"use_cache": False} if name.startswith("hf") else {}
    results = {}
    for pipeline in (BASE, FUSED):
        compiled = mlacc.compile(
            model, (tokens[:, :6],), kwargs, target="reference", pipeline=pipeline, cache_len=16
        )
        exe = compiled.load()
        forward = exe(tokens[:, :6], **kwargs)
        results[pipeline] = (getattr(forward, "logits", forward), _decode_logits(exe, tokens, 6))
    for got, want in zip(results[FUSED], results[BASE], strict=True):
        assert _rel(got, want) < 1e-4
