"""`--mla-absorb-weights`: numerics before/after on real model structures, and its decisions."""

from __future__ import annotations

import pytest
import torch
from model_runs import pass_test_models, prefill_then_decode, rel_err

import mlacc
from mlacc.model_input import builtin_model
from mlacc.passes._mla_cost_model import MlaShape, Roofline, decide

PIPELINES = [
    "mla-absorb-weights",
    "mla-absorb-weights{absorb=always}",
    "mla-absorb-weights{absorb=never}",
    "mla-absorb-weights{premultiply=always}",
]


@pytest.fixture(scope="module")
def models():
    return pass_test_models()


@pytest.mark.parametrize("name", ["reference-v3", "reference-v2", "hf-v3", "hf-v2"])
def test_pipelines_keep_the_numbers(models, name: str) -> None:
    model = models[name]
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (2, 10), generator=torch.Generator().manual_seed(5))
    kwargs = {"use_cache": False} if name.startswith("hf") else {}
    base = mlacc.compile(
        model, (tokens[:, :6],), kwargs, target="reference", pipeline="none", cache_len=16
    ).load()
    want_forward = base(tokens[:, :6], **kwargs)
    want_forward = getattr(want_forward, "logits", want_forward)
    want_decode = prefill_then_decode(base, tokens, 6)
    for pipeline in PIPELINES:
        exe = mlacc.compile(
            model, (tokens[:, :6],), kwargs, target="reference", pipeline=pipeline, cache_len=16
        ).load()
        got = exe(tokens[:, :6], **kwargs)
        assert rel_err(getattr(got, "logits", got), want_forward) < 1e-4, pipeline
        assert rel_err(prefill_then_decode(exe, tokens, 6), want_decode) < 1e-4, pipeline


def test_decode_never_materializes_per_head_kv() -> None:
    model = builtin_model("deepseek-v3-tiny")
    art = mlacc.compile(
        model,
        (torch.zeros(1, 8, dtype=torch.long),),
        target="reference",
        pipeline="mla-absorb-weights",
        cache_len=32,
    )
    text = art.mlir
    start = text.index("func.func @decode")
    end = text.find("func.func @", start + 1)  # verify and the MTP layer's entry points follow
    decode = text[start : end if end > 0 else None]
    assert '"mla.attention"' not in text
    assert decode.count('"mla.latent_attention"') == model.config.n_layers
    assert '"mla.kv_expand"' not in decode and '"mla.decoupled_attention"' not in decode
    cfg = model.config
    entry = cfg.kv_lora_rank + cfg.qk_rope_head_dim
    assert art.manifest["kv_cache"]["entry"] == entry
    assert f"!torch.vtensor<[1,32,{entry}],f32>" in decode


def _v3(new_tokens: int, keys: int) -> MlaShape:
    return MlaShape(
        batch=1,
        new_tokens=new_tokens,
        keys=keys,
        heads=128,
        nope=128,
        rope=64,
        value=128,
        latent=512,
        q_lora=1536,
        dim=7168,
        element_bytes=2,
    )


def test_cost_model_on_deepseek_v3_shapes() -> None:
    h100 = Roofline()
    decode = decide(_v3(1, 4096), True, h100, "auto", "auto")
    assert decode.absorb and not decode.premultiply_q and not decode.premultiply_o
    assert "absorbed is cheaper" in decode.reason
    prefill = decide(_v3(4096, 4096), True, h100, "auto", "auto")
    assert not prefill.absorb and "un-absorbed is cheaper" in prefill.reason
    # pre-multiplying W_UK^T W_UQ costs ~3x the bytes of the two factors for V3
    from mlacc.passes._mla_cost_model import premultiply_costs

    costs = premultiply_costs(_v3(1, 4096), h100)
    assert 2.5 < costs["q_premultiplied"].nbytes / costs["q_separate"].nbytes < 3.5
    forced = decide(_v3(1, 4096), True, h100, "never", "auto")
    assert not forced.absorb and "absorb=never by option" in forced.reason
