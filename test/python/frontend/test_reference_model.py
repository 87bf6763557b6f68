"""The DeepSeek-V2/V3 reference model: shapes, Hugging Face parity, checkpoints, meta device."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from mlacc.frontend.models import CONFIGS, DeepSeekModel, ModelConfig, config_from_hf, get_config
from mlacc.frontend.models.checkpoint import (
    CheckpointError,
    dequantize_fp8,
    hf_name_map,
    load_checkpoint,
)
from mlacc.frontend.models.deepseek import rope_inv_freq

transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a - b|| / ||b||`` in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def hf_state_dict(model: DeepSeekModel) -> dict[str, torch.Tensor]:
    """Our weights under Hugging Face's (published, per-expert) names."""
    ours = model.state_dict()
    return {hf: ours[name].clone() for hf, name in hf_name_map(model.config).items()}


# ------------------------------------------------------------------------- configs, shapes


@pytest.mark.parametrize("name", ["deepseek-v3-tiny", "deepseek-v2-tiny"])
def test_tiny_configs_run(name: str) -> None:
    model = DeepSeekModel(get_config(name)).eval()
    tokens = torch.randint(0, model.config.vocab_size, (2, 16))
    with torch.no_grad():
        logits = model(tokens)
    assert logits.shape == (2, 16, model.config.vocab_size)
    assert torch.isfinite(logits).all()
    assert 0.1 < logits.std() < 10  # init keeps activations near unit scale


def test_tiny_v3_shape_features() -> None:
    cfg = get_config("deepseek-v3-tiny")
    model = DeepSeekModel(cfg)
    assert cfg.uses_yarn and cfg.q_lora_rank and cfg.n_mtp_layers == 1
    assert cfg.n_dense_layers == 1 < cfg.n_layers
    assert (cfg.dim, cfg.n_heads, cfg.n_routed_experts, cfg.n_expert_groups) == (64, 4, 8, 4)
    assert type(model.layers[0].ffn).__name__ == "MLP"
    assert type(model.layers[1].ffn).__name__ == "MoE"
    attn = model.layers[0].attn
    assert {"wq_a", "q_norm", "wq_b", "wkv_a", "kv_norm", "wkv_b", "wo"} <= set(attn._modules)
    assert model.layers[1].ffn.gate.bias is not None
    v2 = DeepSeekModel(get_config("deepseek-v2-tiny"))
    assert hasattr(v2.layers[0].attn, "wq") and v2.layers[1].ffn.gate.bias is None


def test_causal_and_positions() -> None:
    model = DeepSeekModel(get_config("deepseek-v3-tiny")).eval()
    tokens = torch.randint(0, 512, (1, 12))
    with torch.no_grad():
        full = model(tokens)
        prefix = model(tokens[:, :7])
        shifted = model(tokens, torch.arange(12)[None] + 3)
        spread = model(tokens, torch.arange(12)[None] * 2)
    torch.testing.assert_close(full[:, :7], prefix, rtol=1e-5, atol=1e-5)
    # RoPE is relative: a uniform shift changes nothing, other distances do
    torch.testing.assert_close(shifted, full, rtol=1e-4, atol=1e-4)
    assert rel_err(spread, full) > 1e-3


def test_mtp_forward() -> None:
    model = DeepSeekModel(get_config("deepseek-v3-tiny")).eval()
    tokens = torch.randint(0, 512, (2, 10))
    with torch.no_grad():
        hidden = model.hidden_states(tokens[:, :-1])
        logits = model.forward_mtp(tokens[:, 1:], hidden)
    assert logits.shape == (2, 9, 512) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="no MTP layer"):
        DeepSeekModel(get_config("deepseek-v2-tiny")).forward_mtp(tokens, hidden)


