"""Capturing Hugging Face DeepseekV3ForCausalLM / DeepseekV2ForCausalLM (tiny random configs).

The compiled model (reference target) must reproduce HF's own logits: full sequence, and
prefill + token-by-token decode over the latent cache. Weights are re-drawn at unit scale
(HF's init, std 0.02, leaves attention nearly uniform and would hide rope/layout errors).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

import pytest
import torch

import mlacc
from mlacc.frontend.errors import CaptureError

transformers = pytest.importorskip("transformers")
from hf_models import hf_v2, hf_v3, tokens, yarn  # noqa: E402 - after the importorskip


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def hf_logits(model: torch.nn.Module, ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, use_cache=False, **kwargs).logits


def functions(ir_text: str) -> dict[str, str]:
    """The text of each func.func in a module, by name."""
    parts = re.split(r"(?=func\.func @)", ir_text)
    return {
        re.match(r"func\.func @(\w+)", p).group(1): p for p in parts if p.startswith("func.func")
    }


# ------------------------------------------------------------------- full-sequence numerics


V3_VARIANTS = {
    "qlora-interleave-norm": {},
    "noqlora-rotatehalf-nonorm": dict(
        q_lora_rank=None, rope_interleave=False, norm_topk_prob=False
    ),
    "qlora-rotatehalf-norm": dict(rope_interleave=False),
    "noqlora-interleave-nonorm-mscale": dict(
        q_lora_rank=None,
        norm_topk_prob=False,
        rope_parameters=yarn(mscale=1.0, mscale_all_dim=0.8, truncate=False),
    ),
}


@pytest.mark.parametrize("variant", list(V3_VARIANTS))
def test_v3_matches_hf(variant: str) -> None:
    model = hf_v3(**V3_VARIANTS[variant])
    ids = tokens()
    out = mlacc.compile(model, (ids,), target="reference").load()(ids)
    assert isinstance(out, transformers.modeling_outputs.MoeCausalLMOutputWithPast)
    err = rel_err(out.logits, hf_logits(model, ids))
    assert err < 1e-3, f"{variant}: relative error {err:.2e}"


V2_VARIANTS = {
    "greedy": {},
    "group_limited_greedy": dict(topk_method="group_limited_greedy", norm_topk_prob=True),
}


@pytest.mark.parametrize("variant", list(V2_VARIANTS))
def test_v2_matches_hf(variant: str) -> None:
    model = hf_v2(**V2_VARIANTS[variant])
    ids = tokens()
    out = mlacc.compile(model, (ids,), target="reference").load()(ids)
    err = rel_err(out.logits, hf_logits(model, ids))
    assert err < 1e-3, f"{variant}: relative error {err:.2e}"


def test_per_expert_module_list() -> None:
    """Experts as a ModuleList of MLPs (the published checkpoints' per-expert layout) capture
    like transformers 5's stacked tensors, under the per-expert names."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MLP

    model = hf_v3()
    ids = tokens()
    expected = hf_logits(model, ids)
    inter = model.config.moe_intermediate_size
    for layer in model.model.layers[1:]:
        stacked = layer.mlp.experts
        experts = torch.nn.ModuleList()
        for e in range(stacked.gate_up_proj.shape[0]):
            mlp = DeepseekV3MLP(model.config, intermediate_size=inter)
            with torch.no_grad():
                mlp.gate_proj.weight.copy_(stacked.gate_up_proj[e, :inter])
                mlp.up_proj.weight.copy_(stacked.gate_up_proj[e, inter:])
                mlp.down_proj.weight.copy_(stacked.down_proj[e])
            experts.append(mlp)
        layer.mlp.experts = experts
    art = mlacc.compile(model, (ids,), target="reference")
    keys = set(art.manifest["weights"]["tensors"])
    assert {"model.layers.1.mlp.experts.w_gate", "model.layers.2.mlp.experts.w_down"} <= keys
    assert rel_err(art.load()(ids).logits, expected) < 1e-3


def test_rope_layout_matters() -> None:
    """The layout tests above are sensitive: HF's two V3 rope layouts give different logits."""
    ids = tokens()
    a = hf_logits(hf_v3(rope_interleave=True), ids)
    b = hf_logits(hf_v3(rope_interleave=False), ids)
    assert rel_err(a, b) > 1e-2


def test_position_ids_mask_and_save_load(tmp_path) -> None:
    model = hf_v3()
    ids = tokens(seq=8)
    positions = torch.arange(8)[None] + 5
    mask = torch.ones_like(ids)
    kwargs = {"attention_mask": mask, "position_ids": positions}
    path = tmp_path / "hf.mlacc"
    mlacc.compile(model, (ids,), kwargs, target="reference").save(path)
    out = mlacc.runtime.load(path)(ids, **kwargs)
    assert isinstance(out, transformers.modeling_outputs.MoeCausalLMOutputWithPast)
    err = rel_err(out.logits, hf_logits(model, ids, position_ids=positions))
    assert err < 1e-3
    # A fresh process that never imported transformers still rebuilds the HF output class.
    script = (
        "import sys, torch, mlacc.runtime\n"
        f"exe = mlacc.runtime.load({str(path)!r})\n"
        "ids = torch.zeros(2, 8, dtype=torch.int64)\n"
        "pos = torch.arange(8)[None] + 5\n"
        "out = exe(ids, attention_mask=torch.ones_like(ids), position_ids=pos)\n"
        "print(type(out).__name__, tuple(out.logits.shape))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("MoeCausalLMOutputWithPast (2, 8,")


# ------------------------------------------------------------------------ prefill + decode


@pytest.mark.parametrize("build", [hf_v3, hf_v2], ids=["v3", "v2"])
def test_prefill_decode_matches_hf(build) -> None:
    model = build()
    ids, prompt = tokens(seq=10), 6
    full = hf_logits(model, ids)
    art = mlacc.compile(model, (ids[:, :prompt],), target="reference", cache_len=16)
    exe = art.load()
    kv = art.manifest["kv_cache"]
    assert kv["entry"] == 32 + 8 and kv["layers"] == 3 and kv["max_seq_len"] == 16
    caches = [torch.zeros(kv["batch"], kv["max_seq_len"], kv["entry"]) for _ in range(kv["layers"])]
    batch = ids.shape[0]
    positions = torch.arange(prompt).expand(batch, prompt)
    logits, *caches = exe.run("prefill", ids[:, :prompt], positions, *caches)
    assert rel_err(logits, full[:, :prompt]) < 1e-3
    for i in range(prompt, ids.shape[1]):
        step = torch.full((batch, 1), i)
        logits, *caches = exe.run("decode", ids[:, i : i + 1], step, *caches)
        err = rel_err(logits, full[:, i : i + 1])
        assert err < 1e-3, f"decode at position {i}: relative error {err:.2e}"


def test_generate_matches_hf_greedy() -> None:
    model = hf_v2(topk_method="group_limited_greedy")
    prompt = tokens(seq=6)
    exe = mlacc.compile(model, (prompt,), target="reference", cache_len=16).load()
    expected = prompt
    for _ in range(4):  # HF greedy decoding, full sequence each step (no HF cache involved)
        nxt = hf_logits(model, expected)[:, -1].argmax(-1, keepdim=True)
        expected = torch.cat([expected, nxt], dim=1)
    assert torch.equal(exe.generate(prompt, 4), expected)


# ------------------------------------------------------------------------------ the IR


def test_captured_ir_structure() -> None:
    model = hf_v3()
    ids = tokens()
    start = time.perf_counter()
    text = str(mlacc.capture(model, (ids,)))
    seconds = time.perf_counter() - start
    print(f"capture of a tiny HF DeepseekV3 (3 layers, 3 entry points): {seconds:.2f}s")
    assert "torch.operator" not in text
    funcs = functions(text)
    assert {"forward", "prefill", "decode"} <= set(funcs)
    for name in ("forward", "prefill", "decode"):
        assert funcs[name].count('"mla.attention"') == 3, name
        assert funcs[name].count('"moe.router"') == 2, name  # first_k_dense_replace = 1
    keys = set(re.findall(r'"mlacc\.weight"\(\) \{key = "([^"]+)"\}', text))
    # every weight is HF's state-dict name, except the experts, which moe.experts takes
    # stacked as <experts module>.w_gate / .w_up / .w_down (views of gate_up_proj, down_proj)
    experts = {
        f"model.layers.{i}.mlp.experts.{w}" for i in (1, 2) for w in ("w_gate", "w_up", "w_down")
    }
    assert keys - experts <= set(model.state_dict())
    assert experts <= keys
    assert {
        "model.layers.0.self_attn.kv_b_proj.weight",
        "model.layers.0.self_attn.q_a_layernorm.weight",
        "model.layers.2.mlp.gate.e_score_correction_bias",
        "model.layers.1.mlp.shared_experts.down_proj.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.embed_tokens.weight",
        "lm_head.weight",
    } <= keys


# ------------------------------------------------------------------------------ errors


def test_missing_projection_names_module() -> None:
    model = hf_v3()
    del model.model.layers[1].self_attn.kv_b_proj
    with pytest.raises(CaptureError, match=r"model\.layers\.1\.self_attn .*kv_b_proj"):
        mlacc.capture(model, (tokens(),))


def test_unknown_topk_method_names_gate() -> None:
    model = hf_v2()
    model.model.layers[2].mlp.gate.topk_method = "noaux_tc"
    with pytest.raises(CaptureError, match=r"model\.layers\.2\.mlp\.gate .*topk_method 'noaux_tc'"):
        mlacc.capture(model, (tokens(),))


def test_unsupported_rope_names_rotary() -> None:
    model = hf_v3(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0})
    with pytest.raises(CaptureError, match=r"model\.rotary_emb .*rope_type 'linear'"):
        mlacc.capture(model, (tokens(),))


def test_attention_bias_rejected() -> None:
    model = hf_v3(attention_bias=True)
    with pytest.raises(CaptureError, match=r"model\.layers\.0\.self_attn\.\w+ .*bias"):
        mlacc.capture(model, (tokens(),))


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"attention_mask": torch.ones(2, 1, 10, 10)}, "4D mask is not supported"),
        ({"inputs_embeds": torch.zeros(2, 10, 64)}, "inputs_embeds"),
        ({"labels": torch.zeros(2, 10, dtype=torch.long)}, "labels"),
        ({"output_hidden_states": True}, "output_hidden_states"),
    ],
)
def test_unsupported_call_arguments(kwargs: dict, reason: str) -> None:
    model = hf_v3(num_hidden_layers=2)
    with pytest.raises(CaptureError, match=reason):
        mlacc.capture(model, (tokens(),), kwargs)
