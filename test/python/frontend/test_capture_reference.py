"""Capture of mlacc's reference model: numerics against eager, KV-cache entry points, IR shape,
the full-size model on the meta device, .pt2 input, and models that cannot be captured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import mlacc
from mlacc.frontend.errors import CaptureError
from mlacc.frontend.models import DeepSeekModel, get_config
from mlacc.model_input import builtin_model
from mlacc.runtime.errors import CompileError


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module", params=["deepseek-v3-tiny", "deepseek-v2-tiny"])
def compiled(request: pytest.FixtureRequest):
    """(model, executable, prompt) with caches of 24 tokens."""
    model = builtin_model(request.param, seed=1)
    prompt = torch.randint(
        0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0)
    )
    exe = mlacc.compile(model, (prompt,), target="reference", cache_len=24).load()
    return model, exe, prompt


def test_forward_matches_eager(compiled) -> None:
    model, exe, prompt = compiled
    with torch.no_grad():
        want = model(prompt)
    assert _rel(exe(prompt), want) < 1e-3  # fp32: measured ~5e-7


def test_prefill_then_decode_reproduces_full_sequence_logits(compiled) -> None:
    model, exe, _ = compiled
    cache = exe.manifest["kv_cache"]
    assert cache["entry"] == model.config.kv_lora_rank + model.config.qk_rope_head_dim
    tokens = torch.randint(
        0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        want = model(tokens)
    caches = [
        torch.zeros(cache["batch"], cache["max_seq_len"], cache["entry"])
        for _ in range(cache["layers"])
    ]
    positions = torch.arange(12).expand(2, 12)
    with torch.no_grad():
        hidden = model.hidden_states(tokens)
    # with an MTP layer (V3), the final hidden states (after the final norm) follow the logits
    mtp = model.config.n_mtp_layers > 0
    assert ("mtp" in cache) == mtp

    def call(entry: str, t0: int, t1: int, caches: list) -> tuple:
        logits, *rest = exe.run(entry, tokens[:, t0:t1], positions[:, t0:t1].contiguous(), *caches)
        if mtp:
            assert _rel(rest[0], hidden[:, t0:t1]) < 1e-4
        return logits, rest[1:] if mtp else rest

    logits, caches = call("prefill", 0, 8, caches)
    assert _rel(logits, want[:, :8]) < 1e-4
    for t in range(8, 12):
        logits, caches = call("decode", t, t + 1, caches)
        assert _rel(logits[:, 0], want[:, t]) < 1e-4


def test_generate_is_greedy_decoding(compiled) -> None:
    model, exe, prompt = compiled
    ids = prompt[:, :5]
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(exe.generate(prompt[:, :5], 6), ids)


def test_captured_ir_is_mla_and_moe_ops() -> None:
    model = builtin_model("deepseek-v3-tiny")
    text = str(mlacc.capture(model, (torch.zeros(1, 4, dtype=torch.long),), cache_len=8))
    cfg = model.config
    forward = text[text.index("func.func @forward") : text.index("func.func @prefill")]
    assert forward.count('"mla.attention"') == cfg.n_layers
    assert (
        forward.count('"moe.router"')
        == forward.count('"moe.experts"')
        == cfg.n_layers - cfg.n_dense_layers
    )
    assert forward.count('"moe.mlp"') == cfg.n_layers  # dense MLPs + shared experts
    assert forward.count('"mla.rms_norm"') == 2 * cfg.n_layers + 1
    assert "torch.operator" not in text
    assert '{key = "layers.0.attn.wkv_b.weight"}' in text
    assert '{key = "layers.1.ffn.experts.w_gate"}' in text  # stacked at capture
    # forward, prefill, decode; with the MTP layer: verify, draft, draft_prefill
    assert text.count("func.func @") == 6
    draft = text[text.index("func.func @draft(") : text.index("func.func @draft_prefill")]
    assert draft.count('"mla.attention"') == 1 and '{key = "mtp.0.eh_proj.weight"}' in draft


def test_ops_carry_the_model_source_location() -> None:
    from mlacc.dialects import make_context
    from mlacc.dialects.parsing import module_text
    from mlacc.model_input import import_model

    with make_context():
        text = module_text(import_model("deepseek-v3-tiny", None, None).module)
    model_file = re.escape(str(Path(DeepSeekModel.__module__.replace(".", "/")).name))
    attention_locs = re.findall(r'"mla\.attention".* loc\((#loc\d+)\)', text)
    assert attention_locs
    alias = attention_locs[0]
    definition = re.search(rf"^{alias} = loc\((.*)\)$", text, re.M).group(1)
    assert re.search(rf'{model_file}.py":\d+', definition), definition


def test_full_size_v3_captures_on_meta_without_weight_data() -> None:
    model = builtin_model("deepseek-v3")
    assert all(p.is_meta for p in model.parameters())
    module = mlacc.capture(
        model, (torch.zeros(1, 16, dtype=torch.long, device="meta"),), cache_len=4096
    )
    text = str(module)
    assert len(text) < 8 << 20  # names and shapes, no tensor data
    assert "dense_resource" not in text and "torch.vtensor.literal" not in text
    # forward, prefill, decode and verify: 61 layers each; draft, draft_prefill: the MTP layer
    assert text.count('"mla.attention"') == 4 * 61 + 2
    assert "!torch.vtensor<[1,4096,576],bf16>" in text  # the latent cache: 512 + 64 per token
    from mlacc.report import memory_report

    report = memory_report(module)
    assert (report.layers, report.mtp_layers, report.cache_values_per_token) == (61, 1, 576)
    assert report.mha_values_per_token == 128 * (128 + 64) + 128 * 128
    assert report.cache_bytes == (61 + 1) * 4096 * 576 * 2
    # 671B parameters + the MTP layer's ~12B of its own (its embed and head are shared) in bf16
    assert 1.35e12 < report.weight_bytes["bfloat16"] < 1.38e12
    tiny_on_meta = builtin_model("deepseek-v3-tiny", meta=True)
    with pytest.raises(CompileError, match=r"meta device.*timing_only=True"):
        mlacc.compile(tiny_on_meta, target="reference")


def test_pt2_input(tmp_path: Path) -> None:
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    path = tmp_path / "mlp.pt2"
    torch.export.save(torch.export.export(mlp, (x,)), path)
    exe = mlacc.compile(str(path), target="reference").load()
    torch.testing.assert_close(exe(x), mlp(x))


def test_model_no_adapter_recognizes() -> None:
    with pytest.raises(
        CaptureError, match=r"cannot capture <model> \(Linear\): no adapter recognizes"
    ):
        mlacc.compile(nn.Linear(2, 2), (torch.randn(1, 2),), target="reference")


def test_model_with_a_missing_projection_names_the_module() -> None:
    model = DeepSeekModel(get_config("deepseek-v3-tiny"))
    del model.layers[1].attn.wkv_b
    with pytest.raises(
        CaptureError, match=r"cannot capture layers\.1\.attn \(MLA\): it has no 'wkv_b\.weight'"
    ):
        mlacc.capture(model, (torch.zeros(1, 4, dtype=torch.long),))


def test_unknown_input_is_one_error() -> None:
    with pytest.raises(
        CompileError, match=r"not a checkpoint folder, a file .* or a built-in model"
    ):
        mlacc.compile("deepseek-v9", target="reference")


def test_opaque_op_is_reported_at_capture(tmp_path: Path) -> None:
    torch.library.define("mlacc_test::opaque", "(Tensor x) -> Tensor")
    torch.library.register_fake("mlacc_test::opaque")(lambda x: torch.empty_like(x))

    class Opaque(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.mlacc_test.opaque(x) + 1

    path = tmp_path / "opaque.pt2"
    torch.export.save(torch.export.export(Opaque(), (torch.randn(2, 2),)), path)
    with pytest.raises(
        CaptureError,
        match=r"test_capture_reference\.py:\d+:0: op 'torch\.mlacc_test\.opaque' stays an opaque",
    ):
        mlacc.capture(str(path))


def test_cache_length_must_hold_the_prompt() -> None:
    model = builtin_model("deepseek-v3-tiny")
    tokens = torch.zeros(1, 8, dtype=torch.long)
    with pytest.raises(CaptureError, match="cache_len must be positive, got 0"):
        mlacc.capture(model, (tokens,), cache_len=0)
    with pytest.raises(CaptureError, match="cache_len 4 cannot hold the 8 tokens"):
        mlacc.capture(model, (tokens,), cache_len=4)