def test_get_config_unknown_name_lists_known() -> None:
    with pytest.raises(KeyError, match="deepseek-v3-tiny") as info:
        get_config("deepseek-v9")
    assert "deepseek-v9" in str(info.value) and "deepseek-v2-lite" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"score_func": "relu"}, "score_func"),
        ({"rope_layout": "spiral"}, "rope_layout"),
        ({"n_routed_experts": 9}, "multiple of n_expert_groups"),
        ({"n_activated_experts": 5}, "n_activated_experts"),
        ({"qk_rope_head_dim": 7}, "even"),
        ({"n_mtp_layers": 2}, "n_mtp_layers"),
    ],
)
def test_config_validation(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        get_config("deepseek-v3-tiny").replace(**changes)


def test_yarn_frequencies_agree_with_runtime_semantics() -> None:
    """Two independent implementations of DeepSeek's YaRN table (ours and the run side's)."""
    from mlacc.runtime.semantics import rope

    for name in ("deepseek-v3", "deepseek-v2-lite", "deepseek-v3-tiny"):
        cfg = get_config(name)
        attr = {
            "theta": cfg.rope_theta,
            "factor": cfg.rope_factor,
            "original_seq_len": cfg.original_seq_len,
            "beta_fast": cfg.beta_fast,
            "beta_slow": cfg.beta_slow,
            "truncate": True,
        }
        want = rope.inv_freq(attr, cfg.qk_rope_head_dim)
        torch.testing.assert_close(rope_inv_freq(cfg), want, rtol=1e-6, atol=0)


def test_yarn_tables_and_scale() -> None:
    cfg = get_config("deepseek-v3")
    plain = cfg.replace(max_seq_len=cfg.original_seq_len)
    base, yarn = rope_inv_freq(plain), rope_inv_freq(cfg)
    torch.testing.assert_close(yarn[:10], base[:10])  # high frequencies extrapolate
    torch.testing.assert_close(yarn[-4:], base[-4:] / 40)  # low ones interpolate
    mscale = 0.1 * math.log(40) + 1
    assert cfg.softmax_scale == pytest.approx(192**-0.5 * mscale**2)
    assert plain.softmax_scale == pytest.approx(192**-0.5)


# ------------------------------------------------------------------ Hugging Face parity


def _randomize_hf(model: torch.nn.Module) -> None:
    """Spreads router scores (no near-ties), random norms and correction bias."""
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if name.endswith("norm.weight"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("mlp.gate.weight"):
                tensor.normal_(0, 0.3)
            elif name.endswith("e_score_correction_bias"):
                tensor.normal_(0, 0.05)


YARN = {
    "rope_type": "yarn",
    "rope_theta": 10000.0,
    "factor": 4.0,
    "original_max_position_embeddings": 32,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "mscale": 0.8,
    "mscale_all_dim": 0.8,
}
TINY_HF = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 96,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 3,
    "first_k_dense_replace": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "kv_lora_rank": 32,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
    "max_position_embeddings": 128,
    "rope_parameters": YARN,
    "initializer_range": 0.1,
}


def _compare_with_hf(hf: torch.nn.Module, path: Path, tokens: torch.Tensor, **fw: Any) -> float:
    hf.eval()
    cfg = config_from_hf(hf.config)
    ours = DeepSeekModel(cfg).eval()
    result = load_checkpoint(ours, path)
    assert result.loaded == len(list(ours.parameters()))
    positions = fw.get("position_ids")
    with torch.no_grad():
        expected = hf(tokens, **fw).logits
        got = ours(tokens, positions)
    return rel_err(got, expected)


@pytest.mark.parametrize("q_lora", [16, None])
@pytest.mark.parametrize("interleave", [True, False])
def test_matches_hf_deepseek_v3(tmp_path: Path, q_lora: int | None, interleave: bool) -> None:
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    hc = DeepseekV3Config(
        **TINY_HF,
        n_group=4,
        topk_group=2,
        routed_scaling_factor=2.5,
        q_lora_rank=q_lora,
        rope_interleave=interleave,
        num_mtp_layers=0,
    )
    hf = DeepseekV3ForCausalLM(hc)
    _randomize_hf(hf)
    # transformers 5 keeps a layer's experts stacked ([E, 2I, D] gate_up_proj, [E, D, I])
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    assert "model.layers.1.mlp.experts.gate_up_proj" in sd
    save_file(sd, tmp_path / "model.safetensors")
    cfg = config_from_hf(hc)
    assert cfg.rope_layout == ("interleaved" if interleave else "rotate_half")
    assert cfg.uses_yarn and cfg.n_expert_groups == 4 and cfg.use_correction_bias
    tokens = torch.randint(0, 128, (2, 48))  # longer than original_max_position_embeddings
    assert _compare_with_hf(hf, tmp_path / "model.safetensors", tokens) < 1e-4
    positions = torch.stack([torch.arange(48) + 5, torch.arange(48) + 60])
    err = _compare_with_hf(hf, tmp_path / "model.safetensors", tokens, position_ids=positions)
    assert err < 1e-4

    # the published per-expert layout, as save_pretrained writes it (with config.json)
    hf.save_pretrained(tmp_path / "hf")
    hf_json = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config_from_hf(hf_json) == cfg
    assert _compare_with_hf(hf, tmp_path / "hf", tokens) < 1e-4

    # the comparison is sharp: the other rope layout, or no YaRN mscale, breaks it
    other = "rotate_half" if interleave else "interleaved"
    for wrong in (cfg.replace(rope_layout=other), cfg.replace(mscale=0.0)):
        model = DeepSeekModel(wrong).eval()
        load_checkpoint(model, tmp_path / "model.safetensors")
        with torch.no_grad():
            assert rel_err(model(tokens), hf(tokens).logits) > 1e-3


@pytest.mark.parametrize("topk_method", ["greedy", "group_limited_greedy"])
def test_matches_hf_deepseek_v2(tmp_path: Path, topk_method: str) -> None:
    from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

    hc = DeepseekV2Config(
        **{**TINY_HF, "n_shared_experts": 2},
        n_group=4,
        topk_group=2,
        topk_method=topk_method,
        routed_scaling_factor=1.5,
        q_lora_rank=None,
    )
    hf = DeepseekV2ForCausalLM(hc)
    _randomize_hf(hf)
    save_file(
        {k: v.contiguous() for k, v in hf.state_dict().items()}, tmp_path / "model.safetensors"
    )
    cfg = config_from_hf(hc)
    assert cfg.score_func == "softmax" and not cfg.use_correction_bias and cfg.q_lora_rank == 0
    assert cfg.n_expert_groups == (4 if topk_method == "group_limited_greedy" else 1)
    tokens = torch.randint(0, 128, (2, 48))
    assert _compare_with_hf(hf, tmp_path / "model.safetensors", tokens) < 1e-4


# ---------------------------------------------------------------------------- checkpoints


def test_hf_name_map_covers_every_weight() -> None:
    for name in ("deepseek-v3-tiny", "deepseek-v2-tiny"):
        model = DeepSeekModel(get_config(name))
        mapping = hf_name_map(model.config)
        assert sorted(mapping.values()) == sorted(model.state_dict())
    mapping = hf_name_map(get_config("deepseek-v3-tiny"))
    assert mapping["model.layers.1.mlp.gate.e_score_correction_bias"] == "layers.1.ffn.gate.bias"
    assert mapping["model.layers.3.shared_head.norm.weight"] == "mtp.0.norm.weight"
    assert mapping["model.layers.3.mlp.experts.7.up_proj.weight"] == "mtp.0.ffn.experts.7.w3.weight"
    assert mapping["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"] == (
        "layers.0.attn.wkv_a.weight"
    )


def test_mtp_checkpoint_round_trip_hf_names(tmp_path: Path) -> None:
    src = DeepSeekModel(get_config("deepseek-v3-tiny")).eval()
    sd = hf_state_dict(src)
    sd["model.layers.3.embed_tokens.weight"] = sd["model.embed_tokens.weight"].clone()
    sd["model.layers.3.shared_head.head.weight"] = sd["lm_head.weight"].clone()
    save_file(sd, tmp_path / "m.safetensors")
    dst = DeepSeekModel(get_config("deepseek-v3-tiny")).eval()
    result = load_checkpoint(dst, tmp_path / "m.safetensors")
    assert len(result.ignored) == 2
    tokens = torch.randint(0, 512, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(dst(tokens), src(tokens), rtol=0, atol=0)
        hidden = src.hidden_states(tokens[:, :-1])
        torch.testing.assert_close(
            dst.forward_mtp(tokens[:, 1:], hidden), src.forward_mtp(tokens[:, 1:], hidden)
        )
    # a model without MTP ignores the checkpoint's MTP layer (as Hugging Face does)
    no_mtp = DeepSeekModel(get_config("deepseek-v3-tiny").replace(n_mtp_layers=0))
    ignored = load_checkpoint(no_mtp, tmp_path / "m.safetensors").ignored
    assert all(k.startswith("model.layers.3.") for k in ignored) and len(ignored) > 20


def test_sharded_directory_with_index_and_meta_model(tmp_path: Path) -> None:
    src = DeepSeekModel(get_config("deepseek-v2-tiny")).eval()
    sd = src.state_dict()  # our (= converted public code) names
    keys = sorted(sd)
    half = len(keys) // 2
    shards = {"a.safetensors": keys[:half], "b.safetensors": keys[half:]}
    for file, names in shards.items():
        save_file({k: sd[k].contiguous() for k in names}, tmp_path / file)
    weight_map = {k: file for file, names in shards.items() for k in names}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with torch.device("meta"):
        dst = DeepSeekModel(get_config("deepseek-v2-tiny"))
    load_checkpoint(dst, tmp_path)
    assert not any(p.is_meta for p in dst.parameters())
    tokens = torch.randint(0, 512, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(dst.eval()(tokens), src(tokens), rtol=0, atol=0)


def _quantize_fp8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3 block quantization: scale_inv = amax / 448 per 128x128 block."""
    n, k = w.shape
    sn, sk = math.ceil(n / 128), math.ceil(k / 128)
    padded = torch.zeros(sn * 128, sk * 128)
    padded[:n, :k] = w
    blocks = padded.view(sn, 128, sk, 128)
    scale = blocks.abs().amax(dim=(1, 3)).clamp_min(1e-12) / 448.0
    q = (blocks / scale[:, None, :, None]).view(sn * 128, sk * 128)[:n, :k]
    return q.to(torch.float8_e4m3fn), scale


def test_dequantize_fp8_blocks() -> None:
    w = torch.full((130, 260), 2.0).to(torch.float8_e4m3fn)
    scale = torch.arange(1.0, 7.0).view(2, 3)
    out = dequantize_fp8(w, scale, torch.float32)
    assert out.shape == (130, 260)
    assert out[0, 0] == 2 and out[0, 128] == 4 and out[0, 259] == 6 and out[129, 0] == 8
    assert out[129, 259] == 12
    with pytest.raises(CheckpointError, match="expected"):
        dequantize_fp8(w, torch.ones(1, 3))


def test_fp8_checkpoint_dequantized_on_load(tmp_path: Path) -> None:
    cfg = get_config("deepseek-v3-tiny").replace(dim=200, inter_dim=300, n_mtp_layers=0)
    src = DeepSeekModel(cfg).eval()
    sd = hf_state_dict(src)
    expected = {}
    n_fp8 = 0
    for key in list(sd):
        w = sd[key]
        if w.dim() == 2 and key.endswith("proj.weight"):
            q, scale = _quantize_fp8(w)
            sd[key], sd[f"{key}_scale_inv"] = q, scale
            expected[key] = (
                q.float()
                * scale.repeat_interleave(128, 0)[: w.shape[0]].repeat_interleave(128, 1)[
                    :, : w.shape[1]
                ]
            )
            n_fp8 += 1
    # one weight in the converted (public inference code) naming, with its `.scale`
    sd["layers.0.attn.wo.weight"] = sd.pop("model.layers.0.self_attn.o_proj.weight")
    sd["layers.0.attn.wo.scale"] = sd.pop("model.layers.0.self_attn.o_proj.weight_scale_inv")
    save_file(sd, tmp_path / "fp8.safetensors")
    dst = DeepSeekModel(cfg).eval()
    result = load_checkpoint(dst, tmp_path / "fp8.safetensors")
    assert result.dequantized == n_fp8
    names = hf_name_map(cfg)
    params = dict(dst.named_parameters())
    for key, want in expected.items():
        torch.testing.assert_close(params[names[key]], want, rtol=0, atol=0)
    for key in ("model.embed_tokens.weight", "model.layers.1.mlp.gate.e_score_correction_bias"):
        torch.testing.assert_close(params[names[key]], sd[key], rtol=0, atol=0)  # not quantized
    # (end to end, e4m3 noise flips some expert choices: logits move by ~20%, by design)
    with torch.no_grad():
        assert torch.isfinite(dst(torch.randint(0, 512, (1, 16)))).all()


def _tiny_checkpoint() -> tuple[DeepSeekModel, dict[str, torch.Tensor]]:
    model = DeepSeekModel(get_config("deepseek-v3-tiny").replace(n_mtp_layers=0))
    return model, hf_state_dict(model)


def _expect_error(model: DeepSeekModel, sd: dict[str, torch.Tensor], path: Path, *needles: str):
    save_file(sd, path)
    before = model.embed.weight.clone()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, msg
    assert "\n" not in msg
    assert torch.equal(model.embed.weight, before)  # nothing written
    return msg


def test_checkpoint_errors(tmp_path: Path) -> None:
    model, sd = _tiny_checkpoint()
    sd["model.layers.0.self_attn.made_up.weight"] = torch.zeros(2)
    _expect_error(model, sd, tmp_path / "a.safetensors", "unknown", "made_up")

    _, sd = _tiny_checkpoint()
    del sd["model.norm.weight"], sd["model.layers.2.mlp.experts.3.up_proj.weight"]
    _expect_error(model, sd, tmp_path / "b.safetensors", "2 model weight(s) missing", "norm.weight")

    _, sd = _tiny_checkpoint()
    sd["model.layers.1.self_attn.kv_b_proj.weight"] = torch.zeros(7, 32)
    _expect_error(
        model,
        sd,
        tmp_path / "c.safetensors",
        "model.layers.1.self_attn.kv_b_proj.weight",
        "(7, 32)",
        "(128, 32)",
    )

    _, sd = _tiny_checkpoint()
    sd["model.layers.0.mlp.up_proj.weight"] = sd["model.layers.0.mlp.up_proj.weight"].to(
        torch.float8_e4m3fn
    )
    _expect_error(model, sd, tmp_path / "d.safetensors", "FP8", "up_proj.weight_scale_inv")

    _, sd = _tiny_checkpoint()
    sd["embed.weight"] = sd["model.embed_tokens.weight"].clone()
    _expect_error(model, sd, tmp_path / "e.safetensors", "given twice", "embed.weight")

    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(model, tmp_path / "nope.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no \.safetensors"):
        load_checkpoint(model, tmp_path / "empty")


def test_duplicate_tensor_across_shards(tmp_path: Path) -> None:
    model, sd = _tiny_checkpoint()
    (tmp_path / "mp").mkdir()
    save_file(sd, tmp_path / "mp" / "model0-mp2.safetensors")
    save_file(
        {"model.norm.weight": sd["model.norm.weight"]}, tmp_path / "mp" / "model1.safetensors"
    )
    with pytest.raises(CheckpointError, match=r"'model\.norm\.weight' is in both"):
        load_checkpoint(model, tmp_path / "mp")


# ----------------------------------------------------------------- real shapes on meta


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


# Published totals: DeepSeek-V3 671B main model + 14B MTP module = 685B as stored (the MTP
# layer's checkpoint carries its own copies of the embedding and output head, which our
# model shares); DeepSeek-V2-Lite 15.7B; DeepSeek-V2 236B.
@pytest.mark.parametrize(
    ("name", "published"),
    [("deepseek-v3", 671e9), ("deepseek-v2-lite", 15.7e9), ("deepseek-v2", 236e9)],
    ids=["deepseek-v3", "deepseek-v2-lite", "deepseek-v2"],
)
def test_meta_construction_of_real_models(name: str, published: float) -> None:
    cfg = get_config(name)
    rss = _rss()
    with torch.device("meta"):  # construction time is measured by benchmarks/, not asserted
        model = DeepSeekModel(cfg)
    assert all(t.is_meta for t in (*model.parameters(), *model.buffers()))
    assert _rss() - rss < 1 << 30  # module objects only, no weight storage
    main = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("mtp."))
    assert main == pytest.approx(published, rel=0.01)
    if name == "deepseek-v3":
        mtp = sum(p.numel() for p in model.mtp.parameters())
        as_stored = main + mtp + 2 * cfg.vocab_size * cfg.dim
        assert as_stored == pytest.approx(685e9, rel=0.01)
        assert 671e9 < main + mtp < 685e9


def test_named_real_config_numbers() -> None:
    v3, lite = CONFIGS["deepseek-v3"], CONFIGS["deepseek-v2-lite"]
    assert (v3.dim, v3.n_layers, v3.n_dense_layers, v3.n_heads, v3.q_lora_rank) == (
        7168,
        61,
        3,
        128,
        1536,
    )
    assert (v3.n_routed_experts, v3.n_expert_groups, v3.n_limited_groups) == (256, 8, 4)
    assert (v3.route_scale, v3.rope_factor, v3.vocab_size, v3.n_mtp_layers) == (2.5, 40, 129280, 1)
    assert (lite.dim, lite.n_layers, lite.q_lora_rank, lite.n_activated_experts) == (2048, 27, 0, 6)
    assert (lite.moe_inter_dim, lite.score_func, lite.vocab_size) == (1408, "softmax", 102400)
    assert isinstance(v3, ModelConfig)
