"""`--mla-absorb-weights` decides on the target device's roofline: compiled for `sim`, the
pass takes the device's achievable compute and bandwidth (`SimBackend.pass_options`), so the
same module may absorb on one device and not on another, and the reason names the device."""

from __future__ import annotations

import re

import pytest

import mlacc
from mlacc.passes._mla_cost_model import MlaShape, Roofline, attention_costs

# DeepSeek-V3's attention dims, bf16.
H, DN, DR, DV, C, QL, D = 128, 128, 64, 128, 512, 1536, 7168


def attention_module(new: int, keys: int) -> str:
    """One `mla.attention` of `new` tokens over a `keys`-token latent cache."""
    t = {
        "x": f"[1,{new},{D}]",
        "pos": f"[1,{new}]",
        "wkv_a": f"[{C + DR},{D}]",
        "kv_norm": f"[{C}]",
        "wkv_b": f"[{H * (DN + DV)},{C}]",
        "wo": f"[{D},{H * DV}]",
        "wq_a": f"[{QL},{D}]",
        "q_norm": f"[{QL}]",
        "wq_b": f"[{H * (DN + DR)},{QL}]",
        "cache": f"[1,{keys},{C + DR}]",
    }
    ty = {k: f"!torch.vtensor<{v},{'si64' if k == 'pos' else 'bf16'}>" for k, v in t.items()}
    args = ", ".join(f"%{k}: {v}" for k, v in ty.items())
    operands = ", ".join(f"%{k}" for k in ty)
    types = ", ".join(ty.values())
    return f"""
func.func @attention$prefill({args}) -> ({ty["x"]}, {ty["cache"]}) {{
  %y, %new_cache = "mla.attention"({operands}) {{eps = 1.0e-06 : f64, kv_lora_rank = {C} : i64,
      num_heads = {H} : i64, q_lora_rank = {QL} : i64, qk_nope_head_dim = {DN} : i64,
      qk_rope_head_dim = {DR} : i64, v_head_dim = {DV} : i64, softmax_scale = 0.1 : f64,
      rope = {{beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64,
      cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved",
      original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0>,
      resultSegmentSizes = array<i32: 1, 1>}} : ({types}) -> ({ty["x"]}, {ty["cache"]})
  return %y, %new_cache : {ty["x"]}, {ty["cache"]}
}}
"""


def decision(device: str, new: int, keys: int) -> tuple[str, str]:
    art = mlacc.compile(
        attention_module(new, keys),
        target="sim",
        pipeline="mla-absorb-weights",
        timing_only=True,
        device=device,
    )
    match = re.search(r'mlacc.absorb = "(\w+)", mlacc.absorb_reason = "([^"]*)"', art.mlir)
    assert match, art.mlir[:2000]
    return match.group(1), match.group(2)


def test_the_decision_follows_the_device() -> None:
    """160 new tokens over a 1024-token cache: on edge-npu (compute-poor for its bandwidth
    relative to an H100) the un-absorbed form is cheaper, on h100-like the absorbed one."""
    edge, edge_why = decision("edge-npu", 160, 1024)
    h100, h100_why = decision("h100-like", 160, 1024)
    assert (edge, h100) == ("unabsorbed", "absorbed")
    assert "on edge-npu (" in edge_why and "on h100-like (" in h100_why


def test_the_compile_report_says_why() -> None:
    """The memory report of a compiled module names each entry point's attention choice."""
    art = mlacc.compile(
        attention_module(160, 1024),
        target="sim",
        pipeline="mla-absorb-weights",
        timing_only=True,
        device="edge-npu",
    )
    why = art.manifest["memory"]["attention"]["attention$prefill"]
    assert why.startswith("unabsorbed: S=160 T=1024: un-absorbed is cheaper on edge-npu (")


def test_pipeline_options_win_over_the_device() -> None:
    """Roofline options written in the pipeline are kept; the device fills in the rest."""
    from mlacc.compiler import _with_target_options

    text = _with_target_options(
        "mla-absorb-weights{peak_tflops=1},cse",
        {"mla-absorb-weights": {"peak-tflops": 5, "bandwidth-gbs": 7, "device": "x"}},
    )
    assert text == "mla-absorb-weights{peak_tflops=1 bandwidth-gbs=7 device=x},cse"


def test_unabsorbed_core_counts_the_causal_mask() -> None:
    """S new tokens at the end of a T-token context attend to T - (S - 1) / 2 keys on
    average: a full-length prefill costs about half the attention FLOPs of the full square."""
    roof = Roofline()
    full = MlaShape(1, 4096, 4096, H, DN, DR, DV, C, QL, D, 2)
    costs = attention_costs(full, roof)["unabsorbed"]
    expand = 2 * 4096 * C * H * (DN + DV)
    square = 2 * 4096 * H * 4096 * (DN + DR + DV)
    assert costs.flops - expand == pytest.approx(square * (4096 - 4095 / 2) / 4096)
