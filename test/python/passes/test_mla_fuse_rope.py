"""`--mla-fuse-rope`: numerics before/after on real model structures, and the IR shape."""

from __future__ import annotations

import pytest
import torch
from model_runs import pass_test_models, prefill_then_decode, rel_err

import mlacc

BASE = "mla-absorb-weights"
FUSED = "mla-absorb-weights,mla-fuse-rope"


@pytest.fixture(scope="module")
def models():
    return pass_test_models()


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
        results[pipeline] = (
            getattr(forward, "logits", forward),
            prefill_then_decode(exe, tokens, 6),
        )
    for got, want in zip(results[FUSED], results[BASE], strict=True):
        assert rel_err(got, want) < 1e-4
